"""`embedpipe publish`: the quality gate and the atomic publication, end to end through the CLI."""

from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd
import pytest

from embedpipe.cli import main
from embedpipe.errors import InputError
from embedpipe.jobconfig import PublishConfig
from embedpipe.publish import PUBLISHED_FILE, check_report_matches_table, quality_checks
from embedpipe.table import read_embedding_table

KEYS = ["france", "paris", "italy", "rome", "cat", "dog"]
# paris - france + italy = rome; cat ~ dog; countries ~ countries.
GOOD = np.array([[1, 0, 0, 0], [1, 1, 0, 0], [0, 0, 1, 0], [0, 1, 1, 0], [0, 0, 0, 1], [0.2, 0, 0, 1]], np.float32)
BAD = GOOD[[4, 5, 1, 2, 0, 3]]  # the same vectors on the wrong keys
SIMILARITY = "cat\tdog\t9\nfrance\titaly\t7\nparis\trome\t6\ncat\tparis\t1\ndog\trome\t1\n"
ANALOGIES = ": capital-common-countries\nfrance paris italy rome\nitaly rome france paris\n"


def _table(write_table, path, vectors):
    write_table(path, [(k, i, 10 - i, v.tolist()) for i, (k, v) in enumerate(zip(KEYS, vectors, strict=True))], dim=4)
    return str(path)


def _evaluate(table, report, files):
    code = main(["evaluate", "--table", table, "--output", str(report), "--similarity", str(files / "sim.tsv"),
                 "--analogies", str(files / "analogies.txt"), "--log-level", "ERROR"])
    assert code == 0
    return str(report)


@pytest.fixture(scope="module")
def runs(write_table, tmp_path_factory):
    """Two nightly runs: a good table (day 1) and a scrambled one (day 2), each with its evaluate report."""
    root = tmp_path_factory.mktemp("publish")
    (root / "sim.tsv").write_text(SIMILARITY, encoding="utf-8")
    (root / "analogies.txt").write_text(ANALOGIES, encoding="utf-8")
    good = _table(write_table, root / "tables" / "run_date=2026-11-24", GOOD)
    bad = _table(write_table, root / "tables" / "run_date=2026-11-25", BAD)
    return {
        "root": root,
        "good": (good, _evaluate(good, root / "reports" / "run_date=2026-11-24", root)),
        "bad": (bad, _evaluate(bad, root / "reports" / "run_date=2026-11-25", root)),
    }


GATE = ["--min-rows", "6", "--min-similarity-spearman", "0.5", "--min-analogy-accuracy", "0.9",
        "--max-oov-rate", "0", "--log-level", "ERROR"]


def _publish(run, output, run_date, *extra):
    table, report = run
    return main(["publish", "--table", table, "--report", report, "--output", str(output), "--run-date", run_date,
                 *GATE, *extra])


def _snapshot(path):
    """Every file below ``path`` with its bytes (the published record's timestamp left out)."""
    files = {}
    for folder, _, names in os.walk(path):
        for name in names:
            full = os.path.join(folder, name)
            data = open(full, "rb").read()
            if name == f".{PUBLISHED_FILE}.crc":  # checksum of the record below, which has a timestamp
                continue
            if name == PUBLISHED_FILE:
                record = json.loads(data)
                record.pop("published_at")
                data = json.dumps(record, sort_keys=True).encode()
            files[os.path.relpath(full, path)] = data
    return files


def test_publish_copies_the_table_and_reruns_identically(runs, tmp_path):
    output = tmp_path / "published" / "words"
    assert _publish(runs["good"], output, "2026-11-24") == 0
    first = _snapshot(output)
    assert _publish(runs["good"], output, "2026-11-24") == 0
    assert _snapshot(output) == first
    assert sorted(os.listdir(output.parent)) == ["words"]  # no staging or previous leftovers

    source = read_embedding_table(runs["good"][0])
    published = read_embedding_table(str(output))
    assert published.keys == source.keys
    np.testing.assert_array_equal(published.vectors, source.vectors)
    assert published.manifest == source.manifest
    assert sorted(pd.read_parquet(output)["key"]) == sorted(KEYS)  # plain readers see only the rows

    record = json.loads((output / PUBLISHED_FILE).read_text())
    assert record["run_date"] == "2026-11-24"
    assert record["rows"] == 6
    assert record["table"].endswith("run_date=2026-11-24")
    assert all(c["passed"] for c in record["checks"])
    assert {c["key"] for c in record["checks"]} == {
        "min_rows", "min_similarity_spearman", "min_analogy_accuracy", "max_oov_rate"
    }


def test_failing_gate_keeps_the_previous_table(runs, tmp_path, capsys):
    output = tmp_path / "published"
    assert _publish(runs["bad"], output, "2026-11-25") == 4  # nothing published yet: nothing appears
    assert capsys.readouterr().err.strip().endswith(f"; nothing published at {output}")
    assert not output.exists()
    assert _publish(runs["good"], output, "2026-11-24") == 0
    before = _snapshot(output)
    capsys.readouterr()

    assert _publish(runs["bad"], output, "2026-11-25") == 4
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "embedpipe publish: error: quality gate failed: similarity 'sim' spearman -0.8603 < min_similarity_spearman "
        "0.5; analogy 'analogies' accuracy 0.5 < min_analogy_accuracy 0.9; published table at "
        f"{output} left unchanged (run_date 2026-11-24)"
    ]
    assert _snapshot(output) == before
    assert sorted(os.listdir(tmp_path)) == ["published"]


def test_missing_report_or_report_of_another_table(runs, tmp_path, capsys):
    table, _ = runs["good"]
    output = tmp_path / "published"
    missing = tmp_path / "no-report"
    assert main(["publish", "--table", table, "--report", str(missing), "--output", str(output),
                 "--log-level", "ERROR"]) == 2
    assert capsys.readouterr().err.strip() == (
        f"embedpipe publish: error: evaluation report not found: file:{missing}/report.json"
    )
    assert not output.exists()

    stale = runs["bad"][1]  # day 2's report does not describe day 1's table
    assert main(["publish", "--table", table, "--report", stale, "--output", str(output),
                 "--log-level", "ERROR"]) == 2
    assert capsys.readouterr().err.strip() == (
        f"embedpipe publish: error: file:{stale}/report.json evaluated another table: {runs['bad'][0]}, not {table} "
        "(rerun evaluate on this table)"
    )
    assert not output.exists()


def test_a_table_breaking_the_format_is_never_published(spark, broken_tables, tmp_path, capsys):
    table = broken_tables["nan"]
    report = tmp_path / "report"
    report.mkdir()
    (report / "report.json").write_text(json.dumps({"table": {"path": table}}))
    output = tmp_path / "published"
    assert main(["publish", "--table", table, "--report", str(report), "--output", str(output),
                 "--log-level", "ERROR"]) == 2
    assert capsys.readouterr().err.strip() == (
        f"embedpipe publish: error: embedding table {table} has 1 vectors with NaN or Inf values, e.g. key 'b'"
    )
    assert not output.exists()


def test_backfill_leaves_a_later_publication(runs, tmp_path):
    output = tmp_path / "published"
    newer = (runs["good"][0], runs["good"][1])
    assert _publish(newer, output, "2026-11-30") == 0
    before = _snapshot(output)
    assert _publish(runs["good"], output, "2026-11-24") == 0  # gate passes, publication skipped
    assert _snapshot(output) == before
    assert _publish(runs["good"], output, "2026-11-24", "--allow-older") == 0
    assert json.loads((output / PUBLISHED_FILE).read_text())["run_date"] == "2026-11-24"


def test_bad_publish_config_is_refused(tmp_path, capsys):
    args = ["publish", "--table", "t", "--report", "r", "--output", str(tmp_path / "out"), "--log-level", "ERROR"]
    assert main([*args, "--set", "min_metrics.similarity.sim.spearman=high"]) == 2
    assert capsys.readouterr().err.strip() == (
        "embedpipe publish: error: config key 'min_metrics.similarity.sim.spearman' must be a finite number, "
        "got 'high'"
    )
    assert main([*args, "--run-date", "24.11.2026"]) == 2
    assert capsys.readouterr().err.strip() == (
        "embedpipe publish: error: config key 'run_date' must be a date YYYY-MM-DD, got '24.11.2026'"
    )
    assert not (tmp_path / "out").exists()


def test_output_inside_the_table_is_refused(spark, tmp_path, capsys):
    table, output = tmp_path / "table", tmp_path / "table" / "published"
    assert main(["publish", "--table", str(table), "--report", "r", "--output", str(output),
                 "--log-level", "ERROR"]) == 2
    assert capsys.readouterr().err.strip() == (
        f"embedpipe publish: error: config key 'output' ({output}) must not be the table, inside it or above it "
        f"({table})"
    )
    assert not table.exists()


def test_a_report_of_an_older_table_at_the_same_path_is_refused():
    manifest = {"method": "word2vec", "dim": 4, "rows": 6, "seed": 1, "created_at": "2026-11-25T02:10:00+00:00"}
    report = {"table": {"path": "t", **manifest, "created_at": "2026-11-24T02:10:00+00:00"}}
    with pytest.raises(InputError, match=r"^r/report.json evaluated another table: its created_at is "
                                         r"'2026-11-24T02:10:00\+00:00', the table's manifest says "
                                         r"'2026-11-25T02:10:00\+00:00' \(rerun evaluate on this table\)$"):
        check_report_matches_table(report, manifest, "r/report.json")
    check_report_matches_table({"table": {"path": "t", **manifest}}, manifest, "r/report.json")


def test_metric_paths_and_unmeasured_metrics_fail_the_gate():
    report = {
        "similarity": [{"name": "wordsim353", "spearman": 0.31}, {"name": "simlex999", "spearman": None}],
        "analogies": [],
        "coverage": [{"kind": "similarity", "name": "wordsim353", "oov_rate": 0.25}],
        "recall": {"at_20": 0.12},
    }
    config = PublishConfig(
        table="t", report="r", output="o", min_rows=10, min_similarity_spearman=0.2, min_analogy_accuracy=0.5,
        max_oov_rate=0.3, min_metrics={"similarity.wordsim353.spearman": "0.3", "recall.at_20": "0.2",
                                       "recall.at_50": "0.1"},
    )
    checks = {c.name: c for c in quality_checks(report, 12, config)}
    assert {name: c.passed for name, c in checks.items()} == {
        "rows": True,
        "similarity 'wordsim353' spearman": True,
        "similarity 'simlex999' spearman": False,  # not measured
        "analogy accuracy": False,  # the report has no analogy results at all
        "similarity 'wordsim353' oov rate": True,
        "recall.at_20": False,
        "recall.at_50": False,  # not in the report
        "similarity.wordsim353.spearman": True,
    }
    assert checks["recall.at_20"].describe() == "recall.at_20 0.12 < min_metrics.recall.at_20 0.2"
    assert checks["recall.at_50"].describe() == "recall.at_50 was not measured (min_metrics.recall.at_50 0.1)"
