"""``embedpipe index``: build a Faiss ANN index of a table's unit vectors into ``<table>/_index/``.

Cosine is the inner product of unit vectors (``METRIC_INNER_PRODUCT``); Faiss id = table row.
Two kinds (docs/decisions.md, "ANN index"): **HNSW** (a graph over the full float32 vectors; best
recall per query time, about ``4 dim + 8 M`` bytes a row) up to :data:`HNSW_MAX_ROWS` rows, and
**IVF-PQ** above (``nlist`` k-means lists, vectors compressed to ``pq_m`` = dim / 2 bytes; about
``pq_m + 8`` bytes a row: the fallback for memory). IVF-PQ's compressed scores only pick candidates:
searches rescore ``rerank`` x k of them exactly against the table's own vectors
(:meth:`AnnIndex.search`). Its defaults reach recall@10 0.95 on the tables measured (docs/decisions.md).

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
    exists,
    filesystem,
    import_faiss,
    table_fingerprint,
)
from embedpipe.table import read_embedding_table_spark, read_manifest_spark

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from embedpipe.jobconfig import IndexConfig

log = logging.getLogger(__name__)

#: ``kind = "auto"`` builds HNSW up to this many rows and IVF-PQ above (docs/decisions.md: a neighbors
#: worker holds the unit matrix plus the index, ~1.2 KB a row at dim 128 with HNSW, 2.3 GB at 2M rows).
HNSW_MAX_ROWS = 2_000_000

#: HNSW: graph degree, build beam, search beam (tuned with tests/benchmarks/bench_index.py).
HNSW_M = 16
HNSW_EF_CONSTRUCTION = 80
HNSW_EF_SEARCH = 128
#: IVF-PQ: lists probed per query, candidates rescored exactly per wanted neighbour (measured with
#: bench_index.py: recall@10 0.959 on a trained 504k x 100 table, 0.988 on clustered 200k x 128;
#: nprobe 32 / rerank 10 / dim/4-byte codes gave 0.33-0.74 on trained tables).
IVF_NPROBE = 128
IVF_RERANK = 40
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
        return index, {"M": HNSW_M, "ef_construction": HNSW_EF_CONSTRUCTION}, {"ef_search": HNSW_EF_SEARCH}
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
    return index, build, {"nprobe": min(IVF_NPROBE, nlist), "rerank": IVF_RERANK}


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
    log.info("index: building %s over %d keys x %d dims of %s", kind, rows, dim, config.table)
    build_started = time.monotonic()
    index, build, search = build_faiss_index(table.unit, kind)
    build_seconds = time.monotonic() - build_started
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
        "table": {"fingerprint": fingerprint, "rows": rows, "dim": dim},
        "faiss_version": faiss.__version__,
        "embedpipe_version": __version__,
        "created_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "build_seconds": round(build_seconds, 3),
    }
    index_bytes = write_index(config.table, index, manifest)
    elapsed = time.monotonic() - started
    log.info("index: %s of %d keys built in %.1fs (%d bytes) -> %s/%s", kind, rows, build_seconds, index_bytes,
             config.table, INDEX_DIR)
    return {"table": config.table, "kind": kind, "rows": rows, "dim": dim, "build": build, "search": search,
            "index_bytes": index_bytes, "build_seconds": round(build_seconds, 3), "seconds": round(elapsed, 3)}
