"""Build the SparkSession a job runs in, from the ``[spark]`` settings.

Under ``spark-submit`` the master and resources come from the submit command; a ``master`` set
here is only applied when nothing else chose one, so the same job runs locally and on a cluster.
"""

from __future__ import annotations

import logging
import os
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
    if settings.master and not submitted:
        builder = builder.master(settings.master)
    elif not submitted:
        builder = builder.master("local[*]")
    if settings.driver_memory:
        builder = builder.config("spark.driver.memory", settings.driver_memory)
    if settings.shuffle_partitions:
        builder = builder.config("spark.sql.shuffle.partitions", str(settings.shuffle_partitions))
    builder = builder.config("spark.sql.execution.arrow.pyspark.enabled", "true")
    builder = builder.config("spark.ui.showConsoleProgress", "false")
    for key, value in sorted(settings.conf.items()):
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel(settings.log_level)
    _quiet_expected_warnings(spark)
    log.info("spark session: master=%s app=%s", spark.sparkContext.master, spark.sparkContext.appName)
    return spark



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
