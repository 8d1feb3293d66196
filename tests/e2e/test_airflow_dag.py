"""The nightly DAG loaded by real Airflow: tasks, dependencies, schedule and the exact spark-submit commands."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pendulum
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
                  "--output", f"{data}/tables/words/run_date=2026-11-24",
                  f"--init-from={data}/published/words", "--init-from-missing", "cold"],
        "evaluate": [*common, "--name", "embedpipe-evaluate-2026-11-24", f"{ROOT}/jobs/evaluate.py", *config,
                     "--table", f"{data}/tables/words/run_date=2026-11-24",
                     "--output", f"{data}/reports/words/run_date=2026-11-24"],
        "publish": [*common, "--name", "embedpipe-publish-2026-11-24", f"{ROOT}/jobs/publish.py", *config,
                    "--table", f"{data}/tables/words/run_date=2026-11-24",
                    "--report", f"{data}/reports/words/run_date=2026-11-24",
                    "--output", f"{data}/published/words", "--run-date", "2026-11-24",
                    "--report-output", f"{data}/reports/words-publish/run_date=2026-11-24"],
    }
    # warm start from the published table (a cold start while there is none); the run param cold_start forces one
    cold = nightly_dag.render_commands(nightly_dag.dag, "2026-11-24", cold_start=True)
    assert cold["train"] == [*commands["train"][:-3], "--init-from=", "--init-from-missing", "cold"]
    assert nightly_dag.dag.params["cold_start"] is False
    # A backfill of another day touches only that day's partitions (and the one published path).
    other = nightly_dag.render_commands(nightly_dag.dag, "2026-11-02")
    for task_id, command in commands.items():
        assert other[task_id] == [arg.replace("2026-11-24", "2026-11-02") for arg in command]


def test_the_local_master_comes_from_the_connection(nightly_dag, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_SPARK_DEFAULT", '{"conn_type": "spark", "host": "local[2]"}')
    commands = nightly_dag.render_commands(nightly_dag.dag, "2026-11-24")
    assert {tuple(c[:3]) for c in commands.values()} == {("spark-submit", "--master", "local[2]")}


def _project(root: Path) -> None:
    """A project root as the DAG needs it: the four job scripts and the job config."""
    (root / "jobs").mkdir(parents=True)
    for job in ("tokenize", "train", "evaluate", "publish"):
        (root / "jobs" / f"{job}.py").write_text("", encoding="utf-8")
    (root / "conf").mkdir(exist_ok=True)
    (root / "conf" / "nightly.toml").write_text("", encoding="utf-8")


def test_settings_are_validated(tmp_path):
    settings = tmp_path / "conf" / "nightly_dag.toml"
    settings.parent.mkdir()
    settings.write_text('corpus = "in/{run_date}"\ndata_root = "out"\nstart_date = "1 Nov"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="^config key 'start_date' must be a date YYYY-MM-DD, got '1 Nov'$"):
        load_settings(settings)
    settings.write_text('corpus = "in/{run_date}"\ndata_root = "out"\nschedul = "@daily"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="^unknown config key 'schedul'"):
        load_settings(settings)
    _project(tmp_path / "conf")
    settings.write_text('corpus = "in/{run_date}"\ndata_root = "out"\n', encoding="utf-8")
    loaded = load_settings(settings)  # relative paths: under project_root, by default the file's folder
    assert (loaded.corpus, loaded.data_root, loaded.jobs_dir) == (
        f"{tmp_path}/conf/in/{{run_date}}", f"{tmp_path}/conf/out", f"{tmp_path}/conf/jobs"
    )
    _project(tmp_path)
    settings.write_text('project_root = ".."\ncorpus = "/in/{run_date}"\ndata_root = "hdfs:///out"\n', "utf-8")
    loaded = load_settings(settings)
    assert (loaded.corpus, loaded.data_root, loaded.job_config) == (
        "/in/{run_date}", "hdfs:///out", f"{tmp_path}/conf/nightly.toml"
    )


def test_a_copied_settings_file_without_the_project_fails_when_the_dag_loads(tmp_path, monkeypatch, nightly_dag):
    """The shipped file copied elsewhere resolves project_root = "../.." to a folder without jobs/."""
    copied = tmp_path / "etc" / "airflow" / "nightly_dag.toml"
    copied.parent.mkdir(parents=True)
    copied.write_text((ROOT / "conf" / "airflow" / "nightly_dag.toml").read_text(encoding="utf-8"), "utf-8")
    missing = (f"nightly settings: job script {tmp_path}/jobs/tokenize.py not found (project_root {tmp_path}, "
               f"from {copied}); set project_root or jobs_dir")
    with pytest.raises(ConfigError) as raised:
        load_settings(copied)
    assert str(raised.value) == missing

    # The same line is Airflow's import error for the DAG file, before any run is scheduled.
    try:
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:  # Airflow < 3.1
        from airflow.models.dagbag import DagBag
    monkeypatch.setenv("EMBEDPIPE_NIGHTLY_SETTINGS", str(copied))
    bag = DagBag(dag_folder=nightly_dag.__file__)
    assert bag.dag_ids == []
    assert [error.strip().splitlines()[-1] for error in bag.import_errors.values()] == [
        f"embedpipe.errors.ConfigError: {missing}"
    ]

    # Scripts found, the job config not: the line names the config.
    (tmp_path / "jobs").mkdir()
    for job in ("tokenize", "train", "evaluate", "publish"):
        (tmp_path / "jobs" / f"{job}.py").write_text("", encoding="utf-8")
    with pytest.raises(ConfigError, match=(
        f"^nightly settings: job config {tmp_path}/conf/nightly.toml not found .*; set project_root or job_config$"
    )):
        load_settings(copied)


def test_a_manual_run_of_one_date_and_the_interval_it_covers(nightly_dag, cluster_connection, capsys):
    """`airflow dags test` gets the last interval complete at its logical date: the printed one covers run_date."""
    from airflow.serialization.encoders import coerce_to_core_timetable

    assert nightly_dag._print_commands(["2026-11-24"]) == 0
    # The provider's hook also logs each command to stdout: keep the printer's own lines.
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith(("# ", "spark-submit "))]
    assert lines[:2] == [
        "# data interval [2026-11-24T02:00:00+00:00, 2026-11-25T02:00:00+00:00); run it with:",
        "# airflow dags test embedpipe_nightly 2026-11-25T02:00:00+00:00",
    ]
    tokenize = lines[lines.index("# tokenize") + 1]
    assert "--output /data/embedpipe/tokens/run_date=2026-11-24" in tokenize

    # What DAG.test() (behind `airflow dags test`) infers from a logical date, by the same call it makes.
    def run_date_of(logical_date: str) -> str:
        timetable = coerce_to_core_timetable(nightly_dag.dag.timetable)
        interval = timetable.infer_manual_data_interval(run_after=pendulum.parse(logical_date))
        return interval.start.strftime("%Y-%m-%d")

    assert run_date_of(nightly_dag.manual_logical_date(nightly_dag.dag, "2026-11-24")) == "2026-11-24"
    assert run_date_of("2026-11-25T02:00:00+00:00") == "2026-11-24"
    assert run_date_of("2026-11-24") == "2026-11-22"  # a bare date: the interval complete by its midnight


def test_the_command_printer_gives_one_line_errors(nightly_dag, capsys, monkeypatch, tmp_path):
    assert nightly_dag._print_commands(["2026-11-24T05"]) == 2
    assert capsys.readouterr().err == (
        "embedpipe nightly_dag: error: run date must be YYYY-MM-DD (the data interval's start), got '2026-11-24T05'\n"
    )
    monkeypatch.setenv("EMBEDPIPE_NIGHTLY_SETTINGS", str(tmp_path / "nightly_dag.toml"))
    assert nightly_dag._print_commands(["2026-11-24"]) == 2
    missing = f"embedpipe nightly_dag: error: config file not found: {tmp_path}/nightly_dag.toml\n"
    assert capsys.readouterr() == ("", missing)


def test_the_demo_settings_do_not_stall_a_test_run(nightly_dag):
    """conf/airflow/nightly_dag_demo.toml: the small job config, no retries, no backfill of every day."""
    settings = load_settings(ROOT / "conf" / "airflow" / "nightly_dag_demo.toml")
    assert (settings.job_config, settings.corpus, settings.data_root) == (
        f"{ROOT}/conf/nightly-small.toml", f"{ROOT}/out/demo/data/corpus.txt", f"{ROOT}/out/nightly"
    )
    dag = nightly_dag.build_dag(settings)
    assert {t.task_id: t.retries for t in dag.tasks} == {"tokenize": 0, "train": 0, "evaluate": 0, "publish": 0}
    assert dag.catchup is False
