"""Faiss ANN indexes stored beside an embedding table (``<table>/_index/``).

:mod:`embedpipe.index.store` holds the on-disk layout, the staleness rule and the search kernel
(what ``neighbors --method index`` tasks and :meth:`EmbeddingTable.most_similar` run);
:mod:`embedpipe.index.build` builds one (the ``embedpipe index`` job). See docs/table-format.md.
"""
