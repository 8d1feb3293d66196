"""How SGNS replicas combine (``processes > 1``): the hottest rows often, every row scaled by its saturation.

Summing the replicas' updates is right for a row in the linear regime (a rare word: its few updates
add up as in sequential SGD) and wrong for a saturated one: within a round a frequent word's row,
above all an output row drawn as noise by every pair, moves nearly all the way to where its local
gradient points on every replica, so the sum moves it N times as far and training collapses from 4
replicas (issue 25; docs/decisions.md#replicas-beyond-2-issue-25). So :class:`SGNSReplicaGroup`

* all-reduces the :data:`HOT_ROWS` rows of each matrix with the most expected updates (the most
  frequent words; with subwords, fastText's, also the n-gram buckets frequent words share) every
  :data:`HOT_ROUND_TOKENS` tokens per replica (*hot rounds*, each ``2 x HOT_ROWS x dim`` floats in one
  all-reduce; only those some replica's update goes into run), besides the full rounds
  (``averages_per_epoch`` per epoch) that combine every row, so replicas never drift apart on the rows
  every update reads;
* scales each row's summed update by how far one replica's updates saturate it in that round: with
  ``n`` the row's expected updates per replica since its last combine and ``s = 1 - exp(-C lr n)``
  one replica's saturation, N replicas in sequence would have moved it ``1 - (1 - s)^N`` of the way,
  the sum moves it ``N s``, so the sum is scaled by ``(1 - (1 - s)^N) / (N s)``: 1 for rare rows
  (the sum), ``1 / N`` for saturated ones (the mean).

Only dense all-reduces of a slice-sized or whole tensor, so gloo on CPU and NCCL on GPUs behave alike.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from embedpipe.methods.barrier import ReplicaGroup

#: Rows combined at every hot round: the most frequent words (ids are frequency ranks). 1,024 and 4,096
#: measured alike on the text8 prefix at 8 replicas (docs/benchmarks.md#replicas).
HOT_ROWS = 1024
#: Raw tokens per replica between hot rounds. The CPU kernel calls in every 5 x 1,024 windows (~7,000 raw tokens
#: of text8), so ~37 fall due at once: a replica's step enters the first, and the replicas' steps enter the sums
#: staggered, which is what holds (one round per step for all at once lost 0.04 WS353 at 8 replicas). 192 beat
#: 384 by 0.003 WS353 at 8 replicas on the text8 prefix over 3 seeds (docs/benchmarks.md#replicas).
HOT_ROUND_TOKENS = 192
#: The per-update rate in ``s = 1 - exp(-C lr n)``, fitted on the demo corpus (0.1 was unstable, 0.5
#: and more undertrained the shared rows like a plain mean).
SATURATION_RATE = 0.2
#: The furthest round ahead a replica announces as the one its next update goes into (a hot round's block
#: carries a count per coming round); a further one is announced at this distance, costing a round.
MAX_AHEAD = 1024


@dataclass(frozen=True)
class SyncPlan:
    """What every replica computes alike from the counts: the hot rows, the rounds, the expected updates."""

    hot: tuple[np.ndarray, ...]  # per matrix (input, output; the one matrix when tied), ids of its hot rows
    hot_per_round: int  # hot rounds per full round (the last one is the full round itself)
    expected: tuple[np.ndarray, ...]  # per-row expected updates per replica per full round (input, output)
    world: int
    lr: float
    min_lr: float
    epochs: int

    def lr_at(self, progress: float) -> float:
        """The linearly decaying learning rate at ``progress`` epochs (as the trainer's schedule)."""
        return self.lr - (self.lr - self.min_lr) * min(1.0, progress / self.epochs)


def plan_sync(counts: np.ndarray, params: Any, world: int, per_epoch: int, tokens: int | None = None, *,
              input_rows: tuple[np.ndarray, np.ndarray, int] | None = None, hot_rows: int | None = None) -> SyncPlan:
    """The sync plan for ``world`` replicas training ``params`` (an SGNSParams) on a corpus of ``counts``.

    ``tokens`` is the corpus size (default: the counts' sum). Expected updates per replica per full
    round: a word as centre ``keep x frequency x tokens x contexts``, as an output row that as context
    plus every pair's noise draws at its noise probability. ``input_rows`` = ``(offsets, rows, n_rows)``
    when a word's input is several rows (fastText: ``SubwordIndex``): each row then takes the updates of
    every word using it, since every row of a word gets the word's whole gradient. ``hot_rows``: rows per
    matrix in the hot rounds (default :data:`HOT_ROWS`).
    """
    from embedpipe.torchtrain.corpus import keep_probabilities, noise_distribution

    counts = np.asarray(counts, dtype=np.float64)
    total = float(tokens if tokens is not None else counts.sum())
    per_round = total / (world * per_epoch)
    contexts = params.window + 1 if params.shrink_window else 2 * params.window
    n_in = keep_probabilities(counts, params.sample) * counts / max(counts.sum(), 1.0) * per_round * contexts
    n_out = n_in + n_in.sum() * params.negative * noise_distribution(counts, params.noise_power)
    if input_rows is not None:
        offsets, rows, n_rows = input_rows
        n_in = np.bincount(rows, weights=np.repeat(n_in, np.diff(offsets)), minlength=n_rows)
    hot_per_round = max(1, math.ceil(per_round / HOT_ROUND_TOKENS))
    count = HOT_ROWS if hot_rows is None else hot_rows
    # one matrix as both sides (params.tied): its rows take both sides' updates, one plan entry
    matrices = [n_in + n_out] if getattr(params, "tied", False) else [n_in, n_out]
    return SyncPlan(tuple(hottest(n, count) for n in matrices), hot_per_round,
                    tuple(n.astype(np.float32) for n in matrices), world, params.lr, params.min_lr, params.epochs)


def hottest(expected: np.ndarray, count: int) -> np.ndarray:
    """Ids of the ``count`` rows with the most expected updates (ties: lower id first), ascending."""
    return np.sort(np.argsort(-expected, kind="stable")[: min(count, len(expected))])


def saturation_scale(n: Any, lr: float, world: int) -> Any:
    """``(1 - (1 - s)^N) / (N s)`` with ``s = 1 - exp(-C lr n)``: the factor on a row's summed update."""
    import torch

    x = (SATURATION_RATE * lr * n).clamp(min=1e-12)  # 1 - s = exp(-x); expm1 keeps rare rows' factor at 1
    return torch.expm1(-world * x) / (world * torch.expm1(-x))


class SGNSReplicaGroup(ReplicaGroup):
    """:class:`ReplicaGroup` summing updates with SGNS's hot rounds and saturation scaling (module docstring).

    Rounds are counted in hot rounds: ``per_epoch x plan.hot_per_round`` per epoch, every
    ``hot_per_round``-th a full one, all at fixed fractions of the epoch so every replica runs the same
    collectives in the same order. A round's learning rate (in the scale) is the schedule's at the
    round's own fraction, not at the calling replica's progress, so every replica scales the same sum
    alike and their copies of the combined rows stay equal. A hot round is one all-reduce of both
    matrices' hot rows together.

    Only rounds some replica's update goes into run at all: a replica's next update always goes into the
    round after the last one due at its current call, and every round that runs carries every replica's
    *next round* (a count per coming round, after the hot rows; a tiny all-reduce beside a full round), so
    every replica knows the same set and skips the same hot rounds, which would have summed zeros. The
    result is the same as running every round, with ~1 hot round per replica's step instead of ~37.
    """

    def __init__(self, per_epoch: int, tensors_of: Callable[[Any], Sequence[Any]], *,
                 initial_of: Callable[[Any], Sequence[Any]], plan: SyncPlan):
        super().__init__(per_epoch, tensors_of, initial_of=initial_of)
        self.plan = plan
        self._device_plan: list[tuple[Any, Any]] | None = None  # per tensor: hot ids, each row's updates per combine
        self._hot: _HotBlock | None = None
        self._next = {1}  # the rounds some replica's next update goes into (every replica holds the same set)
        # how far ahead a round can be announced; one further away is announced here (an extra round, no harm)
        self._ahead = min(plan.hot_per_round, MAX_AHEAD)

    def resume_at(self, epoch: int) -> None:
        super().resume_at(epoch)
        self._next = {self.rounds + 1}

    def _target(self, progress: float) -> int:
        return int(math.floor(progress * self.per_epoch * self.plan.hot_per_round + 1e-9))

    def sync(self, state: Any, progress: float) -> None:
        import torch

        target = self._target(progress)
        if self.rounds >= target:
            return
        tensors = list(self.tensors_of(state))
        with torch.no_grad():
            if self.base is None:
                self.base = [t.detach().clone() for t in self.initial_of(state)]  # type: ignore[misc]
            plan = self._on(tensors[0].device)
            # the kernels call in only between steps (~7,000 tokens on the CPU kernel), so several rounds are
            # often due at once: this replica's updates go into the first; it only takes part in the others
            fresh = True
            while self.rounds < target:
                round_ = self.rounds + 1
                lr = self.plan.lr_at(round_ / (self.per_epoch * self.plan.hot_per_round))
                if round_ % self.plan.hot_per_round == 0:
                    for tensor, base, (_, n) in zip(tensors, self.base, plan, strict=True):
                        self._combine(tensor, base, n, lr)
                    if self._hot is not None:
                        self._hot.base_stale = True
                    slots = tensors[0].new_zeros(self._ahead)
                    self._announce(slots, round_, target)
                    self.all_reduce(slots)
                    self._heard(slots, round_)
                    fresh = False
                elif round_ in self._next:
                    self._combine_hot(tensors, plan, lr, fresh, round_, target)
                    fresh = False
                self.rounds += 1

    def finish(self, state: Any) -> None:
        super().finish(state)
        if self._hot is not None:
            self._hot.base_stale = True  # the base's hot rows moved with the rest

    def _on(self, device: Any) -> list[tuple[Any, Any]]:
        """Per tensor, its hot ids and each row's expected updates since its last combine, on ``device``."""
        import torch

        if self._device_plan is None or self._device_plan[0][0].device != device:
            self._device_plan = []
            for ids, n in zip(self.plan.hot, self.plan.expected, strict=True):
                hot = torch.from_numpy(ids).to(device)
                row = torch.from_numpy(n).to(device, copy=True)  # the plan's arrays stay as they are
                row[hot] /= self.plan.hot_per_round  # hot rows were combined a hot round ago
                self._device_plan.append((hot, row))
            self._hot = None
        return self._device_plan

    def _combine(self, tensor: Any, base: Any, n: Any, lr: float) -> None:
        tensor.sub_(base)
        self.all_reduce(tensor)
        tensor.mul_(saturation_scale(n, lr, self.plan.world).unsqueeze(1))
        tensor.add_(base)
        base.copy_(tensor)

    def _announce(self, slots: Any, round_: int, target: int) -> None:
        """Count this replica's next round (``target + 1``) in ``slots[k - 1]`` for the round ``k`` after ``round_``."""
        slots.zero_()
        slots[min(target + 1 - round_, self._ahead) - 1] = 1.0

    def _heard(self, slots: Any, round_: int) -> None:
        """Every replica's next round, from the summed ``slots`` of round ``round_``."""
        self._next = {round_ + 1 + int(k) for k in slots.nonzero().view(-1).tolist()}

    def _combine_hot(self, tensors: list[Any], plan: list[tuple[Any, Any]], lr: float, fresh: bool,
                     round_: int, target: int) -> None:
        """One hot round: every matrix's hot rows in one block, and the next rounds' counts, one all-reduce;
        ``fresh``: this replica trained since its last round (otherwise its share of the sum is zero and its hot
        rows already equal the base's)."""
        import torch

        hot = self._hot
        if hot is None:
            hot = self._hot = _HotBlock(tensors, plan, self._ahead)
        if hot.base_stale:
            torch.cat([b.index_select(0, ids) for b, (ids, _) in zip(self.base, plan, strict=True)], out=hot.base)
            hot.base_stale = False
        block = hot.rows
        if fresh:
            torch.cat([t.index_select(0, ids) for t, (ids, _) in zip(tensors, plan, strict=True)], out=block)
            block.sub_(hot.base)
        else:
            block.zero_()
        self._announce(hot.slots, round_, target)
        self.all_reduce(hot.block)
        self._heard(hot.slots, round_)
        if not fresh and not bool(block.any()):
            return  # no replica trained since the last round: nothing to apply
        block.mul_(saturation_scale(hot.n, lr, self.plan.world).unsqueeze(1))
        block.add_(hot.base)
        hot.base.copy_(block)
        for tensor, base, part, (ids, _) in zip(tensors, self.base, block.split(hot.sizes), plan, strict=True):
            tensor.index_copy_(0, ids, part)
            base.index_copy_(0, ids, part)


class _HotBlock:
    """A replica's buffers for hot rounds: the hot rows of every matrix stacked (its update, then the sum), the
    base's hot rows, and the rows' expected updates per hot round (the matrices share their width, as SGNS's do)."""

    def __init__(self, tensors: list[Any], plan: list[tuple[Any, Any]], slots: int):
        import torch

        self.sizes = [len(ids) for ids, _ in plan]
        rows, dim = sum(self.sizes), tensors[0].shape[1]
        self.block = tensors[0].new_empty((rows + math.ceil(slots / dim), dim))  # the rows, then the next rounds
        self.rows = self.block[:rows]
        self.slots = self.block[rows:].view(-1)[:slots]
        self.base = torch.empty_like(self.rows)
        self.base_stale = True
        self.n = torch.cat([n[ids] for ids, n in plan])
