"""Build the SparkSession a job runs in, from the ``[spark]`` settings.

Under ``spark-submit`` the master and resources come from the submit command; a ``master`` set
here is only applied when nothing else chose one, so the same job runs locally and on a cluster.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from typing import TYPE_CHECKING

from embedpipe.jobconfig import SparkSettings

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logging.getLogger(__name__)


def build_spark_session(settings: SparkSettings, app_name: str) -> SparkSession:
    """Return the active session, or create one configured from ``settings``."""
    from pyspark.sql import SparkSession

    # Executors must run the same interpreter (it has pyarrow, numpy and embedpipe installed).
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    builder = SparkSession.builder.appName(settings.app_name or app_name)
    # spark-submit starts the JVM first and hands the driver its gateway; its --master then wins.
    submitted = "PYSPARK_GATEWAY_PORT" in os.environ
    master = None if submitted else settings.master or "local[*]"
    if master:
        builder = builder.master(master)
    if settings.driver_memory:
        builder = builder.config("spark.driver.memory", settings.driver_memory)
    partitions = settings.shuffle_partitions or (local_shuffle_partitions(master) if master else None)
    if partitions:
        builder = builder.config("spark.sql.shuffle.partitions", str(partitions))
    builder = builder.config("spark.sql.execution.arrow.pyspark.enabled", "true")
    builder = builder.config("spark.ui.showConsoleProgress", "false")
    for key, value in sorted(settings.conf.items()):
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel(settings.log_level)
    _quiet_expected_warnings(spark)
    log.info("spark session: master=%s app=%s", spark.sparkContext.master, spark.sparkContext.appName)
    return spark



#: Shuffle partitions per local core: Spark's default of 200 made the text8 prefix's tokenize 1.7x slower on
#: local[2] (46.9 s against 27.8 s with 4 or 8 partitions, 2026-12-03); 4 per core leaves room for bigger corpora.
LOCAL_PARTITIONS_PER_CORE = 4


def local_shuffle_partitions(master: str) -> int | None:
    """Shuffle partitions for a local master (``local``, ``local[N]``, ``local[*]``, ``local[N,F]``); None otherwise.

    Spark's default of 200 suits a cluster; in local mode every one of them is a task on a few cores
    and their start-up dominates a job's shuffles. On a cluster the submit command's setting stands.
    """
    match = re.fullmatch(r"local(?:\[(\*|\d+)(?:,\d+)?\])?", master.strip())
    if match is None:
        return None
    cores = match.group(1)
    count = 1 if master.strip() == "local" else (os.cpu_count() or 1) if cores == "*" else int(cores)
    return LOCAL_PARTITIONS_PER_CORE * max(count, 1)


# Warnings embedpipe triggers on purpose: vocabulary ids come from a global window over the
# (vocabulary-sized) token counts, which Spark flags as "No Partition Defined for Window operation".
_EXPECTED_WARNING_LOGGERS = ("org.apache.spark.sql.execution.window.WindowExec",)


def _quiet_expected_warnings(spark: SparkSession) -> None:
    try:
        jvm = spark.sparkContext._jvm
        level = jvm.org.apache.logging.log4j.Level.ERROR
        for name in _EXPECTED_WARNING_LOGGERS:
            jvm.org.apache.logging.log4j.core.config.Configurator.setLevel(name, level)
    except Exception:  # noqa: BLE001 - cosmetic only; never fail a job over log levels
        log.debug("could not lower the log level of expected Spark warnings", exc_info=True)
