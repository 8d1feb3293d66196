"""ReplicaGroup's combine rule on a real two-process gloo group, through the all-reduce hook the
benchmark's in-process simulation overrides: the replicas' updates summed, identically everywhere."""

from __future__ import annotations

import numpy as np
import torch
import torch.multiprocessing as mp

BASE = np.arange(12, dtype=np.float32).reshape(4, 3)
# rank 0 moves rows 0 and 1, rank 1 rows 0 and 3; row 2 nobody
DELTAS = {
    0: np.array([[1, 1, 1], [2, 0, 0], [0, 0, 0], [0, 0, 0]], dtype=np.float32),
    1: np.array([[3, 0, -1], [0, 0, 0], [0, 0, 0], [0, 5, 0]], dtype=np.float32),
}


def _replica(rank: int, port: int, rounds_out: dict) -> None:
    import torch.distributed as dist

    from embedpipe.methods.barrier import ReplicaGroup

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    state = {"w": torch.from_numpy(BASE + DELTAS[rank])}
    group = ReplicaGroup(2, lambda s: [s["w"]], initial_of=lambda s: [torch.from_numpy(BASE.copy())])
    try:
        group.sync(state, 0.5)  # one round due at half an epoch
        first = state["w"].numpy().copy()
        state["w"][2] += rank + 1.0  # second round: only row 2 moves, differently on each replica
        group.sync(state, 1.0)
        rounds_out[rank] = (first, state["w"].numpy().copy(), group.rounds)
    finally:
        group.close()


def test_replicas_sum_their_updates_since_the_last_round():
    from embedpipe.methods.barrier import free_port

    with mp.Manager() as manager:
        out = manager.dict()
        mp.start_processes(_replica, args=(free_port(), out), nprocs=2, start_method="spawn")
        results = dict(out)
    expected = BASE + np.array([[4, 1, 0], [2, 0, 0], [0, 0, 0], [0, 5, 0]], dtype=np.float32)
    for rank in (0, 1):
        first, second, rounds = results[rank]
        np.testing.assert_array_equal(first, expected)  # identical on both replicas, exactly
        after = expected.copy()
        after[2] += 3.0  # both moved row 2 since the first round: +1 and +2
        np.testing.assert_array_equal(second, after)
        assert rounds == 2
