"""``train --method sgns``: embedpipe's PyTorch SGNS trainer run inside Spark barrier tasks.

How it is distributed (no RPC layer of our own): the token sequences are hash-partitioned by
``doc_id`` into ``processes`` partitions and handed to one *barrier* ``mapInArrow`` task each, so
Spark schedules all replicas together (and retries them together). Every task encodes its
partition's Arrow batches into token ids against the broadcast vocabulary and trains its own replica
with :func:`embedpipe.trainer.train_sgns`. With more than one process the replicas join a
``torch.distributed`` group (gloo on CPU, NCCL on GPU; the rendezvous address is agreed through
``BarrierTaskContext.allGather``) and average their input and output matrices
``averages_per_epoch`` times per epoch (model averaging, as in local SGD). Every replica starts from
the same seeded matrices: averaging independently initialised replicas would mix unrelated
rotations of the space. Task 0 then emits the averaged input
vectors as Arrow batches, which are joined back to the vocabulary and written as the common table.

Cost of averaging: each replica sees 1/processes of the data between averages, so on small corpora
the averaged model trails a single process; the README's performance section gives the measured
difference. Determinism: with a seed, the same input and the same ``processes``, the partitioning,
every replica's sampling and the averaging order are fixed, so CPU runs repeat exactly.

GPUs: ask Spark for them the standard way (``spark.executor.resource.gpu.amount``,
``spark.task.resource.gpu.amount=1`` and a discovery script); each task trains on the GPU Spark
assigned to it (``TaskContext.resources()['gpu']``), or on ``cuda:0`` / CPU per ``device``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from embedpipe import schema
from embedpipe.errors import EmptyResultError
from embedpipe.jobconfig import TrainConfig
from embedpipe.train.base import EmbeddingRows, TrainedEmbeddings
from embedpipe.train.replicas import ReplicaGroup, join_group, task_device

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from embedpipe.train.inputs import TrainingInput

log = logging.getLogger(__name__)

RESULT_SCHEMA = "id bigint, vector array<float>, loss double, tokens bigint, seconds double"
_ROWS_PER_BATCH = 4096


def sgns_params(config: TrainConfig) -> dict[str, Any]:
    """The trainer's parameters from the job config (one source of truth: SGNSParams validates them)."""
    return {
        "dim": config.dim,
        "window": config.window,
        "negative": config.negative,
        "sample": config.sample,
        "lr": config.step_size,
        "min_lr": config.min_lr,
        "epochs": config.epochs,
        "batch_size": config.batch_size,
        "seed": config.seed,
        "device": config.device,
        "negative_mode": config.negative_mode,
        "threads": config.threads,
        "deterministic": config.deterministic,
    }


def train_sgns_on_spark(spark: SparkSession, config: TrainConfig, data: TrainingInput) -> TrainedEmbeddings:
    """Train SGNS replicas in ``config.processes`` barrier tasks; one vector per vocabulary key."""
    from pyspark.sql import functions as F

    from embedpipe.trainer import SGNSParams

    params = SGNSParams(**sgns_params(config))  # validates before any Spark work
    vocab = data.vocab.where(F.col(schema.COUNT) >= config.min_count)
    # Ids are assigned by count desc, so the kept vocabulary is exactly ids 0..k-1 (vocabulary-sized).
    vocab_table = vocab.select(schema.TOKEN, schema.COUNT).orderBy(schema.ID).toArrow()
    if vocab_table.num_rows == 0:
        raise EmptyResultError(
            f"no vocabulary {data.key_kind}s of {data.path} have count >= min_count={config.min_count}"
        )
    keys = vocab_table.column(schema.TOKEN).combine_chunks()
    counts = vocab_table.column(schema.COUNT).to_numpy().astype(np.int64)
    processes = config.processes
    broadcast = spark.sparkContext.broadcast((keys, counts, params.to_dict(), processes, config.averages_per_epoch))
    # Shuffle blocks arrive in no fixed order: sorting within each partition makes the order a
    # replica sees its documents in (and so the seeded run) repeatable.
    sentences = (
        data.sentences().repartition(processes, schema.DOC_ID).sortWithinPartitions(schema.DOC_ID)
        .select(schema.TOKENS)
    )
    log.info("sgns: %d %ss, %d barrier task(s), params %s", len(keys), data.key_kind, processes, params.to_dict())

    started = time.perf_counter()
    result = sentences.mapInArrow(_replica_task(broadcast), RESULT_SCHEMA, barrier=True).toArrow()
    fit_seconds = time.perf_counter() - started
    broadcast.unpersist()
    order = np.argsort(result.column("id").to_numpy())
    new_ids = result.column("id").to_numpy()[order]
    if not np.array_equal(new_ids, np.arange(len(keys))):
        raise RuntimeError(f"sgns tasks returned {len(new_ids)} vectors for {len(keys)} keys")
    flat = result.column("vector").combine_chunks().take(pa.array(order)).flatten()
    matrix = flat.to_numpy(zero_copy_only=False).astype(np.float32).reshape(len(keys), config.dim)
    tokens_trained = int(result.column("tokens").to_numpy()[0])
    loss = float(result.column("loss").to_numpy()[0])
    log.info("sgns: trained on %d tokens in %.1f s (%.0f words/s), final loss %.4f", tokens_trained, fit_seconds,
             tokens_trained * config.epochs / max(fit_seconds, 1e-9), loss)

    from embedpipe.train.base import vectors_frame

    rows = vocab.join(vectors_frame(spark, matrix), schema.ID).select(
        F.col(schema.TOKEN).alias(schema.KEY), schema.ID, schema.COUNT, schema.VECTOR
    )
    recorded = {
        **params.to_dict(),
        "min_count": config.min_count,
        "processes": processes,
        "averaging": (f"sum of input and output matrix updates {config.averages_per_epoch}x per epoch"
                      if processes > 1 else "none"),
        "implementation": "embedpipe.trainer (PyTorch) in Spark barrier tasks",
        "input_kind": data.kind,
        "vocab_size": len(keys),
    }
    return TrainedEmbeddings(
        keys=EmbeddingRows(rows, key_kind=data.key_kind, expected_rows=len(keys)),
        dim=config.dim,
        params=recorded,
        path="sgns" if processes == 1 else f"sgns-{processes}-replicas",
        seed=config.seed,
        stats={"fit_seconds": round(fit_seconds, 3), "tokens_trained": tokens_trained, "final_loss": loss},
    )


def _replica_task(broadcast: Any):  # noqa: ANN202 - returns the mapInArrow function
    """The function each barrier task runs; it closes over the broadcast only (pickles cleanly)."""

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        from pyspark import BarrierTaskContext

        from embedpipe.trainer import IdCorpus, SGNSParams, encode_sentences, train_sgns

        keys, counts, params_dict, world, averages_per_epoch = broadcast.value
        context = BarrierTaskContext.get()
        rank = context.partitionId()
        parts = [encode_sentences(batch.column(0), keys) for batch in batches]
        corpus = IdCorpus.concat(parts) if parts else encode_sentences([], keys)
        device = task_device(params_dict["device"], context)
        # One seed for every replica: identical initial matrices are what make averaging meaningful
        # (independently initialised replicas live in unrelated rotations of the space).
        params = SGNSParams(**{**params_dict, "device": device})
        started = time.perf_counter()
        group = None
        if world > 1:
            group = join_group(context, rank, world, device, ReplicaGroup(
                averages_per_epoch,
                lambda state: (state.w_in, state.w_out),
                initial_of=lambda state: _initial_matrices(state, params),
            ))
        tokens = np.array([corpus.n_tokens], dtype=np.int64)
        try:
            result = train_sgns(corpus, counts, params, replica_sync=group)
            if group is not None:
                tokens = group.total(tokens)
        finally:
            if group is not None:
                group.close()
        seconds = time.perf_counter() - started
        if rank != 0:
            return
        vectors = np.ascontiguousarray(result.input_vectors, dtype=np.float32)
        dim = vectors.shape[1]
        final_loss = float(result.epoch_losses[-1]) if result.epoch_losses else float("nan")
        for start in range(0, len(vectors), _ROWS_PER_BATCH):
            block = vectors[start:start + _ROWS_PER_BATCH]
            n = len(block)
            yield pa.RecordBatch.from_arrays(
                [
                    pa.array(np.arange(start, start + n, dtype=np.int64)),
                    pa.ListArray.from_arrays(pa.array(np.arange(0, (n + 1) * dim, dim, dtype=np.int32)),
                                             pa.array(block.reshape(-1))),
                    pa.array(np.full(n, final_loss)),
                    pa.array(np.full(n, int(tokens[0]), dtype=np.int64)),
                    pa.array(np.full(n, seconds)),
                ],
                names=["id", "vector", "loss", "tokens", "seconds"],
            )

    return run


def _initial_matrices(state: Any, params: Any) -> tuple[Any, Any]:
    """The seeded matrices every replica started from (what ``train_sgns`` builds), on its device."""
    from embedpipe.trainer import TrainingState

    initial = TrainingState.initial(state.vocab_size, params, state.w_in.device)
    return initial.w_in, initial.w_out
