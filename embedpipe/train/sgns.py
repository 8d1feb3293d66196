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
import math
import socket
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from embedpipe import schema
from embedpipe.errors import EmptyResultError
from embedpipe.jobconfig import TrainConfig
from embedpipe.train.base import EmbeddingRows, TrainedEmbeddings

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
        "averaging": (f"mean of input and output matrices {config.averages_per_epoch}x per epoch"
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
        device = _task_device(params_dict["device"], context)
        # One seed for every replica: identical initial matrices are what make averaging meaningful
        # (independently initialised replicas live in unrelated rotations of the space).
        params = SGNSParams(**{**params_dict, "device": device})
        started = time.perf_counter()
        group = _join_group(context, rank, world, device, averages_per_epoch, params) if world > 1 else None
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


def _task_device(requested: str, context: Any) -> str:
    """The device Spark assigned to this task (GPU resource addresses), else what was asked for."""
    if requested == "cpu":
        return "cpu"
    gpus = context.resources().get("gpu")
    if gpus is not None and gpus.addresses:
        return f"cuda:{gpus.addresses[0]}"
    return requested


class _ReplicaGroup:
    """A torch.distributed group of the barrier tasks that averages the replicas' matrices.

    Rounds happen at fixed fractions of every epoch (``averages_per_epoch``), counted by progress
    rather than by steps, so replicas with different amounts of data run the same rounds.
    """

    def __init__(self, world: int, averages_per_epoch: int, params: Any):
        self.world = world
        self.params = params
        self.per_epoch = averages_per_epoch
        self.rounds = 0
        self.base: list[Any] | None = None

    def _target(self, progress: float) -> int:
        return int(math.floor(progress * self.per_epoch + 1e-9))

    def due(self, progress: float) -> bool:
        return self._target(progress) > self.rounds

    def sync(self, state: Any, progress: float) -> None:
        import torch.distributed as dist

        while self.rounds < self._target(progress):
            if self.base is None:  # the shared seeded starting point, as train_sgns builds it
                from embedpipe.trainer import TrainingState

                initial = TrainingState.initial(state.vocab_size, self.params, state.w_in.device)
                self.base = [initial.w_in, initial.w_out]
            for matrix, base in zip((state.w_in, state.w_out), self.base, strict=True):
                # Sum the replicas' updates since the last round instead of averaging the matrices:
                # a row that one replica trained keeps its full update, as in sequential SGD.
                matrix.sub_(base)
                dist.all_reduce(matrix, op=dist.ReduceOp.SUM)
                matrix.add_(base)
                base.copy_(matrix)
            self.rounds += 1

    def total(self, values: np.ndarray) -> np.ndarray:
        import torch
        import torch.distributed as dist

        tensor = torch.from_numpy(values.copy())
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return tensor.numpy()

    def close(self) -> None:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()


def _join_group(
    context: Any, rank: int, world: int, device: str, averages_per_epoch: int, params: Any
) -> _ReplicaGroup:
    """Rendezvous through the barrier: task 0 picks a free port, everyone learns it via allGather."""
    import torch.distributed as dist

    host = context.getTaskInfos()[0].address.split(":")[0]
    port = _free_port() if rank == 0 else 0
    ports = context.allGather(str(port))
    master_port = int(ports[0])
    backend = "nccl" if device.startswith("cuda") else "gloo"
    dist.init_process_group(backend, init_method=f"tcp://{host}:{master_port}", rank=rank, world_size=world)
    return _ReplicaGroup(world, averages_per_epoch, params)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("", 0))
        return int(sock.getsockname()[1])
