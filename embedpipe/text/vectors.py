"""Sparse vectors (Spark ML ``SparseVector`` columns) built without row-at-a-time Python.

Indices and values are assembled in Spark SQL: (index, value) structs are grouped per row with
``collect_list``, sorted with ``array_sort`` and split with ``transform``. Spark SQL cannot build a
``VectorUDT`` value itself, so one last step does: a vector is stored as the struct
``<type: tinyint, size: int, indices: array<int>, values: array<double>>`` (type 0 = sparse), and a
``mapInArrow`` function wraps the two arrays into that struct a whole Arrow batch at a time
(vectorised; no Python loop over rows) and declares the column as ``VectorUDT``. Rejected
alternatives: a Python UDF (one call per row), ``spark.createDataFrame(df.rdd, schema)`` (pickles
every row), JVM internals (private API).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from embedpipe import schema

if TYPE_CHECKING:
    from collections.abc import Iterator

    import pyarrow as pa
    from pyspark.sql import DataFrame

INDEX = "index"
VALUE = "value"
_ENTRY = "__entry"
_ENTRY_TYPE = "struct<index:int,value:double>"

#: A vocabulary (or category list) up to this many rows is broadcast to the join with the corpus;
#: above it Spark picks the join (a broadcast is built on the driver, so it must stay small).
BROADCAST_MAX_ROWS = 1_000_000


def maybe_broadcast(frame: DataFrame, rows: int) -> DataFrame:
    """``frame`` with a broadcast hint when it has at most :data:`BROADCAST_MAX_ROWS` rows."""
    from pyspark.sql import functions as F

    return F.broadcast(frame) if rows <= BROADCAST_MAX_ROWS else frame


def with_sparse_vector(
    frame: DataFrame,
    *,
    size: int,
    indices: str = schema.INDICES,
    values: str = schema.VALUES,
    output: str = schema.FEATURES,
) -> DataFrame:
    """Append ``output``, a SparseVector of ``size`` made from the ``indices``/``values`` arrays.

    Indices must be ascending, distinct and below ``size``, and neither array NULL (callers build
    them that way); the columns of ``frame`` pass through unchanged.
    """
    from pyspark.ml.linalg import VectorUDT
    from pyspark.sql.types import StructField, StructType

    out_schema = StructType([*frame.schema.fields, StructField(output, VectorUDT(), nullable=False)])

    def build(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        # Closes over plain values only (size and names), so it pickles cleanly.
        import numpy as np
        import pyarrow as pa

        for batch in batches:
            n = batch.num_rows
            vector = pa.StructArray.from_arrays(
                [
                    pa.array(np.zeros(n, dtype=np.int8)),
                    pa.array(np.full(n, size, dtype=np.int32)),
                    batch.column(indices).cast(pa.list_(pa.int32())),
                    batch.column(values).cast(pa.list_(pa.float64())),
                ],
                names=["type", "size", "indices", "values"],
            )
            yield pa.RecordBatch.from_arrays([*batch.columns, vector], names=[*batch.schema.names, output])

    return frame.mapInArrow(build, out_schema)


def sparse_vectors(rows: DataFrame, entries: DataFrame, *, key: str, size: int) -> DataFrame:
    """One SparseVector per row of ``rows``, from ``entries`` (``key``, ``index``, ``value``).

    ``rows`` holds ``key`` (unique) and any columns to carry along (e.g. ``doc_id``); rows without
    entries get an empty vector. ``(key, index)`` must be unique in ``entries``. Result: ``key``,
    the carried columns, ``indices`` (ascending int), ``values`` (double), ``features``.

    Rows and entries are unioned and grouped once, instead of grouping the entries and left-joining
    the rows back, which would shuffle both sides a second time.
    """
    from pyspark.sql import functions as F

    carried = [c for c in rows.columns if c != key]
    entry = F.struct(F.col(INDEX).cast("int").alias(INDEX), F.col(VALUE).cast("double").alias(VALUE))
    from_entries = entries.select(
        key, *[F.lit(None).cast(rows.schema[c].dataType).alias(c) for c in carried], entry.alias(_ENTRY)
    )
    from_rows = rows.select(key, *carried, F.lit(None).cast(_ENTRY_TYPE).alias(_ENTRY))
    grouped = (
        from_rows.unionByName(from_entries)
        .groupBy(key)
        .agg(
            *[F.first(c, ignorenulls=True).alias(c) for c in carried],
            F.array_sort(F.collect_list(_ENTRY)).alias(_ENTRY),  # collect_list skips the NULL placeholders
        )
    )
    arrays = grouped.select(
        key,
        *carried,
        F.transform(_ENTRY, lambda e: e[INDEX]).alias(schema.INDICES),
        F.transform(_ENTRY, lambda e: e[VALUE]).alias(schema.VALUES),
    )
    return with_sparse_vector(arrays, size=size)


def vocabulary_entries(
    frequencies: DataFrame, vocabulary: DataFrame, *, key: str, key_column: str, value: str, vocab_size: int
) -> DataFrame:
    """``key, index, value``: ``frequencies`` (``key``, ``key_column``, ``value``) joined to vocabulary ids.

    Keys outside the vocabulary drop out here (inner join).
    """
    from pyspark.sql import functions as F

    ids = maybe_broadcast(
        vocabulary.select(F.col(schema.TOKEN).alias(key_column), F.col(schema.ID).alias(INDEX)), vocab_size
    )
    return frequencies.join(ids, key_column).select(key, INDEX, F.col(value).alias(VALUE))


def one_hot_vectors(
    rows: DataFrame, categories: DataFrame, *, key: str, category: str, size: int
) -> DataFrame:
    """``key, value, index, features``: each row's category as a one-hot SparseVector of ``size``.

    ``categories`` is a vocabulary of the category values (``token``, ``id``). A NULL category gets
    a NULL index and an all-zero vector, so every row keeps its place.
    """
    from pyspark.sql import functions as F

    ids = maybe_broadcast(
        categories.select(F.col(schema.TOKEN).alias(category), F.col(schema.ID).cast("int").alias(INDEX)), size
    )
    joined = rows.select(key, category).join(ids, category, "left")
    present = F.col(INDEX).isNotNull()
    arrays = joined.select(
        key,
        F.col(category).alias(VALUE),
        INDEX,
        F.when(present, F.array(F.col(INDEX))).otherwise(F.array().cast("array<int>")).alias(schema.INDICES),
        F.when(present, F.array(F.lit(1.0))).otherwise(F.array().cast("array<double>")).alias(schema.VALUES),
    )
    return with_sparse_vector(arrays, size=size).select(key, VALUE, INDEX, schema.FEATURES)
