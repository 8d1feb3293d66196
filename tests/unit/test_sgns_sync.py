"""SGNS's replica combine (issue 25): the hot rows are combined between the full rounds, every row's summed
update is scaled by its saturation, and every replica ends each round with the same matrices.

Replicas are threads here, joined through the all-reduce hook the benchmark's simulation also overrides
(the gloo path of the same hook is tests/unit/test_replica_sync.py)."""

from __future__ import annotations

import threading
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from embedpipe.methods.sgns_sync import HOT_ROUND_TOKENS, HOT_ROWS, SGNSReplicaGroup, plan_sync, saturation_scale
from embedpipe.torchtrain import SGNSParams

VOCAB, DIM, WORLD = HOT_ROWS + 64, 4, 3


class _ThreadGroup(SGNSReplicaGroup):
    """All-reduce (sum in rank order) among ``WORLD`` threads."""

    barrier = threading.Barrier(WORLD)
    slots: list = [None] * WORLD

    def __init__(self, rank: int, **kwargs):
        super().__init__(**kwargs)
        self.rank = rank

    def all_reduce(self, tensor: torch.Tensor) -> None:
        self.slots[self.rank] = tensor.clone()
        self.barrier.wait()
        total = sum(self.slots[1:], self.slots[0].clone())
        self.barrier.wait()
        tensor.copy_(total)

    def world_size(self) -> int:
        return WORLD


def _counts() -> np.ndarray:
    return (1e7 / np.arange(1, VOCAB + 1)).astype(np.int64)  # Zipf: ids are frequency ranks


def test_hot_rows_combine_between_full_rounds_and_the_sum_is_scaled_by_saturation():
    params = SGNSParams(dim=DIM, epochs=1)
    plan = plan_sync(_counts(), params, WORLD, per_epoch=1, tokens=WORLD * 4 * HOT_ROUND_TOKENS)  # 4 hot rounds a round
    assert plan.hot_per_round == 4 and [list(h) for h in plan.hot] == [list(range(HOT_ROWS))] * 2
    base = torch.zeros(VOCAB, DIM)
    moves = [torch.full((VOCAB, DIM), float(rank + 1)) for rank in range(WORLD)]  # every row, differently
    after_hot, after_full, rounds = {}, {}, {}

    def replica(rank: int) -> None:
        state = SimpleNamespace(w_in=base.clone(), w_out=base.clone())
        group = _ThreadGroup(rank, per_epoch=1, tensors_of=lambda s: (s.w_in, s.w_out),
                             initial_of=lambda s: (base.clone(), base.clone()), plan=plan)
        state.w_in += moves[rank]
        state.w_out += moves[rank]
        assert group.due(0.25) and not group.due(0.2)
        group.sync(state, 0.25)  # the first hot round
        after_hot[rank] = (state.w_in.clone(), state.w_out.clone())
        group.sync(state, 1.0)  # two more hot rounds (nothing moved), then the full round
        after_full[rank] = (state.w_in.clone(), state.w_out.clone())
        rounds[rank] = group.rounds

    threads = [threading.Thread(target=replica, args=(r,)) for r in range(WORLD)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert rounds == {0: 4, 1: 4, 2: 4}
    summed = float(sum(range(1, WORLD + 1)))  # 6: what plain summing would give every row
    for rank in range(WORLD):
        w_in, w_out = after_hot[rank]
        # hot rows agree on every replica after a hot round; the others still hold this replica's own move
        assert torch.equal(w_in[:HOT_ROWS], after_hot[0][0][:HOT_ROWS])
        assert torch.all(w_out[HOT_ROWS:] == rank + 1)
        # the most frequent output row (noise for every pair) saturates: its sum is scaled toward the mean
        assert 1.9 < float(w_out[0, 0]) < 0.9 * summed
        for full, first in zip(after_full[rank], after_full[0], strict=True):
            assert torch.equal(full, first)  # every row agrees after the full round
        # the rarest row stays in the linear regime: nearly the plain sum
        assert float(after_full[rank][0][-1, 0]) == pytest.approx(summed, rel=0.02)


def test_saturation_scale_runs_from_the_sum_to_the_mean():
    n = torch.tensor([0.0, 1.0, 100.0, 1e6])
    scale = saturation_scale(n, 0.05, 8)
    assert float(scale[0]) == pytest.approx(1.0, abs=1e-3) and float(scale[-1]) == pytest.approx(1 / 8)
    assert torch.all(scale[1:] <= scale[:-1])


def test_replicas_reaching_a_round_at_different_progress_agree_and_empty_hot_rounds_are_skipped():
    # the kernels call in between steps, so replicas reach a round at different progress (and learning rates);
    # the round's own learning rate scales the sum, so every copy of the combined rows is the same
    params = SGNSParams(dim=DIM, epochs=1, lr=0.5)
    plan = plan_sync(_counts(), params, WORLD, per_epoch=1, tokens=WORLD * 4 * HOT_ROUND_TOKENS)  # 4 hot rounds a round
    base = torch.zeros(VOCAB, DIM)
    after_hot, calls = {}, {}

    def replica(rank: int) -> None:
        state = SimpleNamespace(w_in=base.clone(), w_out=base.clone())
        group = _ThreadGroup(rank, per_epoch=1, tensors_of=lambda s: (s.w_in, s.w_out),
                             initial_of=lambda s: (base.clone(), base.clone()), plan=plan)
        reduced = []
        group.all_reduce = lambda tensor: (reduced.append(tuple(tensor.shape)), _ThreadGroup.all_reduce(group, tensor))
        state.w_in += rank + 1.0
        state.w_out += rank + 1.0
        group.sync(state, 0.5 + 0.1 * rank)  # rank 0 at 0.5, rank 2 at 0.7: the first two hot rounds each
        after_hot[rank] = (state.w_in.clone(), state.w_out.clone())
        calls[rank] = reduced

    threads = [threading.Thread(target=replica, args=(r,)) for r in range(WORLD)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    rank_0 = after_hot[0]
    for rank in range(WORLD):
        assert torch.equal(after_hot[rank][0][:HOT_ROWS], rank_0[0][:HOT_ROWS])
        assert torch.equal(after_hot[rank][1][:HOT_ROWS], rank_0[1][:HOT_ROWS])
        # both matrices' hot rows (and a row of next-round counts) in one all-reduce; the second round, which no
        # replica's update goes into, is skipped
        assert calls[rank] == [(2 * HOT_ROWS + 1, DIM)]
    assert float(rank_0[1][0, 0]) < 0.9 * sum(range(1, WORLD + 1))  # the hottest row's sum was scaled


class _Everything(set):
    def __contains__(self, item: object) -> bool:
        return True


def _staggered_run(every_round: bool) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Three replicas training (random moves) between calls at different progress; each one's final matrices."""
    params = SGNSParams(dim=DIM, epochs=1, lr=0.5)
    plan = plan_sync(_counts(), params, WORLD, per_epoch=1, tokens=WORLD * 8 * HOT_ROUND_TOKENS)  # 8 hot rounds a round
    calls = {0: [0.13, 0.41, 0.77, 1.0], 1: [0.2, 0.33, 0.6, 0.9, 1.0], 2: [0.05, 0.5, 1.0]}
    barrier = threading.Barrier(WORLD, timeout=60)
    slots: list = [None] * WORLD
    out: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    class Group(SGNSReplicaGroup):
        def all_reduce(self, tensor: torch.Tensor) -> None:
            slots[self.rank] = tensor.clone()
            barrier.wait()
            total = sum(slots[1:], slots[0].clone())
            barrier.wait()
            tensor.copy_(total)

        def _heard(self, counts: torch.Tensor, round_: int) -> None:
            super()._heard(counts, round_)
            if every_round:
                self._next = _Everything()

    def replica(rank: int) -> None:
        generator = torch.Generator().manual_seed(rank)
        state = SimpleNamespace(w_in=torch.zeros(VOCAB, DIM), w_out=torch.zeros(VOCAB, DIM))
        group = Group(per_epoch=1, tensors_of=lambda s: (s.w_in, s.w_out),
                      initial_of=lambda s: (torch.zeros(VOCAB, DIM), torch.zeros(VOCAB, DIM)), plan=plan)
        group.rank = rank
        for progress in calls[rank]:
            state.w_in += torch.rand(VOCAB, DIM, generator=generator)
            state.w_out += torch.rand(VOCAB, DIM, generator=generator)
            group.sync(state, progress)
        out[rank] = (state.w_in, state.w_out)

    threads = [threading.Thread(target=replica, args=(r,)) for r in range(WORLD)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return [out[rank] for rank in range(WORLD)]


def test_skipping_the_hot_rounds_nobody_trained_for_changes_nothing():
    skipped, every = _staggered_run(every_round=False), _staggered_run(every_round=True)
    for (w_in, w_out), (in_all, out_all) in zip(skipped, every, strict=True):
        assert torch.equal(w_in, in_all) and torch.equal(w_out, out_all)
        assert torch.equal(w_in, skipped[0][0]) and torch.equal(w_out, skipped[0][1])  # the last round is a full one


def test_a_resumed_group_combines_at_its_first_round_again():
    params = SGNSParams(dim=DIM, epochs=2, lr=0.5)
    plan = plan_sync(_counts(), params, WORLD, per_epoch=1, tokens=WORLD * 4 * HOT_ROUND_TOKENS)  # 4 hot rounds a round
    calls = {}

    def replica(rank: int) -> None:
        state = SimpleNamespace(w_in=torch.zeros(VOCAB, DIM), w_out=torch.zeros(VOCAB, DIM))
        group = _ThreadGroup(rank, per_epoch=1, tensors_of=lambda s: (s.w_in, s.w_out),
                             initial_of=lambda s: (torch.zeros(VOCAB, DIM), torch.zeros(VOCAB, DIM)), plan=plan)
        reduced = []
        group.all_reduce = lambda tensor: (reduced.append(tuple(tensor.shape)), _ThreadGroup.all_reduce(group, tensor))
        group.resume_at(1)  # the first epoch was trained before a restart
        state.w_in += rank + 1.0
        group.sync(state, 1.25)
        calls[rank] = (reduced, group.rounds, state.w_in[:HOT_ROWS].clone())

    threads = [threading.Thread(target=replica, args=(r,)) for r in range(WORLD)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for rank in range(WORLD):
        reduced, rounds, hot = calls[rank]
        assert rounds == 5 and reduced == [(2 * HOT_ROWS + 1, DIM)]
        assert torch.equal(hot, calls[0][2]) and float(hot[-1, 0]) > rank + 1.0  # combined: others' moves arrived


def test_finish_sums_what_every_replica_trained_after_the_last_round():
    """Steps after the final round's position (the trainer's last batches) reach every replica's matrices."""
    params = SGNSParams(dim=DIM, epochs=1)
    plan = plan_sync(_counts(), params, WORLD, per_epoch=1, tokens=WORLD * 2 * HOT_ROUND_TOKENS)
    finished = {}

    def replica(rank: int) -> None:
        state = SimpleNamespace(w_in=torch.zeros(VOCAB, DIM), w_out=torch.zeros(VOCAB, DIM))
        group = _ThreadGroup(rank, per_epoch=1, tensors_of=lambda s: (s.w_in, s.w_out),
                             initial_of=lambda s: (torch.zeros(VOCAB, DIM), torch.zeros(VOCAB, DIM)), plan=plan)
        group.sync(state, 1.0)  # the last round: nobody trained yet
        state.w_in += rank + 1.0  # then the last steps, after the round's position
        state.w_out -= rank + 1.0
        group.finish(state)
        finished[rank] = (state.w_in.clone(), state.w_out.clone())

    threads = [threading.Thread(target=replica, args=(r,)) for r in range(WORLD)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    total = float(sum(range(1, WORLD + 1)))
    for w_in, w_out in finished.values():
        assert torch.equal(w_in, torch.full((VOCAB, DIM), total))
        assert torch.equal(w_out, torch.full((VOCAB, DIM), -total))
