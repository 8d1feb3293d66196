"""fastText's skip-gram (subword vectors) on the SGNS machinery: the same loop, batches and threads, another step.

:func:`train_fasttext` is :func:`~embedpipe.torchtrain.sgns_train.train_sgns` with two differences:
the input matrix has one row per word **and** one per n-gram bucket the vocabulary uses
(:class:`~embedpipe.subwords.SubwordIndex`), and the step is
:class:`~embedpipe.torchtrain.subword_cpu.SubwordStep`, which trains a word's input as the mean of
its rows. Everything else — subsampling, shrunk windows, per-pair noise from the batch seed,
learning-rate decay, deterministic or Hogwild threads, checkpoints, replica sync — is SGNS's, so
a seeded CPU run repeats exactly as an SGNS run does.

The result's ``input_vectors`` are the **composed** word vectors (mean of each word's rows, what
fastText's ``get_word_vector`` returns); ``subword_vectors`` are the bucket rows, in the order of
``SubwordIndex.buckets``, from which unseen words are composed. CUDA is not supported yet.
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
from embedpipe.torchtrain import subword_cpu
from embedpipe.torchtrain.batched_step import REFERENCE_BATCH
from embedpipe.torchtrain.batching import NoiseSampler, SkipGramBatcher
from embedpipe.torchtrain.corpus import IdCorpus, keep_probabilities, noise_distribution
from embedpipe.torchtrain.epochs import run_epochs
from embedpipe.torchtrain.model import TrainingState, load_checkpoint
from embedpipe.torchtrain.params import SGNSParams
from embedpipe.torchtrain.runtime import ReplicaSync, TrainProgress, resolve_device, torch_threads
from embedpipe.torchtrain.sgns_train import TrainResult, _check_inputs, _SkipGram, _Stepper

logger = logging.getLogger(__name__)

#: The one-line error while the CUDA kernel does not exist.
NO_CUDA = "fasttext does not support CUDA yet: set device = cpu (or leave it at auto)"


@dataclass(frozen=True)
class FastTextParams(SGNSParams):
    """SGNS's parameters plus the n-gram scheme (see :mod:`embedpipe.subwords`)."""

    minn: int = option(3, "shortest character n-gram", min=1)
    maxn: int = option(6, "longest character n-gram", min=1)
    buckets: int = option(2_000_000, "hash buckets the n-grams share", min=1)

    def validate(self) -> None:
        check_ngram_settings(self.minn, self.maxn, self.buckets)
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
) -> FastTextResult:
    """Train fastText's skip-gram on ``corpus``; the arguments are :func:`train_sgns`'s plus ``subwords``
    (built with ``params``' minn, maxn and buckets for the vocabulary ``counts`` describes)."""
    counts = _check_inputs(corpus, counts, counts_total)
    if subwords.vocab_size != len(counts):
        raise ValueError(f"subwords cover {subwords.vocab_size} words but counts has {len(counts)}")
    if resume and checkpoint_dir is None:
        raise ConfigError("resume needs a checkpoint directory")
    device = resolve_device(params.device)
    if device.type != "cpu":
        raise ConfigError(NO_CUDA)
    workers = params.threads or torch.get_num_threads()
    with torch_threads(1):
        state = None
        if resume:
            state = load_checkpoint(checkpoint_dir, params, subwords.n_rows, device)  # type: ignore[arg-type]
            if state is not None:
                logger.info("resuming from %s after epoch %d", checkpoint_dir, state.epoch)
        if state is None:
            state = initial_state(subwords, params, device)
        noise = NoiseSampler(noise_distribution(counts, params.noise_power), device)
        step = subword_cpu.SubwordStep(noise.accept, noise.alias, params.negative, subwords.offsets, subwords.rows)
        batcher = SkipGramBatcher(
            corpus, keep_probabilities(counts, params.sample), noise, window=params.window,
            negative=params.negative, batch_size=REFERENCE_BATCH, device=device,
            shrink_window=params.shrink_window, step_draws_noise=True,
        )
        stepper = _Stepper(state, workers, hogwild=not params.deterministic, pairwise=step,
                           batch_size=REFERENCE_BATCH)
        logger.info(
            "training fastText skip-gram on %s: %d tokens in %d sentences, %d words + %d n-gram buckets in use "
            "(%.1f rows per word), %d worker thread(s), params %s", device, corpus.n_tokens, corpus.n_sentences,
            subwords.vocab_size, len(subwords.buckets), len(subwords.rows) / max(subwords.vocab_size, 1), workers,
            params.to_dict(),
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
