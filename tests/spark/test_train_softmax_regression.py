"""`tokenize --label-column` and `train --method softmax|regression` end to end through the CLI."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
from chispa import assert_df_equality
from pyspark.sql import functions as F

from embedpipe.cli import main
from embedpipe.demo.generator import generate_listings, generate_watch_log
from embedpipe.methods.softmax_regression import default_epochs
from embedpipe.table import read_embedding_table

pytest.importorskip("torch")

QUIET = ["--log-level", "ERROR"]
SOFTMAX = ["--method", "softmax", "--dim", "8", "--set", "softmax.epochs=10", "--set", "softmax.batch_size=32",
           "--set", "softmax.step_size=0.05", "--device", "cpu", "--threads", "1", "--seed", "5", *QUIET]
REGRESSION = ["--method", "regression", "--dim", "8", "--set", "regression.epochs=12",
              "--set", "regression.batch_size=32", "--set", "regression.step_size=0.02",
              "--device", "cpu", "--threads", "1", "--seed", "5", *QUIET]
TABLE_COLUMNS = [("key", "string"), ("id", "bigint"), ("count", "bigint"), ("vector", "array<float>")]


@pytest.fixture(scope="module")
def watched(tmp_path_factory):
    """A planted watch log of 400 users over 100 movies, through `embedpipe histories`."""
    root = tmp_path_factory.mktemp("watch")
    info = generate_watch_log(root / "watch.csv", users=400, items=100, seed=3)
    assert main(["histories", "--input", str(info.path), "--output", str(root / "histories"),
                 "--time-column", "timestamp", *QUIET]) == 0
    return root, info


@pytest.fixture(scope="module")
def listings(tmp_path_factory):
    """400 planted listings, three with a bad price (empty, text, NaN), through `tokenize --label-column`."""
    root = tmp_path_factory.mktemp("listings")
    info = generate_listings(root / "listings.csv", listings=400, seed=5)
    lines = info.path.read_text(encoding="utf-8").splitlines()
    for line_number, price in ((1, ""), (2, "cheap"), (3, "NaN")):
        lines[line_number] = f"{lines[line_number].rsplit(',', 1)[0]},{price}"
    info.path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    argv = ["tokenize", "--input", str(info.path), "--output", str(root / "tokens"), "--id-column", "id",
            "--label-column", "price", "--min-count", "2", *QUIET]
    assert main(argv) == 0
    return root, info, argv


def _segment_agreement(table_path: str, info) -> float:
    """Share of every movie's 5 cosine neighbours in its planted segment (chance: about 0.24)."""
    table = read_embedding_table(table_path)
    unit = table.vectors / np.linalg.norm(table.vectors, axis=1, keepdims=True)
    similarity = unit @ unit.T
    np.fill_diagonal(similarity, -np.inf)
    neighbours = np.argsort(-similarity, axis=1)[:, :5]
    segment_of = dict(zip(info.items, info.segments, strict=True))
    segments = np.array([segment_of[key] for key in table.keys])
    return float(np.mean(segments[neighbours] == segments[:, None]))


def _assert_valid_table(spark, table_path: str, vocab_path: str, dim: int) -> None:
    frame = spark.read.parquet(table_path)
    assert [(f.name, f.dataType.simpleString()) for f in frame.schema] == TABLE_COLUMNS
    vocab = spark.read.parquet(vocab_path).select(F.col("token").alias("key"), "id", "count")
    assert_df_equality(frame.select("key", "id", "count"), vocab, ignore_row_order=True, ignore_nullable=True)
    table = read_embedding_table(table_path)
    assert table.dim == dim and np.isfinite(table.vectors).all() and np.abs(table.vectors).sum() > 0


# --------------------------------------------------------------------------------------------------
# tokenize --label-column


def test_tokenize_label_column_is_carried_into_bow(spark, listings):
    root, info, argv = listings
    out = root / "tokens"
    first = spark.read.parquet(str(out / "bow")).toPandas()
    assert main(argv) == 0  # idempotent
    again = spark.read.parquet(str(out / "bow"))
    assert [(f.name, f.dataType.simpleString()) for f in again.schema] == [
        ("doc_id", "string"), ("features", "vector"), ("indices", "array<int>"), ("values", "array<double>"),
        ("label", "double"),
    ]
    pd.testing.assert_frame_equal(
        first.sort_values("doc_id").reset_index(drop=True)[["doc_id", "label"]],
        again.toPandas().sort_values("doc_id").reset_index(drop=True)[["doc_id", "label"]],
    )
    report = json.loads((out / "report.json").read_text())
    assert report["labels"]["column"] == "price"
    assert (report["labels"]["labelled_documents"], report["labels"]["missing_labels"],
            report["labels"]["non_numeric_labels"]) == (397, 1, 2)
    # bow/ holds the labelled documents only, tokens/ every document; labels are the CSV's prices.
    assert len(first) == 397 and spark.read.parquet(str(out / "tokens")).count() == 400
    prices = pd.read_csv(info.path, dtype={"price": str}).set_index("id")["price"]
    expected = pd.to_numeric(prices[first["doc_id"]], errors="coerce").to_numpy()
    np.testing.assert_allclose(first["label"].to_numpy(), expected)
    assert set(prices.index[:3]).isdisjoint(first["doc_id"])


def test_tokenize_label_column_errors(spark, listings, tmp_path, capsys):
    root, info, _ = listings
    text = tmp_path / "plain.txt"
    text.write_text("a b c\n", encoding="utf-8")
    out = tmp_path / "out"
    assert main(["tokenize", "--input", str(text), "--output", str(out), "--label-column", "price", *QUIET]) == 2
    assert capsys.readouterr().err.strip() == (
        f"embedpipe tokenize: error: config key 'label_column' needs a tabular input; {text} is plain text"
    )
    assert main(["tokenize", "--input", str(info.path), "--output", str(out), "--label-column", "rent",
                 *QUIET]) == 2
    assert capsys.readouterr().err.strip() == (
        f"embedpipe tokenize: error: input {info.path} lacks required columns "
        "(missing: rent (label_column); present: id, text, price)"
    )
    assert not out.exists()


# --------------------------------------------------------------------------------------------------
# train --method softmax


def test_softmax_twice_is_reproducible_and_recovers_segments(spark, watched, tmp_path):
    root, info = watched
    out, out_vectors = tmp_path / "softmax", tmp_path / "softmax-output"
    argv = ["train", "--input", str(root / "histories"), "--output", str(out), *SOFTMAX,
            "--set", f"softmax.export_output_vectors={out_vectors}"]
    assert main(argv) == 0
    first, first_out = read_embedding_table(str(out)), read_embedding_table(str(out_vectors))
    assert main(argv) == 0
    second, second_out = read_embedding_table(str(out)), read_embedding_table(str(out_vectors))
    np.testing.assert_array_equal(first.vectors, second.vectors)
    np.testing.assert_array_equal(first_out.vectors, second_out.vectors)
    vocab = str(root / "histories" / "vocab")
    _assert_valid_table(spark, str(out), vocab, 8)
    _assert_valid_table(spark, str(out_vectors), vocab, 8)
    params = first.manifest["params"]
    assert first.manifest["method"] == "softmax" and first.manifest["key_kind"] == "item"
    assert (params["combiner"], params["target_items"], params["processes"]) == ("mean", 20, 1)
    assert params["dropout"] == 0.3  # the softmax's default (regression's is 0)
    assert (params["epochs"], params["batch_size"], params["step_size"]) == (10, 32, 0.05)
    assert not set(params) & {"lr", "holdout", "validation_fraction", "export_output_vectors", "window"}
    assert params["layer"].startswith("input") and first_out.manifest["params"]["layer"].startswith("output")
    assert params["users_trained"] == 400
    assert params["tied"] is False  # an exported output table asks for two towers
    assert _segment_agreement(str(out), info) > 0.6


def test_softmax_two_processes_similar_quality(spark, watched, tmp_path):
    root, info = watched
    one, two = tmp_path / "one", tmp_path / "two"
    assert main(["train", "--input", str(root / "histories"), "--output", str(one), *SOFTMAX]) == 0
    assert main(["train", "--input", str(root / "histories"), "--output", str(two), *SOFTMAX,
                 "--processes", "2", "--set", "averages_per_epoch=4"]) == 0
    _assert_valid_table(spark, str(two), str(root / "histories" / "vocab"), 8)
    double = read_embedding_table(str(two))
    assert double.manifest["params"]["processes"] == 2 and double.manifest["params"]["rows_trained"] == 400
    assert _segment_agreement(str(two), info) >= _segment_agreement(str(one), info) - 0.15


def test_softmax_epochs_default_to_about_1000_steps(spark, watched, tmp_path):
    """Without softmax.epochs a small log gets more passes (MovieLens' 609 users: 200, not 20)."""
    assert [default_epochs(users, 128) for users in (609, 2_000, 6_400, 1_000_000)] == [200, 63, 20, 20]
    root, _ = watched
    out = tmp_path / "default-epochs"
    argv = [*SOFTMAX[:4], *SOFTMAX[6:]]  # without "--set softmax.epochs=10"
    assert "softmax.epochs=10" not in argv
    assert main(["train", "--input", str(root / "histories"), "--output", str(out), *argv,
                 "--set", "softmax.batch_size=64"]) == 0
    params = read_embedding_table(str(out)).manifest["params"]
    assert params["epochs"] == default_epochs(400, 64) == 143  # 7 steps a pass
    assert params["tied"] is True  # softmax.tied unset and nothing asks for two towers: one table


# --------------------------------------------------------------------------------------------------
# train --method regression


def test_regression_twice_beats_the_mean_predictor(spark, listings, tmp_path, capsys):
    root, _, _ = listings
    out = tmp_path / "regression"
    argv = ["train", "--input", str(root / "tokens"), "--output", str(out), *REGRESSION]
    assert main(argv) == 0
    first = read_embedding_table(str(out))
    capsys.readouterr()
    assert main(argv) == 0
    second = read_embedding_table(str(out))
    np.testing.assert_array_equal(first.vectors, second.vectors)
    _assert_valid_table(spark, str(out), str(root / "tokens" / "vocab"), 8)
    params = first.manifest["params"]
    assert (first.manifest["method"], params["combiner"], params["label_column"]) == ("regression", "sum", "price")
    assert params["dropout"] == 0.0 and not set(params) & {"target_items", "sampled", "lr"}
    assert first.manifest["tokenizer"]["lowercase"] is True
    metrics = params["metrics"]
    assert metrics["validation_rows"] == 40
    assert metrics["rmse"] < 0.5 * metrics["mean_rmse"] and metrics["mae"] < 0.5 * metrics["mean_mae"]
    assert metrics["ridge_rmse"] < 0.5 * metrics["mean_rmse"]


def test_wrong_inputs_are_one_line_errors(spark, watched, listings, tmp_path, capsys):
    histories = watched[0] / "histories"
    tokens = listings[0] / "tokens"
    unlabelled = tmp_path / "unlabelled"
    shutil.copytree(tokens, unlabelled)
    report = json.loads((unlabelled / "report.json").read_text())
    report["labels"] = None
    (unlabelled / "report.json").write_text(json.dumps(report))
    (unlabelled / ".report.json.crc").unlink()  # Hadoop's checksum of the old content
    out = tmp_path / "table"
    cases = [
        (["--input", str(tokens), *SOFTMAX],
         f"train --method softmax needs a histories output (users and the items they watched); file:{tokens} "
         "is a tokenize output"),
        (["--input", str(histories), *REGRESSION],
         f"train --method regression needs a tokenize output made with --label-column; file:{histories} is a "
         "histories output"),
        (["--input", str(unlabelled), *REGRESSION],
         f"train --method regression needs a label per document; file:{unlabelled}/bow has none (run embedpipe "
         "tokenize with --label-column)"),
        (["--input", str(tokens), *REGRESSION, "--set", f"regression.export_output_vectors={tmp_path / 'x'}"],
         "config key 'regression.export_output_vectors' is not a setting of method regression (its keys: epochs, "
         "step_size, batch_size, hidden, combiner, dropout, validation_fraction, ridge_alpha)"),
        (["--input", str(histories), *SOFTMAX, "--processes", "500"],
         f"file:{histories}: 400 of 400 users watched 2 or more items (an input and a target), fewer than "
         "processes=500; lower 'processes' or give longer histories"),
        (["--input", str(histories), *SOFTMAX, "--epochs", "3"],
         "config key 'epochs' moved: use 'softmax.epochs' ([train.softmax])"),
        (["--input", str(tokens), *REGRESSION, "--set", "bag_step_size=0.1"],
         "config key 'bag_step_size' moved: use 'regression.step_size' ([train.regression])"),
        (["--input", str(histories), *SOFTMAX, "--checkpoint-dir", str(tmp_path / "x")],
         "config key 'checkpoint_dir' is not used by method softmax (only by sgns, fasttext, item2vec)"),
    ]
    for args, message in cases:
        assert main(["train", "--output", str(out), *args]) == 2
        assert capsys.readouterr().err.strip() == f"embedpipe train: error: {message}"
        assert not out.exists() and not (tmp_path / "x").exists()


# --------------------------------------------------------------------------------------------------
# Spark-free helpers


def test_bag_corpus_from_arrow_batches():
    import pyarrow as pa

    from embedpipe.methods.softmax_regression import bag_corpus

    batch = pa.RecordBatch.from_pydict({
        "indices": pa.array([[0, 2], [], [1, 2, 3], [4]], pa.list_(pa.int32())),
        "values": pa.array([[1.0, 2.0], [], [1.0, 1.0, 3.0], [5.0]]),
        "label": pa.array([1.5, 2.0, -3.0, 4.0]),
    })
    corpus = bag_corpus([batch.slice(0, 1), batch.slice(1, 3)], "regression")
    np.testing.assert_array_equal(corpus.offsets, [0, 2, 2, 5, 6])
    np.testing.assert_array_equal(corpus.ids, [0, 2, 1, 2, 3, 4])
    np.testing.assert_array_equal(corpus.weights, np.array([1, 2, 1, 1, 3, 5], dtype=np.float32))
    np.testing.assert_array_equal(corpus.targets, np.array([1.5, 2.0, -3.0, 4.0], dtype=np.float32))
    sets = bag_corpus([batch.select(["indices"])], "softmax")
    assert sets.weights is None and sets.targets is None and sets.n_rows == 4
