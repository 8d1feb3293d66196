"""`train --method fasttext`: composed word vectors in the table, bucket vectors in ``_subwords``; bad settings."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from embedpipe.cli import main
from embedpipe.errors import ConfigError, TableError
from embedpipe.jobconfig import TokenizeConfig
from embedpipe.subwords import ngram_buckets
from embedpipe.table import MANIFEST_FILE, read_embedding_table
from embedpipe.text.pipeline import run_tokenize

torch = pytest.importorskip("torch")
pytest.importorskip("numba")

FASTTEXT = ["--method", "fasttext", "--dim", "16", "--set", "fasttext.epochs=2", "--set", "fasttext.buckets=5000",
            "--set", "fasttext.minn=3", "--set", "fasttext.maxn=6", "--threads", "1", "--device", "cpu", "--seed", "3"]
STEMS = ["walk", "talk", "jump", "play", "cook", "look"]
ENDINGS = ["", "s", "ed", "ing"]


@pytest.fixture(scope="module")
def tokens(spark, tmp_path_factory):
    root = tmp_path_factory.mktemp("fasttext")
    rng = np.random.default_rng(5)
    words = [s + e for s in STEMS for e in ENDINGS]
    lines = [" ".join(words[j] for j in rng.integers(0, len(words), 12)) for _ in range(300)]
    (root / "corpus.txt").write_text("\n".join(lines) + "\n")
    run_tokenize(spark, TokenizeConfig(input=str(root / "corpus.txt"), output=str(root / "tokens"), min_count=1))
    return root / "tokens"


@pytest.fixture(scope="module")
def trained(spark, tokens, tmp_path_factory):
    out = tmp_path_factory.mktemp("fasttext-table") / "table"
    assert main(["train", "--input", str(tokens), "--output", str(out), *FASTTEXT]) == 0
    return out


def test_fasttext_writes_composed_vectors_and_buckets_and_repeats(spark, tokens, trained, tmp_path):
    out = tmp_path / "table"
    assert main(["train", "--input", str(tokens), "--output", str(out), *FASTTEXT]) == 0
    first = read_embedding_table(str(trained))
    second = read_embedding_table(str(out))
    np.testing.assert_array_equal(first.vectors, second.vectors)
    assert len(first) == 24 and first.dim == 16 and first.manifest["method"] == "fasttext"
    assert first.manifest["params"]["trained_on"] == "cpu" and first.manifest["params"]["device"] == "cpu"
    scheme = first.manifest["params"]["subwords"]
    assert scheme == {"minn": 3, "maxn": 6, "buckets": 5000, "hash": "fasttext-fnv1a32", "jamo": False,
                      "table": "_subwords"}
    buckets = read_embedding_table(str(out / "_subwords"))
    assert buckets.manifest["params"]["subwords"] == scheme and buckets.dim == 16
    # every n-gram of the vocabulary has its bucket row, keyed and numbered by bucket
    used = sorted({int(b) for w in first.keys for b in ngram_buckets(w, 3, 6, 5000)})
    assert list(buckets.ids) == used and buckets.keys == [str(b) for b in used]
    assert np.isfinite(buckets.vectors).all() and np.isfinite(first.vectors).all()
    # in a corpus of random word order, only shared n-grams make words alike (once the direction all words
    # share is taken out): same stem > different stems
    centred = first.vectors - first.vectors.mean(axis=0)
    unit = centred / np.linalg.norm(centred, axis=1, keepdims=True)
    row = {k: i for i, k in enumerate(first.keys)}

    def cosine(a: str, b: str) -> float:
        return float(unit[row[a]] @ unit[row[b]])

    same = [cosine(s + "ing", s + "ed") for s in STEMS]
    different = [cosine(s + "ing", t + "ed") for s in STEMS for t in STEMS if s != t]
    assert np.mean(same) > np.mean(different) + 0.2


@pytest.mark.parametrize(("setting", "message"), [
    ("fasttext.minn=7", "config key 'fasttext.minn' must be <= fasttext.maxn (6), got 7"),
    ("fasttext.buckets=0", "config key 'fasttext.buckets' must be >= 1, got 0"),
    ("fasttext.maxn=11", "config key 'fasttext.maxn' must be <= 10, got 11"),
    ("fasttext.export_output_vectors=x", "config key 'fasttext.export_output_vectors' is not a setting of method "
     "fasttext (its keys: window, negative, sample, step_size, min_step_size, epochs, deterministic, minn, maxn, "
     "buckets)"),
])
def test_bad_ngram_settings_write_nothing(spark, capsys, tokens, tmp_path, setting, message):
    out = tmp_path / "table"
    capsys.readouterr()
    argv = ["train", "--input", str(tokens), "--output", str(out), *FASTTEXT, "--set", setting, "--log-level", "ERROR"]
    assert main(argv) == 2
    assert capsys.readouterr().err == f"embedpipe train: error: {message}\n"
    assert not out.exists()


@pytest.mark.slow  # ~4 s: a barrier stage
@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the answer where there is no CUDA device")
def test_cuda_without_a_device_is_a_one_line_error_and_writes_nothing(spark, capsys, tokens, tmp_path):
    # the job trains with the CUDA kernel where there is a device (tests/unit/test_torchtrain_subword_cuda.py)
    out = tmp_path / "table"
    capsys.readouterr()
    argv = ["train", "--input", str(tokens), "--output", str(out), *FASTTEXT, "--device", "cuda", "--log-level",
            "ERROR"]
    assert main(argv) == 2
    assert capsys.readouterr().err == ("embedpipe train: error: config key 'device' is 'cuda' but no CUDA device is "
                                       "available (use 'auto' or 'cpu')\n")
    assert not out.exists()


def test_unseen_words_are_composed_from_their_ngram_buckets(trained):
    table = read_embedding_table(str(trained))
    buckets = read_embedding_table(str(trained / "_subwords"))
    row_of = {int(b): i for i, b in enumerate(buckets.ids)}
    words = ["walkings", "cooking", "qqqq"]  # unseen, seen, no trained n-gram
    vectors = table.vectors_of(words, oov="subwords")
    rows = [row_of[int(b)] for b in ngram_buckets("walkings", 3, 6, 5000) if int(b) in row_of]
    assert 0 < len(rows) < len(ngram_buckets("walkings", 3, 6, 5000))  # "ings>" was never trained
    np.testing.assert_allclose(vectors[0], buckets.vectors[rows].mean(axis=0), rtol=1e-5, atol=1e-7)
    np.testing.assert_array_equal(vectors[1], table.vector("cooking"))
    np.testing.assert_array_equal(vectors[2], np.zeros(16, np.float32))
    with pytest.raises(KeyError):
        table.vectors_of(["walkings"])  # the default policy still fails on unseen keys


def test_subwords_on_a_table_without_them_or_with_a_mismatched_bucket_table(trained, write_table, tmp_path):
    plain = tmp_path / "plain"
    write_table(plain, [("a", 0, 1, [1.0, 0.0])], dim=2)
    with pytest.raises(ConfigError) as error:
        read_embedding_table(str(plain)).vectors_of(["b"], oov="subwords")
    assert str(error.value) == (f"config key 'oov' is subwords but embedding table {plain} has no subword vectors "
                                "(train it with --method fasttext)")
    copy = tmp_path / "copy"
    shutil.copytree(trained, copy)
    manifest_path = copy / "_subwords" / MANIFEST_FILE
    manifest = json.loads(manifest_path.read_text())
    manifest["params"]["subwords"]["maxn"] = 5
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(TableError) as error:
        read_embedding_table(str(copy)).vectors_of(["walkings"], oov="subwords")
    assert str(error.value) == (f"subword table {copy}/_subwords does not match its table: params.subwords.maxn is "
                                "5 there and 6 in the table's manifest")
