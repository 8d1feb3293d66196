"""Documents from an input frame: id, cleaned text, tokens, and why a row was dropped.

Pure DataFrame -> DataFrame transforms (usable with ``df.transform``) plus one aggregation that
counts what happened to every row, for the report. Rows are never silently lost: each one is
either kept or has a ``__drop`` reason, counted in ``report.json``. Binary data (a PNG or gzip file
renamed ``.txt``) is refused rather than counted: its bytes would otherwise decode to U+FFFD plus
stray ASCII fragments that pass as tokens. A NUL character marks it -- it never occurs in text.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from embedpipe import schema
from embedpipe.errors import ConfigError, InputError
from embedpipe.jobconfig import TokenizerSettings
from embedpipe.readers import (
    CORRUPT_RECORD,
    FILE,
    LINE,
    ROW,
    TEXT_VALUE,
    InputSource,
    require_columns,
    require_scalar,
)
from embedpipe.text.tokenizer import tokenize_column

if TYPE_CHECKING:
    from collections.abc import Collection

    from pyspark.sql import DataFrame

TEXT = "__text"
CATEGORY = "__category"
DROP = "__drop"
TRUNCATED = "__truncated"
UNDECODABLE = "__undecodable"
BINARY = "__binary"
_MALFORMED = "__malformed"

#: Why a row is not a document, in the order the reasons are checked (each row gets the first).
DROP_REASONS = ("malformed_rows", "null_ids", "null_documents", "empty_documents")
REPLACEMENT_CHARACTER = "\ufffd"
NUL = "\u0000"


def select_documents(
    frame: DataFrame,
    source: InputSource,
    *,
    text_column: str,
    id_column: str | None,
    one_hot_column: str | None,
    max_chars: int,
) -> DataFrame:
    """``__row, doc_id, __text, __truncated, __undecodable, __binary, __malformed[, __category]`` from an input.

    Plain text: one document per line, ``doc_id`` = ``<file>:<line>`` (1-based line, file relative
    to the input directory). Tabular inputs: ``text_column``, and ``doc_id`` from ``id_column`` or
    the row's 0-based position in the input. Text is made valid UTF-8 (bad bytes become U+FFFD,
    which no token contains) and cut to ``max_chars`` characters.
    """
    from pyspark.sql import functions as F

    if source.format == "text":
        if id_column is not None:
            raise ConfigError(
                f"config key 'id_column' needs a tabular input; {source.path} is plain text "
                "(documents are identified as <file>:<line>)"
            )
        if one_hot_column is not None:
            raise ConfigError(f"config key 'one_hot_column' needs a tabular input; {source.path} is plain text")
        text = F.col(TEXT_VALUE)
        doc_id = F.concat(F.col(FILE), F.lit(":"), (F.col(LINE) + 1).cast("string"))
    else:
        require_columns(
            frame,
            {"text_column": text_column, "id_column": id_column, "one_hot_column": one_hot_column},
            source=source,
        )
        for key, column in (("text_column", text_column), ("id_column", id_column), ("one_hot_column", one_hot_column)):
            if column is not None:
                require_scalar(frame, column, key, source=source)
        text = F.col(f"`{text_column}`").cast("string")
        doc_id = F.col(f"`{id_column}`").cast("string") if id_column else F.col(ROW).cast("string")
    valid = F.make_valid_utf8(text)
    truncated = F.coalesce(F.length(valid) > max_chars, F.lit(False))
    malformed = F.col(CORRUPT_RECORD).isNotNull() if CORRUPT_RECORD in frame.columns else F.lit(False)
    columns = [
        F.col(ROW),
        doc_id.alias(schema.DOC_ID),
        F.when(truncated, F.substring(valid, 1, max_chars)).otherwise(valid).alias(TEXT),
        truncated.alias(TRUNCATED),
        F.coalesce(valid.contains(REPLACEMENT_CHARACTER), F.lit(False)).alias(UNDECODABLE),
        F.coalesce(valid.contains(NUL), F.lit(False)).alias(BINARY),
        malformed.alias(_MALFORMED),
    ]
    if one_hot_column is not None:
        columns.append(F.col(f"`{one_hot_column}`").cast("string").alias(CATEGORY))
    return frame.select(*columns)


def tokenize_documents(
    documents: DataFrame, settings: TokenizerSettings, stop_words: Collection[str] = ()
) -> DataFrame:
    """Replace ``__text`` by ``tokens`` and add ``__drop`` (NULL for kept documents)."""
    from pyspark.sql import functions as F

    tokens = tokenize_column(F.col(TEXT), settings, stop_words)
    drop = (
        F.when(F.col(_MALFORMED), F.lit("malformed_rows"))
        .when(F.col(schema.DOC_ID).isNull(), F.lit("null_ids"))
        .when(F.col(TEXT).isNull(), F.lit("null_documents"))
        .when(F.size(schema.TOKENS) == 0, F.lit("empty_documents"))
    )
    others = [c for c in documents.columns if c not in (TEXT, _MALFORMED)]
    return documents.withColumn(schema.TOKENS, tokens).select(*others, schema.TOKENS, drop.alias(DROP))


def kept_documents(tokenized: DataFrame) -> DataFrame:
    """The documents that have at least one token (no ``__drop`` reason)."""
    from pyspark.sql import functions as F

    return tokenized.where(F.col(DROP).isNull())


def count_documents(tokenized: DataFrame, *, check_duplicate_ids: bool) -> dict[str, Any]:
    """One aggregation over the tokenized rows: rows read, kept, dropped by reason, flags, tokens.

    Returns a report-sized dict (the only thing collected). ``duplicate_ids`` needs a distinct
    count, so it is only computed when ids come from the input (generated ids are unique).
    Raises InputError naming the first document (``<file>:<line>`` for text) when any holds binary data.
    """
    from pyspark.sql import functions as F

    kept = F.col(DROP).isNull()
    aggregates = [
        F.count(F.lit(1)).alias("rows_read"),
        F.count_if(kept).alias("documents"),
        F.sum(F.when(kept, F.size(schema.TOKENS))).alias("tokens"),
        F.count_if(F.col(UNDECODABLE)).alias("undecodable_lines"),
        F.count_if(F.col(TRUNCATED)).alias("truncated_documents"),
        *[F.count_if(F.col(DROP) == reason).alias(reason) for reason in DROP_REASONS],
        F.count_if(F.col(BINARY)).alias("binary_documents"),
        F.min_by(F.col(schema.DOC_ID), F.when(F.col(BINARY), F.col(ROW))).alias("first_binary"),
    ]
    if check_duplicate_ids:
        aggregates.append(F.count_distinct(F.when(kept, F.col(schema.DOC_ID))).alias("distinct_ids"))
    row = tokenized.agg(*aggregates).collect()[0].asDict()
    first_binary = row.pop("first_binary")
    if row["binary_documents"]:
        raise InputError(
            f"input is not text: {row['binary_documents']} documents contain NUL bytes (binary data), the first "
            f"is {first_binary}; remove binary files from the input"
        )
    del row["binary_documents"]
    counts = {key: int(row[key] or 0) for key in row}
    counts["duplicate_ids"] = counts["documents"] - counts.pop("distinct_ids") if check_duplicate_ids else 0
    return counts
