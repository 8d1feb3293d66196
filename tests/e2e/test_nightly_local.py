"""The nightly DAG's own spark-submit commands, run for real with --master local[2] on demo data.

The job config is the shipped ``conf/nightly-small.toml`` (``conf/nightly.toml`` sized for the demo
corpus: same method and determinism settings), run from a folder holding the demo's evaluation files
where that config expects them (``out/demo/data/``), as a user runs it from the checkout. Day 1 runs
and publishes; day 2's feed is truncated, so its quality gate fails and day 1 stays published;
rerunning day 1 (a cleared DAG run) publishes a bit-identical table, the same report and publication.
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
import pyarrow.parquet as pq
import pytest

from embedpipe.arrow_vectors import list_array_to_matrix
from embedpipe.config import read_config_file
from embedpipe.demo.generator import generate_corpus, write_analogy_file, write_similarity_file
from embedpipe.orchestration.nightly import load_settings, run_paths
from embedpipe.publish import PUBLISHED_FILE
from embedpipe.table import read_embedding_table

os.environ["AIRFLOW_HOME"] = tempfile.mkdtemp(prefix="embedpipe-airflow-home-")
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"

from airflow_support import import_airflow, root_logging_kept

ROOT = Path(__file__).resolve().parents[2]
DAY1, DAY2 = "2026-11-24", "2026-11-25"
JOB_CONFIG = ROOT / "conf" / "nightly-small.toml"  # the shipped small-data config, as it is
MIN_ROWS = read_config_file(JOB_CONFIG)["publish"]["min_rows"]
DOCUMENTS = 3000  # day 1: clears the shipped small gate with room (planted rho 0.36, analogies 0.25)
pytestmark = pytest.mark.slow  # twelve spark-submit runs: in `pytest -m slow` and CI, not the default run
TIMINGS: list[tuple[str, str, float]] = []  # (run_date, task, seconds): shown with pytest -s


@pytest.fixture(autouse=True)
def _root_logging_untouched():
    with root_logging_kept():
        yield


@pytest.fixture(scope="module")
def nightly(tmp_path_factory):
    """Demo corpora for two days, the demo's evaluation files, DAG settings pointing at them, and the built DAG."""
    import_airflow()
    from embedpipe.orchestration.nightly_dag import build_dag

    if not (Path(sys.executable).parent / "spark-submit").exists():
        pytest.skip("spark-submit is not installed beside this interpreter")
    root = tmp_path_factory.mktemp("nightly")
    info = generate_corpus(root / "corpus" / DAY1 / "corpus.txt", documents=DOCUMENTS, seed=3)
    generate_corpus(root / "corpus" / DAY2 / "corpus.txt", documents=12, seed=3)  # a truncated feed
    write_analogy_file(root / "out" / "demo" / "data" / "planted-analogies.txt", info)
    write_similarity_file(root / "out" / "demo" / "data" / "planted-similarity.tsv", info)
    (root / "conf").mkdir()
    (root / "conf" / "nightly_dag.toml").write_text(f"""
project_root = ".."
corpus = "corpus/{{run_date}}"
data_root = "data"
jobs_dir = "{ROOT}/jobs"
job_config = "{JOB_CONFIG}"
[spark_conf]
"spark.ui.enabled" = "false"
"spark.driver.memory" = "1g"
[env_vars]
PYSPARK_PYTHON = "{sys.executable}"
PYSPARK_DRIVER_PYTHON = "{sys.executable}"
""", encoding="utf-8")
    settings = load_settings(root / "conf" / "nightly_dag.toml")
    return {"root": root, "settings": settings, "dag": build_dag(settings)}


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
        done = subprocess.run(command, env=env, cwd=nightly["root"], capture_output=True, text=True, timeout=600)
        TIMINGS.append((run_date, task_id, round(time.monotonic() - started, 1)))
        results[task_id] = done
        if done.returncode != 0:
            break
    return results


def _published(paths):
    published = Path(paths["published"])
    table = read_embedding_table(str(published))
    return table, json.loads((published / PUBLISHED_FILE).read_text())


def _table_content(path):
    """A table bit for bit: each Parquet part's columns by the part's index (vectors as their float32 bytes) and
    the manifest without its creation time.

    The files' own bytes differ between runs of the same table: their names carry a random id, Spark's
    Parquet writer lists a column chunk's encodings in hash order, and the footer's copy of the manifest
    holds ``created_at``.
    """
    manifest = json.loads(Path(path, "_manifest.json").read_text())
    manifest.pop("created_at")
    parts = {}
    for name in sorted(name for name in os.listdir(path) if name.endswith(".parquet")):
        part = pq.read_table(Path(path, name))
        parts[name.split("-")[1]] = {
            column: list_array_to_matrix(part[column], manifest["dim"]).tobytes() if column == "vector"
            else part[column].to_pylist()
            for column in part.column_names
        }
    return parts, manifest


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
    assert (table.manifest["method"], table.manifest["params"]["processes"]) == ("sgns", 1)
    published, record = _published(day1)
    assert (published.keys, record["run_date"]) == (table.keys, DAY1)
    np.testing.assert_array_equal(published.vectors, table.vectors)
    published_content = _table_content(day1["published"])

    # Day 2: a truncated feed. Its own partitions are written; the gate fails; day 1 stays published.
    day2 = run_paths(nightly["settings"], DAY2)
    second = _run_day(nightly, DAY2, monkeypatch)
    assert {t: r.returncode for t, r in second.items()} == {"tokenize": 0, "train": 0, "evaluate": 0, "publish": 4}
    rows2 = read_embedding_table(day2["table"]).manifest["rows"]
    assert rows2 < MIN_ROWS
    output = second["publish"].stdout + second["publish"].stderr  # spark-submit merges the driver's stderr
    errors = [line for line in output.splitlines() if line.startswith("embedpipe publish: error:")]
    assert len(errors) == 1 and re.fullmatch(
        re.escape(f"embedpipe publish: error: quality gate failed: rows {rows2} < min_rows {MIN_ROWS}; ")
        + r"similarity 'planted-similarity' spearman .+; analogy 'planted-analogies' accuracy .+; "
        + re.escape("similarity 'planted-similarity' oov rate 1 > max_oov_rate 0.5; analogy 'planted-analogies' "
                    f"oov rate 1 > max_oov_rate 0.5; published table at {day1['published']} left unchanged "
                    f"(run_date {DAY1})"),
        errors[0],
    ), errors
    assert "Traceback" not in output
    gate = json.loads(Path(day2["gate_report"], "report.json").read_text())  # the gate's figures, not published
    assert (gate["published"], gate["run_date"], gate["reason"]) == (False, DAY2, errors[0].split("error: ", 1)[1])
    still, still_record = _published(day1)
    assert still.keys == table.keys and still_record == record

    # Rerun day 1 (a cleared DAG run or a backfill) with the shipped settings: a bit-identical table, the same
    # report and publication.
    third = _run_day(nightly, DAY1, monkeypatch)
    assert {t: r.returncode for t, r in third.items()} == {"tokenize": 0, "train": 0, "evaluate": 0, "publish": 0}
    again = read_embedding_table(day1["table"])
    assert again.keys == table.keys
    np.testing.assert_array_equal(again.vectors, table.vectors)
    report_again = json.loads(Path(day1["report"], "report.json").read_text())
    for section in ("similarity", "analogies", "coverage", "table_stats"):
        assert report_again[section] == report[section]
    republished, record_again = _published(day1)
    assert _table_content(day1["published"]) == published_content
    assert _table_content(day1["table"]) == published_content
    assert record_again["run_date"] == DAY1
    assert _leftovers(day1) == [] and _leftovers(day2) == []
    assert re.fullmatch(r".*/published/words", day1["published"])
    print("spark-submit seconds:", TIMINGS)
