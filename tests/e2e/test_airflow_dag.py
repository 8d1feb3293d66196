"""The nightly DAG loaded by real Airflow: tasks, dependencies, schedule and the exact spark-submit commands."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from embedpipe.errors import ConfigError
from embedpipe.orchestration.nightly import load_settings

# Airflow reads AIRFLOW_HOME when first imported: keep its airflow.cfg and logs out of the user's home.
os.environ["AIRFLOW_HOME"] = tempfile.mkdtemp(prefix="embedpipe-airflow-home-")
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"

from airflow_support import import_airflow, root_logging_kept

ROOT = Path(__file__).resolve().parents[2]
CLUSTER = '{"conn_type": "spark", "host": "spark://spark-master", "port": 7077}'


@pytest.fixture(autouse=True)
def _root_logging_untouched():
    with root_logging_kept():
        yield


@pytest.fixture(scope="module")
def nightly_dag():
    import_airflow()
    from embedpipe.orchestration import nightly_dag

    return nightly_dag


@pytest.fixture()
def cluster_connection(monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_SPARK_DEFAULT", CLUSTER)


def test_dagbag_loads_the_dag_without_a_database(nightly_dag):
    try:
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:  # Airflow < 3.1
        from airflow.models.dagbag import DagBag

    bag = DagBag(dag_folder=os.path.dirname(nightly_dag.__file__))
    assert bag.import_errors == {}
    assert sorted(bag.dag_ids) == ["embedpipe_nightly"]


def test_tasks_dependencies_and_schedule(nightly_dag):
    from airflow.timetables.interval import CronDataIntervalTimetable

    dag = nightly_dag.dag
    assert [t.task_id for t in dag.topological_sort()] == ["tokenize", "train", "evaluate", "publish"]
    upstream = {t.task_id: sorted(t.upstream_task_ids) for t in dag.tasks}
    assert upstream == {"tokenize": [], "train": ["tokenize"], "evaluate": ["train"], "publish": ["evaluate"]}
    assert isinstance(dag.timetable, CronDataIntervalTimetable)
    assert dag.timetable.summary == "0 2 * * *"
    assert dag.catchup is True
    assert dag.max_active_runs == 1
    assert dag.start_date.isoformat() == "2026-11-01T00:00:00+00:00"
    assert {t.task_id: t.retries for t in dag.tasks} == {"tokenize": 2, "train": 2, "evaluate": 2, "publish": 0}
    assert {t.retry_delay.total_seconds() for t in dag.tasks} == {600.0}
    assert {type(t).__name__ for t in dag.tasks} == {"SparkSubmitOperator"}


def test_exact_spark_submit_commands_for_one_date(nightly_dag, cluster_connection):
    commands = nightly_dag.render_commands(nightly_dag.dag, "2026-11-24")
    common = ["spark-submit", "--master", "spark://spark-master:7077", "--conf", "spark.sql.adaptive.enabled=true"]
    config = ["--config", f"{ROOT}/conf/nightly.toml"]
    data = "/data/embedpipe"
    assert commands == {
        "tokenize": [*common, "--name", "embedpipe-tokenize-2026-11-24", f"{ROOT}/jobs/tokenize.py", *config,
                     "--input", "/data/corpus/2026-11-24", "--output", f"{data}/tokens/run_date=2026-11-24"],
        "train": [*common, "--name", "embedpipe-train-2026-11-24", f"{ROOT}/jobs/train.py", *config,
                  "--input", f"{data}/tokens/run_date=2026-11-24",
                  "--output", f"{data}/tables/words/run_date=2026-11-24"],
        "evaluate": [*common, "--name", "embedpipe-evaluate-2026-11-24", f"{ROOT}/jobs/evaluate.py", *config,
                     "--table", f"{data}/tables/words/run_date=2026-11-24",
                     "--output", f"{data}/reports/words/run_date=2026-11-24"],
        "publish": [*common, "--name", "embedpipe-publish-2026-11-24", f"{ROOT}/jobs/publish.py", *config,
                    "--table", f"{data}/tables/words/run_date=2026-11-24",
                    "--report", f"{data}/reports/words/run_date=2026-11-24",
                    "--output", f"{data}/published/words", "--run-date", "2026-11-24"],
    }
    # A backfill of another day touches only that day's partitions (and the one published path).
    other = nightly_dag.render_commands(nightly_dag.dag, "2026-11-02")
    for task_id, command in commands.items():
        assert other[task_id] == [arg.replace("2026-11-24", "2026-11-02") for arg in command]


def test_the_local_master_comes_from_the_connection(nightly_dag, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_SPARK_DEFAULT", '{"conn_type": "spark", "host": "local[2]"}')
    commands = nightly_dag.render_commands(nightly_dag.dag, "2026-11-24")
    assert {tuple(c[:3]) for c in commands.values()} == {("spark-submit", "--master", "local[2]")}


def test_settings_are_validated(tmp_path):
    settings = tmp_path / "conf" / "nightly_dag.toml"
    settings.parent.mkdir()
    settings.write_text('corpus = "in/{run_date}"\ndata_root = "out"\nstart_date = "1 Nov"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="^config key 'start_date' must be a date YYYY-MM-DD, got '1 Nov'$"):
        load_settings(settings)
    settings.write_text('corpus = "in/{run_date}"\ndata_root = "out"\nschedul = "@daily"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="^unknown config key 'schedul'"):
        load_settings(settings)
    settings.write_text('corpus = "in/{run_date}"\ndata_root = "out"\n', encoding="utf-8")
    loaded = load_settings(settings)  # relative paths: under project_root, by default the file's folder
    assert (loaded.corpus, loaded.data_root, loaded.jobs_dir) == (
        f"{tmp_path}/conf/in/{{run_date}}", f"{tmp_path}/conf/out", f"{tmp_path}/conf/jobs"
    )
    settings.write_text('project_root = ".."\ncorpus = "/in/{run_date}"\ndata_root = "hdfs:///out"\n', "utf-8")
    loaded = load_settings(settings)
    assert (loaded.corpus, loaded.data_root, loaded.job_config) == (
        "/in/{run_date}", "hdfs:///out", f"{tmp_path}/conf/nightly.toml"
    )
