"""Rendering the evaluation report: report.json (every number), report.md (for people), projection.png.

The report holds no timestamps or absolute paths of builtin files, so evaluating the same table
twice gives byte-identical JSON and Markdown; when the table was made is in its manifest summary.
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np

from embedpipe.evaluate.projection import plot_projection

REPORT_JSON = "report.json"
REPORT_MD = "report.md"
PROJECTION_PNG = "projection.png"


def _num(value: float | None, digits: int = 4) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def _cell(text: Any) -> str:
    """Markdown table cell text: pipes escaped, no line breaks."""
    return " ".join(str(text).split()).replace("|", "\\|")


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return lines + [""]


def render_markdown(report: dict[str, Any]) -> str:
    """A readable Markdown version of ``report`` (the dict written as report.json)."""
    table = report["table"]
    out = [f"# Embedding evaluation: {_cell(table['path'])}", ""]
    out += _table(
        ["method", "dim", "rows", "key kind", "source", "seed", "created"],
        [[table.get("method"), table.get("dim"), table.get("rows"), table.get("key_kind"),
          table.get("source"), table.get("seed"), table.get("created_at")]],
    )
    stats = report["table_stats"]
    out += [
        f"Total count {stats['total_count']:,}; mean vector norm {_num(stats['mean_norm'])}; "
        f"{stats['zero_vectors']} all-zero vectors. Evaluation words lowercased: "
        f"{'yes' if report['settings']['lowercase'] else 'no'}.",
        "",
    ]

    out += ["## Word similarity", ""]
    if report["similarity"]:
        out += ["Spearman's rho between cosine similarity and human scores, on pairs with both words in the table.",
                ""]
        out += _table(
            ["file", "pairs found / total", "pair OOV", "Spearman rho", "Pearson r"],
            [[s["name"], f"{s['pairs_found']} / {s['pairs_total']}", _pct(s["pair_oov_rate"]),
              _num(s["spearman"]), _num(s["pearson"])] for s in report["similarity"]],
        )
    else:
        out += ["No similarity files were evaluated.", ""]

    out += ["## Analogies", ""]
    if report["analogies"]:
        restrict = report["settings"]["restrict_vocab"]
        out += [f"3CosAdd on unit vectors; candidates and questions limited to the {restrict:,} most frequent keys; "
                "accuracy is over answered questions.", ""]
        out += _table(
            ["file", "answered / total", "coverage", "correct", "accuracy", "semantic", "syntactic"],
            [[a["name"], f"{a['questions_answered']} / {a['questions_total']}", _pct(a["coverage"]), a["correct"],
              _pct(a["accuracy"]), _pct(a["semantic"]["accuracy"]) if "semantic" in a else "",
              _pct(a["syntactic"]["accuracy"]) if "syntactic" in a else ""] for a in report["analogies"]],
        )
        for a in report["analogies"]:
            out += [f"### Sections of {_cell(a['name'])}", ""]
            out += _table(
                ["section", "answered / total", "correct", "accuracy"],
                [[s["section"], f"{s['questions_answered']} / {s['questions_total']}", s["correct"],
                  _pct(s["accuracy"])] for s in a["sections"]],
            )
    else:
        out += ["No analogy files were evaluated.", ""]

    out += ["## Coverage", ""]
    if report["coverage"]:
        out += _table(
            ["file", "kind", "items covered / total", "item OOV", "words found / total", "word OOV"],
            [[c["name"], c["kind"], f"{c['items_covered']} / {c['items_total']}", _pct(c["oov_rate"]),
              f"{c['words_found']} / {c['words_total']}", _pct(c["word_oov_rate"])] for c in report["coverage"]],
        )
    else:
        out += ["No evaluation files.", ""]

    neighbours = report["neighbours"]
    out += [f"## Nearest neighbours (cosine, top {neighbours['k']})", ""]
    if neighbours["probes"]:
        out += _table(
            ["probe", "neighbours"],
            [[p["key"], ", ".join(f"{n['key']} ({n['cosine']:.3f})" for n in p["neighbours"])]
             for p in neighbours["probes"]],
        )
    elif not neighbours["oov"]:
        out += ["No probes given (--probes).", ""]
    if neighbours["oov"]:
        out += [f"Probes not in the table: {', '.join(_cell(p) for p in neighbours['oov'])}", ""]

    projection = report["projection"]
    out += ["## 2-D projection", ""]
    if projection.get("file"):
        ratios = projection["explained_variance"]
        out += [f"PCA of the unit vectors of {len(projection['keys'])} keys ({projection['selection']}); "
                f"the two axes explain {_pct(ratios[0])} and {_pct(ratios[1])} of their variance.", "",
                f"![2-D projection]({projection['file']})", ""]
    else:
        out += [f"Skipped: {projection['note']}", ""]
    if projection.get("missing"):
        out += [f"Plot keys not in the table: {', '.join(_cell(k) for k in projection['missing'])}", ""]

    if report["warnings"]:
        out += ["## Warnings", ""] + [f"- {_cell(w)}" for w in report["warnings"]] + [""]
    return "\n".join(out)


def render_report(report: dict[str, Any], directory: str) -> list[str]:
    """Write report.json, report.md and (unless skipped) projection.png into a local directory.

    Returns the file names written.
    """
    names = []
    projection = report["projection"]
    if projection.get("file"):
        highlighted = set(projection["highlighted"])
        plot_projection(
            projection["keys"],
            np.asarray(projection["coordinates"], dtype=np.float64).reshape(-1, 2),
            os.path.join(directory, PROJECTION_PNG),
            title=projection["title"],
            explained=projection["explained_variance"],
            highlight=[key in highlighted for key in projection["keys"]],
        )
        names.append(PROJECTION_PNG)
    with open(os.path.join(directory, REPORT_JSON), "w", encoding="utf-8") as handle:
        json.dump(report, handle, indent=2, ensure_ascii=False, allow_nan=False)
        handle.write("\n")
    with open(os.path.join(directory, REPORT_MD), "w", encoding="utf-8") as handle:
        handle.write(render_markdown(report))
    return [REPORT_JSON, REPORT_MD, *names]
