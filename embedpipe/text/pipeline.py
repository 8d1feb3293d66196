"""``embedpipe tokenize``: the one place where reading, transforming and writing meet.

Output directory (replaced atomically; nothing is written when the job fails)::

    tokens/      doc_id string, tokens array<string>        every token, document order
    vocab/       token, id, count, doc_freq                 ids 0..V-1 by count desc, token asc
    bow/         doc_id, features (SparseVector of size V), indices array<int>, values array<double>
                 [, label double]                           label only with label_column (labelled rows only)
    onehot/      doc_id, value, index, features             only with one_hot_column
    report.json  what was read, dropped, kept, how it was tokenized, and seconds per stage (``stages``)

With ``label_column`` every kept document also carries its label, parsed as a double (numbers as
they are, strings trimmed and parsed); documents whose label is NULL, unparseable or not finite are
counted in ``report.json`` (``labels``) and left out of ``bow/`` only: ``tokens/`` and the
vocabulary still use their text, so unsupervised methods see the whole corpus while ``bow/`` is the
supervised matrix where every row has a label.

The tokenized documents are persisted (memory, spilling to disk) while the job runs and released at
the end: read and tokenized once, then counted, written and vectorised. Neither the vocabulary count
nor the bag-of-words shuffles the corpus (both count one Arrow batch of documents at a time); only a
vocabulary too large to ship to the tasks falls back to joining per-document term counts.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from embedpipe import schema
from embedpipe.errors import ConfigError, EmptyResultError, SchemaError
from embedpipe.jobconfig import INPUT_FORMATS, TokenizeConfig
from embedpipe.readers import ROW, InputSource, read_input, require_columns, require_scalar, resolve_input
from embedpipe.stages import StageClock
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
from embedpipe.text.vectors import (
    BROADCAST_MAX_ROWS,
    bag_of_words,
    one_hot_vectors,
    sparse_vectors,
    vocabulary_entries,
)
from embedpipe.text.vocabulary import (
    TF,
    assign_ids,
    sequence_statistics,
    term_frequencies,
    write_vocabulary,
)

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
    from pyspark.sql import functions as F

    started = time.monotonic()
    clock = StageClock()
    config.validate()  # also when called directly, not through the CLI
    settings = config.tokenizer_settings()
    source = resolve_input(
        spark, config.input, config.format, allowed=INPUT_FORMATS, csv_delimiter=config.csv_delimiter
    )
    stop_words = load_stop_words(spark, settings.stop_words)
    frame = read_input(spark, source, csv_header=config.csv_header)
    clock.lap("open")
    documents = select_documents(
        frame,
        source,
        text_column=config.text_column,
        id_column=config.id_column,
        one_hot_column=config.one_hot_column,
        max_chars=config.max_document_chars,
    )
    if config.label_column is not None:
        documents = with_labels(documents, frame, source, config.label_column)
    tokenized = tokenize_documents(documents, settings, stop_words).persist(StorageLevel.MEMORY_AND_DISK)
    persisted: list[DataFrame] = [tokenized]
    try:
        counts = count_documents(tokenized, check_duplicate_ids=config.id_column is not None)
        _log_counts(source.path, counts, started)
        clock.lap("read_tokenize")
        if counts["documents"] == 0:
            raise EmptyResultError(_no_documents_message(config, counts))
        kept = kept_documents(tokenized)
        labels = None
        if config.label_column is not None:
            labels = count_labels(kept, config.label_column)
            if labels["labelled_documents"] == 0:
                raise EmptyResultError(_no_labels_message(config, labels))
        statistics = sequence_statistics(kept, sequence=schema.TOKENS)
        vocabulary = assign_ids(statistics, min_count=config.min_count, max_size=config.max_vocab_size)
        vocabulary = vocabulary.persist(StorageLevel.MEMORY_AND_DISK)
        persisted.append(vocabulary)
        vocab_size = vocabulary.count()
        clock.lap("count")
        if vocab_size == 0:
            raise EmptyResultError(_empty_vocabulary_message(config, statistics))
        log.info("vocabulary: %d tokens (min_count=%d, max_vocab_size=%s)", vocab_size, config.min_count,
                 config.max_vocab_size)
        categories = None
        if config.one_hot_column is not None:
            categories = _one_hot_categories(kept, config.one_hot_column, config.input)
            persisted.append(categories.frame)
            clock.lap("count")
        # Every check that can fail has run: from here on the job only writes.
        with atomic_output(spark, config.output, inputs=(config.input,)) as staging:
            kept.select(schema.DOC_ID, schema.TOKENS).write.mode("error").parquet(f"{staging}/{schema.TOKENS_DIR}")
            write_vocabulary(vocabulary, f"{staging}/{schema.VOCAB_DIR}")
            clock.lap("write_tokens")
            bow_columns = [schema.DOC_ID, schema.FEATURES, schema.INDICES, schema.VALUES]
            carried = [ROW, schema.DOC_ID] if labels is None else [ROW, schema.DOC_ID, schema.LABEL]
            if vocab_size <= BROADCAST_MAX_ROWS:
                keys = vocabulary.orderBy(schema.ID).select(schema.TOKEN).toArrow().column(0).combine_chunks()
                bow = bag_of_words(kept.select(*carried, schema.TOKENS), keys, sequence=schema.TOKENS)
            else:  # too many keys to ship to every task: join the per-document counts to the ids instead
                frequencies = term_frequencies(kept, row=ROW, sequence=schema.TOKENS)
                entries = vocabulary_entries(
                    frequencies, vocabulary, key=ROW, key_column=schema.TOKEN, value=TF, vocab_size=vocab_size
                )
                bow = sparse_vectors(kept.select(*carried), entries, key=ROW, size=vocab_size)
            if labels is not None:
                # Unlabelled documents keep their place in tokens/ and the vocabulary, not in bow/.
                bow = bow.where(F.col(schema.LABEL).isNotNull())
                bow_columns.append(schema.LABEL)
            bow.select(*bow_columns).write.mode("error").parquet(f"{staging}/{schema.BOW_DIR}")
            clock.lap("encode_bow")
            if categories is not None:
                one_hot = one_hot_vectors(kept.select(schema.DOC_ID, CATEGORY), categories.frame,
                                          key=schema.DOC_ID, category=CATEGORY, size=categories.size)
                one_hot.write.mode("error").parquet(f"{staging}/{schema.ONEHOT_DIR}")
                clock.lap("encode_one_hot")
            one_hot_report = categories.report() if categories is not None else None
            report = _report(config, source.format, counts, vocab_size, one_hot_report, labels)
            report["stages"] = clock.seconds()  # up to here; the commit that follows is in the log
            HadoopFS(spark).write_text(f"{staging}/{schema.REPORT_FILE}", json.dumps(report, indent=2) + "\n")
        clock.lap("commit")
    finally:
        for frame in persisted:
            frame.unpersist()
    clock.log(log, "tokenize")
    elapsed = time.monotonic() - started
    log.info("tokenize wrote %s: %d documents, %d tokens, vocabulary %d in %.1fs (%.0f documents/s)",
             config.output, counts["documents"], counts["tokens"], vocab_size, elapsed,
             counts["documents"] / max(elapsed, 1e-9))
    return {
        "output": config.output,
        "documents": counts["documents"],
        "tokens": counts["tokens"],
        "vocab_size": vocab_size,
        "stages": clock.seconds(),
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


_LABEL_MISSING = "__label_missing"


def with_labels(documents: DataFrame, frame: DataFrame, source: InputSource, column: str) -> DataFrame:
    """``documents`` plus ``label`` (double, NULL unless a finite number) and whether the raw value was NULL.

    ``frame`` is the input :func:`select_documents` read ``documents`` from; the label is joined
    back on the row position ``__row`` (unique per input row). Numeric columns are cast, string
    columns trimmed and parsed (CSV reads every column as a string); other types are a SchemaError.
    """
    from pyspark.sql import functions as F
    from pyspark.sql.types import NumericType, StringType

    if source.format == "text":
        raise ConfigError(f"config key 'label_column' needs a tabular input; {source.path} is plain text")
    require_columns(frame, {"label_column": column}, source=source)
    require_scalar(frame, column, "label_column", source=source)
    data_type = frame.schema[column].dataType
    raw = F.col(f"`{column}`")
    if isinstance(data_type, StringType):
        parsed = F.trim(raw).try_cast("double")
    elif isinstance(data_type, NumericType):
        parsed = raw.cast("double")
    else:
        raise SchemaError(
            f"column '{column}' (label_column) of {source.path} must hold numbers (or numbers as text), "
            f"found {data_type.simpleString()}"
        )
    finite = ~F.isnan(parsed) & (F.abs(parsed) != float("inf"))
    labels = frame.select(
        F.col(ROW), F.when(finite, parsed).alias(schema.LABEL), raw.isNull().alias(_LABEL_MISSING)
    )
    return documents.join(labels, ROW, "left")


def count_labels(kept: DataFrame, column: str) -> dict[str, Any]:
    """Report-sized counts of the kept documents' labels: labelled, missing (NULL), not a finite number."""
    from pyspark.sql import functions as F

    valid = F.col(schema.LABEL).isNotNull()
    row = kept.agg(
        F.count_if(valid).alias("labelled_documents"),
        F.count_if(F.col(_LABEL_MISSING)).alias("missing_labels"),
        F.count_if(~valid & ~F.col(_LABEL_MISSING)).alias("non_numeric_labels"),
        F.min(schema.LABEL).alias("min"),
        F.max(schema.LABEL).alias("max"),
        F.avg(schema.LABEL).alias("mean"),
    ).collect()[0]
    counts: dict[str, Any] = {"column": column}
    counts.update({key: int(row[key] or 0) for key in ("labelled_documents", "missing_labels", "non_numeric_labels")})
    counts.update({key: None if row[key] is None else float(row[key]) for key in ("min", "max", "mean")})
    for key in ("missing_labels", "non_numeric_labels"):
        if counts[key]:
            log.warning("label column %r: %d documents with %s, left out of %s/", column, counts[key],
                        key.replace("_", " "), schema.BOW_DIR)
    return counts


def _no_labels_message(config: TokenizeConfig, labels: dict[str, Any]) -> str:
    return (
        f"no kept document of {config.input} has a numeric label in column '{config.label_column}' "
        f"({labels['missing_labels']} missing, {labels['non_numeric_labels']} not a number)"
    )


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
    config: TokenizeConfig,
    fmt: str,
    counts: dict[str, int],
    vocab_size: int,
    one_hot: dict[str, Any] | None,
    labels: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "kind": "tokenize",
        "input": config.input,
        "format": fmt,
        "text_column": config.text_column if fmt != "text" else None,
        "id_column": config.id_column,
        "tokenizer": dataclasses.asdict(config.tokenizer_settings()),
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
        "labels": labels,
    }
