"""The trainer's state — both weight matrices and the counters — and its checkpoint format.

:class:`TrainingState` is what training mutates and what a checkpoint stores; the lookup vectors a
caller gets back are a copy of ``w_in`` (see :class:`~embedpipe.torchtrain.sgns_train.TrainResult`), so
exporting never aliases the tensors being trained (gensim's ``model`` vs ``model.wv`` split).

Randomness is reproducible without pickling generator objects: initialisation draws from a CPU
generator seeded with ``seed`` (so CPU and CUDA runs start from the same vectors), and epoch ``e``
draws everything from a generator seeded with a hash of ``(seed, e)``. A checkpoint written at an
epoch boundary therefore fixes the rest of the run exactly, on any device.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch

from embedpipe.errors import ConfigError, InputError
from embedpipe.torchtrain.params import SGNSParams

logger = logging.getLogger(__name__)

#: v2: written since the experiment settings (max_exp, step_cap, negative_mode, batch_size, ...) left
#: SGNSParams; a v1 checkpoint may have trained with one of them, so it is refused, not reinterpreted.
CHECKPOINT_FORMAT = "embedpipe.sgns.checkpoint.v2"
CHECKPOINT_NAME = "sgns_checkpoint.pt"
#: Params that may change between a checkpoint and its resumption (they do not alter the maths,
#: or, for ``epochs``, extend or shorten the schedule on purpose).
RESUMABLE_CHANGES = frozenset({"device", "threads", "deterministic", "epochs"})


def derive_seed(seed: int, *stream: int) -> int:
    """A well-mixed 63-bit seed for one random stream (e.g. one epoch) of a run seeded with ``seed``."""
    return int(np.random.SeedSequence([seed, *stream]).generate_state(1, np.uint64)[0] >> np.uint64(1))


@dataclass(frozen=True)
class InitialVectors:
    """Rows that start from given vectors instead of the seeded random ones: a warm start from a parent table.

    ``rows`` are this run's ids of the keys the parent also has; ``w_in`` (and ``w_out``, when the parent's
    output vectors were exported) their parent vectors, one row each. Every other row keeps the usual
    initialisation, drawn from the same seeded stream, so a warm run is as reproducible as a cold one.
    """

    rows: np.ndarray
    w_in: np.ndarray
    w_out: np.ndarray | None = None

    def apply(self, w_in: torch.Tensor, w_out: torch.Tensor | None) -> None:
        """Set the kept rows; ``w_out`` None (a tied run: one matrix) leaves the parent's output vectors out."""
        rows = torch.as_tensor(np.asarray(self.rows, dtype=np.int64))
        w_in[rows] = torch.as_tensor(np.asarray(self.w_in, dtype=np.float32))
        if self.w_out is not None and w_out is not None:
            w_out[rows] = torch.as_tensor(np.asarray(self.w_out, dtype=np.float32))


@dataclass
class TrainingState:
    """Everything that changes during training: the two matrices, counters and per-epoch losses.

    ``w_in`` (V x d) holds the input ("word") vectors, initialised uniform in ``(-1/d, 1/d)`` as in
    gensim 4 (word2vec.c: ``±0.5/d``; with the pairwise kernel this moved WS353 on the Wikipedia
    excerpt from 0.222 to 0.231 and analogies from 0.015 to 0.018, means of 8 seeds, gensim 0.242 and
    0.020); ``w_out`` holds the output ("context") vectors, initialised to zero.
    """

    w_in: torch.Tensor
    w_out: torch.Tensor
    seed: int
    epoch: int = 0  # completed epochs
    step: int = 0  # SGD steps taken
    words_done: int = 0  # raw corpus tokens processed, over all completed epochs
    epoch_losses: list[float] = field(default_factory=list)

    @property
    def vocab_size(self) -> int:
        return int(self.w_in.shape[0])

    @property
    def units_done(self) -> int:
        """``words_done`` under the epoch loop's name (:class:`~embedpipe.torchtrain.epochs.EpochState`)."""
        return self.words_done

    @units_done.setter
    def units_done(self, value: int) -> None:
        self.words_done = value

    @property
    def dim(self) -> int:
        return int(self.w_in.shape[1])

    @classmethod
    def initial(cls, vocab_size: int, params: SGNSParams, device: torch.device | str = "cpu",
                start: InitialVectors | None = None) -> TrainingState:
        """The seeded starting matrices; with ``start`` (a warm start) its rows replace the random ones."""
        generator = torch.Generator(device="cpu").manual_seed(derive_seed(params.seed, 0))
        bound = 1.0 / params.dim
        w_in = (torch.rand(vocab_size, params.dim, generator=generator) * 2.0 - 1.0) * bound
        if params.tied:  # one matrix as both sides: it starts random (a zero matrix would never move)
            if start is not None:
                start.apply(w_in, None)
            w_in = w_in.to(device)
            return cls(w_in=w_in, w_out=w_in, seed=params.seed)
        w_out = torch.zeros(vocab_size, params.dim)
        if start is not None:
            start.apply(w_in, w_out)
        return cls(w_in=w_in.to(device), w_out=w_out.to(device), seed=params.seed)

    def epoch_generator(self, device: torch.device | str) -> torch.Generator:
        """The generator that drives every random choice of the next epoch on ``device``."""
        return torch.Generator(device=device).manual_seed(derive_seed(self.seed, 1, self.epoch))

    def to_dict(self, params: SGNSParams) -> dict[str, Any]:
        """A plain dict of tensors, numbers and strings — loadable with ``weights_only=True``."""
        return {
            "format": CHECKPOINT_FORMAT,
            "params": params.to_dict(),
            "w_in": self.w_in.detach().cpu(),
            "w_out": self.w_out.detach().cpu(),
            "seed": self.seed,
            "epoch": self.epoch,
            "step": self.step,
            "words_done": self.words_done,
            "epoch_losses": [float(x) for x in self.epoch_losses],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], device: torch.device | str = "cpu") -> TrainingState:
        w_in = data["w_in"].to(device=device, dtype=torch.float32).contiguous()
        tied = bool(data.get("params", {}).get("tied", False))  # one matrix: keep it one after the load
        return cls(
            w_in=w_in,
            w_out=w_in if tied else data["w_out"].to(device=device, dtype=torch.float32).contiguous(),
            seed=int(data["seed"]),
            epoch=int(data["epoch"]),
            step=int(data["step"]),
            words_done=int(data["words_done"]),
            epoch_losses=[float(x) for x in data["epoch_losses"]],
        )


def save_checkpoint(directory: str | os.PathLike[str], state: TrainingState, params: SGNSParams) -> Path:
    """Write ``directory/sgns_checkpoint.pt`` atomically (temporary file, then rename)."""
    return write_checkpoint(directory, CHECKPOINT_NAME, state.to_dict(params))


def write_checkpoint(directory: str | os.PathLike[str], name: str, payload: dict[str, Any]) -> Path:
    """Save ``payload`` (tensors, numbers, strings) as ``directory/name`` atomically: temporary file, rename.

    A kill mid-write leaves the previous checkpoint intact, so a resume never reads half a file.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    partial = directory / (name + ".partial")
    torch.save(payload, partial)
    os.replace(partial, path)
    return path


def read_checkpoint(directory: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The raw checkpoint dict in ``directory`` (tensors on CPU), or None when there is none yet."""
    return read_checkpoint_file(Path(directory) / CHECKPOINT_NAME, CHECKPOINT_FORMAT, "an SGNS")


def read_checkpoint_file(path: Path, expected_format: str, kind: str) -> dict[str, Any] | None:
    """Load ``path`` with ``weights_only=True`` (never unpickles code); None when it does not exist.

    Raises InputError when it cannot be read or is not ``kind`` checkpoint (its ``format`` differs).
    """
    if not path.is_file():
        return None
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the same user problem
        raise InputError(f"checkpoint {path} cannot be read: {exc}") from None
    found = data.get("format") if isinstance(data, dict) else None
    if found != expected_format:
        family = expected_format.rsplit(".", 1)[0]
        if isinstance(found, str) and found.rsplit(".", 1)[0] == family:
            raise InputError(
                f"checkpoint {path} was written by another embedpipe version (format {found}, this one reads "
                f"{expected_format}); start without resume"
            )
        raise InputError(f"checkpoint {path} is not {kind} checkpoint (expected format {expected_format})")
    return data


def check_checkpoint(
    data: dict[str, Any],
    params: SGNSParams,
    vocab_size: int,
    path: str | os.PathLike[str],
    names: Mapping[str, str] | None = None,
) -> None:
    """Raise ConfigError/InputError unless the checkpoint ``data`` can be resumed with ``params``.

    ``names`` maps params to the caller's config keys for the message (e.g. ``lr`` -> ``step_size``).
    """
    saved = data["params"]
    # a key newer than the checkpoint (e.g. tied) was trained at its default
    defaults = {declared.name: declared.default for declared in fields(params)}
    for key, value in params.to_dict().items():
        before = saved.get(key, defaults.get(key))
        if key not in RESUMABLE_CHANGES and before != value:
            name = (names or {}).get(key, key)
            raise ConfigError(
                f"config key '{name}' is {value!r} but checkpoint {path} was trained with {before!r}; "
                "use the same value or start without resume"
            )
    shape = tuple(data["w_in"].shape)
    if shape != (vocab_size, params.dim):
        raise InputError(
            f"checkpoint {path} holds {shape[0]} x {shape[1]} vectors but this run has "
            f"{vocab_size} words x dim {params.dim}"
        )


def load_checkpoint(
    directory: str | os.PathLike[str], params: SGNSParams, vocab_size: int, device: torch.device | str = "cpu"
) -> TrainingState | None:
    """Load the checkpoint in ``directory`` if there is one, after checking it fits this run."""
    data = read_checkpoint(directory)
    if data is None:
        return None
    path = Path(directory) / CHECKPOINT_NAME
    check_checkpoint(data, params, vocab_size, path)
    saved = data["params"]
    if saved.get("epochs") != params.epochs:
        logger.warning("resuming %s (trained for %s epochs) with epochs=%d", path, saved.get("epochs"), params.epochs)
    return TrainingState.from_dict(data, device)
