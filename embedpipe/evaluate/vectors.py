"""Unit-normalised vectors plus a key lookup: what every metric needs, built once per table.

The evaluation works on vocabulary-sized matrices in NumPy on the driver (an (N, dim) float32
matrix and its unit-normalised copy, i.e. about ``2 * N * dim * 4`` bytes: 1M keys x 300 dims is
2.4 GB). That is the size of the model itself, never of the corpus, so holding it is fine; the
metrics then run as batched matrix products instead of per-question Python loops.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from embedpipe.table import EmbeddingTable

MISSING = -1


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
    def from_table(cls, table: EmbeddingTable, *, lowercase: bool = True) -> VectorIndex:
        """Index an :class:`~embedpipe.table.EmbeddingTable` (already sorted by id = frequency)."""
        return cls.from_arrays(table.keys, table.vectors, lowercase=lowercase)

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
