"""Using embedding tables: the Python API and the Spark jobs that join tables with data.

* :mod:`embedpipe.lookup.api` -- :func:`open_table`, an :class:`~embedpipe.table.EmbeddingTable`
  with key lookups, neighbours, analogies and bag embeddings, no Spark needed;
* :mod:`embedpipe.lookup.embed` -- the ``embed`` Spark job (broadcast and shuffle-join plans);
* :mod:`embedpipe.lookup.neighbors` -- the ``neighbors`` Spark job (blocked exact or LSH top-k, analogies).

The kernels they share live below this package: :mod:`embedpipe.combiners` (bags -> vectors) and
:mod:`embedpipe.vectors` (cosine top-k and analogies, shared with :mod:`embedpipe.evaluate`).
"""

from embedpipe.combiners import COMBINERS, IDF_SOURCES, OOV_POLICIES, EmbedResult
from embedpipe.lookup.api import open_table
from embedpipe.table import EmbeddingTable
from embedpipe.text.tokenizer import read_stop_words

__all__ = [
    "COMBINERS",
    "IDF_SOURCES",
    "OOV_POLICIES",
    "EmbedResult",
    "EmbeddingTable",
    "open_table",
    "read_stop_words",
]
