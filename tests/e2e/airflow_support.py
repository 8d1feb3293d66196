"""Importing Airflow in the test process without changing how the rest of the suite logs.

Importing Airflow adds a stdout handler to the root logger and lowers its level to INFO; the DAG
tests run in the same process as every other test, so they import it through
:func:`import_airflow` and restore the root logger around each test (:func:`root_logging_kept`).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

import pytest


@contextlib.contextmanager
def root_logging_kept() -> Iterator[None]:
    """Put the root logger's handlers and level back as they were when the block ends."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)


def import_airflow() -> None:
    """Import Airflow, its Spark provider and embedpipe's DAG module, or skip the test saying what is missing."""
    with root_logging_kept():
        pytest.importorskip("airflow", reason="the 'airflow' extra is not installed (pip install -e '.[airflow]')")
        pytest.importorskip("airflow.providers.apache.spark",
                            reason="apache-airflow-providers-apache-spark is not installed")
        import embedpipe.orchestration.nightly_dag  # noqa: F401 - builds the DAG at import, as Airflow does
