"""Evaluating embedding tables: word similarity, analogies, coverage, neighbours and a 2-D plot.

The metric functions are pure NumPy and take a :class:`~embedpipe.vectors.VectorIndex` -- the
cached unit-norm index of an :class:`~embedpipe.table.EmbeddingTable` (``table.index(lowercase=...)``)
or one built from keys + a matrix -- so benchmarks, the demo and the lookup API use them without
Spark; :func:`embedpipe.evaluate.pipeline.run_evaluate` is the job. The cosine kernels themselves
(top-k neighbours, 3CosAdd) live in :mod:`embedpipe.vectors`, below both this package and
:mod:`embedpipe.lookup`.

>>> from embedpipe.table import read_embedding_table
>>> index = read_embedding_table("out/table").index(lowercase=True)    # doctest: +SKIP
>>> nearest_neighbours(index, ["king"], k=5)                            # doctest: +SKIP
"""

from embedpipe.evaluate.analogy import evaluate_analogies
from embedpipe.evaluate.datasets import (
    AnalogyDataset,
    SimilarityDataset,
    parse_analogy_text,
    parse_similarity_text,
)
from embedpipe.evaluate.projection import pca_2d
from embedpipe.evaluate.similarity import evaluate_similarity, pearson, rank_average, spearman
from embedpipe.vectors import VectorIndex, nearest_neighbours, solve_analogies, top_k_neighbours, unit_normalise

__all__ = [
    "AnalogyDataset",
    "SimilarityDataset",
    "VectorIndex",
    "evaluate_analogies",
    "evaluate_similarity",
    "nearest_neighbours",
    "parse_analogy_text",
    "parse_similarity_text",
    "pca_2d",
    "pearson",
    "rank_average",
    "solve_analogies",
    "spearman",
    "top_k_neighbours",
    "unit_normalise",
]
