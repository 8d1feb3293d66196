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


def test_queries_and_api(spark, table_path, tmp_path, capsys):
    out = tmp_path / "nn"
    assert main(["neighbors", "--table", table_path, "--output", str(out), "--k", "3", "--queries",
                 "king,k10,nope"]) == 0
    rows = spark.read.parquet(str(out)).collect()
    assert sorted({r["key"] for r in rows}) == ["k10", "king"]
    expected = _brute_force(3)

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


def test_retired_lsh_is_a_one_line_error_pointing_to_the_index(spark, table_path, tmp_path, capsys):
    out = tmp_path / "nn"
    hint = "the LSH search was removed; use --method index (build the index first with embedpipe index --table T; " \
           "see docs/decisions.md)"
    for extra, what in ((["--method", "approximate"], "method 'approximate'"),
                        (["--lsh-bits", "12"], "config key 'lsh_bits'"),
                        (["--set", "lsh_tables=4"], "config key 'lsh_tables'"),
                        (["--seed", "1"], "config key 'seed'")):
        assert main(["neighbors", "--table", table_path, "--output", str(out), *extra]) != 0
        assert capsys.readouterr().err.strip().splitlines()[-1] == f"embedpipe neighbors: error: {what}: {hint}"
        assert not out.exists()


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
