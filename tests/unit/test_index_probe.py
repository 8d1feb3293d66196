"""The index build's recall probe (:func:`embedpipe.index.build.calibrate_search`): it keeps the cheapest
search parameter whose recall@10 against exact reaches the target (the ladder, then a bisection below the
first value reaching it), and the largest when none does."""

from __future__ import annotations

import numpy as np
import pytest

faiss = pytest.importorskip("faiss", reason="the ANN index needs the 'index' extra (faiss-cpu)")

from embedpipe.index import build  # noqa: E402
from embedpipe.index.store import AnnIndex  # noqa: E402


def _unit(rows: int = 2000, dim: int = 48, seed: int = 5) -> np.ndarray:
    """Unclustered Gaussian vectors: no structure, so a narrow search beam misses neighbours."""
    vectors = np.random.default_rng(seed).standard_normal((rows, dim)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def _recall(unit: np.ndarray, found: np.ndarray, queries: np.ndarray) -> float:
    """Recall@10 against a plain NumPy sort (the obviously correct reference)."""
    scores = unit[queries] @ unit.T
    scores[np.arange(len(queries)), queries] = -np.inf
    truth = np.argsort(-scores, axis=1, kind="stable")[:, :10]
    return float(np.mean([len(set(f) & set(t)) / 10 for f, t in zip(found, truth, strict=True)]))


@pytest.mark.parametrize(("kind", "target"), [
    ("hnsw", 0.99), pytest.param("ivf-pq", 0.95, marks=pytest.mark.slow),  # ivf-pq trains: ~10 s loaded
])
def test_probe_keeps_the_cheapest_value_reaching_the_target(kind, target, monkeypatch):
    faiss.omp_set_num_threads(1)
    monkeypatch.setattr(build, "PROBE_QUERIES", 300)
    unit = _unit()
    index, build_params, search = build.build_faiss_index(unit, kind)
    name = "ef_search" if kind == "hnsw" else "nprobe"
    _, ladder = build._ladder(kind, build_params)
    queries = np.sort(np.random.default_rng(1234).choice(len(unit), 300, replace=False))
    recalls = []
    for value in ladder:  # the reference: each value in turn until one reaches the target
        found, _ = AnnIndex(index, {"kind": kind, "search": {**search, name: value}}).search(unit, queries, 10)
        recalls.append(_recall(unit, found, queries))
        if recalls[-1] >= target:
            break
    assert len(recalls) > 1 and recalls[-1] >= target  # the probe has a choice to make on this table
    chosen, probe = build.calibrate_search(index, unit, kind, build_params, search, target)
    low, high = ladder[len(recalls) - 2:len(recalls)]  # the target lies between these two ladder values
    tried = dict(probe[name])
    assert [v for v, _ in probe[name]][:len(recalls)] == ladder[:len(recalls)] and probe["queries"] == 300
    assert low < chosen[name] <= high and probe["recall"] == tried[chosen[name]] >= target
    below = max(v for v, r in tried.items() if v < chosen[name])  # the bisection's last value under the target
    assert tried[below] < target and chosen[name] - below <= max(1, below // build.PROBE_REFINE)

    def reference(value: int) -> float:
        found, _ = AnnIndex(index, {"kind": kind, "search": {**search, name: value}}).search(unit, queries, 10)
        return _recall(unit, found, queries)

    assert reference(chosen[name]) >= target > reference(below)


def test_probe_keeps_the_largest_value_when_the_target_is_out_of_reach(monkeypatch):
    faiss.omp_set_num_threads(1)
    monkeypatch.setattr(build, "PROBE_QUERIES", 200)
    monkeypatch.setattr(build, "HNSW_EF_SEARCH_LADDER", (1, 2))  # beams under k + 1: the search uses k + 1
    unit = _unit()
    index, build_params, search = build.build_faiss_index(unit, "hnsw")
    chosen, probe = build.calibrate_search(index, unit, "hnsw", build_params, search, 0.999)
    assert chosen["ef_search"] == 2 and [v for v, _ in probe["ef_search"]] == [1, 2]
    assert probe["recall"] < 0.999 and probe["target"] == 0.999
