"""`embedpipe embed` vs the straightforward Spark SQL plan, and the neighbors job, on generated data.

    python tests/benchmarks/bench_lookup.py [--docs 100000] [--tokens 50] [--keys 100000] [--dim 128]
        [--cores 2] [--repeat 2] [--neighbor-keys 100000] [--workdir DIR]

Data: ``--keys`` random keys x ``--dim`` float32 table (Zipf-like counts); ``--docs`` documents of
about ``--tokens`` tokens drawn Zipf-like from the keys, about 2% of them out of vocabulary.
Both plans compute the count-weighted sum S.E (``combiner = sum``, OOV skipped) and write
the same Parquet (every input column + vector): embedpipe's job (``strategy auto`` -> broadcast +
a scalar Arrow UDF) and the SQL plan (explode the tokens, join the table, group by document, sum
the vectors element-wise, join the sums back to the documents; ``--sql-doc-id-only`` drops that
last join and writes only doc_id + vector, which favours the SQL plan). The
script checks the outputs agree (float32 tolerance) and prints seconds, the speed-up and tokens/s
per core. The neighbors job then runs exact top-10 over a ``--neighbor-keys`` table.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from embedpipe.jobconfig import EmbedConfig, NeighborsConfig  # noqa: E402
from embedpipe.lookup.embed import run_embed  # noqa: E402
from embedpipe.lookup.neighbors import run_neighbors  # noqa: E402
from tests.benchmarks.common import spark_session  # noqa: E402


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


def compare(spark, ours: str, theirs: str) -> tuple[int, float]:
    """(rows compared, largest relative difference of a vector) between the two outputs."""
    from pyspark.sql import functions as F

    a = spark.read.parquet(ours).filter(F.col("vector").isNotNull()).select("doc_id", F.col("vector").alias("a"))
    b = spark.read.parquet(theirs).filter(F.col("vector").isNotNull()).select("doc_id", F.col("vector").alias("b"))
    joined = a.join(b, "doc_id", "full_outer")
    diff = F.array_max(F.zip_with("a", "b", lambda x, y: F.abs(x - y)))
    scale = F.greatest(F.array_max(F.transform("b", lambda y: F.abs(y))), F.lit(1e-6))
    row = joined.agg(F.count(F.lit(1)).alias("rows"), F.sum((F.col("a").isNull() | F.col("b").isNull())
                                                             .cast("int")).alias("unmatched"),
                     F.max(diff / scale).alias("rel")).first()
    if row["unmatched"]:
        raise SystemExit(f"outputs differ: {row['unmatched']} documents embedded by only one plan")
    return int(row["rows"]), float(row["rel"] or 0.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=100_000)
    parser.add_argument("--tokens", type=int, default=50)
    parser.add_argument("--keys", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--neighbor-keys", type=int, default=100_000, help="0 skips the neighbors run")
    parser.add_argument("--repeat", type=int, default=2, help="runs of each plan; the best counts")
    parser.add_argument("--skip-sql", action="store_true", help="only time embedpipe's job")
    parser.add_argument("--sql-doc-id-only", action="store_true",
                        help="let the SQL plan write only doc_id + vector (embedpipe keeps every input column)")
    parser.add_argument("--workdir", default=None)
    args = parser.parse_args()

    spark = spark_session(args.cores)
    with tempfile.TemporaryDirectory(prefix="bench-lookup-", dir=args.workdir) as tmp:
        work = Path(tmp)
        table = str(work / "table")
        write_table(spark, table, args.keys, args.dim, seed=1)
        tokens = write_docs(work / "docs", args.docs, args.tokens, args.keys, seed=2)
        print(f"data: {args.docs} docs, {tokens} tokens, table {args.keys} x {args.dim}, {args.cores} cores")

        # Each plan runs --repeat times, alternating; the best time counts (the first run of a
        # session also pays JVM warm-up and Python worker start-up).
        ours = theirs = float("inf")
        for _ in range(args.repeat):
            started = time.perf_counter()
            summary = run_embed(spark, EmbedConfig(table=table, input=str(work / "docs"),
                                                   output=str(work / "ours"), combiner="sum"))
            ours = min(ours, time.perf_counter() - started)
            if not args.skip_sql:
                started = time.perf_counter()
                sql_plan(spark, str(work / "docs"), table, str(work / "sql"), args.dim, not args.sql_doc_id_only)
                theirs = min(theirs, time.perf_counter() - started)
        print(f"embedpipe embed ({summary['strategy']}): {ours:.1f}s, {tokens / ours / args.cores:,.0f} tokens/s "
              f"per core, OOV rate {summary['oov_rate']:.3f}")
        if not args.skip_sql:
            rows, rel = compare(spark, str(work / "ours"), str(work / "sql"))
            print(f"Spark SQL explode/join/group-by: {theirs:.1f}s, {tokens / theirs / args.cores:,.0f} tokens/s "
                  f"per core")
            print(f"speed-up: {theirs / ours:.1f}x; outputs agree on {rows} documents (max relative "
                  f"difference {rel:.2e})")
        if args.neighbor_keys:
            nn_table = str(work / "nn-table")
            write_table(spark, nn_table, args.neighbor_keys, args.dim, seed=3)
            started = time.perf_counter()
            run_neighbors(spark, NeighborsConfig(table=nn_table, output=str(work / "nn"), k=10))
            print(f"neighbors exact top-10, {args.neighbor_keys} x {args.dim}: {time.perf_counter() - started:.1f}s")
    spark.stop()


if __name__ == "__main__":
    main()
