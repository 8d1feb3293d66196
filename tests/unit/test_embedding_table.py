"""The one table reader, Spark-free: tables written by another tool (pyarrow + a documented manifest)
are read when they keep the format and refused with one line naming the table when they do not."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from embedpipe.errors import ConfigError, InputError, SchemaError, TableError
from embedpipe.lookup import open_table
from embedpipe.table import FORMAT_NAME, MANIFEST_FILE, EmbeddingTable, read_embedding_table

KEYS = ["cat", "dog", "mat"]
VECTORS = [[1.0, 0.0], [0.8, 0.6], [0.0, 1.0]]


def _write(path: Path, keys=KEYS, vectors=VECTORS, ids=None, manifest: dict | str | None = None) -> str:
    """A table as another tool would write it: one Parquet file and the documented manifest."""
    path.mkdir(parents=True)
    ids = list(range(len(keys))) if ids is None else ids
    pq.write_table(pa.table({
        "key": pa.array(keys, pa.string()),
        "id": pa.array(ids, pa.int64()),
        "count": pa.array([10 - i for i in range(len(keys))], pa.int64()),
        "vector": pa.array(vectors, pa.list_(pa.float32())),
    }), path / "part-0.parquet")
    if manifest is None:
        manifest = {"format": FORMAT_NAME, "format_version": 1, "method": "other-tool", "dim": 2,
                    "rows": len(keys)}
    (path / MANIFEST_FILE).write_text(manifest if isinstance(manifest, str) else json.dumps(manifest))
    return str(path)


def test_reads_a_table_written_by_another_tool(tmp_path):
    table = open_table(_write(tmp_path / "t", ids=[2, 0, 1]))
    assert isinstance(table, EmbeddingTable)
    assert table.keys == ["dog", "mat", "cat"]  # sorted by id
    assert table.vectors.dtype == np.float32 and not table.vectors.flags.writeable
    np.testing.assert_array_equal(table.vector("cat"), [1.0, 0.0])
    assert table.most_similar("cat", 1) == [("dog", pytest.approx(0.8))]
    assert table.similarity("dog", "mat") == pytest.approx(0.6)
    assert table.index() is table.index() and table.index(lowercase=True).lowercase


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("nan", "embedding table {path} has 1 vectors with NaN or Inf values, e.g. key 'dog'"),
        ("inf", "embedding table {path} has 1 vectors with NaN or Inf values, e.g. key 'dog'"),
        ("short", "embedding table {path} has 1 vectors that do not have dim = 2 values, e.g. key 'dog' has 1 values"),
        ("null_vector", "embedding table {path} has 1 vectors that do not have dim = 2 values, e.g. key 'dog' has a "
                        "NULL vector"),
        ("duplicate", "embedding table {path} has duplicate keys (3 rows, 2 distinct keys), e.g. key 'cat'"),
        ("null_key", "embedding table {path} has 1 NULL keys"),
        ("duplicate_id", "embedding table {path} has duplicate ids (3 rows, 2 distinct ids)"),
        ("rows", "embedding table {path} has 3 rows but its manifest says 4"),
        ("dim", "embedding table {path} has 3 vectors that do not have dim = 3 values, e.g. key 'cat' has 2 values"),
        ("no_manifest", "{path} is not an embedpipe embedding table (no _manifest.json)"),
        ("bad_json", "embedding table {path}: _manifest.json is not valid JSON"),
        ("no_dim", "embedding table {path}: _manifest.json must give 'dim' as an integer >= 1, got None"),
        ("missing", "embedding table not found: {path}"),
    ],
)
def test_tables_breaking_the_format_are_refused_with_one_line(tmp_path, case, message):
    path = tmp_path / "t"
    manifest = {"format": FORMAT_NAME, "format_version": 1, "dim": 2, "rows": 3}
    vectors = [list(v) for v in VECTORS]
    keys, ids = list(KEYS), None
    if case == "nan":
        vectors[1][0] = float("nan")
    elif case == "inf":
        vectors[1][1] = float("-inf")
    elif case == "short":
        vectors[1] = [1.0]
    elif case == "null_vector":
        vectors[1] = None
    elif case == "duplicate":
        keys[2] = "cat"
    elif case == "null_key":
        keys[1] = None
    elif case == "duplicate_id":
        ids = [0, 1, 1]
    elif case == "rows":
        manifest["rows"] = 4
    elif case == "dim":
        manifest["dim"] = 3
    elif case == "no_dim":
        del manifest["dim"]
    if case != "missing":
        _write(path, keys, vectors, ids, "{not json" if case == "bad_json" else manifest)
    if case == "no_manifest":
        (path / MANIFEST_FILE).unlink()
    error = InputError if case in ("no_manifest", "missing") else TableError
    with pytest.raises(error) as caught:
        read_embedding_table(str(path))
    assert str(caught.value) == message.format(path=path)
    assert isinstance(caught.value, InputError)  # every table error is an input error: exit code 2, one line


def test_the_reader_names_the_smallest_offending_key_as_the_writer_does(tmp_path):
    """The reader holds rows to the format with the writer's check (arrow_table_stats): the example is the
    smallest offending key, not the first row, whichever check finds the problem."""
    short = _write(tmp_path / "short", keys=["mat", "dog", "cat"], vectors=[[1.0], [0.8, 0.6], [0.0]])
    with pytest.raises(TableError, match=r"do not have dim = 2 values, e.g. key 'cat' has 1 values$"):
        read_embedding_table(short)
    nan = _write(tmp_path / "nan", keys=["mat", "dog", "cat"], vectors=[[np.inf, 0.0], [0.8, 0.6], [0.0, np.nan]])
    with pytest.raises(TableError, match=r"has 2 vectors with NaN or Inf values, e.g. key 'cat'$"):
        read_embedding_table(nan)


def test_missing_column_is_a_schema_error(tmp_path):
    path = tmp_path / "t"
    path.mkdir()
    pq.write_table(pa.table({"key": ["a"], "vector": pa.array([[1.0, 2.0]], pa.list_(pa.float32()))}),
                   path / "part-0.parquet")
    (path / MANIFEST_FILE).write_text(json.dumps({"format": FORMAT_NAME, "dim": 2, "rows": 1}))
    with pytest.raises(SchemaError, match=r"lacks columns \(missing: id, count; present: key, vector\)"):
        read_embedding_table(str(path))


def test_in_memory_tables_are_checked_too():
    good = EmbeddingTable(keys=["a", "b"], ids=np.array([0, 1]), counts=np.array([2, 1]),
                          vectors=np.array([[1.0, 0.0], [0.0, 1.0]]), manifest={"dim": 2, "rows": 2})
    assert good.vectors.dtype == np.float32 and good.dim == 2
    with pytest.raises(TableError, match=r"^embedding table \(in memory\) has duplicate keys"):
        EmbeddingTable(keys=["a", "a"], ids=np.array([0, 1]), counts=np.array([2, 1]),
                       vectors=np.zeros((2, 2)), manifest={"dim": 2})
    with pytest.raises(TableError, match=r"has 1 vectors with NaN or Inf values, e.g. key 'b'$"):
        EmbeddingTable(keys=["a", "b"], ids=np.array([0, 1]), counts=np.array([2, 1]),
                       vectors=np.array([[0.0, 0.0], [np.nan, 1.0]]), manifest={"dim": 2})


def test_sum_counts_repeats_and_removed_combiner_names_say_what_replaced_them(tmp_path):
    table = open_table(_write(tmp_path / "t"))
    rows = [["cat", "cat", "dog"]]
    cat, dog = table.vector("cat"), table.vector("dog")
    np.testing.assert_allclose(table.embed_batch(rows, combiner="sum").vectors[0], 2 * cat + dog)
    np.testing.assert_allclose(table.embed_batch(rows, combiner="sum_distinct").vectors[0], cat + dog)
    np.testing.assert_allclose(table.embed_batch(rows, combiner="mean").vectors[0], (2 * cat + dog) / 3)
    # Sparse rows: the values weigh (ids 0 = cat, 1 = dog).
    sparse = table.embed_sparse_batch([[0, 1]], [[2.0, 0.5]])
    np.testing.assert_allclose(sparse.vectors[0], 2 * cat + 0.5 * dog)
    with pytest.raises(ConfigError) as caught:
        table.embed(["cat"], combiner="weighted_sum")
    assert str(caught.value) == ("config key 'combiner': combiner 'weighted_sum' was removed; use 'sum' (it now "
                                 "counts every occurrence and weighs sparse values: the old weighted_sum)")


PACKAGE = Path(__file__).parents[2] / "embedpipe"


def _imports(module: str) -> set[str]:
    """Every embedpipe module ``module`` imports, at any level (function-level imports count)."""
    path = PACKAGE.joinpath(*module.split(".")[1:])
    source = (path / "__init__.py") if path.is_dir() else path.with_suffix(".py")
    found = set()
    for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("embedpipe"):
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("embedpipe"))
    return found


def _package_modules(package: str) -> list[str]:
    folder = PACKAGE / package
    return [f"embedpipe.{package}"] + [f"embedpipe.{package}.{p.stem}" for p in folder.glob("*.py")
                                       if p.stem != "__init__"]


def test_lookup_and_evaluate_do_not_import_each_other_and_the_kernels_import_neither():
    lookup = {m for module in _package_modules("lookup") for m in _imports(module)}
    assert not {m for m in lookup if m.startswith("embedpipe.evaluate")}
    for low_level in ("embedpipe.table", "embedpipe.vectors", "embedpipe.combiners"):
        below = _imports(low_level)
        assert not {m for m in below if m.startswith(("embedpipe.lookup", "embedpipe.evaluate"))}, low_level
