"""Joining bags of tokens/items with embedding tables, neighbours and analogies.

* :mod:`embedpipe.lookup.combiners` -- the NumPy/Arrow kernels (one implementation per combiner);
* :mod:`embedpipe.lookup.api` -- :func:`open_table` / :class:`EmbeddingLookup`, no Spark needed;
* :mod:`embedpipe.lookup.embed` -- the ``embed`` Spark job (broadcast and shuffle-join paths);
* :mod:`embedpipe.lookup.neighbors` -- the ``neighbors`` Spark job (blocked exact top-k, analogies).
"""

from embedpipe.lookup.api import EmbeddingLookup, EmbedResult, open_table, read_stop_words
from embedpipe.lookup.combiners import COMBINERS, IDF_SOURCES, OOV_POLICIES

__all__ = [
    "COMBINERS",
    "IDF_SOURCES",
    "OOV_POLICIES",
    "EmbedResult",
    "EmbeddingLookup",
    "open_table",
    "read_stop_words",
]
