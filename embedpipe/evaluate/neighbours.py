"""Nearest neighbours by cosine similarity: the quickest sanity check a person can read."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from embedpipe.evaluate.vectors import VectorIndex

# Bound on the (probes x keys) float32 score block of one batch: 64 MiB.
SCORE_BLOCK_ELEMENTS = 16 * 1024 * 1024


def top_k_neighbours(index: VectorIndex, rows: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` rows most cosine-similar to each of ``rows`` (itself excluded) and their cosines.

    Returns two (len(rows), min(k, N - 1)) arrays, best first; ties go to the more frequent key.
    """
    rows = np.asarray(rows, dtype=np.int64)
    n = len(index)
    k = max(0, min(int(k), n - 1))
    neighbours = np.empty((rows.size, k), dtype=np.int64)
    cosines = np.empty((rows.size, k), dtype=np.float32)
    if k == 0 or rows.size == 0:
        return neighbours, cosines
    batch = max(1, SCORE_BLOCK_ELEMENTS // n)
    for start in range(0, rows.size, batch):
        chunk = rows[start:start + batch]
        scores = index.unit[chunk] @ index.unit.T
        scores[np.arange(chunk.size), chunk] = -np.inf
        if k < n:
            top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        else:
            top = np.tile(np.arange(n), (chunk.size, 1))
        top_scores = np.take_along_axis(scores, top, axis=1)
        # Sort each row by (-score, row id): deterministic, frequent keys first on ties.
        order = np.lexsort((top, -top_scores), axis=1)
        neighbours[start:start + chunk.size] = np.take_along_axis(top, order, axis=1)
        cosines[start:start + chunk.size] = np.take_along_axis(top_scores, order, axis=1)
    return neighbours, cosines


def nearest_neighbours(index: VectorIndex, probes: Sequence[str], *, k: int) -> dict[str, Any]:
    """Top-``k`` neighbours of each probe found in the table; missing probes are listed as OOV."""
    unique = list(dict.fromkeys(probes))
    rows = index.rows(unique)
    by_row: dict[int, str] = {}  # "Seoul" and "seoul" are one probe when case is folded
    for probe, row in zip(unique, rows, strict=True):
        if row >= 0:
            by_row.setdefault(int(row), probe)
    found = [(probe, row) for row, probe in by_row.items()]
    oov = [probe for probe, row in zip(unique, rows, strict=True) if row < 0]
    neighbour_rows, cosines = top_k_neighbours(index, np.asarray([r for _, r in found], dtype=np.int64), k)
    results = [
        {
            "probe": probe,
            "key": index.keys[row],
            "neighbours": [
                {"key": index.keys[int(nrow)], "cosine": float(cos)}
                for nrow, cos in zip(neighbour_rows[i], cosines[i], strict=True)
            ],
        }
        for i, (probe, row) in enumerate(found)
    ]
    return {"k": int(neighbour_rows.shape[1]), "probes": results, "oov": oov}
