"""The settings of the SGNS trainer, declared once with help text and constraints.

:class:`SGNSParams` uses :func:`embedpipe.config.option`, so a job config can reuse the same help
text, and it validates itself on construction: a bad value raises
:class:`~embedpipe.errors.ConfigError` naming the key whichever way the params were built.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from embedpipe.config import option
from embedpipe.errors import ConfigError

DEVICES = ("auto", "cpu", "cuda")
NEGATIVE_MODES = ("target", "context", "both")
CPU_KERNELS = ("auto", "pairwise", "batched")
CUDA_KERNELS = ("auto", "batched", "pairwise")
STEP_CAPS = ("line", "row")
OBJECTIVES = ("skipgram",)
#: Settings whose None means "choose for me" (threads: torch's default; batch_size: auto_batch_size).
OPTIONAL = ("threads", "batch_size")
#: The step size ``lr`` is stated for; see :func:`lr_scale`.
REFERENCE_BATCH = 1024
AUTO_BATCH_RANGE = (1024, 65536)
#: Corpus tokens per window of the automatic batch size (about 32 steps per epoch before subsampling).
AUTO_TOKENS_PER_WINDOW = 32


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

    ``negative_mode`` picks which side of a (center, context) pair is replaced by noise:

    * ``target`` (word2vec.c, gensim): the context word's input vector is trained to predict the
      center word's output vector against ``negative`` noise *targets*;
    * ``context`` (the formulation of Mikolov et al. 2013): the center word's input vector is trained
      to predict each context word's output vector against ``negative`` noise *contexts*;
    * ``both``: the sum of the two losses.

    ``max_exp``: gensim skips a term (the observed pair or a noise word) whose score ``u.v`` lies
    beyond ±6 (word2vec's ``MAX_EXP``, the end of its sigmoid table) instead of applying its
    gradient. For a correctly scored term that gradient is tiny anyway; for a wrong one (a noise word
    scored far above 0, likely a word that does co-occur) it is the largest push there is, so the
    rule probably keeps unlucky noise draws from pulling related words apart. Measured on the 24M-token
    demo corpus (pairwise kernel, 3 seeds): planted similarity 0.588 with every term trained, 0.621
    with ``max_exp=6`` (gensim 0.604-0.611 over two 3-seed runs); on the Wikipedia excerpt, where
    few scores saturate, it changed nothing. So 6 is the default, for both kernels; 0 trains every
    term. (The batched step scored the same either way.)

    ``step_cap`` (the batched step only; the pairwise kernel applies each term at once): a step sums
    its batch's gradients, and a frequent row's sum can overshoot, so each row's move is bounded by a
    quadratic upper bound of the batch loss (see :mod:`embedpipe.torchtrain.batched_step`). ``row`` moves a row
    by ``lr`` times its summed gradient, or by ``1/H`` where ``H`` bounds the curvature in any
    direction; ``line`` bounds it along the gradient only, so it is never shorter and often much
    longer. Measured (2026-11-26, seeds 1-3, H100 and 2-core CPU): on the Wikipedia excerpt (16,384
    windows per step) ``line`` scored WS353 0.469 against 0.364 and analogies 0.026 against 0.020
    (gensim 0.264 / 0.022); on the 24M-token demo corpus (65,536 windows) it scored planted
    similarity 0.546 against 0.587 and analogies 0.547 against 0.977 (gensim 0.617 / 0.618), at 0.70x
    the words/s. Longer steps help where a run has few steps and hurt where it has many, so ``row``
    stays the default; try ``line`` for corpora of a few million tokens or less.

    ``lr`` is 0.05, fastText's skip-gram default, rather than word2vec's 0.025. Measured
    (2026-11-26, 2-core CPU): 5 epochs leave a corpus of half a million tokens undertrained at 0.025 —
    on the Wikipedia excerpt the pairwise kernel scored WS353 0.385 / SimLex 0.218 / analogies 0.030
    at 0.05 against 0.231 / 0.113 / 0.018 (8 seeds; the batched step 0.403 against 0.353), while on
    the 24M-token demo corpus planted similarity stayed within the seeds' spread (0.611 against
    0.621, seeds 1-3) and analogies rose (0.714 against 0.622). ``lr`` 0.1 lifted the excerpt further
    (WS353 0.491) but was not measured on the large corpus.

    ``shrink_window=False`` makes every pair within ``window`` positions a positive, as item2vec
    treats a user's history: with a window as long as the history, all pairs of its items.

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
    sample: float = option(1e-3, "subsampling threshold for frequent words (0 = off)", min=0.0)
    lr: float = option(
        0.05,
        "initial learning rate (fastText's skip-gram default; word2vec's is 0.025); steps of B > 1,024 windows "
        "use lr * sqrt(B / 1024)",
        min=0.0, min_exclusive=True,
    )
    min_lr: float = option(
        1e-4, "learning rate reached at the end (linear decay over all words; scaled with lr)", min=0.0
    )
    epochs: int = option(5, "passes over the corpus", min=1)
    max_exp: float = option(
        6.0,
        "skip the update of a (pair or noise) term whose score u.v is at least this far from 0, as gensim does "
        "(word2vec's MAX_EXP; its loss still counts); 0 updates every term",
        min=0.0,
    )
    step_cap: str = option(
        "row",
        "batched step: a row moves lr times its summed gradient, or less where the batch loss's quadratic bound "
        "says it would overshoot — bounding the curvature in any direction (row, conservative) or along the "
        "gradient (line: higher scores measured on a 450k-token corpus, lower on a 24M-token one)",
        choices=STEP_CAPS,
    )
    batch_size: int | None = option(
        None,
        "windows (center words) per SGD step (default: the power of two nearest to corpus tokens / 32, "
        "within 1,024..65,536: big corpora take big, GPU-friendly steps; see auto_batch_size)",
        min=1,
    )
    seed: int = option(1, "random seed (initialisation, subsampling, windows, noise)", min=0)
    device: str = option("auto", "where to train: auto (cuda if available), cpu or cuda", choices=DEVICES)
    negative_mode: str = option(
        "target", "noise replaces the center word (target), the context word (context) or both", choices=NEGATIVE_MODES
    )
    objective: str = option("skipgram", "training objective", choices=OBJECTIVES)
    threads: int | None = option(None, "CPU worker threads (default: torch.get_num_threads())", min=1)
    deterministic: bool = option(
        True,
        "CPU with threads > 1: results that do not depend on the thread count (true; the pairwise kernel then "
        "trains on one core while another prepares batches), or Hogwild workers as in word2vec/gensim, faster "
        "but different on every run (false)",
    )
    cpu_kernel: str = option(
        "auto",
        "CPU step: pairwise (word2vec's per-pair SGD compiled with numba, per-pair noise; the fastest on CPU), "
        "batched (the GPU's window-block step) or auto (pairwise when numba is installed)",
        choices=CPU_KERNELS,
    )
    cuda_kernel: str = option(
        "auto",
        "CUDA step: pairwise (word2vec's per-pair SGD, one warp per window, Hogwild; needs numba-cuda, dim <= 512, "
        "negative <= 31; gensim's quality at 25M words/s on an H200), batched (window blocks from one snapshot, "
        "capped per row; 28M words/s, planted similarity 0.02-0.03 below gensim) or auto (pairwise where it "
        "can run, else batched)",
        choices=CUDA_KERNELS,
    )

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Check every field against its declared constraints; raise ConfigError naming the key."""
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            meta = field.metadata
            if isinstance(value, bool) or value is None:
                if value is None and field.name not in OPTIONAL:
                    raise ConfigError(f"config key '{field.name}' is required")
                continue
            check_declared_bounds(field.name, value, meta)
        for name in ("sample", "lr", "min_lr", "max_exp"):
            if not math.isfinite(getattr(self, name)):
                raise ConfigError(f"config key '{name}' must be a finite number, got {getattr(self, name)!r}")
        if self.min_lr > self.lr:
            raise ConfigError(f"config key 'min_lr' must be <= lr ({self.lr}), got {self.min_lr!r}")
        if self.cuda_kernel == "pairwise":
            from embedpipe.torchtrain.pairwise_cuda import check_supported

            check_supported(self.dim, self.negative)

    def to_dict(self) -> dict[str, object]:
        return dataclasses.asdict(self)


def auto_batch_size(corpus_tokens: int) -> int:
    """The default windows per step: the power of two nearest ``corpus_tokens / 32``, within 1,024..65,536.

    Why it grows with the corpus: a step's fixed cost (a few dozen kernel launches) is what limits a
    GPU, so throughput grows with the batch (on an H100: 1.9M words/s at 1,024 windows, 21M at 16,384,
    29M at 65,536), but an epoch of a small corpus must still take enough steps to converge. Measured
    with :func:`lr_scale` on the two benchmark corpora: the 453k-token Wikipedia excerpt is best at
    16,384 (32,768 loses WordSim-353 quality), the 24M-token demo corpus at 32,768-65,536 (16,384
    loses its planted similarity). Tiny corpora get the CPU-friendly 1,024.
    """
    low, high = AUTO_BATCH_RANGE
    target = max(1.0, corpus_tokens / AUTO_TOKENS_PER_WINDOW)
    nearest = 1 << max(0, round(math.log2(target)))
    return int(min(high, max(low, nearest)))


def lr_scale(batch_size: int) -> float:
    """The factor on ``lr``/``min_lr`` for ``batch_size`` windows per step: ``sqrt(batch_size / 1024)``, at least 1.

    A step sums its windows' gradients, so a bigger batch takes fewer, noisier-averaged steps; growing
    the step with the square root of the batch (Krizhevsky's rule) kept quality: on the Wikipedia excerpt
    at 16,384 windows lr 0.025 gave WordSim-353 0.16, 0.05 gave 0.30 and 0.1 (= sqrt scaling) 0.36,
    against gensim's 0.26-0.28. The per-row cap of :mod:`embedpipe.torchtrain.batched_step` keeps frequent words
    stable at the larger rate. Smaller batches keep ``lr`` itself: they are already close to word2vec's
    one-pair-at-a-time SGD, which uses it unscaled.
    """
    return max(1.0, math.sqrt(batch_size / REFERENCE_BATCH))
