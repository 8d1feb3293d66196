"""The SGNS training loop: epochs, learning-rate decay, progress, divergence checks, checkpoints.

``train_sgns`` takes plain arrays (an :class:`~embedpipe.torchtrain.corpus.IdCorpus` and the word
counts) and runs on CPU or CUDA with the same code; the Spark layer only has to build those arrays.

The step: on CUDA by default (and on CPU with ``cpu_kernel="batched"``) the batched step of
:mod:`embedpipe.torchtrain.batched_step`; on CPU by default the pairwise kernel of
:mod:`embedpipe.torchtrain.pairwise_cpu` (word2vec's per-pair SGD, compiled), fed the same batches, and on
CUDA with ``cuda_kernel="pairwise"`` its warp-per-window twin in :mod:`embedpipe.torchtrain.pairwise_cuda`.

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
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from embedpipe.errors import ConfigError, EmptyResultError, InputError, TrainingDivergedError
from embedpipe.torchtrain.batched_step import (
    batch_loss,
    pair_count,
    score_batch,
    sgns_step,
    update_inputs,
    update_outputs,
)
from embedpipe.torchtrain.batching import NoiseSampler, SkipGramBatcher, WindowBatch
from embedpipe.torchtrain.corpus import IdCorpus, keep_probabilities, noise_distribution
from embedpipe.torchtrain.model import TrainingState, load_checkpoint, save_checkpoint
from embedpipe.torchtrain.pairwise_cpu import PairwiseStep, resolve_kernel
from embedpipe.torchtrain.pairwise_cuda import CudaPairwiseStep
from embedpipe.torchtrain.params import REFERENCE_BATCH, SGNSParams, auto_batch_size, lr_scale
from embedpipe.torchtrain.runtime import (
    ProgressBar,
    ReplicaSync,
    TrainProgress,
    format_seconds,
    resolve_device,
    torch_threads,
)

logger = logging.getLogger(__name__)

#: Steps between divergence checks inside an epoch (each check is a host sync on CUDA).
CHECK_EVERY = 32


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
    batch_size: int = 0  # windows per step actually used (params.batch_size, or auto_batch_size's choice)
    kernel: str = ""  # the step that ran: 'pairwise' or 'batched' (cpu_kernel / cuda_kernel resolved on the device)


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

    :meth:`step` returns the batch's summed loss, or a future of it while a Hogwild worker is busy.
    """

    def __init__(
        self,
        state: TrainingState,
        negative_mode: str,
        workers: int,
        hogwild: bool = False,
        pairwise: PairwiseStep | CudaPairwiseStep | None = None,
        batch_size: int = REFERENCE_BATCH,
        max_exp: float = 0.0,
        step_cap: str = "row",
    ):
        self.state = state
        self.max_exp = max_exp
        self.step_cap = step_cap
        self.batch_size = batch_size
        self.negative_mode = negative_mode
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
        the pairwise kernel applies them one at a time, so word2vec's rate needs none."""
        return 1.0 if self.pairwise is not None else lr_scale(self.batch_size)

    def step(self, batch: WindowBatch, lr: float) -> torch.Tensor | Future:
        w_in, w_out, mode = self.state.w_in, self.state.w_out, self.negative_mode
        if self.pairwise is not None:
            if self.pool is None:
                return self.pairwise(w_in, w_out, batch, lr)
            return self.pool.submit(self.pairwise, w_in, w_out, batch, lr)
        if self.pool is None:
            return sgns_step(w_in, w_out, batch, lr, mode, self.buffers, self.max_exp, self.step_cap)
        if self.hogwild:
            return self.pool.submit(self._hogwild_step, batch, lr)
        first, *others = batch.split(self.workers)  # this thread scores the first part itself
        futures = [self.pool.submit(score_batch, w_in, w_out, part, mode, self.max_exp) for part in others]
        parts = [score_batch(w_in, w_out, first, mode, self.max_exp)] + [future.result() for future in futures]
        pending = self.pool.submit(update_inputs, w_in, self.buffers[0], parts, lr, self.step_cap)
        update_outputs(w_out, self.buffers[1], parts, lr, self.step_cap)
        pending.result()
        return batch_loss(parts)

    def _hogwild_step(self, batch: WindowBatch, lr: float) -> torch.Tensor:
        buffers = getattr(self.local, "buffers", None)
        if buffers is None:
            buffers = self.local.buffers = (torch.zeros_like(self.buffers[0]), torch.zeros_like(self.buffers[1]))
        return sgns_step(
            self.state.w_in, self.state.w_out, batch, lr, self.negative_mode, buffers, self.max_exp, self.step_cap
        )

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True)


def _resolve(loss: torch.Tensor | Future) -> torch.Tensor:
    return loss.result() if isinstance(loss, Future) else loss


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


def _diverged(value: float, state: TrainingState, params: SGNSParams, epochs: int, lr: float) -> TrainingDivergedError:
    return TrainingDivergedError(
        f"SGNS training diverged: the loss became {value} in epoch {state.epoch + 1}/{epochs} at step {state.step} "
        f"(learning rate {lr:.3g}); lower config key 'lr' (now {params.lr:g}) or look for NaN/Inf in the "
        "resumed checkpoint"
    )


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
    Raises :class:`~embedpipe.errors.TrainingDivergedError` when the loss becomes NaN or infinite.
    """
    params = params or SGNSParams()
    counts = _check_inputs(corpus, counts, counts_total)
    if resume and checkpoint_dir is None:
        raise ConfigError("resume needs a checkpoint directory")
    device = resolve_device(params.device)
    vocab_size = len(counts)
    kernel = resolve_kernel(params.cpu_kernel, device, params.cuda_kernel, params.dim, params.negative)
    # replicas size their steps from the whole corpus, so that all of them take the same steps; the
    # pairwise kernels update pair by pair, so their batch is only the unit of work per hand-off (per
    # launch on CUDA, where it should be big enough to keep every warp busy)
    per_pair_on_cpu = kernel == "pairwise" and device.type == "cpu"
    auto = REFERENCE_BATCH if per_pair_on_cpu else auto_batch_size(counts_total or corpus.n_tokens)
    batch_size = params.batch_size or auto
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
            state = TrainingState.initial(vocab_size, params, device)
        noise = NoiseSampler(noise_distribution(counts), device)
        pairwise: PairwiseStep | CudaPairwiseStep | None = None
        if per_pair_on_cpu:
            pairwise = PairwiseStep(noise.accept, noise.alias, params.negative, params.negative_mode, params.max_exp)
        elif kernel == "pairwise":
            pairwise = CudaPairwiseStep(
                noise.accept, noise.alias, params.negative, params.negative_mode, params.max_exp, params.dim
            )
        batcher = SkipGramBatcher(
            corpus,
            keep_probabilities(counts, params.sample),
            noise,
            window=params.window,
            negative=params.negative,
            batch_size=batch_size,
            negative_mode=params.negative_mode,
            device=device,
            shrink_window=params.shrink_window,
            step_draws_noise=pairwise is not None,
        )
        stepper = _Stepper(
            state, params.negative_mode, workers, hogwild=not params.deterministic, pairwise=pairwise,
            batch_size=batch_size, max_exp=params.max_exp, step_cap=params.step_cap,
        )
        logger.info(
            "training SGNS on %s: %d tokens in %d sentences, %d words, %s step, %d worker thread(s), %d windows "
            "per step (learning rate x %.3g), params %s",
            device, corpus.n_tokens, corpus.n_sentences, vocab_size, kernel, workers, batch_size,
            stepper.lr_factor, params.to_dict(),
        )
        try:
            return _run_epochs(
                state, batcher, stepper, corpus.n_tokens, params, device, checkpoint_dir, progress, log_interval,
                replica_sync,
            )
        finally:
            stepper.close()


def _run_epochs(
    state: TrainingState,
    batcher: SkipGramBatcher,
    stepper: _Stepper,
    n_tokens: int,
    params: SGNSParams,
    device: torch.device,
    checkpoint_dir: str | Path | None,
    progress: Callable[[TrainProgress], None] | None,
    log_interval: float,
    replica_sync: ReplicaSync | None = None,
) -> TrainResult:
    epochs = params.epochs
    total_words = epochs * n_tokens
    scale = stepper.lr_factor
    lr_start, lr_end = params.lr * scale, params.min_lr * scale
    bar = ProgressBar.for_stderr()
    start = time.perf_counter()
    start_words = state.words_done
    run_pairs = 0.0
    lr = lr_start

    def report(words: int, loss: float, epoch_end: bool) -> None:
        elapsed = time.perf_counter() - start
        rate = (words - start_words) / elapsed if elapsed > 0 else 0.0
        eta = (total_words - words) / rate if rate > 0 else math.inf
        epoch = state.epoch + (0 if epoch_end else 1)
        info = TrainProgress(epoch, epochs, words, total_words, loss, lr, rate, eta, epoch_end)
        if epoch_end:
            logger.info(
                "SGNS epoch %d/%d done: loss %.4f, %.0f words/s, %.1f%% done, ETA %s",
                info.epoch, epochs, loss, rate, 100 * info.fraction_done, format_seconds(eta),
            )
        else:
            logger.info(
                "SGNS epoch %d/%d: %.1f%% done, loss %.4f, lr %.5f, %.0f words/s, ETA %s",
                info.epoch, epochs, 100 * info.fraction_done, loss, lr, rate, format_seconds(eta),
            )
        if bar is not None:
            bar.update(info, force=epoch_end)
        if progress is not None:
            progress(info)

    try:
        for epoch in range(state.epoch, epochs):
            epoch_start_words = epoch * n_tokens
            loss_sum = torch.zeros((), dtype=torch.float64, device=device)
            pair_sum = torch.zeros((), dtype=torch.float64, device=device)
            reported_loss, reported_pairs = 0.0, 0.0
            words = epoch_start_words
            last_report = time.perf_counter()
            pending: deque[torch.Tensor | Future] = deque()
            for batch in batcher.epoch(state.epoch_generator(device)):
                lr = max(lr_end, lr_start - (lr_start - lr_end) * words / total_words)
                pending.append(stepper.step(batch, lr))
                while len(pending) > stepper.in_flight:
                    loss_sum += _resolve(pending.popleft())
                pair_sum += pair_count(batch)
                state.step += 1
                words = epoch_start_words + batch.words_done
                if replica_sync is not None and replica_sync.due(words / n_tokens):
                    while pending:  # the matrices must be quiet while replicas exchange them
                        loss_sum += _resolve(pending.popleft())
                    replica_sync.sync(state, words / n_tokens)
                timed = time.perf_counter() - last_report >= log_interval
                if timed or state.step % CHECK_EVERY == 0:
                    total_loss, total_pairs = float(loss_sum), float(pair_sum)
                    if not math.isfinite(total_loss):
                        raise _diverged(total_loss, state, params, epochs, lr)
                    if timed:
                        window_pairs = total_pairs - reported_pairs
                        window_loss = (total_loss - reported_loss) / window_pairs if window_pairs else 0.0
                        reported_loss, reported_pairs = total_loss, total_pairs
                        report(words, window_loss, False)
                        last_report = time.perf_counter()
            while pending:
                loss_sum += _resolve(pending.popleft())
            total_loss, total_pairs = float(loss_sum), float(pair_sum)
            if not math.isfinite(total_loss):
                raise _diverged(total_loss, state, params, epochs, lr)
            epoch_loss = total_loss / total_pairs if total_pairs else 0.0
            run_pairs += total_pairs
            state.epoch += 1
            state.words_done = state.epoch * n_tokens
            state.epoch_losses.append(epoch_loss)
            if replica_sync is not None:
                replica_sync.sync(state, float(state.epoch))
            if checkpoint_dir is not None:
                path = save_checkpoint(checkpoint_dir, state, params)
                logger.info("checkpoint after epoch %d written to %s", state.epoch, path)
            report(state.words_done, epoch_loss, True)
    finally:
        if bar is not None:
            bar.close()
    seconds = time.perf_counter() - start
    words = state.words_done - start_words
    if run_pairs == 0 and words > 0:
        logger.warning("the corpus produced no (center, context) pairs: every sentence has fewer than 2 kept tokens")
    return TrainResult(
        input_vectors=state.w_in.detach().cpu().numpy().copy(),
        output_vectors=state.w_out.detach().cpu().numpy().copy(),
        epoch_losses=list(state.epoch_losses),
        words_per_second=words / seconds if seconds > 0 else 0.0,
        seconds=seconds,
        words=words,
        pairs=int(run_pairs),
        device=str(device),
        params=params,
        batch_size=batcher.batch_size,
        kernel=stepper.kernel,
    )
