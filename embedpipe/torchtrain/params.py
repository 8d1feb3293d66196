"""The settings of the SGNS trainer, declared once with help text and constraints.

:class:`SGNSParams` uses :func:`embedpipe.config.option`, so a job config can reuse the same help
text, and it validates itself on construction: a bad value raises
:class:`~embedpipe.errors.ConfigError` naming the key whichever way the params were built.
Why the defaults are what they are is in ``docs/decisions.md``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from embedpipe.config import DEFAULT_SEED, option
from embedpipe.errors import ConfigError

DEVICES = ("auto", "cpu", "cuda")
#: Settings whose None means "choose for me" (threads: torch's default).
OPTIONAL = ("threads",)


def check_declared_bounds(name: str, value: object, meta: Mapping[str, Any]) -> None:
    """Check ``value`` against the choices/min/max an :func:`option` declared; ConfigError naming the key."""
    choices = meta.get("choices")
    if choices is not None and value not in choices:
        raise ConfigError(f"config key '{name}' must be one of {', '.join(choices)}, got {value!r}")
    low, high = meta.get("min"), meta.get("max")
    if low is not None and (value < low or (meta.get("min_exclusive") and value == low)):  # type: ignore[operator]
        relation = ">" if meta.get("min_exclusive") else ">="
        raise ConfigError(f"config key '{name}' must be {relation} {low}, got {value!r}")
    if high is not None and value > high:  # type: ignore[operator]
        raise ConfigError(f"config key '{name}' must be <= {high}, got {value!r}")


@dataclass(frozen=True)
class SGNSParams:
    """Hyper-parameters of skip-gram with negative sampling (word2vec's names where they exist).

    The objective is word2vec's: the context word's input vector is trained to predict the center
    word's output vector against ``negative`` noise words, and a term scored beyond ±6 (word2vec's
    ``MAX_EXP``) is not updated, as in gensim. How a step runs (the pairwise kernel on CPU and,
    where it can, on CUDA; the batched step otherwise) is chosen by the trainer, not set here.

    ``shrink_window=False`` makes every pair within ``window`` positions a positive, as item2vec
    treats a user's history: with a window as long as the history, all pairs of its items.

    ``tied=True`` trains one matrix as both sides (``w_out`` is ``w_in``, started random rather than at
    zero), so co-occurring keys, not keys with similar contexts, lie close: what a consumer of the
    table alone ranks by (item2vec; docs/decisions.md).

    On CPU the same seed gives bit-identical vectors for any ``threads`` while ``deterministic``
    is true; ``deterministic=False`` trades that for speed on several cores (Hogwild).
    """

    dim: int = option(100, "embedding dimension", min=1)
    window: int = option(5, "maximum distance between a center and a context word", min=1)
    shrink_window: bool = option(
        True,
        "draw each center's window width uniformly from 1..window (word2vec; near words weigh more) or always "
        "use the full window (item2vec: every item within window positions is an equal positive)",
    )
    negative: int = option(5, "noise words per (center, context) pair", min=1)
    noise_power: float = option(0.75, "noise words are drawn with probability count^noise_power (word2vec's "
                                      "0.75; 0 = uniform)", min=0.0, max=1.0)
    sample: float = option(1e-3, "subsampling threshold for frequent words (0 = off)", min=0.0)
    lr: float = option(
        0.05, "initial learning rate (fastText's skip-gram default; word2vec's is 0.025)",
        min=0.0, min_exclusive=True,
    )
    min_lr: float = option(1e-4, "learning rate reached at the end (linear decay over all words)", min=0.0)
    epochs: int = option(5, "passes over the corpus", min=1)
    seed: int = option(DEFAULT_SEED, "random seed (initialisation, subsampling, windows, noise)", min=0)
    device: str = option("auto", "where to train: auto (cuda if available), cpu or cuda", choices=DEVICES)
    threads: int | None = option(None, "CPU worker threads (default: torch.get_num_threads())", min=1)
    tied: bool = option(
        False, "one matrix for the input and the output vectors (item2vec's table alone then ranks by the "
               "co-occurrence it was trained on); false is word2vec's two matrices",
    )
    deterministic: bool = option(
        True,
        "CPU with threads > 1: results that do not depend on the thread count (true; the pairwise kernel then "
        "trains on one core while another prepares batches), or Hogwild workers as in word2vec/gensim, faster "
        "but different on every run (false)",
    )

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Check every field against its declared constraints; raise ConfigError naming the key."""
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if isinstance(value, bool) or value is None:
                if value is None and field.name not in OPTIONAL:
                    raise ConfigError(f"config key '{field.name}' is required")
                continue
            check_declared_bounds(field.name, value, field.metadata)
        for name in ("sample", "lr", "min_lr", "noise_power"):
            if not math.isfinite(getattr(self, name)):
                raise ConfigError(f"config key '{name}' must be a finite number, got {getattr(self, name)!r}")
        if self.min_lr > self.lr:
            raise ConfigError(f"config key 'min_lr' must be <= lr ({self.lr}), got {self.min_lr!r}")

    def to_dict(self) -> dict[str, object]:
        return dataclasses.asdict(self)
