"""The SGNS trainer: the step each device runs, fed by the shared epoch loop.

``train_sgns`` takes plain arrays (an :class:`~embedpipe.torchtrain.corpus.IdCorpus` and the word
counts) and runs on CPU or CUDA with the same code; the Spark layer only has to build those arrays.
Epochs, learning-rate decay, progress, replica sync, checkpoints and divergence checks are the
loop of :mod:`embedpipe.torchtrain.epochs`; this module supplies its steps.

The step is chosen here, in one place (:func:`choose_kernel`): on CPU the pairwise kernel of
:mod:`embedpipe.torchtrain.pairwise_cpu` (word2vec's per-pair SGD, compiled with numba); on CUDA its
warp-per-window twin in :mod:`embedpipe.torchtrain.pairwise_cuda` where a one-window probe launch
works, else the batched step of :mod:`embedpipe.torchtrain.batched_step`, with the reason logged.
Both are fed the same batches of windows.

Reproducibility: on CPU, the same corpus, counts and params give bit-identical vectors, whatever
``threads`` is: every random number comes from seeded :class:`torch.Generator` objects (see
:mod:`embedpipe.torchtrain.model`; the pairwise kernel's noise from a seed each batch carries), each
worker runs one-thread torch ops, and every sum over a batch runs in a fixed order (see
:class:`_Stepper`). The same holds across machines only as far as their
BLAS kernels round alike. On CUDA, ``index_add_`` accumulates with atomics, so runs agree only up
to float rounding (and the pairwise CUDA kernel's warps update in a varying order).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from embedpipe.errors import ConfigError, EmptyResultError, InputError
from embedpipe.torchtrain import pairwise_cpu, pairwise_cuda
from embedpipe.torchtrain.batched_step import (
    REFERENCE_BATCH,
    auto_batch_size,
    batch_loss,
    lr_scale,
    pair_count,
    score_batch,
    sgns_step,
    update_inputs,
    update_outputs,
)
from embedpipe.torchtrain.batching import NoiseSampler, SkipGramBatcher, WindowBatch
from embedpipe.torchtrain.corpus import IdCorpus, keep_probabilities, noise_distribution
from embedpipe.torchtrain.epochs import Step, run_epochs
from embedpipe.torchtrain.model import InitialVectors, TrainingState, load_checkpoint, save_checkpoint
from embedpipe.torchtrain.params import SGNSParams
from embedpipe.torchtrain.runtime import ReplicaSync, TrainProgress, resolve_device, torch_threads

logger = logging.getLogger(__name__)

#: The steps :func:`choose_kernel` picks from ("auto": the device's default).
KERNELS = ("auto", "pairwise", "batched")


@dataclass(frozen=True)
class TrainResult:
    """The trained vectors (copies, float32) and how the run went."""

    input_vectors: np.ndarray = field(repr=False)  # V x d: the word vectors to export
    output_vectors: np.ndarray = field(repr=False)  # V x d: context vectors (useful for IN-OUT similarity)
    epoch_losses: list[float]  # mean loss per pair of every epoch, including epochs before a resume
    words_per_second: float  # raw corpus tokens per second in this run
    seconds: float
    words: int  # raw tokens trained in this run
    pairs: int  # (center, context) pairs trained in this run
    device: str
    params: SGNSParams = field(repr=False)
    batch_size: int = 0  # windows per step (the batched step's automatic size; the pairwise kernels' unit of work)
    kernel: str = ""  # the step that ran: 'pairwise' or 'batched'


def choose_kernel(device: torch.device, dim: int, negative: int, forced: str = "auto") -> str:
    """The step to run on ``device``: 'pairwise' or 'batched'.

    CPU: the pairwise kernel; without numba that is a one-line ConfigError naming the extra to
    install (the batched step is several times slower there and scored lower). CUDA: the pairwise
    kernel where it fits ``dim`` and ``negative`` and a one-window launch of it works
    (:func:`~embedpipe.torchtrain.pairwise_cuda.probe`), else the batched step, saying why in the log.
    ``forced`` is a test hook (compare kernels or devices), not a user setting.
    """
    if forced not in KERNELS:
        raise ValueError(f"unknown kernel {forced!r}")
    if device.type == "cpu":
        if forced == "batched":
            return "batched"
        if not pairwise_cpu.available():
            raise ConfigError(pairwise_cpu.NEEDS_NUMBA)
        return "pairwise"
    if forced != "auto":
        return forced
    reason = pairwise_cuda.unsupported(dim, negative)
    if reason is None:
        reason = pairwise_cuda.probe(device.index if device.index is not None else torch.cuda.current_device())
    if reason is None:
        return "pairwise"
    logger.warning("SGNS on CUDA: using the batched step, the pairwise kernel cannot run: %s", reason)
    return "batched"


Kernel = Callable[[torch.Tensor, torch.Tensor, WindowBatch, float], torch.Tensor]


class _Stepper:
    """Runs SGD steps: on one thread, or on CPU over worker threads, lock-step or Hogwild.

    The ops of one step are small (a few thousand rows), so torch's intra-op threads mostly pay
    fork/join costs and ``index_add_`` stays serial anyway; workers run one-thread ops instead
    (torch ops release the GIL).

    * Lock-step (``deterministic=True``): each batch is cut into one part per worker, the workers
      score their parts concurrently, then one worker updates W_in while another updates W_out,
      each from the scored copies and in batch order. The result is bit-identical to the
      one-thread step, so the thread count never changes the vectors; the two barriers per step
      limit the speed-up (about 1.2x on 2 cores).
    * Hogwild (``deterministic=False``): each worker trains whole batches on the shared matrices
      without locks, as word2vec.c and gensim do (about 1.7x on 2 cores); concurrent updates of a
      row may overwrite each other, so results vary from run to run.
    * The pairwise kernel: deterministic runs one worker that trains the batches in order while the
      caller prepares the next (the kernel releases the GIL); Hogwild runs ``workers`` of them.

    :meth:`step` returns the batch's summed loss, or a future of it while a worker is busy.
    """

    def __init__(
        self,
        state: TrainingState,
        workers: int,
        hogwild: bool = False,
        pairwise: Kernel | None = None,
        batch_size: int = REFERENCE_BATCH,
    ):
        self.state = state
        self.batch_size = batch_size
        self.workers = workers
        self.hogwild = hogwild and workers > 1
        self.pairwise = pairwise
        # lock-step: the calling thread is one of the workers; Hogwild: it prepares the next batches;
        # pairwise and deterministic: one worker trains the batches in order while the caller prepares the next
        if pairwise is not None and not self.hogwild:
            pool_size = 1
        else:
            pool_size = workers if hogwild else workers - 1
        self.pool = ThreadPoolExecutor(pool_size, thread_name_prefix="sgns-step") if workers > 1 else None
        self.buffers = (state.w_in.new_zeros(state.vocab_size), state.w_out.new_zeros(state.vocab_size))
        self.local = threading.local()  # Hogwild: per-worker scratch buffers

    @property
    def kernel(self) -> str:
        return "batched" if self.pairwise is None else "pairwise"

    @property
    def in_flight(self) -> int:
        """Batches the caller may keep pending before collecting the oldest loss."""
        if self.pool is not None and self.pairwise is not None and not self.hogwild:
            return 1
        return self.workers if self.hogwild else 0

    @property
    def lr_factor(self) -> float:
        """The factor on the learning rate: the batched step sums a batch's gradients (see lr_scale);
        the pairwise kernels apply them one at a time, so word2vec's rate needs none."""
        return 1.0 if self.pairwise is not None else lr_scale(self.batch_size)

    def step(self, batch: WindowBatch, lr: float) -> torch.Tensor | Future:
        w_in, w_out = self.state.w_in, self.state.w_out
        if self.pairwise is not None:
            if self.pool is None:
                return self.pairwise(w_in, w_out, batch, lr)
            return self.pool.submit(self.pairwise, w_in, w_out, batch, lr)
        if self.pool is None:
            return sgns_step(w_in, w_out, batch, lr, self.buffers)
        if self.hogwild:
            return self.pool.submit(self._hogwild_step, batch, lr)
        first, *others = batch.split(self.workers)  # this thread scores the first part itself
        futures = [self.pool.submit(score_batch, w_in, w_out, part) for part in others]
        parts = [score_batch(w_in, w_out, first)] + [future.result() for future in futures]
        pending = self.pool.submit(update_inputs, w_in, self.buffers[0], parts, lr)
        update_outputs(w_out, self.buffers[1], parts, lr)
        pending.result()
        return batch_loss(parts)

    def _hogwild_step(self, batch: WindowBatch, lr: float) -> torch.Tensor:
        buffers = getattr(self.local, "buffers", None)
        if buffers is None:
            buffers = self.local.buffers = (torch.zeros_like(self.buffers[0]), torch.zeros_like(self.buffers[1]))
        return sgns_step(self.state.w_in, self.state.w_out, batch, lr, buffers)

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True)


class _SkipGram:
    """The SGNS objective for :func:`~embedpipe.torchtrain.epochs.run_epochs`: batches of windows, each
    trained by the stepper at the linearly decaying learning rate."""

    name = "SGNS"
    unit = "words"

    def __init__(self, state: TrainingState, params: SGNSParams, batcher: SkipGramBatcher, stepper: _Stepper,
                 n_tokens: int, device: torch.device):
        self.state = state
        self.params = params
        self.batcher = batcher
        self.stepper = stepper
        self.device = device
        self.units_per_epoch = n_tokens
        self.in_flight = stepper.in_flight
        self.lr = params.lr
        scale = stepper.lr_factor
        self.lr_start, self.lr_end = params.lr * scale, params.min_lr * scale
        self.total_words = params.epochs * n_tokens

    def steps(self, epoch: int) -> Iterator[Step]:
        words = epoch * self.units_per_epoch
        for batch in self.batcher.epoch(self.state.epoch_generator(self.device)):
            lr = max(self.lr_end, self.lr_start - (self.lr_start - self.lr_end) * words / self.total_words)
            loss = self.stepper.step(batch, lr)
            words = epoch * self.units_per_epoch + batch.words_done
            yield Step(loss, pair_count(batch), batch.words_done, lr)

    def save_checkpoint(self, directory: str | Path) -> Path:
        return save_checkpoint(directory, self.state, self.params)


def _check_inputs(corpus: IdCorpus, counts: np.ndarray | None, counts_total: int | None = None) -> np.ndarray:
    if corpus.n_tokens == 0:
        raise EmptyResultError("the corpus has no tokens to train on (after dropping out-of-vocabulary words)")
    if counts is None:
        return corpus.counts()
    counts = np.asarray(counts)
    if counts.ndim != 1 or not np.issubdtype(counts.dtype, np.number):
        raise InputError(f"word counts must be a 1-D numeric array, got shape {counts.shape} ({counts.dtype})")
    if len(counts) == 0 or np.any(counts < 0) or not np.all(np.isfinite(counts)):
        raise InputError("word counts must be a non-empty array of finite, non-negative numbers")
    top = int(corpus.tokens.max())
    if top >= len(counts):
        raise InputError(
            f"the corpus uses token id {top} but counts has only {len(counts)} entries (ids 0..{len(counts) - 1})"
        )
    total = float(counts.sum())
    expected = corpus.n_tokens if counts_total is None else counts_total
    if abs(total - expected) > 0.01 * expected:
        described = "the corpus has" if counts_total is None else "the replicas' corpora have"
        logger.warning(
            "word counts sum to %.0f but %s %d tokens; subsampling and noise follow the counts",
            total, described, expected,
        )
    return counts


def train_sgns(
    corpus: IdCorpus,
    counts: np.ndarray | None = None,
    params: SGNSParams | None = None,
    *,
    checkpoint_dir: str | Path | None = None,
    resume: bool = False,
    progress: Callable[[TrainProgress], None] | None = None,
    log_interval: float = 5.0,
    replica_sync: ReplicaSync | None = None,
    counts_total: int | None = None,
    initial: InitialVectors | None = None,
    _kernel: str = "auto",
    _batch_size: int | None = None,
) -> TrainResult:
    """Train skip-gram with negative sampling on ``corpus`` and return the vectors.

    ``counts[i]`` is the corpus frequency of id ``i`` (from the vocabulary; default: counted from the
    corpus); its length is the vocabulary size. The learning rate decays linearly from ``lr`` to
    ``min_lr`` over ``epochs x corpus tokens``. With ``checkpoint_dir`` the state is saved after
    every epoch; ``resume=True`` continues from the checkpoint there if one exists (otherwise it
    starts afresh), giving the same vectors as an uninterrupted run on CPU. ``progress`` is called
    with a :class:`TrainProgress` about every ``log_interval`` seconds and after each epoch.
    ``replica_sync`` lets data-parallel replicas combine their matrices at fixed fractions of every
    epoch (see :class:`ReplicaSync`); the Spark layer passes one per barrier task, which sums the
    replicas' updates.
    ``counts_total`` is the number of tokens the counts were taken from, when ``corpus`` is only a
    share of them (a replica's partition); the counts are checked against it, not against ``corpus``.
    ``initial`` starts some rows from given vectors (a warm start from a parent table) instead of random ones.
    ``_kernel`` and ``_batch_size`` are test and benchmark hooks (force a step, e.g. the batched one
    on CPU to compare devices; windows per step), not settings.
    Raises :class:`~embedpipe.errors.TrainingDivergedError` (``param`` "lr") when the loss becomes
    NaN or infinite.
    """
    params = params or SGNSParams()
    counts = _check_inputs(corpus, counts, counts_total)
    if resume and checkpoint_dir is None:
        raise ConfigError("resume needs a checkpoint directory")
    device = resolve_device(params.device)
    vocab_size = len(counts)
    kernel = choose_kernel(device, params.dim, params.negative, _kernel)
    # replicas size their steps from the whole corpus, so that all of them take the same steps; the
    # pairwise kernels update pair by pair, so their batch is only the unit of work per hand-off (per
    # launch on CUDA, where it should be big enough to keep every warp busy)
    per_pair_on_cpu = kernel == "pairwise" and device.type == "cpu"
    auto = REFERENCE_BATCH if per_pair_on_cpu else auto_batch_size(counts_total or corpus.n_tokens)
    batch_size = _batch_size or auto
    # CPU: `threads` worker threads, each running one-thread torch ops (see _Stepper); CUDA: one
    # host thread, and `threads` (if given) only sets torch's intra-op threads for host-side work.
    workers = (params.threads or torch.get_num_threads()) if device.type == "cpu" else 1
    intra_op = 1 if device.type == "cpu" else params.threads
    with torch_threads(intra_op):
        state = None
        if resume:
            state = load_checkpoint(checkpoint_dir, params, vocab_size, device)  # type: ignore[arg-type]
            if state is None:
                logger.info("no checkpoint in %s; starting from scratch", checkpoint_dir)
            else:
                logger.info("resuming from %s after epoch %d (step %d)", checkpoint_dir, state.epoch, state.step)
        if state is None:
            state = TrainingState.initial(vocab_size, params, device, initial)
        noise = NoiseSampler(noise_distribution(counts, params.noise_power), device)
        pairwise: Kernel | None = None
        if per_pair_on_cpu:
            pairwise = pairwise_cpu.PairwiseStep(noise.accept, noise.alias, params.negative)
        elif kernel == "pairwise":
            pairwise = pairwise_cuda.CudaPairwiseStep(noise.accept, noise.alias, params.negative, params.dim)
        batcher = SkipGramBatcher(
            corpus,
            keep_probabilities(counts, params.sample),
            noise,
            window=params.window,
            negative=params.negative,
            batch_size=batch_size,
            device=device,
            shrink_window=params.shrink_window,
            step_draws_noise=pairwise is not None,
        )
        stepper = _Stepper(state, workers, hogwild=not params.deterministic, pairwise=pairwise, batch_size=batch_size)
        logger.info(
            "training SGNS on %s: %d tokens in %d sentences, %d words, %s step, %d worker thread(s), %d windows "
            "per step (learning rate x %.3g), params %s",
            device, corpus.n_tokens, corpus.n_sentences, vocab_size, kernel, workers, batch_size,
            stepper.lr_factor, params.to_dict(),
        )
        objective = _SkipGram(state, params, batcher, stepper, corpus.n_tokens, device)
        try:
            run = run_epochs(
                state, objective, epochs=params.epochs, device=device, checkpoint_dir=checkpoint_dir,
                progress=progress, log_interval=log_interval, replica_sync=replica_sync,
            )
        finally:
            stepper.close()
    if run.examples == 0 and run.units > 0:
        logger.warning("the corpus produced no (center, context) pairs: every sentence has fewer than 2 kept tokens")
    return TrainResult(
        input_vectors=state.w_in.detach().cpu().numpy().copy(),
        output_vectors=state.w_out.detach().cpu().numpy().copy(),
        epoch_losses=list(state.epoch_losses),
        words_per_second=run.units / run.seconds if run.seconds > 0 else 0.0,
        seconds=run.seconds,
        words=run.units,
        pairs=int(run.examples),
        device=str(device),
        params=params,
        batch_size=batcher.batch_size,
        kernel=stepper.kernel,
    )
