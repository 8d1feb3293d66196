"""How far a new table moved from the one it replaces: neighbour overlap, Procrustes residual, vocabulary churn.

Why these three: the quality gate checks absolute quality, but a consumer of a daily table cares
whether yesterday's answers still hold. *Neighbour overlap@k* (the share of each frequent key's k
nearest neighbours that are the same in both tables) is what a lookup or recommendation user
sees; it ignores rotations, so it passes a cold retrain that kept the neighbourhoods. The *Procrustes
residual* (after the best rotation of the old vectors onto the new, how much is left) catches a
space that changed shape; with a warm start it stays small. *Churn* (keys added and removed) says
how much of the table is new at all.

Spark-free, vectorised NumPy on the driver: the tables are vocabulary-sized; the geometric metrics use the
``top`` most frequent shared keys (neighbours searched among them, in blocks of probes), so their cost
does not grow with the vocabulary.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from embedpipe.table import EmbeddingTable

_BLOCK = 1024


@dataclass(frozen=True)
class DriftMetrics:
    """The drift of ``current`` from ``previous`` (see the module docstring); fractions in [0, 1]."""

    neighbour_overlap: float | None  # mean share of the k neighbours kept, among the top shared keys
    procrustes_residual: float | None  # ||unit(prev) R - unit(cur)||_F / ||unit(cur)||_F on the top shared keys
    added_fraction: float  # keys of current not in previous / keys of current
    removed_fraction: float  # keys of previous not in current / keys of previous
    shared_keys: int
    probes: int  # the top shared keys the two geometric metrics were measured on
    k: int

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


def _unit(matrix: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return (matrix / np.maximum(norms, 1e-12)).astype(np.float32)


def nearest(unit: np.ndarray, probes: np.ndarray, k: int) -> np.ndarray:
    """The ``k`` nearest rows (cosine, the probe itself excluded) of each probe row of the unit matrix."""
    out = np.empty((len(probes), k), dtype=np.int64)
    for start in range(0, len(probes), _BLOCK):
        block = probes[start:start + _BLOCK]
        scores = unit[block] @ unit.T
        scores[np.arange(len(block)), block] = -np.inf
        top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        out[start:start + len(block)] = top
    return out


def neighbour_overlap(previous: np.ndarray, current: np.ndarray, k: int) -> float:
    """Mean share of each row's ``k`` nearest neighbours (among these rows) that both matrices agree on.

    The two matrices hold the same keys in the same row order (the top shared keys), so new or
    vanished keys do not count: that is churn's business.
    """
    k = min(k, len(previous) - 1)
    if k < 1:
        return 1.0
    rows = np.arange(len(previous))
    before, after = nearest(_unit(previous), rows, k), nearest(_unit(current), rows, k)
    hits = np.zeros(len(rows))
    for start in range(0, len(rows), _BLOCK):  # (block, k, k) comparisons
        b, a = before[start:start + _BLOCK], after[start:start + _BLOCK]
        hits[start:start + _BLOCK] = (b[:, :, None] == a[:, None, :]).any(axis=2).sum(axis=1)
    return float(np.mean(hits / k))


def procrustes_residual(previous: np.ndarray, current: np.ndarray) -> float:
    """Relative residual of the orthogonal Procrustes fit of the (unit-length) previous rows onto the current.

    0: the old space is a rotation of the new one; about 1.4 (sqrt 2): unrelated spaces.
    """
    a, b = _unit(previous).astype(np.float64), _unit(current).astype(np.float64)
    u, _, vt = np.linalg.svd(a.T @ b)
    rotation = u @ vt
    return float(np.linalg.norm(a @ rotation - b) / max(np.linalg.norm(b), 1e-12))


def measure_drift(previous: EmbeddingTable, current: EmbeddingTable, *, top: int, k: int) -> DriftMetrics:
    """Drift of ``current`` from ``previous``: churn on all keys, the geometric metrics on the ``top`` most
    frequent (in ``current``) keys both tables have, neighbours searched among those keys."""
    import pyarrow as pa
    import pyarrow.compute as pc

    in_previous = pc.index_in(pa.array(current.keys, pa.string()), value_set=pa.array(previous.keys, pa.string()))
    current_shared = np.flatnonzero(in_previous.is_valid().to_numpy(zero_copy_only=False))
    shared = len(current_shared)
    added = 1.0 - shared / max(len(current), 1)
    removed = 1.0 - shared / max(len(previous), 1)
    if shared < 2 or previous.dim != current.dim:
        return DriftMetrics(None, None, added, removed, shared, 0, k)
    # current is in frequency order (by id), so the first shared rows are the most frequent shared keys
    probes = min(top, shared)
    current_rows = current_shared[:probes]
    previous_rows = in_previous.drop_null().to_numpy()[:probes].astype(np.int64)
    prev_vectors, cur_vectors = previous.vectors[previous_rows], current.vectors[current_rows]
    overlap = neighbour_overlap(prev_vectors, cur_vectors, k)
    residual = procrustes_residual(prev_vectors, cur_vectors)
    return DriftMetrics(overlap, residual, added, removed, shared, probes, k)
