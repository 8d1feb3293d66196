"""The one epoch loop every objective trains with: progress, replica sync, checkpoints, divergence checks.

SGNS (:mod:`embedpipe.torchtrain.sgns_train`) and the bag models (:mod:`embedpipe.torchtrain.bag_model`)
differ only in their steps: an :class:`Objective` yields one :class:`Step` per optimiser step of an
epoch, and :func:`run_epochs` does the rest the same way for both — the log lines and the
``progress`` reports, the replica sync rounds (at fixed fractions of every epoch and at its end),
a checkpoint after every epoch, and the NaN/Inf check that raises
:class:`~embedpipe.errors.TrainingDivergedError`.

Losses stay on the device and are read back only every :data:`CHECK_EVERY` steps or when a report is
due (each read is a host sync on CUDA). A step may return a :class:`~concurrent.futures.Future` of its
loss (SGNS's worker threads); the loop keeps at most ``Objective.in_flight`` of them pending and
collects all of them before a replica sync, so the matrices are quiet while replicas exchange them.
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import torch

from embedpipe.errors import TrainingDivergedError
from embedpipe.torchtrain.runtime import ProgressBar, ReplicaSync, TrainProgress, format_seconds

logger = logging.getLogger(__name__)

#: Steps between divergence checks inside an epoch (each check is a host sync on CUDA).
CHECK_EVERY = 32


@dataclass(frozen=True)
class Step:
    """What one optimiser step reports to the loop."""

    loss: torch.Tensor | Future  # the summed loss of the step's examples: a 0-dim device tensor, or a future of one
    examples: torch.Tensor | float  # what ``loss`` sums over (pairs, rows): the denominator of the mean loss
    done: int  # units (words, rows) of the epoch done once this step is
    lr: float  # the learning rate the step used


class EpochState(Protocol):
    """The counters of a training state the loop advances (both objectives' states have them)."""

    epoch: int  # completed epochs
    step: int  # steps taken
    units_done: int  # units over all completed epochs
    epoch_losses: list[float]


class Objective(Protocol):
    """One objective's steps, as the loop sees them."""

    name: str  # in log lines and errors, e.g. "SGNS"
    unit: str  # what ``Step.done`` counts, plural: "words", "examples"
    units_per_epoch: int
    in_flight: int  # steps whose loss may stay pending before the loop collects the oldest
    lr: float  # the configured (initial) learning rate, named in the divergence error

    def steps(self, epoch: int) -> Iterator[Step]:
        """Train epoch ``epoch`` (0-based), one step per item; every random draw seeded by the epoch."""
        ...

    def save_checkpoint(self, directory: str | Path) -> Path:
        """Write the training state to ``directory`` (called after each epoch); returns the file."""
        ...


@dataclass(frozen=True)
class EpochsRun:
    """What :func:`run_epochs` did in this call (a resumed run counts only its own epochs)."""

    seconds: float
    units: int  # units trained
    examples: float  # the summed ``Step.examples`` (e.g. pairs)


def diverged(name: str, value: float, epoch: int, epochs: int, step: int, lr: float, initial_lr: float,
             param: str = "lr") -> TrainingDivergedError:
    """The error for a NaN/Inf loss; ``param`` names the core setting to lower (the caller maps it to its key)."""
    return TrainingDivergedError(
        f"{name} training diverged: the loss became {value} in epoch {epoch}/{epochs} at step {step} "
        f"(learning rate {lr:.3g}); lower the initial learning rate (now {initial_lr:g}) or look for NaN/Inf "
        "weights in the resumed checkpoint",
        param=param,
    )


def _resolve(loss: torch.Tensor | Future) -> torch.Tensor:
    return loss.result() if isinstance(loss, Future) else loss


def run_epochs(
    state: EpochState,
    objective: Objective,
    *,
    epochs: int,
    device: torch.device,
    checkpoint_dir: str | Path | None = None,
    progress: Callable[[TrainProgress], None] | None = None,
    log_interval: float = 5.0,
    replica_sync: ReplicaSync | None = None,
) -> EpochsRun:
    """Train epochs ``state.epoch .. epochs - 1`` with ``objective``'s steps; see the module docstring."""
    per_epoch = objective.units_per_epoch
    total = epochs * per_epoch
    unit = objective.unit
    bar = ProgressBar.for_stderr(unit=unit)
    start = time.perf_counter()
    start_units = state.units_done
    run_examples = 0.0
    lr = objective.lr

    def report(done: int, loss: float, epoch_end: bool) -> None:
        elapsed = time.perf_counter() - start
        rate = (done - start_units) / elapsed if elapsed > 0 else 0.0
        eta = (total - done) / rate if rate > 0 else math.inf
        info = TrainProgress(state.epoch + (0 if epoch_end else 1), epochs, done, total, loss, lr, rate, eta, epoch_end)
        if epoch_end:
            logger.info(
                "%s epoch %d/%d done: loss %.4f, %.0f %s/s, %.1f%% done, ETA %s",
                objective.name, info.epoch, epochs, loss, rate, unit, 100 * info.fraction_done, format_seconds(eta),
            )
        else:
            logger.info(
                "%s epoch %d/%d: %.1f%% done, loss %.4f, lr %.5g, %.0f %s/s, ETA %s",
                objective.name, info.epoch, epochs, 100 * info.fraction_done, loss, lr, rate, unit,
                format_seconds(eta),
            )
        if bar is not None:
            bar.update(info, force=epoch_end)
        if progress is not None:
            progress(info)

    def check(value: float) -> None:
        if not math.isfinite(value):
            raise diverged(objective.name, value, state.epoch + 1, epochs, state.step, lr, objective.lr)

    try:
        for epoch in range(state.epoch, epochs):
            epoch_start = epoch * per_epoch
            loss_sum = torch.zeros((), dtype=torch.float64, device=device)
            example_sum = torch.zeros((), dtype=torch.float64, device=device)
            reported_loss, reported_examples = 0.0, 0.0
            last_report = time.perf_counter()
            pending: deque[torch.Tensor | Future] = deque()
            for step in objective.steps(epoch):
                lr = step.lr
                pending.append(step.loss)
                while len(pending) > objective.in_flight:
                    loss_sum += _resolve(pending.popleft())
                example_sum += step.examples
                state.step += 1
                position = (epoch_start + step.done) / per_epoch  # in epochs
                if replica_sync is not None and replica_sync.due(position):
                    while pending:  # the matrices must be quiet while replicas exchange them
                        loss_sum += _resolve(pending.popleft())
                    replica_sync.sync(state, position)
                timed = time.perf_counter() - last_report >= log_interval
                if timed or state.step % CHECK_EVERY == 0:
                    total_loss, total_examples = float(loss_sum), float(example_sum)
                    check(total_loss)
                    if timed:
                        window = total_examples - reported_examples
                        report(epoch_start + step.done, (total_loss - reported_loss) / window if window else 0.0,
                               False)
                        reported_loss, reported_examples = total_loss, total_examples
                        last_report = time.perf_counter()
            while pending:
                loss_sum += _resolve(pending.popleft())
            total_loss, total_examples = float(loss_sum), float(example_sum)
            check(total_loss)
            run_examples += total_examples
            state.epoch += 1
            state.units_done = state.epoch * per_epoch
            state.epoch_losses.append(total_loss / total_examples if total_examples else 0.0)
            if replica_sync is not None:
                replica_sync.sync(state, float(state.epoch))
            if checkpoint_dir is not None:
                path = objective.save_checkpoint(checkpoint_dir)
                logger.info("checkpoint after epoch %d written to %s", state.epoch, path)
            report(state.units_done, state.epoch_losses[-1], True)
        if replica_sync is not None:
            replica_sync.finish(state)  # the steps after the last round's position: every replica's, in the table
    finally:
        if bar is not None:
            bar.close()
    return EpochsRun(time.perf_counter() - start, state.units_done - start_units, run_examples)
