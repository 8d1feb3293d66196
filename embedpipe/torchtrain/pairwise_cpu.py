"""The CPU step of SGNS as word2vec runs it: one pair after another, compiled with numba.

Why not the batched step on CPU. The batched step of :mod:`embedpipe.torchtrain.batched_step` turns a window's work
into small matrix products, which keeps a GPU busy, but on a CPU those products are tiny
(a 6 x 6 block per window) and the step spends its time moving gathered copies of rows through
memory: on two cores it reached 0.3-0.6x gensim's words/s. It also has to share its noise words
within a window to form those blocks, which cost quality at CPU-sized batches (planted similarity
0.48 against gensim's 0.61 on the demo corpus; per-pair noise in the batched step recovered 0.53
but ran 3x slower). This kernel does what word2vec.c and gensim do instead: for each (input,
observed output) pair, plain SGD on the observed output and its own ``negative`` noise words,
updating the rows in place while they are in cache; no gathers, no batch-wide snapshot, no per-row
cap (sequential updates damp themselves through the sigmoid). A pair's scores are all taken before
its rows move (see :func:`_train_pair_py`).

Everything around it stays the same tensor code on both devices: subsampling, shrunk windows,
learning-rate decay, checkpoints and progress. The noise words are drawn inside the kernel (alias
method, xorshift64*) from a seed each batch carries (``step_draws_noise`` in
:class:`~embedpipe.torchtrain.batching.SkipGramBatcher`), so they cost no tensors and stay
reproducible. The kernel only consumes the batch's tensors, so no Python runs per pair. It releases
the GIL, so the training loop prepares the next batch while it runs (bit-identical results for any
thread count), or several batches train at once, lock-free, as in gensim (Hogwild,
``deterministic=False``).

Orientation is word2vec's (that of :mod:`embedpipe.torchtrain.batched_step`): ``W_in[context]`` is
trained against ``W_out[center]`` and the noise words. As in word2vec, a noise word equal to the
pair's observed output is skipped.

Without numba (the ``torch`` extra installs it) the module still imports, and :class:`PairwiseStep`
raises a one-line ConfigError saying what to install.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from embedpipe.errors import ConfigError
from embedpipe.torchtrain.batching import WindowBatch
from embedpipe.torchtrain.kernel_common import MAX_EXP, draw_py, seed_state_py

try:  # installed with the torch extra; without it the module imports and PairwiseStep says what to install
    import numba
except ImportError:  # pragma: no cover - exercised where numba is not installed
    numba = None

#: The one-line error when numba is missing.
NEEDS_NUMBA = "the SGNS trainer's CPU kernel needs numba: pip install 'embedpipe[torch]' (or pip install numba)"


def available() -> bool:
    """Whether the compiled pairwise kernel can run here (numba is installed)."""
    return numba is not None


def _noise_py(accept: np.ndarray, alias: np.ndarray, count: int, seed: int) -> np.ndarray:
    """The first ``count`` noise words a step seeded with ``seed`` draws, in order (for tests and audits)."""
    state = _seed(seed)
    words = np.empty(count, dtype=np.int64)
    for i in range(count):
        words[i] = _draw(accept, alias, state)
    return words


def _pair_outputs_py(accept: np.ndarray, alias: np.ndarray, state: np.ndarray, positive: int, negative: int,
                     outputs: np.ndarray) -> int:
    """Fill ``outputs`` with ``positive`` then ``negative`` fresh noise words, skipping any equal to ``positive``
    (word2vec's rule, shared by every CPU pair kernel); returns how many terms the pair has."""
    terms = 1
    outputs[0] = positive
    for _ in range(negative):
        out = _draw(accept, alias, state)
        if out != positive:
            outputs[terms] = out
            terms += 1
    return terms


def _sgd_terms_py(
    vector: np.ndarray, w_out: np.ndarray, positive: int, weight: float, lr: float, accept: np.ndarray,
    alias: np.ndarray, negative: int, update: np.ndarray, state: np.ndarray, outputs: np.ndarray,
    scores: np.ndarray,
) -> float:
    """SGD on one pair's output side: ``vector`` scores ``w_out[positive]`` high and ``negative`` fresh
    noise words low; the output rows move, ``update`` receives the input's gradient step (it is not
    applied here: SGNS adds it to one row, fastText to each of a word's rows).

    All of the pair's scores are taken first, from the rows as the pair finds them: the ``negative + 1``
    row reads are independent, so the CPU overlaps their cache misses (the kernel is bound by memory
    latency, not arithmetic). Then each output row moves by its own term, and ``update`` becomes the
    sum of the terms' gradients (word2vec's ``neu1e``). A noise word equal to ``positive`` is skipped,
    and so is the update of a term whose score is :data:`MAX_EXP` or more away from 0 (gensim's rule;
    its loss still counts). Returns the pair's weighted loss before its update. ``update``,
    ``outputs`` and ``scores`` are scratch arrays (dim, negative + 1, negative + 1).
    """
    dim = vector.shape[0]
    terms = _pair_outputs(accept, alias, state, positive, negative, outputs)
    for t in range(terms):
        out = outputs[t]
        score = np.float32(0.0)
        for x in range(dim):
            score += vector[x] * w_out[out, x]
        scores[t] = score
    update[:] = 0.0
    # the term's loss -log sigmoid(z) = max(-z, 0) + log(1 + e^-|z|): the logs are summed as one log of
    # a product (each factor in (1, 2], so at most 2^(negative+1)), one log per pair instead of one per term
    linear = 0.0
    product = 1.0
    step = np.float32(weight * lr)
    for t in range(terms):
        out = outputs[t]
        z = scores[t] if t == 0 else -scores[t]
        tail = np.exp(-np.abs(z))  # float32 math
        linear += max(-z, np.float32(0.0))
        product *= 1.0 + np.float64(tail)
        if np.abs(z) >= MAX_EXP:
            continue  # saturated: gensim skips the term
        miss = tail / (np.float32(1.0) + tail) if z >= 0.0 else np.float32(1.0) / (np.float32(1.0) + tail)
        gradient = step * miss if t == 0 else -step * miss  # lr * weight * (label - sigmoid(score))
        for x in range(dim):
            update[x] += gradient * w_out[out, x]
            w_out[out, x] += gradient * vector[x]
    return weight * (linear + math.log(product))


def _train_pair_py(
    w_in: np.ndarray, w_out: np.ndarray, row: int, positive: int, weight: float, lr: float,
    accept: np.ndarray, alias: np.ndarray, negative: int, update: np.ndarray, state: np.ndarray,
    outputs: np.ndarray, scores: np.ndarray,
) -> float:
    """SGD on one pair: ``w_in[row]`` against ``w_out[positive]`` and noise words (:func:`_sgd_terms_py`),
    then the input row moves once, by the sum of its terms' gradients."""
    vector = w_in[row]
    loss = _sgd_terms(vector, w_out, positive, weight, lr, accept, alias, negative, update, state, outputs, scores)
    for x in range(vector.shape[0]):
        vector[x] += update[x]
    return loss


def _train_windows_py(
    w_in: np.ndarray, w_out: np.ndarray, centers: np.ndarray, contexts: np.ndarray, mask: np.ndarray,
    accept: np.ndarray, alias: np.ndarray, negative: int, lr: float, seed: int,
) -> float:
    """Train every valid (center, context) pair of the windows in order; returns the summed loss.

    Per pair: ``W_in[context]`` against ``W_out[center]`` and ``negative`` noise words drawn from
    ``seed``'s stream in order.
    """
    state = _seed(seed)
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
            loss += _train_pair(w_in, w_out, contexts[i, j], center, weight, lr, accept, alias, negative, update,
                                state, outputs, scores)
    return loss


#: fastmath without "nnan"/"ninf": the dot products may be reordered (vectorised), but a NaN or infinite
#: loss must survive to the training loop's divergence check
FAST_MATH = {"reassoc", "contract", "arcp", "nsz", "afn"}


def _jit(function, inline: bool = False):
    """Compile ``function`` with numba, cached on disk where numba finds a place for it (next to the
    module or in its user-wide cache); a module shipped inside a zip or wheel (``spark-submit
    --py-files``) has none, and then compiles once per process (about 1.5 s). ``inline``: a helper
    whose body is inlined into each caller's (no call per pair)."""
    options = {"nogil": True, "fastmath": FAST_MATH, "error_model": "numpy", "inline": "always" if inline else "never"}
    try:
        return numba.njit(cache=True, **options)(function)
    except RuntimeError:  # "cannot cache function ...: no locator available for file ..."
        return numba.njit(**options)(function)


if numba is not None:
    _seed = _jit(seed_state_py)
    _draw = _jit(draw_py)
    _pair_outputs = _jit(_pair_outputs_py)
    _noise = _jit(_noise_py)
    _sgd_terms = _jit(_sgd_terms_py, inline=True)
    _train_pair = _jit(_train_pair_py)
    _train_windows = _jit(_train_windows_py)
else:  # pragma: no cover
    _seed = _draw = _pair_outputs = _noise = _sgd_terms = _train_pair = _train_windows = None


class PairwiseStep:
    """The step the training loop calls: the noise tables as arrays, then :func:`_train_windows` per batch."""

    def __init__(self, accept: torch.Tensor, alias: torch.Tensor, negative: int):
        if _train_windows is None:
            raise ConfigError(NEEDS_NUMBA)
        self.accept = accept.cpu().numpy()
        self.alias = alias.cpu().numpy()
        self.negative = negative

    def __call__(self, w_in: torch.Tensor, w_out: torch.Tensor, batch: WindowBatch, lr: float) -> torch.Tensor:
        """Train ``batch`` pair by pair on the CPU matrices in place; returns the summed loss (float64).

        The loss of each pair is taken just before that pair's update, as word2vec reports it.
        """
        if batch.noise_seed is None:
            raise ValueError("the pairwise kernel draws its own noise: build batches with step_draws_noise=True")
        loss = _train_windows(
            w_in.numpy(), w_out.numpy(), batch.centers.numpy(), batch.contexts.numpy(), batch.mask.numpy(),
            self.accept, self.alias, self.negative, float(lr), batch.noise_seed,
        )
        return torch.tensor(loss, dtype=torch.float64)


def noise_words(accept: np.ndarray, alias: np.ndarray, count: int, seed: int) -> np.ndarray:
    """The first ``count`` noise words of a step seeded with ``seed``, in the order it draws them."""
    if _noise is None:
        raise ConfigError(NEEDS_NUMBA)
    return _noise(accept, alias, count, seed)
