"""Per-user histories from cleaned interactions: ordered item sequences and user x item counts.

Pure transforms over the output of :func:`embedpipe.interactions.log.clean_interactions`
(kept rows only).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from embedpipe import schema
from embedpipe.interactions.log import TIME, WEIGHT
from embedpipe.readers import ROW

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

INTERACTIONS = "interactions"  # per (user, item): how many
WEIGHT_SUM = "weight_sum"  # per (user, item): summed weights

_ENTRY = "__entry"


def user_sequences(interactions: DataFrame, *, by_time: bool) -> DataFrame:
    """``user, items array<string>, weights array<double>``: each user's interactions in order.

    Ordered by time (when ``by_time``), then by position in the input, which is unique, so ties
    are broken the same way on every run; the order is built with ``array_sort`` over structs
    whose fields are the sort keys, not by a per-row Python sort.
    """
    from pyspark.sql import functions as F

    keys = [F.col(TIME)] if by_time else []
    entry = F.struct(*keys, F.col(ROW), F.col(schema.ITEM).alias("item"), F.col(WEIGHT).alias("weight"))
    grouped = interactions.groupBy(schema.USER).agg(F.array_sort(F.collect_list(entry)).alias(_ENTRY))
    return grouped.select(
        schema.USER,
        F.transform(_ENTRY, lambda e: e["item"]).alias(schema.ITEMS),
        F.transform(_ENTRY, lambda e: e["weight"]).alias("weights"),
    )


def user_item_counts(interactions: DataFrame) -> DataFrame:
    """``user, token (the item), interactions, weight_sum``: one row per (user, item) pair."""
    from pyspark.sql import functions as F

    return interactions.groupBy(schema.USER, F.col(schema.ITEM).alias(schema.TOKEN)).agg(
        F.count(F.lit(1)).alias(INTERACTIONS), F.sum(WEIGHT).alias(WEIGHT_SUM)
    )
