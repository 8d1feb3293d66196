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


def bag_of_words(rows: DataFrame, vocabulary: pa.Array, *, sequence: str) -> DataFrame:
    """Append ``indices``/``values``/``features``: each row's ``sequence`` counted over ``vocabulary``.

    ``vocabulary`` holds the keys in id order (key ``i`` has id ``i``); keys outside it are left out.
    Each row's tokens are all in that row, so no shuffle is needed: one ``mapInArrow`` pass looks a
    whole Arrow batch of tokens up at once (``pyarrow.compute.index_in``) and counts (row, id) pairs
    with one NumPy ``unique``, giving ascending indices and their counts, as :func:`sparse_vectors`
    would, without grouping the corpus by row. The vocabulary travels in the task closure (Spark
    broadcasts a large one), so callers keep it to :data:`BROADCAST_MAX_ROWS` keys.
    """
    from pyspark.ml.linalg import VectorUDT
    from pyspark.sql.types import ArrayType, DoubleType, IntegerType, StructField, StructType

    size = len(vocabulary)
    out_schema = StructType([
        *[field for field in rows.schema.fields if field.name != sequence],
        StructField(schema.INDICES, ArrayType(IntegerType(), containsNull=False), nullable=False),
        StructField(schema.VALUES, ArrayType(DoubleType(), containsNull=False), nullable=False),
        StructField(schema.FEATURES, VectorUDT(), nullable=False),
    ])

    def count(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        import numpy as np
        import pyarrow as pa
        import pyarrow.compute as pc

        for batch in batches:
            n = batch.num_rows
            tokens = batch.column(sequence)
            lengths = pc.list_value_length(tokens).fill_null(0).to_numpy(zero_copy_only=False)
            ids = pc.index_in(pc.list_flatten(tokens).cast(vocabulary.type), value_set=vocabulary)
            known = ids.is_valid().to_numpy(zero_copy_only=False)
            rows_of = np.repeat(np.arange(n, dtype=np.int64), lengths)[known]
            pairs, counts = np.unique(rows_of * size + ids.drop_null().to_numpy(), return_counts=True)
            offsets = np.searchsorted(pairs // size, np.arange(n + 1)).astype(np.int32)
            indices = pa.ListArray.from_arrays(pa.array(offsets), pa.array((pairs % size).astype(np.int32)))
            values = pa.ListArray.from_arrays(pa.array(offsets), pa.array(counts.astype(np.float64)))
            vector = pa.StructArray.from_arrays(
                [pa.array(np.zeros(n, dtype=np.int8)), pa.array(np.full(n, size, dtype=np.int32)), indices, values],
                names=["type", "size", "indices", "values"],
            )
            kept = [name for name in batch.schema.names if name != sequence]
            yield pa.RecordBatch.from_arrays(
                [*(batch.column(name) for name in kept), indices, values, vector],
                names=[*kept, schema.INDICES, schema.VALUES, schema.FEATURES],
            )

    return rows.mapInArrow(count, out_schema)


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
