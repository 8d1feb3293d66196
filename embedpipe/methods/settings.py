"""Each training method's own settings (the ``[train.<method>]`` sections), declared once.

As each ``pyspark.ml`` estimator declares its params and defaults, every method here owns one
frozen dataclass of :func:`~embedpipe.config.option` fields: its help text, its default (written
once: the job passes every value to the PyTorch core explicitly, so this default is the one users
get) and its constraints. The keys all methods share (``input``, ``output``, ``method``, ``dim``,
``seed``) and the PyTorch-runtime keys (``device``, ``processes``, ...) live in
:class:`embedpipe.jobconfig.TrainConfig`.

This module also knows the flat keys of the old single-section ``[train]`` (``window``,
``bag_epochs``, ``als_reg``, ...), so such a key is refused with its new name instead of being
aliased, and the keys that were removed with the experiments they served.

It imports neither Spark nor torch: configs are checked before either starts.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from embedpipe.config import build_config, option
from embedpipe.errors import ConfigError

#: fastText's n-gram range: best on English; Korean text wants minn 1, maxn 4 (docs/decisions.md).
MINN_DEFAULT = 3
MAXN_DEFAULT = 6


@dataclass(frozen=True)
class Word2VecSettings:
    """``[train.word2vec]``: Spark MLlib Word2Vec (skip-gram, hierarchical softmax)."""

    window: int = option(5, "context window size (MLlib windowSize); larger windows favour topical over "
                            "syntactic similarity", min=1)
    min_count: int = option(
        1, "drop vocabulary words counted fewer than this many times (the table keeps exactly the remaining "
        "vocabulary); raise it to train on a tokenize output made with a lower min_count", min=1,
    )
    epochs: int = option(1, "passes over the corpus (MLlib maxIter); raise it for corpora of a few million "
                            "tokens or less", min=1)
    partitions: int = option(1, "MLlib numPartitions: more is faster on a cluster but slightly worse; raise it "
                                "when one partition takes too long", min=1)
    step_size: float = option(0.025, "initial learning rate (MLlib stepSize); rarely needs changing",
                              min=0.0, min_exclusive=True)
    max_sentence_length: int = option(
        1000, "longer documents are split into chunks of this many tokens; raise it only for long documents whose "
        "far-apart words still belong together", min=1,
    )


@dataclass(frozen=True)
class PCASettings:
    """``[train.pca]``: PCA / distributed truncated SVD of the bag-of-words (or user x item) count matrix."""

    solver: str = option(
        "auto", "pca: MLlib PCA (centred, the covariance decomposed on the driver); svd: distributed truncated SVD "
        "(uncentred); auto: svd above max_columns. Set it to compare the two on one vocabulary",
        choices=("auto", "pca", "svd"),
    )
    max_columns: int = option(
        10_000, "auto switches to the SVD path above this vocabulary size; lower it when the driver is short of "
        "memory", min=1, max=65_535,
    )
    scaling: str = option(
        "singular", "word vectors are component rows times the singular values (singular, LSA style), their square "
        "root (sqrt, often better for similarity) or unscaled (none)", choices=("singular", "sqrt", "none"),
    )
    doc_output: str | None = option(
        None, "also write the documents' (or users') vectors as a table here; set it when the rows need vectors"
    )


@dataclass(frozen=True)
class SGNSSettings:
    """``[train.sgns]``: embedpipe's PyTorch skip-gram with negative sampling on token sequences."""

    window: int = option(5, "maximum distance between a center and a context word (each center draws its width "
                            "from 1..window, as word2vec); larger windows favour topical similarity", min=1)
    negative: int = option(5, "noise words per (center, context) pair; 2-5 suffice for large corpora, 5-20 help "
                              "small ones", min=1)
    sample: float = option(1e-3, "subsampling threshold for frequent words (0 = off); lower it (1e-5) for large "
                                 "corpora dominated by stop words", min=0.0)
    step_size: float = option(0.05, "initial learning rate (fastText's; see docs/decisions.md); lower it if "
                                    "training diverges", min=0.0, min_exclusive=True)
    min_step_size: float = option(1e-4, "learning rate reached at the end of the linear decay; rarely needs "
                                        "changing", min=0.0)
    epochs: int = option(5, "passes over the corpus; raise it for corpora of a few million tokens or less, lower "
                            "it for billions", min=1)
    warm_epochs: int = option(1, "passes of a warm run (init_from) instead of epochs; raise it when days differ "
                                 "much more than a sliding window's new slice (docs/warm-start.md)", min=1)
    warm_step_size: float = option(0.002, "initial learning rate of a warm run (init_from) instead of step_size "
                                          "(the parent converged already); raise it towards step_size when the "
                                          "days' data changes a lot (docs/warm-start.md)",
                                   min=0.0, min_exclusive=True)
    deterministic: bool = option(
        True, "CPU results that do not depend on the thread count (true), or lock-free Hogwild threads as in "
        "gensim (false): faster on many cores, different on every run",
    )
    export_output_vectors: str | None = option(
        None, "also write the output (context) vectors as a second table here, same keys; set it to score pairs "
        "by input . output (evaluate --candidate-table)",
    )

    def validate(self) -> None:
        _check_step_sizes("sgns", self.step_size, self.min_step_size)
        _check_step_sizes("sgns", self.warm_step_size, self.min_step_size, "warm_step_size")


@dataclass(frozen=True)
class FastTextSettings:
    """``[train.fasttext]``: SGNS where a word's input vector is the mean of its own and its character n-grams'."""

    window: int = option(5, "maximum distance between a center and a context word (shrunk at random per center, "
                            "as word2vec); larger windows favour topical similarity", min=1)
    negative: int = option(5, "noise words per (center, context) pair; 2-5 suffice for large corpora, 5-20 help "
                              "small ones", min=1)
    sample: float = option(1e-3, "subsampling threshold for frequent words (0 = off); lower it (1e-5) for large "
                                 "corpora dominated by stop words", min=0.0)
    step_size: float = option(0.05, "initial learning rate (fastText's skip-gram default); lower it if training "
                                    "diverges", min=0.0, min_exclusive=True)
    min_step_size: float = option(1e-4, "learning rate reached at the end of the linear decay; rarely needs "
                                        "changing", min=0.0)
    epochs: int = option(5, "passes over the corpus; raise it for corpora of a few million tokens or less, lower "
                            "it for billions", min=1)
    deterministic: bool = option(
        True, "CPU results that do not depend on the thread count (true), or lock-free Hogwild threads as in "
        "fastText (false): faster on many cores, different on every run",
    )
    minn: int = option(MINN_DEFAULT, "shortest character n-gram of '<word>' (characters, not bytes); set 1 for "
                                     "Korean (Hangul syllables carry the stems: 7x the analogies of 3)",
                       min=1, max=10)
    maxn: int = option(MAXN_DEFAULT, "longest character n-gram; set 4 for Korean (with minn = 1)", min=1, max=10)
    buckets: int = option(2_000_000, "hash buckets the n-grams share (fastText's default); lower it to save "
                                     "memory on small vocabularies, raise it when many n-grams collide", min=1)

    def validate(self) -> None:
        _check_step_sizes("fasttext", self.step_size, self.min_step_size)
        if self.minn > self.maxn:
            raise ConfigError(f"config key 'fasttext.minn' must be <= fasttext.maxn ({self.maxn}), got {self.minn!r}")


@dataclass(frozen=True)
class Item2VecSettings:
    """``[train.item2vec]``: SGNS over each user's item history (every pair within the window is a positive)."""

    window: int = option(
        5, "items within this many positions of each other in a user's time-ordered history are positives of "
        "equal weight (a history of up to window + 1 items is a set); raise it when order matters little", min=1,
    )
    negative: int = option(5, "noise items per (item, context) pair, drawn with probability count^noise_power",
                           min=1)
    noise_power: float = option(
        0.5, "exponent of the noise distribution (count^noise_power); below word2vec's 0.75 popular items are drawn "
        "less as noise (MovieLens two towers: Recall@20 0.12 at 0.75, 0.14 at 0-0.5); 0.75 reproduces word2vec",
        min=0.0, max=1.0,
    )
    step_size: float = option(0.025, "initial learning rate (word2vec's, at which item2vec was measured); lower "
                                     "it if training diverges", min=0.0, min_exclusive=True)
    min_step_size: float = option(1e-4, "learning rate reached at the end of the linear decay; rarely needs "
                                        "changing", min=0.0)
    epochs: int | None = option(
        None, "passes over the histories; default: enough to train on about 20M interactions in all (1 pass from "
        "20M interactions up, at most 30), so a small log is not undertrained. Set it to bound the time", min=1,
    )
    warm_epochs: int = option(1, "passes of a warm run (init_from) instead of epochs; raise it when days differ "
                                 "much more than a growing log's latest period (docs/warm-start.md)", min=1)
    warm_step_size: float = option(0.002, "initial learning rate of a warm run (init_from) instead of step_size "
                                          "(the parent converged already); raise it towards step_size when the "
                                          "days' data changes a lot (docs/warm-start.md)",
                                   min=0.0, min_exclusive=True)
    deterministic: bool = option(
        True, "CPU results that do not depend on the thread count (true), or faster lock-free Hogwild threads "
        "(false), different on every run",
    )
    export_output_vectors: str | None = option(
        None, "also write the output (context) vectors as a second table here (untied); users scored against them "
        "by dot (evaluate --candidate-table) rank better than by the tied table alone (MovieLens Recall@20 0.14 "
        "against 0.11)",
    )
    tied: bool | None = option(
        None, "one matrix for the input and context vectors: items that co-occur lie close, so the table ranks "
        "alone by cosine (MovieLens Recall@20 0.11 against 0.01 untied). Unset: tied unless export_output_vectors "
        "asks for two towers; false only reproduces an untied run's table",
    )

    def resolved_tied(self) -> bool:
        """``tied`` as the model trains it: unset means tied unless an output table asks for two towers (the
        table a consumer scores alone then ranks by what the model learned; docs/decisions.md)."""
        return self.tied if self.tied is not None else self.export_output_vectors is None

    def validate(self) -> None:
        _check_step_sizes("item2vec", self.step_size, self.min_step_size)
        _check_step_sizes("item2vec", self.warm_step_size, self.min_step_size, "warm_step_size")
        if self.tied and self.export_output_vectors is not None:
            raise ConfigError("config key 'item2vec.tied' leaves no second table to write: unset "
                              "item2vec.export_output_vectors or tied")


@dataclass(frozen=True)
class SoftmaxSettings:
    """``[train.softmax]``: item embeddings inside a model that predicts held-out watched items."""

    epochs: int | None = option(
        None, "passes over the users; default: enough for about 1,000 optimiser steps (20 passes from 6,400 users "
        "up, at most 200), so a log of a few hundred users is not undertrained. Set it to bound the time", min=1,
    )
    step_size: float = option(0.01, "Adam learning rate; lower it if the loss rises", min=0.0, min_exclusive=True)
    batch_size: int = option(128, "users per optimiser step; raise it on a GPU for speed (with step_size)", min=1)
    hidden: list[int] = option([], "sizes of the ReLU layers after the embedding bag (empty = none), e.g. "
                                   "hidden=64,32; try one layer for large logs", min=1)
    combiner: str = option("mean", "how a user's item vectors are pooled: mean, sqrtn (sum / sqrt(items)) or sum",
                           choices=("mean", "sqrtn", "sum"))
    dropout: float = option(0.3, "dropout on the pooled vector and hidden layers (0.3 raised Recall@20 at 6k-1M "
                                 "users); lower it for very large logs", min=0.0, max=0.9)
    sampled: int = option(
        0, "0 = full softmax over the catalogue; else this many negatives shared by each batch (sampled softmax "
        "with log-Q correction): set it for catalogues of ~100k+ items", min=0,
    )
    proposal_power: float = option(0.75, "sampled negatives are drawn with probability count^power; only used "
                                         "with sampled > 0", min=0.0, max=1.0)
    target_items: int = option(
        20, "items held out of each user's input every epoch as the targets to predict (resampled each epoch); "
        "a user with no more items holds out all but one", min=1,
    )
    export_output_vectors: str | None = option(
        None, "also write the output vectors (the softmax weights, dim = last hidden size or dim) as a second "
        "table here; mean(input vectors) . output vector is the model's score (evaluate --candidate-table)",
    )
    tied: bool | None = option(
        None, "tie the output weights to the item vectors: one table that pools a user and scores the items, so it "
        "ranks alone by cosine (MovieLens Recall@20 0.13 against 0.06 untied). Unset: tied unless hidden layers or "
        "export_output_vectors ask for two towers (their dot score is ~0.01 higher); false only reproduces an "
        "untied run's table",
    )

    def resolved_tied(self) -> bool:
        """``tied`` as the model trains it: unset means tied unless hidden layers or an output table ask for two
        towers (the table a consumer scores alone then ranks as the model does; docs/decisions.md)."""
        return self.tied if self.tied is not None else not self.hidden and self.export_output_vectors is None

    def validate(self) -> None:
        if self.tied and self.hidden:
            raise ConfigError("config key 'softmax.tied' needs no hidden layers (softmax.hidden is "
                              f"{self.hidden}): the output weights are the item vectors")
        if self.tied and self.export_output_vectors is not None:
            raise ConfigError("config key 'softmax.tied' leaves no second table to write: unset "
                              "softmax.export_output_vectors or tied")


@dataclass(frozen=True)
class RegressionSettings:
    """``[train.regression]``: word embeddings inside a model that predicts a document's number (L2 loss)."""

    epochs: int = option(20, "passes over the labelled documents", min=1)
    step_size: float = option(0.01, "Adam learning rate; lower it if the loss rises", min=0.0, min_exclusive=True)
    batch_size: int = option(128, "documents per optimiser step", min=1)
    hidden: list[int] = option([], "sizes of the ReLU layers after the embedding bag (empty = linear), e.g. "
                                   "hidden=64,32", min=1)
    combiner: str = option("sum", "how a document's word vectors are pooled (weighted by counts): sum, sqrtn or "
                                  "mean; mean suits labels that do not grow with the length",
                           choices=("mean", "sqrtn", "sum"))
    dropout: float = option(0.0, "dropout on the pooled vector and hidden layers; raise it if validation RMSE "
                                 "rises while the loss falls", min=0.0, max=0.9)
    validation_fraction: float = option(
        0.1, "share of documents held out (seeded) for RMSE/MAE of the model, the mean predictor and ridge; 0 "
        "trains on all", min=0.0, max=0.9,
    )
    ridge_alpha: float = option(1.0, "L2 penalty of the ridge baseline on bag-of-words counts (reported next to "
                                     "the model)", min=0.0, min_exclusive=True)


@dataclass(frozen=True)
class ALSSettings:
    """``[train.als]``: Spark MLlib implicit-feedback ALS item factors (rank = dim)."""

    reg: float = option(0.1, "regParam, L2 regularisation of the factors (Spark's default); raise it if rare "
                             "items crowd the recommendations", min=0.0)
    alpha: float = option(1.0, "confidence = 1 + alpha * interactions; raise it when repeated interactions mean "
                               "more", min=0.0)
    iterations: int = option(10, "maxIter, alternating least-squares sweeps; 10-20 usually converge", min=1)


@dataclass(frozen=True)
class PopularitySettings:
    """``[train.popularity]``: no settings; the table holds ln(1 + count) per item (dim 1)."""


#: Every method and the class of its ``[train.<method>]`` section (the order is the CLI's).
METHOD_SETTINGS: dict[str, type] = {
    "word2vec": Word2VecSettings,
    "pca": PCASettings,
    "sgns": SGNSSettings,
    "fasttext": FastTextSettings,
    "item2vec": Item2VecSettings,
    "softmax": SoftmaxSettings,
    "regression": RegressionSettings,
    "als": ALSSettings,
    "popularity": PopularitySettings,
}
TRAIN_METHODS = tuple(METHOD_SETTINGS)
TORCH_METHODS = ("sgns", "fasttext", "item2vec", "softmax", "regression")
#: Methods that can start from a parent table's vectors (``init_from``, embedpipe/warmstart.py).
WARM_START_METHODS = ("sgns", "item2vec", "softmax")
#: The common ``[train]`` keys only some methods read (PyTorch runtime, warm start) and the methods that read each.
RUNTIME_KEYS: dict[str, tuple[str, ...]] = {
    "device": TORCH_METHODS,
    "processes": TORCH_METHODS,
    "averages_per_epoch": TORCH_METHODS,
    "threads": TORCH_METHODS,
    "checkpoint_dir": ("sgns", "fasttext", "item2vec"),
    "resume": ("sgns", "fasttext", "item2vec"),
    "init_from": WARM_START_METHODS,
    "init_from_missing": WARM_START_METHODS,
}
#: Settings that name a path: they are not training parameters, so manifests leave them out.
PATH_SETTINGS = frozenset({"doc_output", "export_output_vectors"})

#: Options removed with the experiments they served (docs/decisions.md has the findings).
REMOVED_KEYS = frozenset({"step_cap", "negative_mode", "max_exp", "cpu_kernel", "cuda_kernel", "item_sample",
                          "output_bias"})
#: Keys removed for some methods only (the key lives on under the same name for the others).
_REMOVED_FOR = {"batch_size": ("sgns", "item2vec")}
#: Old flat keys whose name changed: old -> (the methods it served, its name in their sections).
_RENAMED: dict[str, tuple[tuple[str, ...], str]] = {
    "item_window": (("item2vec",), "window"),
    "min_lr": (("sgns", "item2vec"), "min_step_size"),
    "bag_epochs": (("softmax", "regression"), "epochs"),
    "bag_step_size": (("softmax", "regression"), "step_size"),
    "bag_batch_size": (("softmax", "regression"), "batch_size"),
    "pca_solver": (("pca",), "solver"),
    "pca_max_columns": (("pca",), "max_columns"),
    "pca_scaling": (("pca",), "scaling"),
    "als_reg": (("als",), "reg"),
    "als_alpha": (("als",), "alpha"),
    "als_iterations": (("als",), "iterations"),
}


def setting_names(method: str) -> tuple[str, ...]:
    """The keys of ``method``'s section, in declaration order."""
    return tuple(f.name for f in dataclasses.fields(METHOD_SETTINGS[method]))


def _methods_with(key: str) -> list[str]:
    return [m for m in METHOD_SETTINGS if key in setting_names(m)]


def old_flat_keys() -> frozenset[str]:
    """Every key of the old flat ``[train]`` that is not a common key now (refused with its new name)."""
    own = {name for method in METHOD_SETTINGS for name in setting_names(method)}
    return frozenset(own | REMOVED_KEYS | set(_REMOVED_FOR) | set(_RENAMED))


def old_key_error(key: str, method: str) -> ConfigError | None:
    """The error for a flat ``[train]`` key of the old layout (moved or removed), or None if ``key`` is not one."""
    if key in REMOVED_KEYS or (key in _REMOVED_FOR and method in _REMOVED_FOR[key]):
        return ConfigError(f"config key '{key}' was removed (see docs/decisions.md)")
    if key in _RENAMED:
        served, new = _RENAMED[key]
        places = [f"{m}.{new}" for m in served]
        if method in served:
            return _moved(key, method, new)
    elif _methods_with(key):
        places = [f"{m}.{key}" for m in _methods_with(key)]
        if method in _methods_with(key):
            return _moved(key, method, key)
    elif key in _REMOVED_FOR:
        return ConfigError(f"config key '{key}' was removed (see docs/decisions.md)")
    else:
        return None
    return ConfigError(
        f"config key '{key}' moved to the method sections ({', '.join(places)}); method {method} has no such setting"
    )


def _moved(key: str, method: str, new: str) -> ConfigError:
    return ConfigError(f"config key '{key}' moved: use '{method}.{new}' ([train.{method}])")


def section_key_error(method: str, key: str) -> ConfigError:
    """The error for ``key`` in ``[train.<method>]`` (or ``--set method.key``) that the method does not have."""
    if key in REMOVED_KEYS or (key in _REMOVED_FOR and method in _REMOVED_FOR[key]):
        return ConfigError(f"config key '{method}.{key}' was removed (see docs/decisions.md)")
    if key in _RENAMED and method in _RENAMED[key][0]:
        return ConfigError(f"config key '{method}.{key}' moved: use '{method}.{_RENAMED[key][1]}'")
    names = setting_names(method)
    keys = ", ".join(names) if names else "none"
    return ConfigError(f"config key '{method}.{key}' is not a setting of method {method} (its keys: {keys})")


def build_method_settings(
    method: str, values: dict[str, Any], *, from_text_keys: frozenset[str] = frozenset()
) -> Any:
    """``method``'s settings from ``values`` (TOML, or text for ``from_text_keys``); errors name ``method.key``."""
    names = setting_names(method)
    for key in values:
        if key not in names:
            raise section_key_error(method, key)
    return build_config(METHOD_SETTINGS[method], values, from_text_keys=from_text_keys, key_prefix=f"{method}.")


def settings_to_dict(settings: Any) -> dict[str, Any]:
    return dataclasses.asdict(settings)


def _check_step_sizes(method: str, step_size: float, min_step_size: float, name: str = "step_size") -> None:
    if min_step_size > step_size:
        raise ConfigError(
            f"config key '{method}.min_step_size' must be <= {method}.{name} ({step_size}), got {min_step_size!r}"
        )
