"""Data-parallel replicas in Spark barrier tasks: the one runner every PyTorch method trains through.

Every PyTorch method (sgns, item2vec, softmax, regression) trains one replica per barrier
``mapInArrow`` task. This module owns what they share, so no method grows its own distribution
layer or its own result protocol:

* :func:`run_replicas` — partitions the rows (``processes`` partitions, each in a fixed key order,
  so a seeded run repeats), runs the barrier stage with a picklable *task function* (it closes over
  plain values and imports torch inside, as pyspark's ``TorchDistributor``), and decodes rank 0's
  result: one JSON ``info`` row and named vector layers (:data:`RESULT_SCHEMA`). A user error (an
  ``EmbedpipeError``) raised inside a task reaches the driver as the same error type and message,
  in the job's config keys (:func:`job_keys`), once: the job prints one line, not a JVM trace;
* :class:`Replica` — what a task function learns about its task: rank, world, device (the GPU
  Spark assigned to the task, ``TaskContext.resources()['gpu']``) and :meth:`Replica.join`;
* :func:`join_group` — the rendezvous: task 0 picks a free port and every task learns it through
  ``BarrierTaskContext.allGather``; gloo on CPU, NCCL on GPU;
* :class:`ReplicaGroup` — combines the replicas' tensors at fixed fractions of every epoch, either by
  **summing their updates** since the last round (SGNS: a row one replica trained keeps its full
  update, as in sequential SGD; plain averaging measured at chance-level quality; SGNS's subclass,
  :class:`~embedpipe.methods.sgns_sync.SGNSReplicaGroup`, also scales saturated rows' sums, which
  overshoot from 4 replicas, see docs/decisions.md) or by **averaging** the tensors (local SGD, for models
  trained with adaptive optimisers);
* :meth:`ReplicaGroup.total` — sums a few counters across replicas.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import socket
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from embedpipe import errors
from embedpipe.arrow_vectors import list_array_to_matrix, matrix_to_list_array
from embedpipe.errors import EmbedpipeError

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

COMBINE_MODES = ("sum_updates", "mean")


def task_device(requested: str, context: Any) -> str:
    """The device Spark assigned to this task (GPU resource addresses), else what was asked for."""
    if requested == "cpu":
        return "cpu"
    gpus = context.resources().get("gpu")
    if gpus is not None and gpus.addresses:
        return f"cuda:{gpus.addresses[0]}"
    return requested


class ReplicaGroup:
    """Combines the tensors ``tensors_of(state)`` of every replica ``per_epoch`` times per epoch.

    Rounds happen at fixed fractions of every epoch, counted by progress rather than by steps, so
    replicas with different amounts of data run the same rounds. With ``mode="sum_updates"``,
    ``initial_of(state)`` must return the shared seeded starting tensors (same on every replica);
    they are only built at the first round.
    """

    def __init__(
        self,
        per_epoch: int,
        tensors_of: Callable[[Any], Sequence[Any]],
        *,
        mode: str = "sum_updates",
        initial_of: Callable[[Any], Sequence[Any]] | None = None,
    ):
        if mode not in COMBINE_MODES:
            raise ValueError(f"mode must be one of {COMBINE_MODES}, got {mode!r}")
        if mode == "sum_updates" and initial_of is None:
            raise ValueError("mode 'sum_updates' needs initial_of (the shared starting tensors)")
        self.per_epoch = per_epoch
        self.tensors_of = tensors_of
        self.initial_of = initial_of
        self.mode = mode
        self.rounds = 0
        self.base: list[Any] | None = None

    def _target(self, progress: float) -> int:
        return int(math.floor(progress * self.per_epoch + 1e-9))

    def due(self, progress: float) -> bool:
        return self._target(progress) > self.rounds

    def resume_at(self, epoch: int) -> None:
        """Count the rounds of the ``epoch`` epochs a resumed run trained already as done."""
        self.rounds = self._target(float(epoch))

    def sync(self, state: Any, progress: float) -> None:
        import torch

        while self.rounds < self._target(progress):
            tensors = list(self.tensors_of(state))
            with torch.no_grad():
                if self.mode == "mean":
                    for tensor in tensors:
                        self.all_reduce(tensor)
                        tensor.div_(self.world_size())
                else:
                    if self.base is None:
                        self.base = [t.detach().clone() for t in self.initial_of(state)]  # type: ignore[misc]
                    for tensor, base in zip(tensors, self.base, strict=True):
                        self.combine_rows(tensor, base)
            self.rounds += 1

    def finish(self, state: Any) -> None:
        """After the last epoch, on every replica: sum what every replica trained since the last round.

        A round falls due at the first step that reaches its position, and the trainer's steps report the
        end of the run of batches they belong to, so the last steps of training can come after the final
        round; without this, rank 0's table (the one written) would lack the other replicas' last steps.
        Averaged models (``mean``) are equal after their last round already.
        """
        import torch

        if self.mode != "sum_updates" or self.base is None:
            return
        with torch.no_grad():
            for tensor, base in zip(self.tensors_of(state), self.base, strict=True):
                ReplicaGroup.combine_rows(self, tensor, base)

    def combine_rows(self, tensor: Any, base: Any) -> None:
        """``tensor`` (this replica's copy) becomes ``base`` plus every replica's update since ``base``;
        ``base`` is set to the result (the next round's starting point)."""
        tensor.sub_(base)
        self.all_reduce(tensor)
        tensor.add_(base)
        base.copy_(tensor)

    def all_reduce(self, tensor: Any) -> None:
        """Sum ``tensor`` over the replicas in place (torch.distributed; the benchmark's in-process
        simulation of N replicas overrides this and :meth:`world_size`)."""
        import torch.distributed as dist

        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)

    def world_size(self) -> int:
        import torch.distributed as dist

        return dist.get_world_size()

    def total(self, values: np.ndarray) -> np.ndarray:
        """Element-wise sum of ``values`` over all replicas."""
        import torch

        tensor = torch.from_numpy(np.ascontiguousarray(values).copy())
        self.all_reduce(tensor)
        return tensor.numpy()

    def close(self) -> None:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()


def join_group(context: Any, rank: int, world: int, device: str, group: ReplicaGroup) -> ReplicaGroup:
    """Initialise torch.distributed for this barrier task and return ``group`` ready to sync.

    Rendezvous through the barrier: task 0 picks a free port on its host, everyone learns it via
    ``allGather`` (so no port has to be configured and concurrent jobs do not collide).
    """
    import torch.distributed as dist

    host = context.getTaskInfos()[0].address.split(":")[0]
    port = free_port() if rank == 0 else 0
    ports = context.allGather(str(port))
    backend = "nccl" if device.startswith("cuda") else "gloo"
    dist.init_process_group(backend, init_method=f"tcp://{host}:{int(ports[0])}", rank=rank, world_size=world)
    return group


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("", 0))
        return int(sock.getsockname()[1])


# ----------------------------------------------------------------------------- the runner

#: The one result protocol of a barrier training stage: rank 0's rows. One row of ``kind`` "info"
#: carries a JSON object of run facts (losses, counts, clocks, what 'auto' settings resolved to);
#: every other row is one vector of the layer ``kind`` names ("input", "output"), by ``id``.
RESULT_SCHEMA = "kind string, id bigint, vector array<float>, info string"
INFO = "info"
_RESULT_ARROW_SCHEMA = pa.schema([("kind", pa.string()), ("id", pa.int64()), ("vector", pa.list_(pa.float32())),
                                  ("info", pa.string())])
_ROWS_PER_BATCH = 4096
#: How long a replica that failed with anything but a user error waits, when it has peers, before it
#: fails: a peer's user error breaks the collective this replica waits in, and the stage reports its
#: first failed task, which should be the cause (Spark kills the waiting replica when the stage aborts).
_PEER_GRACE_SECONDS = 3.0
#: Loggers that print a failed task's whole traceback again (the driver's exception already holds it).
_TASK_FAILURE_LOGGERS = ("org.apache.spark.executor.Executor", "org.apache.spark.scheduler.TaskSetManager")


@dataclass(frozen=True)
class Replica:
    """What a task function knows of the barrier task it runs in."""

    rank: int
    world: int
    device: str  # the GPU Spark assigned to the task (cuda:N), else the requested device
    context: Any = field(repr=False)  # pyspark's BarrierTaskContext

    def join(self, group: ReplicaGroup) -> ReplicaGroup | None:
        """``group`` joined to the other replicas' (torch.distributed), or None when training alone."""
        if self.world == 1:
            return None
        return join_group(self.context, self.rank, self.world, self.device, group)


@dataclass(frozen=True)
class TaskOutput:
    """What rank 0's task function hands back: JSON-able run facts and the vector layers by name."""

    info: dict[str, Any]
    vectors: dict[str, np.ndarray]


#: ``task(replica, batches, shared)``: trains one replica on its partition's Arrow batches; ``shared``
#: is the value given to :func:`run_replicas` (broadcast once). Returns rank 0's output (None elsewhere).
TaskFunction = Callable[[Replica, Iterator[pa.RecordBatch], Any], "TaskOutput | None"]


@dataclass(frozen=True)
class ReplicaResult:
    """Rank 0's output as the driver decoded it, and the stage's wall-clock time."""

    info: dict[str, Any]
    table: pa.Table = field(repr=False)
    seconds: float  # the barrier stage as the driver saw it (time.perf_counter)
    started: float  # time.time() when the driver started the stage (to compare with the task's clocks)

    def matrix(self, kind: str, rows: int, dim: int) -> np.ndarray:
        """The (rows, dim) float32 vectors of layer ``kind``, by id (checked to be ids 0..rows-1)."""
        kinds = self.table.column("kind").to_numpy(zero_copy_only=False)
        positions = np.flatnonzero(kinds == kind)
        ids = self.table.column("id").to_numpy()[positions]
        order = np.argsort(ids, kind="stable")
        if not np.array_equal(ids[order], np.arange(rows)):
            raise RuntimeError(f"the training tasks returned {len(ids)} {kind} vectors for {rows} keys")
        lists = self.table.column("vector").take(pa.array(positions[order]))
        return list_array_to_matrix(lists, dim)


def run_replicas(
    rows: DataFrame,
    task: TaskFunction,
    *,
    processes: int,
    order_by: str,
    device: str,
    method: str,
    shared: Any = None,
) -> ReplicaResult:
    """Train ``processes`` replicas on ``rows`` in one Spark barrier stage and return rank 0's output.

    ``rows`` are hash-partitioned by ``order_by`` into ``processes`` partitions and sorted by it
    within each (shuffle blocks arrive in no fixed order: the sort makes what a replica sees, and so
    a seeded run, repeatable); the column is dropped before the task sees the batches. A user error
    raised in a task is raised here as the same type with its message in ``method``'s config keys.
    """
    spark = rows.sparkSession
    frame = rows.repartition(processes, order_by).sortWithinPartitions(order_by).drop(order_by)
    broadcast = spark.sparkContext.broadcast(shared)
    started, clock = time.perf_counter(), time.time()
    try:
        with _quiet_task_failure_logs(spark):
            table = frame.mapInArrow(_barrier_function(task, device, broadcast), RESULT_SCHEMA, barrier=True).toArrow()
    except Exception as exc:  # a task's user error arrives wrapped in a Py4J/Spark exception
        error = task_user_error(exc, job_keys(method))
        if error is None:
            raise
        raise error from None
    finally:
        broadcast.unpersist()
    seconds = time.perf_counter() - started
    kinds = table.column("kind").to_pylist()
    if kinds.count(INFO) != 1:
        raise RuntimeError(f"{method} tasks returned {kinds.count(INFO)} info rows, expected 1")
    info = json.loads(table.column("info")[kinds.index(INFO)].as_py())
    return ReplicaResult(info=info, table=table, seconds=seconds, started=clock)


def _barrier_function(task: TaskFunction, device: str, broadcast: Any):  # noqa: ANN202 - the mapInArrow function
    """The function each barrier task runs: it closes over plain values and the broadcast only."""

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        entered = time.time()
        from pyspark import BarrierTaskContext

        context = BarrierTaskContext.get()
        replica = Replica(rank=context.partitionId(), world=len(context.getTaskInfos()),
                          device=task_device(device, context), context=context)
        try:
            output = task(replica, batches, broadcast.value)
        except EmbedpipeError as exc:
            raise ReplicaTaskError(encode_user_error(exc)) from None
        except Exception:
            if replica.world > 1:
                time.sleep(_PEER_GRACE_SECONDS)
            raise
        if replica.rank != 0:
            return
        if output is None:
            raise RuntimeError("rank 0's task function returned no output")
        yield from _result_batches(output, entered=entered)

    return run


def _result_batches(output: TaskOutput, *, entered: float | None = None) -> Iterator[pa.RecordBatch]:
    """Rank 0's output as :data:`RESULT_SCHEMA` batches: the info row, then every layer's vectors by id."""
    info = output.info if entered is None else {"entered": entered, **output.info}
    yield pa.RecordBatch.from_arrays(
        [pa.array([INFO]), pa.array([-1], pa.int64()), pa.nulls(1, pa.list_(pa.float32())),
         pa.array([json.dumps(info, default=_plain)])],
        schema=_RESULT_ARROW_SCHEMA,
    )
    for kind, vectors in output.vectors.items():
        for start in range(0, len(vectors), _ROWS_PER_BATCH):
            block = vectors[start:start + _ROWS_PER_BATCH]
            n = len(block)
            yield pa.RecordBatch.from_arrays(
                [pa.repeat(pa.scalar(kind, pa.string()), n), pa.array(np.arange(start, start + n, dtype=np.int64)),
                 matrix_to_list_array(block), pa.nulls(n, pa.string())],
                schema=_RESULT_ARROW_SCHEMA,
            )


def _plain(value: Any) -> Any:
    """numpy scalars and arrays as JSON values (for the info row)."""
    if isinstance(value, np.generic | np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON-able in a task's info: {type(value).__name__}")


@contextlib.contextmanager
def _quiet_task_failure_logs(spark: SparkSession) -> Iterator[None]:
    """Silence the driver JVM's loggers that repeat a failed task's traceback while the stage runs.

    The failure is not hidden: a user error becomes the job's one-line error, anything else is
    re-raised with Spark's full exception (Python and Java traces). Loggers set to INFO or more
    (someone is debugging) and executors' own logs on a cluster are untouched.
    """
    restore: list[tuple[str, Any]] = []  # (logger, its own level, or None where it inherited one)
    with contextlib.suppress(Exception):  # cosmetic only: never fail a job over log levels
        log4j = spark.sparkContext._jvm.org.apache.logging.log4j
        context = log4j.LogManager.getContext(False)
        for name in _TASK_FAILURE_LOGGERS:
            level = log4j.LogManager.getLogger(name).getLevel()
            if level.isMoreSpecificThan(log4j.Level.WARN):
                own = context.getConfiguration().getLoggerConfig(name).getName() == name
                restore.append((name, level if own else None))
                log4j.core.config.Configurator.setLevel(name, log4j.Level.OFF)
    try:
        yield
    finally:
        with contextlib.suppress(Exception):
            for name, level in restore:
                if level is not None:
                    log4j.core.config.Configurator.setLevel(name, level)
                else:  # inherit again, so a later setLogLevel reaches it
                    context.getConfiguration().removeLogger(name)
            if restore:
                context.updateLoggers()


# ----------------------------------------------------------------------------- user errors from tasks

_ERROR_MARK = "embedpipe-user-error:"


class ReplicaTaskError(RuntimeError):
    """Carries a user error out of a barrier task as one marked JSON line the driver finds in Spark's text."""


def encode_user_error(exc: EmbedpipeError) -> str:
    """``exc`` (type, message and plain attributes such as ``param``) as one marked ASCII line."""
    attributes = {k: v for k, v in vars(exc).items() if isinstance(v, str | int | float | bool | list | None)}
    fields = {"type": type(exc).__name__, "message": str(exc), "attributes": attributes}
    return _ERROR_MARK + json.dumps(fields, ensure_ascii=True)


def task_user_error(exc: BaseException, keys: Mapping[str, str]) -> EmbedpipeError | None:
    """The user error a task raised (the first marked one in ``exc``'s text), in the job's keys; else None."""
    text = str(exc)
    at = text.find(_ERROR_MARK)
    while at >= 0:
        try:
            fields, _ = json.JSONDecoder().raw_decode(text, at + len(_ERROR_MARK))
            cls = _user_error_classes()[fields["type"]]
            break
        except (ValueError, KeyError, TypeError):
            at = text.find(_ERROR_MARK, at + 1)
    else:
        return None
    error = cls.__new__(cls)
    Exception.__init__(error, in_job_terms(fields["message"], keys, fields["attributes"].get("param")))
    error.__dict__.update(fields["attributes"])
    return error


def _user_error_classes() -> dict[str, type[EmbedpipeError]]:
    classes: dict[str, type[EmbedpipeError]] = {}
    pending: list[type[EmbedpipeError]] = [errors.EmbedpipeError]
    while pending:
        cls = pending.pop()
        classes[cls.__name__] = cls
        pending.extend(cls.__subclasses__())
    return classes


# ----------------------------------------------------------------------------- core names -> job keys

#: PyTorch core parameter names (SGNSParams, BagModelParams) that the method settings spell otherwise.
SETTING_OF_PARAM = {"lr": "step_size", "min_lr": "min_step_size", "holdout": "target_items"}
_KEY_IN_MESSAGE = re.compile(r"config key '([A-Za-z_]\w*)'")


def job_keys(method: str) -> dict[str, str]:
    """Core parameter name -> the ``train`` config key a user sets (``lr`` -> ``sgns.step_size``) for ``method``.

    The one map from the PyTorch core's names to the job's: for one-line errors raised in the core
    (on the driver or in a task) and for checkpoint checks. Common ``[train]`` keys (``dim``,
    ``seed``, ``device``, ``threads``) have the same name in both and are not listed.
    """
    from embedpipe.methods.settings import setting_names

    param_of = {setting: param for param, setting in SETTING_OF_PARAM.items()}
    return {param_of.get(name, name): f"{method}.{name}" for name in setting_names(method)}


def in_job_terms(message: str, keys: Mapping[str, str], param: str | None = None) -> str:
    """A core message with ``config key 'lr'`` written as the job's key; ``param`` (the core name an
    error carries) is named as the job's key when the message does not say it."""
    message = _KEY_IN_MESSAGE.sub(lambda m: f"config key '{keys.get(m.group(1), m.group(1))}'", message)
    key = keys.get(param) if param else None
    if key and f"'{key}'" not in message:
        message = f"{message} (set by config key '{key}')"
    return message
