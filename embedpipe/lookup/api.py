"""The Spark-free Python API: open a table for lookups, neighbours, analogies and bag embeddings.

>>> from embedpipe.lookup import open_table
>>> table = open_table("out/demo/tables/words")                       # doctest: +SKIP
>>> table.vector("paris").shape                                         # doctest: +SKIP
(50,)
>>> table.most_similar("paris", k=3)                                    # doctest: +SKIP
[('berlin', 0.91), ('rome', 0.89), ('madrid', 0.88)]
>>> table.embed(["the", "cat", "sat", "cat"], combiner="mean")          # doctest: +SKIP

:func:`open_table` gives an :class:`~embedpipe.table.EmbeddingTable`, the one type every job reads
tables into; its bag embeddings run :mod:`embedpipe.combiners`, the very kernels the Spark ``embed``
job runs on each Arrow batch, so a vector computed here equals the job's.
"""

from __future__ import annotations

from embedpipe.table import EmbeddingTable, read_embedding_table


def open_table(path: str) -> EmbeddingTable:
    """Open an embedding table directory (pyarrow + NumPy, local files memory-mapped, no Spark).

    The table is checked as it is read: a missing directory or manifest is a one-line InputError,
    rows that break the format (NaN/Inf, a vector whose length is not the manifest's dim, NULL or
    duplicate keys, a row count other than the manifest's) a one-line TableError naming the table.
    """
    return read_embedding_table(path)
