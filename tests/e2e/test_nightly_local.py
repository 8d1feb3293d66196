"""The nightly DAG's own spark-submit commands, run for real with --master local[2] on demo data.

Day 1 runs and publishes; day 2's feed is truncated, so its quality gate fails and day 1 stays
published; rerunning day 1 (a cleared DAG run) reproduces the same table, report and publication.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

from embedpipe.demo.generator import generate_corpus, write_analogy_file, write_similarity_file
from embedpipe.orchestration.nightly import load_settings, run_paths
from embedpipe.publish import PUBLISHED_FILE
from embedpipe.table import read_embedding_table

os.environ["AIRFLOW_HOME"] = tempfile.mkdtemp(prefix="embedpipe-airflow-home-")
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"

from airflow_support import import_airflow, root_logging_kept

ROOT = Path(__file__).resolve().parents[2]
DAY1, DAY2 = "2026-11-24", "2026-11-25"
MIN_ROWS = 150
pytestmark = pytest.mark.slow  # twelve spark-submit runs: in `pytest -m slow` and CI, not the default run
TIMINGS: list[tuple[str, str, float]] = []  # (run_date, task, seconds): shown with pytest -s


@pytest.fixture(autouse=True)
def _root_logging_untouched():
    with root_logging_kept():
        yield


@pytest.fixture(scope="module")
def nightly(tmp_path_factory):
    """Demo corpora for two days, a job config and DAG settings pointing at them, and the built DAG."""
    import_airflow()
    from embedpipe.orchestration.nightly_dag import build_dag

    if not (Path(sys.executable).parent / "spark-submit").exists():
        pytest.skip("spark-submit is not installed beside this interpreter")
    root = tmp_path_factory.mktemp("nightly")
    info = generate_corpus(root / "corpus" / DAY1 / "corpus.txt", documents=1500, seed=3)
    generate_corpus(root / "corpus" / DAY2 / "corpus.txt", documents=12, seed=3)  # a truncated feed
    analogies = write_analogy_file(root / "eval" / "analogies.txt", info)
    similarity = write_similarity_file(root / "eval" / "similarity.tsv", info)
    (root / "conf").mkdir()
    (root / "conf" / "nightly.toml").write_text(f"""
[spark]
shuffle_partitions = 2
log_level = "ERROR"

[tokenize]
min_count = 3

[train]
method = "word2vec"
dim = 16
seed = 5

[train.word2vec]
epochs = 1

[evaluate]
similarity = ["{similarity}"]
analogies = ["{analogies}"]

[publish]
min_rows = {MIN_ROWS}
max_oov_rate = 0.5
""", encoding="utf-8")
    (root / "conf" / "nightly_dag.toml").write_text(f"""
project_root = ".."
corpus = "corpus/{{run_date}}"
data_root = "data"
jobs_dir = "{ROOT}/jobs"
[spark_conf]
"spark.ui.enabled" = "false"
"spark.driver.memory" = "1g"
[env_vars]
PYSPARK_PYTHON = "{sys.executable}"
PYSPARK_DRIVER_PYTHON = "{sys.executable}"
""", encoding="utf-8")
    settings = load_settings(root / "conf" / "nightly_dag.toml")
    return {"settings": settings, "dag": build_dag(settings)}


def _run_day(nightly, run_date, monkeypatch):
    """Run the DAG's four commands in order like the scheduler (stop at the first failure)."""
    from embedpipe.orchestration.nightly_dag import render_commands

    monkeypatch.setenv("AIRFLOW_CONN_SPARK_DEFAULT", '{"conn_type": "spark", "host": "local[2]"}')
    commands = render_commands(nightly["dag"], run_date)
    env = {**os.environ, **nightly["settings"].env_vars,
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    results = {}
    for task_id, command in commands.items():
        assert command[:3] == ["spark-submit", "--master", "local[2]"]
        started = time.monotonic()
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
        TIMINGS.append((run_date, task_id, round(time.monotonic() - started, 1)))
        results[task_id] = done
        if done.returncode != 0:
            break
    return results


def _published(paths):
    published = Path(paths["published"])
    table = read_embedding_table(str(published))
    return table, json.loads((published / PUBLISHED_FILE).read_text())


def _leftovers(paths):
    """Staging or previous-version directories next to any output (there must be none)."""
    parents = {Path(p).parent for key, p in paths.items() if key != "corpus"}
    return [name for parent in parents for name in os.listdir(parent) if "__embedpipe" in name]


def test_one_date_rerun_and_failing_gate(nightly, monkeypatch):
    day1 = run_paths(nightly["settings"], DAY1)
    first = _run_day(nightly, DAY1, monkeypatch)
    assert {t: r.returncode for t, r in first.items()} == {"tokenize": 0, "train": 0, "evaluate": 0, "publish": 0}, (
        {t: (r.stdout + r.stderr)[-1500:] for t, r in first.items()}
    )
    table = read_embedding_table(day1["table"])
    report = json.loads(Path(day1["report"], "report.json").read_text())
    assert len(table) >= MIN_ROWS
    published, record = _published(day1)
    assert (published.keys, record["run_date"]) == (table.keys, DAY1)
    np.testing.assert_array_equal(published.vectors, table.vectors)

    # Day 2: a truncated feed. Its own partitions are written; the gate fails; day 1 stays published.
    day2 = run_paths(nightly["settings"], DAY2)
    second = _run_day(nightly, DAY2, monkeypatch)
    assert {t: r.returncode for t, r in second.items()} == {"tokenize": 0, "train": 0, "evaluate": 0, "publish": 4}
    rows2 = read_embedding_table(day2["table"]).manifest["rows"]
    assert rows2 < MIN_ROWS
    output = second["publish"].stdout + second["publish"].stderr  # spark-submit merges the driver's stderr
    errors = [line for line in output.splitlines() if line.startswith("embedpipe publish: error:")]
    assert errors == [
        f"embedpipe publish: error: quality gate failed: rows {rows2} < min_rows {MIN_ROWS}; similarity 'similarity' "
        "oov rate 1 > max_oov_rate 0.5; analogy 'analogies' oov rate 1 > max_oov_rate 0.5; published table at "
        f"{day1['published']} left unchanged (run_date {DAY1})"
    ]
    assert "Traceback" not in output
    still, still_record = _published(day1)
    assert still.keys == table.keys and still_record == record

    # Rerun day 1 (a cleared DAG run or a backfill): the same tokens, table, report and publication.
    third = _run_day(nightly, DAY1, monkeypatch)
    assert {t: r.returncode for t, r in third.items()} == {"tokenize": 0, "train": 0, "evaluate": 0, "publish": 0}
    again = read_embedding_table(day1["table"])
    assert again.keys == table.keys
    np.testing.assert_array_equal(again.vectors, table.vectors)
    report_again = json.loads(Path(day1["report"], "report.json").read_text())
    for section in ("similarity", "analogies", "coverage", "table_stats"):
        assert report_again[section] == report[section]
    republished, record_again = _published(day1)
    np.testing.assert_array_equal(republished.vectors, table.vectors)
    assert record_again["run_date"] == DAY1
    assert _leftovers(day1) == [] and _leftovers(day2) == []
    assert re.fullmatch(r".*/published/words", day1["published"])
    print("spark-submit seconds:", TIMINGS)
