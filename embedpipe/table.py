"""The embedding table: one Parquet format for every method, readable with or without Spark.

A table is a directory of Parquet part files plus ``_SUCCESS`` and ``_manifest.json``. The
manifest's leading underscore keeps Spark, pyarrow, pandas and DuckDB from mistaking it for a
data file, exactly like ``_SUCCESS``; the same manifest is also stored in the Parquet footer (as
metadata of the ``vector`` column inside Spark's row schema) so a lone part file still says how it
was made. Columns: ``key`` string, ``id`` int64, ``count`` int64, ``vector`` list<float32> of
exactly ``dim`` values; one row per key, no NaN/Inf.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.fs as pafs

from embedpipe import __version__, schema
from embedpipe.errors import InputError, TableError
from embedpipe.storage import HadoopFS, atomic_output

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

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


def write_embedding_table(
    spark: SparkSession,
    rows: DataFrame,
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

    The staged Parquet is read back and checked (dimension, unique keys, finite values, row count)
    before the commit, so a table that exists at ``output`` is always a valid one. ``output`` may
    only replace an earlier table (a directory with ``_manifest.json``), never one of ``inputs``
    (the paths the table was made from) or a directory holding one. Returns the manifest.
    """
    from pyspark.sql import functions as F

    missing = [c for c in schema.TABLE_COLUMNS if c not in rows.columns]
    if missing:
        raise TableError(f"embedding rows lack columns {missing}; have {rows.columns}")
    manifest = build_manifest(
        method=method, dim=dim, rows=0, params=params, source=source, seed=seed,
        tokenizer=tokenizer, key_kind=key_kind,
    )
    typed = rows.select(
        F.col(schema.KEY).cast("string").alias(schema.KEY),
        F.col(schema.ID).cast("bigint").alias(schema.ID),
        F.col(schema.COUNT).cast("bigint").alias(schema.COUNT),
        F.col(schema.VECTOR).cast("array<float>").alias(
            schema.VECTOR, metadata={FOOTER_KEY: json.dumps(manifest, sort_keys=True)}
        ),
    ).orderBy(schema.ID)
    fs = HadoopFS(spark)
    with atomic_output(spark, output, inputs=inputs, markers=(MANIFEST_FILE,)) as staging:
        typed.write.mode("error").parquet(staging)
        stats = _check_staged_table(spark, staging, dim)
        if expected_rows is not None and stats["rows"] != expected_rows:
            raise TableError(f"table has {stats['rows']} rows, expected {expected_rows}")
        manifest["rows"] = stats["rows"]
        fs.write_text(f"{staging}/{MANIFEST_FILE}", json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    log.info("wrote %s table: %d rows x %d dims -> %s", method, manifest["rows"], dim, output)
    return manifest


def _check_staged_table(spark: SparkSession, path: str, dim: int) -> dict[str, int]:
    from pyspark.sql import functions as F

    staged = spark.read.parquet(path)
    bad_value = F.exists(schema.VECTOR, lambda x: F.isnan(x) | (F.abs(x) == F.lit(float("inf"))))
    row = staged.agg(
        F.count(F.lit(1)).alias("rows"),
        F.countDistinct(schema.KEY).alias("keys"),
        F.sum(F.col(schema.KEY).isNull().cast("int")).alias("null_keys"),
        F.min(F.size(schema.VECTOR)).alias("min_dim"),
        F.max(F.size(schema.VECTOR)).alias("max_dim"),
        F.sum(bad_value.cast("int")).alias("non_finite"),
    ).first()
    rows = int(row["rows"])
    if rows == 0:
        raise TableError("embedding table would be empty")
    if row["null_keys"]:
        raise TableError(f"embedding table has {row['null_keys']} NULL keys")
    if int(row["keys"]) != rows:
        raise TableError(f"embedding table has duplicate keys ({rows} rows, {row['keys']} distinct keys)")
    if row["min_dim"] != dim or row["max_dim"] != dim:
        raise TableError(f"embedding vectors must have {dim} values, found {row['min_dim']}..{row['max_dim']}")
    if row["non_finite"]:
        raise TableError(f"embedding table has {row['non_finite']} vectors with NaN or Inf values")
    return {"rows": rows}


# ---------------------------------------------------------------------------- reading without Spark


@dataclass(frozen=True)
class EmbeddingTable:
    """An embedding table in memory: keys, ids, counts and an (N, dim) float32 matrix, sorted by id."""

    keys: list[str]
    ids: np.ndarray
    counts: np.ndarray
    vectors: np.ndarray
    manifest: dict[str, Any]

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    def __len__(self) -> int:
        return len(self.keys)


def _filesystem(path: str) -> tuple[pafs.FileSystem, str]:
    if "://" in path or path.startswith("file:"):
        return pafs.FileSystem.from_uri(path)
    return pafs.LocalFileSystem(), path


def read_manifest(path: str) -> dict[str, Any]:
    """Read a table's ``_manifest.json`` (Spark-free)."""
    fs, root = _filesystem(path)
    info = fs.get_file_info(f"{root.rstrip('/')}/{MANIFEST_FILE}")
    if info.type != pafs.FileType.File:
        raise InputError(f"{path} is not an embedpipe embedding table (no {MANIFEST_FILE})")
    with fs.open_input_stream(info.path) as stream:
        manifest = json.loads(stream.read().decode("utf-8"))
    if manifest.get("format") != FORMAT_NAME:
        raise TableError(f"{path}: manifest format is {manifest.get('format')!r}, expected {FORMAT_NAME!r}")
    if int(manifest.get("format_version", 0)) > FORMAT_VERSION:
        raise TableError(
            f"{path}: table format version {manifest['format_version']} is newer than this embedpipe reads "
            f"({FORMAT_VERSION}); upgrade embedpipe"
        )
    return manifest


def read_arrow_table(path: str) -> pa.Table:
    """The table's rows as one Arrow table (key, id, count, vector), sorted by id."""
    fs, root = _filesystem(path)
    dataset = pads.dataset(root, filesystem=fs, format="parquet")
    return dataset.to_table(columns=list(schema.TABLE_COLUMNS)).sort_by(schema.ID)


def read_embedding_table(path: str) -> EmbeddingTable:
    """Load a table into NumPy through pyarrow, with no per-row Python work."""
    manifest = read_manifest(path)
    table = read_arrow_table(path)
    dim = int(manifest["dim"])
    vectors_column = table.column(schema.VECTOR).combine_chunks()
    flat = vectors_column.flatten().to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
    if flat.size != table.num_rows * dim:
        raise TableError(f"{path}: vectors do not all have {dim} values")
    return EmbeddingTable(
        keys=table.column(schema.KEY).to_pylist(),
        ids=table.column(schema.ID).to_numpy(),
        counts=table.column(schema.COUNT).to_numpy(),
        vectors=flat.reshape(table.num_rows, dim),
        manifest=manifest,
    )
