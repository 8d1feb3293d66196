"""``embedpipe histories``: the one place where reading, transforming and writing meet.

Output directory (replaced atomically; nothing is written when the job fails)::

    sequences/   user string, items array<string>, weights array<double>   every kept interaction, in order
    vocab/       token (the item id), id, count (interactions), doc_freq (distinct users)
    vectors/     user, features (SparseVector of size V), indices array<int>, values array<double>
    heldout/     user string, items array<string>   with holdout = random | last: each split user's held-out items
    report.json  what was read, dropped, kept and held out, and seconds per stage (``stages``)

``sequences/`` keeps every kept interaction, like ``tokens/`` keeps every token; the vocabulary's
``min_count``/``max_vocab_size`` only decide which items get an id (and a place in ``vectors/``).
The cleaned interactions and the per-(user, item) counts are persisted while the job runs.

With a holdout (:mod:`embedpipe.interactions.split`) everything but ``heldout/`` is built from the
training part only (sequences, vocabulary, vectors), so every trainer sees training data only and
the held-out items are the truth ``embedpipe evaluate --histories`` scores against.
"""

from __future__ import annotations

import json
import logging
import time
from typing import TYPE_CHECKING, Any

from embedpipe import schema
from embedpipe.errors import EmptyResultError
from embedpipe.interactions.histories import INTERACTIONS, WEIGHT_SUM, user_item_counts, user_sequences
from embedpipe.interactions.log import (
    DROP_REASONS,
    LogColumns,
    clean_interactions,
    count_interactions,
    kept_interactions,
    resolve_log_columns,
)
from embedpipe.interactions.split import (
    HoldoutSettings,
    heldout_lists,
    heldout_pairs,
    holdout_counts,
    training_interactions,
)
from embedpipe.jobconfig import LOG_FORMATS, HistoriesConfig
from embedpipe.readers import first_scan, read_input, resolve_input
from embedpipe.stages import StageClock
from embedpipe.storage import HadoopFS, atomic_output
from embedpipe.text.vectors import sparse_vectors, vocabulary_entries
from embedpipe.text.vocabulary import assign_ids, key_statistics, write_vocabulary

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)

#: Subdirectory of a histories output with the held-out items (written only with a holdout).
HELDOUT_DIR = "heldout"


def run_histories(spark: SparkSession, config: HistoriesConfig) -> dict[str, Any]:
    """Turn ``config.input`` into per-user sequences, an item vocabulary and user x item vectors.

    Returns a summary (users, items, interactions, output path). Raises InputError / SchemaError
    for a missing input or column, EmptyResultError when no interaction survives cleaning or no
    item reaches ``min_count``.
    """
    from pyspark import StorageLevel

    started = time.monotonic()
    clock = StageClock()
    config.validate()  # also when called directly, not through the CLI
    source = resolve_input(
        spark, config.input, config.format, allowed=LOG_FORMATS, csv_delimiter=config.csv_delimiter
    )
    # Interactions use their input position only to break ties in time order: no numbering scan.
    frame = read_input(spark, source, csv_header=config.csv_header, order_only=True)
    clock.lap("open")
    columns = resolve_log_columns(frame, source, config)
    cleaned = clean_interactions(frame, columns, rating_threshold=config.rating_threshold)
    cleaned = cleaned.persist(StorageLevel.MEMORY_AND_DISK)
    persisted: list[DataFrame] = [cleaned]
    try:
        with first_scan(source):  # the job's first pass over the files
            counts = count_interactions(cleaned)
        _log_counts(source.path, counts, started)
        clock.lap("read_clean")
        if counts["interactions"] == 0:
            reasons = ", ".join(f"{counts[r]} {r.replace('_', ' ')}" for r in DROP_REASONS if counts[r])
            raise EmptyResultError(
                f"no interactions left in {config.input} ({counts['rows_read']} rows read"
                + (f": {reasons}" if reasons else "") + ")"
            )
        kept = kept_interactions(cleaned)
        held = None
        if config.holdout != "none":
            settings = HoldoutSettings(config.holdout, config.holdout_items, config.holdout_min_train_items,
                                       config.holdout_seed, config.holdout_fraction)
            held = heldout_pairs(kept, settings).persist(StorageLevel.MEMORY_AND_DISK)
            persisted.append(held)
            # Persisted: both the pair counts and the sequences read it (one anti-join, not two).
            kept = training_interactions(kept, held).persist(StorageLevel.MEMORY_AND_DISK)
            persisted.append(kept)
        pairs = user_item_counts(kept).persist(StorageLevel.MEMORY_AND_DISK)
        persisted.append(pairs)
        statistics = key_statistics(pairs, weight=INTERACTIONS)
        vocabulary = assign_ids(statistics, min_count=config.min_count, max_size=config.max_vocab_size)
        vocabulary = vocabulary.persist(StorageLevel.MEMORY_AND_DISK)
        persisted.append(vocabulary)
        vocab_size = vocabulary.count()
        clock.lap("count")
        if vocab_size == 0:
            raise EmptyResultError(_empty_vocabulary_message(config, statistics))
        log.info("item vocabulary: %d items (min_count=%d, max_vocab_size=%s)", vocab_size, config.min_count,
                 config.max_vocab_size)
        with atomic_output(spark, config.output, inputs=(config.input,)) as staging:
            sequences = user_sequences(kept, by_time=columns.time is not None)
            sequences.write.mode("error").parquet(f"{staging}/{schema.SEQUENCES_DIR}")
            write_vocabulary(vocabulary, f"{staging}/{schema.VOCAB_DIR}")
            clock.lap("write_sequences")
            value = WEIGHT_SUM if columns.weight is not None else INTERACTIONS
            entries = vocabulary_entries(
                pairs, vocabulary, key=schema.USER, key_column=schema.TOKEN, value=value, vocab_size=vocab_size
            )
            users = pairs.select(schema.USER).distinct()
            vectors = sparse_vectors(users, entries, key=schema.USER, size=vocab_size)
            vectors.select(schema.USER, schema.FEATURES, schema.INDICES, schema.VALUES).write.mode("error").parquet(
                f"{staging}/{schema.VECTORS_DIR}"
            )
            clock.lap("encode_vectors")
            report = _report(config, source.format, columns, counts, vocab_size)
            if held is not None:
                heldout_lists(held).write.mode("error").parquet(f"{staging}/{HELDOUT_DIR}")
                report["holdout"] = _holdout_report(config, counts, holdout_counts(held, vocabulary))
                log.info("holdout %s: %s", config.holdout, report["holdout"])
                clock.lap("write_heldout")
            report["stages"] = clock.seconds()  # up to here; the commit that follows is in the log
            HadoopFS(spark).write_text(f"{staging}/{schema.REPORT_FILE}", json.dumps(report, indent=2) + "\n")
        clock.lap("commit")
    finally:
        for persisted_frame in persisted:
            persisted_frame.unpersist()
    clock.log(log, "histories")
    elapsed = time.monotonic() - started
    log.info("histories wrote %s: %d users, %d items, %d interactions in %.1fs (%.0f interactions/s)",
             config.output, counts["users"], vocab_size, counts["interactions"], elapsed,
             counts["interactions"] / max(elapsed, 1e-9))
    summary = {
        "output": config.output,
        "users": counts["users"],
        "items": vocab_size,
        "interactions": counts["interactions"],
        "stages": clock.seconds(),
    }
    if held is not None:
        summary["heldout_pairs"] = report["holdout"]["heldout_pairs"]
    return summary


def _holdout_report(config: HistoriesConfig, counts: dict[str, int], held: dict[str, int]) -> dict[str, Any]:
    return {
        "mode": config.holdout,
        "items_per_user": None if config.holdout_fraction is not None else config.holdout_items,
        "fraction": config.holdout_fraction,
        "min_train_items": config.holdout_min_train_items,
        "seed": config.holdout_seed if config.holdout == "random" else None,
        "users_split": held["users_split"],
        "users_not_split": counts["users"] - held["users_split"],
        "heldout_pairs": held["heldout_pairs"],
        "heldout_interactions": held["heldout_interactions"],
        "heldout_pairs_not_in_vocabulary": held["heldout_pairs_not_in_vocabulary"],
        "training_interactions": counts["interactions"] - held["heldout_interactions"],
    }


def _empty_vocabulary_message(config: HistoriesConfig, statistics: DataFrame) -> str:
    from pyspark.sql import functions as F

    top = statistics.orderBy(F.col(schema.COUNT).desc(), F.col(schema.TOKEN).asc()).first()
    most = f"; the most frequent item, {top[schema.TOKEN]!r}, has {top[schema.COUNT]}" if top else ""
    return (
        f"empty item vocabulary: no item of {config.input} has at least "
        f"min_count={config.min_count} interactions{most}"
    )


def _log_counts(path: str, counts: dict[str, int], started: float) -> None:
    log.info("read %s: %d rows, %d interactions kept, %d users (%.1fs)", path, counts["rows_read"],
             counts["interactions"], counts["users"], time.monotonic() - started)
    for reason in DROP_REASONS:
        if counts[reason]:
            log.warning("%s: %d rows dropped (%s)", path, counts[reason], reason.replace("_", " "))


def _report(
    config: HistoriesConfig, fmt: str, columns: LogColumns, counts: dict[str, int], vocab_size: int
) -> dict[str, Any]:
    return {
        "kind": "histories",
        "input": config.input,
        "format": fmt,
        "user_column": columns.user,
        "item_column": columns.item,
        "time_column": columns.time,
        "weight_column": columns.weight,
        "rating_threshold": config.rating_threshold,
        "min_count": config.min_count,
        "max_vocab_size": config.max_vocab_size,
        "users": counts["users"],
        "items": vocab_size,
        "interactions": counts["interactions"],
        "counts": {"rows_read": counts["rows_read"], **{reason: counts[reason] for reason in DROP_REASONS}},
    }
