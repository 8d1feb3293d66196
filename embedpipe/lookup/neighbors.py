"""``embedpipe neighbors``: top-k cosine neighbours of every key (or of query keys), plus analogies.

Exact (default): the unit-normalised table is broadcast once per executor; the query rows are cut
into blocks of ``block_rows`` that Spark spreads over its tasks, and each block is one
``(block x N)`` matrix product plus a partial sort (:func:`embedpipe.vectors.top_k_neighbours`, the
kernel the Python API's ``most_similar`` and the evaluation report run too). Work is ``N^2 dim``
flops and no row pair ever becomes a Spark row: never a cross join. The table is read through
:class:`~embedpipe.table.EmbeddingTable`, so a table breaking the format fails the job first.

Approximate (for tables whose ``N^2`` is out of reach): random-hyperplane LSH. Each of
``lsh_tables`` hash tables gives every key a ``lsh_bits``-bit signature (the signs of its
projections on random hyperplanes, seeded); keys sharing a bucket are scored exactly against
each other, and each key keeps the best ``k`` candidates over all tables. Neighbours missed by
every table are missed (recall < 1), scores of those found are exact. Skewed spaces put many keys
in one bucket, and a bucket's work is quadratic: a bucket larger than ``lsh_max_bucket`` is split
by the next 4, 8, 12 or 16 bits of extra hyperplanes (the first prefix length that fits), and
scoring inside a bucket runs in row blocks so memory stays bounded even then.

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
from embedpipe.arrow_vectors import list_array_to_matrix, matrix_to_list_array
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

    The index is checked (present, fresh, readable) on the driver first, so a bad one is a one-line
    error before any task runs; each executor's Python worker then reads ``<table>/_index/`` itself
    (the table path is one every executor reads) and keeps it for the job's later tasks.
    """
    from embedpipe.index.store import filesystem, load_index, table_fingerprint

    ann = load_index(table, rows=len(keys), dim=unit.shape[1])
    log.info("index: %s over %d keys, search %s", ann.kind, len(keys), ann.manifest["search"])
    fingerprint = ann.manifest["table"]["fingerprint"]
    del ann
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


# ------------------------------------------------------------------------------- approximate


#: Extra hyperplanes per hash table used to split oversized buckets, in steps of SPLIT_STEP bits.
SPLIT_BITS = 16
SPLIT_STEP = 4
#: Scores computed at once inside one bucket (rows x members), to bound memory.
_BUCKET_BLOCK_SCORES = 16_000_000


def _signature_batches(batches: Iterator[pa.RecordBatch], *, planes: np.ndarray, dim: int) -> Iterator[pa.RecordBatch]:
    """(row, table, code) for every key and hash table; ``planes`` is (tables, bits, dim).

    The code's high bits come from the first hyperplanes (the bucket), its ``SPLIT_BITS`` low bits
    from the extra ones (used only to split oversized buckets).
    """
    tables, bits, _ = planes.shape
    weights = (1 << np.arange(bits - 1, -1, -1, dtype=np.int64))
    for batch in batches:
        rows = batch.column(schema.ID).to_numpy()
        vectors = list_array_to_matrix(batch.column(schema.VECTOR), dim)
        projections = np.einsum("nd,tbd->ntb", vectors, planes)
        codes = ((projections > 0).astype(np.int64) * weights).sum(axis=2)  # (n, tables)
        yield pa.RecordBatch.from_arrays(
            [pa.array(np.repeat(rows, tables)), pa.array(np.tile(np.arange(tables), rows.size)),
             pa.array(codes.reshape(-1))],
            names=["row", "lsh_table", "code"],
        )


def _empty_neighbors() -> pa.Table:
    return pa.Table.from_batches([], schema=pa.schema([(schema.KEY, pa.string()), (NEIGHBOR, pa.string()),
                                                      (SCORE, pa.float32()), (RANK, pa.int32())]))


def _bucket_neighbors(table: pa.Table, *, broadcast: Any, cache_key: str, k: int) -> pa.Table:
    """Exact top-k among the keys of one bucket, in blocks of rows so memory stays bounded."""
    keys, unit = _index_on_worker(broadcast, cache_key)
    rows = np.sort(table.column("row").to_numpy())
    kk = min(k, rows.size - 1)
    if kk <= 0:
        return _empty_neighbors()
    members = unit[rows]
    block = max(1, _BUCKET_BLOCK_SCORES // rows.size)
    batches = []
    for start in range(0, rows.size, block):
        end = min(start + block, rows.size)
        scores = members[start:end] @ members.T
        scores[np.arange(end - start), np.arange(start, end)] = -np.inf  # a key is not its own neighbour
        top = np.argpartition(-scores, kk - 1, axis=1)[:, :kk]
        top_scores = np.take_along_axis(scores, top, axis=1)
        order = np.lexsort((rows[top], -top_scores), axis=1)
        top, top_scores = np.take_along_axis(top, order, axis=1), np.take_along_axis(top_scores, order, axis=1)
        batches.append(_neighbour_batch(keys, rows[start:end], rows[top], top_scores))
    return pa.Table.from_batches(batches)


def _split_buckets(signatures: DataFrame, base_shift: int, max_bucket: int) -> DataFrame:
    """(row, lsh_table, bucket) with every bucket of more than ``max_bucket`` keys split by extra bits.

    Each key takes the shortest code prefix (base bits, then 4, 8, ... extra bits) whose bucket fits;
    keys sharing a prefix see the same sizes, so the chosen buckets partition every hash table.
    Costs one aggregation; skipped when no base bucket is too large.
    """
    from pyspark.sql import functions as F

    base = signatures.withColumn("bucket", F.shiftright("code", base_shift))
    sizes = base.groupBy("lsh_table", "bucket").count()
    largest = sizes.agg(F.max("count")).first()[0] or 0
    if largest <= max_bucket:
        return base.select("row", "lsh_table", "bucket")
    log.info("approximate: largest LSH bucket has %d keys > lsh_max_bucket=%d; splitting with extra hyperplanes",
             largest, max_bucket)
    levels = list(range(0, SPLIT_BITS + 1, SPLIT_STEP))
    prefixes = signatures.select(
        "row", "lsh_table",
        F.explode(F.array(*[
            F.struct(F.lit(level).alias("level"), F.shiftright("code", SPLIT_BITS - level).alias("prefix"))
            for level in levels
        ])).alias("p"),
    ).select("row", "lsh_table", "p.level", "p.prefix")
    counts = prefixes.groupBy("lsh_table", "level", "prefix").count()
    fitting = prefixes.join(counts, ["lsh_table", "level", "prefix"]).where(
        (F.col("count") <= max_bucket) | (F.col("level") == SPLIT_BITS)
    )
    chosen = fitting.groupBy("row", "lsh_table").agg(F.min(F.struct("level", "prefix")).alias("c"))
    # Prefixes of different lengths may collide as numbers: the level is part of the bucket id.
    return chosen.select("row", "lsh_table",
                         (F.shiftleft(F.col("c.level").cast("long"), 56) + F.col("c.prefix")).alias("bucket"))


def approximate_neighbors(spark: SparkSession, keys: list[str], unit: np.ndarray, query_rows: np.ndarray,
                          config: NeighborsConfig) -> DataFrame:
    """LSH candidates scored exactly; the best ``k`` per key over all hash tables."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    dim = unit.shape[1]
    bits = config.lsh_bits + SPLIT_BITS
    planes = np.random.default_rng(config.seed).standard_normal((config.lsh_tables, bits, dim))
    planes = planes.astype(np.float32)
    broadcast = spark.sparkContext.broadcast((keys, unit))
    cache_key = uuid.uuid4().hex
    rows = spark.createDataFrame(
        pa.table({schema.ID: np.arange(len(keys), dtype=np.int64), schema.VECTOR: matrix_to_list_array(unit)})
        .to_pandas()
    )
    signatures = rows.mapInArrow(functools.partial(_signature_batches, planes=planes, dim=dim),
                                 "row bigint, lsh_table bigint, code bigint")
    buckets = _split_buckets(signatures, SPLIT_BITS, config.lsh_max_bucket)
    k = config.k

    def bucket_neighbors(table: pa.Table) -> pa.Table:  # plain values only in the closure (pickles cleanly)
        return _bucket_neighbors(table, broadcast=broadcast, cache_key=cache_key, k=k)

    candidates = buckets.groupBy("lsh_table", "bucket").applyInArrow(bucket_neighbors, NEIGHBORS_DDL)
    if len(query_rows) < len(keys):
        wanted = spark.createDataFrame([(keys[int(r)],) for r in query_rows], "key string")
        candidates = candidates.join(F.broadcast(wanted), schema.KEY, "left_semi")
    best = candidates.groupBy(schema.KEY, NEIGHBOR).agg(F.max(SCORE).alias(SCORE))
    order = Window.partitionBy(schema.KEY).orderBy(F.col(SCORE).desc(), F.col(NEIGHBOR))
    return best.withColumn(RANK, F.row_number().over(order).cast("int")).filter(F.col(RANK) <= config.k)


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
    keys, unit = table.keys, table.unit
    if config.queries:
        wanted = list(dict.fromkeys(config.queries))
        found = table.rows(wanted)
        missing = [q for q, r in zip(wanted, found, strict=True) if r < 0]
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
    if missing_words:
        raise InputError(f"analogy words not in table {config.table}: {', '.join(dict.fromkeys(missing_words))}")
    answers = table.analogies(questions)
    if config.method == "exact":
        frame = exact_neighbors(spark, keys, unit, query_rows, k, config.block_rows)
    elif config.method == "index":
        frame = index_neighbors(spark, config.table, keys, unit, query_rows, k, config.block_rows)
    else:
        frame = approximate_neighbors(spark, keys, unit, query_rows, config)
    with atomic_output(spark, config.output, inputs=(config.table,)) as staging:
        frame.select(schema.KEY, NEIGHBOR, SCORE, RANK).write.mode("error").parquet(staging)
    if config.analogy_output:
        rows = [(a, b, c, None if ans is None else ans[0], None if ans is None else float(ans[1]))
                for (a, b, c), ans in zip(questions, answers, strict=True)]
        with atomic_output(spark, config.analogy_output, inputs=(config.table,)) as staging:
            spark.createDataFrame(rows, ANALOGY_DDL).coalesce(1).write.mode("error").parquet(staging)
    elapsed = time.monotonic() - started
    log.info("%s neighbours (k=%d) of %d keys of %s in %.1fs -> %s", config.method, k, len(query_rows),
             config.table, elapsed, config.output)
    display = "\n".join(
        f"{a} - {b} + {c} = {'(none)' if ans is None else f'{ans[0]} ({ans[1]:.3f})'}"
        for (a, b, c), ans in zip(questions, answers, strict=True)
    )
    return {
        "output": config.output,
        "method": config.method,
        "queries": int(len(query_rows)),
        "queries_missing": missing,
        "k": k,
        "analogies": [None if ans is None else ans[0] for ans in answers],
        "seconds": round(elapsed, 3),
        **({"display": display} if display else {}),
    }
