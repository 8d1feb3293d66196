"""Key frequencies and vocabularies with deterministic ids (shared by tokens and items).

A vocabulary is ``token string, id bigint, count bigint, doc_freq bigint`` (:data:`schema.VOCAB_DDL`):
keys seen at least ``min_count`` times, at most ``max_size`` of them, with ids ``0..V-1`` by
count descending, then key ascending, so two runs over the same data give the same ids whatever
the partitioning. Everything is a Spark aggregation; nothing corpus-sized reaches the driver.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from embedpipe import schema

if TYPE_CHECKING:
    from collections.abc import Iterator

    import pyarrow as pa
    from pyspark.sql import DataFrame

#: Per-(row, key) occurrence count, the input of both the vocabulary and the sparse vectors.
TF = "tf"


def term_frequencies(frame: DataFrame, *, row: str, sequence: str) -> DataFrame:
    """``row, token, tf``: how often each token occurs in each row's ``sequence`` array.

    Computed once and used twice (corpus counts and bag-of-words), it is the only shuffle of the
    corpus: Spark's partial aggregation already merges repeats inside each partition.
    """
    from pyspark.sql import functions as F

    return (
        frame.select(row, F.explode(sequence).alias(schema.TOKEN))
        .groupBy(row, schema.TOKEN)
        .agg(F.count(F.lit(1)).alias(TF))
    )


def sequence_statistics(frame: DataFrame, *, sequence: str) -> DataFrame:
    """``token, count, doc_freq`` of the tokens in each row's ``sequence`` array, without a shuffle of the corpus.

    Each row's tokens are all in that row, so one ``mapInArrow`` pass can count a whole Arrow batch at
    once: the batch's tokens are dictionary-encoded, occurrences counted with ``bincount`` and
    (row, token) pairs made distinct with one sort for the document frequency. Only one
    row per distinct token per batch leaves the task, and Spark sums them by token; counting exploded
    (row, token) rows instead shuffles the whole corpus (docs/decisions.md, "the vocabulary counted per
    Arrow batch").
    """
    from pyspark.sql import functions as F
    from pyspark.sql.types import LongType, StringType, StructField, StructType

    partial_schema = StructType([
        StructField(schema.TOKEN, StringType()),  # nullability as key_statistics gives (one vocabulary schema)
        StructField(schema.COUNT, LongType(), nullable=False),
        StructField(schema.DOC_FREQ, LongType(), nullable=False),
    ])

    def count(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        import numpy as np
        import pyarrow as pa
        import pyarrow.compute as pc

        from embedpipe.distinct import sorted_distinct

        for batch in batches:
            tokens = batch.column(sequence)
            flat = pc.list_flatten(tokens)
            if len(flat) == 0:
                continue
            rows = pc.list_parent_indices(tokens).to_numpy().astype(np.int64)
            encoded = pc.dictionary_encode(flat)
            keys = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)
            distinct = len(encoded.dictionary)
            occurrences = np.bincount(keys, minlength=distinct)
            documents = np.bincount(sorted_distinct(rows * distinct + keys) % distinct, minlength=distinct)
            yield pa.RecordBatch.from_arrays(
                [encoded.dictionary.cast(pa.string()), pa.array(occurrences), pa.array(documents)],
                schema=pa.schema([(schema.TOKEN, pa.string()), (schema.COUNT, pa.int64(), False),
                                  (schema.DOC_FREQ, pa.int64(), False)]),
            )

    return (
        frame.select(sequence)
        .mapInArrow(count, partial_schema)
        .groupBy(schema.TOKEN)
        .agg(F.sum(schema.COUNT).cast("bigint").alias(schema.COUNT),
             F.coalesce(F.sum(schema.DOC_FREQ), F.lit(0)).cast("bigint").alias(schema.DOC_FREQ))
    )


def key_statistics(frequencies: DataFrame, *, weight: str = TF) -> DataFrame:
    """``token, count, doc_freq`` from ``row, token, <weight>``: total occurrences and rows holding the key."""
    from pyspark.sql import functions as F

    return frequencies.groupBy(schema.TOKEN).agg(
        F.sum(weight).cast("bigint").alias(schema.COUNT),
        F.count(F.lit(1)).cast("bigint").alias(schema.DOC_FREQ),
    )


def assign_ids(statistics: DataFrame, *, min_count: int, max_size: int | None) -> DataFrame:
    """The vocabulary: keys with ``count >= min_count``, the ``max_size`` most frequent, ids 0..V-1.

    The ids come from ``row_number`` over one window ordered by (count desc, token asc), with no
    partition key: ids are global, and the frame is vocabulary-sized (already aggregated), so one
    sorted partition is the simplest correct choice, and nothing reaches the driver. Spark logs a
    "No Partition Defined for Window operation" warning for it; here that is expected. With
    ``max_size`` set, Spark keeps only the top rows of each input partition before that sort (a
    window group limit).
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    order = Window.orderBy(F.col(schema.COUNT).desc(), F.col(schema.TOKEN).asc())
    ranked = statistics.where(F.col(schema.COUNT) >= min_count).withColumn(
        schema.ID, (F.row_number().over(order) - 1).cast("bigint")
    )
    if max_size is not None:
        ranked = ranked.where(F.col(schema.ID) < max_size)
    return ranked.select(
        F.col(schema.TOKEN).cast("string").alias(schema.TOKEN),
        schema.ID,
        schema.COUNT,
        schema.DOC_FREQ,
    )


def write_vocabulary(vocabulary: DataFrame, path: str) -> None:
    """Write the vocabulary as one Parquet file sorted by id (it is small; readers like one file)."""
    vocabulary.repartition(1).sortWithinPartitions(schema.ID).write.mode("error").parquet(path)
