"""The CPU step of SGNS as word2vec runs it: one pair after another, compiled with numba.

Why a second step on CPU. The batched step of :mod:`embedpipe.torchtrain.batched_step` turns a window's work
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

Orientation per ``negative_mode`` is that of :mod:`embedpipe.torchtrain.batched_step`: ``target`` trains
``W_in[context]`` against ``W_out[center]`` and noise targets; ``context`` trains ``W_in[center]``
against ``W_out[context]`` and noise contexts; ``both`` trains each pair's ``target`` side, then its
``context`` side. As in word2vec, a noise word equal to the pair's observed output is skipped.
"""

from __future__ import annotations

import logging
import math

import numpy as np
import torch

from embedpipe.errors import ConfigError
from embedpipe.torchtrain.batching import WindowBatch

try:  # an optional dependency: without it the CPU uses the batched step
    import numba
except ImportError:  # pragma: no cover - exercised where numba is not installed
    numba = None

logger = logging.getLogger(__name__)


def available() -> bool:
    """Whether the compiled pairwise kernel can run here (numba is installed)."""
    return numba is not None


def resolve_kernel(
    name: str, device: torch.device, cuda_kernel: str = "auto", dim: int = 100, negative: int = 5
) -> str:
    """'pairwise' or 'batched' for ``name`` (the CPU choice) or ``cuda_kernel`` on ``device``.

    ``auto`` picks the pairwise kernel on CPU when numba is installed; asking for it explicitly
    without numba is a config error rather than a silent slow path. On CUDA, ``auto`` picks the
    pairwise kernel where it fits ``dim`` and ``negative`` and a one-window launch of it works
    (:func:`~embedpipe.torchtrain.pairwise_cuda.probe`), else the batched step, saying why in the log;
    an explicit choice is taken as given (:class:`~embedpipe.torchtrain.pairwise_cuda.CudaPairwiseStep`
    then fails with the reason).
    """
    if device.type != "cpu":
        if cuda_kernel != "auto":
            return cuda_kernel
        from embedpipe.torchtrain import pairwise_cuda  # imports this module: imported on use

        try:
            pairwise_cuda.check_supported(dim, negative)
            reason = pairwise_cuda.probe(device.index if device.index is not None else torch.cuda.current_device())
        except ConfigError as error:  # past its registers: the message names the key
            reason = str(error)
        if reason is None:
            return "pairwise"
        logger.warning("cuda_kernel auto: using the batched step, the pairwise kernel cannot run: %s", reason)
        return "batched"
    if name == "pairwise" and not available():
        raise ConfigError(
            "config key 'cpu_kernel' is 'pairwise' but numba is not installed (pip install numba, or use 'auto')"
        )
    if name == "auto":
        return "pairwise" if available() else "batched"
    return name


TARGET, CONTEXT, BOTH = 0, 1, 2
MODES = {"target": TARGET, "context": CONTEXT, "both": BOTH}


def _seed_py(seed: int) -> np.ndarray:
    """The generator state for ``seed``: one splitmix64 step, never 0 (xorshift's fixed point)."""
    z = np.uint64(seed) + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z = z ^ (z >> np.uint64(31))
    state = np.empty(1, dtype=np.uint64)
    state[0] = z if z != np.uint64(0) else np.uint64(1)
    return state


def _draw_py(accept: np.ndarray, alias: np.ndarray, state: np.ndarray) -> int:
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


def _noise_py(accept: np.ndarray, alias: np.ndarray, count: int, seed: int) -> np.ndarray:
    """The first ``count`` noise words a step seeded with ``seed`` draws, in order (for tests and audits)."""
    state = _seed(seed)
    words = np.empty(count, dtype=np.int64)
    for i in range(count):
        words[i] = _draw(accept, alias, state)
    return words


def _train_pair_py(
    w_in: np.ndarray, w_out: np.ndarray, row: int, positive: int, weight: float, lr: float,
    accept: np.ndarray, alias: np.ndarray, negative: int, update: np.ndarray, state: np.ndarray,
    outputs: np.ndarray, scores: np.ndarray, max_exp: float,
) -> float:
    """SGD on one pair: ``w_in[row]`` scores ``w_out[positive]`` high and ``negative`` fresh noise words low.

    All of the pair's scores are taken first, from the rows as the pair finds them: the ``negative + 1``
    row reads are independent, so the CPU overlaps their cache misses (the kernel is bound by memory
    latency, not arithmetic). Then each output row moves by its own term, and the input row once, by
    the sum of its terms' gradients (word2vec's ``neu1e``). A noise word equal to ``positive`` is
    skipped, and so is the update of a term whose score is ``max_exp`` or more away from 0 (gensim's
    rule; its loss still counts; ``max_exp`` 0 trains every term). Returns the pair's weighted loss
    before its update. ``update``, ``outputs`` and ``scores`` are scratch arrays (dim, negative + 1,
    negative + 1).
    """
    dim = w_in.shape[1]
    terms = 1
    outputs[0] = positive
    for _ in range(negative):
        out = _draw(accept, alias, state)
        if out != positive:
            outputs[terms] = out
            terms += 1
    for t in range(terms):
        out = outputs[t]
        score = np.float32(0.0)
        for x in range(dim):
            score += w_in[row, x] * w_out[out, x]
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
        if max_exp > 0.0 and np.abs(z) >= max_exp:
            continue  # saturated: gensim skips the term (see SGNSParams.max_exp)
        miss = tail / (np.float32(1.0) + tail) if z >= 0.0 else np.float32(1.0) / (np.float32(1.0) + tail)
        gradient = step * miss if t == 0 else -step * miss  # lr * weight * (label - sigmoid(score))
        for x in range(dim):
            update[x] += gradient * w_out[out, x]
            w_out[out, x] += gradient * w_in[row, x]
    for x in range(dim):
        w_in[row, x] += update[x]
    return weight * (linear + math.log(product))


def _train_windows_py(
    w_in: np.ndarray, w_out: np.ndarray, centers: np.ndarray, contexts: np.ndarray, mask: np.ndarray,
    accept: np.ndarray, alias: np.ndarray, negative: int, mode: int, lr: float, seed: int, max_exp: float,
) -> float:
    """Train every valid (center, context) pair of the windows in order; returns the summed loss.

    Per pair: the ``target`` side (``W_in[context]`` vs ``W_out[center]``) and/or the ``context``
    side (``W_in[center]`` vs ``W_out[context]``), each with its own ``negative`` noise words drawn
    from ``seed``'s stream in that order.
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
            context = contexts[i, j]
            if mode != CONTEXT:
                loss += _train_pair(w_in, w_out, context, center, weight, lr, accept, alias, negative, update, state,
                                    outputs, scores, max_exp)
            if mode != TARGET:
                loss += _train_pair(w_in, w_out, center, context, weight, lr, accept, alias, negative, update, state,
                                    outputs, scores, max_exp)
    return loss


#: fastmath without "nnan"/"ninf": the dot products may be reordered (vectorised), but a NaN or infinite
#: loss must survive to the training loop's divergence check
FAST_MATH = {"reassoc", "contract", "arcp", "nsz", "afn"}


def _jit(function):
    """Compile ``function`` with numba, cached on disk where numba finds a place for it (next to the
    module or in its user-wide cache); a module shipped inside a zip or wheel (``spark-submit
    --py-files``) has none, and then compiles once per process (about 1.5 s)."""
    options = {"nogil": True, "fastmath": FAST_MATH, "error_model": "numpy"}
    try:
        return numba.njit(cache=True, **options)(function)
    except RuntimeError:  # "cannot cache function ...: no locator available for file ..."
        return numba.njit(**options)(function)


if numba is not None:
    _seed = _jit(_seed_py)
    _draw = _jit(_draw_py)
    _noise = _jit(_noise_py)
    _train_pair = _jit(_train_pair_py)
    _train_windows = _jit(_train_windows_py)
else:  # pragma: no cover
    _seed = _draw = _noise = _train_pair = _train_windows = None


class PairwiseStep:
    """The step the training loop calls: the noise tables as arrays, then :func:`_train_windows` per batch."""

    def __init__(
        self, accept: torch.Tensor, alias: torch.Tensor, negative: int, negative_mode: str, max_exp: float = 0.0
    ):
        if _train_windows is None:
            raise ConfigError("the pairwise CPU kernel needs numba (pip install numba)")
        if negative_mode not in MODES:
            raise ValueError(f"unknown negative_mode {negative_mode!r}")
        self.accept = accept.cpu().numpy()
        self.alias = alias.cpu().numpy()
        self.negative = negative
        self.mode = MODES[negative_mode]
        self.max_exp = float(max_exp)

    def __call__(self, w_in: torch.Tensor, w_out: torch.Tensor, batch: WindowBatch, lr: float) -> torch.Tensor:
        """Train ``batch`` pair by pair on the CPU matrices in place; returns the summed loss (float64).

        The loss of each pair is taken just before that pair's update, as word2vec reports it.
        """
        if batch.noise_seed is None:
            raise ValueError("the pairwise kernel draws its own noise: build batches with step_draws_noise=True")
        loss = _train_windows(
            w_in.numpy(), w_out.numpy(), batch.centers.numpy(), batch.contexts.numpy(), batch.mask.numpy(),
            self.accept, self.alias, self.negative, self.mode, float(lr), batch.noise_seed,
            self.max_exp,
        )
        return torch.tensor(loss, dtype=torch.float64)


def noise_words(accept: np.ndarray, alias: np.ndarray, count: int, seed: int) -> np.ndarray:
    """The first ``count`` noise words of a step seeded with ``seed``, in the order it draws them."""
    if _noise is None:
        raise ConfigError("the pairwise CPU kernel needs numba (pip install numba)")
    return _noise(accept, alias, count, seed)
