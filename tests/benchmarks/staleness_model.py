"""A CPU model of the CUDA pairwise kernel's staleness: does Hogwild over thousands of warps keep
word2vec's quality? Runs ``bench_sgns_core.py`` with the CPU pairwise kernel replaced by the model.

Usage (any bench_sgns_core.py arguments after the model's own)::

    python tests/benchmarks/staleness_model.py --warps 4096 [--lost] --corpus demo \\
        --demo-documents 2000000 --tokens 0 --epochs 5 --threads 1 --skip-gensim --variants none --rows threads=1

``--warps W`` model warps each own one window and train one of its pairs per round; every warp of
a round scores from the rows as the previous round left them, and the round's updates are then
added (what atomic adds give when W warps are in flight). ``--lost`` keeps only the last update of
each row per round instead (what plain read-modify-write stores do to a row many warps hit at
once). ``--warps 1`` is the CPU pairwise kernel (its noise draws aside). Measured 2026-11-26 on the
24M-token demo corpus, seed 1: W=1 planted similarity 0.620 / analogies 0.607; W=4096 0.623 /
0.615; W=4096 --lost 0.473 / 0.596 (gensim, 16 workers, seeds 1-3: 0.617 / 0.618). Not a test.
"""

from __future__ import annotations

import argparse
import runpy
import sys
from pathlib import Path

import numba
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from embedpipe.torchtrain import pairwise_cpu as pairwise  # noqa: E402
from embedpipe.torchtrain.kernel_common import MAX_EXP  # noqa: E402


@numba.njit(nogil=True, fastmath=True)
def _rounds(w_in, w_out, centers, contexts, mask, accept, alias, negative, lr, seed, warps, lost):
    state = pairwise._seed(seed)
    n, width = contexts.shape
    dim = w_in.shape[1]
    terms_max = negative + 1
    window = np.full(warps, -1, np.int64)  # -1: needs a window, -2: no windows left
    column = np.zeros(warps, np.int64)
    rows = np.zeros(warps, np.int64)
    outputs = np.zeros((warps, terms_max), np.int64)
    terms = np.zeros(warps, np.int64)
    gradients = np.zeros((warps, terms_max), np.float32)
    inputs = np.zeros((warps, dim), np.float32)
    others = np.zeros((warps, terms_max, dim), np.float32)
    active = np.zeros(warps, np.bool_)
    next_window = 0
    loss = 0.0
    while True:
        any_active = False
        for w in range(warps):  # scoring: every warp from the rows as the last round left them
            active[w] = False
            while window[w] != -2:
                if window[w] == -1 or column[w] >= width:
                    if next_window >= n:
                        window[w] = -2
                        break
                    window[w], column[w] = next_window, 0
                    next_window += 1
                if mask[window[w], column[w]] != 0.0:
                    active[w] = True
                    break
                column[w] += 1
            if not active[w]:
                continue
            any_active = True
            i = window[w]
            rows[w], positive = contexts[i, column[w]], centers[i]
            outputs[w, 0] = positive
            k = 1
            for _ in range(negative):
                out = pairwise._draw(accept, alias, state)
                if out != positive:
                    outputs[w, k] = out
                    k += 1
            terms[w] = k
            inputs[w] = w_in[rows[w]]
            for t in range(k):
                others[w, t] = w_out[outputs[w, t]]
                score = np.float32(0.0)
                for x in range(dim):
                    score += inputs[w, x] * others[w, t, x]
                z = score if t == 0 else -score
                loss += np.log1p(np.exp(-z)) if z > -30 else -z
                miss = 1.0 / (1.0 + np.exp(z))
                skip = abs(z) >= MAX_EXP
                gradients[w, t] = 0.0 if skip else (lr * miss if t == 0 else -lr * miss)
        if not any_active:
            return loss
        for w in range(warps):  # the round's updates: summed, or the last one per row (lost)
            if not active[w]:
                continue
            for t in range(terms[w]):
                out, g = outputs[w, t], gradients[w, t]
                for x in range(dim):
                    base = others[w, t, x] if lost else w_out[out, x]
                    w_out[out, x] = base + g * inputs[w, x]
            for x in range(dim):
                update = np.float32(0.0)
                for t in range(terms[w]):
                    update += gradients[w, t] * others[w, t, x]
                w_in[rows[w], x] = (inputs[w, x] if lost else w_in[rows[w], x]) + update
            column[w] += 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], add_help=False)
    parser.add_argument("--warps", type=int, required=True)
    parser.add_argument("--lost", action="store_true")
    args, rest = parser.parse_known_args()

    def model(w_in, w_out, centers, contexts, mask, accept, alias, negative, lr, seed):
        return _rounds(w_in, w_out, centers, contexts, mask, accept, alias, negative, lr, seed, args.warps, args.lost)

    pairwise._train_windows = model  # PairwiseStep looks it up at call time
    sys.argv = [str(Path(__file__).with_name("bench_sgns_core.py")), *rest]
    print(f"staleness model: {args.warps} warps, {'last update per row' if args.lost else 'updates summed'}")
    runpy.run_path(sys.argv[0], run_name="__main__")


if __name__ == "__main__":
    main()
