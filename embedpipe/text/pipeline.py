"""``embedpipe tokenize``: the one place where reading, transforming and writing meet.

Output directory (replaced atomically; nothing is written when the job fails)::

    tokens/      doc_id string, tokens array<string>        every token, document order
    vocab/       token, id, count, doc_freq                 ids 0..V-1 by count desc, token asc
    bow/         doc_id, features (SparseVector of size V), indices array<int>, values array<double>
    onehot/      doc_id, value, index, features             only with one_hot_column
    report.json  what was read, dropped, kept, and how it was tokenized

Two frames are persisted (memory, spilling to disk) while the job runs and released at the end:
the tokenized documents (read and tokenized once, then written, counted and vectorised) and the
per-document term counts (the corpus's only big shuffle, used by the vocabulary and the vectors).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from embedpipe import schema
from embedpipe.errors import EmptyResultError
from embedpipe.jobconfig import INPUT_FORMATS, TokenizeConfig
from embedpipe.readers import ROW, read_input, resolve_input
from embedpipe.storage import HadoopFS, atomic_output
from embedpipe.text.documents import (
    CATEGORY,
    DROP_REASONS,
    count_documents,
    kept_documents,
    select_documents,
    tokenize_documents,
)
from embedpipe.text.tokenizer import load_stop_words
from embedpipe.text.vectors import one_hot_vectors, sparse_vectors, vocabulary_entries
from embedpipe.text.vocabulary import TF, assign_ids, key_statistics, term_frequencies, write_vocabulary

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)


def run_tokenize(spark: SparkSession, config: TokenizeConfig) -> dict[str, Any]:
    """Tokenize ``config.input`` and write tokens, vocabulary, bag-of-words (and one-hot) vectors.

    Returns a summary (documents, tokens, vocabulary size, output path). Raises InputError /
    SchemaError for a missing input or column, EmptyResultError when no document has a token or no
    token reaches ``min_count``.
    """
    from pyspark import StorageLevel

    started = time.monotonic()
    config.validate()  # also when called directly, not through the CLI
    settings = config.tokenizer()
    source = resolve_input(
        spark, config.input, config.format, allowed=INPUT_FORMATS, csv_delimiter=config.csv_delimiter
    )
    stop_words = load_stop_words(spark, settings.stop_words)
    documents = select_documents(
        read_input(spark, source, csv_header=config.csv_header),
        source,
        text_column=config.text_column,
        id_column=config.id_column,
        one_hot_column=config.one_hot_column,
        max_chars=config.max_document_chars,
    )
    tokenized = tokenize_documents(documents, settings, stop_words).persist(StorageLevel.MEMORY_AND_DISK)
    persisted: list[DataFrame] = [tokenized]
    try:
        counts = count_documents(tokenized, check_duplicate_ids=config.id_column is not None)
        _log_counts(source.path, counts, started)
        if counts["documents"] == 0:
            raise EmptyResultError(_no_documents_message(config, counts))
        kept = kept_documents(tokenized)
        frequencies = term_frequencies(kept, row=ROW, sequence=schema.TOKENS).persist(StorageLevel.MEMORY_AND_DISK)
        persisted.append(frequencies)
        statistics = key_statistics(frequencies)
        vocabulary = assign_ids(statistics, min_count=config.min_count, max_size=config.max_vocab_size)
        vocabulary = vocabulary.persist(StorageLevel.MEMORY_AND_DISK)
        persisted.append(vocabulary)
        vocab_size = vocabulary.count()
        if vocab_size == 0:
            raise EmptyResultError(_empty_vocabulary_message(config, statistics))
        log.info("vocabulary: %d tokens (min_count=%d, max_vocab_size=%s)", vocab_size, config.min_count,
                 config.max_vocab_size)
        categories = None
        if config.one_hot_column is not None:
            categories = _one_hot_categories(kept, config.one_hot_column, config.input)
            persisted.append(categories.frame)
        # Every check that can fail has run: from here on the job only writes.
        with atomic_output(spark, config.output) as staging:
            kept.select(schema.DOC_ID, schema.TOKENS).write.mode("error").parquet(f"{staging}/{schema.TOKENS_DIR}")
            write_vocabulary(vocabulary, f"{staging}/{schema.VOCAB_DIR}")
            entries = vocabulary_entries(
                frequencies, vocabulary, key=ROW, key_column=schema.TOKEN, value=TF, vocab_size=vocab_size
            )
            bow = sparse_vectors(kept.select(ROW, schema.DOC_ID), entries, key=ROW, size=vocab_size)
            bow.select(schema.DOC_ID, schema.FEATURES, schema.INDICES, schema.VALUES).write.mode("error").parquet(
                f"{staging}/{schema.BOW_DIR}"
            )
            if categories is not None:
                one_hot = one_hot_vectors(kept.select(schema.DOC_ID, CATEGORY), categories.frame,
                                          key=schema.DOC_ID, category=CATEGORY, size=categories.size)
                one_hot.write.mode("error").parquet(f"{staging}/{schema.ONEHOT_DIR}")
            one_hot_report = categories.report() if categories is not None else None
            report = _report(config, source.format, counts, vocab_size, one_hot_report)
            HadoopFS(spark).write_text(f"{staging}/{schema.REPORT_FILE}", json.dumps(report, indent=2) + "\n")
    finally:
        for frame in persisted:
            frame.unpersist()
    elapsed = time.monotonic() - started
    log.info("tokenize wrote %s: %d documents, %d tokens, vocabulary %d in %.1fs (%.0f documents/s)",
             config.output, counts["documents"], counts["tokens"], vocab_size, elapsed,
             counts["documents"] / max(elapsed, 1e-9))
    return {
        "output": config.output,
        "documents": counts["documents"],
        "tokens": counts["tokens"],
        "vocab_size": vocab_size,
    }


@dataclass(frozen=True)
class _Categories:
    """The values of the one-hot column (a vocabulary: token = value, id) and their counts."""

    column: str
    frame: DataFrame
    size: int
    nulls: int

    def report(self) -> dict[str, Any]:
        return {"column": self.column, "values": self.size, "null_values": self.nulls}


def _one_hot_categories(kept: DataFrame, column: str, input_path: str) -> _Categories:
    """Ids of the one-hot column's values over the kept documents: frequency desc, then value."""
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    frequencies = (
        kept.where(F.col(CATEGORY).isNotNull())
        .groupBy(F.col(CATEGORY).alias(schema.TOKEN))
        .agg(F.count(F.lit(1)).alias(schema.COUNT), F.count(F.lit(1)).alias(schema.DOC_FREQ))
    )
    frame = assign_ids(frequencies, min_count=1, max_size=None).persist(StorageLevel.MEMORY_AND_DISK)
    size = frame.count()
    if size == 0:
        frame.unpersist()
        raise EmptyResultError(f"one_hot_column '{column}' of {input_path} is NULL in every kept document")
    nulls = kept.where(F.col(CATEGORY).isNull()).count()
    if nulls:
        log.warning("one-hot column %r is NULL in %d documents (written with an all-zero vector)", column, nulls)
    log.info("one-hot column %r: %d distinct values", column, size)
    return _Categories(column=column, frame=frame, size=size, nulls=nulls)


def _no_documents_message(config: TokenizeConfig, counts: dict[str, int]) -> str:
    details = [f"{counts['null_documents']} NULL", f"{counts['empty_documents']} without tokens"]
    for key, label in (("malformed_rows", "malformed"), ("null_ids", "without id")):
        if counts[key]:
            details.append(f"{counts[key]} {label}")
    return f"no document in {config.input} has a token ({counts['rows_read']} rows read: {', '.join(details)})"


def _empty_vocabulary_message(config: TokenizeConfig, statistics: DataFrame) -> str:
    from pyspark.sql import functions as F

    top = statistics.orderBy(F.col(schema.COUNT).desc(), F.col(schema.TOKEN).asc()).first()
    most = f"; the most frequent token, {top[schema.TOKEN]!r}, occurs {top[schema.COUNT]} times" if top else ""
    return f"empty vocabulary: no token of {config.input} occurs at least min_count={config.min_count} times{most}"


def _log_counts(path: str, counts: dict[str, int], started: float) -> None:
    log.info("read %s: %d rows, %d documents kept, %d tokens (%.1fs)", path, counts["rows_read"],
             counts["documents"], counts["tokens"], time.monotonic() - started)
    for reason in (*DROP_REASONS, "undecodable_lines", "truncated_documents", "duplicate_ids"):
        if counts[reason]:
            log.warning("%s: %d %s", path, counts[reason], reason.replace("_", " "))


def _report(
    config: TokenizeConfig, fmt: str, counts: dict[str, int], vocab_size: int, one_hot: dict[str, Any] | None
) -> dict[str, Any]:
    return {
        "kind": "tokenize",
        "input": config.input,
        "format": fmt,
        "text_column": config.text_column if fmt != "text" else None,
        "id_column": config.id_column,
        "tokenizer": dataclasses.asdict(config.tokenizer()),
        "min_count": config.min_count,
        "max_vocab_size": config.max_vocab_size,
        "max_document_chars": config.max_document_chars,
        "documents": counts["documents"],
        "counts": {
            "rows_read": counts["rows_read"],
            "null_documents": counts["null_documents"],
            "empty_documents": counts["empty_documents"],
            "undecodable_lines": counts["undecodable_lines"],
            "truncated_documents": counts["truncated_documents"],
            "malformed_rows": counts["malformed_rows"],
            "null_ids": counts["null_ids"],
            "duplicate_ids": counts["duplicate_ids"],
        },
        "tokens": counts["tokens"],
        "vocab_size": vocab_size,
        "one_hot": one_hot,
    }
