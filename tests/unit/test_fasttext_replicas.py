"""fasttext's replicas combine through SGNS's replica group (issue 25), not by a plain sum: the bucket rows
frequent words share count their words' expected updates, are hot rows, and hot rounds run between the full
rounds. Replicas are threads joined through the all-reduce hook (as tests/unit/test_sgns_sync.py)."""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
import torch

from embedpipe.methods import fasttext, sgns_sync
from embedpipe.methods.barrier import Replica
from embedpipe.methods.sgns import _Checkpoints
from embedpipe.methods.sgns_sync import SGNSReplicaGroup, plan_sync
from embedpipe.subwords import subword_index
from embedpipe.torchtrain import SGNSParams
from embedpipe.torchtrain.subword_train import FastTextParams

WORLD = 2


def test_a_shared_bucket_row_takes_every_using_words_expected_updates():
    params = SGNSParams(dim=4, epochs=1, sample=0.0)
    counts = np.array([300, 100, 50])
    # word 0: rows 0, 3, 4; word 1: rows 1, 3; word 2: row 2 (bucket row 3 is shared by words 0 and 1)
    offsets, rows = np.array([0, 3, 5, 6]), np.array([0, 3, 4, 1, 3, 2])
    words = plan_sync(counts, params, WORLD, per_epoch=1)
    plan = plan_sync(counts, params, WORLD, per_epoch=1, input_rows=(offsets, rows, 5))
    n_word, n_row = words.expected[0], plan.expected[0]
    assert len(n_row) == 5
    np.testing.assert_allclose(n_row[:3], n_word)
    assert n_row[3] == pytest.approx(n_word[0] + n_word[1]) and n_row[4] == pytest.approx(n_word[0])
    np.testing.assert_array_equal(plan.expected[1], words.expected[1])  # output rows are words'


class _Collective:
    barrier = threading.Barrier(WORLD)
    slots: list[Any] = [None] * WORLD


@dataclass(frozen=True)
class _ThreadReplica(Replica):
    """A replica whose group all-reduces among threads; records the group it was given."""

    groups: dict = None  # type: ignore[assignment]

    def join(self, group):
        def all_reduce(tensor: torch.Tensor) -> None:
            _Collective.slots[self.rank] = tensor.clone()
            _Collective.barrier.wait()
            total = sum(_Collective.slots[1:], _Collective.slots[0].clone())
            _Collective.barrier.wait()
            tensor.copy_(total)

        group.all_reduce = all_reduce
        group.world_size = lambda: WORLD
        group.close = lambda: None
        self.groups[self.rank] = group
        return group


def _train_two_replicas(sentences: list[list[str]], keys: pa.Array, counts: np.ndarray, params: FastTextParams,
                        subwords: Any) -> tuple[Any, Any]:
    """Rank 0's output and group of two fastText replicas (threads) with one full round per epoch."""
    shared = (keys, counts, params.to_dict(), 1, _Checkpoints(None), subwords)
    groups: dict[int, Any] = {}
    outputs: dict[int, Any] = {}

    def replica(rank: int) -> None:
        batch = pa.record_batch([pa.array(sentences[rank::WORLD])], names=["tokens"])
        outputs[rank] = fasttext._train_replica(_ThreadReplica(rank, WORLD, "cpu", None, groups), iter([batch]),
                                                shared)

    threads = [threading.Thread(target=replica, args=(r,)) for r in range(WORLD)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert outputs[1] is None
    return outputs[0], groups[0]


def test_fasttext_replicas_combine_with_hot_rounds_and_saturation_scaling_and_repeat(monkeypatch):
    monkeypatch.setattr(fasttext, "FASTTEXT_HOT_ROWS", 8)
    words = ["the", "then", "there", "cat", "cats", "dog"]
    ids = np.random.default_rng(0).choice(6, (20, 50), p=[0.4, 0.15, 0.15, 0.1, 0.1, 0.1])
    sentences = [[words[i] for i in row] for row in ids]
    counts = np.bincount(ids.ravel(), minlength=6)  # the corpus's own counts, as tokenize gives them
    keys = pa.array(words)
    params = FastTextParams(dim=8, epochs=1, window=2, negative=2, sample=0.0, buckets=500, threads=1, device="cpu",
                            seed=3)
    subwords = subword_index(keys, params.minn, params.maxn, params.buckets)
    output, group = _train_two_replicas(sentences, keys, counts, params, subwords)
    assert np.isfinite(output.vectors["input"]).all()
    assert isinstance(group, SGNSReplicaGroup)
    plan = group.plan
    assert len(plan.expected[0]) == subwords.n_rows and len(plan.expected[1]) == len(words)
    # the bucket "the", "then" and "there" share takes all their updates: more than "the"'s own row, and hot
    shared_bucket = len(words) + int(np.argmax(plan.expected[0][len(words):]))
    assert plan.expected[0][shared_bucket] > plan.expected[0][0]
    assert shared_bucket in plan.hot[0].tolist() and len(plan.hot[0]) == 8
    # hot rounds ran between the full ones (500 tokens per replica per round; the last hot round is the full one)
    assert plan.hot_per_round == math.ceil(500 / sgns_sync.HOT_ROUND_TOKENS) > 1
    assert group.rounds == params.epochs * plan.hot_per_round
    # CPU runs with a fixed replica count repeat exactly
    again, _ = _train_two_replicas(sentences, keys, counts, params, subwords)
    for layer in ("input", "subwords"):
        np.testing.assert_array_equal(again.vectors[layer], output.vectors[layer])
