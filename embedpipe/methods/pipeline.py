"""``embedpipe train``: open the input, run one method from the registry, write its table(s).

Adding a method (a PyTorch SGNS trainer, item2vec, ALS, ...) means writing a module with a function
``train_x(spark, config, data) -> TrainedEmbeddings``, adding one :class:`TrainMethod` line to
:data:`METHODS` and its settings class (its ``[train.<method>]`` section) to ``METHOD_SETTINGS`` in
``embedpipe/methods/settings.py``; the pipeline and the other methods do not change. Methods are
imported only when they run, so one method's dependencies (torch, say) are never needed by another.

Methods train; only this module writes. The key table goes to ``output``; a method that also embeds
the rows of its input (documents, users) returns them and they go to its ``doc_output`` setting
when it is set; further key tables a method returns (``extra_tables``, e.g. softmax's output
vectors) follow. The tables are committed one after the other, each atomically (the main key table first).
"""

from __future__ import annotations

import importlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from embedpipe.config import config_to_dict
from embedpipe.errors import ConfigError
from embedpipe.jobconfig import TRAIN_METHODS, TrainConfig
from embedpipe.methods.inputs import TrainingInput, read_training_input
from embedpipe.methods.result import TrainedEmbeddings
from embedpipe.stages import StageClock
from embedpipe.table import write_embedding_table

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logging.getLogger(__name__)

Trainer = Callable[["SparkSession", TrainConfig, TrainingInput], TrainedEmbeddings]


@dataclass(frozen=True)
class TrainMethod:
    """One entry of the method registry."""

    name: str
    trainer: str  # "module:function", imported only when the method runs
    summary: str

    def load(self) -> Trainer:
        module_name, _, function_name = self.trainer.partition(":")
        return getattr(importlib.import_module(module_name), function_name)


METHODS: dict[str, TrainMethod] = {
    method.name: method
    for method in (
        TrainMethod("word2vec", "embedpipe.methods.word2vec:train_word2vec",
                    "Spark MLlib Word2Vec (skip-gram, hierarchical softmax) on the token/item sequences"),
        TrainMethod("pca", "embedpipe.methods.pca:train_pca",
                    "PCA / distributed truncated SVD of the bag-of-words (or user x item) count matrix"),
        TrainMethod("sgns", "embedpipe.methods.sgns:train_sgns_on_spark",
                    "embedpipe's PyTorch skip-gram with negative sampling in Spark barrier tasks (CPU or GPU)"),
        TrainMethod("fasttext", "embedpipe.methods.fasttext:train_fasttext_on_spark",
                    "fastText's skip-gram: SGNS with character n-gram (subword) vectors, unseen words composable"),
        TrainMethod("item2vec", "embedpipe.methods.item2vec:train_item2vec_on_spark",
                    "SGNS over each user's item history (every pair within the window is a positive)"),
        TrainMethod("softmax", "embedpipe.methods.softmax_regression:train_softmax_on_spark",
                    "item embeddings inside a model that predicts a held-out watched item (softmax)"),
        TrainMethod("regression", "embedpipe.methods.softmax_regression:train_regression_on_spark",
                    "word embeddings inside a model that predicts a number from a bag of words (L2 loss)"),
        TrainMethod("als", "embedpipe.methods.als:train_als",
                    "Spark MLlib ALS (implicit feedback) item factors, a recommendation baseline"),
        TrainMethod("popularity", "embedpipe.methods.als:train_popularity",
                    "item popularity, the recommendation baseline every method must beat"),
    )
}

if set(METHODS) != set(TRAIN_METHODS):  # pragma: no cover - caught by the tests on any mismatch
    raise ImportError(f"train methods registry {sorted(METHODS)} does not match TRAIN_METHODS {TRAIN_METHODS}")


def run_train(spark: SparkSession, config: TrainConfig) -> dict[str, Any]:
    """Train ``config.method`` on ``config.input`` and write the embedding table(s); return a summary."""
    started = time.perf_counter()
    clock = StageClock()
    method = METHODS.get(config.method)
    if method is None:
        raise ConfigError(f"config key 'method' must be one of {', '.join(METHODS)}, got {config.method!r}")
    log.info("train: method=%s seed=%d config=%s", config.method, config.seed, config_to_dict(config))
    trainer = method.load()
    data = read_training_input(spark, config.input)
    clock.lap("open")
    trained = trainer(spark, config, data)
    clock.lap("train")
    log.info("train: %s ran path %s in %.1f s", config.method, trained.path, time.perf_counter() - started)

    manifest = write_embedding_table(
        spark, trained.keys.rows, config.output,
        method=config.method, dim=trained.dim, params=trained.params, source=data.path, seed=trained.seed,
        tokenizer=data.tokenizer, key_kind=trained.keys.key_kind, expected_rows=trained.keys.expected_rows,
        inputs=(config.input,),
    )
    clock.lap("write")
    summary: dict[str, Any] = {
        "method": config.method,
        "path": trained.path,
        "rows": manifest["rows"],
        "dim": trained.dim,
        "output": config.output,
        **trained.stats,
    }
    doc_output = getattr(config.settings, "doc_output", None)  # pca's; a method that embeds rows has one
    if doc_output and trained.documents is not None:
        doc_manifest = write_embedding_table(
            spark, trained.documents.rows, doc_output,
            method=config.method, dim=trained.dim, params=trained.document_params, source=data.path,
            seed=trained.seed, tokenizer=data.tokenizer, key_kind=trained.documents.key_kind,
            expected_rows=trained.documents.expected_rows, inputs=(config.input,),
        )
        summary["doc_output"] = doc_output
        summary["doc_rows"] = doc_manifest["rows"]
        clock.lap("write")
    for extra in trained.extra_tables:
        extra_manifest = write_embedding_table(
            spark, extra.rows.rows, extra.output,
            method=config.method, dim=extra.dim, params=extra.params, source=data.path, seed=trained.seed,
            tokenizer=data.tokenizer, key_kind=extra.rows.key_kind, expected_rows=extra.rows.expected_rows,
            inputs=(config.input,),
        )
        summary[extra.summary_key] = extra.output
        summary[f"{extra.summary_key}_rows"] = extra_manifest["rows"]
        clock.lap("write")
    summary["seconds"] = round(time.perf_counter() - started, 3)
    summary["stages"] = clock.seconds()
    clock.log(log, "train")
    log.info("train: %s", summary)
    return summary
