"""``embedpipe evaluate`` end to end through the CLI: outputs, idempotence, bad inputs."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from embedpipe import schema
from embedpipe.cli import main
from embedpipe.jobconfig import EvaluateConfig
from embedpipe.table import read_embedding_table, write_embedding_table

KEYS = ["a", "b", "king", "man", "woman", "queen", "tiger", "cat", "love", "sex", "한국", "서울", "c", "d"]
DIM = 5


@pytest.fixture(scope="module")
def table_path(spark, tmp_path_factory):
    rng = np.random.default_rng(5)
    vectors = rng.normal(size=(len(KEYS), DIM)).astype(np.float32)
    vectors[1] = vectors[0] + 0.05  # b is a's nearest neighbour
    rows = [(key, i, 100 - i, [float(v) for v in vectors[i]]) for i, key in enumerate(KEYS)]
    frame = spark.createDataFrame(rows, schema.TABLE_SPARK_DDL)
    path = str(tmp_path_factory.mktemp("evaluate") / "table")
    write_embedding_table(spark, frame, path, method="test", dim=DIM, params={}, source="tests", seed=1)
    return path


@pytest.fixture(scope="module")
def analogy_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("evaluate-files") / "analogies.txt"
    path.write_text(": family\nman king woman queen\nMan King Woman Queen\nman king woman ghost\n", encoding="utf-8")
    return str(path)


def _leftovers(parent, name: str) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name.startswith(name))


def test_evaluate_end_to_end_is_idempotent(spark, table_path, analogy_file, tmp_path, capsys):
    output = tmp_path / "report"
    argv = ["evaluate", "--table", table_path, "--output", str(output), "--probes", "a,b,ghost",
            "--analogies", f"builtin,{analogy_file}", "--neighbors", "3"]
    reports = []
    for _ in range(2):
        assert main(argv) == 0
        assert sorted(p.name for p in output.iterdir()) == ["projection.png", "report.json", "report.md"]
        reports.append((output / "report.json").read_text(encoding="utf-8"))
    assert reports[0] == reports[1]
    assert _leftovers(tmp_path, "report") == ["report"]
    assert (output / "projection.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")

    report = json.loads(reports[0])
    assert set(report) == {"table", "table_stats", "settings", "similarity", "analogies", "coverage",
                           "neighbours", "projection", "warnings"}
    assert {k: report["table"][k] for k in ("method", "dim", "rows", "source")} == {
        "method": "test", "dim": DIM, "rows": len(KEYS), "source": "tests"}
    assert [s["name"] for s in report["similarity"]] == ["wordsim353", "simlex999"]
    wordsim = report["similarity"][0]
    assert wordsim["pairs_total"] == 353 and 0 < wordsim["pairs_found"] < 353
    mine = report["analogies"][1]
    assert (mine["name"], mine["questions_total"], mine["questions_answered"]) == ("analogies", 3, 2)
    assert report["analogies"][0]["questions_total"] == 19_544
    assert [c["kind"] for c in report["coverage"]] == ["similarity", "similarity", "analogy", "analogy"]
    neighbours = report["neighbours"]
    assert neighbours["oov"] == ["ghost"]
    assert [p["key"] for p in neighbours["probes"]] == ["a", "b"]
    assert neighbours["probes"][0]["neighbours"][0]["key"] == "b"
    assert len(neighbours["probes"][0]["neighbours"]) == 3
    assert report["projection"]["file"] == "projection.png"
    assert report["projection"]["highlighted"] == ["a", "b"]
    markdown = (output / "report.md").read_text(encoding="utf-8")
    assert markdown.startswith(f"# Embedding evaluation: {table_path}")
    assert "## Word similarity" in markdown and "| a | b (" in markdown


def test_builtin_only_run_plots_frequent_keys(spark, table_path, tmp_path):
    output = tmp_path / "out"
    assert main(["evaluate", "--table", table_path, "--output", str(output), "--similarity", "",
                 "--analogies", "", "--set", "plot_top=4", "--log-level", "ERROR"]) == 0
    report = json.loads((output / "report.json").read_text(encoding="utf-8"))
    assert (report["similarity"], report["analogies"], report["coverage"]) == ([], [], [])
    assert report["projection"]["keys"] == KEYS[:4]


def _known_keys() -> str:
    return ", ".join(sorted(f.name for f in dataclasses.fields(EvaluateConfig)))


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("missing_table", "embedding table not found: {missing}"),
        ("not_a_table", "{plain} is not an embedpipe embedding table (no _manifest.json)"),
        ("missing_similarity", "similarity file not found: {missing}"),
        ("unknown_key", "unknown config key 'bogus' (known keys: {known})"),
        ("output_is_table", "config key 'output' ({table}) must not be the table directory, inside it or above it "
                            "({table})"),
        ("nan_table", "embedding table {nan} has 1 vectors with NaN or Inf values, e.g. key 'b'"),
        ("duplicate_table", "embedding table {duplicate} has duplicate keys (3 rows, 2 distinct keys), e.g. key 'a'"),
    ],
)
def test_bad_inputs_fail_with_one_line_and_write_nothing(spark, table_path, broken_tables, tmp_path, capsys, case,
                                                         expected):
    missing = str(tmp_path / "missing")
    plain = tmp_path / "plain"
    plain.mkdir()
    output = tmp_path / "report"
    table = table_path
    extra: list[str] = []
    if case == "missing_table":
        table = missing
    elif case == "not_a_table":
        table = str(plain)
    elif case in ("nan_table", "duplicate_table"):
        table = broken_tables[case.removesuffix("_table")]
    elif case == "missing_similarity":
        extra = ["--similarity", f"builtin,{missing}"]
    elif case == "unknown_key":
        extra = ["--set", "bogus=1"]
    argv = ["evaluate", "--table", table, "--output", str(output), "--log-level", "ERROR", *extra]
    if case == "output_is_table":
        argv[4] = table_path
    capsys.readouterr()
    assert main(argv) == 2
    message = expected.format(missing=missing, plain=plain, known=_known_keys(), table=table_path, **broken_tables)
    assert capsys.readouterr().err == f"embedpipe evaluate: error: {message}\n"
    assert _leftovers(tmp_path, "report") == []
    assert len(read_embedding_table(table_path)) == len(KEYS)  # the table is untouched


def test_failed_run_keeps_the_previous_report(spark, table_path, tmp_path, capsys):
    output = tmp_path / "report"
    base = ["evaluate", "--table", table_path, "--output", str(output), "--log-level", "ERROR", "--analogies", ""]
    assert main([*base, "--similarity", ""]) == 0
    before = (output / "report.json").read_bytes()
    assert main([*base, "--similarity", str(tmp_path / "nope.tsv")]) == 2
    assert (output / "report.json").read_bytes() == before
    assert _leftovers(tmp_path, "report") == ["report"]
