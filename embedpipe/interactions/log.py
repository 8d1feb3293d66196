"""Interaction logs: which columns hold what, and the cleaning every row goes through.

Pure transforms (DataFrame in, DataFrame out). Every row either becomes an interaction or gets
one ``__drop`` reason, checked in this order: ``missing_user``, ``missing_item``, ``bad_weight``
(NULL, non-numeric, NaN or infinite, when a weight column is used), ``bad_time`` (NULL or not a
number/timestamp, when a time column is used), ``below_threshold`` (weight < rating_threshold).
So ``rows_read`` = ``interactions`` + the sum of the reasons. (A JSON line Spark cannot parse has
no user, so it counts as ``missing_user``.)
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from embedpipe import schema
from embedpipe.jobconfig import HistoriesConfig
from embedpipe.readers import ROW, InputSource, data_columns, require_columns, require_scalar

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame
    from pyspark.sql.types import DataType

log = logging.getLogger(__name__)

WEIGHT = "__weight"
TIME = "__time"
DROP = "__drop"
DROP_REASONS = ("missing_user", "missing_item", "bad_weight", "bad_time", "below_threshold")

#: MovieLens ``ratings.csv`` names, used when the user/item columns are left at their defaults
#: and the input has no such columns.
MOVIELENS_ALIASES = {"user": "userId", "item": "movieId"}


@dataclass(frozen=True)
class LogColumns:
    """The input columns holding each part of an interaction (time and weight are optional)."""

    user: str
    item: str
    time: str | None
    weight: str | None


def resolve_log_columns(frame: DataFrame, source: InputSource, config: HistoriesConfig) -> LogColumns:
    """The columns to use, after the MovieLens aliases; SchemaError if one is missing or not scalar."""
    present = data_columns(frame)
    defaults = {"user": config.user_column, "item": config.item_column}
    resolved = {}
    for role, column in defaults.items():
        alias = MOVIELENS_ALIASES[role]
        if column == role and column not in present and alias in present:
            log.info("using MovieLens column %r as the %s column of %s", alias, role, source.path)
            column = alias
        resolved[role] = column
    columns = LogColumns(
        user=resolved["user"], item=resolved["item"], time=config.time_column, weight=config.weight_column
    )
    keys = {"user_column": columns.user, "item_column": columns.item,
            "time_column": columns.time, "weight_column": columns.weight}
    require_columns(frame, keys, source=source)
    for key, name in keys.items():
        if name is not None:
            require_scalar(frame, name, key, source=source)
    return columns


def _identifier(column: Column) -> Column:
    """An id as a trimmed string; empty becomes NULL (a missing id)."""
    from pyspark.sql import functions as F

    text = F.trim(column.cast("string"))
    return F.when(text != "", text)


def _number(column: Column, data_type: DataType) -> Column:
    """A finite double, or NULL for anything else (never an error, whatever ANSI mode says)."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import StringType

    value = F.trim(column).try_cast("double") if isinstance(data_type, StringType) else column.try_cast("double")
    return F.when(~F.isnan(value) & (F.abs(value) != F.lit(float("inf"))), value)


def _time_key(column: Column, data_type: DataType) -> Column:
    """Seconds (double) to order by: numbers as they are, timestamps/dates and parseable strings
    (e.g. ``2024-01-31 12:00:00``) as Unix time; NULL when neither."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import DateType, StringType, TimestampNTZType, TimestampType

    if isinstance(data_type, (TimestampType, TimestampNTZType, DateType)):
        return F.unix_micros(column.cast("timestamp")) / 1e6
    if isinstance(data_type, StringType):
        text = F.trim(column)
        return F.coalesce(_number(text, data_type), F.unix_micros(F.try_to_timestamp(text)) / 1e6)
    return _number(column, data_type)


def clean_interactions(
    frame: DataFrame, columns: LogColumns, *, rating_threshold: float | None
) -> DataFrame:
    """``__row, user, item, __weight, __time, __drop`` (``__time`` NULL without a time column).

    The weight is the weight column as a double, or 1.0 per interaction without one.
    """
    from pyspark.sql import functions as F

    def column(name: str) -> Column:
        return F.col(f"`{name}`")

    user = _identifier(column(columns.user))
    item = _identifier(column(columns.item))
    if columns.weight is not None:
        weight = _number(column(columns.weight), frame.schema[columns.weight].dataType)
    else:
        weight = F.lit(1.0)
    if columns.time is not None:
        time = _time_key(column(columns.time), frame.schema[columns.time].dataType)
    else:
        time = F.lit(None).cast("double")
    cleaned = frame.select(
        ROW, user.alias(schema.USER), item.alias(schema.ITEM), weight.alias(WEIGHT), time.alias(TIME)
    )
    below = F.col(WEIGHT) < rating_threshold if rating_threshold is not None else F.lit(False)
    drop = (
        F.when(F.col(schema.USER).isNull(), F.lit("missing_user"))
        .when(F.col(schema.ITEM).isNull(), F.lit("missing_item"))
        .when(F.col(WEIGHT).isNull(), F.lit("bad_weight"))
        .when(F.lit(columns.time is not None) & F.col(TIME).isNull(), F.lit("bad_time"))
        .when(below, F.lit("below_threshold"))
    )
    return cleaned.withColumn(DROP, drop)


def kept_interactions(cleaned: DataFrame) -> DataFrame:
    from pyspark.sql import functions as F

    return cleaned.where(F.col(DROP).isNull())


def count_interactions(cleaned: DataFrame) -> dict[str, Any]:
    """One aggregation: rows read, interactions kept, distinct users, and rows dropped per reason."""
    from pyspark.sql import functions as F

    kept = F.col(DROP).isNull()
    row = cleaned.agg(
        F.count(F.lit(1)).alias("rows_read"),
        F.count_if(kept).alias("interactions"),
        F.count_distinct(F.when(kept, F.col(schema.USER))).alias("users"),
        *[F.count_if(F.col(DROP) == reason).alias(reason) for reason in DROP_REASONS],
    ).collect()[0]
    return {key: int(value or 0) for key, value in row.asDict().items()}
