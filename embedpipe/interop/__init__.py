"""Vectors files in and out: word2vec (text and binary), GloVe and fastText ``.vec``.

``embedpipe export`` streams a table into one of these files (:mod:`embedpipe.interop.export`),
``embedpipe import`` streams one into a table (:mod:`embedpipe.interop.importer`), so tables move to
and from gensim, fastText, Spark NLP and the published pretrained vectors. Neither ever holds the
file or the table as Python lists: both work in Arrow batches of a few thousand rows.
"""

from embedpipe.interop.formats import EXPORT_FORMATS, IMPORT_FORMATS

__all__ = ["EXPORT_FORMATS", "IMPORT_FORMATS"]
