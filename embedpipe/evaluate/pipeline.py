"""``embedpipe evaluate``: embedding table -> report.json, report.md, projection.png.

The table is read into an :class:`~embedpipe.table.EmbeddingTable` on the driver (checked as it
is read: a table breaking the format fails the job with one line and no report): evaluation needs
the vocabulary-sized matrix in memory (see :mod:`embedpipe.vectors` for the size), never the corpus.
Spark reads the table (any URI the cluster reads) and commits the report directory atomically.
Everything up to the rendered files (:func:`build_report`,
:func:`~embedpipe.evaluate.report.render_report`) is Spark-free, so benchmarks and the demo can call
it on an in-memory table.

With ``histories`` (a histories output made with ``--holdout``) the report gains a recommendation
section (:mod:`embedpipe.evaluate.recommend`): that part runs on Spark, since it scores every user,
for the table and each ``compare`` table side by side. For an item table the builtin *word* lists
are then skipped (their English words are no item ids). With ``item_metadata`` the 2-D picture is
the item map of :mod:`embedpipe.evaluate.itemmap` (colour = audience, marker = style).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import tempfile
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from embedpipe.errors import ConfigError, InputError, TableError
from embedpipe.evaluate.analogy import evaluate_analogies
from embedpipe.evaluate.datasets import (
    BUILTIN_ANALOGIES,
    BUILTIN_SIMILARITY,
    AnalogyDataset,
    SimilarityDataset,
    read_analogy_file,
    read_similarity_file,
    resolve_eval_files,
)
from embedpipe.evaluate.projection import pca_2d, projection_summary
from embedpipe.evaluate.report import PROJECTION_PNG, REPORT_MD, render_report
from embedpipe.evaluate.similarity import evaluate_similarity
from embedpipe.jobconfig import EvaluateConfig
from embedpipe.table import EmbeddingTable, read_embedding_table_spark
from embedpipe.vectors import VectorIndex, nearest_neighbours

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logging.getLogger(__name__)

# More labels than this make an unreadable picture (and a slow one).
MAX_PLOT_KEYS = 500
MANIFEST_FIELDS = ("method", "dim", "rows", "source", "key_kind", "seed", "created_at", "embedpipe_version", "params")


@dataclass(frozen=True)
class EvalDatasets:
    """The parsed evaluation files and the warnings met while finding them."""

    similarity: list[SimilarityDataset] = field(default_factory=list)
    analogies: list[AnalogyDataset] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def load_datasets(config: EvaluateConfig) -> EvalDatasets:
    """Find and parse every similarity and analogy file named in the config (no Spark)."""
    similarity_files, similarity_warnings = resolve_eval_files(
        config.similarity, kind="similarity", builtin_names=BUILTIN_SIMILARITY
    )
    analogy_files, analogy_warnings = resolve_eval_files(
        config.analogies, kind="analogy", builtin_names=BUILTIN_ANALOGIES
    )
    similarity = [read_similarity_file(f) for f in similarity_files]
    analogies = [read_analogy_file(f) for f in analogy_files]
    warnings = similarity_warnings + analogy_warnings
    for kind, expected, datasets in (
        ("similarity", "'word1 word2 score'", similarity), ("analogy", "'a b c d'", analogies)
    ):
        warnings += [
            f"{kind} file {d.location}: {d.lines_skipped} lines skipped (not {expected})"
            for d in datasets if d.lines_skipped
        ]
    return EvalDatasets(similarity, analogies, warnings)


def _coverage_rows(similarity: list[dict[str, Any]], analogies: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = [
        {
            "name": s["name"], "kind": "similarity", "file": s["file"],
            "items_total": s["pairs_total"], "items_covered": s["pairs_found"], "oov_rate": s["pair_oov_rate"],
            "words_total": s["words_total"], "words_found": s["words_found"], "word_oov_rate": s["word_oov_rate"],
        }
        for s in similarity
    ]
    rows += [
        {
            "name": a["name"], "kind": "analogy", "file": a["file"],
            "items_total": a["questions_total"], "items_covered": a["questions_answered"],
            "oov_rate": None if a["coverage"] is None else 1.0 - a["coverage"],
            "words_total": a["words_total"], "words_found": a["words_found"], "word_oov_rate": a["word_oov_rate"],
        }
        for a in analogies
    ]
    return rows


def _select_plot_rows(
    index: VectorIndex, config: EvaluateConfig, neighbours: dict[str, Any]
) -> tuple[list[int], list[str], list[int], str]:
    """(rows to plot, plot keys not found, rows to highlight, how they were chosen)."""
    if config.plot_keys:
        wanted = list(dict.fromkeys(config.plot_keys))
        found = index.rows(wanted)
        missing = [key for key, row in zip(wanted, found, strict=True) if row < 0]
        return list(dict.fromkeys(int(r) for r in found if r >= 0)), missing, [], "plot_keys"
    if neighbours["probes"]:
        probe_rows = [index.row(p["key"]) for p in neighbours["probes"]]
        rows = list(probe_rows)
        for p in neighbours["probes"]:
            rows += [index.row(n["key"]) for n in p["neighbours"]]
        return list(dict.fromkeys(rows)), [], probe_rows, "probes and their neighbours"
    top = min(config.plot_top, len(index))
    return list(range(top)), [], [], f"the {top} most frequent keys"


def _projection(index: VectorIndex, config: EvaluateConfig, neighbours: dict[str, Any], method: str) -> dict[str, Any]:
    rows, missing, highlighted, selection = _select_plot_rows(index, config, neighbours)
    result: dict[str, Any] = {"selection": selection, "missing": missing}
    if index.dim < 2:
        result["note"] = f"the table has dim {index.dim}; a 2-D projection needs dim >= 2"
    elif len(rows) < 2:
        result["note"] = f"{len(rows)} of the chosen keys are in the table; a projection needs at least 2"
    if "note" in result:
        log.warning("projection skipped: %s", result["note"])
        return result
    if len(rows) > MAX_PLOT_KEYS:
        log.warning("plotting the first %d of %d keys", MAX_PLOT_KEYS, len(rows))
        result["truncated_from"] = len(rows)
        rows = rows[:MAX_PLOT_KEYS]
    labels = [index.keys[r] for r in rows]
    coords, explained = pca_2d(index.unit[rows])
    summary = projection_summary(labels, np.round(coords, 6), explained)
    result.update(summary)
    plotted = set(rows)
    result["highlighted"] = [index.keys[r] for r in highlighted if r in plotted]
    result["title"] = f"{method} table, dim {index.dim}: {selection}"
    result["file"] = PROJECTION_PNG
    return result


def build_report(
    table: EmbeddingTable,
    config: EvaluateConfig,
    datasets: EvalDatasets | None = None,
) -> dict[str, Any]:
    """Every metric of the report as a JSON-ready dict (Spark-free; the PNG is drawn from it)."""
    if datasets is None:
        datasets = load_datasets(config)
    index = table.index(lowercase=config.lowercase)
    scored, composed_from = index, None
    if config.oov == "subwords":  # unseen evaluation words get composed rows after the table's
        from embedpipe.subwords import extended_index

        words = [w for d in datasets.similarity for pair in d.pairs for w in pair]
        words += [w for d in datasets.analogies for q in d.questions for w in q]
        scored = extended_index(index, words, table.subwords)
        composed_from = len(table)
        log.info("oov = subwords: %d evaluation words composed from n-grams", len(scored) - len(table))
    similarity = [evaluate_similarity(scored, d) for d in datasets.similarity]
    for s in similarity:
        log.info("%s: spearman %s on %d/%d pairs", s["file"], s["spearman"], s["pairs_found"], s["pairs_total"])
    analogies = [evaluate_analogies(scored, d, restrict_vocab=config.restrict_vocab, composed_from=composed_from)
                 for d in datasets.analogies]
    neighbours = nearest_neighbours(index, config.probes, k=config.neighbors)
    if neighbours["oov"]:
        log.warning("probes not in the table: %s", ", ".join(neighbours["oov"]))
    manifest = table.manifest
    norms = np.linalg.norm(table.vectors, axis=1)
    return {
        "table": {"path": config.table, **{k: manifest.get(k) for k in MANIFEST_FIELDS}},
        "table_stats": {
            "rows": len(table),
            "dim": table.dim,
            "total_count": int(np.sum(table.counts)),
            "mean_norm": float(norms.mean()),
            "zero_vectors": int(np.count_nonzero(norms == 0)),
        },
        "settings": {
            "lowercase": config.lowercase,
            "oov": config.oov,
            "restrict_vocab": config.restrict_vocab,
            "neighbors": config.neighbors,
            "similarity": list(config.similarity),
            "analogies": list(config.analogies),
        },
        "similarity": similarity,
        "analogies": analogies,
        "coverage": _coverage_rows(similarity, analogies),
        "neighbours": neighbours,
        "projection": _projection(index, config, neighbours, str(manifest.get("method"))),
        "warnings": list(datasets.warnings),
    }


def summarize(report: dict[str, Any], output: str) -> dict[str, Any]:
    """The headline numbers the CLI logs and the demo prints."""
    return {
        "output": output,
        "rows": report["table_stats"]["rows"],
        "dim": report["table_stats"]["dim"],
        "similarity_spearman": {s["name"]: s["spearman"] for s in report["similarity"]},
        "analogy_accuracy": {a["name"]: a["accuracy"] for a in report["analogies"]},
        "analogy_coverage": {a["name"]: a["coverage"] for a in report["analogies"]},
        "probes_found": len(report["neighbours"]["probes"]),
        "probes_oov": report["neighbours"]["oov"],
        "projection": bool(report["projection"].get("file")),
        "warnings": len(report["warnings"]),
    }


def _check_output_path(spark: SparkSession, config: EvaluateConfig) -> None:
    """Refuse an output that would replace the table, a compared table or the histories (or hold them)."""
    from embedpipe.storage import HadoopFS

    fs = HadoopFS(spark)
    output = fs.qualify(config.output).rstrip("/")
    inputs = [("table", config.table)] + [("compare", c) for c in config.compare]
    if config.candidate_table:
        inputs.append(("candidate_table", config.candidate_table))
    if config.histories:
        inputs.append(("histories", config.histories))
    for key, path in inputs:
        qualified = fs.qualify(path).rstrip("/")
        if output == qualified or output.startswith(qualified + "/") or qualified.startswith(output + "/"):
            what = "the table directory" if key == "table" else f"a {key} directory"
            raise ConfigError(
                f"config key 'output' ({config.output}) must not be {what}, inside it or above it ({path})"
            )


def _word_lists_for(spark: SparkSession, config: EvaluateConfig) -> tuple[EvaluateConfig, list[str]]:
    """With histories and an item table, drop the builtin word lists (English words are no item ids)."""
    from embedpipe.table import read_manifest_spark

    if not config.histories:
        return config, []
    try:
        key_kind = read_manifest_spark(spark, config.table).get("key_kind")
    except (InputError, TableError, OSError, ValueError):
        return config, []  # reading the table reports it properly
    if key_kind != "item" or ("builtin" not in config.similarity and "builtin" not in config.analogies):
        return config, []
    trimmed = dataclasses.replace(
        config,
        similarity=[f for f in config.similarity if f != "builtin"],
        analogies=[f for f in config.analogies if f != "builtin"],
    )
    return trimmed, ["builtin word similarity/analogy lists skipped: the table's keys are items"]


def _recommendation_section(spark: SparkSession, table: EmbeddingTable, config: EvaluateConfig,
                            histories_report: dict[str, Any], compared: list[EmbeddingTable]) -> dict[str, Any]:
    from embedpipe.evaluate.recommend import evaluate_recommendations

    ks = sorted(set(config.k_values))
    # candidate_table (two towers) pairs with 'table' only; compared tables score their own vectors.
    candidates = read_embedding_table_spark(spark, config.candidate_table) if config.candidate_table else None
    entries = [
        evaluate_recommendations(spark, t, path, config.histories, score=config.score, ks=ks,
                                 block_rows=config.block_rows, candidates=candidates if i == 0 else None,
                                 candidates_path=config.candidate_table)
        for i, (t, path) in enumerate(zip([table, *compared], [config.table, *config.compare], strict=True))
    ]
    return {
        "histories": config.histories,
        "holdout": histories_report.get("holdout"),
        "k_values": ks,
        "score": config.score,
        "tables": entries,
    }


def run_evaluate(spark: SparkSession, config: EvaluateConfig) -> dict[str, Any]:
    """Evaluate ``config.table`` and atomically write the report directory ``config.output``."""
    from embedpipe.evaluate.itemmap import item_projection, read_item_metadata
    from embedpipe.storage import HadoopFS, atomic_output

    config.validate()  # also when called directly, not through the CLI
    _check_output_path(spark, config)
    histories_report = None
    if config.histories:
        from embedpipe.evaluate.recommend import read_histories_report

        histories_report = read_histories_report(spark, config.histories)
    metadata = read_item_metadata(config.item_metadata) if config.item_metadata else None
    config, skipped = _word_lists_for(spark, config)
    datasets = load_datasets(config)  # cheap: fail on a bad file before reading the table
    datasets = dataclasses.replace(datasets, warnings=datasets.warnings + skipped)
    table = read_embedding_table_spark(spark, config.table)
    if config.oov == "subwords":
        from embedpipe.composed import attach_subword_vectors_spark

        attach_subword_vectors_spark(spark, table, config.table)
    compared = [read_embedding_table_spark(spark, path) for path in config.compare]
    report = build_report(table, config, datasets)
    if histories_report is not None:
        report["recommendation"] = _recommendation_section(spark, table, config, histories_report, compared)
    if metadata is not None:
        report["item_map"] = item_projection(table, metadata, config.item_metadata)
        if "note" not in report["item_map"]:
            report["projection"] = {
                "selection": report["projection"].get("selection"), "missing": [],
                "note": "the 2-D picture is the item map below (item_metadata)",
            }
            report["item_map"]["file"] = PROJECTION_PNG
    fs = HadoopFS(spark)
    with tempfile.TemporaryDirectory(prefix="embedpipe-evaluate-") as local:
        names = render_report(report, local)
        names += _render_extra_sections(report, local)
        with atomic_output(spark, config.output, inputs=_inputs_of(config)) as staging:
            fs.mkdirs(staging)
            for name in names:
                fs.copy_from_local(os.path.join(local, name), f"{staging}/{name}")
    log.info("wrote evaluation report (%s) to %s", ", ".join(names), config.output)
    summary = summarize(report, config.output)
    summary["projection"] = summary["projection"] or bool(report.get("item_map", {}).get("file"))
    if "recommendation" in report:
        summary["recommendation"] = {
            entry["table"]: {name: entry["metrics"].get(name) for name in ("recall@20", "ndcg@20", "hr@20")}
            for entry in report["recommendation"]["tables"]
        }
    return summary


def _render_extra_sections(report: dict[str, Any], directory: str) -> list[str]:
    """Append the recommendation and item-map sections to report.md and draw the item map; new file names."""
    from embedpipe.evaluate.itemmap import plot_item_map, render_item_map_markdown
    from embedpipe.evaluate.recommend import render_recommendation_markdown

    extra, names = [], []
    if "recommendation" in report:
        extra.append(render_recommendation_markdown(report["recommendation"]))
    item_map = report.get("item_map")
    if item_map is not None:
        extra.append(render_item_map_markdown(item_map, PROJECTION_PNG))
        if "note" not in item_map:
            method = report["table"].get("method")
            plot_item_map(item_map, os.path.join(directory, PROJECTION_PNG),
                          title=f"{method} table, dim {report['table_stats']['dim']}: items by audience and style")
            names.append(PROJECTION_PNG)
    if extra:
        with open(os.path.join(directory, REPORT_MD), "a", encoding="utf-8") as handle:
            handle.write("\n" + "\n".join(extra))
    return names


def _inputs_of(config: EvaluateConfig) -> tuple[str, ...]:
    """Every path the evaluation reads: the report may never replace one of them."""
    return tuple(p for p in (config.table, config.histories, *config.compare) if p)
