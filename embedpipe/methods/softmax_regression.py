"""``train --method softmax|regression``: the bag-of-items models of :mod:`embedpipe.torchtrain` in Spark.

Both methods read a sparse matrix whose rows are bags of vocabulary ids, so no string lookup is
needed in the tasks:

* ``softmax`` reads a histories output's ``vectors/`` (a user's distinct items; the values are
  ignored, the input is the *set* of watched items). A user with no more than ``target_items`` items
  holds out all but one; users with a single item cannot give an input and a target, so they are
  filtered out in Spark and counted (``target_items`` is the trainer's ``holdout``; histories'
  ``holdout`` is the evaluation split).
* ``regression`` reads a tokenize output's ``bow/`` written with ``--label-column`` (word ids with
  counts as weights, and the label).

Distribution is the same as ``train --method sgns``, through the same runner
(:func:`~embedpipe.methods.barrier.run_replicas`; see :mod:`embedpipe.methods.sgns`): the rows are
hash-partitioned by row key into ``processes`` partitions, sorted within each (so a seeded run
repeats), and each partition is one barrier ``mapInArrow`` task that turns its Arrow batches into a
:class:`~embedpipe.torchtrain.bag_corpus.BagCorpus` (offsets and ids straight from the list columns, no
per-row Python) and trains one replica. With more than one process the replicas **average their
model parameters** ``averages_per_epoch`` times per epoch (``ReplicaGroup(mode="mean")``, local SGD:
the models use Adam/SparseAdam, whose moments stay per replica, so summing updates would overshoot).
Task 0 emits the vectors; the driver joins them to the vocabulary.

Regression metrics (RMSE/MAE of the model, the mean predictor and ridge on the validation rows) are
computed by every replica on its own validation rows and pooled over the replicas (RMSE as the
root of the pooled mean square). They go into the job summary, ``stats`` and the manifest params.

Warm start (``init_from``, softmax only; :mod:`embedpipe.warmstart`): the kept items' embedding rows
(and, without hidden layers, their output weights when the parent exported them) start from the parent
table's; the rest of the model (new items, hidden layers, optimiser moments) starts as in a cold run.

Unless hidden layers or ``softmax.export_output_vectors`` ask for two towers (or ``softmax.tied``
is false) the output weights are the item vectors: the one table pools a user and scores the
items, so it ranks alone. ``softmax.export_output_vectors`` (untied) writes the output
item vectors as a second table with the same keys; it is returned as an extra table, which the
pipeline commits after the main one. The softmax has no output bias, so mean(input vectors) .
output vector is the model's whole score and ``evaluate --table T --candidate-table T-output``
ranks by it.

Each method has its own section (``[train.softmax]``, ``[train.regression]``:
:mod:`embedpipe.methods.settings`), whose values are all passed to ``BagModelParams``.

Regression replicas share one standardisation of the target (mean and standard deviation over
all labelled rows, two scalars computed by Spark), so the models they average agree on its scale.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from embedpipe import schema
from embedpipe.errors import ConfigError, EmptyResultError, InputError
from embedpipe.jobconfig import TrainConfig
from embedpipe.methods.barrier import Replica, ReplicaGroup, TaskOutput, in_job_terms, job_keys, run_replicas
from embedpipe.methods.result import EmbeddingRows, ExtraTable, TrainedEmbeddings, flatten_lists
from embedpipe.warmstart import OUTPUT_TABLE_PARAM, RECORD_PARAM, plan_warm_start

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from embedpipe.methods.inputs import TrainingInput

log = logging.getLogger(__name__)

_METRIC_NAMES = ("", "mean_", "ridge_")

#: Optimiser steps a softmax run takes in all unless ``softmax.epochs`` is set: a small log gets more passes.
TARGET_STEPS = 1_000
#: The fewest and the most passes :func:`default_epochs` gives.
MIN_DEFAULT_EPOCHS, MAX_DEFAULT_EPOCHS = 20, 200


def default_epochs(users: int, batch_size: int) -> int:
    """Passes over ``users`` that take about ``TARGET_STEPS`` optimiser steps, 20 to 200.

    Why steps, not passes: 20 passes are 100 steps on MovieLens latest-small's 609 users, Recall@20
    0.10 against 0.14 at 1,000 steps (docs/decisions.md); from 6,400 users up 20 passes are 1,000
    steps or more, as before this rule (the planted-log figures at 6,040 users to 1M hold).
    """
    steps_per_epoch = max(1, math.ceil(users / batch_size))
    return max(MIN_DEFAULT_EPOCHS, min(MAX_DEFAULT_EPOCHS, math.ceil(TARGET_STEPS / steps_per_epoch)))
def bag_params(config: TrainConfig, objective: str) -> dict[str, Any]:
    """Every BagModelParams value from the job config (softmax's or regression's section).

    All are passed, none left to BagModelParams' defaults: the job's defaults are the ones users get.
    """
    settings = config.settings
    return {
        "objective": objective,
        "dim": config.dim,
        "hidden": tuple(settings.hidden),
        "combiner": settings.combiner,
        # softmax without epochs: resolved from the users in train_softmax_on_spark
        "epochs": MIN_DEFAULT_EPOCHS if settings.epochs is None else settings.epochs,
        "lr": settings.step_size,
        "batch_size": settings.batch_size,
        "seed": config.seed,
        "device": config.device,
        "threads": config.threads,
        "dropout": settings.dropout,
        **({"sampled": settings.sampled, "proposal_power": settings.proposal_power, "holdout": settings.target_items,
            "tied": settings.resolved_tied()}
           if objective == "softmax" else
           {"validation_fraction": settings.validation_fraction, "ridge_alpha": settings.ridge_alpha}),
    }


def train_softmax_on_spark(spark: SparkSession, config: TrainConfig, data: TrainingInput) -> TrainedEmbeddings:
    """Item vectors from a model that predicts a held-out watched item (histories input)."""
    from pyspark.sql import functions as F

    params = _checked_params(config, "softmax")  # validates before any Spark work
    if data.kind != "histories":
        raise InputError(
            f"train --method softmax needs a histories output (users and the items they watched); "
            f"{data.path} is a {data.kind} output"
        )
    output_table = config.settings.export_output_vectors
    keys = data.vocabulary().column(schema.TOKEN).combine_chunks()
    # before any task (its errors write nothing); output vectors carry over only where they are the model's
    # own (no hidden layers: the parent's hidden layers are not in its tables) and apart (not tied)
    warm = plan_warm_start(spark, config, keys, data.key_kind,
                           with_output=not config.settings.hidden and not params.tied)
    matrix = data.matrix()
    eligible = F.size(schema.INDICES) >= 2  # an input item and a held-out target
    counted = matrix.agg(
        F.count(F.lit(1)).alias("users"), F.count_if(eligible).alias("eligible"),
        F.sum(F.when(eligible, F.size(schema.INDICES))).alias("interactions"),
    ).first()
    users, eligible_users = int(counted["users"]), int(counted["eligible"])
    if eligible_users < config.processes:
        raise EmptyResultError(
            f"{data.path}: {eligible_users} of {users} users watched 2 or more items (an input and a target), "
            f"fewer than processes={config.processes}; lower 'processes' or give longer histories"
        )
    if eligible_users < users:
        log.info("softmax: %d of %d users have fewer than 2 items and are skipped", users - eligible_users, users)
    if config.settings.epochs is None:
        params = dataclasses.replace(params, epochs=default_epochs(eligible_users, params.batch_size))
        log.info("softmax: epochs not set: %d passes over %d users (about %d optimiser steps)", params.epochs,
                 eligible_users, params.epochs * math.ceil(eligible_users / params.batch_size))
    rows = matrix.where(eligible).select(schema.DOC_ID, schema.INDICES)
    fitted = _fit_on_spark(spark, config, data, params, rows, with_output=output_table is not None,
                           initial=warm.initial if warm else None)
    recorded = {
        **_recorded(params, config, data, fitted),
        "users": users,
        "users_trained": eligible_users,
        "interactions_trained": int(counted["interactions"] or 0),
        # where the output vectors went: a later warm start (init_from this table) starts them from there too
        **({OUTPUT_TABLE_PARAM: output_table} if output_table is not None else {}),
        **({RECORD_PARAM: warm.record} if warm else {}),
    }
    stats = {**fitted.stats, "users_trained": eligible_users}
    extra: tuple[ExtraTable, ...] = ()
    if output_table is not None:
        extra = (ExtraTable(
            output=output_table,
            rows=EmbeddingRows(_key_rows(data, fitted.output_vectors), key_kind=data.key_kind,  # type: ignore[arg-type]
                               expected_rows=data.vocab_size),
            dim=params.output_dim,
            params={**recorded, "layer": "output (softmax weights)"},
            summary_key="output_vectors",
        ),)
    return TrainedEmbeddings(
        keys=EmbeddingRows(_key_rows(data, fitted.input_vectors), key_kind=data.key_kind,
                           expected_rows=data.vocab_size),
        dim=config.dim,
        params={**recorded, "layer": "input (embedding bag)"},
        path=fitted.path,
        seed=config.seed,
        stats=stats,
        extra_tables=extra,
    )


def train_regression_on_spark(spark: SparkSession, config: TrainConfig, data: TrainingInput) -> TrainedEmbeddings:
    """Word vectors from a model that predicts a document's label from its bag of words (L2 loss)."""
    params = _checked_params(config, "regression")
    rows = data.labelled_matrix("regression").select(schema.DOC_ID, schema.INDICES, schema.VALUES, schema.LABEL)
    fitted = _fit_on_spark(spark, config, data, params, rows, with_output=False)
    recorded = {**_recorded(params, config, data, fitted), "label_column": data.label_column,
                "metrics": fitted.metrics}
    return TrainedEmbeddings(
        keys=EmbeddingRows(_key_rows(data, fitted.input_vectors), key_kind=data.key_kind,
                           expected_rows=data.vocab_size),
        dim=config.dim,
        params=recorded,
        path=fitted.path,
        seed=config.seed,
        stats={**fitted.stats, **{k if k.startswith("validation") else f"validation_{k}": v
                                  for k, v in fitted.metrics.items()}},
    )


def _checked_params(config: TrainConfig, objective: str) -> Any:
    """The validated BagModelParams; a ConfigError names the job's key (softmax.step_size, not lr)."""
    from embedpipe.torchtrain import BagModelParams

    try:
        return BagModelParams(**bag_params(config, objective))
    except ConfigError as exc:
        raise ConfigError(in_job_terms(str(exc), job_keys(objective))) from None


class _Fitted:
    """What the barrier tasks sent back, decoded on the driver."""

    def __init__(self, input_vectors: np.ndarray, output_vectors: np.ndarray | None, info: dict[str, Any],
                 seconds: float, processes: int):
        self.input_vectors = input_vectors
        self.output_vectors = output_vectors
        self.info = info
        self.metrics: dict[str, float] = info.get("metrics", {})
        self.path = info["objective"] if processes == 1 else f"{info['objective']}-{processes}-replicas"
        self.stats = {
            "fit_seconds": round(seconds, 3),
            "rows_trained": info["rows"],
            "epoch_losses": [round(x, 6) for x in info["epoch_losses"]],
            "final_loss": info["epoch_losses"][-1] if info["epoch_losses"] else None,
            # Rates over task 0's training loop (the replicas run in parallel), not Spark's start-up.
            "train_seconds": round(info["task_seconds"], 3),
            "examples_per_second": round(info["rows"] * info["epochs"] / max(info["task_seconds"], 1e-9), 1),
            "entries_per_second": round(info["entries"] * info["epochs"] / max(info["task_seconds"], 1e-9), 1),
            "device": info["device"],
        }


def _fit_on_spark(
    spark: SparkSession, config: TrainConfig, data: TrainingInput, params: Any, rows: DataFrame, *, with_output: bool,
    initial: Any = None,
) -> _Fitted:
    """Train ``config.processes`` replicas on ``rows`` (doc_id, indices[, values, label]) and decode the result;
    ``initial`` (a warm start's InitialVectors) is applied alike in every replica."""
    processes = config.processes
    vocab_size = data.vocab_size
    counts = data.vocabulary().column(schema.COUNT).to_numpy()
    counts = counts.astype(np.float64)
    target_scale = _target_scale(rows) if params.objective == "regression" else None
    log.info("%s: %d %ss, %d barrier task(s), params %s", params.objective, vocab_size, data.key_kind, processes,
             params.to_dict())
    shared = (counts, params.to_dict(), config.averages_per_epoch, with_output, target_scale, initial)
    result = run_replicas(rows, _train_replica, processes=processes, order_by=schema.DOC_ID, device=params.device,
                          method=params.objective, shared=shared)
    info, seconds = result.info, result.seconds
    input_vectors = result.matrix("input", vocab_size, params.dim)
    output_vectors = result.matrix("output", vocab_size, params.output_dim) if with_output else None
    fitted = _Fitted(input_vectors, output_vectors, info, seconds, processes)
    log.info("%s: trained %d rows x %d epochs in %.1f s (training loop %.1f s: %.0f rows/s, %.0f entries/s), "
             "losses %s", params.objective, info["rows"], info["epochs"], seconds, info["task_seconds"],
             fitted.stats["examples_per_second"],
             fitted.stats["entries_per_second"], fitted.stats["epoch_losses"])
    return fitted


def _target_scale(rows: DataFrame) -> tuple[float, float]:
    """(mean, population std) of the label over every row: one standardisation for all replicas."""
    from pyspark.sql import functions as F

    stats = rows.agg(F.avg(schema.LABEL).alias("mean"), F.stddev_pop(schema.LABEL).alias("std")).first()
    std = float(stats["std"] or 0.0)
    return float(stats["mean"]), std if std > 0 else 1.0


def _key_rows(data: TrainingInput, matrix: np.ndarray) -> pa.Table:
    """The table rows (key, id, count, vector) of a vocabulary-sized matrix, on the driver."""
    from embedpipe.methods.result import driver_rows

    vocabulary = data.vocabulary()
    return driver_rows(vocabulary.column(schema.TOKEN).combine_chunks(), vocabulary.column(schema.COUNT).to_numpy(),
                       matrix)


def _recorded(params: Any, config: TrainConfig, data: TrainingInput, fitted: _Fitted) -> dict[str, Any]:
    """Manifest params: the job's settings and what the model resolved (not run statistics)."""
    return {
        **config.recorded_params(),
        "epochs": params.epochs,  # resolved from the log's users when softmax.epochs is not set
        # softmax: resolved from hidden / export_output_vectors when softmax.tied is not set
        **({"tied": params.tied} if params.objective == "softmax" else {}),
        "threads": params.threads,
        "averaging": (f"mean of model parameters {config.averages_per_epoch}x per epoch"
                      if config.processes > 1 else "none"),
        "implementation": "embedpipe.torchtrain bag model (PyTorch) in Spark barrier tasks",
        "input_kind": data.kind,
        "vocab_size": data.vocab_size,
        "rows_trained": fitted.info["rows"],
    }


def _train_replica(replica: Replica, batches: Iterator[pa.RecordBatch], shared: tuple) -> TaskOutput | None:
    """One bag-model replica (a :data:`~embedpipe.methods.barrier.TaskFunction`): train on the partition,
    average the model with the other replicas; rank 0 returns the vectors and the pooled run facts."""
    from embedpipe.torchtrain import BagModelParams, train_bag_model

    counts, params_dict, averages_per_epoch, with_output, target_scale, initial = shared
    corpus = bag_corpus(list(batches), params_dict["objective"])
    # One seed for every replica: identical initial models are what make averaging meaningful.
    params = BagModelParams(**{**params_dict, "device": replica.device})
    group = replica.join(ReplicaGroup(averages_per_epoch, lambda state: list(state.model.parameters()), mode="mean"))
    try:
        result = train_bag_model(corpus, counts, params, replica_sync=group, target_scale=target_scale,
                                 initial=initial)
        totals = np.array([corpus.n_rows, corpus.n_entries, *_metric_sums(result.metrics)], dtype=np.float64)
        if group is not None:
            totals = group.total(totals)
    finally:
        if group is not None:
            group.close()
    if replica.rank != 0:
        return None
    info = {
        "objective": params.objective,
        "rows": int(totals[0]),
        "entries": int(totals[1]),
        "epochs": params.epochs,
        "epoch_losses": [float(x) for x in result.epoch_losses],
        "device": result.device,
        "metrics": _pooled_metrics(totals[2:]),
        "task_seconds": result.seconds,
    }
    vectors = {"input": result.input_vectors}
    if with_output:
        vectors["output"] = result.output_vectors
    return TaskOutput(info=info, vectors=vectors)


def bag_corpus(batches: list[pa.RecordBatch], objective: str) -> Any:
    """A BagCorpus from Arrow batches of ``indices`` [, ``values``, ``label``] (vocabulary ids already).

    Softmax bags are sets (weights None); regression bags carry counts as weights and the label.
    Built from the list columns' offsets and values: no per-row Python.
    """
    from embedpipe.torchtrain import BagCorpus

    parts = []
    for batch in batches:
        offsets, ids = flatten_lists(batch.column(schema.INDICES))
        weights = targets = None
        if objective == "regression":
            _, values = flatten_lists(batch.column(schema.VALUES))
            weights = values.to_numpy(zero_copy_only=False).astype(np.float32)
            targets = batch.column(schema.LABEL).to_numpy(zero_copy_only=False).astype(np.float32)
        parts.append(BagCorpus(offsets, ids.to_numpy(zero_copy_only=False).astype(np.int64), weights, targets))
    corpus = BagCorpus.concat(parts)
    if objective == "regression" and corpus.targets is None:  # no batch at all: an empty regression corpus
        corpus = BagCorpus(corpus.offsets, corpus.ids, None, np.zeros(0, dtype=np.float32))
    return corpus


def _metric_sums(metrics: dict[str, float]) -> list[float]:
    """[n, n * rmse^2, n * mae] for the model, the mean predictor and ridge: poolable over replicas."""
    n = float(metrics.get("validation_rows", 0.0))
    sums = [n]
    for prefix in _METRIC_NAMES:
        sums += [n * metrics.get(f"{prefix}rmse", 0.0) ** 2, n * metrics.get(f"{prefix}mae", 0.0)]
    return sums


def _pooled_metrics(sums: np.ndarray) -> dict[str, float]:
    n = float(sums[0])
    if n == 0:
        return {}
    pooled: dict[str, float] = {"validation_rows": int(n)}
    for i, prefix in enumerate(_METRIC_NAMES):
        pooled[f"{prefix}rmse"] = float(np.sqrt(sums[1 + 2 * i] / n))
        pooled[f"{prefix}mae"] = float(sums[2 + 2 * i] / n)
    return pooled
