"""Locating and parsing evaluation files (similarity pairs, analogy questions); no Spark."""

from __future__ import annotations

import numpy as np
import pytest

from embedpipe.config import build_config
from embedpipe.errors import InputError
from embedpipe.evaluate import datasets
from embedpipe.evaluate.datasets import (
    BUILTIN_ANALOGIES,
    BUILTIN_SIMILARITY,
    EvalFile,
    read_analogy_file,
    read_similarity_file,
    resolve_eval_files,
)
from embedpipe.evaluate.pipeline import load_datasets
from embedpipe.jobconfig import EvaluateConfig

GENSIM_WORDSIM = (
    "# The WordSimilarity-353 Test Collection (http://www.cs.technion.ac.il/~gabr/resources/data/wordsim353/)\n"
    "# Word 1\tWord 2\tHuman (mean)\n"
    "love\tsex\t6.77\ntiger\tcat\t7.35\ntiger\ttiger\t10.00\n"
)
ORIGINAL_WORDSIM_CSV = "Word 1,Word 2,Human (mean)\nlove,sex,6.77\ntiger,cat,7.35\n"
ORIGINAL_SIMLEX = (
    "word1\tword2\tPOS\tSimLex999\tconc(w1)\tconc(w2)\tconcQ\tAssoc(USF)\tSimAssoc333\tSD(SimLex)\n"
    "old\tnew\tA\t1.58\t2.72\t2.81\t2\t7.25\t1\t0.41\n"
    "smart\tintelligent\tA\t9.2\t1.75\t2.46\t1\t7.11\t1\t0.67\n"
)
GOOGLE_ANALOGIES = (
    ": capital-common-countries\nAthens Greece Baghdad Iraq\nAthens Greece Bangkok Thailand\n"
    ": gram1-adjective-to-adverb\namazing amazingly apparent apparently\n"
)


def _file(tmp_path, name: str, text: str | bytes) -> EvalFile:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return EvalFile(path.stem, str(path), str(path))


def test_gensim_wordsim_format(tmp_path):
    data = read_similarity_file(_file(tmp_path, "ws.tsv", GENSIM_WORDSIM))
    assert data.pairs == [("love", "sex"), ("tiger", "cat"), ("tiger", "tiger")]
    np.testing.assert_allclose(data.scores, [6.77, 7.35, 10.0])
    assert data.lines_skipped == 0 and data.name == "ws"


def test_original_csv_and_simlex_formats_use_the_score_column(tmp_path):
    csv = read_similarity_file(_file(tmp_path, "combined.csv", ORIGINAL_WORDSIM_CSV))
    assert csv.pairs == [("love", "sex"), ("tiger", "cat")]
    simlex = read_similarity_file(_file(tmp_path, "SimLex-999.txt", ORIGINAL_SIMLEX))
    assert simlex.pairs == [("old", "new"), ("smart", "intelligent")]
    np.testing.assert_allclose(simlex.scores, [1.58, 9.2])  # SimLex999 column, not POS or conc(w1)


def test_bad_similarity_lines_are_skipped_and_counted(tmp_path):
    text = "a\tb\t1.5\n\nonly-two\tfields\nc\td\tnot-a-number\ne\tf\tnan\n한국\t서울\t8\n"
    data = read_similarity_file(_file(tmp_path, "s.tsv", text))
    assert data.pairs == [("a", "b"), ("한국", "서울")]
    assert data.lines_skipped == 3


def test_analogy_format(tmp_path):
    text = GOOGLE_ANALOGIES + "too few words\n# a comment\n"
    data = read_analogy_file(_file(tmp_path, "questions-words.txt", text))
    assert data.sections == ["capital-common-countries", "gram1-adjective-to-adverb"]
    assert data.questions[1] == ("Athens", "Greece", "Bangkok", "Thailand")
    assert data.section_ids.tolist() == [0, 0, 1]
    assert data.lines_skipped == 1
    headless = read_analogy_file(_file(tmp_path, "h.txt", "a b c d\n"))
    assert headless.sections == ["(none)"] and len(headless) == 1


def test_files_without_items_are_input_errors(tmp_path):
    empty = _file(tmp_path, "e.tsv", "# nothing\n")
    with pytest.raises(InputError, match=r"^similarity file .*e.tsv has no word pairs \(expected lines"):
        read_similarity_file(empty)
    with pytest.raises(InputError, match=r"^analogy file .*e.tsv has no questions"):
        read_analogy_file(empty)
    latin1 = _file(tmp_path, "l.tsv", "caf\xe9\tx\t1\n".encode("latin-1"))
    with pytest.raises(InputError, match=r"l.tsv is not UTF-8 text$"):
        read_similarity_file(latin1)


def test_builtin_files_have_their_known_sizes():
    pytest.importorskip("gensim")
    config = build_config(EvaluateConfig, {"table": "t", "output": "o"})
    loaded = load_datasets(config)
    assert loaded.warnings == []
    sizes = {d.name: len(d) for d in loaded.similarity}
    assert sizes == {"wordsim353": 353, "simlex999": 999}
    [questions] = loaded.analogies
    assert (questions.name, len(questions), len(questions.sections)) == ("questions-words", 19_544, 14)
    assert questions.location == "gensim:test/test_data/questions-words.txt"  # never an absolute path
    assert all(d.lines_skipped == 0 for d in [*loaded.similarity, questions])


def test_builtin_without_gensim_is_a_warning(monkeypatch, tmp_path):
    monkeypatch.setattr(datasets, "gensim_test_data_dir", lambda: None)
    explicit = _file(tmp_path, "mine.tsv", GENSIM_WORDSIM)
    files, warnings = resolve_eval_files(
        ["builtin", explicit.path], kind="similarity", builtin_names=BUILTIN_SIMILARITY
    )
    assert [f.name for f in files] == ["mine"]
    assert warnings == [
        "builtin similarity files skipped: gensim is not installed (pip install gensim, or give file paths)"
    ]
    config = build_config(EvaluateConfig, {"table": "t", "output": "o"})
    loaded = load_datasets(config)
    assert (loaded.similarity, loaded.analogies) == ([], [])
    assert len(loaded.warnings) == 2 and "builtin analogy files skipped" in loaded.warnings[1]


def test_missing_explicit_file_is_an_input_error(tmp_path):
    missing = str(tmp_path / "nope.txt")
    with pytest.raises(InputError, match=f"^analogy file not found: {missing}$"):
        resolve_eval_files([missing], kind="analogy", builtin_names=BUILTIN_ANALOGIES)
