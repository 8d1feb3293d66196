"""``embedpipe demo``: the whole pipeline on generated data with planted structure.

Generates a corpus (animals near "vet", countries with their capitals, movies by audience and
style) and a watch log, then tokenizes, trains, writes the tables, evaluates against the planted
analogies, and returns the neighbours that show the structure (the CLI prints them).
"""

from __future__ import annotations

import json
import logging
import os
from typing import TYPE_CHECKING, Any

from embedpipe.jobconfig import DemoConfig, EvaluateConfig, HistoriesConfig, TokenizeConfig, TrainConfig

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logging.getLogger(__name__)

WORD_PROBES = ("france", "paris", "dog", "vet")


def run_demo(spark: SparkSession, config: DemoConfig) -> dict[str, Any]:
    from embedpipe.demo.generator import (
        generate_corpus,
        generate_watch_log,
        write_analogy_file,
        write_similarity_file,
    )
    from embedpipe.evaluate.pipeline import run_evaluate
    from embedpipe.interactions.pipeline import run_histories
    from embedpipe.methods.pipeline import run_train
    from embedpipe.text.pipeline import run_tokenize

    root = os.path.abspath(config.output)
    data = os.path.join(root, "data")
    os.makedirs(data, exist_ok=True)
    corpus = generate_corpus(os.path.join(data, "corpus.txt"), documents=config.documents, seed=config.seed)
    analogies = os.path.join(data, "planted-analogies.txt")
    write_analogy_file(analogies, corpus)
    similarity = os.path.join(data, "planted-similarity.tsv")
    write_similarity_file(similarity, corpus)
    watch_log = generate_watch_log(os.path.join(data, "watch_log.csv"), users=config.users, seed=config.seed)
    log.info("demo data: %d documents, %d tokens, watch log of %d users", corpus.documents, corpus.tokens,
             config.users)

    tokens_dir = os.path.join(root, "tokens")
    histories_dir = os.path.join(root, "histories")
    words_table = os.path.join(root, "tables", "words")
    items_table = os.path.join(root, "tables", "movies")
    run_tokenize(spark, TokenizeConfig(input=str(corpus.path), output=tokens_dir, min_count=5))
    run_histories(spark, HistoriesConfig(input=str(watch_log.path), output=histories_dir,
                                         time_column="timestamp", weight_column=None))
    train_common = {"dim": config.dim, "seed": config.seed, "epochs": config.epochs}
    run_train(spark, TrainConfig(input=tokens_dir, output=words_table, method=config.method, **train_common))
    run_train(spark, TrainConfig(input=histories_dir, output=items_table, method="word2vec", window=10,
                                 min_count=1, **train_common))
    report = run_evaluate(spark, EvaluateConfig(
        table=words_table, output=os.path.join(root, "reports", "words"), analogies=[analogies],
        similarity=[similarity, "builtin"], probes=list(WORD_PROBES), neighbors=5,
    ))
    movie_probes = [watch_log.items[i] for i in _one_item_per_segment(watch_log)]
    movie_report = run_evaluate(spark, EvaluateConfig(
        table=items_table, output=os.path.join(root, "reports", "movies"), similarity=[], analogies=[],
        probes=movie_probes, neighbors=5, lowercase=False,
    ))
    return {
        "output": root,
        "tables": {"words": words_table, "movies": items_table},
        "reports": {"words": os.path.join(root, "reports", "words"), "movies": os.path.join(root, "reports", "movies")},
        "words": report,
        "movies": movie_report,
        "display": _describe(os.path.join(root, "reports", "words"), os.path.join(root, "reports", "movies"),
                             report, watch_log),
    }


def _one_item_per_segment(watch_log: Any) -> list[int]:
    """Index of the most-watched item of each (audience, style) segment, to probe the movie table."""
    seen: dict[tuple[str, str], int] = {}
    for index, segment in enumerate(zip(watch_log.audience, watch_log.style, strict=True)):
        seen.setdefault(segment, index)
    return list(seen.values())


def _neighbours(report_dir: str) -> list[dict[str, Any]]:
    with open(os.path.join(report_dir, "report.json"), encoding="utf-8") as handle:
        return json.load(handle)["neighbours"]["probes"]


def _describe(words_dir: str, movies_dir: str, summary: dict[str, Any], watch_log: Any) -> str:
    """The human-readable lines the CLI prints: neighbours that show the planted structure."""
    axes = zip(watch_log.items, watch_log.audience, watch_log.style, strict=True)
    segment = {item: f"{audience}/{style}" for item, audience, style in axes}
    lines = ["Nearest neighbours in the word table (planted: countries, capitals, animals near 'vet'):"]
    for probe in _neighbours(words_dir):
        lines.append(f"  {probe['key']:>10}: "
                     + ", ".join(f"{n['key']} ({n['cosine']:.2f})" for n in probe["neighbours"]))
    lines.append("Nearest neighbours in the movie table (planted: children/adult x blockbuster/arthouse):")
    for probe in _neighbours(movies_dir):
        lines.append(f"  {probe['key']} [{segment.get(probe['key'])}]: "
                     + ", ".join(f"{n['key']} [{segment.get(n['key'])}]" for n in probe["neighbours"]))
    for name, values in (("planted analogy accuracy", summary["analogy_accuracy"]),
                         ("word-similarity Spearman", summary["similarity_spearman"])):
        for dataset, value in values.items():
            lines.append(f"{name} ({dataset}): {value if value is None else round(value, 3)}")
    return "\n".join(lines)
