"""`embedpipe embed` as a user runs it, against the plain Spark SQL plan and a one-process NumPy floor.

    python tests/benchmarks/bench_lookup.py [--docs 200000 1000000] [--tokens 50] [--keys 100000]
        [--dim 128] [--cores 2] [--workdir DIR]

Data: ``--keys`` random keys x ``--dim`` float32 table (Zipf-like counts); for each ``--docs`` size,
documents of about ``--tokens`` tokens drawn Zipf-like from the keys, about 2% of them out of
vocabulary, in 8 Parquet files. Every plan computes the count-weighted sum S.E (OOV skipped) and
writes Parquet, and each runs as its own process, its start-up included (the way a user runs it):

* ``embedpipe``: ``embedpipe embed --combiner sum --master local[cores]`` (``strategy auto``:
  the table broadcast to a vectorised Arrow kernel), every input column + vector written;
* ``spark-sql``: the straightforward plan in a fresh Spark session with the same settings (explode
  the tokens, broadcast-join the table, group by document, sum the arrays element-wise, join the sums
  back to the documents so the output has the same columns);
* ``numpy``: the floor, one Python process and no Spark: pyarrow reads the same Parquet, a
  dictionary lookup (``pyarrow.compute.index_in``) turns tokens into table rows, NumPy gathers and
  sums them per document (``np.add.reduceat``), pyarrow writes Parquet.

The script checks that the three outputs agree (largest relative difference per vector, against the
largest component, must be below 1e-6 relative to float32 sums; reported) and prints wall seconds,
tokens/s per core and the ratios. Not a test: nothing but agreement is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.benchmarks.common import spark_session  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


def write_table(spark, path: str, keys: int, dim: int, seed: int) -> None:
    from embedpipe.table import write_embedding_table

    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((keys, dim)).astype(np.float32)
    counts = (1_000_000 / np.arange(1, keys + 1)).astype(np.int64) + 1
    table = pa.table({
        "key": pa.array([f"w{i}" for i in range(keys)]),
        "id": pa.array(np.arange(keys, dtype=np.int64)),
        "count": pa.array(counts),
        "vector": pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), dim).cast(pa.list_(pa.float32())),
    })
    staging = Path(path + "-src")
    staging.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, staging / "part-0.parquet")
    frame = spark.read.parquet(str(staging))
    write_embedding_table(spark, frame, path, method="random", dim=dim, params={}, source="bench", seed=seed,
                          tokenizer=None, key_kind="item", expected_rows=keys)


def write_docs(path: Path, docs: int, tokens: int, keys: int, seed: int, files: int = 8) -> int:
    """Zipf-like token draws (2% OOV), ``files`` Parquet files; returns the number of tokens."""
    rng = np.random.default_rng(seed)
    dictionary = pa.array([f"w{i}" for i in range(keys)] + [f"oov{i}" for i in range(1000)])
    path.mkdir(parents=True, exist_ok=True)
    total = 0
    for part, chunk in enumerate(np.array_split(np.arange(docs), files)):
        lengths = rng.integers(tokens // 2, tokens * 3 // 2 + 1, size=chunk.size)
        n = int(lengths.sum())
        ids = np.minimum(rng.zipf(1.1, n), keys) - 1
        oov = rng.random(n) < 0.02
        ids[oov] = keys + rng.integers(0, 1000, int(oov.sum()))
        values = pa.DictionaryArray.from_arrays(pa.array(ids.astype(np.int32)), dictionary).cast(pa.string())
        offsets = pa.array(np.r_[0, np.cumsum(lengths)].astype(np.int32))
        pq.write_table(pa.table({
            "doc_id": pa.array(chunk.astype(np.int64)),
            "tokens": pa.ListArray.from_arrays(offsets, values),
        }), path / f"part-{part:03d}.parquet")
        total += n
    return total


def sql_plan(spark, docs: str, table: str, output: str, dim: int, keep_columns: bool) -> None:
    """The straightforward plan: explode, join, group by and sum (element-wise, float32 result).

    With ``keep_columns`` the sums are joined back to the documents, so the output has the same
    columns as embedpipe's (every input column + vector); without, only ``doc_id`` + ``vector``.
    """
    from pyspark.sql import functions as F

    documents = spark.read.parquet(docs)
    exploded = documents.select("doc_id", F.explode("tokens").alias("key"))
    joined = exploded.join(spark.read.parquet(table).select("key", "vector"), "key")
    zero = F.array_repeat(F.lit(0.0).cast("double"), dim)
    summed = joined.groupBy("doc_id").agg(
        F.aggregate(F.collect_list("vector"), zero, lambda acc, v: F.zip_with(acc, v, lambda a, b: a + b))
        .alias("vector")
    )
    result = summed.select("doc_id", F.col("vector").cast("array<float>").alias("vector"))
    if keep_columns:
        result = documents.join(result, "doc_id", "left")
    result.write.mode("overwrite").parquet(output)


def numpy_floor(docs: str, table: str, output: str) -> None:
    """The one-process floor: pyarrow in, a dictionary lookup, NumPy gather + reduceat, pyarrow out."""
    import pyarrow.compute as pc
    import pyarrow.dataset as ds

    rows = ds.dataset(table, format="parquet").to_table(columns=["key", "vector"])
    dim = len(rows.column("vector")[0])
    vectors = np.asarray(rows.column("vector").combine_chunks().flatten(), dtype=np.float32).reshape(-1, dim)
    keys = rows.column("key").combine_chunks()
    Path(output).mkdir(parents=True)
    writer = None
    for batch in ds.dataset(docs, format="parquet").to_batches(batch_size=20_000):
        tokens = batch.column("tokens")
        lengths = pc.list_value_length(tokens).fill_null(0).to_numpy()
        ids = pc.index_in(tokens.flatten(), value_set=keys)
        found = ids.is_valid().to_numpy(zero_copy_only=False)
        gathered = vectors[ids.fill_null(0).to_numpy()]
        gathered[~found] = 0.0
        starts = np.r_[0, np.cumsum(lengths)[:-1]]
        sums = np.add.reduceat(gathered, starts, axis=0) if len(gathered) else np.zeros((len(starts), dim), np.float32)
        sums[lengths == 0] = 0.0
        per_doc_found = np.add.reduceat(found.astype(np.int64), starts) if len(found) else np.zeros(len(starts))
        per_doc_found[lengths == 0] = 0
        vector = pa.FixedSizeListArray.from_arrays(pa.array(sums.astype(np.float32).reshape(-1)), dim)
        vector = pc.if_else(pa.array(per_doc_found > 0), vector.cast(pa.list_(pa.float32())), None)
        out = pa.RecordBatch.from_arrays(
            [*batch.columns, vector, pa.array(per_doc_found.astype(np.int32)), pa.array(lengths.astype(np.int32))],
            names=[*batch.schema.names, "vector", "tokens_found", "tokens_total"],
        )
        if writer is None:
            writer = pq.ParquetWriter(f"{output}/part-0.parquet", out.schema)
        writer.write_batch(out)
    if writer is not None:
        writer.close()


def sorted_vectors(path: str) -> tuple[np.ndarray, np.ndarray]:
    """(doc ids, vectors) of an output, documents with a vector only, sorted by doc id."""
    import pyarrow.dataset as ds

    frame = ds.dataset(path, format="parquet").to_table(columns=["doc_id", "vector"])
    frame = frame.filter(frame.column("vector").is_valid()).sort_by("doc_id")
    dim = len(frame.column("vector")[0])
    vectors = np.asarray(frame.column("vector").combine_chunks().flatten(), dtype=np.float64).reshape(-1, dim)
    return frame.column("doc_id").to_numpy(), vectors


def largest_difference(ours: str, theirs: str) -> tuple[int, float]:
    """(documents compared, largest |a - b| / max|b| over documents); exits if the documents differ."""
    ids_a, a = sorted_vectors(ours)
    ids_b, b = sorted_vectors(theirs)
    if not np.array_equal(ids_a, ids_b):
        raise SystemExit(f"outputs differ: {len(ids_a)} vs {len(ids_b)} documents with a vector")
    scale = np.maximum(np.abs(b).max(axis=1), 1e-6)
    return len(ids_a), float((np.abs(a - b).max(axis=1) / scale).max())


def timed(command: list[str], log: Path) -> float:
    """Run one plan as its own process (stdout/stderr to ``log``); its wall seconds."""
    started = time.perf_counter()
    with log.open("w") as handle:
        done = subprocess.run(command, stdout=handle, stderr=subprocess.STDOUT, cwd=ROOT, check=False)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command[:4])} ... failed ({done.returncode}); see {log}")
    return seconds


def run_sizes(args: argparse.Namespace, work: Path) -> None:
    spark = spark_session(args.cores)
    table = str(work / "table")
    write_table(spark, table, args.keys, args.dim, seed=1)
    spark.stop()
    print(f"table {args.keys} x {args.dim}, {args.cores} cores, load average {os.getloadavg()[0]:.1f}")
    print("| documents (tokens) | plan | wall s | tokens/s per core | embedpipe vs it | max rel. difference |")
    print("|---|---|---|---|---|---|")
    me = Path(__file__).resolve()
    for docs in args.docs:
        data = work / f"docs-{docs}"
        tokens = write_docs(data, docs, args.tokens, args.keys, seed=2)
        outputs = {name: work / f"out-{name}-{docs}" for name in ("embedpipe", "spark-sql", "numpy")}
        commands = {
            "embedpipe": [str(Path(sys.executable).with_name("embedpipe")), "embed", "--table", table,
                          "--input", str(data), "--output", str(outputs["embedpipe"]), "--combiner", "sum",
                          "--master", f"local[{args.cores}]"],
            "spark-sql": [sys.executable, str(me), "--plan", "spark-sql", "--plan-args",
                          json.dumps([str(data), table, str(outputs["spark-sql"]), args.dim, args.cores])],
            "numpy": [sys.executable, str(me), "--plan", "numpy", "--plan-args",
                      json.dumps([str(data), table, str(outputs["numpy"])])],
        }
        seconds = {name: timed(command, work / f"{name}-{docs}.log") for name, command in commands.items()}
        for name in commands:
            rows, rel = (0, 0.0) if name == "embedpipe" else largest_difference(
                str(outputs["embedpipe"]), str(outputs[name]))
            if rel > 1e-6:
                raise SystemExit(f"{name} and embedpipe disagree: largest relative difference {rel:.2e}")
            ratio = seconds[name] / seconds["embedpipe"]
            print(f"| {docs:,} ({tokens:,}) | {name} | {seconds[name]:.1f} | "
                  f"{tokens / seconds[name] / args.cores:,.0f} | {ratio:.2f}x | "
                  + ("" if name == "embedpipe" else f"{rel:.1e} on {rows:,} documents") + " |", flush=True)
        print(f"load average after {docs:,} documents: {os.getloadavg()[0]:.1f}")


def run_plan(plan: str, plan_args: list) -> None:
    """One reference plan in this process (called by the script itself, so it pays its own start-up)."""
    if plan == "numpy":
        numpy_floor(*plan_args)
        return
    docs, table, output, dim, cores = plan_args
    from embedpipe.sparkenv import local_shuffle_partitions

    spark = spark_session(cores)  # the job's own shuffle partitions, so only the plan differs
    spark.conf.set("spark.sql.shuffle.partitions", str(local_shuffle_partitions(f"local[{cores}]")))
    sql_plan(spark, docs, table, output, dim, keep_columns=True)
    spark.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, nargs="+", default=[200_000, 1_000_000])
    parser.add_argument("--tokens", type=int, default=50)
    parser.add_argument("--keys", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--workdir", default=None)
    parser.add_argument("--plan", choices=("spark-sql", "numpy"), help=argparse.SUPPRESS)
    parser.add_argument("--plan-args", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.plan:
        run_plan(args.plan, json.loads(args.plan_args))
        return
    with tempfile.TemporaryDirectory(prefix="bench-lookup-", dir=args.workdir) as tmp:
        run_sizes(args, Path(tmp))


if __name__ == "__main__":
    main()
