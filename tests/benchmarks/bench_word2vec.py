"""MLlib Word2Vec and embedpipe sgns (through `embedpipe train`) vs gensim, side by side on one corpus.

    python tests/benchmarks/bench_word2vec.py [--epochs 5] [--demo-documents 0] [--sgns-processes 1 2]
        [--sgns-modes lockstep hogwild] [--gensim-modes sgns hs] [--skip-mllib]

    python tests/benchmarks/bench_word2vec.py --demo-documents 2000000   # adds a >= 20M-token demo corpus

Corpus: the Wikipedia excerpt shipped in gensim's test data (WikiCorpus-tokenized), optionally also a
generated demo corpus. Settings: skip-gram, dim 100, window 5, min_count 5, the same epochs for all.
Raw words/s = corpus tokens x epochs / training seconds (the fit only; reading and writing excluded).
For embedpipe sgns the fit is the whole Spark stage (shuffle, barrier task start, encoding, training,
returning the vectors); a second table splits it into task 0's reading+encoding and training time.
embedpipe sgns runs with threads = cores / processes, lock-step (``deterministic``, the default,
repeatable) and Hogwild (``--no-deterministic``, as gensim's workers) — ``--sgns-modes`` picks.
gensim runs with workers = cores, as SGNS (negative 5, sample 1e-3) and as hierarchical softmax
without subsampling (MLlib's objective). Quality: WordSim-353 / SimLex-999 Spearman and Google
analogy accuracy (3CosAdd, 30k most frequent words).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import pyarrow.dataset as pads

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from embedpipe.jobconfig import TokenizeConfig, TrainConfig  # noqa: E402
from embedpipe.methods.pipeline import run_train  # noqa: E402
from embedpipe.table import read_embedding_table  # noqa: E402
from embedpipe.text.pipeline import run_tokenize  # noqa: E402
from tests.benchmarks.common import Row, Timer, render, score, spark_session, write_wiki_corpus  # noqa: E402


def bench_corpus(
    spark, corpus: Path, tokens_total: int, workdir: Path, args: argparse.Namespace, splits: list[tuple[str, dict]],
    planted: tuple[Path, Path] | None = None,
) -> list[Row]:
    from gensim.models import Word2Vec

    tokens_dir = str(workdir / "tokens")
    run_tokenize(spark, TokenizeConfig(input=str(corpus), output=tokens_dir, min_count=5))
    rows: list[Row] = []
    for partitions in [] if args.skip_mllib else args.partitions:
        table_dir = str(workdir / f"mllib-{partitions}")
        summary = run_train(spark, TrainConfig(
            input=tokens_dir, output=table_dir, method="word2vec", dim=100, seed=1,
            settings={"window": 5, "min_count": 5, "epochs": args.epochs, "partitions": partitions},
        ))
        table = read_embedding_table(table_dir)
        seconds = summary["fit_seconds"]
        rows.append(Row(f"MLlib Word2Vec (HS), {partitions} partition(s)", seconds,
                        tokens_total * args.epochs / seconds, score(table.keys, table.vectors, planted=planted)))

    for processes in args.sgns_processes:
        threads = max(1, (os.cpu_count() or 2) // processes)
        for mode in args.sgns_modes:
            table_dir = str(workdir / f"sgns-{processes}-{mode}")
            summary = run_train(spark, TrainConfig(  # the tokenize above already kept words counted 5+ times
                input=tokens_dir, output=table_dir, method="sgns", dim=100, seed=1, device="cpu", processes=processes,
                threads=threads, settings={"window": 5, "negative": 5, "sample": 1e-3, "epochs": args.epochs,
                                           "deterministic": mode == "lockstep"},
            ))
            table = read_embedding_table(table_dir)
            seconds = summary["fit_seconds"]
            system = f"embedpipe sgns, {processes} process(es) x {threads} thread(s), {mode}"
            quality = score(table.keys, table.vectors, planted=planted)
            rows.append(Row(system, seconds, tokens_total * args.epochs / seconds, quality))
            splits.append((system, summary))

    sentences = [list(t) for t in pads.dataset(tokens_dir + "/tokens").to_table(columns=["tokens"])
                 .column("tokens").to_pylist()]
    workers = os.cpu_count() or 2
    gensim_runs = {
        "sgns": (f"gensim SGNS, workers={workers}", {"negative": 5, "hs": 0, "sample": 1e-3}),
        "hs": (f"gensim HS no subsampling, workers={workers}", {"negative": 0, "hs": 1, "sample": 0}),
    }
    for label, kwargs in (gensim_runs[mode] for mode in args.gensim_modes):
        model = Word2Vec(vector_size=100, window=5, min_count=5, sg=1, workers=workers, seed=1, **kwargs)
        model.build_vocab(sentences)
        with Timer() as timer:
            model.train(sentences, total_examples=len(sentences), epochs=args.epochs)
        keys = list(model.wv.index_to_key)
        rows.append(Row(label, timer.seconds, tokens_total * args.epochs / timer.seconds,
                        score(keys, model.wv.vectors, planted=planted)))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--partitions", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--sgns-processes", type=int, nargs="*", default=[1, 2])
    parser.add_argument("--sgns-modes", nargs="*", choices=("lockstep", "hogwild"), default=["lockstep", "hogwild"],
                        help="embedpipe sgns CPU thread modes: lockstep (deterministic) and/or hogwild")
    parser.add_argument("--gensim-modes", nargs="+", choices=("sgns", "hs"), default=["sgns", "hs"],
                        help="gensim runs: SGNS (the reference for the ratios) and/or hierarchical softmax")
    parser.add_argument("--skip-mllib", action="store_true", help="leave MLlib Word2Vec out (it is the slowest)")
    parser.add_argument("--demo-documents", type=int, default=0,
                        help="also benchmark a generated demo corpus of this many documents (~12 tokens each)")
    args = parser.parse_args()
    spark = spark_session()
    with tempfile.TemporaryDirectory(prefix="embedpipe-bench-") as tmp:
        work = Path(tmp)
        corpora = []
        wiki = work / "wiki.txt"
        corpora.append(("Wikipedia excerpt (gensim test data)", wiki, write_wiki_corpus(wiki), None))
        if args.demo_documents:
            from embedpipe.demo.generator import generate_corpus, write_analogy_file, write_similarity_file

            info = generate_corpus(work / "demo.txt", documents=args.demo_documents, seed=7)
            planted = (write_similarity_file(work / "demo-similarity.tsv", info),
                       write_analogy_file(work / "demo-analogies.txt", info))
            corpora.append((f"demo corpus ({args.demo_documents:,} documents; quality on its planted pairs and "
                            "analogies)", Path(info.path), info.tokens, planted))
        for name, path, tokens, planted in corpora:
            splits: list[tuple[str, dict]] = []
            rows = bench_corpus(spark, path, tokens, work / path.stem, args, splits, planted)
            print(f"\n### {name}: {tokens:,} tokens, {args.epochs} epochs\n")
            reference = next((row.system for row in rows if row.system.startswith("gensim SGNS")), rows[-1].system)
            print(render(rows, reference=reference, similarity="planted similarity" if planted else "WS353"))
            if splits:
                print("\nembedpipe sgns job time (s): the Spark stage (fit) split by task 0's clocks\n")
                print("| system | fit | to task start (input stage, worker) | torch import | read + encode | train "
                      "| return vectors | train-only words/s |")
                print("|---|---|---|---|---|---|---|---|")
                for system, summary in splits:
                    parts = [summary[f"{p}_seconds"] for p in ("fit", "start", "import", "encode", "train", "result")]
                    print("| " + system + " | " + " | ".join(f"{p:.1f}" for p in parts)
                          + f" | {tokens * args.epochs / summary['train_seconds']:,.0f} |")
    spark.stop()


if __name__ == "__main__":
    main()
