"""Word-similarity evaluation: rank correlation between cosine similarity and human scores.

Spearman's rho is computed here in NumPy (Pearson on average ranks, which is how ties are
handled by ``scipy.stats.spearmanr``) because SciPy is only a dev dependency.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from embedpipe.evaluate.datasets import SimilarityDataset
from embedpipe.vectors import VectorIndex


def rank_average(values: np.ndarray) -> np.ndarray:
    """1-based ranks; tied values share the mean of the ranks they span (SciPy's 'average')."""
    x = np.asarray(values, dtype=np.float64).ravel()
    _, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
    last = np.cumsum(counts)  # the rank of the last member of each tie group
    return (last - (counts - 1) / 2.0)[inverse.ravel()]


def pearson(x: np.ndarray, y: np.ndarray) -> float | None:
    """Pearson's r, or None when it is undefined (fewer than 2 points or a constant side)."""
    a = np.asarray(x, dtype=np.float64).ravel()
    b = np.asarray(y, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError(f"x and y differ in length: {a.size} != {b.size}")
    if a.size < 2:
        return None
    a = a - a.mean()
    b = b - b.mean()
    denominator = float(np.sqrt(np.dot(a, a) * np.dot(b, b)))
    if denominator == 0.0:
        return None
    return float(np.clip(np.dot(a, b) / denominator, -1.0, 1.0))


def spearman(x: np.ndarray, y: np.ndarray) -> float | None:
    """Spearman's rho with ties (Pearson of average ranks), or None when undefined."""
    a = np.asarray(x, dtype=np.float64).ravel()
    b = np.asarray(y, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError(f"x and y differ in length: {a.size} != {b.size}")
    if a.size < 2:
        return None
    return pearson(rank_average(a), rank_average(b))


def pair_cosines(index: VectorIndex, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Cosine similarity of rows ``left[i]`` and ``right[i]`` (row-wise, no N x N matrix)."""
    return np.einsum("ij,ij->i", index.unit[left], index.unit[right]).astype(np.float64)


def evaluate_similarity(index: VectorIndex, dataset: SimilarityDataset) -> dict[str, Any]:
    """Spearman/Pearson between the model's cosines and the human scores, on pairs found.

    Pairs with an out-of-vocabulary word are left out (gensim's default), so the OOV rates are
    reported next to the correlations: a high rho on 20% of the pairs is not a good model.
    """
    left = index.rows(a for a, _ in dataset.pairs)
    right = index.rows(b for _, b in dataset.pairs)
    found = (left >= 0) & (right >= 0)
    cosines = pair_cosines(index, left[found], right[found])
    gold = dataset.scores[found]
    words = {index.fold(w) for pair in dataset.pairs for w in pair}
    words_found = sum(1 for w in words if index.row(w) >= 0)
    total = len(dataset)
    n_found = int(found.sum())
    return {
        "name": dataset.name,
        "file": dataset.location,
        "pairs_total": total,
        "pairs_found": n_found,
        "pair_oov_rate": (total - n_found) / total if total else None,
        "words_total": len(words),
        "words_found": words_found,
        "word_oov_rate": (len(words) - words_found) / len(words) if words else None,
        "spearman": spearman(gold, cosines),
        "pearson": pearson(gold, cosines),
        "lines_skipped": dataset.lines_skipped,
    }
