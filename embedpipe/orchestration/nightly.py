"""What the nightly batch runs, without Airflow: settings, paths per run date, spark-submit arguments.

The DAG (:mod:`embedpipe.orchestration.nightly_dag`) turns these specs into ``SparkSubmitOperator``
tasks; keeping them here means the paths and arguments are defined once, importable (and
testable) without Airflow, and the DAG file stays a thin translation.

Settings come from a TOML file (``conf/airflow/nightly_dag.toml``; another one through the
``EMBEDPIPE_NIGHTLY_SETTINGS`` environment variable). Relative paths in it are resolved against
``project_root`` (the checkout or image root that holds ``jobs/`` and ``conf/``), which itself is
relative to the settings file's folder (the shipped file says ``"../.."``). The file lives in
``conf/airflow/`` because every ``conf/*.toml`` is a job config made of ``[job]`` sections.

The job scripts and the job config are checked when the settings load (so when the DAG is parsed):
a copied settings file whose ``project_root`` resolves elsewhere fails there with one line naming
the missing file, not at the first spark-submit of a scheduled run.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, replace
from pathlib import Path

from embedpipe.config import build_config, option, read_config_file
from embedpipe.errors import ConfigError

SETTINGS_ENV = "EMBEDPIPE_NIGHTLY_SETTINGS"
DEFAULT_SETTINGS = Path(__file__).resolve().parents[2] / "conf" / "airflow" / "nightly_dag.toml"
# The run's date: the start of the data interval the run covers (Airflow's ``ds`` for interval timetables).
RUN_DATE = "{{ data_interval_start | ds }}"
PLACEHOLDER = "{run_date}"
JOBS = ("tokenize", "train", "evaluate", "publish")  # in run order; jobs/<name>.py each
#: The DAG param that forces one run to cold-start (``airflow dags trigger -c '{"cold_start": true}'``).
COLD_START_PARAM = "cold_start"


@dataclass(frozen=True)
class NightlySettings:
    """Where the nightly batch reads and writes, and how Airflow schedules and submits it."""

    corpus: str = option(help="input corpus of one run; {run_date} is replaced by the run's date (YYYY-MM-DD)")
    data_root: str = option(help="root of every output: tokens/, tables/, reports/, published/")
    table_name: str = option("words", "name of the table: tables/<name>/run_date=..., published/<name>")
    dag_id: str = option("embedpipe_nightly", "Airflow DAG id")
    schedule: str = option("0 2 * * *", "cron expression; each run covers the data interval between two ticks")
    timezone: str = option("UTC", "time zone of the schedule")
    start_date: str = option("2026-11-01", "first data interval (YYYY-MM-DD); catchup backfills from here")
    catchup: bool = option(True, "run every missed interval since start_date (backfills), oldest first")
    max_active_runs: int = option(1, "runs at once; 1 keeps publications in date order", min=1)
    retries: int = option(2, "retries of tokenize, train and evaluate (publish is not retried: a gate is "
                             "deterministic); 0 for trying the DAG, as `airflow dags test` waits out each delay",
                          min=0)
    retry_delay_minutes: float = option(10.0, "minutes between retries", min=0.0)
    conn_id: str = option("spark_default", "Airflow connection naming the Spark master (and deploy mode)")
    project_root: str = option(".", "folder holding jobs/ and conf/, relative to this file's folder")
    jobs_dir: str = option("jobs", "folder of the spark-submit entry points (jobs/<name>.py)")
    job_config: str = option("conf/nightly.toml", "config file passed to every job (--config)")
    warm_start: bool = option(
        True, "train starts from the published table (train --init-from; a cold start while nothing is published), "
        "so each day's table stays in the previous day's space; false retrains from scratch every day (one run: "
        "the DAG param cold_start). Needs a warm-starting method (sgns, item2vec)",
    )
    py_files: str | None = option(None, "spark-submit --py-files, e.g. the embedpipe wheel")
    archives: str | None = option(None, "spark-submit --archives, e.g. a packed environment#environment")
    driver_memory: str | None = option(None, "spark-submit --driver-memory")
    executor_memory: str | None = option(None, "spark-submit --executor-memory")
    spark_conf: dict[str, str] = option({}, "spark-submit --conf key=value pairs")
    env_vars: dict[str, str] = option({}, "environment of the spark-submit process")

    def validate(self) -> None:
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", self.start_date):
            raise ConfigError(f"config key 'start_date' must be a date YYYY-MM-DD, got {self.start_date!r}")
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", self.table_name):
            raise ConfigError(f"config key 'table_name' must be a plain name, got {self.table_name!r}")


@dataclass(frozen=True)
class TaskSpec:
    """One spark-submit task: its id, application script and (templated) arguments."""

    task_id: str
    application: str
    application_args: list[str]
    retries: int


def _is_url(path: str) -> bool:
    return "://" in path or path.startswith("file:")


def _is_absolute(path: str) -> bool:
    return os.path.isabs(path) or _is_url(path)


def load_settings(path: str | os.PathLike[str] | None = None) -> NightlySettings:
    """Read and validate the settings file; relative paths become absolute under ``project_root``."""
    path = Path(path or os.environ.get(SETTINGS_ENV) or DEFAULT_SETTINGS).resolve()
    values = read_config_file(path)
    settings = build_config(NightlySettings, values)
    root = (path.parent / settings.project_root).resolve()

    def absolute(value: str) -> str:
        return value if _is_absolute(value) else str(root / value)

    resolved = replace(
        settings, project_root=str(root), jobs_dir=absolute(settings.jobs_dir),
        job_config=absolute(settings.job_config), corpus=absolute(settings.corpus),
        data_root=absolute(settings.data_root).rstrip("/"),
    )
    _check_local_files(resolved, path)
    return resolved


def _check_local_files(settings: NightlySettings, source: Path) -> None:
    """Every job script and the job config must exist now, not only when a scheduled run submits them.

    URLs (``hdfs://``, ``s3a://``, ``file:``) are left to spark-submit: they may not be readable here.
    """
    where = f"(project_root {settings.project_root}, from {source})"
    wanted = [("job script", f"{settings.jobs_dir}/{job}.py", "jobs_dir") for job in JOBS]
    for kind, file, key in [*wanted, ("job config", settings.job_config, "job_config")]:
        if not _is_url(file) and not os.path.isfile(file):
            raise ConfigError(f"nightly settings: {kind} {file} not found {where}; set project_root or {key}")


def run_paths(settings: NightlySettings, run_date: str = RUN_DATE) -> dict[str, str]:
    """Every path of one run; each output is its own ``run_date=`` partition except the published table."""
    root, name = settings.data_root, settings.table_name
    return {
        "corpus": settings.corpus.replace(PLACEHOLDER, run_date),
        "tokens": f"{root}/tokens/run_date={run_date}",
        "table": f"{root}/tables/{name}/run_date={run_date}",
        "report": f"{root}/reports/{name}/run_date={run_date}",
        "gate_report": f"{root}/reports/{name}-publish/run_date={run_date}",
        "published": f"{root}/published/{name}",
    }


def task_specs(settings: NightlySettings, run_date: str = RUN_DATE) -> list[TaskSpec]:
    """tokenize -> train -> evaluate -> publish for one run date (an Airflow template by default)."""
    paths = run_paths(settings, run_date)
    config = ["--config", settings.job_config]
    jobs = settings.jobs_dir

    def spec(name: str, args: list[str], retries: int = settings.retries) -> TaskSpec:
        return TaskSpec(name, f"{jobs}/{name}.py", [*config, *args], retries)

    warm: list[str] = []
    if settings.warm_start:  # the run's param cold_start renders an empty parent: a cold start
        warm = [f"--init-from={{% if not params.{COLD_START_PARAM} %}}{paths['published']}{{% endif %}}",
                "--init-from-missing", "cold"]
    return [
        spec("tokenize", ["--input", paths["corpus"], "--output", paths["tokens"]]),
        spec("train", ["--input", paths["tokens"], "--output", paths["table"], *warm]),
        spec("evaluate", ["--table", paths["table"], "--output", paths["report"]]),
        spec("publish", ["--table", paths["table"], "--report", paths["report"], "--output", paths["published"],
                         "--run-date", run_date, "--report-output", paths["gate_report"]], retries=0),
    ]
