"""word2vec's per-pair SGD on a CUDA device: one warp per window, Hogwild across warps (numba-cuda).

Why a second CUDA step. The batched step of :mod:`embedpipe.torchtrain.batched_step` reaches 27M words/s on
an H100, but it sums a whole batch's gradients from one snapshot and has to cap each row's move;
on the 24M-token demo corpus that changes the geometry of the space (every cosine lifted, planted
similarity 0.587 against gensim's 0.617). This kernel is :mod:`embedpipe.torchtrain.pairwise_cpu` (which
matches gensim on CPU) on the GPU, as BlazingText and similar GPU word2vecs do it: each warp trains
one window's pairs one after another, its 32 lanes sharing the ``dim`` coordinates (coalesced row
reads, one reduction per score), adding each update to the rows in place with atomic adds; warps
run concurrently without locks. A warp reads the rows as other warps leave them, so its staleness is
the work in flight, not a batch: a model of it on CPU (``tests/benchmarks/staleness_model.py``: the
pairwise kernel with 4,096 windows trained in lock-step rounds, each round scored from the previous
round's result and its updates summed) kept gensim's scores on the 24M-token demo corpus (planted
similarity 0.623 / analogies 0.615, against 0.620 / 0.607 one pair at a time and 0.617 / 0.618 for
gensim on 16 workers). The grid is capped at :data:`MAX_WARPS` warps, which bounds that staleness
whatever the batch size, and at :data:`WARPS_PER_SM` per multiprocessor, so that every warp is
resident from the start (a grid-stride loop over a second wave would leave its warps' windows to
the end of the launch; ptxas reports 72 registers per thread for sm_90, room for 28 such blocks).
Summing matters: where only the last of a round's updates of a row survived (what plain
read-modify-write stores do to a hot row), the model scored 0.473 / 0.596.

The pair's arithmetic is :func:`embedpipe.torchtrain.pairwise_cpu._train_pair_py`'s: all of a pair's scores
first, then each output row by its own term, then the input row by the summed update; a noise word
equal to the observed output is skipped, and so is the update of a term scored
:data:`~embedpipe.torchtrain.kernel_common.MAX_EXP` or more away from 0. Noise comes from the same
alias tables and xorshift64* draws (:mod:`embedpipe.torchtrain.kernel_common`), seeded per window by
:func:`~embedpipe.torchtrain.kernel_common.window_seed`, so a one-warp launch reproduces the CPU kernel
pair for pair (a test does, in numba's CUDA simulator). With many warps the order of concurrent
updates varies from run to run, so CUDA results are not bit-reproducible (nor are the batched step's,
whose ``index_add_`` uses atomics).

fastText runs the same way (``subwords``, :mod:`embedpipe.torchtrain.subword_train`): its kernel
(``_cuda_kernels.train_subword_windows``) is :mod:`embedpipe.torchtrain.subword_cpu` on the GPU, one warp
per window whose input is the mean of the center's rows (its own and its n-grams' buckets, the
:class:`~embedpipe.subwords.SubwordIndex` CSR arrays on the device), gathered once per window; each
pair's output side is SGNS's device function, and the window's summed input update is added to every
one of the rows with atomic adds. The launch, grid, streams and probe below serve both.

numba's CUDA target is imported on first use only: CPU runs never touch it. Set
``NUMBA_ENABLE_CUDASIM=1`` before the first use to run the kernel in numba's simulator (slow;
tests).
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import torch

from embedpipe.errors import ConfigError
from embedpipe.torchtrain.batching import WindowBatch
from embedpipe.torchtrain.kernel_common import MAX_DIM, MAX_TERMS, WARP

#: The most warps a launch runs at once (at most this many windows in flight; see the module docstring).
MAX_WARPS = 4096
#: One-warp blocks per multiprocessor: one wave on any GPU (2,112 warps on an H100's 132).
WARPS_PER_SM = 16


def unsupported(dim: int, negative: int) -> str | None:
    """Why the kernel's per-lane registers cannot hold the run's sizes, or None when they can."""
    if dim > MAX_DIM:
        return f"dim is {dim}, above the {MAX_DIM} its registers hold"
    if negative + 1 > MAX_TERMS:
        return f"negative is {negative}, above the {MAX_TERMS - 1} its registers hold"
    return None


def _numba_cuda() -> Any:
    """numba's CUDA target, made importable on NumPy 2.5.

    numba-cuda (0.30.4 and earlier) registers an overload for ``np.row_stack`` when it compiles a
    kernel; NumPy 2.5 removed that name, an alias of ``np.vstack`` until then, so the first launch
    fails with an AttributeError (numba 0.68.1 fixed the same registration in its CPU target).
    Restoring the alias, only where it is missing, lets the kernel run there.
    """
    if not hasattr(np, "row_stack"):
        np.row_stack = np.vstack
    from numba import cuda

    return cuda


def available() -> bool:
    """Whether numba's CUDA target is importable here (a GPU is a separate question)."""
    try:
        _numba_cuda()
    except ImportError:
        return False
    return True


@functools.cache
def _kernel(subwords: bool = False) -> Any:
    """The compiled-on-first-launch kernel (fastText's with ``subwords``); numba's CUDA target is imported
    here, not at module import."""
    _numba_cuda()
    from embedpipe.torchtrain import _cuda_kernels  # imports numba.cuda: on first launch only

    return _cuda_kernels.train_subword_windows if subwords else _cuda_kernels.train_windows


def grid_warps(windows: int, multiprocessors: int) -> int:
    """Warps (blocks of one warp) to launch for ``windows`` windows: one each, up to one wave of
    :data:`WARPS_PER_SM` per multiprocessor and :data:`MAX_WARPS` in all."""
    return max(1, min(windows, MAX_WARPS, WARPS_PER_SM * multiprocessors))


def launch(
    w_in: Any, w_out: Any, centers: Any, contexts: Any, mask: Any, accept: Any, alias: Any,
    negative: int, lr: float, seed: int, losses: Any, stream: Any = 0, subwords: tuple[Any, Any] | None = None,
) -> None:
    """Run the kernel on arrays numba can take (device arrays, or NumPy arrays in the simulator);
    ``losses`` (float64) has one slot per warp to launch. ``subwords``: fastText's ``(offsets, rows)``, each
    word's input rows (``w_in`` then has a row per word and per used n-gram bucket); without it, SGNS."""
    if subwords is None:
        _kernel()[len(losses), WARP, stream](
            w_in, w_out, centers, contexts, mask, accept, alias, negative, np.float32(lr), seed, losses,
        )
    else:
        _kernel(True)[len(losses), WARP, stream](
            w_in, w_out, subwords[0], subwords[1], centers, contexts, mask, accept, alias, negative,
            np.float32(lr), seed, losses,
        )


class CudaPairwiseStep:
    """The step the training loop calls on CUDA when the kernel can run there: one launch per batch,
    on torch's current stream, so it orders with the tensor code that builds the batches. ``subwords``:
    fastText's ``(offsets, rows)`` on the device (see :func:`launch`)."""

    def __init__(self, accept: torch.Tensor, alias: torch.Tensor, negative: int, dim: int,
                 subwords: tuple[torch.Tensor, torch.Tensor] | None = None):
        if not available():
            raise ConfigError("the pairwise CUDA kernel needs numba's CUDA target: pip install 'embedpipe[cuda]'")
        reason = unsupported(dim, negative)
        if reason is not None:
            raise ConfigError(f"the pairwise CUDA kernel cannot run: {reason}")
        self.accept = accept
        self.alias = alias
        self.negative = negative
        self.subwords = subwords

    def __call__(self, w_in: torch.Tensor, w_out: torch.Tensor, batch: WindowBatch, lr: float) -> torch.Tensor:
        """Train ``batch`` on the device matrices in place; returns the summed loss (a float64 device tensor)."""
        if batch.noise_seed is None:
            raise ValueError("the pairwise kernel draws its own noise: build batches with step_draws_noise=True")
        return _launch_on_torch_stream(
            w_in, w_out, batch.centers, batch.contexts, batch.mask, self.accept, self.alias, self.negative,
            lr, batch.noise_seed, self.subwords,
        ).sum()


def _launch_on_torch_stream(
    w_in: torch.Tensor, w_out: torch.Tensor, centers: torch.Tensor, contexts: torch.Tensor, mask: torch.Tensor,
    accept: torch.Tensor, alias: torch.Tensor, negative: int, lr: float, seed: int,
    subwords: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> torch.Tensor:
    """:func:`launch` on torch's current stream, after the ops that made its inputs (no synchronisation
    needed); returns each warp's summed loss."""
    cuda = _numba_cuda()
    if not (w_in.is_contiguous() and w_out.is_contiguous()):
        raise ValueError("the pairwise kernel updates the matrices in place: they must be contiguous")
    multiprocessors = torch.cuda.get_device_properties(w_in.device).multi_processor_count
    losses = torch.zeros(grid_warps(centers.shape[0], multiprocessors), dtype=torch.float64, device=w_in.device)

    def view(tensor: torch.Tensor) -> Any:
        return cuda.as_cuda_array(tensor.contiguous(), sync=False)

    with cuda.gpus[w_in.device.index or 0]:
        stream = cuda.external_stream(torch.cuda.current_stream(w_in.device).cuda_stream)
        launch(
            view(w_in), view(w_out), view(centers), view(contexts), view(mask), view(accept), view(alias),
            negative, lr, seed, view(losses), stream,
            None if subwords is None else (view(subwords[0]), view(subwords[1])),
        )
    return losses


@functools.cache
def probe(device_index: int, subwords: bool = False) -> str | None:
    """None when the kernel (fastText's with ``subwords``) compiles and runs on CUDA device ``device_index``,
    else why it does not.

    The trainer asks this before it picks the CUDA step, so that a machine whose numba-cuda
    cannot build or launch it (no NVVM, a driver or NumPy it does not support) trains with the batched
    step (fastText: on CPU) instead of failing at the first step. It launches the kernel once on a one-window problem
    with a zero step: the compile it triggers is the one the run would pay at its first launch.
    """
    if not available():
        return "numba's CUDA target is not installed (pip install numba-cuda)"
    device = torch.device("cuda", device_index)
    try:
        rows = torch.zeros((2, WARP), dtype=torch.float32, device=device)
        window = torch.ones((1, 2), dtype=torch.int64, device=device)
        csr = (torch.arange(3, device=device), torch.arange(2, device=device)) if subwords else None  # 1 row a word
        _launch_on_torch_stream(
            rows, rows.clone(), torch.zeros(1, dtype=torch.int64, device=device), window, window.float(),
            torch.ones(2, dtype=torch.float64, device=device), torch.zeros(2, dtype=torch.int64, device=device),
            1, 0.0, 1, csr,
        )
        torch.cuda.synchronize(device)
    except Exception as error:  # any failure means "use the batched step"; the caller logs the reason
        return f"{type(error).__name__}: {error}"
    return None


__all__ = ["CudaPairwiseStep", "MAX_WARPS", "available", "launch", "probe", "unsupported"]
