"""The embedding table: one Parquet format for every method, and the one type that reads it.

A table is a directory of Parquet part files plus ``_SUCCESS`` and ``_manifest.json``. The
manifest's leading underscore keeps Spark, pyarrow, pandas and DuckDB from mistaking it for a
data file, exactly like ``_SUCCESS``; the same manifest is also stored in the Parquet footer (as
metadata of the ``vector`` column inside Spark's row schema) so a lone part file still says how it
was made. Columns: ``key`` string, ``id`` int64, ``count`` int64, ``vector`` list<float32> of
exactly ``dim`` values; one row per key, no NULL or duplicate key or id, no NaN/Inf, as many rows
as the manifest says.

Every reader holds a table to that format through one set of checks (:func:`check_table_stats`):
:class:`EmbeddingTable` (the Python API, ``evaluate``, ``neighbors`` and the ``embed`` broadcast
plan) computes them with NumPy/Arrow, :func:`check_table_spark` (the ``embed`` shuffle plan,
``publish``) and the writer with one Spark aggregation. A table breaking the format is refused with
one line naming the table and the problem, before any output is written.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from embedpipe import __version__, schema
from embedpipe.arrow_vectors import list_array_to_matrix
from embedpipe.distinct import sorted_distinct
from embedpipe.errors import EmbedpipeError, InputError, SchemaError, TableError
from embedpipe.storage import HadoopFS, atomic_output, read_parquet
from embedpipe.vectors import VectorIndex, solve_analogies, top_k_neighbours, unit_normalise

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from embedpipe.combiners import EmbedResult, KeyIndex
    from embedpipe.index.store import AnnIndex
    from embedpipe.jobconfig import TokenizerSettings
    from embedpipe.subwords import SubwordVectors

log = logging.getLogger(__name__)

FORMAT_NAME = "embedpipe.embedding_table"
FORMAT_VERSION = 1
MANIFEST_FILE = "_manifest.json"
FOOTER_KEY = "embedpipe.manifest"


def build_manifest(
    *,
    method: str,
    dim: int,
    rows: int,
    params: dict[str, Any],
    source: str,
    seed: int | None,
    tokenizer: dict[str, Any] | None = None,
    key_kind: str = "token",
) -> dict[str, Any]:
    """The record of how a table was made; every writer goes through this."""
    return {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "method": method,
        "key_kind": key_kind,
        "dim": int(dim),
        "rows": int(rows),
        "params": params,
        "tokenizer": tokenizer,
        "source": source,
        "seed": seed,
        "created_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "embedpipe_version": __version__,
        "columns": {"key": "string", "id": "int64", "count": "int64", "vector": f"list<float32>[{dim}]"},
    }


# ---------------------------------------------------------------------------------- the checks


@dataclass(frozen=True)
class TableStats:
    """What the format checks need to know about a table's rows, however they were computed.

    ``*_example`` name one offending row (``key 'x' has 3 values``), or are None when all is well.
    """

    rows: int
    null_keys: int
    distinct_keys: int
    null_ids: int
    distinct_ids: int
    bad_length: int
    non_finite: int
    duplicate_example: str | None = None
    length_example: str | None = None
    non_finite_example: str | None = None


def check_table_stats(stats: TableStats, *, dim: int, name: str, manifest_rows: int | None = None) -> None:
    """Raise a one-line TableError for the first way the rows break the format.

    ``name`` starts the message (``embedding table <path>``); ``manifest_rows`` is compared with the
    row count when the table has a manifest (a table being written does not have one yet).
    """
    def example(text: str | None) -> str:
        return f", e.g. {text}" if text else ""

    if stats.rows == 0:
        raise TableError(f"{name} has no rows")
    if stats.null_keys:
        raise TableError(f"{name} has {stats.null_keys} NULL keys")
    if stats.distinct_keys != stats.rows:
        raise TableError(f"{name} has duplicate keys ({stats.rows} rows, {stats.distinct_keys} distinct keys)"
                         f"{example(stats.duplicate_example)}")
    if stats.null_ids:
        raise TableError(f"{name} has {stats.null_ids} NULL ids")
    if stats.distinct_ids != stats.rows:
        raise TableError(f"{name} has duplicate ids ({stats.rows} rows, {stats.distinct_ids} distinct ids)")
    if stats.bad_length:
        raise TableError(f"{name} has {stats.bad_length} vectors that do not have dim = {dim} values"
                         f"{example(stats.length_example)}")
    if stats.non_finite:
        raise TableError(f"{name} has {stats.non_finite} vectors with NaN or Inf values"
                         f"{example(stats.non_finite_example)}")
    if manifest_rows is not None and stats.rows != manifest_rows:
        raise TableError(f"{name} has {stats.rows} rows but its manifest says {manifest_rows}")


def _length_text(key: Any, length: Any) -> str:
    return f"key {key!r} has {'a NULL vector' if length is None or length < 0 else f'{int(length)} values'}"


def spark_table_stats(frame: DataFrame, dim: int) -> TableStats:
    """:class:`TableStats` of a (key, id, vector) frame in one aggregation (plus one more on duplicates)."""
    from pyspark.sql import functions as F

    bad_value = F.exists(schema.VECTOR, lambda x: F.isnan(x) | (F.abs(x) == F.lit(float("inf"))))
    bad_length = F.coalesce(F.size(schema.VECTOR), F.lit(-1)) != F.lit(dim)
    row = frame.agg(
        F.count(F.lit(1)).alias("rows"),
        F.sum(F.col(schema.KEY).isNull().cast("int")).alias("null_keys"),
        F.countDistinct(schema.KEY).alias("keys"),
        F.sum(F.col(schema.ID).isNull().cast("int")).alias("null_ids"),
        F.countDistinct(schema.ID).alias("ids"),
        F.sum(bad_length.cast("int")).alias("bad_length"),
        F.min(F.when(bad_length, F.struct(F.col(schema.KEY).alias("k"), F.size(schema.VECTOR).alias("n"))))
        .alias("length_example"),
        F.sum(F.coalesce(bad_value, F.lit(False)).cast("int")).alias("non_finite"),
        F.min(F.when(bad_value, F.col(schema.KEY))).alias("non_finite_example"),
    ).first()
    rows, keys = int(row["rows"]), int(row["keys"])
    duplicate = None
    if keys != rows - int(row["null_keys"] or 0):
        first = (frame.groupBy(schema.KEY).count().where((F.col("count") > 1) & F.col(schema.KEY).isNotNull())
                 .orderBy(schema.KEY).first())
        duplicate = None if first is None else f"key {first[0]!r}"
    length_example = row["length_example"]
    return TableStats(
        rows=rows,
        null_keys=int(row["null_keys"] or 0),
        distinct_keys=keys,
        null_ids=int(row["null_ids"] or 0),
        distinct_ids=int(row["ids"]),
        bad_length=int(row["bad_length"] or 0),
        non_finite=int(row["non_finite"] or 0),
        duplicate_example=duplicate,
        length_example=None if length_example is None else _length_text(length_example["k"], length_example["n"]),
        non_finite_example=None if row["non_finite_example"] is None else f"key {row['non_finite_example']!r}",
    )


def arrow_table_stats(rows: pa.Table, dim: int) -> TableStats:
    """:class:`TableStats` of (key, id, vector) rows on the driver, vectorised (no Spark job, no per-row Python).

    The same figures and examples as :func:`spark_table_stats` (an example is the smallest offending key,
    as Spark's ``min``), so a writer gives the same one-line error whichever form its rows have.
    """
    import pyarrow.compute as pc

    keys = rows.column(schema.KEY).combine_chunks()
    ids = rows.column(schema.ID).combine_chunks()
    vectors = rows.column(schema.VECTOR).combine_chunks()
    count = rows.num_rows
    distinct_keys = pc.count_distinct(keys, mode="only_valid").as_py()
    duplicate = None
    if distinct_keys != count - keys.null_count:
        counted = pc.value_counts(keys.drop_null())
        repeated = counted.field("values").filter(pc.greater(counted.field("counts"), 1))
        duplicate = f"key {pc.min(repeated).as_py()!r}"
    lengths = pc.list_value_length(vectors).fill_null(-1).to_numpy(zero_copy_only=False)
    bad_length = lengths != dim
    values = pc.list_flatten(vectors)
    values = (values.fill_null(0.0) if values.null_count else values).to_numpy(zero_copy_only=False)
    bad_rows = np.zeros(count, dtype=bool)
    bad_values = ~np.isfinite(values)
    if bad_values.any():  # the parent index of every value only when one is bad (8 bytes a value)
        bad_rows[pc.list_parent_indices(vectors).to_numpy()[bad_values]] = True

    def smallest_key(mask: np.ndarray) -> Any:
        return pc.min(keys.filter(pa.array(mask))).as_py() if mask.any() else None

    length_key = smallest_key(bad_length)
    length_row = None if length_key is None else int(np.flatnonzero(
        bad_length & (keys.fill_null("").to_numpy(zero_copy_only=False) == length_key))[0])
    non_finite_key = smallest_key(bad_rows)
    return TableStats(
        rows=count,
        null_keys=keys.null_count,
        distinct_keys=distinct_keys,
        null_ids=ids.null_count,
        distinct_ids=pc.count_distinct(ids, mode="only_valid").as_py(),
        bad_length=int(bad_length.sum()),
        non_finite=int(bad_rows.sum()),
        duplicate_example=duplicate,
        length_example=None if length_row is None else _length_text(length_key, int(lengths[length_row])),
        non_finite_example=None if non_finite_key is None else f"key {non_finite_key!r}",
    )


# ------------------------------------------------------------------------------------ writing


def write_embedding_table(
    spark: SparkSession,
    rows: DataFrame | pa.Table,
    output: str,
    *,
    method: str,
    dim: int,
    params: dict[str, Any],
    source: str,
    seed: int | None,
    tokenizer: dict[str, Any] | None = None,
    key_kind: str = "token",
    expected_rows: int | None = None,
    inputs: Sequence[str] = (),
) -> dict[str, Any]:
    """Validate and atomically write ``rows`` (key, id, count, vector) as an embedding table.

    ``rows`` is a Spark frame, or an Arrow table on the driver (the vectors of a method that trained
    them there). A frame's staged Parquet is read back and held to the format
    (:func:`check_table_stats`) before the commit; driver rows are held to it before the write, in
    NumPy (:func:`arrow_table_stats`), and written in id order without a sort, and then only the
    staged files' Parquet footers are checked (row count, columns): the same guarantee for a small
    table without two more Spark jobs. Either way a table that exists at ``output`` is a valid one.
    ``output`` may only replace an earlier table (a directory with ``_manifest.json``), never one of
    ``inputs`` (the paths the table was made from) or a directory holding one. Returns the manifest.
    """
    from pyspark.sql import functions as F

    columns = list(rows.column_names if isinstance(rows, pa.Table) else rows.columns)
    missing = [c for c in schema.TABLE_COLUMNS if c not in columns]
    if missing:
        raise TableError(f"embedding rows lack columns {missing}; have {columns}")
    manifest = build_manifest(
        method=method, dim=dim, rows=0, params=params, source=source, seed=seed,
        tokenizer=tokenizer, key_kind=key_kind,
    )
    fs = HadoopFS(spark)
    with atomic_output(spark, output, inputs=inputs, markers=(MANIFEST_FILE,)) as staging:
        if isinstance(rows, pa.Table):
            driver_rows = _typed_arrow(rows)
            stats = arrow_table_stats(driver_rows, dim)
            check_table_stats(stats, dim=dim, name="embedding table")
            ids = driver_rows.column(schema.ID).to_numpy()
            if ids.size > 1 and not np.all(ids[1:] > ids[:-1]):  # a method's rows come in id order: no copy
                driver_rows = driver_rows.sort_by(schema.ID)
            frame = spark.createDataFrame(driver_rows)  # one partition per 10,000 rows, in id order
        else:
            frame = rows
        typed = frame.select(
            F.col(schema.KEY).cast("string").alias(schema.KEY),
            F.col(schema.ID).cast("bigint").alias(schema.ID),
            F.col(schema.COUNT).cast("bigint").alias(schema.COUNT),
            F.col(schema.VECTOR).cast("array<float>").alias(
                schema.VECTOR, metadata={FOOTER_KEY: json.dumps(manifest, sort_keys=True)}
            ),
        )
        if isinstance(rows, pa.Table):
            typed.write.mode("error").parquet(staging)
            _check_footers(fs, staging, stats.rows)
        else:
            typed.orderBy(schema.ID).write.mode("error").parquet(staging)
            stats = spark_table_stats(read_parquet(spark, staging), dim)
            check_table_stats(stats, dim=dim, name="embedding table")
        if expected_rows is not None and stats.rows != expected_rows:
            raise TableError(f"table has {stats.rows} rows, expected {expected_rows}")
        manifest["rows"] = stats.rows
        fs.write_text(f"{staging}/{MANIFEST_FILE}", json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    log.info("wrote %s table: %d rows x %d dims -> %s", method, manifest["rows"], dim, output)
    return manifest


def _typed_arrow(rows: pa.Table) -> pa.Table:
    """Driver rows in the table's column types (the casts the Spark writer applies to a frame)."""
    return pa.table({
        schema.KEY: rows.column(schema.KEY).cast(pa.string()),
        schema.ID: rows.column(schema.ID).cast(pa.int64()),
        schema.COUNT: rows.column(schema.COUNT).cast(pa.int64()),
        schema.VECTOR: rows.column(schema.VECTOR).cast(pa.list_(pa.float32())),
    })


def _check_footers(fs: HadoopFS, directory: str, rows: int) -> None:
    """Hold freshly written part files to the rows that were written: every footer readable, the columns
    of the format, ``rows`` rows in all (a truncated or lost file fails here, before the commit)."""
    footers = fs.parquet_footers(directory)
    written = sum(count for _, count, _ in footers)
    for name, _, columns in footers:
        if list(columns) != list(schema.TABLE_COLUMNS):
            raise TableError(f"embedding table part {name} has columns {list(columns)}, expected "
                             f"{list(schema.TABLE_COLUMNS)}")
    if written != rows:
        raise TableError(f"embedding table: {written} rows were written, expected {rows}")


# ---------------------------------------------------------------------------------- manifests


def _is_local(path: str) -> bool:
    return "://" not in path or path.startswith("file://")


def _filesystem(path: str) -> tuple[Any, str]:
    import pyarrow.fs as pafs

    if "://" in path or path.startswith("file:"):
        return pafs.FileSystem.from_uri(path)
    return pafs.LocalFileSystem(), path


def parse_manifest(text: str | bytes, path: str) -> dict[str, Any]:
    """The manifest of table ``path`` from its ``_manifest.json`` text; one-line TableError when it is unusable."""
    try:
        manifest = json.loads(text)
    except (ValueError, UnicodeDecodeError):
        raise TableError(f"embedding table {path}: {MANIFEST_FILE} is not valid JSON") from None
    if not isinstance(manifest, dict):
        raise TableError(f"embedding table {path}: {MANIFEST_FILE} is not a JSON object")
    if manifest.get("format") != FORMAT_NAME:
        raise TableError(f"{path}: manifest format is {manifest.get('format')!r}, expected {FORMAT_NAME!r}")
    version = manifest.get("format_version", 0)
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise TableError(
            f"{path}: table format version {version!r} is newer than this embedpipe reads ({FORMAT_VERSION}); "
            "upgrade embedpipe"
        )
    for key, low in (("dim", 1), ("rows", 0)):
        value = manifest.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise TableError(f"embedding table {path}: {MANIFEST_FILE} must give '{key}' as an integer >= {low}, "
                             f"got {value!r}")
    return manifest


def read_manifest(path: str) -> dict[str, Any]:
    """Read and check a table's ``_manifest.json`` (Spark-free, any filesystem pyarrow knows)."""
    import pyarrow.fs as pafs

    fs, root = _filesystem(path)
    root = root.rstrip("/")
    try:
        if fs.get_file_info(root).type == pafs.FileType.NotFound:
            raise InputError(f"embedding table not found: {path}")
        info = fs.get_file_info(f"{root}/{MANIFEST_FILE}")
        if info.type != pafs.FileType.File:
            raise InputError(f"{path} is not an embedpipe embedding table (no {MANIFEST_FILE})")
        with fs.open_input_stream(info.path) as stream:
            text = stream.read()
    except OSError as exc:
        raise InputError(f"cannot read embedding table {path}: {_first_line(exc)}") from None
    return parse_manifest(text, path)


def read_manifest_spark(spark: SparkSession, path: str) -> dict[str, Any]:
    """:func:`read_manifest` through the Hadoop FileSystem (any URI the cluster reads, e.g. ``s3a://``)."""
    if _is_local(path):  # no Hadoop checksum files involved: a manifest edited by hand still reads
        return read_manifest(path)
    fs = HadoopFS(spark)
    if not fs.exists(path):
        raise InputError(f"embedding table not found: {path}")
    manifest_path = f"{path.rstrip('/')}/{MANIFEST_FILE}"
    if not fs.exists(manifest_path):
        raise InputError(f"{path} is not an embedpipe embedding table (no {MANIFEST_FILE})")
    return parse_manifest(fs.read_text(manifest_path), path)


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


# ---------------------------------------------------------------------------- reading the rows


def _check_column_names(present: list[str], path: str | None) -> None:
    missing = [c for c in schema.TABLE_COLUMNS if c not in present]
    if missing:
        raise SchemaError(f"embedding table {path or '(in memory)'} lacks columns", missing=missing, present=present)


def _check_columns(table_schema: pa.Schema, path: str | None) -> None:
    _check_column_names(list(table_schema.names), path)
    vector_type = table_schema.field(schema.VECTOR).type
    if not (pa.types.is_list(vector_type) or pa.types.is_large_list(vector_type)) or not (
        pa.types.is_floating(vector_type.value_type)
    ):
        raise SchemaError(f"embedding table {path or '(in memory)'}: column 'vector' must be a list of floats, "
                          f"found {vector_type}")


def read_arrow_table(path: str) -> pa.Table:
    """The table's rows as one Arrow table (key, id, count, vector); local files are memory-mapped."""
    import pyarrow.dataset as pads
    import pyarrow.parquet as pq

    try:
        if _is_local(path):
            local = path.removeprefix("file://")
            _check_columns(pq.ParquetDataset(local).schema, path)
            return pq.read_table(local, columns=list(schema.TABLE_COLUMNS), memory_map=True)
        fs, root = _filesystem(path)
        dataset = pads.dataset(root, filesystem=fs, format="parquet")
        _check_columns(dataset.schema, path)
        return dataset.to_table(columns=list(schema.TABLE_COLUMNS))
    except (OSError, ValueError, KeyError) as exc:  # pyarrow's ArrowInvalid is a ValueError
        if isinstance(exc, EmbedpipeError):  # our own one-line errors (SchemaError is a ValueError)
            raise
        raise InputError(f"cannot read embedding table {path}: {_first_line(exc)}") from None


def read_embedding_table(path: str) -> EmbeddingTable:
    """Read and check a table directory into memory (Spark-free: pyarrow + NumPy, no per-row Python)."""
    manifest = read_manifest(path)
    table = EmbeddingTable.from_arrow(read_arrow_table(path), manifest, path=path)
    log.info("read table %s: %d keys x %d dims (method %s)", path, len(table), table.dim, manifest.get("method"))
    return table


def read_embedding_table_spark(spark: SparkSession, path: str) -> EmbeddingTable:
    """:func:`read_embedding_table` for jobs: any URI the cluster reads, rows collected through Spark's Arrow."""
    if _is_local(path):
        return read_embedding_table(path)
    manifest = read_manifest_spark(spark, path)
    frame = read_parquet(spark, path)
    _check_column_names(list(frame.columns), path)
    table = EmbeddingTable.from_arrow(frame.select(*schema.TABLE_COLUMNS).toArrow(), manifest, path=path)
    log.info("read table %s: %d keys x %d dims (method %s)", path, len(table), table.dim, manifest.get("method"))
    return table


def check_table_spark(spark: SparkSession, path: str, manifest: dict[str, Any]) -> int:
    """Hold a table too large for one machine to the format with one Spark aggregation; returns its rows."""
    frame = read_parquet(spark, path)
    _check_column_names(list(frame.columns), path)
    dim = int(manifest["dim"])
    stats = spark_table_stats(frame, dim)
    check_table_stats(stats, dim=dim, name=f"embedding table {path}", manifest_rows=int(manifest["rows"]))
    return stats.rows


# ------------------------------------------------------------------------------ the one type


@dataclass(frozen=True, eq=False)
class EmbeddingTable:
    """An embedding table in memory: the one type for lookups, neighbours, analogies, bag embeddings
    and evaluation (as gensim's ``KeyedVectors``).

    ``keys`` (list), ``ids``/``counts`` (int64) and ``vectors`` ((rows, dim) float32, read-only) are
    in table order (sorted by id, i.e. most frequent first). Construction checks the format (see
    :func:`check_table_stats`), so a table that exists is a valid one. Keys match exactly (no case
    folding) except through ``index(lowercase=True)``. The unit-normalised matrix and the key
    indexes are built on first use and cached.

    >>> from embedpipe.lookup import open_table
    >>> table = open_table("out/demo/tables/words")                  # doctest: +SKIP
    >>> table.most_similar("paris", k=3)                               # doctest: +SKIP
    [('berlin', 0.91), ('rome', 0.89), ('madrid', 0.88)]
    >>> table.analogy("king", "man", "woman")                          # king - man + woman  # doctest: +SKIP
    ('queen', 0.83)
    >>> table.embed(["the", "cat", "sat", "cat"], combiner="mean")     # doctest: +SKIP
    """

    keys: list[str]
    ids: np.ndarray
    counts: np.ndarray
    vectors: np.ndarray
    manifest: dict[str, Any]
    path: str | None = None
    #: The rows were held to the format already (:meth:`from_arrow`): the constructor does not check them again.
    checked: bool = field(default=False, repr=False)

    def __post_init__(self) -> None:
        vectors = np.asarray(self.vectors, dtype=np.float32)
        if vectors.ndim != 2:
            raise TableError(f"{self._name}: vectors must be a (rows, dim) matrix, got shape {vectors.shape}")
        if vectors.flags.writeable:
            vectors = vectors.copy() if vectors is self.vectors else vectors
            vectors.flags.writeable = False
        keys = self.keys if isinstance(self.keys, list) else list(self.keys)
        ids = np.asarray(self.ids, dtype=np.int64)
        counts = np.asarray(self.counts, dtype=np.int64)
        if not len(keys) == ids.size == counts.size == vectors.shape[0]:
            raise TableError(f"{self._name}: keys, ids, counts and vectors differ in length "
                             f"({len(keys)}, {ids.size}, {counts.size}, {vectors.shape[0]})")
        for name, value in (("keys", keys), ("ids", ids), ("counts", counts), ("vectors", vectors)):
            object.__setattr__(self, name, value)
        if self.checked:
            return
        dim = int(self.manifest.get("dim", vectors.shape[1]))
        key_index = self._build_key_index()
        finite = np.isfinite(vectors).all(axis=1)
        non_finite = np.flatnonzero(~finite)
        stats = TableStats(
            rows=len(keys),
            null_keys=int(key_index.null_count),
            distinct_keys=key_index.distinct_count,
            null_ids=0,
            distinct_ids=int(sorted_distinct(ids).size),
            bad_length=len(keys) if vectors.shape[1] != dim else 0,
            non_finite=int(non_finite.size),
            duplicate_example=key_index.duplicate_example,
            length_example=(f"the vectors have {vectors.shape[1]} values but the manifest says dim {dim}"
                            if vectors.shape[1] != dim else None),
            non_finite_example=f"key {keys[int(non_finite[0])]!r}" if non_finite.size else None,
        )
        rows = self.manifest.get("rows")
        check_table_stats(stats, dim=dim, name=self._name, manifest_rows=None if rows is None else int(rows))

    @classmethod
    def from_arrow(cls, table: pa.Table, manifest: dict[str, Any], *, path: str | None = None) -> EmbeddingTable:
        """Check and load Arrow rows (key, id, count, vector), e.g. from a Parquet directory or a Spark frame.

        Held to the format by :func:`arrow_table_stats`, the writer's check for driver rows, so a reader
        names the same problem and example row as the writer and Spark's check would (the constructor's
        own checks are skipped). Vectorised throughout: no per-row Python.
        """
        _check_columns(table.schema, path)
        dim = int(manifest["dim"])
        rows = manifest.get("rows")
        check_table_stats(arrow_table_stats(table, dim), dim=dim, name=f"embedding table {path or '(in memory)'}",
                          manifest_rows=None if rows is None else int(rows))
        id_values = table.column(schema.ID).to_numpy()
        vector_column = table.column(schema.VECTOR).combine_chunks()
        if id_values.size > 1 and not np.all(id_values[1:] > id_values[:-1]):  # written sorted: skip the copy
            table = table.sort_by(schema.ID)
            id_values = table.column(schema.ID).to_numpy()
            vector_column = table.column(schema.VECTOR).combine_chunks()
        vectors = list_array_to_matrix(vector_column, dim)
        vectors.flags.writeable = False  # no defensive copy in the constructor
        return cls(
            keys=table.column(schema.KEY).to_pylist(),
            ids=id_values,
            counts=table.column(schema.COUNT).fill_null(0).to_numpy(),
            vectors=vectors,
            manifest=manifest,
            path=path,
            checked=True,
        )

    # ------------------------------------------------------------------------------- basics

    @property
    def _name(self) -> str:
        return f"embedding table {self.path or '(in memory)'}"

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    def __len__(self) -> int:
        return len(self.keys)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.row(key) >= 0

    def __repr__(self) -> str:
        return f"EmbeddingTable({self.path or '<memory>'}: {len(self)} keys x {self.dim} dims)"

    def _build_key_index(self) -> KeyIndex:
        from embedpipe.combiners import KeyIndex

        index = KeyIndex(self.keys, self.ids)
        self.__dict__["_key_index"] = index  # cached: the constructor's checks already built it
        return index

    @cached_property
    def _key_index(self) -> KeyIndex:
        return self._build_key_index()

    def row(self, key: str) -> int:
        """Row of ``key`` in the table, -1 if absent."""
        return int(self._key_index.rows_of_keys([key])[0])

    def rows(self, keys: Sequence[str]) -> np.ndarray:
        """Rows of ``keys`` (int64), -1 where absent."""
        return self._key_index.rows_of_keys(list(keys))

    def _require(self, keys: Sequence[str], rows: np.ndarray, what: str = "key") -> None:
        if np.any(rows < 0):
            raise KeyError(f"{what} {list(keys)[int(np.flatnonzero(rows < 0)[0])]!r} is not in the table")

    def vector(self, key: str) -> np.ndarray:
        """The vector of ``key`` (a read-only float32 view); KeyError names a missing key."""
        row = self.row(key)
        self._require([key], np.array([row]))
        return self.vectors[row]

    def vectors_of(self, keys: Sequence[str], *, oov: str = "fail") -> np.ndarray:
        """(len(keys), dim) float32 copy; ``oov='zero'`` gives zero rows for missing keys, 'fail' a KeyError,
        'subwords' their vectors composed from the table's n-gram buckets (a fasttext table; zeros for a key
        none of whose n-grams was trained)."""
        from embedpipe.combiners import check_choice

        check_choice("oov", oov, ("fail", "zero", "subwords"))
        rows = self.rows(keys)
        if oov == "fail":
            self._require(keys, rows)
        out = self.vectors[np.maximum(rows, 0)] if len(self) else np.zeros((len(rows), self.dim), np.float32)
        out[rows < 0] = 0.0
        missing = np.flatnonzero(rows < 0)
        if oov == "subwords" and missing.size:
            out[missing] = self.subwords.compose([keys[int(i)] for i in missing])[0]
        return out

    @cached_property
    def subwords(self) -> SubwordVectors:
        """The n-gram bucket vectors of a fasttext table (``<table>/_subwords``), read on first use;
        a one-line ConfigError for a table without them."""
        from embedpipe.subwords import subword_location, subword_vectors_from

        path = self.path or "(in memory)"
        return subword_vectors_from(path, self.manifest, read_embedding_table(subword_location(path, self.manifest)))

    # --------------------------------------------------------------------------- similarity

    @cached_property
    def unit(self) -> np.ndarray:
        """The unit-normalised vectors (built on first use: one more rows x dim float32 matrix)."""
        unit = unit_normalise(self.vectors)
        unit.flags.writeable = False
        return unit

    def index(self, *, lowercase: bool = False) -> VectorIndex:
        """The unit-norm index of cosine queries (cached per ``lowercase``; both share :attr:`unit`).

        ``lowercase=True`` folds case as gensim's case-insensitive evaluation does (the evaluate
        job's default); the lookup methods use exact keys.
        """
        cache = self.__dict__.setdefault("_indexes", {})
        if lowercase not in cache:
            cache[lowercase] = VectorIndex(self.keys, self.unit, lowercase)
        return cache[lowercase]

    def similarity(self, a: str, b: str) -> float:
        """Cosine similarity of two keys (KeyError names a missing one)."""
        rows = self.rows([a, b])
        self._require([a, b], rows)
        return float(self.unit[rows[0]] @ self.unit[rows[1]])

    def most_similar(self, key: str, k: int = 10) -> list[tuple[str, float]]:
        """The ``k`` keys most cosine-similar to ``key`` (itself excluded), best first.

        Uses the table's Faiss index (``embedpipe index``) when one is present and fresh, exact
        search otherwise (a stale or unreadable index is logged and skipped); scores are exact cosines.
        """
        row = self.row(key)
        self._require([key], np.array([row]))
        ann = self._ann_index
        if ann is not None:
            neighbours, cosines = ann.search(self.unit, np.array([row]), min(k, len(self) - 1))
            return [(self.keys[int(n)], float(c)) for n, c in zip(neighbours[0], cosines[0], strict=True) if n >= 0]
        neighbours, cosines = top_k_neighbours(self.unit, np.array([row]), k)
        return [(self.keys[int(n)], float(c)) for n, c in zip(neighbours[0], cosines[0], strict=True)]

    @cached_property
    def _ann_index(self) -> AnnIndex | None:
        """The fresh Faiss index beside the table's rows, loaded on first use (None: search exactly)."""
        from embedpipe.index.store import try_load_index

        return try_load_index(self.path, rows=len(self), dim=self.dim)

    def analogy(self, a: str, b: str, c: str) -> tuple[str, float] | None:
        """The key closest to ``a - b + c`` (3CosAdd on unit vectors, a, b and c excluded) and its cosine.

        ``analogy("king", "man", "woman")`` asks *man is to king as woman is to ?* and should give
        ``queen``. None when every key is excluded.
        """
        return self.analogies([(a, b, c)])[0]

    def analogies(self, questions: Sequence[tuple[str, str, str]], *,
                  oov: str = "fail") -> list[tuple[str, float] | None]:
        """:meth:`analogy` for many questions in batched matrix products (KeyError on an unknown key;
        with ``oov='subwords'`` unknown keys are composed from a fasttext table's n-grams, answers are keys)."""
        from embedpipe.combiners import check_choice

        check_choice("oov", oov, ("fail", "subwords"))
        if not questions:
            return []
        words = [w for q in questions for w in q]
        index = self.index()
        if oov == "subwords":
            from embedpipe.subwords import extended_index

            index = extended_index(index, words, self.subwords)
        flat = index.rows(words)
        self._require(words, flat)
        rows = flat.reshape(len(questions), 3)
        # solve_analogies answers b - a + c; a - b + c is the same with a and b swapped.
        predicted = solve_analogies(index, rows[:, 1], rows[:, 0], rows[:, 2], restrict_vocab=len(self),
                                    composed_from=len(self))
        unit = index.unit
        query = unit[rows[:, 0]] - unit[rows[:, 1]] + unit[rows[:, 2]]
        norms = np.linalg.norm(query, axis=1)
        results: list[tuple[str, float] | None] = []
        for i, best in enumerate(predicted):
            if best < 0:
                results.append(None)
                continue
            score = float(unit[best] @ query[i] / norms[i]) if norms[i] > 0 else 0.0
            results.append((self.keys[int(best)], score))
        return results

    # -------------------------------------------------------------------------------- embed

    @cached_property
    def table_idf(self) -> np.ndarray:
        """idf per row from the table's counts: ``ln((1 + sum(count)) / (1 + count)) + 1``."""
        from embedpipe.combiners import idf_weights

        return idf_weights(self.counts, int(np.sum(self.counts)))

    def input_idf(self, rows: Sequence[Sequence[str] | None]) -> np.ndarray:
        """idf per table row from a collection of token lists (document frequencies in ``rows``)."""
        from embedpipe.combiners import idf_weights, token_bags

        bags, dictionary = token_bags(pa.array(list(rows), type=pa.list_(pa.string())))
        table_rows = self._key_index.rows_of_keys(dictionary)[bags.codes]
        df = np.bincount(table_rows[table_rows >= 0], minlength=len(self))
        return idf_weights(df, int(np.count_nonzero(bags.valid)))

    def _idf(self, combiner: str, idf: np.ndarray | None) -> np.ndarray | None:
        if combiner != "tfidf":
            return None
        return self.table_idf if idf is None else np.asarray(idf, dtype=np.float32)

    def embed_batch(
        self,
        rows: Sequence[Sequence[str] | None] | pa.Array,
        *,
        combiner: str = "mean",
        oov: str = "skip",
        normalize: bool = False,
        idf: np.ndarray | None = None,
    ) -> EmbedResult:
        """Embed many token lists at once with the ``embed`` job's kernel (:mod:`embedpipe.combiners`).

        ``oov='fail'`` raises KeyError naming the first unknown token. ``idf`` (per table row)
        defaults to :attr:`table_idf` for the tfidf combiner.
        """
        from embedpipe.combiners import OOV_POLICIES, check_choice, check_combiner, embed_bags, token_bags

        check_combiner(combiner)
        check_choice("oov", oov, OOV_POLICIES)
        tokens = rows if isinstance(rows, pa.Array) else pa.array(list(rows), type=pa.list_(pa.string()))
        bags, dictionary = token_bags(tokens)
        dictionary_rows = self._key_index.rows_of_keys(dictionary)
        entry_rows = dictionary_rows[bags.codes] if bags.codes.size else bags.codes
        if oov == "fail" and np.any(entry_rows < 0):
            missing = dictionary[int(bags.codes[np.flatnonzero(entry_rows < 0)[0]])].as_py()
            raise KeyError(f"token {missing!r} is not in the table")
        return embed_bags(bags, entry_rows, self.vectors, combiner=combiner, oov=oov, normalize=normalize,
                          idf=self._idf(combiner, idf))

    def embed_sparse_batch(
        self,
        indices: Sequence[Sequence[int] | None] | pa.Array,
        values: Sequence[Sequence[float] | None] | pa.Array | None = None,
        *,
        combiner: str = "sum",
        oov: str = "skip",
        normalize: bool = False,
        idf: np.ndarray | None = None,
    ) -> EmbedResult:
        """Embed sparse rows whose ``indices`` are table ids (a tokenize ``bow/``'s indices and values)."""
        from embedpipe.combiners import OOV_POLICIES, check_choice, check_combiner, embed_bags, sparse_bags

        check_combiner(combiner)
        check_choice("oov", oov, OOV_POLICIES)
        if not isinstance(indices, pa.Array):
            indices = pa.array(list(indices), type=pa.list_(pa.int64()))
        if values is not None and not isinstance(values, pa.Array):
            values = pa.array(list(values), type=pa.list_(pa.float64()))
        bags = sparse_bags(indices, values)
        entry_rows = self._key_index.rows_of_ids(bags.codes)
        if oov == "fail" and np.any(entry_rows < 0):
            raise KeyError(f"index {int(bags.codes[np.flatnonzero(entry_rows < 0)[0]])} is not a table id")
        return embed_bags(bags, entry_rows, self.vectors, combiner=combiner, oov=oov, normalize=normalize,
                          idf=self._idf(combiner, idf))

    def embed(
        self,
        tokens: Sequence[str],
        *,
        combiner: str = "mean",
        oov: str = "skip",
        normalize: bool = False,
        idf: np.ndarray | None = None,
    ) -> np.ndarray | None:
        """One bag of tokens -> a float32 vector, or None when nothing was found (or ``tokens`` is empty)."""
        result = self.embed_batch([list(tokens)], combiner=combiner, oov=oov, normalize=normalize, idf=idf)
        return result.vectors[0] if result.has_vector[0] else None

    # ----------------------------------------------------------------------------- raw text

    @property
    def tokenizer(self) -> TokenizerSettings:
        """The tokenizer settings the table was trained with; TableError for item tables."""
        from embedpipe.jobconfig import TokenizerSettings

        settings = self.manifest.get("tokenizer")
        if not settings:
            raise TableError(
                f"{self._name} records no tokenizer (key_kind {self.manifest.get('key_kind')!r}); "
                "embed token lists, not raw text"
            )
        return TokenizerSettings(**settings)

    @cached_property
    def stop_words(self) -> frozenset[str]:
        """The tokenizer's stop words, read without Spark (a file, or Spark's bundled language lists)."""
        from embedpipe.text.tokenizer import read_stop_words

        return read_stop_words(self.tokenizer.stop_words)

    def tokenize(self, text: str) -> list[str]:
        """``text`` split exactly as the table's training corpus was (the manifest's tokenizer)."""
        from embedpipe.text.tokenizer import tokenize_text

        return tokenize_text(text, self.tokenizer, self.stop_words)

    def embed_text(self, text: str, **options: Any) -> np.ndarray | None:
        """:meth:`embed` of :meth:`tokenize` (options as for :meth:`embed`)."""
        return self.embed(self.tokenize(text), **options)
