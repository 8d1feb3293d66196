"""Analogy accuracy (3CosAdd): ``a : b :: c : ?`` is answered by argmax cos(x, b - a + c).

Follows gensim's ``evaluate_word_analogies``: vectors are unit-normalised; only the
``restrict_vocab`` most frequent keys (the first rows, as tables are sorted by id = frequency) are
candidate answers, and a question counts as *answered* only when all four of its words are among
them; the three input words are never the answer. Questions are solved by
:func:`embedpipe.vectors.solve_analogies` (also behind the table API's ``analogy``) in batches with
one matrix product and one argmax per batch, so the cost is BLAS time, not Python time.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np

from embedpipe.evaluate.datasets import AnalogyDataset
from embedpipe.vectors import VectorIndex, solve_analogies

log = logging.getLogger(__name__)


def _accuracy(correct: int, answered: int) -> float | None:
    return correct / answered if answered else None


def evaluate_analogies(index: VectorIndex, dataset: AnalogyDataset, *, restrict_vocab: int,
                       composed_from: int | None = None) -> dict[str, Any]:
    """Overall and per-section accuracy and coverage of one analogy file.

    Accuracy is over answered questions (all four words among the ``restrict_vocab`` most frequent
    keys); coverage is answered / total, so both must be read together. Rows from ``composed_from``
    on (``oov = subwords``) are composed vectors of unseen words: they may be a, b or c, never the answer.
    """
    started = time.perf_counter()
    table_rows = len(index) if composed_from is None else int(composed_from)
    limit = min(int(restrict_vocab), table_rows)
    total = len(dataset)
    rows = index.rows(word for question in dataset.questions for word in question).reshape(total, 4)
    usable = (rows >= 0) & (rows < limit)
    usable[:, :3] |= rows[:, :3] >= table_rows
    answerable = np.all(usable, axis=1)
    asked = rows[answerable]
    predicted = solve_analogies(index, asked[:, 0], asked[:, 1], asked[:, 2], restrict_vocab=limit,
                                composed_from=table_rows)
    hits = (predicted >= 0) & (index.groups[predicted] == index.groups[asked[:, 3]])

    n_sections = len(dataset.sections)
    section_ids = dataset.section_ids
    per_total = np.bincount(section_ids, minlength=n_sections)
    per_answered = np.bincount(section_ids[answerable], minlength=n_sections)
    per_correct = np.bincount(section_ids[answerable][hits], minlength=n_sections)
    sections: list[dict[str, Any]] = [
        {
            "section": name,
            "questions_total": int(per_total[i]),
            "questions_answered": int(per_answered[i]),
            "correct": int(per_correct[i]),
            "accuracy": _accuracy(int(per_correct[i]), int(per_answered[i])),
        }
        for i, name in enumerate(dataset.sections)
    ]
    answered = int(answerable.sum())
    correct = int(hits.sum())
    words = {index.fold(word) for question in dataset.questions for word in question}
    words_found = sum(1 for word in words if index.row(word) >= 0)
    elapsed = time.perf_counter() - started
    log.info(
        "%s: analogy accuracy %s on %d/%d questions (restrict_vocab=%d) in %.1fs (%.0f questions/s)",
        dataset.location, "n/a" if not answered else f"{correct / answered:.3f}", answered, total, limit,
        elapsed, answered / elapsed if elapsed > 0 else 0.0,
    )
    result: dict[str, Any] = {
        "name": dataset.name,
        "file": dataset.location,
        "restrict_vocab": limit,
        "questions_total": total,
        "questions_answered": answered,
        "coverage": answered / total if total else None,
        "correct": correct,
        "accuracy": _accuracy(correct, answered),
        "words_total": len(words),
        "words_found": words_found,
        "word_oov_rate": (len(words) - words_found) / len(words) if words else None,
        "lines_skipped": dataset.lines_skipped,
        "sections": sections,
    }
    # The Google set's 'gram*' sections are syntactic, the rest semantic (Mikolov et al., 2013).
    syntactic = [s for s in sections if s["section"].startswith("gram")]
    semantic = [s for s in sections if not s["section"].startswith("gram")]
    if syntactic and semantic:
        for label, group in (("semantic", semantic), ("syntactic", syntactic)):
            group_answered = sum(s["questions_answered"] for s in group)
            group_correct = sum(s["correct"] for s in group)
            result[label] = {
                "questions_total": sum(s["questions_total"] for s in group),
                "questions_answered": group_answered,
                "correct": group_correct,
                "accuracy": _accuracy(group_correct, group_answered),
            }
    return result
