"""``embedpipe histories``: ordering, weights, thresholds, MovieLens inputs, bad rows and bad inputs."""

from __future__ import annotations

import dataclasses
import json

import pytest
from chispa import assert_df_equality
from pyspark.ml.linalg import SparseVector, VectorUDT
from pyspark.sql.types import ArrayType, DoubleType, IntegerType, StringType, StructField, StructType

from embedpipe.cli import job_main, main
from embedpipe.interactions.pipeline import run_histories
from embedpipe.jobconfig import HistoriesConfig

QUIET = ["--log-level", "ERROR"]
VECTORS_SCHEMA = StructType([
    StructField("user", StringType()), StructField("features", VectorUDT()),
    StructField("indices", ArrayType(IntegerType())), StructField("values", ArrayType(DoubleType())),
])

EVENTS = """uid,movie,ts,stars
u1,m1,300,4
u1,m2,100,5
u1,m3,200,2.5
u2,m1,50,3
u2,m2,50,1
u1,m2,300,3
,m9,1,5
u3,,1,5
u3,m1,1,abc
u3,m2,notatime,4
u2,m3,2024-01-01 00:00:00,4
u2,m4,60,0.5
"""
EVENT_COLUMNS = ["--user-column", "uid", "--item-column", "movie", "--time-column", "ts", "--weight-column", "stars"]


def _rows(spark, path):
    return sorted(map(tuple, spark.read.parquet(path).collect()))


def _vectors(spark, rows):
    return spark.createDataFrame(
        [(user, SparseVector(size, values), sorted(values), [values[i] for i in sorted(values)])
         for user, size, values in rows],
        VECTORS_SCHEMA,
    )


def test_histories_cli_twice_orders_weights_and_counts(spark, tmp_path):
    log_file = tmp_path / "events.csv"
    log_file.write_text(EVENTS)
    output = tmp_path / "histories"
    argv = ["histories", "--input", str(log_file), "--output", str(output), *EVENT_COLUMNS,
            "--rating-threshold", "1", *QUIET]
    assert main(argv) == 0
    sequences = _rows(spark, f"{output}/sequences")
    report = json.loads((output / "report.json").read_text())
    assert main(argv) == 0
    assert _rows(spark, f"{output}/sequences") == sequences
    rerun = json.loads((output / "report.json").read_text())
    stages = report.pop("stages")
    assert rerun.pop("stages").keys() == stages.keys()  # seconds differ run to run; everything else must not
    assert rerun == report
    assert list(stages) == ["open", "read_clean", "count", "write_sequences", "encode_vectors", "total"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["events.csv", "histories"]

    # By time; the tie at ts=300 (and at ts=50) keeps input order; the ISO timestamp sorts last.
    assert sequences == [
        ("u1", ["m2", "m3", "m1", "m2"], [5.0, 2.5, 4.0, 3.0]),
        ("u2", ["m1", "m2", "m3"], [3.0, 1.0, 4.0]),
    ]
    assert _rows(spark, f"{output}/vocab") == [("m1", 1, 2, 2), ("m2", 0, 3, 2), ("m3", 2, 2, 2)]
    expected = _vectors(spark, [("u1", 3, {0: 8.0, 1: 4.0, 2: 2.5}), ("u2", 3, {0: 1.0, 1: 3.0, 2: 4.0})])
    assert_df_equality(spark.read.parquet(f"{output}/vectors"), expected, ignore_row_order=True, ignore_nullable=True)
    assert report == {
        "kind": "histories", "input": str(log_file), "format": "csv",
        "user_column": "uid", "item_column": "movie", "time_column": "ts", "weight_column": "stars",
        "rating_threshold": 1.0, "min_count": 1, "max_vocab_size": None,
        "users": 2, "items": 3, "interactions": 7,
        "counts": {"rows_read": 12, "missing_user": 1, "missing_item": 1, "bad_weight": 1, "bad_time": 1,
                   "below_threshold": 1},
    }


def test_udata_by_name_counts_interactions(spark, tmp_path):
    udata = tmp_path / "ml-100k" / "u.data"
    udata.parent.mkdir()
    udata.write_text(
        "196\t242\t3\t881250949\n186\t302\t3\t891717742\n196\t302\t1\t881250940\n"
        "22\t377\t1\t878887116\n196\t377\t4\t881250949\n"
    )
    output = tmp_path / "out"
    assert job_main("histories", ["--input", str(udata), "--output", str(output), "--time-column", "timestamp",
                                  "--min-count", "2", *QUIET]) == 0
    assert _rows(spark, f"{output}/sequences") == [
        ("186", ["302"], [1.0]), ("196", ["302", "242", "377"], [1.0, 1.0, 1.0]), ("22", ["377"], [1.0]),
    ]
    assert _rows(spark, f"{output}/vocab") == [("302", 0, 2, 2), ("377", 1, 2, 2)]
    expected = _vectors(spark, [("196", 2, {0: 1.0, 1: 1.0}), ("186", 2, {0: 1.0}), ("22", 2, {1: 1.0})])
    assert_df_equality(spark.read.parquet(f"{output}/vectors"), expected, ignore_row_order=True, ignore_nullable=True)
    report = json.loads((output / "report.json").read_text())
    assert (report["format"], report["users"], report["items"], report["interactions"]) == ("udata", 3, 2, 5)


def test_movielens_ratings_csv_columns_and_threshold(spark, tmp_path):
    ratings = tmp_path / "ratings.csv"
    ratings.write_text("userId,movieId,rating,timestamp\n1,10,4.0,100\n1,20,5.0,50\n2,10,3.0,10\n1,30,4.5,1\n")
    output = str(tmp_path / "out")
    summary = run_histories(spark, HistoriesConfig(input=str(ratings), output=output, weight_column="rating",
                                                   rating_threshold=3.5))
    assert summary.pop("stages")["total"] > 0
    assert summary == {"output": output, "users": 1, "items": 3, "interactions": 3}
    # No time column: input order.
    assert _rows(spark, f"{output}/sequences") == [("1", ["10", "20", "30"], [4.0, 5.0, 4.5])]
    expected = _vectors(spark, [("1", 3, {0: 4.0, 1: 5.0, 2: 4.5})])
    assert_df_equality(spark.read.parquet(f"{output}/vectors"), expected, ignore_row_order=True, ignore_nullable=True)
    with open(f"{output}/report.json", encoding="utf-8") as handle:
        report = json.load(handle)
    assert (report["user_column"], report["item_column"]) == ("userId", "movieId")
    assert report["counts"]["below_threshold"] == 1


def test_parquet_log_with_typed_columns(spark, tmp_path):
    path = str(tmp_path / "log.parquet")
    spark.createDataFrame(
        [(1, 7, "2024-01-02 00:00:00", 2.0), (1, 8, "2024-01-01 00:00:00", None), (2, 7, None, 1.0)],
        "user int, item long, at string, w double",
    ).selectExpr("user", "item", "cast(at as timestamp) as at", "w").write.parquet(path)
    output = str(tmp_path / "out")
    run_histories(spark, HistoriesConfig(input=path, output=output, time_column="at", weight_column="w"))
    assert _rows(spark, f"{output}/sequences") == [("1", ["7"], [2.0])]
    with open(f"{output}/report.json", encoding="utf-8") as handle:
        counts = json.load(handle)["counts"]
    assert (counts["bad_weight"], counts["bad_time"]) == (1, 1)


def _fails(capsys, argv, output, message):
    assert main(argv + ["--output", str(output), *QUIET]) == 2
    assert capsys.readouterr().err == f"embedpipe histories: error: {message}\n"
    assert not output.exists()


def test_ties_in_time_keep_the_order_of_files_and_lines(spark, tmp_path):
    """Equal timestamps fall back to the input position: files in path order, then line order."""
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "b.csv").write_text("user,item,ts\nu1,m4,5\nu1,m5,5\n")
    (logs / "a.csv").write_text("user,item,ts\nu1,m3,5\nu1,m1,5\nu1,m2,1\n")
    output = str(tmp_path / "out")
    assert main(["histories", "--input", str(logs), "--output", output, "--time-column", "ts", *QUIET]) == 0
    assert _rows(spark, f"{output}/sequences") == [("u1", ["m2", "m3", "m1", "m4", "m5"], [1.0] * 5)]


def test_bad_inputs(spark, capsys, tmp_path):
    log_file = tmp_path / "events.csv"
    log_file.write_text(EVENTS)
    out = tmp_path / "out"
    missing = tmp_path / "missing.csv"
    _fails(capsys, ["histories", "--input", str(missing)], out, f"input not found: {missing}")
    _fails(capsys, ["histories", "--input", str(log_file), "--time-column", "when"], out,
           f"input {log_file} lacks required columns (missing: user (user_column), item (item_column), "
           "when (time_column); present: uid, movie, ts, stars)")
    _fails(capsys, ["histories", "--input", str(log_file), "--rating-threshold", "3"], out,
           "config key 'rating_threshold' needs weight_column (the rating column to compare)")
    _fails(capsys, ["histories", "--input", str(log_file), *EVENT_COLUMNS, "--set", "rating_threshold=10"], out,
           f"no interactions left in {log_file} (12 rows read: 1 missing user, 1 missing item, 1 bad weight, "
           "1 bad time, 8 below threshold)")
    _fails(capsys, ["histories", "--input", str(log_file), *EVENT_COLUMNS, "--min-count", "4"], out,
           f"empty item vocabulary: no item of {log_file} has at least min_count=4 interactions; "
           "the most frequent item, 'm2', has 3")
    known = ", ".join(sorted(f.name for f in dataclasses.fields(HistoriesConfig)))
    _fails(capsys, ["histories", "--input", str(log_file), "--set", "nope=1"], out,
           f"unknown config key 'nope' (known keys: {known})")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["events.csv"]


@pytest.mark.parametrize("fmt", ["udata", "parquet"])
def test_wrong_explicit_format_is_one_line(spark, capsys, tmp_path, fmt):
    log_file = tmp_path / "events.csv"
    log_file.write_text(EVENTS)
    argv = ["histories", "--input", str(log_file), "--format", fmt, "--output", str(tmp_path / "out"), *QUIET]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("embedpipe histories: error: ") and err.count("\n") == 1
    assert not (tmp_path / "out").exists()
