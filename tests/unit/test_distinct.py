"""sorted_distinct is np.unique by a sort (the hash path of NumPy 2.x is slow on our arrays)."""

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from embedpipe.distinct import sorted_distinct


@given(arrays(np.int64, st.integers(0, 300), elements=st.integers(-50, 50)))
def test_sorted_distinct_equals_numpy_unique(values: np.ndarray) -> None:
    result = sorted_distinct(values)
    np.testing.assert_array_equal(result, np.unique(values))
    assert result.dtype == values.dtype
