"""What a training method hands back to the pipeline, and small helpers several methods share.

A method trains and returns :class:`TrainedEmbeddings` (lazy DataFrames plus the parameters it
used); it never writes. The pipeline is the one place that writes tables, so every method's output
goes through the same validation, manifest and atomic commit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from embedpipe import schema
from embedpipe.arrow_vectors import matrix_to_list_array

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession


@dataclass(frozen=True)
class EmbeddingRows:
    """Rows of one table to write: ``key``, ``id``, ``count``, ``vector`` (array of ``dim`` floats).

    ``rows`` is a Spark frame, or an Arrow table on the driver (:func:`driver_rows`) when the method has
    the vectors there already: the writer then checks them in NumPy and spares the sort and the read-back.
    """

    rows: DataFrame | pa.Table
    key_kind: str
    expected_rows: int | None = None


@dataclass(frozen=True)
class ExtraTable:
    """A further key table a method produced (e.g. softmax's output item vectors) and where it goes.

    The pipeline writes it after the main table, through the same validation and atomic commit;
    ``summary_key`` names it in the job summary.
    """

    output: str
    rows: EmbeddingRows
    dim: int
    params: dict[str, Any]
    summary_key: str


@dataclass(frozen=True)
class TrainedEmbeddings:
    """A method's result: key vectors, optional row (document/user) vectors, and how they were made.

    ``path`` names the code path that actually ran (e.g. ``mllib-word2vec``, ``pca``, ``svd``);
    ``params`` are all training parameters actually used, recorded in the manifest; ``seed`` is
    the seed the method used (None for deterministic methods).
    """

    keys: EmbeddingRows
    dim: int
    params: dict[str, Any]
    path: str
    seed: int | None
    documents: EmbeddingRows | None = None
    document_params: dict[str, Any] = field(default_factory=dict)
    # Run statistics (fit seconds, words trained, ...) for the job summary and benchmarks; unlike
    # ``params`` they differ between identical runs, so they stay out of the manifest.
    stats: dict[str, Any] = field(default_factory=dict)
    extra_tables: tuple[ExtraTable, ...] = ()


def driver_rows(keys: pa.Array, counts: np.ndarray, matrix: np.ndarray, ids: np.ndarray | None = None) -> pa.Table:
    """``key, id, count, vector`` of vocabulary-sized arrays in id order (row i has id i), built in Arrow.

    The keys and counts were collected in id order already, so there is nothing to join, and the table
    stays on the driver until the writer (:func:`~embedpipe.table.write_embedding_table`) writes it.
    ``ids`` replaces 0..n-1 for a table numbered otherwise (fasttext's buckets: id = bucket number).
    """
    return pa.table({
        schema.KEY: keys.cast(pa.string()),
        schema.ID: pa.array(np.arange(len(matrix), dtype=np.int64) if ids is None else np.asarray(ids, np.int64)),
        schema.COUNT: pa.array(np.asarray(counts).astype(np.int64)),
        schema.VECTOR: matrix_to_list_array(matrix),
    })


def vectors_frame(spark: SparkSession, matrix: np.ndarray) -> DataFrame:
    """A frame ``id`` bigint (row number), ``vector`` array<float> from a driver-side (V, dim) matrix.

    For vocabulary-sized matrices only (they are on the driver already); built column-wise in
    Arrow, with no per-row Python.
    """
    table = pa.table({
        schema.ID: pa.array(np.arange(len(matrix), dtype=np.int64)),
        schema.VECTOR: matrix_to_list_array(matrix),
    })
    return spark.createDataFrame(table)


def flatten_lists(lists: pa.Array) -> tuple[np.ndarray, pa.Array]:
    """(offsets rebased to 0 as int64, flat values) of an Arrow list array.

    Honours a sliced array's offset (``.values`` alone does not), and turns null lists into empty
    ones, dropping any values a null list still owns in the buffer.
    """
    if isinstance(lists, pa.ChunkedArray):
        lists = lists.combine_chunks()
    offsets = lists.offsets.to_numpy().astype(np.int64)
    start, end = int(offsets[0]), int(offsets[-1])
    values = lists.values.slice(start, end - start)
    offsets -= start
    if lists.null_count:
        valid = np.asarray(lists.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
        lengths = np.where(valid, np.diff(offsets), 0)
        values = values.filter(pa.array(np.repeat(valid, np.diff(offsets))))
        offsets = np.concatenate([[0], np.cumsum(lengths)])
    return offsets, values
