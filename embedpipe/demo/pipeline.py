"""``embedpipe demo``: the whole pipeline on generated data with planted structure.

Generates a corpus (animals near "vet", countries with their capitals, movies by audience and
style) and a watch log, then tokenizes, trains the words with embedpipe's own SGNS and the movies
with the recommendation method that scored best on such a log, evaluates the words against the
planted analogy and similarity files, draws the seed's pictures (movies by segment, countries ->
capitals) and returns the neighbours and numbers that show the structure (the CLI prints them).

Only the demo's own evaluation files are used: the builtin WordSim/SimLex/Google lists share almost
no words with the generated vocabulary, so their scores would say nothing about the tables.
"""

from __future__ import annotations

import json
import logging
import os
from typing import TYPE_CHECKING, Any

import numpy as np

from embedpipe.jobconfig import DemoConfig, EvaluateConfig, HistoriesConfig, TokenizeConfig, TrainConfig

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from embedpipe.demo.generator import CorpusInfo, WatchLogInfo
    from embedpipe.table import EmbeddingTable

log = logging.getLogger(__name__)

WORD_PROBES = ("france", "paris", "dog", "vet")
NEIGHBOURS = 5
#: Tokens seen fewer times are dropped before training. The corpus's background tail is thousands of
#: invented words seen 5-19 times in 20,000 documents; at the usual 5 their few, noisy updates put
#: them among anyone's nearest neighbours ("vet" came out near "fiti, rolo, nepi"); at 20 the
#: planted words keep their neighbours (measured: "vet" 4-5 animals of 5 over seeds 1, 2, 7).
TOKEN_MIN_COUNT = 20
#: The movie table's method: the best Recall@20 on the demo's watch log (2,000 users, seed 7, dim 50, 5 random
#: items per user held out; `python tests/benchmarks/bench_recommend.py --users 2000 --seed 7 --dim 50
#: --skip-udata`, 2026-12-02, each method at its defaults): softmax 0.3333 (two towers), ALS 0.3266,
#: item2vec 0.3253 (two towers), popularity 0.2187. The softmax's input vectors also group the movies
#: best: all 5 nearest neighbours of every one of the 400 movies share its segment (item2vec 99.9%, ALS
#: 98.6%, whose most popular movies' neighbours are other popular movies: 1-2 of 5 in the segment).
MOVIE_METHOD = "softmax"
#: The movie probes skip the catalogue's most popular movies (numbered by popularity): on the long-tailed log
#: these chart toppers are watched by 30-80% of the users, so they co-occur with everything and any model's
#: neighbours of them are other chart toppers from every segment. Measured on the 1,200-user log (softmax
#: trainer core, seeds 7, 1, 2; own-segment neighbours of 20): the 4 global top movies 13/15/17 untied and
#: 10/9/11 tied; these probes 20/19/20 untied and 20/19/18 tied; all 400 movies' neighbours share their
#: segment 98-99% either way (tied 99.0-99.4%).
HEAD_MOVIES = 10
MOVIES_PNG = "projection.png"  # the movie report's item map (evaluate draws it with item_metadata)
CAPITALS_PNG = "countries_capitals.png"


def train_demo_tables(spark: SparkSession, config: DemoConfig, *, tokens: str, histories: str, words: str,
                      movies: str) -> None:
    """The demo's two train calls, the one place that knows their settings.

    Words: SGNS at its own defaults (window 5, 5 epochs, step size 0.05). Movies: MOVIE_METHOD at
    its defaults (softmax: about 1,000 optimiser steps, 20 target items per user, dropout 0.3).
    """
    from embedpipe.methods.pipeline import run_train

    run_train(spark, TrainConfig(input=tokens, output=words, method="sgns", dim=config.dim, seed=config.seed))
    run_train(spark, TrainConfig(input=histories, output=movies, method=MOVIE_METHOD, dim=config.dim,
                                 seed=config.seed))


def run_demo(spark: SparkSession, config: DemoConfig) -> dict[str, Any]:
    """Generate, tokenize, train, evaluate and draw into ``config.output``; return the summary and lines to print."""
    from embedpipe.demo.generator import (
        generate_corpus,
        generate_watch_log,
        write_analogy_file,
        write_similarity_file,
    )
    from embedpipe.evaluate.pipeline import run_evaluate
    from embedpipe.interactions.pipeline import run_histories
    from embedpipe.table import read_embedding_table
    from embedpipe.text.pipeline import run_tokenize

    root = os.path.abspath(config.output)
    data = os.path.join(root, "data")
    reports = os.path.join(root, "reports")
    os.makedirs(data, exist_ok=True)
    corpus = generate_corpus(os.path.join(data, "corpus.txt"), documents=config.documents, seed=config.seed)
    analogies = write_analogy_file(os.path.join(data, "planted-analogies.txt"), corpus)
    similarity = write_similarity_file(os.path.join(data, "planted-similarity.tsv"), corpus)
    watch_log = generate_watch_log(os.path.join(data, "watch_log.csv"), users=config.users, seed=config.seed)
    log.info("demo data: %d documents, %d tokens, watch log of %d users", corpus.documents, corpus.tokens,
             config.users)

    tokens_dir = os.path.join(root, "tokens")
    histories_dir = os.path.join(root, "histories")
    words_table = os.path.join(root, "tables", "words")
    movies_table = os.path.join(root, "tables", "movies")
    run_tokenize(spark, TokenizeConfig(input=str(corpus.path), output=tokens_dir, min_count=TOKEN_MIN_COUNT))
    run_histories(spark, HistoriesConfig(input=str(watch_log.path), output=histories_dir,
                                         time_column="timestamp", weight_column=None))
    train_demo_tables(spark, config, tokens=tokens_dir, histories=histories_dir, words=words_table,
                      movies=movies_table)

    words_reports, movies_reports = os.path.join(reports, "words"), os.path.join(reports, "movies")
    run_evaluate(spark, EvaluateConfig(
        table=words_table, output=words_reports, analogies=[str(analogies)], similarity=[str(similarity)],
        probes=list(WORD_PROBES), neighbors=NEIGHBOURS,
    ))
    movie_probes = [watch_log.items[i] for i in _one_item_per_segment(watch_log)]
    run_evaluate(spark, EvaluateConfig(
        table=movies_table, output=movies_reports, similarity=[], analogies=[], probes=movie_probes,
        neighbors=NEIGHBOURS, lowercase=False, item_metadata=str(watch_log.items_path),
    ))

    words = read_embedding_table(words_table)
    capitals_png = os.path.join(reports, CAPITALS_PNG)
    draw_countries_capitals(words, corpus, capitals_png)
    words_report, movies_report = _report(words_reports), _report(movies_reports)
    structure = {
        "words": word_structure(words, corpus),
        "movies": movie_structure(movies_report, watch_log),
    }
    pictures = {"movies": os.path.join(movies_reports, MOVIES_PNG), "countries_capitals": capitals_png}
    return {
        "output": root,
        "tables": {"words": words_table, "movies": movies_table},
        "reports": {"words": words_reports, "movies": movies_reports},
        "pictures": pictures,
        "structure": structure,
        "display": _describe(words_report, movies_report, structure, watch_log, pictures),
    }


def _report(directory: str) -> dict[str, Any]:
    with open(os.path.join(directory, "report.json"), encoding="utf-8") as handle:
        return json.load(handle)


def _one_item_per_segment(watch_log: WatchLogInfo) -> list[int]:
    """Index of the most popular item of each (audience, style) segment outside the HEAD_MOVIES, to probe the
    movie table."""
    seen: dict[tuple[str, str], int] = {}
    for index, segment in enumerate(zip(watch_log.audience, watch_log.style, strict=True)):
        if index >= HEAD_MOVIES:
            seen.setdefault(segment, index)
    return list(seen.values())


def _segments(watch_log: WatchLogInfo) -> dict[str, str]:
    axes = zip(watch_log.items, watch_log.audience, watch_log.style, strict=True)
    return {item: f"{audience}/{style}" for item, audience, style in axes}


def _country_capital_pairs(table: EmbeddingTable, corpus: CorpusInfo) -> list[tuple[str, str]]:
    return [(country, capital) for country, capital in corpus.capitals.items()
            if country in table and capital in table]


def draw_countries_capitals(table: EmbeddingTable, corpus: CorpusInfo, path: str) -> None:
    """The seed's picture: 2-D PCA of the country and capital vectors, an arrow from each country to its capital.

    Written to a temporary name and renamed, so a rerun never leaves half a PNG.
    """
    from embedpipe.evaluate.projection import pca_2d, plot_pair_arrows

    pairs = _country_capital_pairs(table, corpus)
    if len(pairs) < 2:
        log.warning("countries -> capitals picture skipped: %d pairs in the table", len(pairs))
        return
    keys = [country for country, _ in pairs] + [capital for _, capital in pairs]
    coords, explained = pca_2d(table.unit[table.rows(keys)])
    partial = f"{path}.partial.png"
    plot_pair_arrows(pairs, coords, partial, explained=explained, roles=("country", "capital"),
                     title=f"Countries -> capitals, 2-D PCA of {table.manifest.get('method')} word vectors")
    os.replace(partial, path)


def word_structure(table: EmbeddingTable, corpus: CorpusInfo, k: int = NEIGHBOURS) -> dict[str, Any]:
    """How much of the planted word structure the table shows, as counts a reader can check."""
    animals = set(corpus.animals)
    countries = [c for c in corpus.capitals if c in table]
    result: dict[str, Any] = {"k": k}
    if "vet" in table:
        result["vet_animals"] = sum(key in animals for key, _ in table.most_similar("vet", k))
    if countries:
        near = [key for country in countries for key, _ in table.most_similar(country, k)]
        result["country_neighbours_countries"] = sum(key in corpus.capitals for key in near)
        result["country_neighbours"] = len(countries) * k
    pairs = _country_capital_pairs(table, corpus)
    if len(pairs) >= 2:
        unit = table.unit
        cosine = unit[table.rows([c for c, _ in pairs])] @ unit[table.rows([c for _, c in pairs])].T
        result["own_capital_nearest"] = int(np.sum(np.argmax(cosine, axis=1) == np.arange(len(pairs))))
        result["countries"] = len(pairs)
    return result


def movie_structure(report: dict[str, Any], watch_log: WatchLogInfo) -> dict[str, Any]:
    """Neighbours of the movie probes that share the probe's planted segment."""
    segment = _segments(watch_log)
    probes = report["neighbours"]["probes"]
    own = sum(segment.get(n["key"]) == segment.get(p["key"]) for p in probes for n in p["neighbours"])
    return {"own_segment": int(own), "neighbours": sum(len(p["neighbours"]) for p in probes)}


def _describe(words: dict[str, Any], movies: dict[str, Any], structure: dict[str, Any], watch_log: WatchLogInfo,
              pictures: dict[str, str]) -> str:
    """The human-readable lines the CLI prints: neighbours and numbers that show the planted structure."""
    segment = _segments(watch_log)
    word = structure["words"]
    lines = [f"Word table (sgns, dim {words['table_stats']['dim']}, {words['table_stats']['rows']:,} words): "
             "nearest neighbours (planted: countries, capitals, animals near 'vet')"]
    for probe in words["neighbours"]["probes"]:
        lines.append(f"  {probe['key']:>10}: "
                     + ", ".join(f"{n['key']} ({n['cosine']:.2f})" for n in probe["neighbours"]))
    if "vet_animals" in word:
        lines.append(f"  'vet': {word['vet_animals']} of its {word['k']} nearest neighbours are animals")
    if "country_neighbours" in word:
        lines.append(f"  countries: {word['country_neighbours_countries']} of their {word['country_neighbours']} "
                     "nearest neighbours are countries")
    if "own_capital_nearest" in word:
        lines.append(f"  capitals: for {word['own_capital_nearest']} of {word['countries']} countries the nearest "
                     "capital is its own")
    for analogy in words["analogies"]:
        if analogy["accuracy"] is not None:
            sections = ", ".join(f"{s['section']} {s['accuracy']:.3f}" for s in analogy["sections"]
                                 if s["accuracy"] is not None)
            lines.append(f"  planted analogies: accuracy {analogy['accuracy']:.3f} on {analogy['questions_answered']:,}"
                         f" of {analogy['questions_total']:,} questions ({sections})")
    for pairs in words["similarity"]:
        if pairs["spearman"] is not None:
            lines.append(f"  planted word pairs: Spearman {pairs['spearman']:.3f} on {pairs['pairs_found']} of "
                         f"{pairs['pairs_total']} pairs")
    lines.append(f"Movie table ({movies['table'].get('method')}, the best Recall@20 on a demo log's holdout), "
                 "nearest neighbours [segment] (planted: children/adult x blockbuster/arthouse)")
    for probe in movies["neighbours"]["probes"]:
        lines.append(f"  {probe['key']} [{segment.get(probe['key'])}]: "
                     + ", ".join(f"{n['key']} [{segment.get(n['key'])}]" for n in probe["neighbours"]))
    movie = structure["movies"]
    lines.append(f"  {movie['own_segment']} of {movie['neighbours']} neighbours are in their probe's segment")
    lines.append("Pictures:")
    lines.append(f"  movies by segment: {pictures['movies']}")
    if os.path.exists(pictures["countries_capitals"]):
        lines.append(f"  countries -> capitals: {pictures['countries_capitals']}")
    return "\n".join(lines)
