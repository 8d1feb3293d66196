"""Rows a replica touches between two syncs, measured on real corpora and extrapolated (docs/scaling.md).

    python tests/benchmarks/bench_sync_traffic.py [--text8 /work/shared/data/text8-prefix/text8-prefix.txt.gz]
        [--replicas 16] [--rounds 10] [--target-tokens 1e9] [--target-vocab 1e7] [--dim 300]

No training: a sync round of SGNS on one replica covers ``tokens / (replicas x rounds)`` corpus
tokens; the input rows it changes are the distinct words kept by subsampling, the output rows those
plus every noise word drawn (``negative`` per pair, probability count^0.75). This script samples
that directly (real subsampling, windows with word2vec's shrunk widths and noise draws over the
text8 prefix, min count 5, the sgns defaults) at several round sizes, checks the closed form
``sum_i 1 - exp(-n_i)`` (``n_i`` the expected occurrences of row ``i`` in the round) against the
samples, then evaluates the closed form for a ``--target-vocab``-key Zipf vocabulary (the text8
prefix's fitted exponent) over ``--target-tokens`` tokens. Prints the rows touched and the bytes of
one sync per replica: dense (both matrices) and touched rows (ids + rows), float32.
"""

from __future__ import annotations

import argparse
import gzip
import sys
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from embedpipe.torchtrain.corpus import keep_probabilities, noise_distribution  # noqa: E402

WINDOW, NEGATIVE, SAMPLE, MIN_COUNT = 5, 5, 1e-3, 5  # the sgns defaults (docs/configuration.md)
TEXT8 = Path("/work/shared/data/text8-prefix/text8-prefix.txt.gz")


def expected_touches(counts: np.ndarray, round_tokens: float) -> tuple[np.ndarray, np.ndarray]:
    """Expected occurrences of every word in one replica's round of ``round_tokens`` tokens: kept as a
    center (its input row changes) and, for the output row, as a context or a noise draw."""
    p = counts / counts.sum()
    kept = keep_probabilities(counts, SAMPLE) * p * round_tokens
    contexts = WINDOW + 1  # shrunk windows: 2 x mean half-width (window + 1) / 2
    pairs = float(kept.sum()) * contexts
    return kept, kept + pairs * NEGATIVE * noise_distribution(counts)


def closed_form(counts: np.ndarray, round_tokens: float) -> tuple[float, float]:
    """Rows touched if occurrences were independent (Poisson): real text is burstier, so fewer."""
    n_in, n_out = expected_touches(counts, round_tokens)
    return float((1 - np.exp(-n_in)).sum()), float((1 - np.exp(-n_out)).sum())


def sampled(ids: np.ndarray, counts: np.ndarray, round_tokens: int, rng: np.random.Generator) -> tuple[int, int]:
    """Rows touched by one round over a random stretch of the corpus (subsampled, windows, noise)."""
    start = int(rng.integers(0, len(ids) - round_tokens))
    stretch = ids[start:start + round_tokens]
    kept = stretch[rng.random(len(stretch)) < keep_probabilities(counts, SAMPLE)[stretch]]
    widths = rng.integers(1, WINDOW + 1, len(kept))
    pairs = int(np.minimum(2 * widths, len(kept) - 1).sum())
    noise = rng.choice(len(counts), size=pairs * NEGATIVE, p=noise_distribution(counts))
    rows_in = np.unique(kept)
    return len(rows_in), len(np.union1d(rows_in, noise))


def zipf_counts(vocab: int, tokens: float, exponent: float) -> np.ndarray:
    ranks = np.arange(1, vocab + 1, dtype=np.float64)
    weights = ranks ** -exponent
    return weights / weights.sum() * tokens


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--text8", type=Path, default=TEXT8)
    parser.add_argument("--replicas", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=10, help="syncs per epoch (train.averages_per_epoch)")
    parser.add_argument("--target-tokens", type=float, default=1e9)
    parser.add_argument("--target-vocab", type=float, default=1e7)
    parser.add_argument("--dim", type=int, default=300)
    args = parser.parse_args(argv)
    if not args.text8.exists():
        raise SystemExit(f"text8 prefix not found at {args.text8} (see /work/shared/data)")
    words = gzip.open(args.text8, "rt", encoding="ascii").read().split()
    frequency = Counter(words)
    vocab = [w for w, c in frequency.most_common() if c >= MIN_COUNT]
    index = {w: i for i, w in enumerate(vocab)}
    ids = np.array([index[w] for w in words if w in index], dtype=np.int64)
    counts = np.bincount(ids, minlength=len(vocab)).astype(np.float64)
    rng = np.random.default_rng(1)
    print(f"text8 prefix: {len(ids):,} tokens in vocabulary, {len(vocab):,} words (min count {MIN_COUNT})\n")
    print("| round tokens (one replica) | input rows sampled / closed form | output rows sampled / closed form |")
    print("|---|---|---|")
    for round_tokens in (2_000, 20_000, 200_000):
        runs = [sampled(ids, counts, round_tokens, rng) for _ in range(3)]
        form = closed_form(counts, round_tokens)
        print(f"| {round_tokens:,} | {np.mean([r[0] for r in runs]):,.0f} / {form[0]:,.0f} | "
              f"{np.mean([r[1] for r in runs]):,.0f} / {form[1]:,.0f} |")
    ranks = np.arange(1, len(counts) + 1)
    head = slice(10, min(len(counts), 10_000))
    exponent = -float(np.polyfit(np.log(ranks[head]), np.log(counts[head]), 1)[0])
    vocab_size = int(args.target_vocab)
    target = zipf_counts(vocab_size, args.target_tokens, exponent)
    round_tokens = args.target_tokens / (args.replicas * args.rounds)
    rows_in, rows_out = closed_form(target, round_tokens)
    dense = 2 * vocab_size * args.dim * 4
    sparse = (rows_in + rows_out) * (args.dim * 4 + 8)
    print(f"\nZipf exponent fitted on text8 ranks 10-10,000: {exponent:.3f}")
    print(f"target: {args.target_tokens:,.0f} tokens, {vocab_size:,} keys, dim {args.dim}, {args.replicas} replicas, "
          f"{args.rounds} syncs per epoch -> {round_tokens:,.0f} tokens per replica per round")
    print(f"rows touched per replica per round: input {rows_in:,.0f} ({rows_in / vocab_size:.1%}), "
          f"output {rows_out:,.0f} ({rows_out / vocab_size:.1%})")
    print(f"bytes per replica per sync: dense {dense / 1e9:.1f} GB (+ counts {2 * vocab_size * 4 / 1e6:.0f} MB); "
          f"touched rows {sparse / 1e9:.2f} GB ({sparse / dense:.1%} of dense)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
