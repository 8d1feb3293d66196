"""fastText's skip-gram (subword vectors) on the SGNS machinery: the same loop, batches and threads, another step.

:func:`train_fasttext` is :func:`~embedpipe.torchtrain.sgns_train.train_sgns` with two differences:
the input matrix has one row per word **and** one per n-gram bucket the vocabulary uses
(:class:`~embedpipe.subwords.SubwordIndex`), and the step trains a word's input as the mean of its
rows: :class:`~embedpipe.torchtrain.subword_cpu.SubwordStep` on CPU, and on CUDA
:class:`~embedpipe.torchtrain.pairwise_cuda.CudaPairwiseStep` with the word -> rows arrays (one warp
per window, as SGNS's CUDA kernel; batches sized as SGNS's there). Everything else — subsampling,
shrunk windows, per-pair noise from the batch seed, learning-rate decay, deterministic or Hogwild
threads, checkpoints, replica sync — is SGNS's, so a seeded CPU run repeats exactly as an SGNS run
does (a CUDA run, as SGNS's, only up to the order of its warps' updates).

The result's ``input_vectors`` are the **composed** word vectors (mean of each word's rows, what
fastText's ``get_word_vector`` returns); ``subword_vectors`` are the bucket rows, in the order of
``SubwordIndex.buckets``, from which unseen words are composed.

There is no batched step to fall back to: where the CUDA kernel cannot run (numba-cuda missing, ``dim``
above 512, a failed probe launch), ``device = "auto"`` trains on CPU, saying why in the log, and
``device = "cuda"`` is a one-line ConfigError with the reason.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from embedpipe.config import option
from embedpipe.errors import ConfigError
from embedpipe.subwords import SubwordIndex, check_ngram_settings, compose
from embedpipe.torchtrain import pairwise_cuda, subword_cpu
from embedpipe.torchtrain.batched_step import REFERENCE_BATCH, auto_batch_size
from embedpipe.torchtrain.batching import NoiseSampler, SkipGramBatcher
from embedpipe.torchtrain.corpus import IdCorpus, keep_probabilities, noise_distribution
from embedpipe.torchtrain.epochs import run_epochs
from embedpipe.torchtrain.model import TrainingState, load_checkpoint
from embedpipe.torchtrain.params import SGNSParams
from embedpipe.torchtrain.runtime import ReplicaSync, TrainProgress, resolve_device, torch_threads
from embedpipe.torchtrain.sgns_train import TrainResult, _check_inputs, _SkipGram, _Stepper

logger = logging.getLogger(__name__)

@dataclass(frozen=True)
class FastTextParams(SGNSParams):
    """SGNS's parameters plus the n-gram scheme (see :mod:`embedpipe.subwords`)."""

    minn: int = option(3, "shortest character n-gram", min=1)
    maxn: int = option(6, "longest character n-gram", min=1)
    buckets: int = option(2_000_000, "hash buckets the n-grams share", min=1)

    def validate(self) -> None:
        check_ngram_settings(self.minn, self.maxn, self.buckets)
        if self.tied:  # a word's input is the sum of several rows, its output one: two matrices of other shapes
            raise ConfigError("config key 'tied' is not supported by the subword trainer (fasttext)")
        super().validate()


@dataclass(frozen=True)
class FastTextResult(TrainResult):
    """:class:`TrainResult` with composed ``input_vectors`` and the bucket rows."""

    subword_vectors: np.ndarray = field(default=None, repr=False)  # type: ignore[assignment]  # U x d


def initial_state(subwords: SubwordIndex, params: FastTextParams, device: torch.device | str = "cpu") -> TrainingState:
    """The seeded starting matrices: ``W_in`` (words + used buckets) uniform in ±1/d, ``W_out`` (words) zero."""
    state = TrainingState.initial(subwords.n_rows, params, device)
    state.w_out = state.w_out[: subwords.vocab_size].clone()
    return state


def training_device(params: FastTextParams) -> torch.device:
    """The device to train on: ``params.device`` resolved, unless it is CUDA and fastText's CUDA kernel cannot
    run there (see the module docstring): then CPU for ``auto``, a one-line ConfigError naming the key else."""
    device = resolve_device(params.device)
    if device.type != "cuda":
        return device
    reason = pairwise_cuda.unsupported(params.dim, params.negative)
    if reason is None:
        reason = pairwise_cuda.probe(device.index if device.index is not None else torch.cuda.current_device(),
                                     subwords=True)
    if reason is None:
        return device
    if params.device == "auto":
        logger.warning("fastText: training on CPU, its CUDA kernel cannot run: %s", reason)
        return torch.device("cpu")
    reason = reason.strip().splitlines()[0]  # a one-line error
    raise ConfigError(f"config key 'device' is {params.device!r} but fasttext's CUDA kernel cannot run: {reason} "
                      "(use 'cpu' or 'auto')")


def train_fasttext(
    corpus: IdCorpus,
    counts: np.ndarray | None,
    params: FastTextParams,
    subwords: SubwordIndex,
    *,
    checkpoint_dir: str | Path | None = None,
    resume: bool = False,
    progress: Callable[[TrainProgress], None] | None = None,
    log_interval: float = 5.0,
    replica_sync: ReplicaSync | None = None,
    counts_total: int | None = None,
    _batch_size: int | None = None,
) -> FastTextResult:
    """Train fastText's skip-gram on ``corpus``; the arguments are :func:`train_sgns`'s plus ``subwords``
    (built with ``params``' minn, maxn and buckets for the vocabulary ``counts`` describes).
    ``_batch_size`` (windows per step) is a test and benchmark hook, as train_sgns's, not a setting."""
    counts = _check_inputs(corpus, counts, counts_total)
    if subwords.vocab_size != len(counts):
        raise ValueError(f"subwords cover {subwords.vocab_size} words but counts has {len(counts)}")
    if resume and checkpoint_dir is None:
        raise ConfigError("resume needs a checkpoint directory")
    device = training_device(params)
    on_cuda = device.type == "cuda"
    # as train_sgns: on CUDA a batch is one launch, sized to keep every warp busy, and one host thread
    batch_size = _batch_size or (auto_batch_size(counts_total or corpus.n_tokens) if on_cuda else REFERENCE_BATCH)
    workers = 1 if on_cuda else params.threads or torch.get_num_threads()
    with torch_threads(params.threads if on_cuda else 1):
        state = None
        if resume:
            state = load_checkpoint(checkpoint_dir, params, subwords.n_rows, device)  # type: ignore[arg-type]
            if state is not None:
                logger.info("resuming from %s after epoch %d", checkpoint_dir, state.epoch)
        if state is None:
            state = initial_state(subwords, params, device)
        noise = NoiseSampler(noise_distribution(counts, params.noise_power), device)
        step: subword_cpu.SubwordStep | pairwise_cuda.CudaPairwiseStep
        if on_cuda:
            csr = tuple(torch.as_tensor(np.asarray(a, dtype=np.int64), device=device)
                        for a in (subwords.offsets, subwords.rows))
            step = pairwise_cuda.CudaPairwiseStep(noise.accept, noise.alias, params.negative, params.dim,
                                                  subwords=csr)  # type: ignore[arg-type]
        else:
            step = subword_cpu.SubwordStep(noise.accept, noise.alias, params.negative, subwords.offsets,
                                           subwords.rows)
        batcher = SkipGramBatcher(
            corpus, keep_probabilities(counts, params.sample), noise, window=params.window,
            negative=params.negative, batch_size=batch_size, device=device,
            shrink_window=params.shrink_window, step_draws_noise=True,
        )
        stepper = _Stepper(state, workers, hogwild=not params.deterministic, pairwise=step, batch_size=batch_size)
        logger.info(
            "training fastText skip-gram on %s: %d tokens in %d sentences, %d words + %d n-gram buckets in use "
            "(%.1f rows per word), %d worker thread(s), %d windows per step, params %s", device, corpus.n_tokens,
            corpus.n_sentences, subwords.vocab_size, len(subwords.buckets),
            len(subwords.rows) / max(subwords.vocab_size, 1), workers, batch_size, params.to_dict(),
        )
        objective = _SkipGram(state, params, batcher, stepper, corpus.n_tokens, device)
        objective.name = "fastText"
        try:
            run = run_epochs(
                state, objective, epochs=params.epochs, device=device, checkpoint_dir=checkpoint_dir,
                progress=progress, log_interval=log_interval, replica_sync=replica_sync,
            )
        finally:
            stepper.close()
    w_in = state.w_in.detach().cpu().numpy()
    return FastTextResult(
        input_vectors=compose(w_in, subwords.rows, subwords.offsets),
        output_vectors=state.w_out.detach().cpu().numpy().copy(),
        epoch_losses=list(state.epoch_losses),
        words_per_second=run.units / run.seconds if run.seconds > 0 else 0.0,
        seconds=run.seconds,
        words=run.units,
        pairs=int(run.examples),
        device=str(device),
        params=params,
        batch_size=batcher.batch_size,
        kernel="subword-pairwise",
        subword_vectors=w_in[subwords.vocab_size:].copy(),
    )
