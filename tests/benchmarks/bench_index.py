"""Exact vs the Faiss index (``embedpipe index``), side by side on one table.

    python tests/benchmarks/bench_index.py [--rows 1000000] [--dim 128] [--queries 1000] [--job-queries 100]
        [--cores 2] [--real] [--table PATH ...] [--no-forced] [--threshold 100000,300000] [--workdir DIR]

Tables: a generated *clustered* ``--rows`` x ``--dim`` table (``rows / 100`` Gaussian centres, each
key a centre plus N(0, 1) noise per dimension, Zipf-like counts; ``--rows 0`` skips it), with
``--real`` a trained one: gensim skip-gram (dim 100, min_count 5, 2 epochs) on the text8 prefix in
``/work/shared/data``, brought in with ``embedpipe import`` (skipped with a message when the file is
missing), and with ``--table`` any embedding table, e.g. the Korean one of docs/benchmarks.md::

    embedpipe tokenize --input /work/shared/data/korean-dev/corpus.txt.gz --output ko-tokens --min-count 1
    embedpipe train --input ko-tokens --output ko-sgns --method sgns --dim 100 --set sgns.epochs=1 \
        --set spark.driver_memory=6g
    python tests/benchmarks/bench_index.py --rows 0 --table ko-sgns

``--threshold`` measures what the HNSW -> IVF-PQ threshold trades, build only: for each size a
clustered ``size`` x ``--dim`` table, both kinds built in a fresh process each (build seconds, index
bytes, the build's peak resident memory above the process's before it).

For each table, ``--queries`` keys drawn at random (seeded) are the query sample:

- **exact**: the blocked matmul kernel every exact search runs (``top_k_neighbours``, what each
  ``neighbors --method exact`` task computes) on the sample: queries/s, and the ground truth.
- **index**: the ``index`` job (build seconds, index bytes, kind), then the index's search kernel
  (``AnnIndex.search``, what each ``neighbors --method index`` task runs) on the same sample with
  Faiss on ``--cores`` threads: queries/s and recall@10 against exact.
- **jobs**: ``neighbors --method exact|index --queries <the sample's first --job-queries keys>`` as a
  user runs them (table read, Spark tasks, atomic write): wall seconds; the two kernel figures
  above are the per-query cost.
- **index, the other kind**: the kind ``auto`` did not pick, forced (``--kind``), same figures
  (``--no-forced`` skips it).

Each index row names its build's recall probe: the search parameter it calibrated and the recall@10
it measured on its own 1,000 keys (seed 1234; the benchmark's sample is another, seed 7), and when
``auto`` replaced an HNSW graph below the target, that graph's probe recall and build seconds.
The LSH column of docs/benchmarks.md (``neighbors --method approximate``, since retired) came from
this script as of commit c856d77, which still ran it.

Prints one Markdown table per data set; ``uptime`` load is printed with it (the machine is shared).
"""

from __future__ import annotations

import argparse
import gzip
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from embedpipe.index.build import run_index  # noqa: E402
from embedpipe.index.store import import_faiss, load_index  # noqa: E402
from embedpipe.jobconfig import IndexConfig, NeighborsConfig  # noqa: E402
from embedpipe.lookup.api import open_table  # noqa: E402
from embedpipe.lookup.neighbors import run_neighbors  # noqa: E402
from embedpipe.vectors import top_k_neighbours  # noqa: E402
from tests.benchmarks.common import spark_session  # noqa: E402

K = 10
TEXT8 = Path("/work/shared/data/text8-prefix/text8-prefix.txt.gz")


def write_clustered_table(spark, path: str, rows: int, dim: int, seed: int) -> None:
    from embedpipe.table import write_embedding_table

    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((max(1, rows // 100), dim)).astype(np.float32)
    vectors = centres[rng.integers(0, len(centres), rows)]
    vectors += rng.standard_normal((rows, dim), dtype=np.float32)
    counts = (1_000_000 / np.arange(1, rows + 1)).astype(np.int64) + 1
    table = pa.table({
        "key": pa.array([f"w{i}" for i in range(rows)]),
        "id": pa.array(np.arange(rows, dtype=np.int64)),
        "count": pa.array(counts),
        "vector": pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), dim).cast(pa.list_(pa.float32())),
    })
    staging = Path(path + "-src")
    staging.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, staging / "part-0.parquet")
    write_embedding_table(spark, spark.read.parquet(str(staging)), path, method="clustered", dim=dim, params={},
                          source="bench_index", seed=seed, tokenizer=None, key_kind="item", expected_rows=rows)


def write_text8_table(spark, workdir: Path) -> str | None:
    """gensim skip-gram on the text8 prefix, imported with ``embedpipe import``; None when the data is missing."""
    if not TEXT8.exists():
        print(f"--real: {TEXT8} is missing; skipping the trained table")
        return None
    from gensim.models import Word2Vec

    from embedpipe.interop.importer import run_import
    from embedpipe.jobconfig import ImportConfig

    words = gzip.open(TEXT8, "rt").read().split()
    sentences = [words[i:i + 1000] for i in range(0, len(words), 1000)]
    model = Word2Vec(sentences, vector_size=100, window=5, min_count=5, sg=1, negative=5, epochs=2, workers=2,
                     seed=1)
    vectors = workdir / "text8.vec"
    model.wv.save_word2vec_format(str(vectors))
    path = str(workdir / "text8-table")
    run_import(spark, ImportConfig(input=str(vectors), output=path, format="word2vec"))
    return path


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(f[f >= 0]) & set(t)) / truth.shape[1] for f, t in zip(found, truth, strict=True)]))


def job_neighbors(spark, table: str, out: str, method: str, queries: list[str] | None) -> float:
    started = time.monotonic()
    run_neighbors(spark, NeighborsConfig(table=table, output=out, k=K, method=method, queries=queries or []))
    return time.monotonic() - started


def _probe(summary: dict) -> str:
    probe = summary["probe"]
    text = f"probe recall@10 {probe['recall']:.3f}"
    replaced = probe.get("replaced")
    if replaced:
        text += (f"; replaced {replaced['kind']} at probe recall {replaced['recall']:.3f}, "
                 f"{replaced['build_seconds']:.0f} s")
    return text


def bench_table(spark, name: str, table_path: str, n_queries: int, job_queries: int, cores: int,
                workdir: Path, with_other: bool = True) -> str:
    faiss = import_faiss()
    table = open_table(table_path)
    rows = len(table)
    sample = np.sort(np.random.default_rng(7).choice(rows, min(n_queries, rows), replace=False))
    keys = [table.keys[int(r)] for r in sample]
    unit = table.unit

    started = time.monotonic()
    truth, _ = top_k_neighbours(unit, sample, K)
    exact_seconds = time.monotonic() - started
    print(f"{name}: exact kernel {len(sample) / exact_seconds:,.1f} queries/s (load {os.getloadavg()})", flush=True)

    summary = run_index(spark, IndexConfig(table=table_path))
    faiss.omp_set_num_threads(cores)
    ann = load_index(table_path, rows=rows, dim=table.dim)
    ann.search(unit, sample[:10], K)  # warm
    started = time.monotonic()
    found, _ = ann.search(unit, sample, K)
    index_seconds = time.monotonic() - started
    print(f"{name}: index {summary} {len(sample) / index_seconds:,.1f} queries/s, recall@10 {recall(found, truth):.3f}",
          flush=True)

    exact_job = job_neighbors(spark, table_path, str(workdir / f"{name}-exact"), "exact", keys[:job_queries])
    index_job = job_neighbors(spark, table_path, str(workdir / f"{name}-index"), "index", keys[:job_queries])
    print(f"{name}: jobs, {job_queries} queries: exact {exact_job:.1f} s, index {index_job:.1f} s", flush=True)

    lines = [
        f"### {name}: {rows:,} x {table.dim}, {len(sample):,} query keys, k={K}, {cores} cores",
        f"load before: {os.getloadavg()}",
        "",
        "| method | build s | index bytes | queries/s | x exact | recall@10 | "
        f"job wall s ({min(job_queries, len(keys))} queries) |",
        "|---|---|---|---|---|---|---|",
        f"| exact (blocked matmul) | — | — | {len(sample) / exact_seconds:,.1f} | 1.0 | 1.000 | {exact_job:.1f} |",
        f"| index ({summary['kind']}: {summary['build']}, {summary['search']}; {_probe(summary)}) | "
        f"{summary['build_seconds']:.1f} | "
        f"{summary['index_bytes']:,} | {len(sample) / index_seconds:,.1f} | {exact_seconds / index_seconds:.1f} | "
        f"{recall(found, truth):.3f} | {index_job:.1f} |",
    ]
    if not with_other:
        return "\n".join([*lines, f"\nload after: {os.getloadavg()}"])
    # The other kind, forced (auto picks HNSW up to HNSW_MAX_ROWS): what the threshold trades.
    other = "ivf-pq" if summary["kind"] == "hnsw" else "hnsw"
    forced = run_index(spark, IndexConfig(table=table_path, kind=other))
    ann = load_index(table_path, rows=rows, dim=table.dim)
    ann.search(unit, sample[:10], K)
    started = time.monotonic()
    found, _ = ann.search(unit, sample, K)
    forced_seconds = time.monotonic() - started
    print(f"{name}: forced {forced} {len(sample) / forced_seconds:,.1f} queries/s, "
          f"recall@10 {recall(found, truth):.3f}", flush=True)
    lines.append(f"| index, kind={other} ({forced['build']}, {forced['search']}; {_probe(forced)}) | "
                 f"{forced['build_seconds']:.1f} | "
                 f"{forced['index_bytes']:,} | {len(sample) / forced_seconds:,.1f} | "
                 f"{exact_seconds / forced_seconds:.1f} | {recall(found, truth):.3f} | — |")
    lines.append(f"\nload after: {os.getloadavg()}")
    return "\n".join(lines)


def _build_footprint(unit: np.ndarray, kind: str, results) -> None:
    """In a child process: build ``kind`` over ``unit``; (seconds, index bytes, peak RSS growth bytes)."""
    from embedpipe.index.build import build_faiss_index

    import_faiss().omp_set_num_threads(int(os.environ.get("BENCH_CORES", "2")))
    before = _vm("VmRSS")
    started = time.monotonic()
    index, _, _ = build_faiss_index(unit, kind)
    seconds = time.monotonic() - started
    results.put((seconds, int(import_faiss().serialize_index(index).nbytes), _vm("VmHWM") - before))


def _vm(field: str) -> int:
    """``field`` (VmRSS, VmHWM) of /proc/self/status, in bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def bench_threshold(sizes: list[int], dim: int, cores: int) -> str:
    """HNSW vs IVF-PQ build seconds, index bytes and peak build memory at each size, side by side."""
    import multiprocessing

    context = multiprocessing.get_context("fork")
    os.environ["BENCH_CORES"] = str(cores)
    lines = [f"### build footprint, clustered x {dim}, {cores} cores", f"load before: {os.getloadavg()}", "",
             "| rows | kind | build s | index bytes | bytes a row | peak build memory MB | load |",
             "|---|---|---|---|---|---|---|"]
    for rows in sizes:
        rng = np.random.default_rng(1)
        centres = rng.standard_normal((max(1, rows // 100), dim)).astype(np.float32)
        unit = centres[rng.integers(0, len(centres), rows)] + rng.standard_normal((rows, dim), dtype=np.float32)
        unit /= np.linalg.norm(unit, axis=1, keepdims=True)
        for kind in ("hnsw", "ivf-pq"):
            results = context.Queue()
            child = context.Process(target=_build_footprint, args=(unit, kind, results))
            child.start()
            seconds, size, peak = results.get()
            child.join()
            lines.append(f"| {rows:,} | {kind} | {seconds:.1f} | {size:,} | {size / rows:.0f} | {peak / 2**20:.0f} | "
                         f"{os.getloadavg()[0]:.1f} |")
            print(lines[-1], flush=True)
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--job-queries", type=int, default=100, help="query keys of the neighbors job runs")
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--real", action="store_true", help="also the text8 skip-gram table")
    parser.add_argument("--table", action="append", default=[], help="also this embedding table (repeatable)")
    parser.add_argument("--no-forced", dest="forced", action="store_false",
                        help="skip the kind auto did not pick (saves its build)")
    parser.add_argument("--threshold", help="comma-separated sizes: HNSW vs IVF-PQ build footprint only")
    parser.add_argument("--workdir")
    args = parser.parse_args()
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="bench-index-"))
    workdir.mkdir(parents=True, exist_ok=True)
    if args.threshold:
        print(bench_threshold([int(size) for size in args.threshold.split(",")], args.dim, args.cores), flush=True)
        return
    spark = spark_session(args.cores)
    reports = []
    if args.real:
        real = write_text8_table(spark, workdir)
        if real is not None:
            reports.append(bench_table(spark, "text8 skip-gram", real, args.queries, args.job_queries, args.cores,
                                       workdir, args.forced))
            print(reports[-1], flush=True)
    for path in args.table:  # named parent-name, so two tables called sgns do not share job outputs
        name = f"{Path(path).parent.name}-{Path(path).name}"
        reports.append(bench_table(spark, name, path, args.queries, args.job_queries, args.cores, workdir, args.forced))
        print(reports[-1], flush=True)
    if args.rows <= 0:
        return
    generated = str(workdir / "clustered")
    write_clustered_table(spark, generated, args.rows, args.dim, seed=1)
    reports.append(bench_table(spark, "clustered", generated, args.queries, args.job_queries, args.cores,
                               workdir, args.forced))
    print(reports[-1], flush=True)


if __name__ == "__main__":
    main()
