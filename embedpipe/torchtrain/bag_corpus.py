"""The bag models' input: rows of item/word ids in CSR layout, with optional weights and targets.

A :class:`BagCorpus` is the layout of an Arrow ``ListArray`` (flat ids plus row offsets), like the
SGNS trainer's :class:`~embedpipe.torchtrain.corpus.IdCorpus`, so a Spark partition's Arrow batch turns
into one with a vectorised dictionary lookup (:func:`encode_bags`) and no Python loop per row.

Row ``r`` is a user's watched items (softmax) or a text's bag of words with counts as weights and
the number to predict as its target (regression).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from embedpipe.errors import InputError


@dataclass(frozen=True)
class BagCorpus:
    """Bags stored flat (CSR): row ``r``'s ids are ``ids[offsets[r]:offsets[r + 1]]``.

    ``weights`` (float32, one per entry: counts) is None when every entry weighs 1; ``targets``
    (float32, one per row: the regression label) is None for the softmax objective. Arrays are
    normalised to int64 / float32 and checked on construction (InputError naming the array).
    """

    offsets: np.ndarray = field(repr=False)
    ids: np.ndarray = field(repr=False)
    weights: np.ndarray | None = field(default=None, repr=False)
    targets: np.ndarray | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        ids = np.asarray(self.ids)
        offsets = np.asarray(self.offsets)
        if ids.ndim != 1 or not (np.issubdtype(ids.dtype, np.integer) or len(ids) == 0):
            raise InputError(f"BagCorpus ids must be a 1-D integer array, got {ids.dtype} with shape {ids.shape}")
        if offsets.ndim != 1 or not (np.issubdtype(offsets.dtype, np.integer) or len(offsets) == 1):
            raise InputError(f"BagCorpus offsets must be a 1-D integer array, got {offsets.dtype}")
        ids = ids.astype(np.int64, copy=False)
        offsets = offsets.astype(np.int64, copy=False)
        if len(offsets) == 0 or offsets[0] != 0 or offsets[-1] != len(ids):
            raise InputError(
                f"BagCorpus offsets must start at 0 and end at len(ids)={len(ids)}, got {len(offsets)} offsets"
            )
        if np.any(np.diff(offsets) < 0):
            raise InputError("BagCorpus offsets must be non-decreasing")
        if len(ids) and ids.min() < 0:
            raise InputError(f"BagCorpus ids must be >= 0, found {int(ids.min())}")
        object.__setattr__(self, "ids", ids)
        object.__setattr__(self, "offsets", offsets)
        if self.weights is not None:
            weights = np.asarray(self.weights, dtype=np.float32)
            if weights.shape != ids.shape:
                raise InputError(
                    f"BagCorpus weights must have one value per id ({len(ids)}), got shape {weights.shape}"
                )
            if not np.all(np.isfinite(weights)) or (len(weights) and weights.min() < 0):
                raise InputError("BagCorpus weights must be finite and >= 0")
            object.__setattr__(self, "weights", weights)
        if self.targets is not None:
            targets = np.asarray(self.targets, dtype=np.float32)
            if targets.shape != (len(offsets) - 1,):
                raise InputError(
                    f"BagCorpus targets must have one value per row ({len(offsets) - 1}), got shape {targets.shape}"
                )
            bad = np.flatnonzero(~np.isfinite(targets))
            if len(bad):
                raise InputError(f"BagCorpus targets must be finite; {len(bad)} are not (first at row {int(bad[0])})")
            object.__setattr__(self, "targets", targets)

    @property
    def n_rows(self) -> int:
        return int(len(self.offsets) - 1)

    @property
    def n_entries(self) -> int:
        return int(len(self.ids))

    def lengths(self) -> np.ndarray:
        """Entries per row (int64)."""
        return np.diff(self.offsets)

    def entry_weights(self) -> np.ndarray:
        """The per-entry weights, materialising the implicit all-ones (float32)."""
        return self.weights if self.weights is not None else np.ones(self.n_entries, dtype=np.float32)

    def counts(self, vocab_size: int | None = None) -> np.ndarray:
        """Weighted occurrences of each id (float64), at least ``vocab_size`` long."""
        return np.bincount(self.ids, weights=self.weights, minlength=vocab_size or 0).astype(np.float64)

    def take(self, rows: np.ndarray | Sequence[int]) -> BagCorpus:
        """The corpus of the given rows, in that order (vectorised gather; rows may repeat)."""
        rows = np.asarray(rows, dtype=np.int64)
        if rows.ndim != 1:
            raise InputError(f"BagCorpus.take needs a 1-D array of row indices, got shape {rows.shape}")
        if len(rows) and (rows.min() < 0 or rows.max() >= self.n_rows):
            raise InputError(f"BagCorpus.take row indices must be in 0..{self.n_rows - 1}")
        entries, offsets = gather_rows(self.offsets, rows)
        return BagCorpus(
            offsets=offsets,
            ids=self.ids[entries],
            weights=None if self.weights is None else self.weights[entries],
            targets=None if self.targets is None else self.targets[rows],
        )

    @staticmethod
    def concat(parts: Sequence[BagCorpus]) -> BagCorpus:
        """Join corpora end to end (e.g. one per Arrow batch); row order is kept.

        Weights are kept if any part has them (the others count as all ones); targets must be on
        every part or on none.
        """
        if not parts:
            return BagCorpus(np.zeros(1, dtype=np.int64), np.zeros(0, dtype=np.int64))
        with_targets = [p.targets is not None for p in parts]
        if any(with_targets) and not all(with_targets):
            raise InputError("BagCorpus.concat: some parts have targets and others do not")
        ids = np.concatenate([p.ids for p in parts])
        starts = np.cumsum([0] + [p.n_entries for p in parts[:-1]])
        offsets = np.concatenate([[0]] + [p.offsets[1:] + s for p, s in zip(parts, starts, strict=True)])
        weights = None
        if any(p.weights is not None for p in parts):
            weights = np.concatenate([p.entry_weights() for p in parts])
        targets = np.concatenate([p.targets for p in parts]) if all(with_targets) else None  # type: ignore[misc]
        return BagCorpus(offsets.astype(np.int64), ids, weights, targets)


def gather_rows(offsets: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Entry indices of ``rows`` of a CSR layout, concatenated, and the new offsets (no Python loop)."""
    starts = offsets[rows]
    lengths = offsets[rows + 1] - starts
    new_offsets = np.zeros(len(rows) + 1, dtype=np.int64)
    np.cumsum(lengths, out=new_offsets[1:])
    total = int(new_offsets[-1])
    entries = np.arange(total, dtype=np.int64) + np.repeat(starts - new_offsets[:-1], lengths)
    return entries, new_offsets


def _as_array(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    if isinstance(values, pa.ChunkedArray):
        return values.combine_chunks() if values.num_chunks != 1 else values.chunk(0)
    return values


def encode_bags(
    sequences: pa.Array | pa.ChunkedArray | Sequence[Sequence[str] | None],
    keys: pa.Array | pa.ChunkedArray | Sequence[str],
    weights: pa.Array | pa.ChunkedArray | Sequence[Sequence[float] | None] | None = None,
    targets: pa.Array | pa.ChunkedArray | np.ndarray | Sequence[float] | None = None,
) -> BagCorpus:
    """Map lists of item/word keys to a :class:`BagCorpus`; keys missing from ``keys`` are dropped.

    ``sequences`` is an Arrow (large) list<string> array — e.g. a column of a Spark partition's
    Arrow batch — or Python lists; ``keys`` is the vocabulary in id order (id ``i`` is ``keys[i]``).
    NULL lists and NULL keys count as empty rows / dropped entries, so row ``r`` of the result is
    always row ``r`` of the input. ``weights`` (list<number>, same list lengths as ``sequences``;
    NULL values weigh 1) go with the entries and are dropped with them; ``targets`` (one finite
    number per row) is the regression label. The lookup is one hash join in Arrow's C++
    (``index_in``), as :func:`~embedpipe.torchtrain.corpus.encode_sentences` does for SGNS.
    """
    keys_arr = _as_array(keys) if isinstance(keys, (pa.Array, pa.ChunkedArray)) else pa.array(keys, pa.string())
    seqs = _as_array(sequences) if isinstance(sequences, (pa.Array, pa.ChunkedArray)) else None
    if seqs is None:
        seqs = pa.array(sequences, type=pa.list_(pa.string()))
    if not (pa.types.is_list(seqs.type) or pa.types.is_large_list(seqs.type)):
        raise InputError(f"bag sequences must be a list<string> array, got {seqs.type}")
    if not (pa.types.is_string(seqs.type.value_type) or pa.types.is_large_string(seqs.type.value_type)):
        raise InputError(f"bag sequences must be a list<string> array, got {seqs.type}")
    n = len(seqs)
    target_np = _encode_targets(targets, n)
    # Flatten through the offsets (not list_flatten) so entries line up with the weights' entries.
    seqs = seqs.fill_null([]) if seqs.null_count else seqs
    values = pc.list_flatten(seqs)
    parents = pc.list_parent_indices(seqs).to_numpy(zero_copy_only=False).astype(np.int64)
    if not values.type.equals(keys_arr.type):
        keys_arr = keys_arr.cast(values.type)
    found = pc.index_in(values, value_set=keys_arr)
    known = pc.is_valid(found).to_numpy(zero_copy_only=False)
    ids = pc.fill_null(found, 0).to_numpy(zero_copy_only=False).astype(np.int64)[known]
    lengths = np.bincount(parents[known], minlength=n)
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    weight_np = None
    if weights is not None:
        weight_np = _encode_weights(weights, seqs, len(values))[known]
    return BagCorpus(offsets, ids, weight_np, target_np)


def _encode_weights(weights, seqs: pa.Array, n_values: int) -> np.ndarray:
    w = _as_array(weights) if isinstance(weights, (pa.Array, pa.ChunkedArray)) else None
    if w is None:
        w = pa.array(weights, type=pa.list_(pa.float32()))
    if not (pa.types.is_list(w.type) or pa.types.is_large_list(w.type)) or not (
        pa.types.is_integer(w.type.value_type) or pa.types.is_floating(w.type.value_type)
    ):
        raise InputError(f"bag weights must be a list<number> array, got {w.type}")
    if len(w) != len(seqs):
        raise InputError(f"bag weights have {len(w)} rows but the sequences have {len(seqs)}")
    w = w.fill_null([]) if w.null_count else w
    seq_lengths = pc.list_value_length(seqs).to_numpy(zero_copy_only=False)
    w_lengths = pc.list_value_length(w).to_numpy(zero_copy_only=False)
    differ = np.flatnonzero(seq_lengths != w_lengths)
    if len(differ):
        r = int(differ[0])
        raise InputError(
            f"bag weights must have one value per key; row {r} has {int(seq_lengths[r])} keys "
            f"and {int(w_lengths[r])} weights ({len(differ)} rows differ)"
        )
    flat = pc.fill_null(pc.list_flatten(w).cast(pa.float32()), 1.0).to_numpy(zero_copy_only=False)
    if len(flat) != n_values:  # pragma: no cover - equal lengths imply equal totals
        raise InputError("bag weights do not line up with the keys")
    if not np.all(np.isfinite(flat)) or (len(flat) and flat.min() < 0):
        raise InputError("bag weights must be finite and >= 0")
    return flat.astype(np.float32, copy=False)


def _encode_targets(targets, n: int) -> np.ndarray | None:
    if targets is None:
        return None
    if isinstance(targets, (pa.Array, pa.ChunkedArray)):
        arr = _as_array(targets)
        if not (pa.types.is_integer(arr.type) or pa.types.is_floating(arr.type) or pa.types.is_decimal(arr.type)):
            raise InputError(f"bag targets must be numeric, got {arr.type}")
        if arr.null_count:
            first = int(pc.index(pc.is_null(arr), True).as_py())
            raise InputError(f"bag targets must not be NULL; {arr.null_count} are (first at row {first})")
        values = arr.cast(pa.float64()).to_numpy(zero_copy_only=False)
    else:
        try:
            values = np.asarray(targets, dtype=np.float64)
        except (TypeError, ValueError):
            raise InputError("bag targets must be numbers (one per row)") from None
    if values.shape != (n,):
        raise InputError(f"bag targets must have one value per row ({n}), got shape {values.shape}")
    bad = np.flatnonzero(~np.isfinite(values))
    if len(bad):
        raise InputError(f"bag targets must be finite; {len(bad)} are not (first at row {int(bad[0])})")
    return values.astype(np.float32)
