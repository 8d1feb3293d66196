"""The index build's recall probe on real tables, kernel level, side by side with exact (issue 23).

    python tests/benchmarks/bench_index_probe.py [--table PATH[:ROWS] ...] [--clustered ROWS]
        [--kinds auto,hnsw,ivf-pq] [--queries 1000] [--cores 2]

For each table (``:ROWS``: a seeded random sample of that many keys, for tables whose full HNSW build
does not fit the time at hand; ``--clustered ROWS``: bench_index.py's generated clustered table,
ROWS x 128, built in memory) and kind: ``build_faiss_index`` + ``calibrate_search`` as the ``index``
job runs them (``auto``: HNSW, replaced by IVF-PQ when its probe misses the target, as the job does),
then the index's search kernel (``AnnIndex.search``) and the exact kernel (``top_k_neighbours``) on
another ``--queries`` keys (seed 7; the probe's are seed 1234): queries/s side by side in one process,
recall@10, build seconds, index bytes, the calibrated parameter and the probe's recall. No Spark: use
``bench_index.py`` for the job-level figures (table read, ``neighbors`` tasks); this one isolates what
the probe chooses. Prints a Markdown table; ``uptime`` load with it (the machine is shared).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from embedpipe.index.build import build_faiss_index, calibrate_search  # noqa: E402
from embedpipe.index.store import AnnIndex, import_faiss  # noqa: E402
from embedpipe.lookup.api import open_table  # noqa: E402
from embedpipe.vectors import top_k_neighbours  # noqa: E402

K = 10
TARGET = 0.95


def _recall(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(f[f >= 0]) & set(t)) / K for f, t in zip(found, truth, strict=True)]))


def _calibrated(unit: np.ndarray, kind: str) -> tuple:
    started = time.monotonic()
    index, build, search = build_faiss_index(unit, kind)
    seconds = time.monotonic() - started
    search, probe = calibrate_search(index, unit, kind, build, search, TARGET)
    return index, build, search, probe, seconds


def bench(label: str, unit: np.ndarray, kind: str, n_queries: int) -> list[str]:
    faiss = import_faiss()
    sample = np.sort(np.random.default_rng(7).choice(len(unit), min(n_queries, len(unit)), replace=False))
    started = time.monotonic()
    truth, _ = top_k_neighbours(unit, sample, K)
    exact_seconds = time.monotonic() - started
    built = kind if kind != "auto" else "hnsw"
    index, build, search, probe, seconds = _calibrated(unit, built)
    note = ""
    if kind == "auto" and probe["recall"] < TARGET:
        note = f"replaced hnsw (probe {probe['recall']:.3f}, {seconds:.0f} s); "
        built, index = "ivf-pq", None
        index, build, search, probe, seconds = _calibrated(unit, built)
    ann = AnnIndex(index, {"kind": built, "search": search})
    ann.search(unit, sample[:10], K)
    started = time.monotonic()
    found, _ = ann.search(unit, sample, K)
    index_seconds = time.monotonic() - started
    size = int(faiss.serialize_index(index).nbytes)
    line = (f"| {label} | {kind} → {built} ({note}{search}) | {seconds:.1f} | {size:,} | "
            f"{probe['recall']:.3f} | {len(sample) / exact_seconds:,.1f} | {len(sample) / index_seconds:,.1f} | "
            f"{exact_seconds / index_seconds:.1f} | {_recall(found, truth):.3f} | {os.getloadavg()[0]:.0f} |")
    print(line, flush=True)
    return [line]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--table", action="append", default=[], help="PATH or PATH:ROWS (repeatable)")
    parser.add_argument("--clustered", type=int, help="also a generated clustered table of this many rows x 128")
    parser.add_argument("--kinds", default="auto", help="comma-separated: auto, hnsw, ivf-pq")
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--cores", type=int, default=2)
    args = parser.parse_args()
    import_faiss().omp_set_num_threads(args.cores)
    print(f"load before: {os.getloadavg()}")
    print("| table | kind (search) | build s | index bytes | probe recall@10 | exact q/s | index q/s | × exact | "
          "recall@10 | load |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for spec in args.table:
        path, _, rows = spec.partition(":")
        unit = open_table(path).unit
        label = f"{Path(path).parent.name}/{Path(path).name}, {len(unit):,} × {unit.shape[1]}"
        if rows and int(rows) < len(unit):
            unit = np.ascontiguousarray(unit[np.sort(np.random.default_rng(3).choice(len(unit), int(rows), False))])
            label += f", sample of {int(rows):,}"
        for kind in args.kinds.split(","):
            bench(label, unit, kind, args.queries)
    if args.clustered:
        rng = np.random.default_rng(1)  # as bench_index.py's write_clustered_table
        centres = rng.standard_normal((max(1, args.clustered // 100), 128)).astype(np.float32)
        unit = centres[rng.integers(0, len(centres), args.clustered)]
        unit += rng.standard_normal((args.clustered, 128), dtype=np.float32)
        unit /= np.linalg.norm(unit, axis=1, keepdims=True)
        for kind in args.kinds.split(","):
            bench(f"clustered, {args.clustered:,} × 128", unit, kind, args.queries)


if __name__ == "__main__":
    main()
