"""Throughput of embedpipe's SGNS core against gensim on the same corpus, side by side.

Usage::

    python tests/benchmarks/bench_sgns_core.py --tokens 2000000 [--threads 2] [--epochs 1] [--repeats 3]

The corpus is gensim's Wikipedia excerpt (WikiCorpus tokenisation, ~453k tokens), repeated until
it has ``--tokens`` tokens (``--corpus synthetic`` makes a Zipf corpus instead). Both systems get
the same vocabulary (gensim's, min_count 5) and settings: skip-gram, dim 100, window 5,
negative 5, sample 1e-3, ``--threads`` workers. embedpipe runs in both CPU modes: lock-step
workers (``deterministic=True``, the default) and Hogwild workers (``deterministic=False``, the
way gensim's workers share the matrices). Raw words/s = corpus tokens x epochs / training
seconds; runs are interleaved and medians reported, because the machine is shared and noisy.
WordSim-353 Spearman is printed as a sanity check that the speed does not come from skipping
work (on a corpus this small all systems score low and noisily). Not a test: nothing is
asserted, no wall-clock limits.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import logging
import os
import time

import numpy as np


def wiki_sentences() -> list[list[str]]:
    import gensim
    from gensim.corpora.wikicorpus import WikiCorpus

    path = os.path.join(
        os.path.dirname(gensim.__file__),
        "test/test_data/enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2",
    )
    return list(WikiCorpus(path, dictionary={}, processes=1).get_texts())


def synthetic_sentences(tokens: int, vocab: int = 50_000, seed: int = 0) -> list[list[str]]:
    rng = np.random.default_rng(seed)
    p = 1.0 / np.arange(1, vocab + 1) ** 1.05
    ids = rng.choice(vocab, size=tokens, p=p / p.sum())
    words = np.array([f"w{i}" for i in range(vocab)], dtype=object)
    return [list(words[ids[i : i + 1000]]) for i in range(0, tokens, 1000)]


def repeat_to(sentences: list[list[str]], tokens: int) -> list[list[str]]:
    out, n = [], 0
    while n < tokens:
        for s in sentences:
            out.append(s)
            n += len(s)
            if n >= tokens:
                break
    return out


def wordsim(vectors: np.ndarray, key_to_index: dict[str, int]) -> tuple[float, int]:
    """Spearman correlation on gensim's WordSim-353 copy, over the pairs both words of which are known."""
    import gensim
    from scipy.stats import spearmanr

    path = os.path.join(os.path.dirname(gensim.__file__), "test/test_data/wordsim353.tsv")
    unit = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    gold, pred = [], []
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            if line.startswith("#"):
                continue
            a, b, score = line.lower().split("\t")[:3]
            if a in key_to_index and b in key_to_index:
                gold.append(float(score))
                pred.append(float(unit[key_to_index[a]] @ unit[key_to_index[b]]))
    return (float(spearmanr(gold, pred).statistic) if len(gold) > 2 else float("nan")), len(gold)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tokens", type=int, default=2_000_000)
    parser.add_argument("--corpus", choices=("wiki", "synthetic"), default="wiki")
    parser.add_argument("--threads", type=int, default=2, help="torch threads for embedpipe, workers for gensim")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=None, help="embedpipe centers per step (default: SGNSParams)")
    parser.add_argument("--mode", default="target", choices=("target", "context", "both"))
    parser.add_argument("--repeats", type=int, default=1, help="interleaved runs per system; medians are reported")
    parser.add_argument("--skip-gensim", action="store_true")
    parser.add_argument(
        "--variants", default="lockstep,hogwild",
        help="embedpipe variants: lockstep (deterministic=True) and/or hogwild (deterministic=False)",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")

    import torch
    from gensim.models import Word2Vec

    from embedpipe.trainer import SGNSParams, encode_sentences, train_sgns

    t0 = time.perf_counter()
    base = wiki_sentences() if args.corpus == "wiki" else synthetic_sentences(args.tokens)
    sentences = repeat_to(base, args.tokens)
    n_tokens = sum(map(len, sentences))
    prepared = time.perf_counter() - t0
    print(f"corpus: {args.corpus}, {len(sentences)} sentences, {n_tokens} tokens (prepared in {prepared:.1f}s)")

    settings = dict(vector_size=100, window=5, min_count=5, sg=1, hs=0, negative=5, sample=1e-3, seed=1)
    model = Word2Vec(workers=args.threads, **settings)
    model.build_vocab(sentences)  # the vocabulary both systems use
    vocab = model.wv.key_to_index
    counts = np.array([model.wv.get_vecattr(w, "count") for w in model.wv.index_to_key], dtype=np.int64)
    print(f"vocabulary: {len(vocab)} words with count >= 5, threads/workers: {args.threads}, epochs: {args.epochs}")

    start = time.perf_counter()
    corpus = encode_sentences(sentences, vocab)
    encode_seconds = time.perf_counter() - start
    extra = {"batch_size": args.batch_size} if args.batch_size else {}
    params = SGNSParams(
        dim=100, window=5, negative=5, sample=1e-3, epochs=args.epochs, seed=1, device="cpu",
        threads=args.threads, negative_mode=args.mode, **extra,
    )
    variants = {"lockstep": params, "hogwild": dataclasses.replace(params, deterministic=False)}
    print(f"(encode_sentences: {encode_seconds:.2f}s for {corpus.n_tokens} known tokens; torch {torch.__version__})")

    def run_gensim() -> tuple[float, np.ndarray]:
        model = Word2Vec(workers=args.threads, **settings)
        model.build_vocab(sentences)
        start = time.perf_counter()
        model.train(sentences, total_examples=len(sentences), epochs=args.epochs)
        return time.perf_counter() - start, model.wv.vectors

    def run_embedpipe(params: SGNSParams) -> tuple[float, np.ndarray]:
        result = train_sgns(corpus, counts, params, log_interval=1e9)
        return result.seconds, result.input_vectors

    # interleaved repeats, so both systems see the same (shared, noisy) machine; medians reported
    runs: dict[str, list[tuple[float, np.ndarray]]] = {}
    systems = [] if args.skip_gensim else [("gensim 4.4 SGNS", run_gensim)]
    for variant in args.variants.split(","):
        name = f"embedpipe {variant} ({args.mode}, batch {params.batch_size})"
        systems.append((name, functools.partial(run_embedpipe, variants[variant])))
    for _ in range(args.repeats):
        for name, run in systems:
            runs.setdefault(name, []).append(run())
    results = []
    for name, measured in runs.items():
        seconds = float(np.median([m[0] for m in measured]))
        rho, pairs = wordsim(measured[-1][1], vocab)
        spread = ", ".join(f"{n_tokens * args.epochs / m[0]:,.0f}" for m in measured)
        results.append((name, seconds, n_tokens * args.epochs / seconds, rho, pairs, spread))

    print(f"\n{'system':42s} {'seconds':>8s} {'raw words/s':>12s} {'WS353 rho':>10s}  (each run's words/s)")
    for name, seconds, rate, rho, pairs, spread in results:
        print(f"{name:42s} {seconds:8.1f} {rate:12,.0f} {rho:10.3f}  ({spread}; WS353 on {pairs} pairs)")
    if not args.skip_gensim:
        for name, _, rate, *_ in results[1:]:
            print(f"{name} / gensim speed: {rate / results[0][2]:.2f}x")


if __name__ == "__main__":
    main()
