"""The nightly Airflow DAG: tokenize -> train -> evaluate -> publish, one ``run_date`` partition per run.

Point Airflow at this file (``AIRFLOW__CORE__DAGS_FOLDER`` = this package's folder, as the Docker
compose file does) or put a one-line shim in an existing dags folder::

    from embedpipe.orchestration.nightly_dag import dag  # noqa: F401

Each task is a ``SparkSubmitOperator`` running a ``jobs/<name>.py`` script with the nightly job
config; the Spark master comes from the Airflow connection (``conn_id``). Why it is safe to rerun
and backfill: every output is the run's own ``run_date=YYYY-MM-DD`` partition, replaced atomically;
``run_date`` is the start of the run's data interval (``CronDataIntervalTimetable``: the 2026-11-24
run covers [2026-11-24, 2026-11-25) and starts after it ends); runs go one at a time, oldest first,
and ``publish`` leaves a later published date in place. A failed quality gate fails ``publish`` (and
the run) and keeps the previous table published.

``python -m embedpipe.orchestration.nightly_dag 2026-11-24`` prints the spark-submit command lines of
that date's run, rendered by Airflow and built by the Spark provider's hook, without running them,
and the ``airflow dags test`` line that runs it. The two name a run differently: this module takes
the run_date (the interval's start), ``airflow dags test`` a logical date from which Airflow infers
the last interval *complete* by then, so the 2026-11-24 run is ``airflow dags test embedpipe_nightly
2026-11-25T02:00:00+00:00`` (the interval's end; see :func:`manual_logical_date`).
"""

from __future__ import annotations

import copy
import datetime as dt
import re
import shlex
import sys
from typing import Any

import pendulum
from airflow.providers.apache.spark.hooks.spark_submit import SparkSubmitHook
from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator
from airflow.sdk import DAG, Param
from airflow.timetables.base import DataInterval
from airflow.timetables.interval import CronDataIntervalTimetable

from embedpipe.errors import ConfigError
from embedpipe.orchestration.nightly import COLD_START_PARAM, RUN_DATE, NightlySettings, load_settings, task_specs

TAGS = ["embedpipe"]


def build_dag(settings: NightlySettings) -> DAG:
    """The DAG for these settings (one SparkSubmitOperator per job, chained)."""
    start = pendulum.parse(settings.start_date, tz=settings.timezone)
    dag = DAG(
        dag_id=settings.dag_id,
        description="embedpipe nightly: tokenize -> train -> evaluate -> quality gate + publish",
        schedule=CronDataIntervalTimetable(settings.schedule, timezone=settings.timezone),
        start_date=start,
        catchup=settings.catchup,
        max_active_runs=settings.max_active_runs,
        default_args={"retry_delay": dt.timedelta(minutes=settings.retry_delay_minutes), "depends_on_past": False},
        tags=TAGS,
        params={COLD_START_PARAM: Param(False, type="boolean", description=(
            "train this run from scratch instead of from the published table (with warm_start = true)"))},
    )
    previous = None
    for spec in task_specs(settings):
        task = SparkSubmitOperator(
            task_id=spec.task_id,
            dag=dag,
            conn_id=settings.conn_id,
            application=spec.application,
            application_args=spec.application_args,
            name=f"embedpipe-{spec.task_id}-{RUN_DATE}",
            conf=dict(settings.spark_conf) or None,
            py_files=settings.py_files,
            archives=settings.archives,
            driver_memory=settings.driver_memory,
            executor_memory=settings.executor_memory,
            env_vars=dict(settings.env_vars) or None,
            retries=spec.retries,
        )
        if previous is not None:
            previous >> task
        previous = task
    return dag


def data_interval(dag: DAG, run_date: str) -> DataInterval:
    """The data interval of ``dag`` that starts on ``run_date`` (YYYY-MM-DD), by the DAG's own timetable."""
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", run_date):
        raise ValueError(f"run date must be YYYY-MM-DD (the data interval's start), got {run_date!r}")
    day = pendulum.parse(run_date, tz=dag.timezone)
    # The last interval that ends by the end of the next day is the one that starts on run_date (daily cron).
    interval = dag.timetable.infer_manual_data_interval(run_after=day.add(days=2).subtract(microseconds=1))
    if interval.start.strftime("%Y-%m-%d") != run_date:
        raise ValueError(f"no data interval of {dag.dag_id} starts on {run_date} (nearest: {interval.start})")
    return interval


def manual_logical_date(dag: DAG, run_date: str) -> str:
    """The logical date to give ``airflow dags test`` so that its run covers ``run_date``'s interval.

    A manual run gets the last interval complete at its logical date, so the interval's end is passed
    (``2026-11-25T02:00:00+00:00`` for run_date 2026-11-24 with ``0 2 * * *``); a bare ``2026-11-24``
    would run the interval that started on 2026-11-22.
    """
    return data_interval(dag, run_date).end.isoformat()


def render_commands(dag: DAG, run_date: str, *, cold_start: bool = False) -> dict[str, list[str]]:
    """The spark-submit argv of each task for the run whose data interval starts on ``run_date``.

    Templates are rendered with the data interval the DAG's own timetable gives that date, and the
    command is built by the provider's ``SparkSubmitHook`` (the connection is resolved as at run time).
    No database is needed and nothing is run.
    """
    interval = data_interval(dag, run_date)
    context: dict[str, Any] = {
        "data_interval_start": interval.start,
        "data_interval_end": interval.end,
        "logical_date": interval.start,
        "ds": interval.start.strftime("%Y-%m-%d"),
        "dag": dag,
        "params": {COLD_START_PARAM: cold_start},
    }
    commands = {}
    for task in dag.topological_sort():
        rendered = copy.copy(task)
        rendered.render_template_fields({**context, "task": rendered})
        hook: SparkSubmitHook = rendered._get_hook()
        commands[task.task_id] = hook._build_spark_submit_command(rendered.application)
    return commands


def _print_commands(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m embedpipe.orchestration.nightly_dag YYYY-MM-DD", file=sys.stderr)
        return 2
    try:
        dag = build_dag(load_settings())
        interval = data_interval(dag, argv[0])
        commands = render_commands(dag, argv[0])
    except (ConfigError, ValueError) as exc:
        print(f"embedpipe nightly_dag: error: {exc}", file=sys.stderr)
        return 2
    print(f"# data interval [{interval.start.isoformat()}, {interval.end.isoformat()}); run it with:\n"
          f"# airflow dags test {dag.dag_id} {manual_logical_date(dag, argv[0])}")
    for task_id, command in commands.items():
        print(f"# {task_id}\n{shlex.join(command)}")
    return 0


if __name__ == "__main__":  # before the module-level DAG, so a bad settings file is a one-line error here
    sys.exit(_print_commands(sys.argv[1:]))

# Airflow's DAG processor imports this module and collects module-level DAG objects.
dag = build_dag(load_settings())
