"""Evaluating embedding tables: word similarity, analogies, coverage, neighbours and a 2-D plot.

The metric functions are pure NumPy and take a :class:`VectorIndex` (built from an
:class:`~embedpipe.table.EmbeddingTable` or from keys + a matrix), so benchmarks, the demo and a
lookup API can use them without Spark; :func:`embedpipe.evaluate.pipeline.run_evaluate` is the job.

>>> from embedpipe.table import read_embedding_table
>>> index = VectorIndex.from_table(read_embedding_table("out/table"))   # doctest: +SKIP
>>> nearest_neighbours(index, ["king"], k=5)                            # doctest: +SKIP
"""

from embedpipe.evaluate.analogy import evaluate_analogies, solve_analogies
from embedpipe.evaluate.datasets import (
    AnalogyDataset,
    SimilarityDataset,
    parse_analogy_text,
    parse_similarity_text,
)
from embedpipe.evaluate.neighbours import nearest_neighbours, top_k_neighbours
from embedpipe.evaluate.projection import pca_2d
from embedpipe.evaluate.similarity import evaluate_similarity, pearson, rank_average, spearman
from embedpipe.evaluate.vectors import VectorIndex, unit_normalise

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
