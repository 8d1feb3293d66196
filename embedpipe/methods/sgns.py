"""``train --method sgns`` (and item2vec): embedpipe's PyTorch SGNS trainer run inside Spark barrier tasks.

One Spark code path, :func:`train_sequences_on_spark`, trains skip-gram with negative sampling on
the sequences of a training input for given :class:`~embedpipe.torchtrain.SGNSParams`; ``sgns``
(token sequences, shrunk windows) and ``item2vec`` (:mod:`embedpipe.methods.item2vec`: item
histories, full windows) differ only in the params and the input they accept.

How it is distributed (no RPC layer of our own): the sequences are hash-partitioned by ``doc_id``
into ``processes`` partitions and handed to one *barrier* ``mapInArrow`` task each
(:func:`~embedpipe.methods.barrier.run_replicas`, the runner every PyTorch method shares), so Spark
schedules all replicas together (and fails them together). Every task encodes its partition's
Arrow batches into ids against the broadcast vocabulary and trains its own replica with
:func:`embedpipe.torchtrain.train_sgns`. With more than one process the replicas join a
``torch.distributed`` group (gloo on CPU, NCCL on GPU; the rendezvous address is agreed through
``BarrierTaskContext.allGather``) and, ``averages_per_epoch`` times per epoch, **sum their
updates** since the previous round: a row one replica trained keeps its full update, as in
sequential SGD, where plain averaging would halve it (measured at chance-level quality). Saturated
rows would overshoot N-fold, so each row's sum is scaled by its expected saturation and the 1,024
most frequent rows are combined every 192 tokens per replica as well
(:class:`~embedpipe.methods.sgns_sync.SGNSReplicaGroup`; quality flat to 16 replicas). Every replica starts from the
same seeded matrices, so the updates live in one space. Task 0 then emits the input vectors as
Arrow batches; the driver pairs them with the (already collected, vocabulary-sized) keys and
counts and hands the rows to the pipeline, which writes the common table. With
``export_output_vectors`` set (``[train.sgns]`` or ``[train.item2vec]``) task 0 also returns the
context (output) vectors, taken after the final replica sync like the input vectors, and the
method returns them as an
:class:`~embedpipe.methods.result.ExtraTable` with the same keys: SGNS scores a (center, context) pair
by input · output, so ``evaluate --table T --candidate-table T-output`` ranks items by the
trained objective itself (two towers) rather than by input-input cosine.

Checkpoints: with ``checkpoint_dir`` every replica ``r`` saves its state after each epoch (after
the epoch-end sum of updates, so all replicas hold the same matrices) to
``<checkpoint_dir>/replica-<r>/``; ``resume`` continues from the last completed epoch. The driver
checks the checkpoints against the params before any task starts (a mismatch is the one-line
ConfigError of :func:`embedpipe.torchtrain.model.check_checkpoint`), and a replica killed before it
saved the last epoch starts from a copy of a replica that did. On CPU a resumed run writes the
same table as an uninterrupted one.

Cost of replicas: each sees 1/processes of the data between rounds, so on small corpora the
combined model trails a single process; docs/benchmarks.md ("Replicas") gives the measured
difference. Determinism: with a seed, the same input and the same ``processes``, the partitioning,
every replica's sampling and the summing order are fixed, so CPU runs repeat exactly (with the
default ``sgns.deterministic = true``; false runs Hogwild threads, faster, not repeatable).

GPUs: ask Spark for them the standard way (``spark.executor.resource.gpu.amount``,
``spark.task.resource.gpu.amount=1`` and a discovery script); each task trains on the GPU Spark
assigned to it (``TaskContext.resources()['gpu']``), or on ``cuda:0`` / CPU per ``device``.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from embedpipe import schema
from embedpipe.errors import ConfigError, EmptyResultError, TrainingDivergedError
from embedpipe.jobconfig import TrainConfig
from embedpipe.methods.barrier import Replica, TaskOutput, job_keys, run_replicas
from embedpipe.methods.result import EmbeddingRows, ExtraTable, TrainedEmbeddings, driver_rows
from embedpipe.methods.sgns_sync import HOT_ROUND_TOKENS, HOT_ROWS, SGNSReplicaGroup, plan_sync
from embedpipe.warmstart import OUTPUT_TABLE_PARAM, RECORD_PARAM, plan_warm_start

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from embedpipe.methods.inputs import TrainingInput
    from embedpipe.methods.settings import SGNSSettings
    from embedpipe.torchtrain import SGNSParams

log = logging.getLogger(__name__)

#: What rank 0 reports of the settings its trainer resolved ('auto' values), for the manifest.
_RESOLVED = ("step", "batch_size", "trained_on")
#: Task 0's wall-clock times (time.time(), in its info row) at: entering the task function, torch and the
#: trainer imported, partition read and encoded, training done — for the driver's breakdown of the stage.
_CLOCKS = ("entered", "imported", "encoded", "trained")


def core_params(config: TrainConfig, *, threads: int | None, epochs: int, sample: float,
                shrink_window: bool) -> dict[str, Any]:
    """Every SGNSParams value from the job config (sgns's or item2vec's section).

    All are passed, none left to SGNSParams' defaults: the job's defaults are the ones users get.
    """
    settings = config.settings
    return {
        "dim": config.dim,
        "window": settings.window,
        "shrink_window": shrink_window,
        "negative": settings.negative,
        "sample": sample,
        "lr": settings.step_size,
        "min_lr": settings.min_step_size,
        "epochs": epochs,
        "seed": config.seed,
        "device": config.device,
        "threads": threads,
        "deterministic": settings.deterministic,
    }


#: word2vec's noise distribution, unigram counts to the 3/4 (item2vec declares its own ``noise_power``).
WORD2VEC_NOISE_POWER = 0.75


def sgns_params(config: TrainConfig, threads: int | None = None) -> dict[str, Any]:
    """The trainer's parameters for ``train --method sgns`` (word2vec's shrunk windows, noise and two matrices:
    similar contexts is what word similarity means)."""
    settings: SGNSSettings = config.settings
    return {**core_params(config, threads=threads or config.threads, epochs=settings.epochs, sample=settings.sample,
                          shrink_window=True), "noise_power": WORD2VEC_NOISE_POWER, "tied": False}


def train_sgns_on_spark(spark: SparkSession, config: TrainConfig, data: TrainingInput) -> TrainedEmbeddings:
    """``train --method sgns``: SGNS on the token (or item) sequences with word2vec's shrunk windows."""
    from embedpipe.torchtrain import SGNSParams

    params = SGNSParams(**sgns_params(config, task_threads(spark, config)))  # validates before Spark work
    return train_sequences_on_spark(spark, config, data, params, method="sgns")


def task_threads(spark: SparkSession, config: TrainConfig) -> int:
    """CPU threads per replica: ``config.threads``, else the cores a barrier task may use.

    Spark starts Python workers with ``OMP_NUM_THREADS`` = ``spark.task.cpus`` (1 by default), so
    torch's own default inside a task is one thread even on an idle many-core machine. In
    ``local[N]`` the replicas share the N cores; on a cluster each task gets ``spark.task.cpus``
    (set it to the executor's cores to give one replica a whole executor). With the default
    ``deterministic=True`` the thread count never changes the vectors, only the speed.
    """
    if config.threads is not None:
        return config.threads
    context = spark.sparkContext
    if context.master.startswith("local"):
        threads = max(1, context.defaultParallelism // config.processes)
    else:
        threads = max(1, int(context.getConf().get("spark.task.cpus", "1")))
    log.info("threads not set: %d CPU thread(s) per replica (%d replica(s) on %s)", threads, config.processes,
             context.master)
    return threads


@dataclass(frozen=True)
class _Checkpoints:
    """Where replicas save their state, and the epoch they resume after (0: from scratch)."""

    directory: str | None
    resume_epoch: int = 0

    def replica_dir(self, rank: int) -> str | None:
        return None if self.directory is None else str(Path(self.directory) / f"replica-{rank}")


def train_sequences_on_spark(
    spark: SparkSession, config: TrainConfig, data: TrainingInput, params: SGNSParams, *, method: str
) -> TrainedEmbeddings:
    """Train SGNS with ``params`` on ``data``'s sequences in ``config.processes`` barrier tasks.

    The one Spark code path of every SGNS-style method: ``config`` supplies what is not a trainer
    parameter (``processes``, ``averages_per_epoch``, checkpoints); the result has one vector per
    vocabulary key, and with the section's ``export_output_vectors`` an extra table of the context
    vectors.
    """
    vocab_table = data.vocabulary()
    if vocab_table.num_rows == 0:
        raise EmptyResultError(f"train input {data.path} has an empty vocabulary")
    keys = vocab_table.column(schema.TOKEN).combine_chunks()
    counts = vocab_table.column(schema.COUNT).to_numpy().astype(np.int64)
    processes = config.processes
    warm = plan_warm_start(spark, config, keys, data.key_kind,  # before any task: its errors write nothing
                           sentences=data.sentences(), window=getattr(config.settings, "window", None))
    if warm is not None and warm.initial is not None:
        params = warm_params(params, config.settings, warm)
    checkpoints = _prepare_checkpoints(config, params, len(keys), method)
    output_table = config.settings.export_output_vectors
    with_output = output_table is not None
    log.info("%s: %d %ss, %d barrier task(s), params %s", method, len(keys), data.key_kind, processes,
             params.to_dict())

    result = run_replicas(
        data.sentences().select(schema.DOC_ID, schema.TOKENS), _train_replica, processes=processes,
        order_by=schema.DOC_ID, device=params.device, method=method,
        shared=(keys, counts, params.to_dict(), config.averages_per_epoch, checkpoints, with_output,
                warm.initial if warm else None),
    )
    fit_seconds, info, clock = result.seconds, result.info, result.started
    matrix = result.matrix("input", len(keys), params.dim)
    tokens_trained, loss = int(info["tokens"]), float(info["loss"])
    check_learned(loss, params.negative, processes, method)
    epochs_run = params.epochs - checkpoints.resume_epoch
    marks = [clock, *(float(info[name]) for name in _CLOCKS)]
    split = dict(zip(("start_seconds", "import_seconds", "encode_seconds", "train_seconds"),
                     (round(b - a, 3) for a, b in zip(marks, marks[1:], strict=False)), strict=True))
    split["result_seconds"] = round(fit_seconds - (marks[-1] - clock), 3)
    log.info(
        "%s: trained on %d %ss x %d epoch(s) in %.1f s (%.0f words/s); task 0: %.1f s to start (input stage, "
        "worker), %.1f s importing torch, %.1f s reading and encoding its partition, %.1f s training (%.0f "
        "words/s), %.1f s returning the vectors; final loss %.4f", method, tokens_trained, data.key_kind, epochs_run,
        fit_seconds, tokens_trained * epochs_run / max(fit_seconds, 1e-9), split["start_seconds"],
        split["import_seconds"], split["encode_seconds"], split["train_seconds"],
        tokens_trained * epochs_run / max(split["train_seconds"], 1e-9), split["result_seconds"], loss,
    )

    recorded = {
        **config.recorded_params(),
        "threads": params.threads,  # as resolved (task_threads)
        "epochs": params.epochs,  # item2vec: as resolved from the log's size
        # item2vec: as resolved from export_output_vectors when item2vec.tied is not set
        **({"tied": params.tied} if hasattr(config.settings, "tied") else {}),
        # what the trainer made of 'auto' settings on rank 0's device
        **{name: info[name] for name in _RESOLVED},
        "averaging": (f"saturation-scaled sum of input and output matrix updates {config.averages_per_epoch}x per "
                      f"epoch, the {HOT_ROWS} hottest rows every {HOT_ROUND_TOKENS} tokens"
                      if processes > 1 else "none"),
        "implementation": "embedpipe.torchtrain (PyTorch) in Spark barrier tasks",
        "input_kind": data.kind,
        "vocab_size": len(keys),
        # where the context vectors went: a later warm start (init_from this table) starts them from there too
        **({OUTPUT_TABLE_PARAM: output_table} if with_output else {}),
        **({RECORD_PARAM: warm.record} if warm else {}),
    }
    extra: tuple[ExtraTable, ...] = ()
    if with_output:
        extra = (ExtraTable(
            output=output_table,
            rows=EmbeddingRows(driver_rows(keys, counts, result.matrix("output", len(keys), params.dim)),
                               key_kind=data.key_kind, expected_rows=len(keys)),
            dim=params.dim,
            params={**recorded, "layer": "output (context vectors)"},
            summary_key="output_vectors",
        ),)
    return TrainedEmbeddings(
        keys=EmbeddingRows(driver_rows(keys, counts, matrix), key_kind=data.key_kind,
                           expected_rows=len(keys)),
        dim=params.dim,
        params={**recorded, "layer": "input"} if with_output else recorded,
        path=method if processes == 1 else f"{method}-{processes}-replicas",
        seed=params.seed,
        stats={"fit_seconds": round(fit_seconds, 3), **split, "tokens_trained": tokens_trained, "final_loss": loss,
               "resumed_after_epoch": checkpoints.resume_epoch},
        extra_tables=extra,
    )


def warm_params(params: SGNSParams, settings: Any, warm: Any) -> SGNSParams:
    """A warm run's params: ``warm_epochs`` at ``warm_step_size`` (the parent converged already; see
    docs/decisions.md), recorded with the warm start."""
    warm.record.update(epochs=settings.warm_epochs, step_size=settings.warm_step_size)
    log.info("warm start: %d epoch(s) from step size %g (warm_epochs, warm_step_size)", settings.warm_epochs,
             settings.warm_step_size)
    return dataclasses.replace(params, epochs=settings.warm_epochs, lr=settings.warm_step_size)


def check_learned(loss: float, negative: int, processes: int, method: str) -> None:
    """Refuse vectors whose last epoch's loss is above that of untrained ones: they are no better than random.

    Untrained (near-zero) vectors score every pair 0, a loss of ``(1 + negative) ln 2`` per pair. A run
    ending above it overshot: too large a step size, or replicas whose combined updates did (issue 25
    measured 8 summing replicas ending at random vectors with exit 0). Raised before anything is written.
    """
    untrained = (1 + negative) * math.log(2)
    if not loss > untrained:
        return
    cause = (f"the {processes} replicas' combined updates overshot: lower {method}.step_size or processes "
             "(docs/methods/sgns.md)" if processes > 1 else f"lower {method}.step_size")
    raise TrainingDivergedError(
        f"{method} training ended at a loss of {loss:.4g} per pair, above the {untrained:.3f} of untrained vectors, "
        f"so the vectors are no better than random: {cause}"
    )


def _prepare_checkpoints(config: TrainConfig, params: SGNSParams, vocab_size: int, method: str) -> _Checkpoints:
    """Check ``checkpoint_dir``/``resume`` on the driver, before any task starts.

    Resuming: every replica's checkpoint must fit the params (one-line ConfigError otherwise);
    replicas behind the most advanced one (killed between two replicas' saves) get a copy of its
    state, which is the same for all replicas after an epoch. Not resuming: old checkpoints of
    this directory are removed, so a later resume never mixes two runs.
    """
    from embedpipe.torchtrain.model import CHECKPOINT_NAME, check_checkpoint, read_checkpoint

    if config.checkpoint_dir is None:
        if config.resume:
            raise ConfigError("config key 'resume' needs checkpoint_dir (where the checkpoints are)")
        return _Checkpoints(None)
    directory = config.checkpoint_dir.removeprefix("file://").removeprefix("file:")
    if "://" in directory:
        raise ConfigError(
            f"config key 'checkpoint_dir' must be a local or mounted shared directory, got {config.checkpoint_dir!r}"
        )
    root = Path(directory).resolve()
    if root.exists() and not root.is_dir():
        raise ConfigError(f"config key 'checkpoint_dir' is {config.checkpoint_dir!r}, which is not a directory")
    checkpoints = _Checkpoints(str(root))
    existing = sorted(root.glob(f"replica-*/{CHECKPOINT_NAME}")) if root.is_dir() else []
    if not config.resume:
        for path in existing:
            path.unlink()
        return checkpoints
    if not existing:
        log.info("resume: no checkpoint in %s; starting from scratch", root)
        return checkpoints
    ranks = {int(p.parent.name.removeprefix("replica-")) for p in existing
             if p.parent.name.removeprefix("replica-").isdigit()}
    if max(ranks) >= config.processes:
        raise ConfigError(
            f"config key 'processes' is {config.processes} but checkpoint_dir {root} holds checkpoints of "
            f"{max(ranks) + 1} replicas; use the same value or start without resume"
        )
    epochs = {}
    for rank in sorted(ranks):
        replica = root / f"replica-{rank}"
        saved = read_checkpoint(replica)
        if saved is None:  # pragma: no cover - listed a moment ago
            continue
        check_checkpoint(saved, params, vocab_size, replica / CHECKPOINT_NAME, job_keys(method))
        epochs[rank] = int(saved["epoch"])
    ahead = max(epochs, key=lambda r: (epochs[r], -r))
    source = root / f"replica-{ahead}" / CHECKPOINT_NAME
    for rank in range(config.processes):
        if epochs.get(rank, 0) < epochs[ahead]:
            target = root / f"replica-{rank}"
            target.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target / (CHECKPOINT_NAME + ".partial"))
            (target / (CHECKPOINT_NAME + ".partial")).replace(target / CHECKPOINT_NAME)
            log.warning("resume: replica %d had %s; it resumes from replica %d's state after epoch %d", rank,
                        f"epoch {epochs[rank]}" if rank in epochs else "no checkpoint", ahead, epochs[ahead])
    log.info("resume: resuming from checkpoints in %s after epoch %d of %d", root, epochs[ahead], params.epochs)
    return _Checkpoints(str(root), epochs[ahead])


def _train_replica(replica: Replica, batches: Iterator[pa.RecordBatch], shared: tuple) -> TaskOutput | None:
    """One SGNS replica (a :data:`~embedpipe.methods.barrier.TaskFunction`): encode the partition against the
    vocabulary, train, sum updates with the other replicas; rank 0 returns the vectors and run facts."""
    from embedpipe.torchtrain import IdCorpus, SGNSParams, encode_sentences, train_sgns
    from embedpipe.torchtrain.model import read_checkpoint

    imported = time.time()
    keys, counts, params_dict, averages_per_epoch, checkpoints, with_output, start = shared
    parts = [encode_sentences(batch.column(0), keys) for batch in batches]
    corpus = IdCorpus.concat(parts) if parts else encode_sentences([], keys)
    encoded = time.time()  # the partition read (shuffle fetch, sort) and encoded
    # One seed for every replica: identical initial matrices are what make summing updates meaningful
    # (independently initialised replicas live in unrelated rotations of the space).
    params = SGNSParams(**{**params_dict, "device": replica.device})
    checkpoint_dir = checkpoints.replica_dir(replica.rank)
    resumed = read_checkpoint(checkpoint_dir) if checkpoints.resume_epoch and replica.world > 1 else None
    matrices = 1 if params.tied else 2  # a tied run's w_out is its w_in: combined once
    group = replica.join(SGNSReplicaGroup(
        averages_per_epoch,
        lambda state: (state.w_in, state.w_out)[:matrices],
        initial_of=lambda state: _initial_matrices(state, params, resumed, start)[:matrices],
        plan=plan_sync(counts, params, replica.world, averages_per_epoch),
    ))
    tokens = np.array([corpus.n_tokens], dtype=np.int64)
    try:
        if group is not None:
            # the rounds of the epochs already trained are done: the next one is due inside this epoch
            group.resume_at(checkpoints.resume_epoch)
            tokens = group.total(tokens)
        result = train_sgns(
            corpus, counts, params, replica_sync=group, counts_total=int(tokens[0]),
            checkpoint_dir=checkpoint_dir, resume=checkpoints.resume_epoch > 0, initial=start,
        )
    finally:
        if group is not None:
            group.close()
    trained = time.time()
    if replica.rank != 0:
        return None
    # both matrices are the state after the final replica sync (the same on every replica)
    vectors = {"input": result.input_vectors}
    if with_output:
        vectors["output"] = result.output_vectors
    info = {
        "loss": float(result.epoch_losses[-1]) if result.epoch_losses else float("nan"),
        "tokens": int(tokens[0]),
        "imported": imported, "encoded": encoded, "trained": trained,
        "step": result.kernel, "batch_size": int(result.batch_size), "trained_on": result.device,
    }
    return TaskOutput(info=info, vectors=vectors)


def _initial_matrices(state: Any, params: Any, resumed: dict[str, Any] | None, start: Any = None) -> tuple[Any, Any]:
    """The matrices every replica started this run from, on its device: the resumed checkpoint's
    (the same on every replica after an epoch) or the seeded (or warm-started) ones ``train_sgns`` builds."""
    from embedpipe.torchtrain import TrainingState

    if resumed is not None:
        return resumed["w_in"].to(state.w_in.device), resumed["w_out"].to(state.w_out.device)
    initial = TrainingState.initial(state.vocab_size, params, state.w_in.device, start)
    return initial.w_in, initial.w_out
