"""Pure (Spark-free) evaluation metrics: correlations, analogies, neighbours, projection."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from embedpipe.config import build_config
from embedpipe.evaluate import (
    VectorIndex,
    evaluate_analogies,
    evaluate_similarity,
    nearest_neighbours,
    parse_analogy_text,
    parse_similarity_text,
    pca_2d,
    pearson,
    rank_average,
    solve_analogies,
    spearman,
    top_k_neighbours,
    unit_normalise,
)
from embedpipe.evaluate.pipeline import EvalDatasets, build_report
from embedpipe.evaluate.projection import plot_projection
from embedpipe.evaluate.report import render_markdown, render_report
from embedpipe.jobconfig import EvaluateConfig
from embedpipe.table import EmbeddingTable

scipy_stats = pytest.importorskip("scipy.stats")

# Dimensions: royal, male, female, other. "queen" is tilted so that without excluding the inputs
# the best match of king - man + woman would be "woman" itself.
ROYAL_KEYS = ["king", "man", "woman", "queen", "apple", "prince"]
ROYAL_VECTORS = np.array(
    [[1, 1, 0, 0], [0, 1, 0, 0.2], [0, 0, 1, 0.2], [1, 0, 1, 1.2], [0, 0, 0, 1], [1, 0.9, 0.1, 0]],
    dtype=np.float32,
)
ROYAL_QUESTIONS = ": family\nman king woman queen\n"


def _table(keys: list[str], vectors: np.ndarray, method: str = "test") -> EmbeddingTable:
    n = len(keys)
    return EmbeddingTable(
        keys=list(keys), ids=np.arange(n, dtype=np.int64), counts=np.arange(n, 0, -1, dtype=np.int64),
        vectors=np.asarray(vectors, dtype=np.float32),
        manifest={"method": method, "dim": int(np.shape(vectors)[1]), "rows": n, "source": "tests"},
    )


def _config(**values) -> EvaluateConfig:
    return build_config(EvaluateConfig, {"table": "t", "output": "o", "similarity": [], "analogies": [], **values})


# ------------------------------------------------------------------------------ correlations


def test_rank_average_ties():
    np.testing.assert_array_equal(rank_average([10, 20, 20, 5, 20]), [2, 4, 4, 1, 4])


@pytest.mark.parametrize(
    ("x", "y"),
    [
        ([1, 2, 3, 4, 5], [5, 6, 7, 8, 7]),
        ([1, 2, 2, 3, 3, 3, 9], [0.1, 0.1, 0.5, 0.2, 0.9, 0.9, 0.3]),
        ([3.5, 3.5, 1, 1, 2], [7, 7, 7, 1, 2]),
    ],
)
def test_spearman_and_pearson_match_scipy_with_ties(x, y):
    assert spearman(x, y) == pytest.approx(scipy_stats.spearmanr(x, y).statistic, abs=1e-12)
    assert pearson(x, y) == pytest.approx(scipy_stats.pearsonr(x, y).statistic, abs=1e-12)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 6), st.integers(-3, 3)), min_size=3, max_size=40))
def test_spearman_matches_scipy_on_heavily_tied_data(pairs):
    x = np.array([p[0] for p in pairs], dtype=float)
    y = np.array([p[1] for p in pairs], dtype=float)
    ours = spearman(x, y)
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        assert ours is None  # undefined: SciPy returns NaN with a warning
    else:
        assert ours == pytest.approx(scipy_stats.spearmanr(x, y).statistic, abs=1e-9)


def test_correlations_undefined_cases():
    assert spearman([1.0], [2.0]) is None
    assert pearson([1, 1, 1], [1, 2, 3]) is None
    with pytest.raises(ValueError, match="differ in length"):
        spearman([1, 2], [1, 2, 3])


def test_evaluate_similarity_counts_oov_and_correlates_cosines():
    keys = ["a", "b", "c", "d"]
    vectors = np.array([[1, 0], [1, 0.1], [0, 1], [-1, 0.2]], dtype=np.float32)
    dataset = parse_similarity_text(
        "# comment\na\tb\t9\na\tc\t5\nA\td\t1\na\tzzz\t3\n", name="toy", location="toy.tsv"
    )
    result = evaluate_similarity(VectorIndex.from_arrays(keys, vectors), dataset)
    assert (result["pairs_total"], result["pairs_found"]) == (4, 3)
    assert result["pair_oov_rate"] == pytest.approx(0.25)
    assert (result["words_total"], result["words_found"]) == (5, 4)  # a, b, c, d, zzz
    assert result["spearman"] == pytest.approx(1.0)  # cosine order a-b > a-c > a-d matches 9 > 5 > 1
    case_sensitive = evaluate_similarity(VectorIndex.from_arrays(keys, vectors, lowercase=False), dataset)
    assert case_sensitive["pairs_found"] == 2  # "A" is not a key without lowercasing


# ------------------------------------------------------------------------------ analogies


def _slow_3cosadd(unit: np.ndarray, groups: np.ndarray, a: int, b: int, c: int, limit: int) -> int:
    """Obviously-correct reference: one question, a Python loop over candidates."""
    query = unit[b] - unit[a] + unit[c]
    best, best_score = -1, -np.inf
    for row in range(limit):
        if groups[row] in (groups[a], groups[b], groups[c]):
            continue
        score = float(unit[row] @ query)
        if score > best_score:
            best, best_score = row, score
    return best


def test_king_minus_man_plus_woman_is_queen_with_inputs_excluded():
    index = VectorIndex.from_arrays(ROYAL_KEYS, ROYAL_VECTORS)
    query = index.unit[0] - index.unit[1] + index.unit[2]
    assert ROYAL_KEYS[int(np.argmax(index.unit @ query))] == "woman"  # the trap the exclusion avoids
    predicted = solve_analogies(index, np.array([1]), np.array([0]), np.array([2]), restrict_vocab=6)
    assert ROYAL_KEYS[predicted[0]] == "queen"
    result = evaluate_analogies(index, parse_analogy_text(ROYAL_QUESTIONS, name="r", location="r"), restrict_vocab=6)
    assert (result["questions_total"], result["questions_answered"], result["correct"]) == (1, 1, 1)
    assert result["accuracy"] == 1.0 and result["coverage"] == 1.0
    assert result["sections"] == [
        {"section": "family", "questions_total": 1, "questions_answered": 1, "correct": 1, "accuracy": 1.0}
    ]


def test_restrict_vocab_limits_questions_and_candidates():
    # "empress" (row 6, rarest) is an even better answer than "queen", but only inside restrict_vocab.
    keys = [*ROYAL_KEYS, "empress"]
    vectors = np.vstack([ROYAL_VECTORS, [[1, -0.05, 1, 0.1]]]).astype(np.float32)
    index = VectorIndex.from_arrays(keys, vectors)
    dataset = parse_analogy_text(ROYAL_QUESTIONS + "man king woman empress\n", name="r", location="r")
    within_six = evaluate_analogies(index, dataset, restrict_vocab=6)
    assert (within_six["questions_answered"], within_six["correct"]) == (1, 1)  # empress question filtered out
    assert within_six["coverage"] == pytest.approx(0.5)
    everything = evaluate_analogies(index, dataset, restrict_vocab=100)
    assert everything["restrict_vocab"] == 7
    assert (everything["questions_answered"], everything["correct"]) == (2, 1)  # queen question now wrong
    only_three = evaluate_analogies(index, dataset, restrict_vocab=3)
    assert (only_three["questions_answered"], only_three["accuracy"], only_three["coverage"]) == (0, None, 0.0)


def test_batched_solver_matches_slow_reference():
    rng = np.random.default_rng(3)
    keys = [f"w{i}" for i in range(60)]
    index = VectorIndex.from_arrays(keys, rng.normal(size=(60, 8)))
    questions = rng.integers(0, 40, size=(200, 3))
    for batch_size in (1, 7, None):
        predicted = solve_analogies(
            index, questions[:, 0], questions[:, 1], questions[:, 2], restrict_vocab=40, batch_size=batch_size
        )
        expected = [_slow_3cosadd(index.unit, index.groups, a, b, c, 40) for a, b, c in questions]
        np.testing.assert_array_equal(predicted, expected)


def test_case_folding_uses_the_most_frequent_spelling_and_excludes_all_spellings():
    keys = ["King", "man", "woman", "king", "queen"]
    vectors = np.array([[1, 1, 0], [0, 1, 0], [0, 0, 1], [1, 0.6, 0.55], [1, 0, 1]], dtype=np.float32)
    index = VectorIndex.from_arrays(keys, vectors)
    assert index.row("KING") == 0 and index.has_case_duplicates
    np.testing.assert_array_equal(index.groups, [0, 1, 2, 0, 4])
    # "king" (row 3) scores best but is a spelling of the input "King": excluded like gensim does.
    predicted = solve_analogies(index, np.array([1]), np.array([0]), np.array([2]), restrict_vocab=5)
    assert keys[predicted[0]] == "queen"
    expected = [_slow_3cosadd(index.unit, index.groups, 1, 0, 2, 5)]
    np.testing.assert_array_equal(predicted, expected)
    exact = VectorIndex.from_arrays(keys, vectors, lowercase=False)
    assert exact.row("KING") == -1 and not exact.has_case_duplicates


def test_no_candidate_left_counts_as_wrong():
    index = VectorIndex.from_arrays(["a", "b", "c"], np.eye(3, dtype=np.float32))
    dataset = parse_analogy_text(": s\na b c a\n", name="x", location="x")
    result = evaluate_analogies(index, dataset, restrict_vocab=3)
    assert (result["questions_answered"], result["correct"]) == (1, 0)


def test_matches_gensim_evaluate_word_analogies():
    gensim_kv = pytest.importorskip("gensim.models.keyedvectors")
    rng = np.random.default_rng(11)
    keys = [f"w{i}" for i in range(80)]
    base = rng.normal(size=(80, 10)).astype(np.float32)
    lines = [": sec-one"]
    for i in range(0, 40, 4):
        base[i + 3] = base[i + 1] - base[i] + base[i + 2] + rng.normal(scale=0.8, size=10)  # planted, noisy
        lines.append(" ".join(keys[i:i + 4]))
    lines.append(": sec-two")
    lines += [" ".join(keys[j] for j in rng.integers(0, 80, size=4)) for _ in range(60)]
    text = "\n".join(lines) + "\n"
    dataset = parse_analogy_text(text, name="p", location="p")
    kv = gensim_kv.KeyedVectors(10)
    kv.add_vectors(keys, base)
    for restrict in (50, 80):
        path = f"/tmp/embedpipe-test-analogies-{restrict}.txt"  # gensim reads from a path
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(text)
        score, sections = kv.evaluate_word_analogies(path, restrict_vocab=restrict)
        ours = evaluate_analogies(VectorIndex.from_arrays(keys, base), dataset, restrict_vocab=restrict)
        total = sections[-1]
        assert ours["correct"] == len(total["correct"])
        assert ours["questions_answered"] == len(total["correct"]) + len(total["incorrect"])
        assert ours["accuracy"] == pytest.approx(score)


# ------------------------------------------------------------------------------ neighbours, projection


def test_nearest_neighbours_order_self_exclusion_and_oov():
    keys = ["a", "b", "c", "d"]
    vectors = np.array([[1, 0], [0.9, 0.1], [0, 1], [-1, 0]], dtype=np.float32)
    result = nearest_neighbours(VectorIndex.from_arrays(keys, vectors), ["A", "zzz", "a"], k=2)
    assert result["oov"] == ["zzz"]
    assert result["k"] == 2
    [probe] = result["probes"]  # "A" and "a" are one probe once case is folded
    assert (probe["probe"], probe["key"]) == ("A", "a")
    assert [n["key"] for n in probe["neighbours"]] == ["b", "c"]
    assert probe["neighbours"][1]["cosine"] == pytest.approx(0.0, abs=1e-6)


def test_top_k_ties_prefer_frequent_keys_and_k_is_capped():
    index = VectorIndex.from_arrays(["x", "p", "q", "r"], np.array([[1, 0], [0, 1], [0, 1], [0, 1]]))
    rows, cosines = top_k_neighbours(index.unit, np.array([0]), 10)
    assert rows.tolist() == [[1, 2, 3]]
    np.testing.assert_allclose(cosines, 0.0, atol=1e-7)


def test_unit_normalise_keeps_zero_rows():
    unit = unit_normalise(np.array([[3, 4], [0, 0]]))
    np.testing.assert_allclose(unit, [[0.6, 0.8], [0, 0]])


def test_pca_2d_recovers_the_main_axis_with_a_fixed_sign():
    x = np.array([[-2, 0.1, 0], [-1, -0.1, 0], [1, -0.1, 0], [2, 0.1, 0]])
    coords, explained = pca_2d(x)
    np.testing.assert_allclose(coords, [[-2, 0.1], [-1, -0.1], [1, -0.1], [2, 0.1]], atol=1e-9)
    np.testing.assert_allclose(pca_2d(-x)[0], -coords, atol=1e-9)  # the axes keep their direction
    assert explained[0] > 0.99 and explained.sum() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="at least 2 rows and 2 columns"):
        pca_2d(np.ones((5, 1)))


def test_korean_labels_plot_without_warnings(tmp_path):
    coords = np.array([[0.0, 0.0], [1.0, 0.5], [0.3, -1.0]])
    path = tmp_path / "p.png"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        plot_projection(["한국어", "서울", "king"], coords, str(path), title="단어 2-D", explained=np.array([0.6, 0.3]))
    assert path.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


# ------------------------------------------------------------------------------ the report


def test_report_of_dim_one_table_skips_the_projection(tmp_path):
    table = _table(["a", "b", "c"], np.array([[1.0], [2.0], [-1.0]]))
    report = build_report(table, _config(probes=["a"]), EvalDatasets())
    assert "file" not in report["projection"]
    assert report["projection"]["note"] == "the table has dim 1; a 2-D projection needs dim >= 2"
    assert sorted(render_report(report, str(tmp_path))) == ["report.json", "report.md"]
    assert "Skipped: the table has dim 1" in (tmp_path / "report.md").read_text()


def test_plot_key_selection():
    keys = [f"k{i}" for i in range(50)]
    table = _table(keys, np.random.default_rng(0).normal(size=(50, 3)))
    top = build_report(table, _config(plot_top=5), EvalDatasets())["projection"]
    assert top["keys"] == keys[:5] and top["selection"] == "the 5 most frequent keys"
    probes = build_report(table, _config(probes=["k7", "nope"], neighbors=3), EvalDatasets())["projection"]
    assert len(probes["keys"]) == 4 and probes["keys"][0] == "k7" and probes["highlighted"] == ["k7"]
    chosen = build_report(table, _config(plot_keys=["k3", "k1", "zz"]), EvalDatasets())["projection"]
    assert (chosen["keys"], chosen["missing"]) == (["k3", "k1"], ["zz"])
    none_found = build_report(table, _config(plot_keys=["zz"]), EvalDatasets())["projection"]
    assert "file" not in none_found and none_found["missing"] == ["zz"]
    assert none_found["note"] == "0 of the chosen keys are in the table; a projection needs at least 2"


def test_report_markdown_has_the_tables():
    table = _table(ROYAL_KEYS, ROYAL_VECTORS)
    datasets = EvalDatasets(
        similarity=[
            parse_similarity_text("king\tqueen\t8\nman\twoman\t7\napple\tking\t1\n", name="s", location="s.tsv")
        ],
        analogies=[parse_analogy_text(ROYAL_QUESTIONS, name="q", location="q.txt")],
        warnings=["something to know"],
    )
    report = build_report(table, _config(probes=["king", "ghost|x"]), datasets)
    markdown = render_markdown(report)
    assert "| s | 3 / 3 | 0.0% |" in markdown
    assert "| q | 1 / 1 | 100.0% | 1 | 100.0% |  |  |" in markdown
    assert "| family | 1 / 1 | 1 | 100.0% |" in markdown
    assert "Probes not in the table: ghost\\|x" in markdown
    assert "- something to know" in markdown
    assert "![2-D projection](projection.png)" in markdown
