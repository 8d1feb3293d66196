"""Distinct values of an integer array by one sort.

NumPy 2.x's ``np.unique`` without ``return_*`` flags takes a hash-based path that is 20-80x slower
than sorting on the arrays this project hands it (a table's ids, a batch's (row, token) pairs, which
arrive nearly sorted): 0.78 s against 0.01 s for a million ids. Sorting and keeping each run's first
value gives the same sorted result on every NumPy version.
"""

from __future__ import annotations

import numpy as np


def sorted_distinct(values: np.ndarray) -> np.ndarray:
    """The distinct values of a 1-D array, ascending (what ``np.unique(values)`` returns)."""
    ordered = np.sort(values)
    if ordered.size == 0:
        return ordered
    first = np.empty(ordered.size, dtype=bool)
    first[0] = True
    np.not_equal(ordered[1:], ordered[:-1], out=first[1:])
    return ordered[first]
