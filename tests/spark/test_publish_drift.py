"""`publish`'s drift gate: against the published table, skipped (and recorded) on the first publication."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from embedpipe.cli import main
from embedpipe.publish import PUBLISHED_FILE

DIM = 8
KEYS = [f"k{i}" for i in range(60)]
SIMILARITY = "k0\tk1\t9\nk2\tk3\t7\nk4\tk5\t1\n"


def _vectors(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(len(KEYS), DIM)).astype(np.float32)


@pytest.fixture(scope="module")
def days(write_table, tmp_path_factory):
    """Day 1; day 2 = day 1 rotated (plus a little noise); day 3 = unrelated vectors; day 4 = 30% new keys."""
    root = tmp_path_factory.mktemp("drift")
    (root / "sim.tsv").write_text(SIMILARITY, encoding="utf-8")
    first = _vectors(1)
    rotation, _ = np.linalg.qr(np.random.default_rng(2).normal(size=(DIM, DIM)))
    tables = {
        1: (KEYS, first),
        2: (KEYS, (first @ rotation + 0.01 * _vectors(3)).astype(np.float32)),
        3: (KEYS, _vectors(4)),
        4: (KEYS[:42] + [f"new{i}" for i in range(18)], first),
    }
    runs = {}
    for day, (keys, vectors) in tables.items():
        table = root / f"table{day}"
        write_table(table, [(k, i, 100 - i, v.tolist()) for i, (k, v) in enumerate(zip(keys, vectors, strict=True))],
                    dim=DIM)
        report = root / f"report{day}"
        assert main(["evaluate", "--table", str(table), "--output", str(report), "--similarity",
                     str(root / "sim.tsv"), "--log-level", "ERROR"]) == 0
        runs[day] = (str(table), str(report))
    return runs


DRIFT = ["--min-neighbour-overlap", "0.8", "--max-procrustes-residual", "0.2", "--max-added-fraction", "0.2",
         "--max-removed-fraction", "0.2", "--drift-keys", "50", "--drift-k", "5"]


def _publish(run, output, day, *extra):
    table, report = run
    return main(["publish", "--table", table, "--report", report, "--output", str(output),
                 "--run-date", f"2026-11-2{day}", "--min-rows", "10", *DRIFT, "--log-level", "ERROR", *extra])


def _record(output):
    return json.loads((output / PUBLISHED_FILE).read_text())


def _files(path):
    found = {}
    for folder, _, names in os.walk(path):
        for name in names:
            full = os.path.join(folder, name)
            found[os.path.relpath(full, path)] = open(full, "rb").read()
    return found


def test_first_publication_skips_drift_and_a_rotation_passes(days, tmp_path):
    output = tmp_path / "published"
    assert _publish(days[1], output, 1) == 0
    assert _record(output)["drift"] == {"skipped": "nothing published yet (first publication)"}
    assert _publish(days[2], output, 2) == 0
    drift = _record(output)["drift"]
    assert drift["neighbour_overlap"] >= 0.95 and drift["procrustes_residual"] < 0.05
    assert (drift["added_fraction"], drift["removed_fraction"], drift["probes"], drift["k"]) == (0.0, 0.0, 50, 5)
    checks = {c["key"]: c for c in _record(output)["checks"]}
    assert checks["min_neighbour_overlap"]["passed"] and checks["max_procrustes_residual"]["value"] < 0.05


def test_drift_failures_exit_4_name_each_metric_and_leave_the_published_table(days, tmp_path, capsys):
    output, gate = tmp_path / "published", tmp_path / "gate"
    assert _publish(days[1], output, 1, "--report-output", str(gate / "day1")) == 0
    before = _files(output)
    assert _publish(days[3], output, 3, "--report-output", str(gate / "day3")) == 4
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "quality gate failed: " in err
    assert "drift neighbour overlap@5 (top 50 shared keys)" in err and "< min_neighbour_overlap 0.8" in err
    assert "drift Procrustes residual (top 50 shared keys)" in err and "> max_procrustes_residual 0.2" in err
    assert "added keys" not in err and "published table at" in err and "left unchanged (run_date 2026-11-21)" in err
    assert _files(output) == before
    # report_output holds the gate's record, published (the _published.json record) or not (with the reason)
    published = json.loads((gate / "day1" / "report.json").read_text())
    assert (published["published"], published["kind"]) == (True, "publish")
    assert {k: v for k, v in published.items() if k not in ("published", "kind", "output")} == _record(output)
    failed = json.loads((gate / "day3" / "report.json").read_text())
    assert failed["published"] is False and failed["reason"] == err.split("error: ", 1)[1].strip()
    assert failed["drift"]["neighbour_overlap"] < 0.8 and "published_at" not in failed
    assert [c["key"] for c in failed["checks"] if not c["passed"]] == ["min_neighbour_overlap",
                                                                      "max_procrustes_residual"]
    assert _publish(days[4], output, 4) == 4
    err = capsys.readouterr().err
    assert "drift added keys fraction 0.3 > max_added_fraction 0.2" in err
    assert "drift removed keys fraction 0.3 > max_removed_fraction 0.2" in err and "overlap" not in err
    assert _files(output) == before
    # without thresholds the drift is still measured and recorded
    assert main(["publish", "--table", days[3][0], "--report", days[3][1], "--output", str(output),
                 "--run-date", "2026-11-23", "--log-level", "ERROR"]) == 0
    assert _record(output)["drift"]["neighbour_overlap"] < 0.5


def test_the_log_shows_each_drift_metric_on_its_own_line_even_when_the_gate_fails(days, tmp_path, capsys):
    output = tmp_path / "published"
    assert _publish(days[1], output, 1) == 0
    capsys.readouterr()
    assert _publish(days[3], output, 3, "--log-level", "INFO") == 4  # nothing is written: the log is the record
    lines = capsys.readouterr().err.splitlines()
    for name in ("neighbour_overlap", "procrustes_residual", "added_fraction", "removed_fraction", "shared_keys"):
        found = [line for line in lines if f" drift {name}: " in line]
        assert len(found) == 1, (name, lines)
    overlap = next(line for line in lines if " drift neighbour_overlap: " in line)
    assert float(overlap.rsplit(": ", 1)[1]) < 0.8


def test_a_bad_report_output_is_a_one_line_error_and_writes_nothing(days, tmp_path, capsys):
    output, notes = tmp_path / "published", tmp_path / "notes"
    notes.mkdir()
    (notes / "todo.txt").write_text("keep me")
    before = _files(tmp_path), _files(days[2][1])
    # inside the published path, evaluate's report, a foreign folder
    for target in (output / "gate", days[2][1], notes):
        assert _publish(days[2], output, 2, "--report-output", str(target)) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "error: config key 'report_output': output path" in err, err
        assert (_files(tmp_path), _files(days[2][1])) == before
