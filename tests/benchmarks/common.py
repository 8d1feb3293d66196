"""Shared pieces of the benchmarks: corpora, a Spark session, quality scores, a result table."""

from __future__ import annotations

import bz2
import os
import sys
import time
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from embedpipe.evaluate import VectorIndex, evaluate_analogies, evaluate_similarity
from embedpipe.evaluate.datasets import (
    BUILTIN_ANALOGIES,
    BUILTIN_SIMILARITY,
    read_analogy_file,
    read_similarity_file,
    resolve_eval_files,
)

WIKI_FILE = "enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"


def gensim_data_dir() -> Path:
    import gensim

    return Path(gensim.__file__).parent / "test" / "test_data"


def write_wiki_corpus(path: Path) -> int:
    """The Wikipedia excerpt in gensim's test data, WikiCorpus-tokenized, one article per line."""
    from gensim.corpora.wikicorpus import WikiCorpus

    wiki = WikiCorpus(str(gensim_data_dir() / WIKI_FILE), dictionary={}, processes=1)
    tokens = 0
    with path.open("w", encoding="utf-8") as out:
        for words in wiki.get_texts():
            out.write(" ".join(words) + "\n")
            tokens += len(words)
    _ = bz2  # the dump is read by gensim itself
    return tokens


def spark_session(cores: int = 2):
    from pyspark.sql import SparkSession

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    spark = (
        SparkSession.builder.master(f"local[{cores}]")
        .appName("embedpipe-benchmark")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")  # keeps the logs readable
        .config("spark.driver.memory", "8g")
        .config("spark.sql.shuffle.partitions", str(cores * 2))
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    return spark


@dataclass
class Quality:
    wordsim353: float | None
    simlex999: float | None
    analogy: float | None
    analogy_coverage: float | None


def mean_quality(scores: list[Quality]) -> Quality:
    """Each field's mean over runs (None where a run has none)."""

    def mean(values: list[float | None]) -> float | None:
        return None if any(v is None for v in values) else float(np.mean(values))

    return Quality(*(mean([getattr(q, f.name) for q in scores]) for f in fields(Quality)))


def score(
    keys: list[str], vectors: np.ndarray, restrict_vocab: int = 30_000, planted: tuple[Path, Path] | None = None
) -> Quality:
    """WordSim-353 / SimLex-999 Spearman and Google analogy accuracy, keys in frequency order.

    ``planted`` = (similarity file, analogy file) of a generated demo corpus scores against those
    instead (its Spearman goes in the first column; the benchmark's header says so).
    """
    index = VectorIndex.from_arrays(keys, vectors)
    similarity_specs, analogy_specs = ([str(planted[0])], [str(planted[1])]) if planted else (["builtin"], ["builtin"])
    sims, _ = resolve_eval_files(similarity_specs, kind="similarity", builtin_names=BUILTIN_SIMILARITY)
    results = {f.name: evaluate_similarity(index, read_similarity_file(f))["spearman"] for f in sims}
    (analogy_file,), _ = resolve_eval_files(analogy_specs, kind="analogy", builtin_names=BUILTIN_ANALOGIES)
    analogy = evaluate_analogies(index, read_analogy_file(analogy_file), restrict_vocab=restrict_vocab)
    first = next(iter(results.values())) if planted else results.get("wordsim353")
    return Quality(first, None if planted else results.get("simlex999"), analogy["accuracy"], analogy["coverage"])


@dataclass
class Row:
    system: str
    seconds: float
    words_per_second: float
    quality: Quality


def render(rows: list[Row], reference: str, similarity: str = "WS353") -> str:
    """A Markdown table with words/s as a ratio to the reference row."""
    ref = next(r for r in rows if r.system == reference)
    out = [f"| system | train s | raw words/s | ratio vs {reference} | {similarity} | SimLex | analogy (coverage) |",
           "|---|---|---|---|---|---|---|"]
    for r in rows:
        q = r.quality
        out.append(
            f"| {r.system} | {r.seconds:.1f} | {r.words_per_second:,.0f} | "
            f"{r.words_per_second / ref.words_per_second:.2f} | {_f(q.wordsim353)} | {_f(q.simlex999)} | "
            f"{_f(q.analogy)} ({_f(q.analogy_coverage)}) |"
        )
    return "\n".join(out)


def _f(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


class Timer:
    def __enter__(self) -> Timer:
        self.started = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self.started
