"""A warm run's new keys start from the mean parent vectors of the kept keys around them.

Why: a key new today would otherwise start from a small random vector, and one warm epoch at the low
warm step size leaves it nearly untrained (norm 0.10 against 1-2 for trained keys on MovieLens). Its
neighbours are then noise, and tomorrow, when it is a shared key, training moves it far: on a growing
catalogue those half-trained keys took the overlap@10 with the previous day from 0.98 down to 0.65
(docs/decisions.md). Started from the mean of the kept keys within ``window`` positions of it (input
and output vectors alike), a new key lands where its contexts already are, and the warm epoch only
refines it.

One ``mapInArrow`` pass over the run's sequences, no shuffle of the corpus: each task looks its Arrow
batches up in the vocabulary (``pyarrow.compute.index_in``), sums the parent vectors of the kept keys
within the window of every new key's occurrences (NumPy, one array operation per window offset) and
emits one partial sum per new key it saw. The partial sums come to the driver (a few rows per new
key: one per task whose data has it) and are added per key in task order, so reruns give the same
floats. The
vocabulary and the kept keys' parent vectors travel in the task closure, as the warm start's parent
vectors already travel to the training tasks.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from embedpipe import schema

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

_ROW, _PART, _COUNT, _IN, _OUT = "row", "part", "contexts", "w_in", "w_out"


def context_vectors(sentences: DataFrame, keys: pa.Array, kept_rows: np.ndarray, w_in: np.ndarray,
                    w_out: np.ndarray | None, window: int) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """The new keys (rows not in ``kept_rows``) that have a kept key within ``window`` positions, and the
    mean of those kept keys' parent vectors: ``(rows, w_in, w_out)``, rows ascending.

    ``sentences``: ``doc_id``, ``tokens`` (array<string>); tokens outside ``keys`` are dropped before
    windows are formed, as the trainer does. ``w_in``/``w_out``: the parent vectors of ``kept_rows``, in
    that order (``w_out`` None: the parent exported no output vectors, and new keys' output vectors stay
    as in a cold run).
    """
    from pyspark.sql.types import ArrayType, DoubleType, LongType, StructField, StructType

    size, dim = len(keys), int(w_in.shape[1])
    source = np.full(size, -1, dtype=np.int64)
    source[kept_rows] = np.arange(len(kept_rows))
    new_rows = np.flatnonzero(source < 0)
    empty = np.zeros((0, dim), dtype=np.float32)
    if new_rows.size == 0:
        return new_rows, empty, None if w_out is None else empty
    new_index = np.full(size, -1, dtype=np.int64)
    new_index[new_rows] = np.arange(new_rows.size)
    parent_in = np.asarray(w_in, dtype=np.float32)  # summed in float64 below
    parent_out = None if w_out is None else np.asarray(w_out, dtype=np.float32)
    vocabulary = keys.cast(pa.string())
    vector = ArrayType(DoubleType(), containsNull=False)
    out_schema = StructType([StructField(_ROW, LongType(), False), StructField(_PART, LongType(), False),
                             StructField(_COUNT, LongType(), False), StructField(_IN, vector, False),
                             StructField(_OUT, vector, False)])

    def accumulate(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        from pyspark import TaskContext

        sums_in = np.zeros((new_rows.size, dim))
        sums_out = np.zeros((new_rows.size, dim))
        counts = np.zeros(new_rows.size, dtype=np.int64)
        for batch in batches:
            tokens = batch.column(schema.TOKENS)
            ids = pc.index_in(pc.list_flatten(tokens).cast(pa.string()), value_set=vocabulary)
            known = ids.is_valid().to_numpy(zero_copy_only=False)
            lengths = pc.list_value_length(tokens).fill_null(0).to_numpy(zero_copy_only=False)
            docs = np.repeat(np.arange(batch.num_rows), lengths)[known]
            flat = ids.drop_null().to_numpy().astype(np.int64)
            for offset in range(1, window + 1):
                same = docs[:-offset] == docs[offset:]
                for here, there in ((flat[:-offset], flat[offset:]), (flat[offset:], flat[:-offset])):
                    pick = same & (new_index[here] >= 0) & (source[there] >= 0)
                    targets, contexts = new_index[here[pick]], source[there[pick]]
                    np.add.at(sums_in, targets, parent_in[contexts])
                    if parent_out is not None:
                        np.add.at(sums_out, targets, parent_out[contexts])
                    np.add.at(counts, targets, 1)
        seen = np.flatnonzero(counts)
        offsets = pa.array(np.arange(seen.size + 1, dtype=np.int32) * dim)
        part = TaskContext.get().partitionId()
        yield pa.RecordBatch.from_arrays(
            [pa.array(seen.astype(np.int64)), pa.array(np.full(seen.size, part, dtype=np.int64)),
             pa.array(counts[seen]), pa.ListArray.from_arrays(offsets, pa.array(sums_in[seen].ravel())),
             pa.ListArray.from_arrays(offsets, pa.array(sums_out[seen].ravel()))],
            names=[_ROW, _PART, _COUNT, _IN, _OUT],
        )

    partial = sentences.select(schema.TOKENS).mapInArrow(accumulate, out_schema).toArrow()
    # one partial sum per (new key, task that saw it), added in task order: the same floats on every rerun
    order = np.lexsort((partial.column(_PART).to_numpy(), partial.column(_ROW).to_numpy()))
    found, starts = np.unique(partial.column(_ROW).to_numpy()[order], return_index=True)
    if found.size == 0:
        return found, empty, None if w_out is None else empty
    count = np.add.reduceat(partial.column(_COUNT).to_numpy()[order], starts).astype(np.float64)[:, None]

    def means(column: str) -> np.ndarray:
        values = pc.list_flatten(partial.column(column).combine_chunks()).to_numpy(zero_copy_only=False)
        return (np.add.reduceat(values.reshape(-1, dim)[order], starts) / count).astype(np.float32)

    return new_rows[found], means(_IN), None if w_out is None else means(_OUT)
