"""Cosine geometry of an embedding matrix: unit vectors, a key lookup, top-k neighbours and analogies.

These NumPy kernels sit below both consumers of a table: :class:`embedpipe.table.EmbeddingTable`
(the Python API, the ``neighbors`` job) and :mod:`embedpipe.evaluate` (the report's metrics), so
neither package imports the other. They work on vocabulary-sized matrices on one machine (an
(N, dim) float32 matrix and its unit-normalised copy, about ``2 * N * dim * 4`` bytes: 1M keys x 300
dims is 2.4 GB). That is the size of the model, never of the corpus; holding it lets every query run
as batched matrix products instead of per-key Python loops.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

MISSING = -1
# Bound on one (queries x keys) float32 score block: 64 MiB.
SCORE_BLOCK_ELEMENTS = 16 * 1024 * 1024


def unit_normalise(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to length 1 (float32); all-zero rows stay zero instead of becoming NaN."""
    matrix = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.where(norms > 0, norms, 1.0).astype(np.float32)


@dataclass(frozen=True, eq=False)
class VectorIndex:
    """Keys in frequency order (row 0 = most frequent), their unit vectors and a lookup.

    With ``lowercase`` the lookup folds case on both sides and a folded key resolves to its most
    frequent spelling (``Paris``/``paris`` -> whichever has the lower id), as gensim's
    ``case_insensitive`` evaluation does. ``groups[i]`` is the folded-key class of row ``i`` so
    ``Paris`` and ``paris`` count as the same word when an analogy answer is checked.
    """

    keys: list[str]
    unit: np.ndarray
    lowercase: bool = True
    _index: dict[str, int] = field(init=False, repr=False, compare=False)
    groups: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.unit.ndim != 2 or self.unit.shape[0] != len(self.keys):
            raise ValueError(f"vectors must be ({len(self.keys)}, dim), got {self.unit.shape}")
        index: dict[str, int] = {}
        groups = np.empty(len(self.keys), dtype=np.int64)
        for row, key in enumerate(self.keys):
            # setdefault keeps the first (most frequent) row for a folded key.
            groups[row] = index.setdefault(self.fold(key), row)
        object.__setattr__(self, "_index", index)
        object.__setattr__(self, "groups", groups)

    @classmethod
    def from_arrays(cls, keys: Sequence[str], vectors: np.ndarray, *, lowercase: bool = True) -> VectorIndex:
        """Index plain keys + an (N, dim) matrix whose rows are in frequency order."""
        return cls(list(keys), unit_normalise(vectors), lowercase)

    @classmethod
    def from_table(cls, table: Any, *, lowercase: bool = True) -> VectorIndex:
        """The (cached) index of an :class:`~embedpipe.table.EmbeddingTable`: ``table.index(lowercase=...)``."""
        return table.index(lowercase=lowercase)

    def __len__(self) -> int:
        return len(self.keys)

    @property
    def dim(self) -> int:
        return int(self.unit.shape[1])

    @property
    def has_case_duplicates(self) -> bool:
        """Whether two rows fold to the same key (only possible with ``lowercase``)."""
        return len(self._index) != len(self.keys)

    def fold(self, word: str) -> str:
        return word.lower() if self.lowercase else word

    def row(self, word: str) -> int:
        """The row of ``word`` or :data:`MISSING`."""
        return self._index.get(self.fold(word), MISSING)

    def rows(self, words: Iterable[str]) -> np.ndarray:
        """Rows of ``words`` as int64, :data:`MISSING` (-1) where a word is not in the table."""
        get = self._index.get
        fold = self.fold
        return np.fromiter((get(fold(w), MISSING) for w in words), dtype=np.int64)


# ------------------------------------------------------------------------------- neighbours


def top_k_neighbours(unit: np.ndarray, rows: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` rows of ``unit`` most cosine-similar to each of ``rows`` (itself excluded), and their cosines.

    ``unit`` holds unit-length rows. Returns two (len(rows), min(k, N - 1)) arrays, best first; ties
    go to the lower row (the more frequent key). The work runs in blocks of queries so the score
    matrix stays below :data:`SCORE_BLOCK_ELEMENTS`; the ``neighbors`` job runs the same kernel per
    Spark task.
    """
    rows = np.asarray(rows, dtype=np.int64)
    n = unit.shape[0]
    k = max(0, min(int(k), n - 1))
    neighbours = np.empty((rows.size, k), dtype=np.int64)
    cosines = np.empty((rows.size, k), dtype=np.float32)
    if k == 0 or rows.size == 0:
        return neighbours, cosines
    batch = max(1, SCORE_BLOCK_ELEMENTS // n)
    for start in range(0, rows.size, batch):
        chunk = rows[start:start + batch]
        scores = unit[chunk] @ unit.T
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
    """Top-``k`` neighbours of each probe found in the index (a report section); missing probes are OOV."""
    unique = list(dict.fromkeys(probes))
    rows = index.rows(unique)
    by_row: dict[int, str] = {}  # "Seoul" and "seoul" are one probe when case is folded
    for probe, row in zip(unique, rows, strict=True):
        if row >= 0:
            by_row.setdefault(int(row), probe)
    found = [(probe, row) for row, probe in by_row.items()]
    oov = [probe for probe, row in zip(unique, rows, strict=True) if row < 0]
    neighbour_rows, cosines = top_k_neighbours(index.unit, np.asarray([r for _, r in found], dtype=np.int64), k)
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


# -------------------------------------------------------------------------------- analogies


def solve_analogies(
    index: VectorIndex,
    a: np.ndarray,
    b: np.ndarray,
    c: np.ndarray,
    *,
    restrict_vocab: int,
    batch_size: int | None = None,
    composed_from: int | None = None,
) -> np.ndarray:
    """3CosAdd: the predicted row for each ``a : b :: c : ?``, i.e. argmax cos(x, b - a + c).

    Candidates are rows ``0 .. restrict_vocab - 1`` (rows of a, b, c must all be below it) minus the
    question's input words (and, when the index folds case, any spelling of them). Ties go to the
    more frequent key; -1 means no candidate was left. Rows from ``composed_from`` on are vectors
    composed for unseen words (:mod:`embedpipe.composed`): they may be inputs, never answers.
    """
    table_rows = len(index) if composed_from is None else int(composed_from)
    candidates = min(int(restrict_vocab), table_rows)
    a, b, c = (np.asarray(x, dtype=np.int64) for x in (a, b, c))
    inputs_ok = [(x < candidates) | (x >= table_rows) for x in (a, b, c)]
    if a.size and not all(ok.all() for ok in inputs_ok):
        raise ValueError("question rows must be within restrict_vocab")
    if a.size and min(int(a.min()), int(b.min()), int(c.min())) < 0:
        raise ValueError("question rows must be found in the table")
    unit = index.unit
    candidate_matrix = unit[:candidates]
    groups = index.groups[:candidates] if index.has_case_duplicates else None
    if batch_size is None:
        batch_size = max(1, SCORE_BLOCK_ELEMENTS // max(candidates, 1))
    predicted = np.empty(a.size, dtype=np.int64)
    for start in range(0, a.size, batch_size):
        end = min(start + batch_size, a.size)
        ba, bb, bc = a[start:end], b[start:end], c[start:end]
        queries = unit[bb] - unit[ba] + unit[bc]
        scores = queries @ candidate_matrix.T
        if groups is None:
            batch_rows = np.arange(end - start)
            for inputs in (ba, bb, bc):
                candidate = inputs < candidates  # a composed input is no candidate to exclude
                scores[batch_rows[candidate], inputs[candidate]] = -np.inf
        else:
            # Input rows are the first (folded) spelling, i.e. their own group id.
            excluded = (groups[None, :] == ba[:, None]) | (groups[None, :] == bb[:, None]) | (
                groups[None, :] == bc[:, None]
            )
            scores[excluded] = -np.inf
        best = np.argmax(scores, axis=1)
        # Every candidate excluded (a tiny restrict_vocab): no answer, as in gensim.
        best[np.isneginf(scores[np.arange(end - start), best])] = -1
        predicted[start:end] = best
    return predicted
