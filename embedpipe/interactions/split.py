"""The holdout split: which (user, item) pairs are kept out of training for recommendation evaluation.

Pure transforms over the kept interactions of :func:`embedpipe.interactions.log.clean_interactions`.
The split is made on distinct (user, item) pairs, never on single interactions: every interaction
of a held-out item leaves the training part, so a re-watched item cannot be both a training item
and the truth to predict. Per user, the distinct items are ranked

* ``last``: by when the user first met the item, latest first (ties: later input row first), so
  the held-out items are the ones the user discovered last;
* ``random``: by ``xxhash64(seed, user, item)`` (ties: item id), a seeded shuffle that does not
  depend on partitioning or input order;

and the first ``holdout_items`` are held out, for users with at least ``holdout_items +
min_train_items`` distinct items; other users keep everything in training. With a ``fraction``
instead, a user with ``n`` distinct items holds out ``floor(fraction * n + 0.5)`` of them (the
recommendation protocol's "latest 20%"), if that is at least one and leaves ``min_train_items``. Every method is then
trained on the same training part and evaluated against the same held-out items.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from embedpipe import schema
from embedpipe.interactions.log import TIME
from embedpipe.readers import ROW

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

HOLDOUT_MODES = ("none", "random", "last")
PAIR_INTERACTIONS = "interactions"  # per held-out (user, item): how many interactions left training
_RANK = "__holdout_rank"
_DISTINCT = "__holdout_distinct"
_FIRST_TIME = "__first_time"
_FIRST_ROW = "__first_row"


@dataclass(frozen=True)
class HoldoutSettings:
    """How to split: ``mode`` (random or last), items (or ``fraction``) held out per user, training items kept."""

    mode: str
    items: int
    min_train_items: int
    seed: int
    fraction: float | None = None


def heldout_pairs(kept: DataFrame, settings: HoldoutSettings) -> DataFrame:
    """``user, item, interactions, __holdout_rank``: the held-out pairs (rank 1 = first held out)."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    if settings.mode not in ("random", "last"):
        raise ValueError(f"holdout mode must be random or last, got {settings.mode!r}")
    pairs = kept.groupBy(schema.USER, schema.ITEM).agg(
        F.count(F.lit(1)).alias(PAIR_INTERACTIONS),
        F.min(TIME).alias(_FIRST_TIME),
        F.min(ROW).alias(_FIRST_ROW),
    )
    if settings.mode == "last":
        order = [F.col(_FIRST_TIME).desc(), F.col(_FIRST_ROW).desc()]
    else:
        order = [F.xxhash64(F.lit(settings.seed), F.col(schema.USER), F.col(schema.ITEM)), F.col(schema.ITEM)]
    ranked = pairs.withColumn(_RANK, F.row_number().over(Window.partitionBy(schema.USER).orderBy(*order)))
    ranked = ranked.withColumn(_DISTINCT, F.count(F.lit(1)).over(Window.partitionBy(schema.USER)))
    if settings.fraction is None:
        count = F.lit(settings.items)
    else:  # round half up in doubles: 0.2 x 5 items is 1, not 0.999...
        count = F.floor(F.col(_DISTINCT) * F.lit(float(settings.fraction)) + F.lit(0.5 + 1e-9))
    held = ranked.where(
        (count >= 1) & (F.col(_DISTINCT) - count >= settings.min_train_items) & (F.col(_RANK) <= count)
    )
    return held.select(schema.USER, schema.ITEM, PAIR_INTERACTIONS, _RANK)


def training_interactions(kept: DataFrame, held: DataFrame) -> DataFrame:
    """The kept interactions minus every interaction of a held-out (user, item) pair."""
    return kept.join(held.select(schema.USER, schema.ITEM), [schema.USER, schema.ITEM], "left_anti")


def heldout_lists(held: DataFrame) -> DataFrame:
    """``user, items array<string>``: each split user's held-out items in holdout rank order."""
    from pyspark.sql import functions as F

    entry = F.struct(F.col(_RANK).alias("rank"), F.col(schema.ITEM).alias("item"))
    grouped = held.groupBy(schema.USER).agg(F.array_sort(F.collect_list(entry)).alias("__entries"))
    return grouped.select(schema.USER, F.transform("__entries", lambda e: e["item"]).alias(schema.ITEMS))


def holdout_counts(held: DataFrame, vocabulary: DataFrame) -> dict[str, int]:
    """Users split, pairs and interactions held out, and held-out pairs whose item has no training id."""
    from pyspark.sql import functions as F

    known = vocabulary.select(F.col(schema.TOKEN).alias(schema.ITEM), F.lit(True).alias("__known"))
    row = held.join(known, schema.ITEM, "left").agg(
        F.count_distinct(schema.USER).alias("users_split"),
        F.count(F.lit(1)).alias("heldout_pairs"),
        F.sum(PAIR_INTERACTIONS).alias("heldout_interactions"),
        F.count_if(F.col("__known").isNull()).alias("heldout_pairs_not_in_vocabulary"),
    ).collect()[0]
    return {key: int(value or 0) for key, value in row.asDict().items()}
