"""The index build's recall probe on real tables, kernel level, side by side with exact (issue 23).

    python tests/benchmarks/bench_index_probe.py [--table PATH[:ROWS] ...] [--clustered ROWS]
        [--kinds auto,hnsw,ivf-pq] [--queries 1000] [--cores 2] [--cpu]

For each table (``:ROWS``: a seeded random sample of that many keys, for tables whose full HNSW build
does not fit the time at hand; ``--clustered ROWS``: bench_index.py's generated clustered table,
ROWS x 128, built in memory) and kind: ``build_faiss_index`` + ``calibrate_search`` as the ``index``
job runs them (``auto``: HNSW, replaced by IVF-PQ when its probe misses the target, as the job does),
then the index's search kernel (``AnnIndex.search``) and the exact kernel (``top_k_neighbours``) on
another ``--queries`` keys (seed 7; the probe's are seed 1234): queries/s side by side in one process,
recall@10, build seconds, index bytes, the calibrated parameter and the probe's recall. No Spark: use
``bench_index.py`` for the job-level figures (table read, ``neighbors`` tasks); this one isolates what
the probe chooses. Prints a Markdown table; ``uptime`` load with it (the machine is shared).

Each timing is the fastest of 3 runs. ``--cpu``: one thread for both kernels (BLAS and Faiss) and
CPU seconds instead of wall seconds: the work each search costs, which a loaded machine does not
distort (wall-clock ratios at load 15-25 swung 3-45x for one index). When the probe's bisection kept
a smaller value than the first ladder value reaching the target (the former choice), that value's
search is timed too, on the same index: the row "ladder only".
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

if "--cpu" in sys.argv:  # before NumPy and Faiss start their thread pools
    os.environ.update(OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")

import numpy as np  # noqa: E402

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


CLOCK = time.perf_counter


def _fastest(search, reps: int = 3) -> tuple:
    """(result, seconds of the fastest of ``reps`` runs) on :data:`CLOCK`."""
    best = float("inf")
    for _ in range(reps):
        started = CLOCK()
        result = search()
        best = min(best, CLOCK() - started)
    return result, best


def bench(label: str, unit: np.ndarray, kind: str, n_queries: int) -> list[str]:
    faiss = import_faiss()
    sample = np.sort(np.random.default_rng(7).choice(len(unit), min(n_queries, len(unit)), replace=False))
    (truth, _), exact_seconds = _fastest(lambda: top_k_neighbours(unit, sample, K))
    built = kind if kind != "auto" else "hnsw"
    index, build, search, probe, seconds = _calibrated(unit, built)
    note = ""
    if kind == "auto" and probe["recall"] < TARGET:
        note = f"replaced hnsw (probe {probe['recall']:.3f}, {seconds:.0f} s); "
        built, index = "ivf-pq", None
        index, build, search, probe, seconds = _calibrated(unit, built)
    size = int(faiss.serialize_index(index).nbytes)
    name = "ef_search" if built == "hnsw" else "nprobe"
    ladder_pick = next((v for v, r in probe[name] if r >= TARGET), search[name])  # the first value tried reaching it
    lines = []
    for row, params in (("", search), ("ladder only: ", {**search, name: ladder_pick})):
        if row and params == search:
            break
        ann = AnnIndex(index, {"kind": built, "search": params})
        ann.search(unit, sample[:10], K)
        (found, _), index_seconds = _fastest(lambda ann=ann: ann.search(unit, sample, K))
        lines.append(f"| {label} | {row}{kind} → {built} ({note}{params}) | {seconds:.1f} | {size:,} | "
                     f"{probe['recall']:.3f} | {len(sample) / exact_seconds:,.1f} | "
                     f"{len(sample) / index_seconds:,.1f} | {exact_seconds / index_seconds:.1f} | "
                     f"{_recall(found, truth):.3f} | {os.getloadavg()[0]:.0f} |")
        print(lines[-1], flush=True)
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--table", action="append", default=[], help="PATH or PATH:ROWS (repeatable)")
    parser.add_argument("--clustered", type=int, help="also a generated clustered table of this many rows x 128")
    parser.add_argument("--kinds", default="auto", help="comma-separated: auto, hnsw, ivf-pq")
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--cpu", action="store_true",
                        help="one thread for both kernels, CPU seconds instead of wall (robust to load)")
    args = parser.parse_args()
    global CLOCK
    if args.cpu:
        CLOCK, args.cores = time.process_time, 1
    import_faiss().omp_set_num_threads(args.cores)
    print(f"load before: {os.getloadavg()}")
    unit_of_time = "CPU" if args.cpu else "wall"
    print(f"| table | kind (search) | build s | index bytes | probe recall@10 | exact q/s ({unit_of_time}) | "
          f"index q/s ({unit_of_time}) | × exact | recall@10 | load |")
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
