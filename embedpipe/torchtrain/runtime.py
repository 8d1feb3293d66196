"""What every objective's training shares: devices, CPU threads, progress reports, replica sync.

The epoch loop (:mod:`embedpipe.torchtrain.epochs`) and both trainers (SGNS, the bag-of-items models)
use these, so a progress line, a ``--device`` value or a replica-averaging hook means the same thing
for every method.
"""

from __future__ import annotations

import math
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO, Any, Protocol

import torch

from embedpipe.errors import ConfigError


@dataclass(frozen=True)
class TrainProgress:
    """One progress report, passed to the ``progress`` callback (and logged).

    "Words" are the objective's unit of work: corpus tokens for SGNS, interactions or bag entries
    for the bag models.
    """

    epoch: int  # 1-based epoch being trained (or just finished when ``epoch_end``)
    epochs: int
    words_done: int  # units processed over all epochs, including before a resume
    total_words: int
    loss: float  # mean loss per example since the previous report
    lr: float
    words_per_second: float
    eta_seconds: float
    epoch_end: bool = False

    @property
    def fraction_done(self) -> float:
        return self.words_done / self.total_words if self.total_words else 1.0


class ReplicaSync(Protocol):
    """Combines data-parallel replicas; ``progress`` is in epochs (1.5 = half-way through epoch 2).

    The loop calls ``sync`` whenever ``due`` says so and at every epoch end; an implementation must
    run the same number of rounds on every replica for the same ``progress`` values, since
    replicas see different amounts of data between calls. ``state`` is the loop's training state.
    """

    def due(self, progress: float) -> bool: ...

    def sync(self, state: Any, progress: float) -> None: ...

    def finish(self, state: Any) -> None:
        """Called once on every replica after the last epoch: combine what the last round left out."""


def resolve_device(name: str) -> torch.device:
    """'auto' -> cuda if available, else cpu; asking for cuda without one is a config error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("config key 'device' is 'cuda' but no CUDA device is available (use 'auto' or 'cpu')")
    return torch.device(name)


@contextmanager
def torch_threads(threads: int | None):
    """Set torch's intra-op thread count for the block (a process-wide setting) and restore it."""
    if threads is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def format_seconds(seconds: float) -> str:
    """H:MM:SS, or '?' for an unknown (infinite) duration."""
    if not math.isfinite(seconds):
        return "?"
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class ProgressBar:
    """A one-line bar on stderr, redrawn at most a few times a second; only used on a TTY."""

    def __init__(self, stream: IO[str], unit: str = "words"):
        self.stream = stream
        self.unit = unit
        self.last = 0.0

    @classmethod
    def for_stderr(cls, unit: str = "words") -> ProgressBar | None:
        """A bar on stderr when it is a terminal, else None (logs only)."""
        import sys

        return cls(sys.stderr, unit) if sys.stderr is not None and sys.stderr.isatty() else None

    def update(self, report: TrainProgress, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self.last < 0.25:
            return
        self.last = now
        filled = int(30 * report.fraction_done)
        self.stream.write(
            f"\r[{'#' * filled}{'.' * (30 - filled)}] {100 * report.fraction_done:5.1f}% "
            f"epoch {report.epoch}/{report.epochs} loss {report.loss:.4f} "
            f"{report.words_per_second:,.0f} {self.unit}/s ETA {format_seconds(report.eta_seconds)} "
        )
        self.stream.flush()

    def close(self) -> None:
        self.stream.write("\n")
        self.stream.flush()
