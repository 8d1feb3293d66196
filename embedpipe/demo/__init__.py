"""Demo data with planted structure (corpus, watch log, listings) and the ``embedpipe demo`` pipeline.

The generators import only NumPy, so benchmarks and tests can make data without Spark.
"""

from __future__ import annotations

from embedpipe.demo.generator import (
    CorpusInfo,
    ListingsInfo,
    WatchLogInfo,
    generate_corpus,
    generate_listings,
    generate_watch_log,
    items_path_for,
    similarity_pairs,
    write_analogy_file,
    write_similarity_file,
)

__all__ = [
    "CorpusInfo",
    "ListingsInfo",
    "WatchLogInfo",
    "generate_corpus",
    "generate_listings",
    "generate_watch_log",
    "items_path_for",
    "similarity_pairs",
    "write_analogy_file",
    "write_similarity_file",
]
