"""``embedpipe evaluate --histories``: recommendation metrics against a NumPy brute force, the item map, errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from embedpipe.cli import main
from embedpipe.evaluate.recommend import ranking_metrics, top_k_items
from embedpipe.table import write_embedding_table

QUIET = ["--log-level", "ERROR"]

# Item vectors (dim 2, distinct directions, so no ties) and a log whose last item per user is held out.
ITEMS = {"a": (1.0, 0.1), "b": (0.9, 0.5), "c": (0.2, 1.0), "d": (-0.5, 0.9), "e": (-1.0, -0.2),
         "f": (0.3, -1.0), "g": (0.8, -0.6), "영화": (-0.7, -0.8)}
LOG = """user,item,ts
u1,a,1
u1,b,2
u1,a,3
u1,c,4
u2,e,1
u2,영화,2
u2,f,3
u3,c,1
u3,d,2
u3,b,3
u4,g,1
u4,f,2
u4,a,3
u5,zz,1
u5,b,2
u6,b,1
"""
# Item-side vectors of a two-tower pair (same keys, other directions, other row order in their table).
CANDIDATES = {"영화": (0.2, 0.9), "g": (-0.4, 0.3), "f": (1.1, 0.2), "e": (0.5, -0.9), "d": (-0.9, -0.1),
              "c": (0.7, 0.6), "b": (-0.2, -1.2), "a": (0.1, 0.4)}
METADATA = """item,title,audience,style
a,x,children,blockbuster
b,x,children,blockbuster
c,x,children,arthouse
d,x,adult,arthouse
e,x,adult,arthouse
f,x,adult,blockbuster
g,x,children,blockbuster
영화,x,adult,arthouse
"""


@pytest.fixture(scope="module")
def setup(spark, tmp_path_factory):
    root = tmp_path_factory.mktemp("recommend")
    (root / "log.csv").write_text(LOG, encoding="utf-8")
    (root / "items.csv").write_text(METADATA, encoding="utf-8")
    histories = root / "histories"
    assert main(["histories", "--input", str(root / "log.csv"), "--output", str(histories), "--time-column", "ts",
                 "--holdout", "last", *QUIET]) == 0
    rows = [(key, i, 1, list(vector)) for i, (key, vector) in enumerate(ITEMS.items())]
    frame = spark.createDataFrame(rows, "key string, id bigint, count bigint, vector array<float>")
    write_embedding_table(spark, frame, str(root / "table"), method="handmade", dim=2, params={}, source="test",
                          seed=None, key_kind="item")
    for name, vectors in (("candidates", CANDIDATES), ("candidates3", {k: (*v, 1.0) for k, v in CANDIDATES.items()}),
                          ("candidates_missing", {k: v for k, v in CANDIDATES.items() if k != "c"})):
        rows = [(key, i, 1, list(vector)) for i, (key, vector) in enumerate(vectors.items())]
        frame = spark.createDataFrame(rows, "key string, id bigint, count bigint, vector array<float>")
        write_embedding_table(spark, frame, str(root / name), method="handmade", dim=len(rows[0][3]), params={},
                              source="test", seed=None, key_kind="item")
    return root


def _brute_force(spark, histories, ks, score, candidates=None):
    """Per-user metrics the slow, obvious way: float64, a full sort per user, Python loops.

    ``candidates``: item vectors scored against the users (mean of their ITEMS vectors), two towers.
    """
    keys = list(ITEMS)
    matrix = np.array([(candidates or ITEMS)[k] for k in keys], dtype=np.float64)
    if score == "cosine":
        matrix = matrix / np.linalg.norm(matrix, axis=1, keepdims=True)
    sequences = {r["user"]: r["items"] for r in spark.read.parquet(f"{histories}/sequences").collect()}
    truth = {r["user"]: r["items"] for r in spark.read.parquet(f"{histories}/heldout").collect()}
    sums = {f"{m}@{k}": 0.0 for k in ks for m in ("recall", "ndcg", "hr")}
    recommended = {k: set() for k in ks}
    for user, held in truth.items():
        found = [ITEMS[i] for i in sequences[user] if i in ITEMS]
        if not found:
            continue  # no vector: every metric is 0
        scores = matrix @ np.mean(np.array(found, dtype=np.float64), axis=0)
        ranking = [keys[j] for j in np.argsort(-scores, kind="stable") if keys[j] not in sequences[user]]
        for k in ks:
            recommended[k].update(ranking[:k])
            hits = [item in held for item in ranking[:k]]
            dcg = sum(1 / np.log2(rank + 2) for rank, hit in enumerate(hits) if hit)
            ideal = sum(1 / np.log2(rank + 2) for rank in range(min(k, len(held))))
            sums[f"recall@{k}"] += sum(hits) / min(k, len(held))
            sums[f"ndcg@{k}"] += dcg / ideal
            sums[f"hr@{k}"] += float(any(hits))
    metrics = {name: value / len(truth) for name, value in sums.items()}
    metrics.update({f"coverage@{k}": len(recommended[k]) / len(keys) for k in ks})
    return metrics, len(truth)


@pytest.mark.parametrize("score", ["cosine", "dot"])
def test_metrics_equal_a_brute_force_reference_and_runs_are_idempotent(spark, setup, tmp_path, score):
    output = tmp_path / "report"
    argv = ["evaluate", "--table", str(setup / "table"), "--histories", str(setup / "histories"),
            "--output", str(output), "--k-values", "1,2,3", "--score", score, "--block-rows", "2",
            "--item-metadata", str(setup / "items.csv"), *QUIET]
    assert main(argv) == 0
    report = json.loads((output / "report.json").read_text(encoding="utf-8"))
    markdown = (output / "report.md").read_text(encoding="utf-8")
    assert main(argv) == 0
    assert json.loads((output / "report.json").read_text(encoding="utf-8")) == report
    assert (output / "report.md").read_text(encoding="utf-8") == markdown

    section = report["recommendation"]
    assert section["holdout"]["mode"] == "last" and section["k_values"] == [1, 2, 3]
    (entry,) = section["tables"]
    expected, users = _brute_force(spark, setup / "histories", [1, 2, 3], score)
    # u1..u5 are split (u6 has one item); u5's only training item zz is not in the table.
    assert (entry["users_with_heldout"], entry["users_without_vector"], entry["score"]) == (users, 1, score)
    assert users == 5
    assert entry["metrics"] == pytest.approx(expected, abs=1e-6)
    assert "## Recommendation" in markdown and "| Recall@1 |" in markdown
    # No word lists for an item table; the picture is the item map.
    assert report["similarity"] == [] and report["analogies"] == []
    item_map = report["item_map"]
    assert item_map["axes"] == "the table's own 2 dimensions" and item_map["items_in_metadata"] == 8
    assert item_map["coordinates"][0] == pytest.approx([1.0, 0.1])
    assert item_map["linear_probe_accuracy"] == {"audience": 1.0, "style": 1.0}  # planted: separable
    assert (output / "projection.png").stat().st_size > 0 and "## Item map" in markdown


def test_candidate_table_scores_items_with_its_own_vectors(spark, setup, tmp_path):
    output = tmp_path / "report"
    argv = ["evaluate", "--table", str(setup / "table"), "--candidate-table", str(setup / "candidates"),
            "--compare", str(setup / "table"), "--histories", str(setup / "histories"), "--output", str(output),
            "--k-values", "1,2,3", "--block-rows", "2", *QUIET]
    assert main(argv) == 0
    report = json.loads((output / "report.json").read_text(encoding="utf-8"))
    assert main(argv) == 0
    assert json.loads((output / "report.json").read_text(encoding="utf-8")) == report
    two_tower, plain = report["recommendation"]["tables"]
    assert (two_tower["score"], two_tower["candidate_table"]) == ("dot", str(setup / "candidates"))
    expected, users = _brute_force(spark, setup / "histories", [1, 2, 3], "dot", CANDIDATES)
    assert (two_tower["users_with_heldout"], two_tower["users_without_vector"]) == (users, 1)
    assert two_tower["metrics"] == pytest.approx(expected, abs=1e-6)
    # A compared table is scored with its own vectors (auto: cosine for a handmade table).
    assert "candidate_table" not in plain and plain["score"] == "cosine"
    assert plain["metrics"] == pytest.approx(_brute_force(spark, setup / "histories", [1, 2, 3], "cosine")[0],
                                             abs=1e-6)
    assert f"| {setup / 'table'} x {setup / 'candidates'} | handmade |" in (output / "report.md").read_text(
        encoding="utf-8")


def test_kernel_breaks_ties_like_a_stable_sort_and_pads():
    users = np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32)
    catalogue = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 0.0]], dtype=np.float32)
    top = top_k_items(users, catalogue, np.array([0]), np.array([1]), k=4)
    # User 0: rows 0 and 3 tie (row 1 is seen), then row 2; user 1: row 2, then the tied rows in order.
    assert top.tolist() == [[0, 3, 2, -1], [2, 0, 1, 3]]
    metrics = ranking_metrics(top, np.array([0, 1]), np.array([2, 3]), np.array([2, 1]), [1, 3])
    assert metrics["recall_1"].tolist() == [0.0, 0.0]
    assert metrics["recall_3"].tolist() == [0.5, 0.0]
    assert metrics["ndcg_3"][0] == pytest.approx((1 / np.log2(4)) / (1 + 1 / np.log2(3)))
    assert metrics["hr_3"].tolist() == [1.0, 0.0]
    # Recall@K divides by min(K, held-out items): one hit at rank 1 of two held-out items is a full Recall@1.
    assert ranking_metrics(np.array([[2, 0]]), np.array([0, 0]), np.array([2, 3]), np.array([2]), [1, 2])[
        "recall_1"].tolist() == [1.0]


def test_bad_recommendation_inputs_fail_in_one_line(spark, setup, tmp_path, capsys):
    output = tmp_path / "report"
    plain = tmp_path / "plain"
    assert main(["histories", "--input", str(setup / "log.csv"), "--output", str(plain), *QUIET]) == 0
    (tmp_path / "meta.csv").write_text("item,genre\na,x\n", encoding="utf-8")
    table = str(setup / "table")
    for extra, message in (
        (["--histories", str(plain)],
         f"histories output {plain} has no held-out items: run embedpipe histories with --holdout random or "
         "--holdout last"),
        (["--histories", str(tmp_path / "nope")],
         f"histories output not found: {tmp_path / 'nope'} (config key 'histories')"),
        (["--compare", table], "config key 'compare' needs histories (the split the tables are compared on)"),
        (["--histories", str(setup / "histories"), "--item-metadata", str(tmp_path / "meta.csv")],
         f"item metadata {tmp_path / 'meta.csv'} lacks required columns (missing: audience, style; "
         "present: item, genre)"),
        (["--histories", str(setup / "histories"), "--score", "l1"],
         "config key 'score' must be one of auto, cosine, dot, got 'l1'"),
        (["--candidate-table", str(setup / "candidates")],
         "config key 'candidate_table' needs histories (it is only used to score recommendations)"),
        (["--histories", str(setup / "histories"), "--candidate-table", str(setup / "candidates3")],
         f"candidate table {setup / 'candidates3'} has dim 3 but table {table} has dim 2 (config key "
         "'candidate_table'; users and items need the same dim)"),
        (["--histories", str(setup / "histories"), "--candidate-table", str(setup / "candidates_missing")],
         f"candidate table {setup / 'candidates_missing'} must have the same keys as table {table}: 1 of its 8 "
         "keys missing, e.g. 'c', 0 extra (config key 'candidate_table')"),
        (["--histories", str(setup / "histories"), "--candidate-table", str(tmp_path / "none")],
         f"embedding table not found: {tmp_path / 'none'}"),
    ):
        assert main(["evaluate", "--table", table, "--output", str(output), *extra, *QUIET]) == 2
        assert capsys.readouterr().err == f"embedpipe evaluate: error: {message}\n"
        assert not output.exists()
