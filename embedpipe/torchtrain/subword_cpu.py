"""The CPU step of fastText's skip-gram: SGNS's per-pair SGD with a word's input vector made of its n-grams.

fastText's orientation (``Model::update`` in fastText's skip-gram, ``fasttext_fast_sentence_sg_neg``
in gensim): each center word is the input, the mean of its rows ``rows[offsets[w]:offsets[w + 1]]``
of ``W_in`` (its own row and its n-grams' bucket rows, :class:`~embedpipe.subwords.SubwordIndex`),
and each word of its window is an observed output (``W_out``, one row per word), with ``negative``
noise words drawn per pair inside the kernel from the batch's seed. Each pair's output side is
SGNS's (:func:`embedpipe.torchtrain.pairwise_cpu._sgd_terms_py`, gensim's saturation rule). SGNS
keeps word2vec's orientation (input = context) because its input is one row either way; here the
input is ~10-20 rows, and fixing it per window is what makes the step cheap:

fastText recomputes the mean and adds the pair's input gradient, whole, to every one of the word's
rows after each pair (it divides by the row count only for supervised models). Since each row moves
by the same vector, the mean moves by that vector too, so this kernel gathers the mean once per
center, adds each pair's gradient to it, and adds the window's summed gradient to the rows once at
the end: the same vectors as fastText's per-pair loop (up to float rounding, and for a word whose
rows are distinct; an n-gram listed twice still moves twice, but the running mean counts it once
until the next center), at one gather and one scatter of ~10-20 rows per center instead of per pair
(measured in docs/benchmarks.md, subword vectors).

It runs inside the same training loop as SGNS (batches, learning-rate decay, deterministic or
Hogwild threads, checkpoints, replica sync): only the step differs, so the SGNS machinery
needs no fastText branch.
"""

from __future__ import annotations

import numpy as np
import torch

from embedpipe.errors import ConfigError
from embedpipe.torchtrain import pairwise_cpu
from embedpipe.torchtrain.batching import WindowBatch


def _train_subword_center_py(
    w_in: np.ndarray, w_out: np.ndarray, offsets: np.ndarray, rows: np.ndarray, word: int, contexts: np.ndarray,
    weights: np.ndarray, lr: float, accept: np.ndarray, alias: np.ndarray, negative: int, hidden: np.ndarray,
    update: np.ndarray, total: np.ndarray, state: np.ndarray, outputs: np.ndarray, scores: np.ndarray,
) -> float:
    """SGD on one window: the mean of ``word``'s rows against each context with weight > 0, in order.

    ``hidden`` (the mean) is gathered once and moves by each pair's input gradient, as the mean of
    fastText's rows would; ``total`` sums those gradients and is added to each of the word's rows at
    the end. ``hidden``, ``update``, ``total``: scratch (dim); ``outputs``, ``scores``: (negative + 1).
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
    total[:] = 0.0
    loss = 0.0
    for j in range(contexts.shape[0]):
        weight = weights[j]
        if weight == 0.0:
            continue
        loss += _sgd_terms(hidden, w_out, contexts[j], weight, lr, accept, alias, negative, update, state, outputs,
                           scores)
        for x in range(dim):
            hidden[x] += update[x]
            total[x] += update[x]
    for k in range(start, end):
        r = rows[k]
        for x in range(dim):
            w_in[r, x] += total[x]
    return loss


def _train_subword_windows_py(
    w_in: np.ndarray, w_out: np.ndarray, offsets: np.ndarray, rows: np.ndarray, centers: np.ndarray,
    contexts: np.ndarray, mask: np.ndarray, accept: np.ndarray, alias: np.ndarray, negative: int, lr: float,
    seed: int,
) -> float:
    """Train every window with a valid pair, in order (input: the center; outputs: its contexts);
    returns the summed loss."""
    state = _seed(seed)
    hidden = np.zeros(w_in.shape[1], dtype=np.float32)
    update = np.zeros(w_in.shape[1], dtype=np.float32)
    total = np.zeros(w_in.shape[1], dtype=np.float32)
    outputs = np.zeros(negative + 1, dtype=np.int64)
    scores = np.zeros(negative + 1, dtype=np.float32)
    loss = 0.0
    for i in range(centers.shape[0]):
        pairs = 0
        for j in range(mask.shape[1]):
            pairs += mask[i, j] != 0.0
        if pairs == 0:
            continue  # a center alone in its sentence: skip the gather and scatter
        loss += _train_subword_center(w_in, w_out, offsets, rows, centers[i], contexts[i], mask[i], lr, accept,
                                      alias, negative, hidden, update, total, state, outputs, scores)
    return loss


if pairwise_cpu.available():
    _seed, _sgd_terms = pairwise_cpu._seed, pairwise_cpu._sgd_terms
    _train_subword_center = pairwise_cpu._jit(_train_subword_center_py)
    _train_subword_windows = pairwise_cpu._jit(_train_subword_windows_py)
else:  # pragma: no cover
    _seed = _sgd_terms = _train_subword_center = _train_subword_windows = None


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
        """Train ``batch`` window by window on the CPU matrices in place; returns the summed loss (float64)."""
        if batch.noise_seed is None:
            raise ValueError("the subword kernel draws its own noise: build batches with step_draws_noise=True")
        loss = _train_subword_windows(
            w_in.numpy(), w_out.numpy(), self.offsets, self.rows, batch.centers.numpy(), batch.contexts.numpy(),
            batch.mask.numpy(), self.accept, self.alias, self.negative, float(lr), batch.noise_seed,
        )
        return torch.tensor(loss, dtype=torch.float64)
