"""Data-parallel replicas in Spark barrier tasks: device choice, the torch.distributed group, sync.

Every PyTorch method (sgns, item2vec, the bag models) trains one replica per barrier ``mapInArrow``
task. This module owns what they share, so no method grows its own distribution layer:

* :func:`task_device` — the GPU Spark assigned to the task (``TaskContext.resources()['gpu']``);
* :func:`join_group` — the rendezvous: task 0 picks a free port and every task learns it through
  ``BarrierTaskContext.allGather``; gloo on CPU, NCCL on GPU;
* :class:`ReplicaGroup` — combines the replicas' tensors at fixed fractions of every epoch, either by
  **summing their updates** since the last round (SGNS: a row one replica trained keeps its full
  update, as in sequential SGD; plain averaging measured at chance-level quality) or by **averaging**
  the tensors (local SGD, for models trained with adaptive optimisers);
* :meth:`ReplicaGroup.total` — sums a few counters across replicas.
"""

from __future__ import annotations

import math
import socket
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

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

    def sync(self, state: Any, progress: float) -> None:
        import torch
        import torch.distributed as dist

        world = dist.get_world_size()
        while self.rounds < self._target(progress):
            tensors = list(self.tensors_of(state))
            with torch.no_grad():
                if self.mode == "mean":
                    for tensor in tensors:
                        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
                        tensor.div_(world)
                else:
                    if self.base is None:
                        self.base = [t.detach().clone() for t in self.initial_of(state)]  # type: ignore[misc]
                    for tensor, base in zip(tensors, self.base, strict=True):
                        tensor.sub_(base)
                        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
                        tensor.add_(base)
                        base.copy_(tensor)
            self.rounds += 1

    def total(self, values: np.ndarray) -> np.ndarray:
        """Element-wise sum of ``values`` over all replicas."""
        import torch
        import torch.distributed as dist

        tensor = torch.from_numpy(np.ascontiguousarray(values).copy())
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
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
