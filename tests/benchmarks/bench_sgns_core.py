"""embedpipe's SGNS core (no Spark) against gensim on the same corpus, side by side: speed and quality.

Usage::

    python tests/benchmarks/bench_sgns_core.py --tokens 2000000 [--threads 2] [--epochs 1] [--repeats 3 [--vary-seed]]
    # GPU (the device machine has PyTorch and CUDA but no Spark; gensim travels as a wheel, see
    # tests/benchmarks/gpu_check.sh, which runs the CUDA tests and both of these):
    python tests/benchmarks/bench_sgns_core.py --device cuda --corpus wiki --tokens 0 --epochs 5 \
        --threads 16 --repeats 3 --vary-seed [--batch-sizes 1024 16384 65536] [--rows kernel=batched]
    python tests/benchmarks/bench_sgns_core.py --device cuda --corpus demo --demo-documents 2000000 \
        --tokens 0 --epochs 5 --threads 16 --repeats 3 --vary-seed

Corpora: ``wiki`` is gensim's Wikipedia excerpt (WikiCorpus tokenisation, ~453k tokens), repeated
until it has ``--tokens`` tokens (0: once); ``demo`` is embedpipe's generated demo corpus
(``--demo-documents``, ~12 tokens each; quality on its planted similarity pairs and analogies);
``synthetic`` is a Zipf corpus. Both systems get the same vocabulary (gensim's, min_count 5) and
settings: skip-gram, dim 100, window 5, negative 5, sample 1e-3; gensim with ``--threads`` workers.
On CPU embedpipe runs in both modes: lock-step workers (``deterministic=True``, the default) and
Hogwild workers (``deterministic=False``, the way gensim's workers share the matrices); on CUDA one
row per ``--batch-sizes`` entry. ``--batch-sizes`` and the ``kernel``/``batch_size`` keys of
``--rows`` use ``train_sgns``'s test hooks (``_kernel``, ``_batch_size``): they are not settings.
Raw words/s = corpus tokens x epochs / training seconds; runs are interleaved and medians reported,
because a shared machine is noisy. Quality: WordSim-353 / SimLex-999 Spearman and Google analogy
accuracy (the demo corpus: its planted similarity pairs and analogies); with ``--vary-seed`` the mean
over the repeats. Not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import logging
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.benchmarks.common import Row, mean_quality, render, score  # noqa: E402


def wiki_sentences() -> list[list[str]]:
    from gensim.corpora.wikicorpus import WikiCorpus

    from tests.benchmarks.common import WIKI_FILE, gensim_data_dir

    return list(WikiCorpus(str(gensim_data_dir() / WIKI_FILE), dictionary={}, processes=1).get_texts())


def demo_sentences(documents: int, workdir: Path) -> tuple[list[list[str]], tuple[Path, Path]]:
    """The generated demo corpus (whitespace-separated, one document per line) and its planted eval files."""
    from embedpipe.demo.generator import generate_corpus, write_analogy_file, write_similarity_file

    info = generate_corpus(workdir / "demo.txt", documents=documents, seed=7)
    planted = (write_similarity_file(workdir / "demo-similarity.tsv", info),
               write_analogy_file(workdir / "demo-analogies.txt", info))
    with (workdir / "demo.txt").open(encoding="utf-8") as handle:
        return [line.split() for line in handle], planted


def synthetic_sentences(tokens: int, vocab: int = 50_000, seed: int = 0) -> list[list[str]]:
    rng = np.random.default_rng(seed)
    p = 1.0 / np.arange(1, vocab + 1) ** 1.05
    ids = rng.choice(vocab, size=tokens, p=p / p.sum())
    words = np.array([f"w{i}" for i in range(vocab)], dtype=object)
    return [list(words[ids[i : i + 1000]]) for i in range(0, tokens, 1000)]


def repeat_to(sentences: list[list[str]], tokens: int) -> list[list[str]]:
    """``sentences`` repeated until they hold ``tokens`` tokens (0: as they are)."""
    if tokens <= 0:
        return sentences
    out, n = [], 0
    while n < tokens:
        for s in sentences:
            out.append(s)
            n += len(s)
            if n >= tokens:
                break
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tokens", type=int, default=2_000_000, help="repeat the corpus to this many tokens (0: once)")
    parser.add_argument("--corpus", choices=("wiki", "demo", "synthetic"), default="wiki")
    parser.add_argument("--demo-documents", type=int, default=2_000_000, help="--corpus demo: documents to generate")
    parser.add_argument("--threads", type=int, default=2, help="torch threads for embedpipe, workers for gensim")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=None,
                        help="embedpipe windows per step, one row each (default: the automatic choice)")
    parser.add_argument("--rows", nargs="+", default=[], metavar="KEY=VALUE,...",
                        help="extra embedpipe rows, each SGNSParams overrides and the hooks kernel=pairwise|batched "
                             "and batch_size=N, e.g. 'kernel=batched,batch_size=4096,lr=0.0125'")
    parser.add_argument("--repeats", type=int, default=1, help="interleaved runs per system; medians are reported")
    parser.add_argument("--vary-seed", action="store_true",
                        help="repeat i runs every system with seed 1 + i, and quality is the mean over the repeats "
                             "(each run's scores are printed): a spread for the quality comparison")
    parser.add_argument("--skip-gensim", action="store_true")
    parser.add_argument("--gensim-alphas", type=float, nargs="+", default=[0.025], metavar="ALPHA",
                        help="one gensim row per initial learning rate (the first is the reference; "
                             "0.025 is gensim's default)")
    parser.add_argument(
        "--variants", default="lockstep,hogwild",
        help="CPU: lockstep (deterministic=True) and/or hogwild (deterministic=False) rows of the default "
             "settings; 'none' runs only the --rows",
    )
    parser.add_argument("--save-vectors", type=Path, default=None,
                        help="write each embedpipe run's vectors (and the vocabulary) as .npy files here")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")

    import torch
    from gensim.models import Word2Vec

    from embedpipe.config import build_config, parse_overrides
    from embedpipe.torchtrain import SGNSParams, encode_sentences, train_sgns
    from embedpipe.torchtrain.batched_step import REFERENCE_BATCH, auto_batch_size
    from embedpipe.torchtrain.sgns_train import choose_kernel

    workdir = Path(tempfile.mkdtemp(prefix="bench-sgns-core-"))
    t0 = time.perf_counter()
    planted = None
    if args.corpus == "wiki":
        base = wiki_sentences()
    elif args.corpus == "demo":
        base, planted = demo_sentences(args.demo_documents, workdir)
    else:
        base = synthetic_sentences(args.tokens or 2_000_000)
    sentences = repeat_to(base, args.tokens)
    n_tokens = sum(map(len, sentences))
    prepared = time.perf_counter() - t0
    print(f"corpus: {args.corpus}, {len(sentences)} sentences, {n_tokens} tokens (prepared in {prepared:.1f}s)")

    settings = dict(vector_size=100, window=5, min_count=5, sg=1, hs=0, negative=5, sample=1e-3, seed=1)
    model = Word2Vec(workers=args.threads, **settings)
    model.build_vocab(sentences)  # the vocabulary both systems use
    vocab = model.wv.key_to_index
    keys = list(model.wv.index_to_key)
    counts = np.array([model.wv.get_vecattr(w, "count") for w in keys], dtype=np.int64)
    print(f"vocabulary: {len(vocab)} words with count >= 5, threads/workers: {args.threads}, epochs: {args.epochs}")

    start = time.perf_counter()
    corpus = encode_sentences(sentences, vocab)
    encode_seconds = time.perf_counter() - start
    device_name = torch.cuda.get_device_name() if args.device == "cuda" else "cpu"
    print(f"(encode_sentences: {encode_seconds:.2f}s for {corpus.n_tokens} known tokens; torch {torch.__version__}; "
          f"device {device_name})")
    base_params = SGNSParams(
        dim=100, window=5, negative=5, sample=1e-3, epochs=args.epochs, seed=1, device=args.device,
        threads=args.threads,
    )
    # each row: its params and train_sgns's hooks (_kernel, _batch_size)
    variants: dict[str, tuple[SGNSParams, dict[str, object]]] = {}
    kernel = choose_kernel(torch.device(args.device), base_params.dim, base_params.negative)
    for batch_size in args.batch_sizes or [None]:
        hooks = {"_batch_size": batch_size}
        auto = REFERENCE_BATCH if kernel == "pairwise" and args.device == "cpu" else auto_batch_size(corpus.n_tokens)
        described = f"{kernel}, batch {batch_size}" if batch_size else f"{kernel}, auto batch {auto}"
        if args.device == "cuda":
            variants[f"embedpipe cuda ({described})"] = base_params, hooks
            continue
        for variant in [] if args.variants == "none" else args.variants.split(","):
            deterministic = {"lockstep": True, "hogwild": False}[variant]
            variants[f"embedpipe {variant} ({described})"] = (
                dataclasses.replace(base_params, deterministic=deterministic), hooks)

    for row in args.rows:  # typed and validated like a job's --set key=value
        overrides = parse_overrides(row.split(","))
        hooks = {"_kernel": overrides.pop("kernel", "auto")}
        if "batch_size" in overrides:
            hooks["_batch_size"] = int(overrides.pop("batch_size"))
        variants[f"embedpipe {args.device} ({row})"] = build_config(
            SGNSParams, {**base_params.to_dict(), **overrides}, from_text_keys=frozenset(overrides)), hooks

    def run_gensim(alpha: float, seed: int) -> tuple[float, np.ndarray]:
        model = Word2Vec(workers=args.threads, **{**settings, "seed": seed, "alpha": alpha})
        model.build_vocab(sentences)
        start = time.perf_counter()
        model.train(sentences, total_examples=len(sentences), epochs=args.epochs)
        return time.perf_counter() - start, model.wv.vectors

    def run_embedpipe(variant: tuple[SGNSParams, dict[str, object]], seed: int) -> tuple[float, np.ndarray]:
        params, hooks = variant
        result = train_sgns(corpus, counts, dataclasses.replace(params, seed=seed), log_interval=1e9, **hooks)
        return result.seconds, result.input_vectors

    if args.device == "cuda":  # CUDA context, kernels (numba's compiled on first launch) and allocator warm
        for name, (params, hooks) in list(variants.items()):
            try:
                train_sgns(corpus, counts, dataclasses.replace(params, epochs=1), log_interval=1e9, **hooks)
            except Exception as error:  # e.g. a kernel whose dependency this machine lacks: report, go on
                print(f"  skipped {name}: {type(error).__name__}: {error}", flush=True)
                del variants[name]

    # interleaved repeats, so all systems see the same (shared, noisy) machine; medians reported
    runs: dict[str, list[tuple[float, np.ndarray]]] = {}
    scores: dict[str, list] = {}  # each run's quality, printed as it comes so a cut-off run still reports
    systems = [] if args.skip_gensim else [
        (f"gensim SGNS, workers={args.threads}" + ("" if alpha == 0.025 else f", alpha={alpha}"),
         functools.partial(run_gensim, alpha))
        for alpha in args.gensim_alphas
    ]
    systems += [(name, functools.partial(run_embedpipe, variant)) for name, variant in variants.items()]
    for repeat in range(args.repeats):
        for name, run in systems:
            seed = 1 + repeat if args.vary_seed else 1
            runs.setdefault(name, []).append(run(seed))
            seconds, vectors = runs[name][-1]
            scores.setdefault(name, []).append(score(keys, vectors, planted=planted))
            print(f"  ran {name}, seed {seed}: {seconds:.1f} s, {n_tokens * args.epochs / seconds:,.0f} words/s, "
                  f"{scores[name][-1].wordsim353:.3f}/{scores[name][-1].analogy:.3f}", flush=True)
    if args.save_vectors is not None:
        args.save_vectors.mkdir(parents=True, exist_ok=True)
        (args.save_vectors / "keys.txt").write_text("\n".join(keys) + "\n", encoding="utf-8")
        for i, measured in enumerate(runs.values()):
            np.save(args.save_vectors / f"vectors-{i}.npy", measured[-1][1])

    rows, spreads, qualities = [], [], []
    for name, measured in runs.items():
        seconds = float(np.median([m[0] for m in measured]))
        scored = scores[name] if args.vary_seed else scores[name][-1:]
        rows.append(Row(name, seconds, n_tokens * args.epochs / seconds, mean_quality(scored)))
        spreads.append(f"{name}: " + ", ".join(f"{n_tokens * args.epochs / m[0]:,.0f}" for m in measured))
        qualities.append(f"{name}: " + ", ".join(f"{q.wordsim353:.3f}/{q.analogy:.3f}" for q in scored))
    print("\nwords/s of each run: " + "; ".join(spreads) + "\n")
    if args.vary_seed:
        print("similarity/analogy of each run (seeds 1..): " + "; ".join(qualities) + "\n")
    print(render(rows, reference=rows[0].system, similarity="planted ρ" if planted else "WS353"))


if __name__ == "__main__":
    main()
