"""`train --method fasttext`: composed word vectors in the table, bucket vectors in ``_subwords``; bad settings."""

from __future__ import annotations

import numpy as np
import pytest

from embedpipe.cli import main
from embedpipe.jobconfig import TokenizeConfig
from embedpipe.subwords import ngram_buckets
from embedpipe.table import read_embedding_table
from embedpipe.text.pipeline import run_tokenize

pytest.importorskip("torch")
pytest.importorskip("numba")

FASTTEXT = ["--method", "fasttext", "--dim", "16", "--set", "fasttext.epochs=2", "--set", "fasttext.buckets=5000",
            "--threads", "1", "--device", "cpu", "--seed", "3"]
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


def test_fasttext_writes_composed_vectors_and_buckets_and_repeats(spark, tokens, tmp_path):
    out = tmp_path / "table"
    argv = ["train", "--input", str(tokens), "--output", str(out), *FASTTEXT]
    assert main(argv) == 0
    first = read_embedding_table(str(out))
    assert main(argv) == 0
    second = read_embedding_table(str(out))
    np.testing.assert_array_equal(first.vectors, second.vectors)
    assert len(first) == 24 and first.dim == 16 and first.manifest["method"] == "fasttext"
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
