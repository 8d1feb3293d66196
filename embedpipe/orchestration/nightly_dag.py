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
that date's run, rendered by Airflow and built by the Spark provider's hook, without running them.
"""

from __future__ import annotations

import copy
import datetime as dt
import shlex
import sys
from typing import Any

import pendulum
from airflow.providers.apache.spark.hooks.spark_submit import SparkSubmitHook
from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator
from airflow.sdk import DAG
from airflow.timetables.interval import CronDataIntervalTimetable

from embedpipe.orchestration.nightly import RUN_DATE, NightlySettings, load_settings, task_specs

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


def render_commands(dag: DAG, run_date: str) -> dict[str, list[str]]:
    """The spark-submit argv of each task for the run whose data interval starts on ``run_date``.

    Templates are rendered with the data interval the DAG's own timetable gives that date, and the
    command is built by the provider's ``SparkSubmitHook`` (the connection is resolved as at run time).
    No database is needed and nothing is run.
    """
    day = pendulum.parse(run_date, tz=dag.timezone)
    # The last interval that ends by the end of the next day is the one that starts on run_date (daily cron).
    interval = dag.timetable.infer_manual_data_interval(run_after=day.add(days=2).subtract(microseconds=1))
    if interval.start.strftime("%Y-%m-%d") != run_date:
        raise ValueError(f"no data interval of {dag.dag_id} starts on {run_date} (nearest: {interval.start})")
    context: dict[str, Any] = {
        "data_interval_start": interval.start,
        "data_interval_end": interval.end,
        "logical_date": interval.start,
        "ds": interval.start.strftime("%Y-%m-%d"),
        "dag": dag,
        "params": {},
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
    for task_id, command in render_commands(build_dag(load_settings()), argv[0]).items():
        print(f"# {task_id}\n{shlex.join(command)}")
    return 0


# Airflow's DAG processor imports this module and collects module-level DAG objects.
dag = build_dag(load_settings())

if __name__ == "__main__":
    sys.exit(_print_commands(sys.argv[1:]))
