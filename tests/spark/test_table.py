"""The embedding table format: written atomically, validated before commit, readable everywhere."""

from __future__ import annotations

import json
import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from chispa import assert_df_equality

from embedpipe.errors import InputError, OutputError, TableError
from embedpipe.storage import atomic_output
from embedpipe.table import (
    FOOTER_KEY,
    MANIFEST_FILE,
    arrow_table_stats,
    check_table_spark,
    read_embedding_table,
    read_manifest,
    spark_table_stats,
    write_embedding_table,
)

ROWS = [("b", 1, 3, [3.0, 4.0]), ("a", 0, 5, [1.0, 2.0]), ("한국", 2, 2, [0.5, -0.5])]
DDL = "key string, id long, count long, vector array<double>"


ARROW_SCHEMA = pa.schema([("key", pa.string()), ("id", pa.int64()), ("count", pa.int64()),
                          ("vector", pa.list_(pa.float64()))])


def _write(spark, path, rows=ROWS, dim=2, *, driver=False, **kwargs):
    """Write ``rows`` as a Spark frame, or (``driver``) as the Arrow table a method builds on the driver."""
    if driver:
        given = pa.Table.from_pylist([dict(zip(ARROW_SCHEMA.names, r, strict=True)) for r in rows], ARROW_SCHEMA)
    else:
        given = spark.createDataFrame(rows, DDL)
    return write_embedding_table(spark, given, str(path), method="test", dim=dim,
                                 params={"p": 1}, source="src", seed=3, **kwargs)


@pytest.mark.parametrize("driver", [False, True], ids=["frame", "driver-rows"])
def test_round_trip_without_spark(spark, tmp_path, driver):
    out = tmp_path / "table"
    manifest = _write(spark, out, driver=driver)
    assert manifest["rows"] == 3 and manifest["dim"] == 2
    table = read_embedding_table(str(out))
    assert table.keys == ["a", "b", "한국"]
    assert table.vectors.dtype == np.float32 and table.vectors.shape == (3, 2)
    np.testing.assert_array_equal(table.vectors[2], [0.5, -0.5])
    assert list(table.counts) == [5, 3, 2]
    on_disk = read_manifest(str(out))
    assert on_disk == table.manifest
    assert {"format", "format_version", "method", "dim", "rows", "params", "tokenizer", "source", "seed",
            "created_at", "embedpipe_version"} <= set(on_disk)
    assert (out / "_SUCCESS").exists() and (out / MANIFEST_FILE).exists()


@pytest.mark.parametrize("driver", [False, True], ids=["frame", "driver-rows"])
def test_readable_by_spark_pandas_duckdb_and_footer(spark, tmp_path, driver):
    import duckdb
    import pandas as pd

    out = tmp_path / "table"
    _write(spark, out, driver=driver)
    expected = spark.createDataFrame(
        [(r[0], r[1], r[2], [float(x) for x in r[3]]) for r in ROWS],
        "key string, id long, count long, vector array<float>",
    )
    assert_df_equality(spark.read.parquet(str(out)), expected, ignore_row_order=True, ignore_nullable=True,
                       ignore_metadata=True)
    assert sorted(pd.read_parquet(out)["key"]) == ["a", "b", "한국"]
    dims = duckdb.sql(f"select distinct len(vector) from read_parquet('{out}/*.parquet')").fetchall()
    assert dims == [(2,)]
    part = next(p for p in os.listdir(out) if p.endswith(".parquet"))
    footer = pq.read_schema(out / part).metadata[b"org.apache.spark.sql.parquet.row.metadata"].decode()
    vector_field = next(f for f in json.loads(footer)["fields"] if f["name"] == "vector")
    assert json.loads(vector_field["metadata"][FOOTER_KEY])["method"] == "test"


BAD_ROWS = [
    ([("a", 0, 1, [1.0, float("nan")])], 2, "1 vectors with NaN or Inf"),
    ([("a", 0, 1, [1.0, float("inf")])], 2, "1 vectors with NaN or Inf"),
    ([("a", 0, 1, [1.0, 2.0]), ("a", 1, 1, [1.0, 2.0])], 2, "duplicate keys"),
    ([("a", 0, 1, [1.0, 2.0]), ("b", 1, 1, [1.0])], 2,
     "^embedding table has 1 vectors that do not have dim = 2 values, e.g. key 'b' has 1 values$"),
    ([("a", 0, 1, [1.0, 2.0]), ("b", 0, 1, [1.0, 2.0])], 2, r"duplicate ids \(2 rows, 1 distinct ids\)"),
    ([], 2, "^embedding table has no rows$"),
]


@pytest.mark.parametrize(("rows", "dim", "message"), BAD_ROWS)
def test_invalid_tables_are_never_committed(spark, tmp_path, rows, dim, message):
    out = tmp_path / "table"
    _write(spark, out)  # a previous good version
    before = read_embedding_table(str(out))
    with pytest.raises(TableError, match=message):
        _write(spark, out, rows=rows, dim=dim)
    after = read_embedding_table(str(out))
    assert after.keys == before.keys and after.manifest == before.manifest
    assert sorted(os.listdir(tmp_path)) == ["table"], "no staging leftovers"


def test_invalid_driver_rows_are_never_committed(spark, tmp_path):
    out = tmp_path / "table"
    _write(spark, out, driver=True)
    before = read_embedding_table(str(out))
    with pytest.raises(TableError, match="^embedding table has 1 vectors with NaN or Inf values, e.g. key 'a'$"):
        _write(spark, out, rows=BAD_ROWS[0][0], driver=True)
    with pytest.raises(TableError, match="^table has 3 rows, expected 4$"):
        _write(spark, out, driver=True, expected_rows=4)
    after = read_embedding_table(str(out))
    assert after.keys == before.keys and after.manifest == before.manifest
    assert sorted(os.listdir(tmp_path)) == ["table"], "no staging leftovers"


@pytest.mark.slow  # ~8 s at load 9: nine Spark aggregations
def test_driver_rows_are_checked_like_a_frame(spark):
    """Driver rows are held to the format in NumPy, a frame with Spark: the same figures and examples."""
    cases = [rows for rows, _, _ in BAD_ROWS] + [
        [("b", 0, 1, [1.0, 2.0]), ("a", 1, 1, [float("nan"), 0.0]), ("c", 2, 1, [float("-inf"), 0.0])],
        [("b", 0, 1, [1.0, 2.0]), ("c", 1, 1, [1.0]), ("a", 2, 1, None), (None, 3, 1, [1.0, 2.0])],
        [("b", 0, 1, [1.0, 2.0]), ("b", 1, 1, [1.0, 2.0]), ("a", 2, 1, [1.0, 2.0]), ("a", None, 1, [1.0, 2.0])],
    ]
    for rows in cases:
        driver = pa.Table.from_pylist([dict(zip(ARROW_SCHEMA.names, r, strict=True)) for r in rows], ARROW_SCHEMA)
        assert arrow_table_stats(driver, 2) == spark_table_stats(spark.createDataFrame(rows, DDL), 2), rows


def test_written_files_are_checked_by_their_footers(spark, tmp_path):
    """Driver rows are not read back: the staged files' footers must hold every row, or nothing commits."""
    from embedpipe.storage import HadoopFS
    from embedpipe.table import _check_footers

    out = tmp_path / "table"
    _write(spark, out, driver=True)
    fs = HadoopFS(spark)
    _check_footers(fs, str(out), 3)
    with pytest.raises(TableError, match="^embedding table: 3 rows were written, expected 4$"):
        _check_footers(fs, str(out), 4)
    part = next(p for p in out.iterdir() if p.suffix == ".parquet")
    part.write_bytes(part.read_bytes()[:-20])  # a truncated file: no footer
    with pytest.raises(OutputError, match=f"^cannot read the Parquet footer of {out}/{part.name}: "):
        _check_footers(fs, str(out), 3)


@pytest.mark.parametrize("driver", [False, True], ids=["frame", "driver-rows"])
def test_expected_row_count_checked(spark, tmp_path, driver):
    with pytest.raises(TableError, match="table has 3 rows, expected 4"):
        _write(spark, tmp_path / "t", expected_rows=4, driver=driver)
    assert not (tmp_path / "t").exists()


def test_rerun_overwrites(spark, tmp_path):
    out = tmp_path / "table"
    _write(spark, out)
    _write(spark, out, rows=[("z", 0, 1, [9.0, 9.0])])
    assert read_embedding_table(str(out)).keys == ["z"]


def test_atomic_output_keeps_previous_on_failure_and_cleans_stale(spark, tmp_path):
    target = tmp_path / "out"
    target.mkdir()
    (target / "old.txt").write_text("previous")
    (target / "_SUCCESS").write_text("")  # an earlier output (a marker), so it may be replaced
    stale = tmp_path / "out.__embedpipe_staging-deadbeef"
    stale.mkdir()
    unrelated = tmp_path / "other.__embedpipe_staging-x"
    unrelated.mkdir()
    with pytest.raises(RuntimeError):
        with atomic_output(spark, str(target)) as staging:
            os.makedirs(staging.removeprefix("file:"))
            raise RuntimeError("boom")
    assert (target / "old.txt").read_text() == "previous"
    assert not stale.exists(), "stale staging of this target removed"
    assert unrelated.exists(), "never touches other targets' files"
    assert sorted(os.listdir(tmp_path)) == ["other.__embedpipe_staging-x", "out"]


def test_reader_errors(tmp_path):
    with pytest.raises(InputError, match="is not an embedpipe embedding table"):
        read_embedding_table(str(tmp_path))
    (tmp_path / MANIFEST_FILE).write_text(json.dumps({"format": "other"}))
    with pytest.raises(TableError, match="manifest format is 'other'"):
        read_manifest(str(tmp_path))


def test_spark_and_numpy_readers_apply_the_same_checks(spark, broken_tables):
    """The shuffle plan and publish check with Spark, the other readers with NumPy: one line, the same line."""
    for case, path in broken_tables.items():
        with pytest.raises(TableError) as numpy_error:
            read_embedding_table(path)
        with pytest.raises(TableError) as spark_error:
            check_table_spark(spark, path, read_manifest(path))
        assert str(numpy_error.value) == str(spark_error.value), case
        assert str(spark_error.value).startswith(f"embedding table {path} has ")


def test_read_parquet_takes_the_schema_spark_wrote(spark, tmp_path):
    """The footer's schema instead of Spark's inference job: the same frame; files without it are inferred."""
    from embedpipe.storage import HadoopFS, read_parquet

    out = tmp_path / "table"
    _write(spark, out, driver=True)
    assert HadoopFS(spark).spark_schema_json(str(out)) is not None
    ours, inferred = read_parquet(spark, str(out)), spark.read.parquet(str(out))
    assert ours.schema == inferred.schema
    assert [f.metadata for f in ours.schema] == [f.metadata for f in inferred.schema]  # the manifest in the footer
    assert_df_equality(ours, inferred, ignore_row_order=True)
    plain = tmp_path / "plain"
    plain.mkdir()
    pq.write_table(pa.table({"x": [1, 2]}), plain / "part-0.parquet")
    assert HadoopFS(spark).spark_schema_json(str(plain)) is None
    assert read_parquet(spark, str(plain)).schema == spark.read.parquet(str(plain)).schema
