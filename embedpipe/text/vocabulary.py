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
