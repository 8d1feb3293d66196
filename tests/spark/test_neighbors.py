"""The neighbors job and the Python API's similarity queries agree with brute force."""

from __future__ import annotations

import numpy as np
import pytest

from embedpipe.cli import main
from embedpipe.lookup import open_table

N, DIM = 60, 8


def _table(rng_seed: int = 5):
    rng = np.random.default_rng(rng_seed)
    vectors = rng.normal(size=(N, DIM)).astype(np.float32)
    keys = [f"k{i:02d}" for i in range(N)]
    keys[:4] = ["king", "man", "woman", "queen"]
    # Plant king - man + woman = queen.
    vectors[3] = vectors[0] - vectors[1] + vectors[2] + 0.01
    return keys, vectors


@pytest.fixture(scope="module")
def table_path(spark, tmp_path_factory):
    from embedpipe.table import write_embedding_table

    keys, vectors = _table()
    path = str(tmp_path_factory.mktemp("neighbors") / "table")
    rows = [(k, i, N - i, v.tolist()) for i, (k, v) in enumerate(zip(keys, vectors, strict=True))]
    frame = spark.createDataFrame(rows, "key string, id bigint, count bigint, vector array<float>")
    write_embedding_table(spark, frame, path, method="test", dim=DIM, params={}, source="test", seed=1,
                          key_kind="item")
    return path


def _brute_force(k: int) -> dict[str, list[tuple[str, float]]]:
    keys, vectors = _table()
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    scores = unit @ unit.T
    result = {}
    for i, key in enumerate(keys):
        order = sorted((j for j in range(N) if j != i), key=lambda j: (-scores[i, j], j))[:k]
        result[key] = [(keys[j], float(scores[i, j])) for j in order]
    return result


def test_exact_neighbors_match_brute_force_and_rerun(spark, table_path, tmp_path, capsys):
    out = tmp_path / "nn"
    args = ["neighbors", "--table", table_path, "--output", str(out), "--k", "5", "--block-rows", "7",
            "--analogies", "king man woman", "--analogy-output", str(tmp_path / "analogies")]
    for _ in range(2):
        assert main(args) == 0
    assert "king - man + woman = queen" in capsys.readouterr().out
    rows = spark.read.parquet(str(out)).collect()
    assert len(rows) == N * 5
    got: dict[str, list] = {}
    for r in sorted(rows, key=lambda r: (r["key"], r["rank"])):
        got.setdefault(r["key"], []).append((r["neighbor"], r["score"]))
    expected = _brute_force(5)
    for key, neighbours in expected.items():
        assert [n for n, _ in got[key]] == [n for n, _ in neighbours], key
        np.testing.assert_allclose([s for _, s in got[key]], [s for _, s in neighbours], atol=1e-5)
    answers = spark.read.parquet(str(tmp_path / "analogies")).collect()
    assert [(r["a"], r["answer"]) for r in answers] == [("king", "queen")]


def test_queries_approximate_and_api(spark, table_path, tmp_path, capsys):
    out = tmp_path / "nn"
    assert main(["neighbors", "--table", table_path, "--output", str(out), "--k", "3", "--queries",
                 "king,k10,nope"]) == 0
    rows = spark.read.parquet(str(out)).collect()
    assert sorted({r["key"] for r in rows}) == ["k10", "king"]
    # LSH with a single bit and many tables: buckets hold about half the keys, recall is high.
    approx = tmp_path / "approx"
    assert main(["neighbors", "--table", table_path, "--output", str(approx), "--k", "3", "--method",
                 "approximate", "--lsh-bits", "1", "--lsh-tables", "8"]) == 0
    approximate = spark.read.parquet(str(approx)).collect()
    expected = _brute_force(3)
    hits = sum(1 for r in approximate if r["neighbor"] in {n for n, _ in expected[r["key"]]})
    assert hits / (N * 3) > 0.8
    for r in approximate:  # every score that is reported is the exact cosine
        assert abs(r["score"] - dict(_brute_force(N - 1)[r["key"]])[r["neighbor"]]) < 1e-5

    lookup = open_table(table_path)
    assert [k for k, _ in lookup.most_similar("king", 5)] == [n for n, _ in expected["king"][:3]] + [
        n for n, _ in _brute_force(5)["king"][3:]]
    assert lookup.analogy("king", "man", "woman")[0] == "queen"
    with pytest.raises(KeyError, match="'nope' is not in the table"):
        lookup.vector("nope")

    bad = tmp_path / "bad"
    assert main(["neighbors", "--table", table_path, "--output", str(bad), "--analogies", "king man"]) != 0
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "embedpipe neighbors: error: config key 'analogies': 'king man' must be three keys 'a b c' (answers a - b + c)"
    )
    assert main(["neighbors", "--table", table_path, "--output", str(bad), "--analogies", "king man zebra"]) != 0
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"embedpipe neighbors: error: analogy words not in table {table_path}: zebra"
    )
    assert not bad.exists()


def test_oversized_lsh_buckets_are_split(spark, table_path, tmp_path, capsys):
    """One bit per table leaves ~30 keys per bucket; a cap of 8 splits them with extra hyperplanes."""
    results = {}
    for cap in (N, 8):
        out = tmp_path / f"cap{cap}"
        assert main(["neighbors", "--table", table_path, "--output", str(out), "--k", "3", "--method",
                     "approximate", "--lsh-bits", "1", "--lsh-tables", "8", "--lsh-max-bucket", str(cap)]) == 0
        assert ("splitting with extra hyperplanes" in capsys.readouterr().err) == (cap < N)
        results[cap] = spark.read.parquet(str(out)).collect()

    exact = _brute_force(N - 1)
    top3 = _brute_force(3)
    for rows in results.values():
        for r in rows:  # scores stay exact and ranks well formed
            assert abs(r["score"] - dict(exact[r["key"]])[r["neighbor"]]) < 1e-5
            assert 1 <= r["rank"] <= 3
    hits = {cap: sum(r["neighbor"] in {n for n, _ in top3[r["key"]]} for r in rows) for cap, rows in results.items()}
    # Smaller buckets see fewer candidates: recall falls, but the nearest neighbours mostly survive.
    assert hits[8] <= hits[N]
    assert hits[8] / (N * 3) > 0.4


def test_tables_breaking_the_format_fail_with_one_line_and_write_nothing(spark, broken_tables, tmp_path, capsys):
    out = tmp_path / "nn"
    for case, problem in (("nan", "has 1 vectors with NaN or Inf values, e.g. key 'b'"),
                          ("duplicate", "has duplicate keys (3 rows, 2 distinct keys), e.g. key 'a'")):
        table = broken_tables[case]
        assert main(["neighbors", "--table", table, "--output", str(out), "--k", "1"]) != 0
        assert capsys.readouterr().err.strip().splitlines()[-1] == (
            f"embedpipe neighbors: error: embedding table {table} {problem}"
        )
        assert not out.exists()
