"""The bag kernels: rows of keys -> dense vectors, in NumPy/Arrow, shared by every consumer.

One implementation of each combiner serves the Spark broadcast path, the Spark shuffle-join path
and the Spark-free :class:`~embedpipe.table.EmbeddingTable` (``embed``/``embed_batch``), so the
three agree bit for bit. The module sits below both :mod:`embedpipe.table` and
:mod:`embedpipe.lookup` and imports neither.

A row of input (a list of tokens, or sparse ``indices`` + ``values``) is first turned into a *bag*:
its distinct keys and their weights ``c_k`` (occurrence counts for tokens, the summed values for
sparse input). With ``E`` the table and ``s`` the row's bag:

================  ==========================================================================
``mean``          ``S . E / ||s||_1`` -- the average over every token occurrence
``sum``           ``S . E`` -- ``sum_k c_k E[k]``: every occurrence counts, sparse values weigh
                  (TensorFlow's and Spark's ``sum``)
``sum_distinct``  ``sum_k E[k]`` over the *distinct* keys found (presence only, weights ignored)
``sqrtn``         ``S . E / ||s||_2`` -- TensorFlow's ``sqrtn`` combiner
``tfidf``         ``sum_k c_k idf_k E[k]``, ``idf_k = ln((1 + N) / (1 + df_k)) + 1``
================  ==========================================================================

OOV policy: ``skip`` leaves unknown keys out (norms are over the found keys); ``zero`` treats an
unknown key as a zero vector that still counts in ``||s||`` (and a row whose keys are all unknown
gets a zero vector); ``fail`` is enforced by the caller (the kernel computes as ``skip``). A row
with no vector (NULL or empty input, or nothing found under ``skip``) is NULL in the output, never
NaN.

Within a row, found keys are summed in table-row order with float32 accumulation (SciPy's CSR
product), so the order -- and therefore every bit of the result -- is the same whichever path
gathered the entries.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from embedpipe.arrow_vectors import matrix_to_list_array
from embedpipe.errors import ConfigError

COMBINERS = ("mean", "sum", "sum_distinct", "tfidf", "sqrtn")
#: Combiner names that no longer exist, and what to use instead (a one-line error, never an alias).
REMOVED_COMBINERS = {
    "weighted_sum": "use 'sum' (it now counts every occurrence and weighs sparse values: the old weighted_sum)",
}
OOV_POLICIES = ("skip", "zero", "fail")
IDF_SOURCES = ("table", "input")


def check_choice(key: str, value: str, choices: Sequence[str]) -> None:
    """ConfigError naming ``key`` unless ``value`` is one of ``choices``."""
    if value not in choices:
        raise ConfigError(f"config key '{key}' must be one of {', '.join(choices)}, got {value!r}")


def check_combiner(value: str, key: str = "combiner") -> None:
    """ConfigError unless ``value`` is a combiner; a removed name says what replaced it."""
    if value in REMOVED_COMBINERS:
        raise ConfigError(f"config key '{key}': combiner {value!r} was removed; {REMOVED_COMBINERS[value]}")
    check_choice(key, value, COMBINERS)


# ------------------------------------------------------------------------------------ bags


@dataclass(frozen=True)
class Bags:
    """A batch of rows as bags of distinct keys (CSR over the rows), before any table lookup.

    ``codes`` identify a key within the batch (a dictionary index for tokens, the index value for
    sparse input); entries are sorted by (row, code). ``occurrences`` is how many input tokens
    (or sparse entries) each bag entry stands for.
    """

    n_rows: int
    parents: np.ndarray  # int64 (m,) the row of each bag entry
    codes: np.ndarray  # int64 (m,)
    weights: np.ndarray  # float64 (m,) c_k
    occurrences: np.ndarray  # int64 (m,)
    valid: np.ndarray  # bool (n_rows,) the input row was not NULL

    @property
    def totals(self) -> np.ndarray:
        """Tokens (sparse entries) per row, NULL tokens not counted."""
        return np.bincount(self.parents, weights=self.occurrences, minlength=self.n_rows).astype(np.int64)

    def norms(self, mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Per-row ``||s||_1`` and ``||s||_2`` (float64) over the entries in ``mask`` (all by default)."""
        parents, weights = self.parents, self.weights
        if mask is not None:
            parents, weights = parents[mask], weights[mask]
        norm1 = np.bincount(parents, weights=np.abs(weights), minlength=self.n_rows)
        norm2 = np.sqrt(np.bincount(parents, weights=weights * weights, minlength=self.n_rows))
        return norm1, norm2


def _row_major_order(rows: np.ndarray, minor: np.ndarray) -> np.ndarray | None:
    """``np.lexsort((minor, rows))``, or None when already in that order.

    One stable sort of a combined int64 key is several times faster than ``lexsort`` (and, being
    stable, gives the same permutation); ``rows`` are non-negative, and the key falls back to
    ``lexsort`` where it could overflow.
    """
    if rows.size == 0:
        return None
    low = int(minor.min())
    span = int(minor.max()) - low + 1
    if (int(rows.max()) + 1) * span >= 2**62:
        return np.lexsort((minor, rows))
    key = rows.astype(np.int64) * span + (minor.astype(np.int64) - low)
    if np.all(key[1:] >= key[:-1]):
        return None
    return np.argsort(key, kind="stable")


def _aggregate(n_rows: int, parents: np.ndarray, codes: np.ndarray, weights: np.ndarray,
               valid: np.ndarray) -> Bags:
    """Merge repeated (row, code) pairs, summing weights and counting occurrences."""
    if parents.size == 0:
        empty_i = np.zeros(0, dtype=np.int64)
        return Bags(n_rows, empty_i, empty_i, np.zeros(0, dtype=np.float64), empty_i, valid)
    order = _row_major_order(parents, codes)
    if order is not None:
        parents, codes, weights = parents[order], codes[order], weights[order]
    starts = np.flatnonzero(np.r_[True, (parents[1:] != parents[:-1]) | (codes[1:] != codes[:-1])])
    occurrences = np.diff(np.r_[starts, parents.size]).astype(np.int64)
    return Bags(
        n_rows,
        parents[starts],
        codes[starts],
        np.add.reduceat(weights, starts),
        occurrences,
        valid,
    )


def _list_parts(column: pa.Array) -> tuple[pa.Array, np.ndarray, np.ndarray]:
    """(flattened values, the row of each value, row validity) of a list column; handles slices."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    values = pc.list_flatten(column)
    parents = pc.list_parent_indices(column).to_numpy(zero_copy_only=False).astype(np.int64, copy=False)
    valid = column.is_valid().to_numpy(zero_copy_only=False)
    return values, parents, valid


def token_bags(tokens: pa.Array) -> tuple[Bags, pa.Array]:
    """Bags of a ``list<string>`` column and the dictionary the bag codes index into.

    NULL tokens inside a list are dropped (and not counted); a NULL list is an invalid row.
    """
    values, parents, valid = _list_parts(tokens)
    keep = values.is_valid().to_numpy(zero_copy_only=False)
    if not keep.all():
        values = values.filter(pa.array(keep))
        parents = parents[keep]
    encoded = pc.dictionary_encode(values.cast(pa.string()))
    if isinstance(encoded, pa.ChunkedArray):
        encoded = encoded.combine_chunks()
    codes = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64, copy=False)
    bags = _aggregate(len(tokens), parents, codes, np.ones(codes.size, dtype=np.float64), valid)
    return bags, encoded.dictionary


def sparse_bags(indices: pa.Array, values: pa.Array | None) -> Bags:
    """Bags of sparse rows: ``indices`` (list<int>, the table ids) and ``values`` (list<number>).

    Without ``values`` every index weighs 1. NULL indices are dropped; a NULL value weighs 0.
    """
    flat, parents, valid = _list_parts(indices)
    index_values = flat.to_numpy(zero_copy_only=False)
    keep = flat.is_valid().to_numpy(zero_copy_only=False)
    if values is None:
        weights = np.ones(len(flat), dtype=np.float64)
    else:
        flat_values, value_parents, _ = _list_parts(values)
        if len(flat_values) != len(flat) or not np.array_equal(value_parents, parents):
            raise ValueError("sparse rows must have as many values as indices")
        weights = pc.fill_null(flat_values.cast(pa.float64()), 0.0).to_numpy(zero_copy_only=False)
    if not keep.all():
        index_values, parents, weights = index_values[keep], parents[keep], weights[keep]
    codes = np.asarray(index_values).astype(np.int64, copy=False)
    return _aggregate(len(indices), parents, codes, np.asarray(weights, dtype=np.float64), valid)


# ------------------------------------------------------------------------------------- keys


class KeyIndex:
    """Table key -> row, built once per table and process (a pandas hash index)."""

    def __init__(self, keys: pa.Array | list[str], ids: np.ndarray):
        import pandas as pd

        if isinstance(keys, pa.ChunkedArray):
            keys = keys.combine_chunks()
        key_list = keys.to_numpy(zero_copy_only=False) if isinstance(keys, pa.Array) else np.asarray(keys, object)
        self._keys = pd.Index(key_list)
        self._ids = np.asarray(ids, dtype=np.int64)
        self._ids_sorted = bool(np.all(self._ids[1:] > self._ids[:-1])) if self._ids.size else True

    @property
    def null_count(self) -> int:
        """Keys that are NULL (None)."""
        return int(self._keys.isna().sum())

    @property
    def distinct_count(self) -> int:
        """Distinct non-NULL keys (fewer than the rows when a key repeats)."""
        return int(self._keys.nunique(dropna=True))

    @property
    def duplicate_example(self) -> str | None:
        """``key 'x'`` for the first non-NULL key that repeats, None when keys are unique."""
        if self._keys.is_unique:
            return None
        repeated = self._keys[self._keys.duplicated() & ~self._keys.isna()]
        return f"key {repeated[0]!r}" if len(repeated) else None

    def rows_of_keys(self, keys: pa.Array | list[str]) -> np.ndarray:
        """Row of each key, -1 where the key is not in the table."""
        if isinstance(keys, pa.Array):
            keys = keys.to_numpy(zero_copy_only=False)
        if len(keys) == 0:
            return np.zeros(0, dtype=np.int64)
        return self._keys.get_indexer(np.asarray(keys, dtype=object)).astype(np.int64, copy=False)

    def rows_of_ids(self, ids: np.ndarray) -> np.ndarray:
        """Row of each table id (sparse indices), -1 where the id is not in the table."""
        ids = np.asarray(ids, dtype=np.int64)
        if not self._ids_sorted:  # pragma: no cover - tables are written sorted by id
            import pandas as pd

            return pd.Index(self._ids).get_indexer(ids).astype(np.int64)
        position = np.searchsorted(self._ids, ids)
        position = np.minimum(position, max(self._ids.size - 1, 0))
        hit = (self._ids.size > 0) & (self._ids[position] == ids) if self._ids.size else np.zeros(ids.shape, bool)
        return np.where(hit, position, -1).astype(np.int64)


# ------------------------------------------------------------------------------------- idf


def idf_weights(document_frequency: np.ndarray, documents: int) -> np.ndarray:
    """Smoothed idf ``ln((1 + N) / (1 + df)) + 1`` as float32 (scikit-learn's default formula).

    With ``idf = table`` the table's counts stand in for ``df`` and the sum of counts for ``N``.
    """
    df = np.asarray(document_frequency, dtype=np.float64)
    return (np.log((1.0 + float(documents)) / (1.0 + df)) + 1.0).astype(np.float32)


# ----------------------------------------------------------------------------------- combine


@dataclass(frozen=True)
class EmbedResult:
    """Vectors of a batch of rows: ``vectors`` (n, dim) float32, all zero where ``has_vector`` is False;
    ``found`` and ``total`` count tokens (sparse entries) per row."""

    vectors: np.ndarray
    has_vector: np.ndarray
    found: np.ndarray
    total: np.ndarray

    def to_arrow(self) -> pa.Array:
        """The vectors as ``list<float32>`` with NULL rows, exactly as the Spark job writes them."""
        return vectors_to_arrow(self.vectors, self.has_vector)


def combine(
    indptr: np.ndarray,
    columns: np.ndarray,
    weights: np.ndarray,
    matrix: np.ndarray,
    *,
    combiner: str,
    denominators: np.ndarray | None,
    has_vector: np.ndarray,
    normalize: bool,
) -> np.ndarray:
    """``(S . matrix) / denominators``, optionally L2-normalised -- the one product every path runs.

    ``indptr``/``columns``/``weights`` are a CSR matrix of the *found* entries, sorted by table
    row within each row; ``weights`` are already the combiner's (1 for ``sum_distinct``, ``c_k idf_k``
    for ``tfidf``). Rows not in ``has_vector`` come back as zeros.
    """
    from scipy import sparse  # the kernel's only SciPy use; importing the module stays light

    n = indptr.size - 1
    dim = matrix.shape[1]
    if columns.size == 0:
        return np.zeros((n, dim), dtype=np.float32)
    product = sparse.csr_matrix(
        (weights.astype(np.float32, copy=False), columns.astype(np.int64, copy=False), indptr.astype(np.int64)),
        shape=(n, matrix.shape[0]),
    )
    out = np.asarray(product @ matrix, dtype=np.float32)
    if combiner in ("mean", "sqrtn") and denominators is not None:
        scale = np.where(denominators > 0, denominators, 1.0).astype(np.float32)
        out /= scale[:, None]
    if normalize:
        norms = np.sqrt(np.einsum("ij,ij->i", out, out, dtype=np.float32))
        out /= np.where(norms > 0, norms, np.float32(1.0))[:, None]
    out[~has_vector] = 0.0
    return out


def combiner_weights(combiner: str, weights: np.ndarray, idf: np.ndarray | None) -> np.ndarray:
    """The CSR weights a combiner multiplies the found rows by (float32)."""
    w = np.asarray(weights, dtype=np.float32)
    if combiner == "sum_distinct":
        return np.ones_like(w)
    if combiner == "tfidf":
        if idf is None:
            raise ValueError("the tfidf combiner needs idf weights")
        return w * np.asarray(idf, dtype=np.float32)
    return w


def denominators_for(combiner: str, oov: str, bags_norms_all: tuple[np.ndarray, np.ndarray],
                     norms_found: tuple[np.ndarray, np.ndarray]) -> np.ndarray | None:
    """``||s||_1`` (mean) or ``||s||_2`` (sqrtn), over all keys (oov=zero) or the found ones."""
    if combiner not in ("mean", "sqrtn"):
        return None
    norm1, norm2 = bags_norms_all if oov == "zero" else norms_found
    return norm1 if combiner == "mean" else norm2


def has_vector_for(oov: str, found: np.ndarray, total: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Which rows get a vector: something found, or (oov=zero) anything at all."""
    return valid & ((total > 0) if oov == "zero" else (found > 0))


def embed_bags(
    bags: Bags,
    rows: np.ndarray,
    table_vectors: np.ndarray,
    *,
    combiner: str,
    oov: str,
    normalize: bool,
    idf: np.ndarray | None = None,
) -> EmbedResult:
    """Embed a batch of bags against an in-memory table (``rows``: table row of each bag entry, -1 = OOV).

    This is the broadcast path and the Python API; the shuffle path calls :func:`combine` on the
    same entries after a join, through :func:`embed_found_entries`.
    """
    found_mask = rows >= 0
    found_rows = rows[found_mask]
    found_parents = bags.parents[found_mask]
    # Entries are sorted by (row, code); re-sort the found ones by (row, table row).
    order = _row_major_order(found_parents, found_rows)
    raw_weights = bags.weights[found_mask]
    occurrences = bags.occurrences[found_mask]
    if order is not None:
        found_rows, found_parents = found_rows[order], found_parents[order]
        raw_weights, occurrences = raw_weights[order], occurrences[order]
    return embed_found_entries(
        n_rows=bags.n_rows,
        parents=found_parents,
        weights=raw_weights,
        occurrences=occurrences,
        matrix=table_vectors,
        matrix_columns=found_rows,
        idf=None if idf is None else idf[found_rows],
        totals=bags.totals,
        norms_all=bags.norms(),
        valid=bags.valid,
        combiner=combiner,
        oov=oov,
        normalize=normalize,
    )


def embed_found_entries(
    *,
    n_rows: int,
    parents: np.ndarray,
    weights: np.ndarray,
    occurrences: np.ndarray,
    matrix: np.ndarray,
    matrix_columns: np.ndarray,
    idf: np.ndarray | None,
    totals: np.ndarray,
    norms_all: tuple[np.ndarray, np.ndarray],
    valid: np.ndarray,
    combiner: str,
    oov: str,
    normalize: bool,
) -> EmbedResult:
    """Embed the *found* entries of ``n_rows`` rows; the caller sorts them by (row, table row),
    which fixes the float32 summation order and so makes every path's result bit-identical.

    ``matrix[matrix_columns[i]]`` is the vector of entry ``i``: the whole table (broadcast path)
    or the entries' joined vectors stacked (shuffle path, ``matrix_columns = arange``).
    """
    found = np.bincount(parents, weights=occurrences, minlength=n_rows).astype(np.int64)
    norm1 = np.bincount(parents, weights=np.abs(weights), minlength=n_rows)
    norm2 = np.sqrt(np.bincount(parents, weights=weights * weights, minlength=n_rows))
    indptr = np.zeros(n_rows + 1, dtype=np.int64)
    np.cumsum(np.bincount(parents, minlength=n_rows), out=indptr[1:])
    has_vector = has_vector_for(oov, found, totals, valid)
    vectors = combine(
        indptr,
        matrix_columns,
        combiner_weights(combiner, weights, idf),
        matrix,
        combiner=combiner,
        denominators=denominators_for(combiner, oov, norms_all, (norm1, norm2)),
        has_vector=has_vector,
        normalize=normalize,
    )
    return EmbedResult(vectors, has_vector, found, totals)


def vectors_to_arrow(vectors: np.ndarray, has_vector: np.ndarray) -> pa.Array:
    """A ``list<float32>`` Arrow column, NULL where ``has_vector`` is False."""
    return matrix_to_list_array(vectors, null_rows=~np.asarray(has_vector, dtype=bool))
