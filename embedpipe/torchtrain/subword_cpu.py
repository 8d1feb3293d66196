"""The CPU step of fastText's skip-gram: the pairwise kernel with a word's input vector made of its n-grams.

The same per-pair SGD as :mod:`embedpipe.torchtrain.pairwise_cpu` (word2vec's orientation, noise words
drawn inside the kernel from the batch's seed, gensim's saturation rule), except for the input side:
the input vector of word ``w`` is the mean of the rows ``rows[offsets[w]:offsets[w + 1]]`` of
``W_in`` (its own row and its n-grams' bucket rows, :class:`~embedpipe.subwords.SubwordIndex`), and
the pair's input gradient is added, whole, to each of those rows, as fastText's skip-gram does
(``Model::update`` divides it by the row count only for supervised models). The output side is
``W_out``, one row per word, as in SGNS.

It runs inside the same training loop as SGNS (batches, learning-rate decay, deterministic or
Hogwild threads, checkpoints, replica sync): only the step differs, so the SGNS machinery
needs no fastText branch.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from embedpipe.errors import ConfigError
from embedpipe.torchtrain import pairwise_cpu
from embedpipe.torchtrain.batching import WindowBatch
from embedpipe.torchtrain.kernel_common import MAX_EXP


def _train_subword_pair_py(
    w_in: np.ndarray, w_out: np.ndarray, offsets: np.ndarray, rows: np.ndarray, word: int, positive: int,
    weight: float, lr: float, accept: np.ndarray, alias: np.ndarray, negative: int, hidden: np.ndarray,
    update: np.ndarray, state: np.ndarray, outputs: np.ndarray, scores: np.ndarray,
) -> float:
    """SGD on one pair: the mean of ``word``'s rows scores ``w_out[positive]`` high and noise words low.

    As :func:`embedpipe.torchtrain.pairwise_cpu._train_pair_py`, with ``hidden`` (the mean of the
    word's input rows) in place of one input row; each of those rows then moves by the whole update.
    """
    dim = w_in.shape[1]
    start, end = offsets[word], offsets[word + 1]
    hidden[:] = 0.0
    for k in range(start, end):
        r = rows[k]
        for x in range(dim):
            hidden[x] += w_in[r, x]
    scale = np.float32(1.0 / (end - start))
    for x in range(dim):
        hidden[x] *= scale
    terms = _pair_outputs(accept, alias, state, positive, negative, outputs)
    for t in range(terms):
        out = outputs[t]
        score = np.float32(0.0)
        for x in range(dim):
            score += hidden[x] * w_out[out, x]
        scores[t] = score
    update[:] = 0.0
    linear = 0.0
    product = 1.0
    step = np.float32(weight * lr)
    for t in range(terms):
        out = outputs[t]
        z = scores[t] if t == 0 else -scores[t]
        tail = np.exp(-np.abs(z))
        linear += max(-z, np.float32(0.0))
        product *= 1.0 + np.float64(tail)
        if np.abs(z) >= MAX_EXP:
            continue
        miss = tail / (np.float32(1.0) + tail) if z >= 0.0 else np.float32(1.0) / (np.float32(1.0) + tail)
        gradient = step * miss if t == 0 else -step * miss
        for x in range(dim):
            update[x] += gradient * w_out[out, x]
            w_out[out, x] += gradient * hidden[x]
    for k in range(start, end):
        r = rows[k]
        for x in range(dim):
            w_in[r, x] += update[x]
    return weight * (linear + math.log(product))


def _train_subword_windows_py(
    w_in: np.ndarray, w_out: np.ndarray, offsets: np.ndarray, rows: np.ndarray, centers: np.ndarray,
    contexts: np.ndarray, mask: np.ndarray, accept: np.ndarray, alias: np.ndarray, negative: int, lr: float,
    seed: int,
) -> float:
    """Train every valid (center, context) pair of the windows in order; returns the summed loss."""
    state = _seed(seed)
    hidden = np.zeros(w_in.shape[1], dtype=np.float32)
    update = np.zeros(w_in.shape[1], dtype=np.float32)
    outputs = np.zeros(negative + 1, dtype=np.int64)
    scores = np.zeros(negative + 1, dtype=np.float32)
    loss = 0.0
    for i in range(centers.shape[0]):
        center = centers[i]
        for j in range(contexts.shape[1]):
            weight = mask[i, j]
            if weight == 0.0:
                continue
            loss += _train_subword_pair(w_in, w_out, offsets, rows, contexts[i, j], center, weight, lr, accept,
                                        alias, negative, hidden, update, state, outputs, scores)
    return loss


if pairwise_cpu.available():
    _seed, _pair_outputs = pairwise_cpu._seed, pairwise_cpu._pair_outputs
    _train_subword_pair = pairwise_cpu._jit(_train_subword_pair_py)
    _train_subword_windows = pairwise_cpu._jit(_train_subword_windows_py)
else:  # pragma: no cover
    _seed = _pair_outputs = _train_subword_pair = _train_subword_windows = None


class SubwordStep:
    """The step the training loop calls for fastText: the noise tables and the word -> rows CSR as arrays."""

    def __init__(self, accept: torch.Tensor, alias: torch.Tensor, negative: int, offsets: np.ndarray,
                 rows: np.ndarray):
        if _train_subword_windows is None:
            raise ConfigError(pairwise_cpu.NEEDS_NUMBA)
        self.accept = accept.cpu().numpy()
        self.alias = alias.cpu().numpy()
        self.negative = negative
        self.offsets = np.ascontiguousarray(offsets, dtype=np.int64)
        self.rows = np.ascontiguousarray(rows, dtype=np.int64)

    def __call__(self, w_in: torch.Tensor, w_out: torch.Tensor, batch: WindowBatch, lr: float) -> torch.Tensor:
        """Train ``batch`` pair by pair on the CPU matrices in place; returns the summed loss (float64)."""
        if batch.noise_seed is None:
            raise ValueError("the subword kernel draws its own noise: build batches with step_draws_noise=True")
        loss = _train_subword_windows(
            w_in.numpy(), w_out.numpy(), self.offsets, self.rows, batch.centers.numpy(), batch.contexts.numpy(),
            batch.mask.numpy(), self.accept, self.alias, self.negative, float(lr), batch.noise_seed,
        )
        return torch.tensor(loss, dtype=torch.float64)
