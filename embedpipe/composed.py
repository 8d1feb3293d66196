"""``oov = subwords`` in the jobs: vectors for unseen words, composed from a fasttext table's n-gram buckets.

Every path composes with :meth:`embedpipe.subwords.SubwordVectors.compose` (what
``EmbeddingTable.vectors_of(oov='subwords')`` runs) or, where Spark joins the bucket rows itself, with
the same :func:`embedpipe.subwords.compose` over the rows in the same n-gram order, so a word gets the
same float32 vector everywhere.

* ``neighbors`` and ``evaluate`` compose on the driver (:func:`embedpipe.subwords.extended_index`): their
  unseen words are a handful of queries or the evaluation files' words, and the table is in memory there.
* ``embed``'s broadcast plan ships the bucket rows with the table (its size counts towards
  ``broadcast_max_mb``) and composes each Arrow batch's unseen keys in the Python worker.
* ``embed``'s shuffle plan (a table too large to broadcast, whose bucket rows are of the same order of
  size) never ships them: the distinct unseen keys are cut into ``(key, n-gram position, bucket)`` rows
  in ``mapInArrow``, joined with ``<table>/_subwords`` on the bucket id, and each key's rows are averaged
  in n-gram order (:func:`composed_keys`). See docs/decisions.md.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from embedpipe import schema
from embedpipe.arrow_vectors import list_array_to_matrix
from embedpipe.subwords import SubwordVectors, compose, subword_location, subword_vectors_from, word_buckets

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from embedpipe.table import EmbeddingTable

#: Table id given to composed keys in the shuffle plan: after every real row, as the broadcast plan
#: appends them, so both plans sum a row's vectors in the same order.
COMPOSED_ID = 2**62


def read_subword_vectors_spark(spark: SparkSession, path: str, manifest: dict[str, Any]) -> SubwordVectors:
    """The bucket rows of the table at ``path``, checked against its manifest; a one-line ConfigError
    naming ``oov`` for a table without them."""
    from embedpipe.table import read_embedding_table_spark

    return subword_vectors_from(path, manifest, read_embedding_table_spark(spark, subword_location(path, manifest)))


def attach_subword_vectors_spark(spark: SparkSession, table: EmbeddingTable, path: str) -> None:
    """Read ``table``'s bucket rows through Spark (any URI) and checked, now, before a job's work, so
    ``table.subwords`` (otherwise read from local files on first use) is that copy."""
    table.__dict__["subwords"] = read_subword_vectors_spark(spark, path, table.manifest)


def subword_bytes(spark: SparkSession, path: str, manifest: dict[str, Any]) -> int:
    """Memory of a table's trained bucket rows in a Python worker (sorted ids + vectors), from the bucket
    table's manifest; a one-line ConfigError naming ``oov`` for a table without them."""
    from embedpipe.table import read_manifest_spark

    buckets = read_manifest_spark(spark, subword_location(path, manifest))
    return int(buckets["rows"]) * (int(manifest["dim"]) * 4 + 8)


# ------------------------------------------------------------------------ embed, shuffle plan


def _gram_rows(batches: Iterator[pa.RecordBatch], *, minn: int, maxn: int, buckets: int) -> Iterator[pa.RecordBatch]:
    """Each unseen key's n-grams as (key, position, bucket) rows, duplicates kept (fastText's order)."""
    for batch in batches:
        words = batch.column(0)
        offsets, grams = word_buckets(words, minn, maxn, buckets)
        owner = np.repeat(np.arange(len(words)), np.diff(offsets))
        position = np.arange(len(grams), dtype=np.int64) - offsets[owner]
        yield pa.RecordBatch.from_arrays(
            [words.take(pa.array(owner, pa.int64())), pa.array(position, pa.int64()), pa.array(grams, pa.int64())],
            names=["key", "position", "bucket"],
        )


def _mean_rows(batches: Iterator[pa.RecordBatch], *, dim: int) -> Iterator[pa.RecordBatch]:
    """(key, vectors of its trained n-grams in n-gram order) -> (key, composed vector) via :func:`compose`."""
    for batch in batches:
        lists = batch.column(1)
        matrix = list_array_to_matrix(lists.flatten(), dim)
        offsets = np.asarray(lists.offsets.to_numpy(), dtype=np.int64) - int(lists.offsets[0].as_py())
        vectors = compose(matrix, np.arange(matrix.shape[0], dtype=np.int64), offsets)
        yield pa.RecordBatch.from_arrays(
            [batch.column(0), pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1), pa.float32()), dim)
             .cast(pa.list_(pa.float32()))],
            names=["key", "vector"],
        )


def composed_keys(spark: SparkSession, unseen: DataFrame, path: str, manifest: dict[str, Any]) -> DataFrame:
    """(key, vector) of the distinct ``unseen`` keys (one string column) that have a trained n-gram.

    A join on bucket ids with ``<table>/_subwords``, nothing broadcast; the bucket table is checked
    against the manifest first (a mismatch is a one-line error before any task runs).
    """
    from pyspark.sql import functions as F

    from embedpipe.storage import read_parquet
    from embedpipe.subwords import check_subword_manifest
    from embedpipe.table import read_manifest_spark

    location = subword_location(path, manifest)
    scheme = check_subword_manifest(manifest, read_manifest_spark(spark, location), path.rstrip("/"))
    dim = int(manifest["dim"])
    grams = unseen.toDF("key").distinct().mapInArrow(
        functools.partial(_gram_rows, minn=int(scheme["minn"]), maxn=int(scheme["maxn"]),
                          buckets=int(scheme["buckets"])),
        "key string, position bigint, bucket bigint",
    )
    rows = read_parquet(spark, location).select(F.col(schema.ID).alias("bucket"), F.col(schema.VECTOR).alias("v"))
    joined = grams.join(rows, "bucket", "inner")
    ordered = joined.groupBy("key").agg(F.array_sort(F.collect_list(F.struct("position", "v"))).alias("grams"))
    return ordered.select("key", F.col("grams.v").alias("vectors")).mapInArrow(
        functools.partial(_mean_rows, dim=dim), "key string, vector array<float>"
    )


# ---------------------------------------------------------------------- embed, broadcast plan


def rows_with_composed(dictionary: pa.Array, dictionary_rows: np.ndarray, vectors: np.ndarray,
                       subwords: SubwordVectors) -> tuple[np.ndarray, np.ndarray]:
    """(matrix row of each dictionary entry or -1, matrix) for one Arrow batch of the broadcast plan.

    The matrix is the table rows the batch uses, in table order, then the composed vectors of its
    unseen keys in key order: the order the shuffle plan sorts them in (ids, then :data:`COMPOSED_ID`
    and the key), so both plans sum a row's vectors alike.
    """
    missing = np.flatnonzero(dictionary_rows < 0)
    if not missing.size:
        return dictionary_rows, vectors
    words = dictionary.take(pa.array(missing, pa.int64())).to_pylist()
    order = sorted(range(len(words)), key=words.__getitem__)
    composed, ok = subwords.compose([words[i] for i in order])
    seen = dictionary_rows >= 0
    used, compact = np.unique(dictionary_rows[seen], return_inverse=True)
    rows = np.full(len(dictionary_rows), -1, dtype=np.int64)
    rows[seen] = compact.reshape(-1)
    rows[missing[np.asarray(order, dtype=np.int64)][ok]] = len(used) + np.arange(int(ok.sum()), dtype=np.int64)
    return rows, np.concatenate([np.asarray(vectors)[used], composed[ok]])
