"""``embedpipe train``: word2vec and pca/svd tables from tokenize and histories outputs.

Inputs are written directly in the tokenize/histories layout (see embedpipe/methods/inputs.py), so
these tests do not depend on those jobs. PCA and SVD are checked against NumPy on a tiny
vocabulary (MLlib PCA costs ~columns^3 on the driver without native BLAS).
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from embedpipe import cli
from embedpipe.jobconfig import TRAIN_METHODS, TrainConfig
from embedpipe.methods import pca as pca_module
from embedpipe.methods.pca import orient_components, project_sparse_rows
from embedpipe.methods.pipeline import METHODS
from embedpipe.methods.settings import Word2VecSettings
from embedpipe.methods.word2vec import filter_token_lists
from embedpipe.table import read_embedding_table

TOKENIZER = {"lowercase": True, "min_token_length": 1, "max_token_length": 100, "stop_words": "",
             "keep_numbers": True, "tokenizer": "regex", "keep_particles": False}


# ----------------------------------------------------------------------------- input fixtures


@dataclass(frozen=True)
class Written:
    path: Path
    keys: list[str]  # vocabulary, by id
    counts: list[int]
    row_ids: list[str]  # sorted
    matrix: np.ndarray  # rows (sorted ids) x vocabulary counts
    lengths: list[int]  # tokens per row (all tokens, in and out of vocabulary)


def write_training_input(spark, path: Path, rows: dict[str, list[str]], *, kind: str = "tokenize",
                         min_count: int = 1, report: dict | None = None) -> Written:
    """Write a tokenize (or histories) output for ``rows`` (row id -> tokens) the way those jobs do."""
    from pyspark.ml.linalg import SparseVector, VectorUDT
    from pyspark.sql.types import ArrayType, DoubleType, IntegerType, StringType, StructField, StructType

    counts = Counter(t for tokens in rows.values() for t in tokens)
    doc_freq = Counter(t for tokens in rows.values() for t in set(tokens))
    vocab = sorted((t for t, c in counts.items() if c >= min_count), key=lambda t: (-counts[t], t))
    ids = {t: i for i, t in enumerate(vocab)}
    row_ids = sorted(rows)
    matrix = np.zeros((len(row_ids), len(vocab)))
    vector_rows = []
    for r, row_id in enumerate(row_ids):
        bag = Counter(t for t in rows[row_id] if t in ids)
        indices = sorted(ids[t] for t in bag)
        values = [float(bag[vocab[i]]) for i in indices]
        matrix[r, indices] = values
        vector_rows.append((row_id, SparseVector(len(vocab), indices, values), indices, values))
    row_col, seq_col, seq_dir, vec_dir = (
        ("doc_id", "tokens", "tokens", "bow") if kind == "tokenize" else ("user", "items", "sequences", "vectors")
    )
    sequences = [(r, rows[r]) for r in row_ids]
    if kind == "tokenize":
        spark.createDataFrame(sequences, f"{row_col} string, {seq_col} array<string>").write.parquet(
            str(path / seq_dir))
    else:
        spark.createDataFrame([(r, t, [1.0] * len(t)) for r, t in sequences],
                              "user string, items array<string>, weights array<double>").write.parquet(
            str(path / seq_dir))
    spark.createDataFrame([(t, ids[t], counts[t], doc_freq[t]) for t in vocab],
                          "token string, id bigint, count bigint, doc_freq bigint").write.parquet(str(path / "vocab"))
    vector_schema = StructType([
        StructField(row_col, StringType()), StructField("features", VectorUDT()),
        StructField("indices", ArrayType(IntegerType())), StructField("values", ArrayType(DoubleType())),
    ])
    spark.createDataFrame(vector_rows, vector_schema).write.parquet(str(path / vec_dir))
    body = report if report is not None else {"kind": kind, "input": "generated", "vocab_size": len(vocab),
                                              "tokenizer": TOKENIZER if kind == "tokenize" else None}
    (path / "report.json").write_text(json.dumps(body), encoding="utf-8")
    return Written(path, vocab, [counts[t] for t in vocab], row_ids, matrix, [len(rows[r]) for r in row_ids])


def planted_sentences() -> dict[str, list[str]]:
    """cat/dog share contexts, paris/rome share others, 서울/부산 share Korean ones."""
    templates = [
        ("the {} eats fish and sleeps on the warm sofa", ["cat", "dog"]),
        ("my {} chases the red ball around the garden", ["cat", "dog"]),
        ("we flew to {} to visit the old museum downtown", ["paris", "rome"]),
        ("{} is a capital with a famous cathedral and river", ["paris", "rome"]),
        ("{} 에 가서 맛있는 음식 을 먹었다", ["서울", "부산"]),
    ]
    sentences = [t.format(w).split() for _ in range(30) for t, words in templates for w in words]
    return {f"s{i:04d}": tokens for i, tokens in enumerate(sentences)}


def random_corpus(documents: int = 24, seed: int = 0) -> dict[str, list[str]]:
    """Documents over a 12-word vocabulary (one Korean) with uneven word frequencies."""
    rng = np.random.default_rng(seed)
    words = [f"w{i}" for i in range(11)] + ["한국"]
    weights = rng.dirichlet(np.ones(len(words)))
    docs = {}
    for d in range(documents):
        topic = rng.dirichlet(np.ones(len(words)) * 0.5) * 0.6 + weights * 0.4
        docs[f"d{d:02d}"] = list(rng.choice(words, size=int(rng.integers(6, 15)), p=topic))
    return docs


def run_cli(*args: str) -> int:
    """``embedpipe train ARGS`` with logging quiet unless the test asks for it (stderr = errors only)."""
    level = [] if "--log-level" in args else ["--log-level", "ERROR"]
    return cli.main(["train", *args, *level])


@pytest.fixture(scope="module")
def corpus(spark, tmp_path_factory) -> Written:
    """One small tokenize output (12 words, 24 documents) shared by the pca, svd and bad-input tests."""
    return write_training_input(spark, tmp_path_factory.mktemp("corpus") / "tok", random_corpus())


def cosine(table, a: str, b: str) -> float:
    va, vb = (table.vectors[table.keys.index(k)].astype(np.float64) for k in (a, b))
    return float(va @ vb / np.linalg.norm(va) / np.linalg.norm(vb))


def orient(columns: np.ndarray) -> np.ndarray:
    """Reference sign convention: each column's largest-|value| entry positive."""
    pivots = np.abs(columns).argmax(axis=0)
    return columns * np.sign(columns[pivots, np.arange(columns.shape[1])])


# ----------------------------------------------------------------------------- pure helpers


def test_registry_matches_the_config_choices():
    assert set(METHODS) == set(TRAIN_METHODS)
    for method in METHODS.values():
        assert callable(method.load())


def test_filter_token_lists_keeps_order_handles_slices_nulls_and_korean():
    lists = pa.array([["x", "a", "b"], None, ["서울", "z", "a"], [], ["b", None, "q"]], pa.list_(pa.string()))
    vocab = pa.array(["a", "b", "서울"])
    assert filter_token_lists(lists, vocab).to_pylist() == [["a", "b"], [], ["서울", "a"], [], ["b"]]
    assert filter_token_lists(lists.slice(2, 3), vocab).to_pylist() == [["서울", "a"], [], ["b"]]


def test_project_sparse_rows_matches_dense_product(monkeypatch):
    rng = np.random.default_rng(1)
    weights = rng.normal(size=(7, 3)).astype(np.float32)
    rows = [[0, 3, 6], [], None, [2], [1, 2, 3, 4, 5, 6], [], [6]]
    indices = pa.array(rows, pa.list_(pa.int32()))
    values = pa.array([None if r is None else [float(i + 1) for i in range(len(r))] for r in rows],
                      pa.list_(pa.float64()))
    dense = np.zeros((len(rows), 7))
    for r, row in enumerate(rows):
        for j, i in enumerate(row or []):
            dense[r, i] = j + 1
    monkeypatch.setattr(pca_module, "_PROJECTION_CHUNK_ELEMENTS", 6)  # several chunks of rows
    np.testing.assert_allclose(project_sparse_rows(indices, values, weights), dense @ weights, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(project_sparse_rows(indices.slice(3), values.slice(3), weights),
                               dense[3:] @ weights, rtol=1e-5, atol=1e-5)


def test_orient_components_is_invariant_to_sign():
    columns = np.array([[0.1, -0.9], [-0.8, 0.2], [0.3, 0.1]])
    oriented = orient_components(columns)
    np.testing.assert_array_equal(oriented, [[-0.1, 0.9], [0.8, -0.2], [-0.3, -0.1]])
    np.testing.assert_array_equal(orient_components(-columns), oriented)


# ----------------------------------------------------------------------------- word2vec


def test_word2vec_end_to_end_twice_is_reproducible_and_planted(spark, tmp_path):
    written = write_training_input(spark, tmp_path / "tok", planted_sentences())
    out = tmp_path / "w2v"
    args = ["--input", str(written.path), "--output", str(out), "--method", "word2vec", "--dim", "16",
            "--set", "word2vec.window=3", "--set", "word2vec.epochs=5", "--set", "word2vec.partitions=1",
            "--set", "seed=11"]
    assert run_cli(*args) == 0
    first = read_embedding_table(str(out))
    assert run_cli(*args) == 0  # overwrites in place
    second = read_embedding_table(str(out))

    assert first.keys == written.keys and list(first.ids) == list(range(len(written.keys)))
    assert list(first.counts) == written.counts
    assert first.vectors.shape == (len(written.keys), 16) and np.isfinite(first.vectors).all()
    np.testing.assert_array_equal(first.vectors, second.vectors)
    manifest = second.manifest
    assert manifest["method"] == "word2vec" and manifest["dim"] == 16 and manifest["key_kind"] == "token"
    assert manifest["tokenizer"] == TOKENIZER and manifest["seed"] == 11
    assert manifest["source"].endswith(str(written.path))
    assert {k: manifest["params"][k] for k in ("window", "epochs", "partitions", "min_count", "mllib_min_count",
                                               "max_sentence_length", "step_size")} == {
        "window": 3, "epochs": 5, "partitions": 1, "min_count": 1, "mllib_min_count": 1,
        "max_sentence_length": 1000, "step_size": 0.025}
    # the common keys and word2vec's own settings, resolved; nothing of another method's
    assert set(manifest["params"]) == {"dim", "seed", "window", "min_count", "epochs", "partitions", "step_size",
                                       "max_sentence_length", "mllib_min_count", "implementation", "input_kind",
                                       "vocab_size", "vocab_dropped_below_min_count"}
    assert {p.name for p in tmp_path.iterdir()} == {"tok", "w2v"}  # no staging leftovers

    table = second
    assert cosine(table, "cat", "dog") > max(cosine(table, "cat", "paris"), cosine(table, "cat", "rome"))
    assert cosine(table, "paris", "rome") > max(cosine(table, "paris", "cat"), cosine(table, "paris", "dog"))
    assert cosine(table, "서울", "부산") > max(cosine(table, "서울", "cat"), cosine(table, "서울", "paris"))


def test_word2vec_on_histories_with_min_count(spark, tmp_path):
    from embedpipe.methods.pipeline import run_train

    users = {f"u{i}": ["i1", "i2", "i3", "i1", "i2"] if i % 2 else ["i4", "i5", "i4", "i5", "i9"] for i in range(20)}
    users["u99"] = ["i7", "i1"]  # i7 is seen once and falls below min_count=2
    written = write_training_input(spark, tmp_path / "hist", users, kind="histories")
    out = tmp_path / "items"
    config = TrainConfig(input=str(written.path), output=str(out), method="word2vec", dim=4, seed=3,
                         settings=Word2VecSettings(min_count=2, epochs=2))
    summary = run_train(spark, config)
    table = read_embedding_table(str(out))
    kept = [k for k, c in zip(written.keys, written.counts, strict=True) if c >= 2]
    assert "i7" not in kept and table.keys == kept
    assert summary["rows"] == len(kept) and summary["method"] == "word2vec" and summary["path"] == "mllib-word2vec"
    assert list(summary["stages"]) == ["open", "train", "write", "total"]  # the log's "train stages" line
    assert table.manifest["key_kind"] == "item" and table.manifest["tokenizer"] is None
    assert table.manifest["params"]["vocab_dropped_below_min_count"] == len(written.keys) - len(kept)
    assert table.manifest["params"]["input_kind"] == "histories"


# ----------------------------------------------------------------------------- pca / svd


def test_pca_matches_numpy_covariance_eigenvectors_end_to_end_twice(spark, tmp_path, corpus):
    written = corpus
    out, docs_out = tmp_path / "pca", tmp_path / "docs"
    args = ["--input", str(written.path), "--output", str(out), "--method", "pca", "--dim", "3",
            "--set", "pca.solver=pca", "--set", f"pca.doc_output={docs_out}"]
    assert run_cli(*args) == 0
    first = read_embedding_table(str(out))
    assert run_cli(*args) == 0
    words, docs = read_embedding_table(str(out)), read_embedding_table(str(docs_out))
    np.testing.assert_array_equal(first.vectors, words.vectors)

    x = written.matrix
    n = x.shape[0]
    eigenvalues, eigenvectors = np.linalg.eigh(np.cov(x, rowvar=False))
    order = np.argsort(eigenvalues)[::-1][:3]
    components = orient(eigenvectors[:, order])
    singular = np.sqrt((n - 1) * eigenvalues[order])
    assert words.keys == written.keys and list(words.counts) == written.counts
    np.testing.assert_allclose(words.vectors, components * singular, atol=2e-4)
    np.testing.assert_allclose(words.manifest["params"]["singular_values"], singular, rtol=1e-6)
    assert words.manifest["params"]["solver_used"] == "pca" and words.manifest["params"]["centred"] is True
    assert words.manifest["seed"] is None and words.manifest["tokenizer"] == TOKENIZER

    assert docs.keys == written.row_ids and list(docs.ids) == list(range(n))
    assert list(docs.counts) == written.lengths
    assert docs.manifest["key_kind"] == "document" and docs.manifest["dim"] == 3
    np.testing.assert_allclose(docs.vectors, (x - x.mean(axis=0)) @ components, atol=2e-4)


def test_svd_path_matches_numpy_svd(spark, tmp_path, capsys, corpus):
    written = corpus
    out, docs_out = tmp_path / "svd", tmp_path / "docs"
    # auto with a column limit below the vocabulary size forces the distributed SVD path.
    assert run_cli("--input", str(written.path), "--output", str(out), "--method", "pca", "--dim", "4",
                   "--set", "pca.solver=auto", "--set", "pca.max_columns=5", "--set", "pca.scaling=sqrt",
                   "--set", f"pca.doc_output={docs_out}", "--log-level", "INFO") == 0
    assert "pca: solver svd (pca.solver=auto and vocabulary size 12 > pca.max_columns=5)" in capsys.readouterr().err
    words, docs = read_embedding_table(str(out)), read_embedding_table(str(docs_out))

    x = written.matrix
    _, singular, vt = np.linalg.svd(x, full_matrices=False)
    components = orient(vt[:4].T)
    np.testing.assert_allclose(words.vectors, components * np.sqrt(singular[:4]), atol=2e-4)
    np.testing.assert_allclose(docs.vectors, x @ components, atol=2e-4)
    params = words.manifest["params"]
    assert params["solver_used"] == "svd" and params["centred"] is False and params["scaling"] == "sqrt"
    assert "doc_output" not in params and "window" not in params  # no paths, no other method's keys
    np.testing.assert_allclose(params["explained_variance_ratio"], singular[:4] ** 2 / (x**2).sum(), rtol=1e-6)


# ----------------------------------------------------------------------------- bad inputs


def _known_keys() -> str:
    return ", ".join(sorted(f.name for f in dataclasses.fields(TrainConfig) if not f.metadata.get("nested")))


@pytest.mark.parametrize(
    ("case", "extra", "message"),
    [
        ("missing", [], "train input {input} does not exist"),
        ("no_report", [], "train input {input} is not a tokenize or histories output (no report.json)"),
        ("wrong_kind", [],
         "train input {input} is not a tokenize or histories output (report.json kind is 'evaluate')"),
        ("no_bow", ["--method", "pca", "--dim", "2"], "train input file:{input} has no bow/ directory"),
        ("bad_vocab", [], "file:{input}/vocab: column 'count' is string, expected bigint"),
        ("ok", ["--method", "pca", "--dim", "50"],
         "config key 'dim' must be <= min(vocabulary size, documents) = 12 for pca (vocabulary 12, documents 24), "
         "got 50"),
        ("ok", ["--set", "bogus=1"], "unknown config key 'bogus' (known keys: {known}; a method's own keys go in "
                                     "[train.word2vec] or --set word2vec.<key>)"),
        ("ok", ["--set", "pca.doc_output={tmp}/docs"],
         "config key 'pca.doc_output' is a setting of method pca, but the method is word2vec"),
        ("ok", ["--set", "word2vec.doc_output={tmp}/docs"],
         "config key 'word2vec.doc_output' is not a setting of method word2vec (its keys: window, min_count, epochs, "
         "partitions, step_size, max_sentence_length)"),
        ("ok", ["--set", "doc_output={tmp}/docs"],
         "config key 'doc_output' moved to the method sections (pca.doc_output); method word2vec has no such setting"),
        ("ok", ["--method", "pca", "--doc-output", "{tmp}/docs"],
         "config key 'doc_output' moved: use 'pca.doc_output' ([train.pca])"),
        ("ok", ["--method", "pca", "--set", "pca.doc_output={tmp}/out"],
         "config key 'pca.doc_output' must differ from 'output'"),
        ("ok", ["--processes", "2"],
         "config key 'processes' is not used by method word2vec (only by sgns, fasttext, item2vec, softmax, "
         "regression)"),
    ],
)
def test_bad_inputs_fail_with_one_line_and_write_nothing(spark, tmp_path, capsys, corpus, case, extra, message):
    source = tmp_path / "input"
    if case != "missing":
        shutil.copytree(corpus.path, source)
    if case == "no_report":
        (source / "report.json").unlink()
    elif case == "wrong_kind":
        (source / "report.json").write_text(json.dumps({"kind": "evaluate"}), encoding="utf-8")
    elif case == "no_bow":
        shutil.rmtree(source / "bow")
    elif case == "bad_vocab":
        shutil.rmtree(source / "vocab")
        spark.createDataFrame([("a", 0, "1", 1)], "token string, id bigint, count string, doc_freq bigint") \
            .write.parquet(str(source / "vocab"))
    out = tmp_path / "out"
    extra = [e.format(tmp=tmp_path) for e in extra]
    rc = run_cli("--input", str(source), "--output", str(out), *extra)
    expected = message.format(input=source, known=_known_keys())
    assert rc == 2
    assert capsys.readouterr().err == f"embedpipe train: error: {expected}\n"
    assert not out.exists() and not (tmp_path / "docs").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ([] if case == "missing" else ["input"])


@pytest.mark.slow  # ~6 s at load 9: the Spark path is for inputs pyarrow does not read (HDFS, S3)
def test_vocabulary_is_read_at_open_locally_and_collected_once_otherwise(spark, corpus, monkeypatch):
    """A local input's vocabulary is read with pyarrow when it is opened; elsewhere (HDFS, S3: pyarrow's reader
    is not used) the first ``vocabulary()`` collects it through Spark and later calls reuse that table."""
    from embedpipe.methods import inputs

    local = inputs.read_training_input(spark, str(corpus.path))
    assert local.vocab_rows is not None and local.vocabulary() is local.vocab_rows
    assert local.vocabulary().column("token").to_pylist() == corpus.keys
    monkeypatch.setattr(inputs, "_read_local_vocabulary", lambda root: None)
    remote = inputs.read_training_input(spark, str(corpus.path))
    assert remote.vocab_rows is None
    collected = remote.vocabulary()
    assert collected is remote.vocabulary()
    assert collected.select(["token", "id", "count"]).to_pylist() == local.vocabulary().to_pylist()
