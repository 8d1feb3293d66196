"""``embedpipe index``: build a Faiss ANN index of a table's unit vectors into ``<table>/_index/``.

Cosine is the inner product of unit vectors (``METRIC_INNER_PRODUCT``); Faiss id = table row.
Two kinds (docs/decisions.md, "ANN index"): **HNSW** (a graph over the full float32 vectors; best
recall per query time, about ``4 dim + 8 M`` bytes a row) up to :data:`HNSW_MAX_ROWS` rows, and
**IVF-PQ** above (``nlist`` k-means lists, vectors compressed to ``pq_m`` = dim / 2 bytes; about
``pq_m + 8`` bytes a row: the fallback for memory). IVF-PQ's compressed scores only pick candidates:
searches rescore ``rerank`` x k of them exactly against the table's own vectors
(:meth:`AnnIndex.search`).

The search beam is calibrated at build time, not fixed: a *recall probe* searches 1,000 seeded table
keys, compares with their exact top 10 and raises HNSW's ``efSearch`` (or IVF-PQ's ``nprobe``) until
recall@10 reaches ``target_recall`` (0.95), then bisects back towards the value below to within 1/8
of it; the chosen value and the measured recall go into ``index.json``. With ``kind = auto``, an HNSW
graph that cannot reach the target (tables of mostly rare keys, whose vectors barely moved from their
random start: docs/decisions.md) is replaced by IVF-PQ, which can scan further.

The build runs on the driver (the table is read there, as ``neighbors`` reads it) and commits
atomically: everything goes to ``_index.tmp-<id>/`` beside the rows, the manifest last, then one
rename replaces ``_index/``. A failed build leaves the previous index (or none) as it was; a second
build replaces the first.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
import time
import uuid
from typing import TYPE_CHECKING, Any

import numpy as np

from embedpipe import __version__
from embedpipe.errors import InputError, OutputError
from embedpipe.index.store import (
    HNSW,
    INDEX_DIR,
    INDEX_FILE,
    INDEX_FORMAT,
    INDEX_MANIFEST,
    IVF_PQ,
    AnnIndex,
    exists,
    filesystem,
    import_faiss,
    table_fingerprint,
)
from embedpipe.table import read_embedding_table_spark, read_manifest_spark
from embedpipe.vectors import top_k_neighbours

if TYPE_CHECKING:
    from collections.abc import Callable

    from pyspark.sql import SparkSession

    from embedpipe.jobconfig import IndexConfig

log = logging.getLogger(__name__)

#: ``kind = "auto"`` builds HNSW up to this many rows and IVF-PQ above (docs/decisions.md: a neighbors
#: worker holds the unit matrix plus the index, ~1.2 KB a row at dim 128 with HNSW, 2.3 GB at 2M rows).
HNSW_MAX_ROWS = 2_000_000

#: HNSW: graph degree and build beam (on the Korean table, M 32 / 48 with efConstruction 200 built 2.5-3x
#: slower and gave no more recall at equal queries/s; docs/decisions.md).
HNSW_M = 16
HNSW_EF_CONSTRUCTION = 80
#: HNSW search beams the recall probe tries in turn (the first reaching the target is kept, then refined
#: downwards: :data:`PROBE_REFINE`): beyond 1,024 a graph search is no faster than IVF-PQ's scan.
HNSW_EF_SEARCH_LADDER = (16, 32, 64, 128, 256, 512, 1024)
#: IVF-PQ: the fewest lists the probe tries (then doubled up to all of them), and candidates rescored
#: exactly per wanted neighbour (rerank 10 / dim/4-byte codes gave 0.33-0.74 on trained tables).
IVF_NPROBE_MIN = 8
IVF_RERANK = 40
#: The recall probe: this many seeded table keys, their exact top ``PROBE_K`` the truth.
PROBE_QUERIES = 1000
PROBE_K = 10
#: After the ladder's first value reaching the target, the probe bisects between it and the value below
#: until they are within 1/PROBE_REFINE of the lower one (64 -> 128 becomes 80 on the Korean min_count 2
#: table: 1.5x fewer distance computations a query at the same target; docs/decisions.md).
PROBE_REFINE = 8
#: IVF-PQ k-means and PQ training sample: this many points per list (Faiss wants >= 39).
IVF_TRAIN_PER_LIST = 64


def choose_kind(rows: int, requested: str) -> str:
    if requested != "auto":
        return requested
    return HNSW if rows <= HNSW_MAX_ROWS else IVF_PQ


def _pq_m(dim: int) -> int:
    """Sub-quantizers: the largest divisor of ``dim`` up to dim / 2 (2 dims a byte; 64 bytes at dim 128).

    dim / 4 bytes lost half the true neighbours of trained vectors before the rescoring could see them.
    """
    return max(m for m in range(1, max(1, dim // 2) + 1) if dim % m == 0)


def build_faiss_index(unit: np.ndarray, kind: str, *, seed: int = 1234) -> tuple[Any, dict[str, Any], dict[str, Any]]:
    """A Faiss index of ``unit`` (rows x dim float32, unit norm); returns (index, build params, search params)."""
    faiss = import_faiss()
    rows, dim = unit.shape
    vectors = np.ascontiguousarray(unit, dtype=np.float32)
    if kind == HNSW:
        index = faiss.IndexHNSWFlat(dim, HNSW_M, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
        index.add(vectors)
        return index, {"M": HNSW_M, "ef_construction": HNSW_EF_CONSTRUCTION}, {"ef_search": HNSW_EF_SEARCH_LADDER[0]}
    nlist = max(1, min(int(math.sqrt(rows)), rows // 39))
    nbits = max(1, min(8, int(math.log2(max(2, rows // 39)))))  # PQ codebooks of 2^nbits need >= 39 x points
    pq_m = _pq_m(dim)
    quantizer = faiss.IndexFlatIP(dim)
    index = faiss.IndexIVFPQ(quantizer, dim, nlist, pq_m, nbits, faiss.METRIC_INNER_PRODUCT)
    index.cp.seed = seed
    index.pq.cp.seed = seed
    sample = min(rows, max(IVF_TRAIN_PER_LIST * nlist, 64 * 2**nbits))
    train = vectors if sample == rows else vectors[np.sort(np.random.default_rng(seed).choice(rows, sample, False))]
    index.train(train)
    index.add(vectors)
    build = {"nlist": nlist, "pq_m": pq_m, "pq_bits": nbits, "train_rows": sample, "seed": seed}
    return index, build, {"nprobe": min(IVF_NPROBE_MIN, nlist), "rerank": IVF_RERANK}


def _ladder(kind: str, build: dict[str, Any]) -> tuple[str, list[int]]:
    """The search parameter the probe raises and the values it tries, cheapest first."""
    if kind == HNSW:
        return "ef_search", list(HNSW_EF_SEARCH_LADDER)
    nlist = int(build["nlist"])
    values = [v for v in (IVF_NPROBE_MIN * 2**i for i in range(32)) if v < nlist]
    return "nprobe", [*values, nlist]


def calibrate_search(index: Any, unit: np.ndarray, kind: str, build: dict[str, Any], search: dict[str, Any],
                     target: float, *, seed: int = 1234) -> tuple[dict[str, Any], dict[str, Any]]:
    """The cheapest search parameters whose recall@10 on a probe of table keys reaches ``target``.

    Searches ``PROBE_QUERIES`` seeded keys with :meth:`AnnIndex.search` (what ``neighbors`` tasks
    run) at each value of the kind's ladder against their exact top 10, then bisects between the first
    value reaching the target and the one below it (:data:`PROBE_REFINE`). Returns (search params,
    probe record: every value tried, in order, with its recall); when no value reaches the target,
    the last (largest) is kept and the probe's recall says by how much it falls short.
    """
    rows = len(unit)
    queries = np.arange(rows, dtype=np.int64) if rows <= PROBE_QUERIES else np.sort(
        np.random.default_rng(seed).choice(rows, PROBE_QUERIES, replace=False))
    k = min(PROBE_K, rows - 1)
    started = time.monotonic()
    truth, _ = top_k_neighbours(unit, queries, k)
    name, ladder = _ladder(kind, build)
    tried: list[list[float]] = []  # [value, recall] pairs in the order tried

    def recall_at(value: int) -> float:
        found, _ = AnnIndex(index, {"kind": kind, "search": {**search, name: value}}).search(unit, queries, k)
        hits = sum(len(np.intersect1d(f, t)) for f, t in zip(found, truth, strict=True))
        tried.append([value, round(hits / truth.size, 4)])
        return tried[-1][1]

    chosen, recall = ladder[-1], 0.0
    for position, value in enumerate(ladder):
        recall = recall_at(value)
        if recall >= target:
            chosen = value
            if position > 0:  # the target lies between the value below and this one: bisect
                chosen, recall = _refine(recall_at, ladder[position - 1], value, recall, target)
            break
    probe = {"queries": len(queries), "k": k, "target": target, "recall": recall, name: tried,
             "seconds": round(time.monotonic() - started, 3)}
    return {**search, name: chosen}, probe


def _refine(recall_at: Callable[[int], float], low: int, high: int, high_recall: float,
            target: float) -> tuple[int, float]:
    """The smallest value found between ``low`` (below the target) and ``high`` (at it) by bisection, to a
    step of ``low / PROBE_REFINE``: (value, its recall). Recall grows with the beam, so halving keeps it."""
    while high - low > max(1, low // PROBE_REFINE):
        middle = (low + high) // 2
        recall = recall_at(middle)
        if recall >= target:
            high, high_recall = middle, recall
        else:
            low = middle
    return high, high_recall


def _write_bytes(fs: Any, path: str, data: bytes | memoryview) -> None:
    with fs.open_output_stream(path) as stream:
        stream.write(data)


def write_index(table: str, index: Any, manifest: dict[str, Any]) -> int:
    """Write ``<table>/_index/`` atomically (temp dir, manifest last, rename); returns the index file's bytes."""
    from pyarrow import fs as pafs

    faiss = import_faiss()
    fs, root = filesystem(table)
    run_id = uuid.uuid4().hex[:12]
    for info in fs.get_file_info(pafs.FileSelector(root)):  # leftovers of killed builds
        if info.base_name.startswith((f"{INDEX_DIR}.tmp-", f"{INDEX_DIR}.old-")):
            log.warning("removing leftover %s", info.path)
            fs.delete_dir(info.path)
    staging, final, previous = (f"{root}/{INDEX_DIR}.tmp-{run_id}", f"{root}/{INDEX_DIR}",
                                f"{root}/{INDEX_DIR}.old-{run_id}")
    try:
        fs.create_dir(staging)
        data = faiss.serialize_index(index)
        _write_bytes(fs, f"{staging}/{INDEX_FILE}", memoryview(data))
        manifest = {**manifest, "index_bytes": int(data.nbytes)}
        _write_bytes(fs, f"{staging}/{INDEX_MANIFEST}",
                     (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode())
        had_previous = exists(fs, final)
        if had_previous:
            fs.move(final, previous)
        fs.move(staging, final)
    except BaseException:
        if exists(fs, staging):
            fs.delete_dir(staging)
        if exists(fs, previous) and not exists(fs, final):
            fs.move(previous, final)
        raise
    if had_previous:
        fs.delete_dir(previous)
    return int(data.nbytes)


def run_index(spark: SparkSession, config: IndexConfig) -> dict[str, Any]:
    """Build the index of ``config.table`` and commit it to ``<table>/_index/``."""
    import_faiss()  # a missing extra fails before anything is read
    started = time.monotonic()
    fs, root = filesystem(config.table)
    read_manifest_spark(spark, config.table)  # the table readers' one-line errors for a missing or bad table
    fingerprint = table_fingerprint(fs, root)
    table = read_embedding_table_spark(spark, config.table)
    rows, dim = len(table), table.dim
    if rows < 2:
        raise InputError(f"embedding table {config.table} has {rows} key; an index needs at least 2")
    kind = choose_kind(rows, config.kind)
    index, build, search, probe, build_seconds = _build_calibrated(table.unit, kind, config)
    if config.kind == "auto" and kind == HNSW and probe["recall"] < config.target_recall:
        log.warning("index: hnsw reached recall@10 %.3f < %s at its largest efSearch (keys too rare to tell apart, "
                    "docs/decisions.md); building ivf-pq instead", probe["recall"], config.target_recall)
        replaced = {"kind": kind, "recall": probe["recall"], "build_seconds": round(build_seconds, 3)}
        kind, index = IVF_PQ, None  # the graph's memory goes before the second build
        index, build, search, probe, build_seconds = _build_calibrated(table.unit, kind, config)
        probe["replaced"] = replaced
    if probe["recall"] < config.target_recall:
        log.warning("index: %s reaches recall@10 %.3f < target %s at its widest search; neighbors from it miss "
                    "that many more of the exact top 10", kind, probe["recall"], config.target_recall)
    if table_fingerprint(fs, root) != fingerprint:
        raise OutputError(f"embedding table {config.table} changed while its index was built; run the index job again")
    faiss = import_faiss()
    manifest = {
        "format": INDEX_FORMAT,
        "format_version": 1,
        "kind": kind,
        "metric": "inner_product on unit vectors (cosine)",
        "build": build,
        "search": search,
        "probe": probe,
        "table": {"fingerprint": fingerprint, "rows": rows, "dim": dim},
        "faiss_version": faiss.__version__,
        "embedpipe_version": __version__,
        "created_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "build_seconds": round(build_seconds, 3),
    }
    index_bytes = write_index(config.table, index, manifest)
    elapsed = time.monotonic() - started
    log.info("index: %s of %d keys built in %.1fs (%d bytes), search %s at recall@10 %.3f -> %s/%s", kind, rows,
             build_seconds, index_bytes, search, probe["recall"], config.table, INDEX_DIR)
    return {"table": config.table, "kind": kind, "rows": rows, "dim": dim, "build": build, "search": search,
            "probe": probe, "index_bytes": index_bytes, "build_seconds": round(build_seconds, 3),
            "seconds": round(elapsed, 3)}


def _build_calibrated(unit: np.ndarray, kind: str, config: IndexConfig) -> tuple[Any, dict, dict, dict, float]:
    """Build ``kind`` over ``unit`` and calibrate its search; (index, build, search, probe, build seconds)."""
    log.info("index: building %s over %d keys x %d dims of %s", kind, len(unit), unit.shape[1], config.table)
    started = time.monotonic()
    index, build, search = build_faiss_index(unit, kind)
    build_seconds = time.monotonic() - started
    search, probe = calibrate_search(index, unit, kind, build, search, config.target_recall)
    log.info("index: %s probe, recall@10 of %d keys at each %s tried: %s", kind, probe["queries"],
             "ef_search" if kind == HNSW else "nprobe", probe.get("ef_search", probe.get("nprobe")))
    return index, build, search, probe, build_seconds
