"""The SGNS trainer recovers a planted structure, on CPU and (when present) on CUDA.

The generator plants the distributional hypothesis in its purest form: two groups of *target*
words that never occur together, each surrounded only by its own group's *context* words. Targets
of a group are similar only because they share contexts, which is what skip-gram must learn.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from embedpipe.torchtrain import IdCorpus, SGNSParams, TrainResult, train_sgns
from embedpipe.torchtrain.pairwise_cpu import available as pairwise_available

GROUP_TARGETS = 8
GROUP_CONTEXTS = 12
N_GROUPS = 2


def planted_corpus(sentences: int = 3000, seed: int = 0) -> tuple[IdCorpus, np.ndarray]:
    """Sentences ``c c t c c`` with one target ``t`` and four contexts ``c`` from the same group.

    Ids: group g's targets are ``g*T .. g*T+T-1``; contexts follow all targets. Returns the corpus
    and each target's group.
    """
    rng = np.random.default_rng(seed)
    n_targets = N_GROUPS * GROUP_TARGETS
    group = rng.integers(0, N_GROUPS, sentences)
    targets = group * GROUP_TARGETS + rng.integers(0, GROUP_TARGETS, sentences)
    contexts = n_targets + group[:, None] * GROUP_CONTEXTS + rng.integers(0, GROUP_CONTEXTS, (sentences, 4))
    rows = np.column_stack([contexts[:, :2], targets, contexts[:, 2:]])
    corpus = IdCorpus(rows.reshape(-1), np.arange(0, rows.size + 1, 5))
    return corpus, np.repeat(np.arange(N_GROUPS), GROUP_TARGETS)


def nearest_targets(vectors: np.ndarray, n_targets: int) -> np.ndarray:
    """For each target, the most cosine-similar *other* target."""
    v = vectors[:n_targets] / np.linalg.norm(vectors[:n_targets], axis=1, keepdims=True)
    sim = v @ v.T
    np.fill_diagonal(sim, -np.inf)
    return sim.argmax(1)


def _params(**overrides) -> SGNSParams:
    values = dict(dim=16, window=2, negative=5, sample=0.0, lr=0.025, epochs=5, seed=3)
    values.update(device="cpu", threads=1)
    values.update(overrides)
    return SGNSParams(**values)


#: Windows per step on this 15,000-token corpus (through the trainer's test hook): the batched step's
#: automatic 1,024 would leave it a few dozen steps in all.
BATCH = 128


def _train(corpus: IdCorpus, kernel: str, **overrides) -> TrainResult:
    """train_sgns with the step forced to ``kernel`` (a test hook: compare kernels and devices)."""
    return train_sgns(corpus, None, _params(**overrides), _kernel=kernel, _batch_size=BATCH)



PAIRWISE = pytest.param("pairwise", marks=pytest.mark.skipif(not pairwise_available(), reason="needs numba"))


@pytest.mark.parametrize("kernel", ["batched", PAIRWISE])
@pytest.mark.parametrize(("threads", "deterministic"), [(1, True), (2, False)])
def test_planted_groups_are_recovered(threads, deterministic, kernel):
    corpus, group = planted_corpus()
    result = _train(corpus, kernel, threads=threads, deterministic=deterministic)
    n_targets = len(group)
    nearest = nearest_targets(result.input_vectors, n_targets)
    assert np.array_equal(group[nearest], group), group[nearest]
    assert result.epoch_losses[-1] < result.epoch_losses[0]
    # and the groups separate clearly: mean within-group cosine well above the across-group one
    v = result.input_vectors[:n_targets]
    v = v / np.linalg.norm(v, axis=1, keepdims=True)
    sim = v @ v.T
    same = group[:, None] == group[None, :]
    np.fill_diagonal(same, False)
    across = group[:, None] != group[None, :]
    assert sim[same].mean() - sim[across].mean() > 0.5


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cpu_and_cuda_agree_on_a_small_run():
    corpus, group = planted_corpus()
    cpu = _train(corpus, "batched", device="cpu")  # the step CUDA falls back to
    gpu = _train(corpus, "batched", device="cuda")
    assert gpu.device.startswith("cuda") and cpu.device == "cpu"
    # different random streams per device, same model: loss curves close, same neighbourhoods
    np.testing.assert_allclose(gpu.epoch_losses, cpu.epoch_losses, rtol=0.05)
    n_targets = len(group)
    assert np.array_equal(group[nearest_targets(gpu.input_vectors, n_targets)], group)
    k = 5
    for vectors_a, vectors_b in [(cpu.input_vectors, gpu.input_vectors)]:
        def top(vectors):
            v = vectors[:n_targets] / np.linalg.norm(vectors[:n_targets], axis=1, keepdims=True)
            sim = v @ v.T
            np.fill_diagonal(sim, -np.inf)
            return np.argsort(-sim, axis=1)[:, :k]
        overlap = np.mean([len(set(a) & set(b)) / k for a, b in zip(top(vectors_a), top(vectors_b), strict=True)])
        assert overlap > 0.6
