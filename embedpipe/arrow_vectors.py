"""Dense matrices <-> Arrow ``list<float>`` columns: the one conversion every table writer and reader uses.

Embedding tables store each vector as ``array<float>`` (Arrow ``list<float32>``). Building that column
from a (rows, dim) matrix is done column-wise here, with no per-row Python, and so is the way back.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa


def matrix_to_list_array(matrix: np.ndarray, *, null_rows: np.ndarray | None = None) -> pa.ListArray:
    """A (rows, dim) matrix as an Arrow ``list<float32>`` array, one list of ``dim`` values per row.

    ``null_rows`` (bool, one per row) makes those rows NULL lists (e.g. a row with nothing to embed).
    """
    matrix = np.asarray(matrix)
    if matrix.ndim != 2:
        raise ValueError(f"expected a 2-D matrix, got shape {matrix.shape}")
    rows, dim = matrix.shape
    flat = pa.array(np.ascontiguousarray(matrix, dtype=np.float32).reshape(-1), type=pa.float32())
    offsets = pa.array(np.arange(0, rows * dim + 1, dim, dtype=np.int32) if dim else np.zeros(rows + 1, np.int32))
    if null_rows is None:
        return pa.ListArray.from_arrays(offsets, flat)
    return pa.ListArray.from_arrays(offsets, flat, mask=pa.array(np.asarray(null_rows, dtype=bool)))


def list_array_to_matrix(lists: pa.Array | pa.ChunkedArray, dim: int) -> np.ndarray:
    """The (rows, dim) float32 matrix of a ``list<float>`` column whose every list holds ``dim`` values.

    Raises ValueError when a list is NULL or has another length (the caller turns it into its own
    one-line error naming the table).
    """
    if isinstance(lists, pa.ChunkedArray):
        lists = lists.combine_chunks()
    if lists.null_count:
        raise ValueError("a vector is NULL")
    offsets = lists.offsets.to_numpy().astype(np.int64)
    lengths = np.diff(offsets)
    if lengths.size and (lengths != dim).any():
        bad = int(np.flatnonzero(lengths != dim)[0])
        raise ValueError(f"vector {bad} has {int(lengths[bad])} values, expected {dim}")
    start = int(offsets[0]) if offsets.size else 0
    values = lists.values.slice(start, len(lists) * dim).to_numpy(zero_copy_only=False)
    return np.asarray(values, dtype=np.float32).reshape(len(lists), dim)
