"""fasttext on a GPU, without Spark: embedpipe's trainer on CUDA and on CPU vs gensim FastText, side by side.

The issue's GPU target (issue 22): >= 10M words/s with the quality of the CPU trainer, on the Korean dev set
and the text8 prefix. The device machine has PyTorch, numba-cuda, pyarrow and scipy but no Spark, Java or
gensim, and ``../shared/data`` does not travel to it, so::

    # here, once (pip access): gensim as wheels (see gpu_check.sh) and the data into the repository
    echo /.gpu-data/ >> .git/info/exclude
    python tests/benchmarks/bench_subword_gpu.py --copy-data .gpu-data
    # on the device machine, carrying .whl and .gpu-data (gpu_check.sh runs exactly these):
    python tests/benchmarks/bench_subword_gpu.py --data .gpu-data --corpus korean --words 1000000 --ngrams 1-4
    python tests/benchmarks/bench_subword_gpu.py --data .gpu-data --corpus text8 --words 1000000 --ngrams 3-6

The corpus prefix is :mod:`bench_subword`'s (the first ``--words`` whitespace tokens; 0: all of it), tokenized
by the tokenize job's rules (``embedpipe.text.tokenizer.tokenize_text``, the plain-Python twin of its Spark
expression: punctuation split off, lowercased) and counted into a vocabulary of ``--min-count`` 5 with the
job's ids (count descending, then token). Every run trains on those same token lists, dim 100, the job's
defaults (window 5, negative 5, sample 1e-3, shrunk windows), ``--epochs`` 5, n-grams ``--ngrams``:

* ``cuda``: :func:`~embedpipe.torchtrain.subword_train.train_fasttext` with ``device = "cuda"`` (the
  warp-per-window kernel; its compile is paid before the clock starts, by the probe launch);
* ``cpu``: the same on CPU, the job's default (deterministic: the same vectors whatever ``--threads``, so its
  quality is the CPU job's on these tokens);
* ``gensim``: gensim ``FastText(sg=1, workers=--threads)`` with the same n-gram range and 2M buckets.

Scored as :mod:`bench_subword` scores (every analogy question counted, unseen words composed from n-grams,
Spearman over the pairs with both vectors). Words/s = the prefix's whitespace words x epochs / training
seconds, the same numerator for every row. Prints ``uptime`` load with each row; writes ``results.json``
under ``--out`` (default: a temporary directory).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.benchmarks.bench_subword import DATA, eval_sets, gensim_lookup, load_avg, read_lines, score  # noqa: E402

#: What --copy-data copies from ../shared/data (the eval sets of text8 come with gensim).
DATA_FILES = ("korean-dev/corpus.txt.gz", "korean-dev/kor2vec_questions-words.txt",
              "korean-dev/kor_ws353_kor2vec.tsv", "text8-prefix/text8-prefix.txt.gz")


def copy_data(target: Path) -> None:
    for name in DATA_FILES:
        source = DATA / name
        if not source.exists():
            sys.exit(f"bench_subword_gpu: {source} is missing (see ../shared/data/*/README.md)")
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target / name)
    print(f"copied {len(DATA_FILES)} files to {target}; carry it to the device machine")


def _tokenize(lines: list[str]) -> list[list[str]]:
    from embedpipe.jobconfig import TokenizerSettings
    from embedpipe.text.tokenizer import tokenize_text

    settings = TokenizerSettings()
    return [tokenize_text(line, settings) for line in lines]


def tokenize(lines: list[str]) -> list[list[str]]:
    """The tokenize job's regex tokens of every line, on every core (a Python scan per character)."""
    from concurrent.futures import ProcessPoolExecutor

    cores = os.cpu_count() or 1
    chunks = [lines[i::cores] for i in range(cores)]
    with ProcessPoolExecutor(cores) as pool:
        parts = list(pool.map(_tokenize, chunks))
    out: list[list[str]] = [[] for _ in lines]
    for i, part in enumerate(parts):
        out[i::cores] = part
    return [tokens for tokens in out if tokens]


def vocabulary(sentences: list[list[str]], min_count: int) -> tuple[list[str], np.ndarray]:
    """The tokenize job's vocabulary: words counted ``min_count`` times or more, ids by count desc, then token."""
    counts = Counter(token for sentence in sentences for token in sentence)
    kept = sorted(((-c, w) for w, c in counts.items() if c >= min_count))
    return [w for _, w in kept], np.array([-c for c, _ in kept], dtype=np.int64)


def embedpipe_lookup(keys: list[str], vectors: np.ndarray, subword_vectors):
    """Vectors of words: their trained row, else composed from n-gram buckets (``vectors_of(oov="subwords")``)."""
    row = {k: i for i, k in enumerate(keys)}

    def lookup(words):
        rows = np.array([row.get(w, -1) for w in words])
        out = np.zeros((len(words), vectors.shape[1]), np.float32)
        out[rows >= 0] = vectors[rows[rows >= 0]]
        missing = np.flatnonzero(rows < 0)
        if missing.size:
            out[missing] = subword_vectors.compose([words[i] for i in missing])[0]
        return out, np.abs(out).sum(axis=1) > 0
    return lookup


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--copy-data", type=Path, default=None, help="copy ../shared/data's files here and stop")
    parser.add_argument("--data", type=Path, default=DATA, help="where korean-dev/ and text8-prefix/ are")
    parser.add_argument("--corpus", choices=("korean", "text8"), default="korean")
    parser.add_argument("--words", type=int, default=1_000_000, help="whitespace-token prefix (0: the whole corpus)")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--dim", type=int, default=100)
    parser.add_argument("--min-count", type=int, default=5)
    parser.add_argument("--ngrams", default=None, help="minn-maxn (default: 1-4 for korean, 3-6 for text8)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="CPU threads (gensim workers)")
    parser.add_argument("--runs", nargs="+", default=["cuda", "gensim", "cpu"], choices=("cuda", "cpu", "gensim"))
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    if args.copy_data is not None:
        copy_data(args.copy_data)
        return

    import torch

    from embedpipe.methods.settings import FastTextSettings
    from embedpipe.subwords import SubwordVectors, subword_index
    from embedpipe.torchtrain import encode_sentences, pairwise_cuda
    from embedpipe.torchtrain.subword_train import FastTextParams, train_fasttext
    from tests.benchmarks.bench_subword import gensim_run

    minn, maxn = (int(x) for x in (args.ngrams or ("1-4" if args.corpus == "korean" else "3-6")).split("-"))
    sims, analogies = eval_sets(args.corpus, args.data)
    lines = read_lines(args.corpus, args.words or None, args.data)
    args.corpus_words = sum(len(line.split()) for line in lines)
    started = time.perf_counter()
    sentences = tokenize(lines)
    keys, counts = vocabulary(sentences, args.min_count)
    corpus = encode_sentences(sentences, {k: i for i, k in enumerate(keys)})
    index = subword_index(keys, minn, maxn, 2_000_000)
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "no CUDA device"
    print(f"corpus {args.corpus}: {len(lines)} lines, {args.corpus_words} whitespace words, {corpus.n_tokens} "
          f"in-vocabulary tokens, {len(keys)} words, {len(index.buckets)} buckets in use (n-grams {minn}-{maxn}); "
          f"tokenized in {time.perf_counter() - started:.1f} s; {args.epochs} epochs, {args.threads} CPU threads; "
          f"{device}; load {load_avg()}", flush=True)
    lowercase = args.corpus == "text8"
    results = []

    def report(name: str, seconds: float, quality: dict) -> None:
        speed = args.corpus_words * args.epochs / seconds
        results.append({"run": name, "seconds": round(seconds, 2), "words_per_second": round(speed), **quality})
        cells = "  ".join(f"{k} {v[0]:.3f} ({v[1]}/{v[2]})" for k, v in quality.items())
        print(f"{name:28s} {speed:>12,.0f} words/s {seconds:7.1f} s  {cells}  [load {load_avg()}]", flush=True)

    for run in args.runs:
        if run == "gensim":
            speed, wv = gensim_run("fasttext", sentences, args, minn, maxn)
            report(f"gensim FastText {minn}-{maxn}", speed["seconds"],
                   score(list(wv.index_to_key), wv.vectors, gensim_lookup(wv, True), sims, analogies, lowercase))
            continue
        if run == "cuda":
            if not torch.cuda.is_available():
                print("cuda: skipped, no CUDA device", flush=True)
                continue
            reason = pairwise_cuda.probe(torch.cuda.current_device(), subwords=True)  # compiles the kernel
            if reason is not None:
                print(f"cuda: skipped, the kernel cannot run: {reason}", flush=True)
                continue
        job = FastTextSettings()  # the job's defaults, passed as the job passes them (methods/fasttext.py)
        params = FastTextParams(dim=args.dim, window=job.window, shrink_window=True, negative=job.negative,
                                sample=job.sample, lr=job.step_size, min_lr=job.min_step_size, epochs=args.epochs,
                                seed=args.seed, device=run, threads=args.threads, deterministic=job.deterministic,
                                minn=minn, maxn=maxn, buckets=2_000_000)
        result = train_fasttext(corpus, counts, params, index)
        buckets = SubwordVectors(buckets=index.buckets, vectors=result.subword_vectors, minn=minn, maxn=maxn,
                                 n_buckets=2_000_000)
        report(f"embedpipe fasttext ({result.device})", result.seconds,
               score(keys, result.input_vectors, embedpipe_lookup(keys, result.input_vectors, buckets), sims,
                     analogies, lowercase))
    out = args.out or Path(tempfile.mkdtemp(prefix="bench_subword_gpu-"))
    out.mkdir(parents=True, exist_ok=True)
    (out / f"results-{args.corpus}.json").write_text(json.dumps(results, indent=1))
    print(f"results: {out / f'results-{args.corpus}.json'}")


if __name__ == "__main__":
    main()
