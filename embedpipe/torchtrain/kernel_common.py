"""What the SGNS steps share: gensim's rule for saturated terms, the per-pair noise draws, the CUDA layout.

A module of its own so that dependencies point one way: the batched step, the pairwise CPU kernel
(:mod:`embedpipe.torchtrain.pairwise_cpu`), the pairwise CUDA step
(:mod:`embedpipe.torchtrain.pairwise_cuda`) and its kernel (:mod:`embedpipe.torchtrain._cuda_kernels`)
all import from here, and nothing here imports them. The random-number functions are plain
Python that each kernel compiles for its own target (numba's CPU ``njit``, ``cuda.jit``), so the
CPU and CUDA kernels draw the same noise words from the same seed.
"""

from __future__ import annotations

import numpy as np

#: A term (the observed pair or a noise word) whose score ``u.v`` is this far or further from 0 is
#: not updated (its loss still counts), as in gensim: word2vec's ``MAX_EXP``, the end of its sigmoid
#: table. Measured in ``docs/decisions.md`` ("max_exp").
MAX_EXP = 6.0

# --- the pairwise CUDA kernel's layout (needed without importing numba's CUDA target) -------------

WARP = 32
#: Coordinates each lane keeps in registers: ``dim`` up to 32 x 16 = 512.
PER_LANE = 16
MAX_DIM = WARP * PER_LANE
#: Scores a lane keeps per pair: the observed output and up to 31 noise words.
MAX_TERMS = 32


def seed_state_py(seed: int) -> np.ndarray:
    """The generator state for ``seed``: one splitmix64 step, never 0 (xorshift's fixed point)."""
    z = np.uint64(seed) + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z = z ^ (z >> np.uint64(31))
    state = np.empty(1, dtype=np.uint64)
    state[0] = z if z != np.uint64(0) else np.uint64(1)
    return state


def draw_py(accept: np.ndarray, alias: np.ndarray, state: np.ndarray) -> int:
    """One noise word by Walker's alias method (the tables of :class:`~embedpipe.torchtrain.batching.NoiseSampler`).

    One xorshift64* number per draw (a few cycles, like word2vec's LCG but without its weak low
    bits): the high 32 bits pick the slot, the low 32 bits decide between it and its alias.
    """
    x = state[0]
    x ^= x >> np.uint64(12)
    x ^= x << np.uint64(25)
    x ^= x >> np.uint64(27)
    state[0] = x
    r = x * np.uint64(0x2545F4914F6CDD1D)
    slot = np.int64(((r >> np.uint64(32)) * np.uint64(accept.shape[0])) >> np.uint64(32))
    uniform = np.float64(r & np.uint64(0xFFFFFFFF)) * (1.0 / 4294967296.0)
    return slot if uniform < accept[slot] else alias[slot]


def window_seed(seed: int, window: int) -> np.ndarray:
    """The xorshift64* state of window ``window`` of a batch seeded ``seed`` (a 1-element uint64 array):
    every window of a CUDA launch draws its own noise stream, so warps need not share one."""
    with np.errstate(over="ignore"):  # uint64 arithmetic wraps by design
        return seed_state_py((int(seed) << 32) | int(window))
