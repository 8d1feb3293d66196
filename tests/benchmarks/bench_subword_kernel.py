"""Where fasttext's training time goes, in one process: the trainer (its kernel timed apart) vs gensim FastText.

    python tests/benchmarks/bench_subword.py --corpus korean --words 1000000 --runs fasttext \
        --workdir /tmp/ko                      # once: the tokenize job's output in /tmp/ko/tokens
    python tests/benchmarks/bench_subword_kernel.py --tokens /tmp/ko/tokens --ngrams 1-4 [--epochs 1] \
        [--runs batches kernel sgns-kernel trainer trainer-hogwild gensim]

No Spark: the tokens and vocabulary a tokenize job wrote, encoded once. What each run measures, on the
same tokens (dim 100, window 5, negative 5, sample 1e-3, the job's shrunk windows and learning rate):

* ``batches``: the batcher alone (subsampling, shrunk windows, 1,024 windows a batch), one thread: the
  work the training loop's caller thread does while the kernel trains the previous batch;
* ``kernel`` / ``sgns-kernel``: the subword kernel / SGNS's pairwise kernel alone on those same batches,
  one thread (CPU seconds: the machine is shared, and one thread's CPU time moves less with the load
  than its wall time);
* ``trainer`` / ``trainer-hogwild``: :func:`~embedpipe.torchtrain.subword_train.train_fasttext` with
  ``threads`` workers, deterministic (one kernel thread, the caller preparing batches) or Hogwild, with
  the seconds spent inside the kernel calls;
* ``gensim``: ``FastText(sg=1, workers=threads).train`` on the same token lists, same n-gram range.

Words/s here = in-vocabulary tokens x epochs / seconds for every row (the same numerator), so rows
compare as their seconds do. Prints ``uptime`` load with each row.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tokens", required=True, help="a tokenize job's output directory")
    parser.add_argument("--ngrams", default="1-4", help="minn-maxn")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", nargs="+", default=["batches", "kernel", "sgns-kernel", "trainer", "gensim"])
    args = parser.parse_args()
    if not (Path(args.tokens) / "vocab").exists():
        sys.exit(f"bench_subword_kernel: {args.tokens} is not a tokenize job's output (no vocab/)")

    import pyarrow.parquet as pq
    import torch

    from embedpipe.subwords import subword_index
    from embedpipe.torchtrain import encode_sentences, pairwise_cpu, subword_cpu
    from embedpipe.torchtrain.batching import NoiseSampler, SkipGramBatcher
    from embedpipe.torchtrain.corpus import keep_probabilities, noise_distribution
    from embedpipe.torchtrain.subword_train import FastTextParams, train_fasttext

    minn, maxn = (int(x) for x in args.ngrams.split("-"))
    vocab = pq.read_table(f"{args.tokens}/vocab").sort_by("id")
    keys = vocab.column("token").combine_chunks()
    counts = vocab.column("count").to_numpy().astype(np.int64)
    docs = pq.read_table(f"{args.tokens}/tokens", columns=["tokens"]).column("tokens")
    corpus = encode_sentences(docs, keys)
    index = subword_index(keys, minn, maxn, 2_000_000)
    per_token = float((np.diff(index.offsets) * counts).sum() / counts.sum())
    words = corpus.n_tokens * args.epochs
    print(f"{len(keys)} words, {corpus.n_tokens} in-vocabulary tokens, {len(index.buckets)} buckets in use, "
          f"{per_token:.1f} input rows per token; n-grams {minn}-{maxn}, {args.epochs} epoch(s), "
          f"{args.threads} threads", flush=True)

    def row(name: str, seconds: float, extra: str = "") -> None:
        print(f"{name:16s} {seconds:7.1f} s {words / seconds:9.0f} words/s  {extra}  "
              f"[load {' '.join(f'{x:.1f}' for x in os.getloadavg())}]", flush=True)

    noise = NoiseSampler(noise_distribution(counts), torch.device("cpu"))
    batches: list = []

    def prepared() -> list:
        if not batches:
            batcher = SkipGramBatcher(corpus, keep_probabilities(counts, 1e-3), noise, window=5, negative=5,
                                      batch_size=1024, device=torch.device("cpu"), shrink_window=True,
                                      step_draws_noise=True)
            started = time.process_time()
            for epoch in range(args.epochs):
                batches.extend(batcher.epoch(torch.Generator().manual_seed(epoch)))
            batches.append(time.process_time() - started)
        return batches[:-1]

    def kernel(name: str, step, n_rows: int) -> None:
        generator = torch.Generator().manual_seed(0)
        w_in = (torch.rand(n_rows, 100, generator=generator) - 0.5) / 100
        w_out = torch.zeros(len(keys), 100)
        work = prepared()
        step(w_in, w_out, work[0], 0.025)  # compile or load from numba's cache first
        started = time.process_time()
        for batch in work:
            step(w_in, w_out, batch, 0.025)
        row(name, time.process_time() - started, "(CPU s, one thread)")

    seconds_in_kernel = [0.0]
    timed_call = subword_cpu.SubwordStep.__call__

    def timing(self, *call_args):
        started = time.perf_counter()
        try:
            return timed_call(self, *call_args)
        finally:
            seconds_in_kernel[0] += time.perf_counter() - started

    for run in args.runs:
        if run == "batches":
            prepared()
            row("batches", batches[-1], f"({len(batches) - 1} batches; CPU s, one thread)")
        elif run == "kernel":
            kernel("kernel", subword_cpu.SubwordStep(noise.accept, noise.alias, 5, index.offsets, index.rows),
                   index.n_rows)
        elif run == "sgns-kernel":
            kernel("sgns-kernel", pairwise_cpu.PairwiseStep(noise.accept, noise.alias, 5), len(keys))
        elif run in ("trainer", "trainer-hogwild"):
            params = FastTextParams(dim=100, window=5, shrink_window=True, negative=5, sample=1e-3,
                                    epochs=args.epochs, device="cpu", threads=args.threads,
                                    deterministic=run == "trainer", minn=minn, maxn=maxn, buckets=2_000_000)
            seconds_in_kernel[0] = 0.0
            subword_cpu.SubwordStep.__call__ = timing
            try:
                result = train_fasttext(corpus, counts, params, index)
            finally:
                subword_cpu.SubwordStep.__call__ = timed_call
            row(run, result.seconds, f"(wall; {seconds_in_kernel[0]:.1f} s inside kernel calls)")
        elif run == "gensim":
            from gensim.models import FastText

            sentences = [d for d in docs.to_pylist() if d]
            model = FastText(vector_size=100, window=5, negative=5, sample=1e-3, min_count=5, sg=1,
                             workers=args.threads, seed=1, min_n=minn, max_n=maxn, bucket=2_000_000)
            model.build_vocab(sentences)
            started = time.perf_counter()
            model.train(sentences, total_examples=len(sentences), epochs=args.epochs)
            row("gensim", time.perf_counter() - started, "(wall)")
        else:
            sys.exit(f"bench_subword_kernel: unknown run {run!r}")


if __name__ == "__main__":
    main()
