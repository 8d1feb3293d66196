"""Recommendation baselines written as embedding tables: Spark MLlib ALS item factors and item popularity.

Both read the input's sparse matrix (``vectors/`` of a histories output: per user, the interaction
count or summed weight of each item; ``bow/`` of a tokenize output works too) and write one row per
vocabulary key, so ``embedpipe evaluate --histories`` scores them exactly like the learned methods:
a user is the mean of their training items' vectors and every item is ranked by its score.

* ``als``: ``pyspark.ml.recommendation.ALS(implicitPrefs=True)`` (Hu, Koren & Volinsky: confidence
  ``1 + alpha * r`` on the binary preference). The table holds the item factors; the user factors
  are dropped, since evaluation rebuilds users from their items like for every other method.
  Settings: ``[train.als]`` (``reg``, ``alpha``, ``iterations``; the rank is ``dim``).
* ``popularity``: a 1-D table whose only value is ``ln(1 + count)`` (training interactions). A
  user's mean of such values is positive, so ``dot`` scoring ranks every user's candidates by
  popularity (cosine would tie them all: every 1-D unit vector is 1). ``evaluate --score auto``
  scores both tables by dot product, as their models do (ALS factors' norms carry popularity).
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from embedpipe import schema
from embedpipe.errors import EmptyResultError
from embedpipe.methods.result import EmbeddingRows, TrainedEmbeddings

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from embedpipe.jobconfig import TrainConfig
    from embedpipe.methods.inputs import TrainingInput
    from embedpipe.methods.settings import ALSSettings

log = logging.getLogger(__name__)

_USER_INDEX = "__user_index"
_ITEM = "__item"
_RATING = "__rating"


def interaction_entries(matrix: DataFrame) -> DataFrame:
    """``__user_index int, __item int, __rating float`` from the sparse matrix (one row per non-zero).

    ALS needs integer user ids: rows are numbered in ``doc_id`` order with ``zipWithIndex`` (no
    single-partition window, no driver collect), so the numbering is the same on every run.
    """
    from pyspark.sql import functions as F

    users = matrix.select(schema.DOC_ID).distinct().orderBy(schema.DOC_ID)
    numbered = users.rdd.zipWithIndex().map(lambda pair: (pair[0][0], pair[1])).toDF(
        f"{schema.DOC_ID} string, {_USER_INDEX} bigint"
    )
    entries = matrix.select(schema.DOC_ID, F.explode(F.arrays_zip(schema.INDICES, schema.VALUES)).alias("e"))
    return entries.join(numbered, schema.DOC_ID).select(
        F.col(_USER_INDEX).cast("int").alias(_USER_INDEX),
        F.col(f"e.{schema.INDICES}").cast("int").alias(_ITEM),
        F.col(f"e.{schema.VALUES}").cast("float").alias(_RATING),
    )


def train_als(spark: SparkSession, config: TrainConfig, data: TrainingInput) -> TrainedEmbeddings:
    """Fit implicit-feedback ALS on the user x item matrix; the table holds the item factors."""
    from pyspark import StorageLevel
    from pyspark.ml.recommendation import ALS
    from pyspark.sql import functions as F

    settings: ALSSettings = config.settings
    entries = interaction_entries(data.matrix()).persist(StorageLevel.MEMORY_AND_DISK)
    try:
        interactions = entries.count()
        if interactions == 0:
            raise EmptyResultError(f"train input {data.path} has no interactions in its matrix")
        # One block per default-parallelism slot: MLlib's default of 10 blocks makes tiny inputs slow
        # and does not grow with a cluster.
        blocks = max(1, spark.sparkContext.defaultParallelism)
        params: dict[str, Any] = {
            **config.recorded_params(),
            "implicit_prefs": True,
            "blocks": blocks,
            "implementation": "pyspark.ml.recommendation.ALS",
            "input_kind": data.kind,
            "rating": "summed weights" if data.report.get("weight_column") else "interaction counts",
        }
        log.info("als: fitting on %d (user, %s) entries with %s", interactions, data.key_kind, params)
        estimator = ALS(
            rank=config.dim, maxIter=settings.iterations, regParam=settings.reg, alpha=settings.alpha,
            implicitPrefs=True, seed=config.seed, numUserBlocks=blocks, numItemBlocks=blocks,
            userCol=_USER_INDEX, itemCol=_ITEM, ratingCol=_RATING,
            intermediateStorageLevel="MEMORY_AND_DISK", finalStorageLevel="MEMORY_AND_DISK",
        )
        started = time.perf_counter()
        model = estimator.fit(entries)
        factors = model.itemFactors.persist(StorageLevel.MEMORY_AND_DISK)
        factor_rows = factors.count()  # forces the fit, so fit_seconds is the training time
        fit_seconds = time.perf_counter() - started
    finally:
        entries.unpersist()
    log.info("als: %d item factors in %.1f s (%.0f interactions/s per iteration)", factor_rows, fit_seconds,
             interactions * settings.iterations / max(fit_seconds, 1e-9))
    rows = data.vocab.join(factors, data.vocab[schema.ID] == factors["id"], "inner").select(
        data.vocab[schema.TOKEN].alias(schema.KEY),
        data.vocab[schema.ID],
        data.vocab[schema.COUNT],
        F.col("features").cast("array<float>").alias(schema.VECTOR),
    )
    return TrainedEmbeddings(
        keys=EmbeddingRows(rows, key_kind=data.key_kind, expected_rows=data.vocab_size),
        dim=config.dim,
        params=params,
        path="mllib-als",
        seed=config.seed,
        stats={"fit_seconds": round(fit_seconds, 3), "interactions": interactions},
    )


def popularity_rows(vocab: DataFrame) -> DataFrame:
    """``key, id, count, vector = [ln(1 + count)]`` for every vocabulary key."""
    from pyspark.sql import functions as F

    return vocab.select(
        F.col(schema.TOKEN).alias(schema.KEY), schema.ID, schema.COUNT,
        F.array(F.log1p(F.col(schema.COUNT)).cast("float")).alias(schema.VECTOR),
    )


def train_popularity(spark: SparkSession, config: TrainConfig, data: TrainingInput) -> TrainedEmbeddings:
    """Item popularity as a 1-D table (``dim`` is ignored): the baseline every method must beat."""
    if config.dim != 1:
        log.info("popularity: the table has dim 1 (ln(1 + count)); dim=%d is not used", config.dim)
    return TrainedEmbeddings(
        keys=EmbeddingRows(popularity_rows(data.vocab), key_kind=data.key_kind, expected_rows=data.vocab_size),
        dim=1,
        params={"vector": "ln(1 + count)", "count": "training interactions (the vocabulary's count)",
                "scoring": "dot", "input_kind": data.kind},
        path="popularity",
        seed=None,
    )
