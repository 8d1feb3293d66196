"""Bag-of-items models: an embedding bag inside a larger model, trained for softmax or regression.

Two objectives on the same machinery as SGNS (seeded epochs, and the epoch loop of
:mod:`embedpipe.torchtrain.epochs`: checkpoints, progress, replica sync, divergence checks):

* ``softmax`` — the input is the set of items a user watched; each epoch ``holdout`` random items of
  every user are held out of the input (resampled every epoch) and a softmax over the catalogue
  predicts them. Full softmax for small catalogues; with ``sampled > 0``, a sampled softmax with
  shared negatives drawn from ``Q ∝ count^proposal_power`` and the log-Q correction, which never
  builds batch x catalogue logits (scales to millions of items).
* ``regression`` — the input is a text's bag of words with counts as weights; an MLP on the pooled
  embedding predicts one number under L2 loss. The target is standardised internally; metrics on
  ``validation_fraction`` held-out rows are reported in original units next to the mean predictor
  and a ridge regression on the bag-of-words counts.

The embedding layer's rows are the exported item/word vectors (``BagModelResult.input_vectors``).
Softmax has no per-item output bias: the model's score of an item is exactly
mean(input vectors) . ``output_vectors[item]``, so the two exported tables carry it (a bias scored
no better, and without it the output vectors alone ranked clearly worse: ``docs/decisions.md``).

Example::

    corpus = encode_bags([["m1", "m2", "m3"], ["m2", "m3"]], ["m1", "m2", "m3"])
    result = train_bag_model(corpus, corpus.counts(3), BagModelParams(dim=8, epochs=2))
    result.input_vectors.shape  # (3, 8)
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from embedpipe.config import option
from embedpipe.errors import ConfigError, EmptyResultError, InputError
from embedpipe.torchtrain.bag_corpus import BagCorpus, gather_rows
from embedpipe.torchtrain.bag_net import BagNet, full_softmax_loss, regression_loss, sampled_softmax_loss
from embedpipe.torchtrain.epochs import Step, run_epochs
from embedpipe.torchtrain.model import InitialVectors, derive_seed, read_checkpoint_file, write_checkpoint
from embedpipe.torchtrain.params import DEFAULT_SEED, check_declared_bounds
from embedpipe.torchtrain.regression_eval import regression_metrics
from embedpipe.torchtrain.regression_eval import word_effects as regression_word_effects
from embedpipe.torchtrain.runtime import ReplicaSync, TrainProgress, resolve_device, torch_threads

logger = logging.getLogger(__name__)

OBJECTIVES = ("softmax", "regression")
COMBINERS = ("mean", "sqrtn", "sum")
DEVICES = ("auto", "cpu", "cuda")

#: v2: written since ``output_bias`` left BagModelParams (a v1 checkpoint may hold a bias this model lacks).
CHECKPOINT_FORMAT = "embedpipe.bagmodel.checkpoint.v2"
CHECKPOINT_NAME = "bagmodel_checkpoint.pt"
#: Params that may change between a checkpoint and its resumption.
RESUMABLE_CHANGES = frozenset({"device", "threads", "epochs"})
#: Random streams (derive_seed(seed, stream, ...)) so the draws of different purposes never overlap.
_INIT_STREAM, _EPOCH_STREAM, _SPLIT_STREAM = 0, 1, 2


@dataclass(frozen=True)
class BagModelParams:
    """Hyper-parameters of the bag models; validated on construction (ConfigError naming the key)."""

    objective: str = option("softmax", "what the model predicts: held-out items (softmax) or a number (regression)",
                            choices=OBJECTIVES)
    dim: int = option(32, "embedding dimension (the exported vectors)", min=1)
    hidden: tuple[int, ...] = option((), "sizes of the ReLU layers after the embedding bag (empty = none)")
    combiner: str = option(
        "mean", "how a bag's vectors are pooled: weighted mean, weighted sum / sqrt(sum of squared weights) "
        "(sqrtn) or weighted sum; regression on counts usually wants sum", choices=COMBINERS,
    )
    epochs: int = option(10, "passes over the rows", min=1)
    lr: float = option(0.01, "Adam learning rate (SparseAdam for the embedding rows)", min=0.0, min_exclusive=True)
    batch_size: int = option(256, "rows (users or texts) per optimiser step", min=1)
    seed: int = option(
        DEFAULT_SEED, "random seed (initialisation, hold-outs, negatives, shuffling, dropout, split)", min=0
    )
    device: str = option("auto", "where to train: auto (cuda if available), cpu or cuda", choices=DEVICES)
    threads: int | None = option(
        None, "torch intra-op threads (default: 1 on CPU, where a step's ops are too small to split, torch's "
        "default on CUDA)", min=1,
    )
    sampled: int = option(
        0, "softmax: 0 = full softmax over the catalogue, else negatives shared by each batch for the sampled "
        "softmax with log-Q correction (use it for large catalogues)", min=0,
    )
    proposal_power: float = option(
        0.75, "softmax: sampled negatives are drawn with probability count^proposal_power", min=0.0, max=1.0
    )
    holdout: int = option(
        1, "softmax: items held out of each user's input per epoch as the targets (at most all but one)", min=1
    )
    dropout: float = option(0.0, "dropout rate on the pooled embedding and the hidden layers", min=0.0, max=0.9)
    tied: bool = option(
        False, "softmax without hidden layers: the output weights are the embedding itself (one table that "
        "ranks alone), instead of a second, zero-initialised matrix",
    )
    validation_fraction: float = option(
        0.1, "regression: share of rows held out (seeded) for RMSE/MAE (0 = none)", min=0.0, max=0.9
    )
    ridge_alpha: float = option(1.0, "regression: L2 penalty of the ridge baseline on bag-of-words counts",
                                min=0.0, min_exclusive=True)

    def __post_init__(self) -> None:
        if isinstance(self.hidden, list):
            object.__setattr__(self, "hidden", tuple(self.hidden))
        self.validate()

    def validate(self) -> None:
        """Check every field against its declared constraints; raise ConfigError naming the key."""
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            meta = f.metadata
            if f.name == "hidden":
                if not isinstance(value, tuple) or not all(
                    isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in value
                ):
                    raise ConfigError(f"config key 'hidden' must be a list of integers >= 1, got {value!r}")
                continue
            if value is None:
                if f.name != "threads":
                    raise ConfigError(f"config key '{f.name}' is required")
                continue
            if f.type == "bool":
                if not isinstance(value, bool):
                    raise ConfigError(f"config key '{f.name}' must be true or false, got {value!r}")
                continue
            expected = int if f.type in ("int", "int | None") else float if f.type == "float" else str
            if isinstance(value, bool) or not isinstance(value, (int, float) if expected is float else expected):
                raise ConfigError(f"config key '{f.name}' must be {expected.__name__}, got {value!r}")
            if expected is float and not math.isfinite(value):
                raise ConfigError(f"config key '{f.name}' must be a finite number, got {value!r}")
            check_declared_bounds(f.name, value, meta)
        if self.tied and (self.objective != "softmax" or self.hidden):
            raise ConfigError("config key 'tied' needs the softmax objective without hidden layers (the output "
                              f"weights are the embedding), got {self.objective!r} with hidden {list(self.hidden)}")

    @property
    def output_dim(self) -> int:
        """Width of the vector that meets the output layer: the last hidden size, else ``dim``."""
        return self.hidden[-1] if self.hidden else self.dim

    def to_dict(self) -> dict[str, object]:
        data = dataclasses.asdict(self)
        data["hidden"] = list(self.hidden)
        return data


@dataclass(frozen=True)
class BagModelResult:
    """The trained vectors (copies, float32) and how the run went.

    ``metrics`` (regression, with a validation split): ``rmse``/``mae`` of the model on the
    validation rows, ``mean_rmse``/``mean_mae`` of the mean predictor (training-row mean),
    ``ridge_rmse``/``ridge_mae`` of ridge regression on the bag-of-words counts, all in the target's
    units, and ``validation_rows``. Softmax: ``train_loss`` of the last epoch.
    ``word_effects`` (regression): for each id, the mean over the rows that contain it of
    d prediction / d count — the change of the prediction, in target units, for one more
    occurrence of the word (NaN for ids in no row).
    """

    input_vectors: np.ndarray = field(repr=False)  # V x dim: the embedding layer (exported)
    output_vectors: np.ndarray | None = field(repr=False)  # softmax: V x output_dim output item vectors
    epoch_losses: list[float]  # mean loss per example of every epoch, including epochs before a resume
    examples_per_second: float  # training examples (rows: users or texts) per second in this run
    seconds: float
    device: str
    params: BagModelParams = field(repr=False)
    metrics: dict[str, float] = field(default_factory=dict)
    word_effects: np.ndarray | None = field(default=None, repr=False)  # regression: V, see above
    entries_per_second: float = 0.0  # bag entries (interactions / word tokens) per second in this run


@dataclass
class BagTrainingState:
    """Everything training mutates; what a checkpoint stores and what replica sync combines.

    For data-parallel replicas average the model with
    ``ReplicaGroup(per_epoch, tensors_of=lambda s: list(s.model.parameters()), mode="mean")``:
    ``model`` is the :class:`~embedpipe.torchtrain.bag_net.BagNet` (parameters ``embedding``,
    ``hidden.*``, ``out_weight`` or ``head.*``); optimiser moments stay per replica.
    """

    model: BagNet
    optimizers: list[torch.optim.Optimizer]
    seed: int
    target_mean: float = 0.0  # regression: the standardisation of the target (training rows)
    target_std: float = 1.0
    epoch: int = 0  # completed epochs
    step: int = 0  # optimiser steps taken
    examples_done: int = 0  # examples over all completed epochs
    epoch_losses: list[float] = field(default_factory=list)

    @property
    def units_done(self) -> int:
        """``examples_done`` under the epoch loop's name (:class:`~embedpipe.torchtrain.epochs.EpochState`)."""
        return self.examples_done

    @units_done.setter
    def units_done(self, value: int) -> None:
        self.examples_done = value

    def to_dict(self, params: BagModelParams) -> dict[str, Any]:
        """A plain dict of tensors, numbers and strings — loadable with ``weights_only=True``."""
        return {
            "format": CHECKPOINT_FORMAT,
            "params": params.to_dict(),
            "vocab_size": self.model.vocab_size,
            "model": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
            "optimizers": [_to_cpu(opt.state_dict()) for opt in self.optimizers],
            "seed": self.seed,
            "target_mean": float(self.target_mean),
            "target_std": float(self.target_std),
            "epoch": self.epoch,
            "step": self.step,
            "examples_done": self.examples_done,
            "epoch_losses": [float(x) for x in self.epoch_losses],
        }

    def load_dict(self, data: dict[str, Any]) -> None:
        """Restore a :meth:`to_dict` snapshot into this (freshly built) state."""
        self.model.load_state_dict(data["model"])
        for opt, saved in zip(self.optimizers, data["optimizers"], strict=True):
            opt.load_state_dict(saved)
        self.seed = int(data["seed"])
        self.target_mean = float(data["target_mean"])
        self.target_std = float(data["target_std"])
        self.epoch = int(data["epoch"])
        self.step = int(data["step"])
        self.examples_done = int(data["examples_done"])
        self.epoch_losses = [float(x) for x in data["epoch_losses"]]


def _to_cpu(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, dict):
        return {k: _to_cpu(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_to_cpu(v) for v in value]
    return value


# --------------------------------------------------------------------------------------------------
# Checkpoints


def save_checkpoint(directory: str | os.PathLike[str], state: BagTrainingState, params: BagModelParams) -> Path:
    """Write ``directory/bagmodel_checkpoint.pt`` atomically (temporary file, then rename)."""
    return write_checkpoint(directory, CHECKPOINT_NAME, state.to_dict(params))


def read_checkpoint(
    directory: str | os.PathLike[str], params: BagModelParams, vocab_size: int
) -> dict[str, Any] | None:
    """The checkpoint in ``directory`` (None if there is none), after checking it fits this run."""
    path = Path(directory) / CHECKPOINT_NAME
    data = read_checkpoint_file(path, CHECKPOINT_FORMAT, "a bag-model")
    if data is None:
        return None
    saved = data["params"]
    for key, value in params.to_dict().items():
        if key not in RESUMABLE_CHANGES and saved.get(key) != value:
            raise ConfigError(
                f"config key '{key}' is {value!r} but checkpoint {path} was trained with {saved.get(key)!r}; "
                "use the same value or start without resume"
            )
    if int(data["vocab_size"]) != vocab_size:
        raise InputError(
            f"checkpoint {path} holds {data['vocab_size']} item/word vectors but this run has {vocab_size}"
        )
    if saved.get("epochs") != params.epochs:
        logger.warning("resuming %s (trained for %s epochs) with epochs=%d", path, saved.get("epochs"), params.epochs)
    return data


# --------------------------------------------------------------------------------------------------
# Batches (numpy on the host, from the CSR arrays; no Python loop per row)


@dataclass(frozen=True)
class BagBatch:
    """One step's input on the device: bags (CSR), their weights, and the targets.

    softmax: ``targets`` is B x holdout item ids (long), ``target_mask`` (B x holdout float) marks
    the real ones when short rows padded their list (None: all real); regression: B standardised
    numbers (float).
    """

    ids: torch.Tensor
    offsets: torch.Tensor  # B + 1
    weights: torch.Tensor
    targets: torch.Tensor
    target_mask: torch.Tensor | None = None

    @property
    def rows(self) -> int:
        return int(self.offsets.shape[0] - 1)


def holdout_split(
    offsets: np.ndarray, k: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Hold out ``min(k, length - 1)`` distinct random entries of every row (each row needs >= 2 entries).

    Returns (held-out entry positions, B x k in row order; which of them are real, B x k bool — a
    row shorter than ``k + 1`` pads its list by repeating its first held entry; kept entry positions;
    the kept rows' offsets). Holding out fewer items from a short history, rather than skipping the
    user, keeps short histories (common in real logs) in training whatever ``k`` is. Vectorised:
    every entry gets a random key, entries are sorted by (row, key), and the first ones of each row
    are held out — for rows longer than ``k`` exactly as with a fixed ``k``.
    """
    n_rows = len(offsets) - 1
    lengths = np.diff(offsets)
    total = int(offsets[-1])
    per_row = np.minimum(k, lengths - 1)
    row_of = np.repeat(np.arange(n_rows, dtype=np.int64), lengths)
    order = np.argsort(row_of + rng.random(total), kind="stable")
    rank = np.arange(total, dtype=np.int64) - offsets[row_of]  # row_of is sorted, so rank in sorted order
    is_held = rank < per_row[row_of]
    held = np.zeros((n_rows, k), dtype=np.int64)
    real = np.zeros((n_rows, k), dtype=bool)
    held[row_of[is_held], rank[is_held]] = order[is_held]
    real[row_of[is_held], rank[is_held]] = True
    held = np.where(real, held, held[:, :1])
    kept_mask = np.ones(total, dtype=bool)
    kept_mask[held[real]] = False
    kept_offsets = offsets - np.concatenate([[0], np.cumsum(per_row)])
    return held, real, np.flatnonzero(kept_mask), kept_offsets


class _Batcher:
    """Builds the batches of one epoch from a :class:`BagCorpus` and a seeded generator."""

    def __init__(self, corpus: BagCorpus, params: BagModelParams, rows: np.ndarray, proposal: np.ndarray | None,
                 device: torch.device, target_mean: float = 0.0, target_std: float = 1.0):
        self.corpus = corpus
        self.params = params
        self.rows = rows  # the rows trained on (eligible users / training texts), sorted
        self.device = device
        self.weights = corpus.entry_weights()
        self.target_mean = target_mean
        self.target_std = target_std
        self.proposal_cdf = None
        self.proposal_log = None
        if proposal is not None:
            cdf = np.cumsum(proposal)
            self.proposal_cdf = cdf / cdf[-1]
            self.proposal_log = torch.from_numpy(np.log(params.sampled * proposal).astype(np.float32)).to(device)

    @property
    def examples(self) -> int:
        return int(len(self.rows))

    def epoch(self, rng: np.random.Generator):
        """Yield ``(batch, negatives or None, examples in the batch)`` in a seeded random row order."""
        order = self.rows[rng.permutation(len(self.rows))]
        size = self.params.batch_size
        for start in range(0, len(order), size):
            rows = order[start:start + size]
            entries, offsets = gather_rows(self.corpus.offsets, rows)
            if self.params.objective == "softmax":
                held, real, kept, offsets = holdout_split(offsets, self.params.holdout, rng)
                targets = torch.from_numpy(self.corpus.ids[entries[held]])
                target_mask = None if real.all() else torch.from_numpy(real.astype(np.float32)).to(self.device)
                entries = entries[kept]
                negatives = None
                if self.proposal_cdf is not None:
                    draws = np.searchsorted(self.proposal_cdf, rng.random(self.params.sampled), side="right")
                    negatives = torch.from_numpy(np.minimum(draws, len(self.proposal_cdf) - 1)).to(self.device)
            else:
                y = (self.corpus.targets[rows].astype(np.float64) - self.target_mean) / self.target_std
                targets = torch.from_numpy(y.astype(np.float32))
                negatives = target_mask = None
            batch = BagBatch(
                ids=torch.from_numpy(self.corpus.ids[entries]).to(self.device),
                offsets=torch.from_numpy(offsets).to(self.device),
                weights=torch.from_numpy(self.weights[entries]).to(self.device),
                targets=targets.to(self.device),
                target_mask=target_mask,
            )
            yield batch, negatives, len(rows)


def batch_loss(model: BagNet, batch: BagBatch, negatives: torch.Tensor | None, proposal_log: torch.Tensor | None,
               generator: torch.Generator | None = None) -> torch.Tensor:
    """The mean loss of one batch (what the optimiser minimises)."""
    h = model.encode(batch.ids, batch.offsets, batch.weights, generator)
    if model.objective == "regression":
        return regression_loss(model.predict(h), batch.targets)
    if negatives is None:
        return full_softmax_loss(h, batch.targets, model.out_weight, batch.target_mask)  # type: ignore[arg-type]
    return sampled_softmax_loss(
        h, batch.targets, model.out_weight, negatives,  # type: ignore[arg-type]
        proposal_log[batch.targets], proposal_log[negatives], sparse=model.sparse_output,  # type: ignore[index]
        target_mask=batch.target_mask,
    )


# --------------------------------------------------------------------------------------------------
# Training


def proposal_distribution(counts: np.ndarray, power: float) -> np.ndarray:
    """Sampled-softmax proposal Q ∝ max(count, 1)^power (float64; zero counts count as 1 so log Q is finite)."""
    weights = np.maximum(np.asarray(counts, dtype=np.float64), 1.0) ** power
    return weights / weights.sum()


def build_state(vocab_size: int, params: BagModelParams, device: torch.device,
                initial: InitialVectors | None = None) -> BagTrainingState:
    """A fresh model (seeded initialisation, identical on every device) and its optimisers.

    The embedding rows (and the output rows under sampled softmax) get sparse gradients and
    SparseAdam; the dense layers get Adam. Both use ``lr``. ``initial`` (a warm start) replaces the
    given rows of the embedding (and of the softmax's output weights) after the seeded draw.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive_seed(params.seed, _INIT_STREAM))
        model = BagNet(vocab_size, params.dim, params.hidden, params.combiner, params.objective,
                       params.dropout, sparse_output=params.sampled > 0, tied=params.tied)
    if initial is not None:
        if initial.w_out is not None and params.tied:
            raise ConfigError("a tied softmax has no output vectors apart from its embedding to start from")
        if initial.w_out is not None and (model.out_weight is None or model.out_weight.shape[1] != params.dim):
            raise ConfigError("a warm start's output vectors need a softmax without hidden layers (dim wide)")
        initial.apply(model.embedding.data, None if model.out_weight is None else model.out_weight.data)
    model.to(device)
    sparse = model.sparse_parameters()  # none when tied to a full softmax (dense gradients)
    optimizers: list[torch.optim.Optimizer] = [torch.optim.SparseAdam(sparse, lr=params.lr)] if sparse else []
    dense = model.dense_parameters()
    if dense:
        optimizers.append(torch.optim.Adam(dense, lr=params.lr))
    return BagTrainingState(model=model, optimizers=optimizers, seed=params.seed)


def _check_inputs(corpus: BagCorpus, counts: np.ndarray | None, params: BagModelParams) -> np.ndarray:
    if corpus.n_entries == 0:
        raise EmptyResultError("the bag corpus has no entries to train on (after dropping unknown items/words)")
    top = int(corpus.ids.max())
    if counts is None:
        counts = corpus.counts(top + 1)
    counts = np.asarray(counts)
    if counts.ndim != 1 or not np.issubdtype(counts.dtype, np.number):
        raise InputError(f"item counts must be a 1-D numeric array, got shape {counts.shape} ({counts.dtype})")
    if len(counts) == 0 or np.any(counts < 0) or not np.all(np.isfinite(counts)):
        raise InputError("item counts must be a non-empty array of finite, non-negative numbers")
    if top >= len(counts):
        raise InputError(
            f"the bag corpus uses id {top} but counts has only {len(counts)} entries (ids 0..{len(counts) - 1})"
        )
    if params.objective == "regression" and corpus.targets is None:
        raise InputError("objective 'regression' needs a target per row (BagCorpus.targets is None)")
    return counts


def split_rows(n_rows: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded (training rows, validation rows), both sorted; ``round(fraction * n_rows)`` validate."""
    if fraction <= 0 or n_rows < 2:
        return np.arange(n_rows, dtype=np.int64), np.zeros(0, dtype=np.int64)
    perm = np.random.default_rng(derive_seed(seed, _SPLIT_STREAM)).permutation(n_rows)
    n_val = min(n_rows - 1, int(round(fraction * n_rows)))
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


def train_bag_model(
    corpus: BagCorpus,
    counts: np.ndarray | None,
    params: BagModelParams | None = None,
    *,
    checkpoint_dir: str | Path | None = None,
    resume: bool = False,
    progress: Callable[[TrainProgress], None] | None = None,
    log_interval: float = 5.0,
    replica_sync: ReplicaSync | None = None,
    target_scale: tuple[float, float] | None = None,
    initial: InitialVectors | None = None,
) -> BagModelResult:
    """Train the bag model of ``params.objective`` on ``corpus`` and return the vectors.

    ``counts[i]`` is the frequency of id ``i``; its length is the vocabulary size (default: counted
    from the corpus). Softmax trains on the rows with 2 or more items (a shorter one holds out all
    but one item; rows of one item are skipped and counted in the log); its sampled-softmax
    proposal follows the counts. Regression needs ``corpus.targets`` and holds out
    ``validation_fraction`` of the rows for ``metrics``.
    With ``checkpoint_dir`` the state is saved after every epoch; ``resume=True`` continues from
    the checkpoint there if one exists, giving the same vectors as an uninterrupted run on CPU.
    ``progress`` gets a :class:`TrainProgress` (unit: examples = rows) about every
    ``log_interval`` seconds and after each epoch. ``replica_sync`` is called like
    :func:`~embedpipe.torchtrain.sgns_train.train_sgns` does, with a :class:`BagTrainingState` (see there
    for the attribute names to average). ``target_scale`` = (mean, std) fixes the regression
    target's standardisation (default: the training rows' own); replicas that average their models
    must share one, e.g. computed over the whole data set by the caller.
    ``initial`` (a warm start, :class:`~embedpipe.torchtrain.model.InitialVectors`) starts its rows from
    a parent table's vectors instead of the seeded ones.
    Raises :class:`~embedpipe.errors.TrainingDivergedError` (``param`` "lr") on a NaN/Inf loss.
    """
    params = params or BagModelParams()
    counts = _check_inputs(corpus, counts, params)
    if resume and checkpoint_dir is None:
        raise ConfigError("resume needs a checkpoint directory")
    device = resolve_device(params.device)
    vocab_size = len(counts)
    if params.objective == "softmax" and params.sampled == 0 and vocab_size > 200_000:
        logger.warning("full softmax over %d items builds batch x %d logits; set sampled > 0", vocab_size, vocab_size)
    # One intra-op thread on CPU unless asked: a step's ops are small, so more threads mostly pay
    # fork/join costs, and on shared cores (Spark tasks, other jobs) OpenMP's spinning workers made
    # 2 threads 20x slower than 1 on a busy 2-core machine. Replicas give the parallelism instead.
    threads = params.threads if params.threads is not None else (1 if device.type == "cpu" else None)
    with torch_threads(threads):
        state = build_state(vocab_size, params, device, initial)
        saved = read_checkpoint(checkpoint_dir, params, vocab_size) if resume else None
        if resume and saved is None:
            logger.info("no checkpoint in %s; starting from scratch", checkpoint_dir)
        if saved is not None:
            state.load_dict(saved)
            logger.info("resuming from %s after epoch %d (step %d)", checkpoint_dir, state.epoch, state.step)
        val_rows = np.zeros(0, dtype=np.int64)
        if params.objective == "softmax":
            rows = np.flatnonzero(corpus.lengths() >= 2)  # one item to hold out, one left as the input
            if len(rows) == 0:
                raise EmptyResultError(
                    "no row has 2 or more items, so none can be trained on (a softmax row needs an input item "
                    "and a held-out target); give longer histories"
                )
            skipped = corpus.n_rows - len(rows)
            if skipped:
                logger.info("softmax: %d of %d rows have fewer than 2 items and are skipped", skipped, corpus.n_rows)
            proposal = proposal_distribution(counts, params.proposal_power) if params.sampled > 0 else None
            batcher = _Batcher(corpus, params, rows, proposal, device)
        else:
            rows, val_rows = split_rows(corpus.n_rows, params.validation_fraction, params.seed)
            if saved is None and target_scale is not None:
                mean, std = (float(v) for v in target_scale)
                if not (math.isfinite(mean) and math.isfinite(std) and std > 0):
                    raise InputError(f"target_scale must be a finite mean and a positive std, got {target_scale!r}")
                state.target_mean, state.target_std = mean, std
            elif saved is None:
                y = corpus.targets[rows].astype(np.float64)  # type: ignore[index]
                state.target_mean = float(y.mean())
                state.target_std = float(y.std()) or 1.0
            batcher = _Batcher(corpus, params, rows, None, device, state.target_mean, state.target_std)
        logger.info(
            "training bag model (%s) on %s: %d rows (%d entries), %d ids, params %s",
            params.objective, device, len(batcher.rows), corpus.n_entries, vocab_size, params.to_dict(),
        )
        entries_per_example = float(corpus.lengths()[batcher.rows].mean())
        objective = _BagObjective(state, params, batcher, device)
        state.model.train()
        try:
            run = run_epochs(
                state, objective, epochs=params.epochs, device=device, checkpoint_dir=checkpoint_dir,
                progress=progress, log_interval=log_interval, replica_sync=replica_sync,
            )
        finally:
            state.model.eval()
        model = state.model
        metrics: dict[str, float] = {}
        word_effects = None
        if params.objective == "softmax":
            if state.epoch_losses:
                metrics["train_loss"] = state.epoch_losses[-1]
        else:
            metrics = regression_metrics(state, corpus, rows, val_rows, params, device)
            effect_rows = val_rows if len(val_rows) else rows
            word_effects = regression_word_effects(state, corpus.take(effect_rows[:100_000]), device)
        seconds = run.seconds
        return BagModelResult(
            input_vectors=model.embedding.detach().cpu().numpy().copy(),
            output_vectors=None if model.out_weight is None else model.out_weight.detach().cpu().numpy().copy(),
            epoch_losses=list(state.epoch_losses),
            examples_per_second=run.units / seconds if seconds > 0 else 0.0,
            seconds=seconds,
            device=str(device),
            params=params,
            metrics=metrics,
            word_effects=word_effects,
            entries_per_second=run.units * entries_per_example / seconds if seconds > 0 else 0.0,
        )


class _BagObjective:
    """The bag models' objective for :func:`~embedpipe.torchtrain.epochs.run_epochs`: shuffled batches of
    rows, one Adam (SparseAdam for sparse rows) step each, every draw seeded by the epoch."""

    unit = "examples"
    in_flight = 0

    def __init__(self, state: BagTrainingState, params: BagModelParams, batcher: _Batcher, device: torch.device):
        self.state = state
        self.params = params
        self.batcher = batcher
        self.device = device
        self.name = params.objective
        self.units_per_epoch = batcher.examples
        self.lr = params.lr

    def steps(self, epoch: int) -> Iterator[Step]:
        state, batcher = self.state, self.batcher
        rng = np.random.default_rng(derive_seed(state.seed, _EPOCH_STREAM, epoch))
        generator = torch.Generator(device=self.device).manual_seed(derive_seed(state.seed, _EPOCH_STREAM, epoch, 1))
        seen = 0
        for batch, negatives, size in batcher.epoch(rng):
            for opt in state.optimizers:
                opt.zero_grad(set_to_none=True)
            loss = batch_loss(state.model, batch, negatives, batcher.proposal_log, generator)
            loss.backward()
            for opt in state.optimizers:
                opt.step()
            seen += size
            yield Step(loss.detach().double() * size, size, seen, self.lr)

    def save_checkpoint(self, directory: str | Path) -> Path:
        return save_checkpoint(directory, self.state, self.params)
