"""``embedpipe neighbors``: top-k cosine neighbours of every key (or of query keys), plus analogies.

Exact (default): the unit-normalised table is broadcast once per executor; the query rows are cut
into blocks of ``block_rows`` that Spark spreads over its tasks, and each block is one
``(block x N)`` matrix product plus a partial sort (:func:`embedpipe.vectors.top_k_neighbours`, the
kernel the Python API's ``most_similar`` and the evaluation report run too). Work is ``N^2 dim``
flops and no row pair ever becomes a Spark row: never a cross join. The table is read through
:class:`~embedpipe.table.EmbeddingTable`, so a table breaking the format fails the job first.

Index (for tables whose ``N^2`` is out of reach): the table's Faiss index (``embedpipe index``,
:mod:`embedpipe.index`) answers the same blocks of queries in Spark tasks; each executor's Python
worker reads ``<table>/_index/`` once, and candidates are rescored exactly, so reported scores are
true cosines and a missed neighbour is the only difference from exact (recall@10 >= 0.95 at 1M
keys, docs/benchmarks.md). A missing, stale or unreadable index fails on the driver, one line,
before any task runs. The home-made LSH (``method = approximate``) was retired for it
(docs/decisions.md).

Output Parquet: ``key`` string, ``neighbor`` string, ``score`` float (cosine), ``rank`` int (1 =
nearest); ties go to the more frequent key.
"""

from __future__ import annotations

import functools
import logging
import time
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from embedpipe import schema
from embedpipe.errors import ConfigError, InputError
from embedpipe.jobconfig import NeighborsConfig
from embedpipe.storage import atomic_output
from embedpipe.table import read_embedding_table_spark
from embedpipe.vectors import top_k_neighbours

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)

NEIGHBOR = "neighbor"
SCORE = "score"
RANK = "rank"
NEIGHBORS_DDL = "key string, neighbor string, score float, rank int"
ANALOGY_DDL = "a string, b string, c string, answer string, score float"

_WORKER_INDEX: dict[str, tuple[list[str], np.ndarray]] = {}


def _index_on_worker(broadcast: Any, cache_key: str) -> tuple[list[str], np.ndarray]:
    """The broadcast (keys, unit vectors), unpickled once per Python worker process."""
    hit = _WORKER_INDEX.get(cache_key)
    if hit is None:
        keys, unit = broadcast.value
        _WORKER_INDEX.clear()
        hit = (keys, unit)
        _WORKER_INDEX[cache_key] = hit
    return hit


def _neighbour_batch(keys: list[str], query_rows: np.ndarray, neighbours: np.ndarray,
                     scores: np.ndarray) -> pa.RecordBatch:
    n, k = neighbours.shape
    keys_array = pa.array(keys, pa.string())
    return pa.RecordBatch.from_arrays(
        [
            keys_array.take(pa.array(np.repeat(query_rows, k))),
            keys_array.take(pa.array(neighbours.reshape(-1))),
            pa.array(scores.reshape(-1).astype(np.float32), pa.float32()),
            pa.array(np.tile(np.arange(1, k + 1, dtype=np.int32), n), pa.int32()),
        ],
        names=[schema.KEY, NEIGHBOR, SCORE, RANK],
    )


def _exact_blocks(batches: Iterator[pa.RecordBatch], *, broadcast: Any, cache_key: str, query_rows: np.ndarray,
                  k: int) -> Iterator[pa.RecordBatch]:
    keys, unit = _index_on_worker(broadcast, cache_key)
    for batch in batches:
        for start, end in zip(batch.column("start").to_numpy(), batch.column("end").to_numpy(), strict=True):
            rows = query_rows[start:end]
            neighbours, scores = top_k_neighbours(unit, rows, k)
            yield _neighbour_batch(keys, rows, neighbours, scores)


def exact_neighbors(spark: SparkSession, keys: list[str], unit: np.ndarray, query_rows: np.ndarray, k: int,
                    block_rows: int) -> DataFrame:
    """Top-k of ``query_rows`` as blocked matrix products, one block per Spark task slice."""
    broadcast = spark.sparkContext.broadcast((keys, unit))
    starts = list(range(0, len(query_rows), block_rows))
    blocks = spark.createDataFrame([(s, min(s + block_rows, len(query_rows))) for s in starts],
                                   "start bigint, end bigint")
    slots = max(1, min(len(starts), spark.sparkContext.defaultParallelism * 4))
    function = functools.partial(_exact_blocks, broadcast=broadcast, cache_key=uuid.uuid4().hex,
                                 query_rows=query_rows, k=k)
    return blocks.repartition(slots).mapInArrow(function, NEIGHBORS_DDL)


# ------------------------------------------------------------------------------------ index

_WORKER_ANN: dict[str, Any] = {}


def _ann_on_worker(table: str, fingerprint: str, rows: int, dim: int) -> Any:
    """The table's Faiss index, read from ``<table>/_index/`` once per Python worker process."""
    from embedpipe.index.store import import_faiss, load_index

    hit = _WORKER_ANN.get(fingerprint)
    if hit is None:
        import_faiss().omp_set_num_threads(1)  # Spark already runs one task per core
        _WORKER_ANN.clear()
        hit = load_index(table, rows=rows, dim=dim)
        _WORKER_ANN[fingerprint] = hit
    return hit


def _index_blocks(batches: Iterator[pa.RecordBatch], *, broadcast: Any, cache_key: str, table: str,
                  fingerprint: str, query_rows: np.ndarray, k: int) -> Iterator[pa.RecordBatch]:
    keys, unit = _index_on_worker(broadcast, cache_key)
    ann = _ann_on_worker(table, fingerprint, len(keys), unit.shape[1])
    for batch in batches:
        for start, end in zip(batch.column("start").to_numpy(), batch.column("end").to_numpy(), strict=True):
            rows = query_rows[start:end]
            neighbours, scores = ann.search(unit, rows, k)
            found = neighbours >= 0
            if found.all():
                yield _neighbour_batch(keys, rows, neighbours, scores)
                continue
            ranks = np.broadcast_to(np.arange(1, k + 1, dtype=np.int32), neighbours.shape)[found]
            keys_array = pa.array(keys, pa.string())
            yield pa.RecordBatch.from_arrays(
                [keys_array.take(pa.array(np.broadcast_to(rows[:, None], neighbours.shape)[found])),
                 keys_array.take(pa.array(neighbours[found])), pa.array(scores[found], pa.float32()),
                 pa.array(ranks, pa.int32())],
                names=[schema.KEY, NEIGHBOR, SCORE, RANK],
            )


def index_neighbors(spark: SparkSession, table: str, keys: list[str], unit: np.ndarray, query_rows: np.ndarray,
                    k: int, block_rows: int) -> DataFrame:
    """Top-k of ``query_rows`` from the table's Faiss index, one block of queries per Spark task slice.

    The index is checked (present, fresh, its file's size and header) on the driver first, without
    loading it, so a bad one is a one-line error before any task runs; each executor's Python worker
    then reads ``<table>/_index/`` itself (the table path is one every executor reads) and keeps it
    for the job's later tasks.
    """
    from embedpipe.index.store import check_index, filesystem, table_fingerprint

    manifest = check_index(table, rows=len(keys), dim=unit.shape[1])  # index.json and the file's header only
    log.info("index: %s over %d keys, search %s", manifest["kind"], len(keys), manifest["search"])
    fingerprint = manifest["table"]["fingerprint"]
    if table_fingerprint(*filesystem(table)) != fingerprint:
        raise InputError(f"embedding table {table} changed while neighbors ran; run it again")
    broadcast = spark.sparkContext.broadcast((keys, unit))
    starts = list(range(0, len(query_rows), block_rows))
    blocks = spark.createDataFrame([(s, min(s + block_rows, len(query_rows))) for s in starts],
                                   "start bigint, end bigint")
    slots = max(1, min(len(starts), spark.sparkContext.defaultParallelism * 4))
    function = functools.partial(_index_blocks, broadcast=broadcast, cache_key=uuid.uuid4().hex, table=table,
                                 fingerprint=fingerprint, query_rows=query_rows, k=k)
    return blocks.repartition(slots).mapInArrow(function, NEIGHBORS_DDL)


# ------------------------------------------------------------------------------ unseen queries


def composed_neighbors(spark: SparkSession, keys: list[str], unit: np.ndarray,
                       composed: list[tuple[str, np.ndarray]], k: int) -> DataFrame:
    """Exact top-k table keys of queries composed from n-grams (``oov = subwords``), on the driver: they
    are the few queries a user named, so one matrix product against the table, whatever ``method``."""
    from embedpipe.vectors import unit_normalise

    extended = np.concatenate([unit, unit_normalise(np.stack([v for _, v in composed]))])
    rows = np.arange(len(keys), len(extended), dtype=np.int64)
    neighbours, scores = top_k_neighbours(extended, rows, k + len(composed))
    records = []
    for (word, _), row_neighbours, row_scores in zip(composed, neighbours, scores, strict=True):
        kept = row_neighbours < len(keys)  # other composed queries are no answers
        for rank, (neighbour, score) in enumerate(zip(row_neighbours[kept][:k], row_scores[kept][:k],
                                                      strict=True), start=1):
            records.append((word, keys[int(neighbour)], float(score), rank))
    return spark.createDataFrame(records, NEIGHBORS_DDL)


# -------------------------------------------------------------------------------------- job


def parse_analogy(text: str) -> tuple[str, str, str]:
    """``"king man woman"`` (or comma separated) -> ("king", "man", "woman")."""
    words = text.replace(",", " ").split()
    if len(words) != 3:
        raise ConfigError(f"config key 'analogies': {text!r} must be three keys 'a b c' (answers a - b + c)")
    return words[0], words[1], words[2]


def run_neighbors(spark: SparkSession, config: NeighborsConfig) -> dict[str, Any]:
    """Write the neighbours of ``config.table`` (all keys or ``queries``) and answer analogies."""
    started = time.monotonic()
    questions = [parse_analogy(q) for q in config.analogies]
    table = read_embedding_table_spark(spark, config.table)
    if config.oov == "subwords":
        from embedpipe.composed import attach_subword_vectors_spark

        attach_subword_vectors_spark(spark, table, config.table)
    keys, unit = table.keys, table.unit
    composed: list[tuple[str, np.ndarray]] = []
    if config.queries:
        wanted = list(dict.fromkeys(config.queries))
        found = table.rows(wanted)
        missing = [q for q, r in zip(wanted, found, strict=True) if r < 0]
        if config.oov == "subwords" and missing:
            from embedpipe.subwords import composed_rows

            words, vectors = composed_rows(missing, table.subwords)
            composed = list(zip(words, vectors, strict=True))
            composable = set(words)
            missing = [q for q in missing if q not in composable]
        if len(missing) == len(wanted):
            raise InputError(f"none of the queries are keys of table {config.table}: {', '.join(missing[:5])}")
        if missing:
            log.warning("queries not in the table (skipped): %s", ", ".join(missing))
        query_rows = np.asarray([r for r in found if r >= 0], dtype=np.int64)
    else:
        missing, query_rows = [], np.arange(len(keys), dtype=np.int64)
    k = min(config.k, len(keys) - 1)
    if k < 1:
        raise InputError(f"embedding table {config.table} has {len(keys)} key; neighbours need at least 2")
    missing_words = [w for q in questions for w in q if w not in table]
    if missing_words and config.oov == "subwords":
        from embedpipe.subwords import composed_rows

        composable = set(composed_rows(missing_words, table.subwords)[0])
        missing_words = [w for w in missing_words if w not in composable]
    if missing_words:
        raise InputError(f"analogy words not in table {config.table}: {', '.join(dict.fromkeys(missing_words))}")
    answers = table.analogies(questions, oov="subwords" if config.oov == "subwords" else "fail")
    if config.method == "exact":
        frame = exact_neighbors(spark, keys, unit, query_rows, k, config.block_rows)
    else:
        frame = index_neighbors(spark, config.table, keys, unit, query_rows, k, config.block_rows)
    if composed:
        frame = frame.unionByName(composed_neighbors(spark, keys, unit, composed, k))
    with atomic_output(spark, config.output, inputs=(config.table,)) as staging:
        frame.select(schema.KEY, NEIGHBOR, SCORE, RANK).write.mode("error").parquet(staging)
    if config.analogy_output:
        rows = [(a, b, c, None if ans is None else ans[0], None if ans is None else float(ans[1]))
                for (a, b, c), ans in zip(questions, answers, strict=True)]
        with atomic_output(spark, config.analogy_output, inputs=(config.table,)) as staging:
            spark.createDataFrame(rows, ANALOGY_DDL).coalesce(1).write.mode("error").parquet(staging)
    elapsed = time.monotonic() - started
    log.info("%s neighbours (k=%d) of %d keys (and %d composed from n-grams) of %s in %.1fs -> %s", config.method,
             k, len(query_rows), len(composed), config.table, elapsed, config.output)
    display = "\n".join(
        f"{a} - {b} + {c} = {'(none)' if ans is None else f'{ans[0]} ({ans[1]:.3f})'}"
        for (a, b, c), ans in zip(questions, answers, strict=True)
    )
    return {
        "output": config.output,
        "method": config.method,
        "queries": int(len(query_rows)) + len(composed),
        **({"queries_composed": [w for w, _ in composed]} if composed else {}),
        "queries_missing": missing,
        "k": k,
        "analogies": [None if ans is None else ans[0] for ans in answers],
        "seconds": round(elapsed, 3),
        **({"display": display} if display else {}),
    }
