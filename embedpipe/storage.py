"""Atomic, idempotent directory outputs on any Hadoop-compatible filesystem.

A job writes everything into a staging directory beside its target and commits with renames:
the previous version moves aside, the staging directory takes its place, then the old one is
deleted. A job that fails (or is killed) before the commit leaves the target untouched; the next
run clears its own stale staging directories. Only paths derived from the target are ever deleted,
and a target is only replaced when that cannot delete anything but an earlier output: never the
filesystem root, the job's input or a directory holding it, or a non-empty directory that carries
no output marker (see :func:`check_output_path`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import uuid
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from embedpipe.errors import OutputError

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)

STAGING_MARK = ".__embedpipe_staging-"
PREVIOUS_MARK = ".__embedpipe_previous-"
#: Files that show a directory is an earlier output (embedpipe's report/manifest, Spark's _SUCCESS),
#: so replacing it loses nothing a user wrote by hand.
OUTPUT_MARKERS = ("report.json", "_manifest.json", "_SUCCESS")
#: The footer key under which Spark records the schema of the rows it wrote.
SPARK_SCHEMA_KEY = "org.apache.spark.sql.parquet.row.metadata"


class HadoopFS:
    """The few filesystem operations a job needs, through the JVM's Hadoop FileSystem."""

    def __init__(self, spark: SparkSession):
        self._jvm = spark.sparkContext._jvm
        self._conf = spark.sparkContext._jsc.hadoopConfiguration()

    def _path(self, path: str):  # noqa: ANN202 - a py4j object
        return self._jvm.org.apache.hadoop.fs.Path(path)

    def _fs(self, path: str):  # noqa: ANN202
        return self._path(path).getFileSystem(self._conf)

    def qualify(self, path: str) -> str:
        p = self._path(path)
        return str(p.getFileSystem(self._conf).makeQualified(p))

    def exists(self, path: str) -> bool:
        return bool(self._fs(path).exists(self._path(path)))

    def is_dir(self, path: str) -> bool:
        fs = self._fs(path)
        p = self._path(path)
        return bool(fs.exists(p) and fs.getFileStatus(p).isDirectory())

    def delete(self, path: str) -> None:
        self._fs(path).delete(self._path(path), True)

    def rename(self, src: str, dst: str) -> None:
        if not self._fs(src).rename(self._path(src), self._path(dst)):
            raise OutputError(f"could not rename {src} to {dst}")

    def mkdirs(self, path: str) -> None:
        self._fs(path).mkdirs(self._path(path))

    def list_names(self, path: str) -> list[str]:
        fs = self._fs(path)
        p = self._path(path)
        if not fs.exists(p):
            return []
        return [str(status.getPath().getName()) for status in fs.listStatus(p)]

    def parquet_footers(self, directory: str) -> list[tuple[str, int, list[str]]]:
        """(file name, row count, top-level column names) of each Parquet file in ``directory``, from the
        footers alone (Hadoop's Parquet reader in the JVM: any filesystem, no Spark job, no rows read)."""
        parquet = self._jvm.org.apache.parquet.hadoop
        footers = []
        for status in self._fs(directory).listStatus(self._path(directory)):
            name = str(status.getPath().getName())
            if name.startswith(("_", ".")) or not status.isFile():
                continue
            try:
                reader = parquet.ParquetFileReader.open(parquet.util.HadoopInputFile.fromStatus(status, self._conf))
            except Exception as exc:  # py4j's Java error: a truncated file, no footer
                detail = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                raise OutputError(f"cannot read the Parquet footer of {directory}/{name}: {detail}") from None
            try:
                fields = reader.getFooter().getFileMetaData().getSchema().getFields()
                footers.append((name, int(reader.getRecordCount()), [str(field.getName()) for field in fields]))
            finally:
                reader.close()
        return footers

    def spark_schema_json(self, directory: str) -> str | None:
        """The schema Spark recorded in the footer of ``directory``'s first data file (the file Spark's own
        inference reads: the smallest path), or None: no data file, a nested directory, or no record."""
        statuses = list(self._fs(directory).listStatus(self._path(directory))) if self.is_dir(directory) else []
        data = sorted((str(status.getPath().toString()), status) for status in statuses
                      if not str(status.getPath().getName()).startswith(("_", ".")))
        if not data or any(status.isDirectory() for _, status in data):
            return None
        parquet = self._jvm.org.apache.parquet.hadoop
        try:
            reader = parquet.ParquetFileReader.open(parquet.util.HadoopInputFile.fromStatus(data[0][1], self._conf))
        except Exception:  # noqa: BLE001 - unreadable: Spark's reader reports it in its own words
            return None
        try:
            record = reader.getFooter().getFileMetaData().getKeyValueMetaData().get(SPARK_SCHEMA_KEY)
        finally:
            reader.close()
        return None if record is None else str(record)

    def copy_from_local(self, local_path: str, dst: str) -> None:
        """Copy a local file or directory (e.g. a report rendered in a temp dir) to ``dst``."""
        src = self._jvm.org.apache.hadoop.fs.Path("file://" + local_path)
        self._fs(dst).copyFromLocalFile(False, True, src, self._path(dst))

    def write_text(self, path: str, text: str) -> None:
        stream = self._fs(path).create(self._path(path), True)
        try:
            stream.write(bytearray(text.encode("utf-8")))
        finally:
            stream.close()

    def read_text(self, path: str) -> str:
        fs = self._fs(path)
        stream = fs.open(self._path(path))
        try:
            buffer = self._jvm.java.io.ByteArrayOutputStream()
            self._jvm.org.apache.hadoop.io.IOUtils.copyBytes(stream, buffer, 65536, False)
            data = bytes(buffer.toByteArray())
            return data.decode("utf-8")
        finally:
            stream.close()


def read_parquet(spark: SparkSession, path: str) -> DataFrame:
    """``spark.read.parquet(path)`` without its schema-inference job when Spark wrote the files.

    Spark infers a Parquet schema with a Spark job even from one footer (``mergeSchemasInParallel``):
    on a small input, a second of every job's fixed cost per read. Files Spark wrote record their
    schema in the footer; read from the first data file on the driver and handed to the reader, it
    gives the same frame with no job. Other files (no record, nested directories) are inferred as before.
    """
    from pyspark.sql.types import StructType

    record = HadoopFS(spark).spark_schema_json(path)
    if record is None:
        return spark.read.parquet(path)
    return spark.read.schema(StructType.fromJson(json.loads(record))).parquet(path)


def _parent_and_name(fs: HadoopFS, target: str, given: str) -> tuple[str, str]:
    """The qualified parent directory and the last name of ``target``; OutputError for a root."""
    path = fs._path(target)
    parent = path.getParent()
    if parent is None or path.isRoot():
        raise OutputError(f"output path {given} is the root of its filesystem; name a directory below it")
    return str(parent).rstrip("/"), str(path.getName())


def check_output_path(
    spark: SparkSession,
    target: str,
    *,
    inputs: Sequence[str] = (),
    markers: Sequence[str] = OUTPUT_MARKERS,
) -> str:
    """Refuse an output whose replacement could delete anything but an earlier output; return it qualified.

    Refused (one-line OutputError naming the path): the filesystem root; an input of the job, a
    directory holding one, or a path inside one; an existing file; an existing non-empty directory
    without one of ``markers`` (a table passes ``_manifest.json`` only, so it never replaces a
    tokenize output or a hand-made folder). A job can call this before its expensive work;
    :func:`atomic_output` always calls it before anything is written or deleted.
    """
    fs = HadoopFS(spark)
    qualified = fs.qualify(target)
    _parent_and_name(fs, qualified, target)  # refuses a root
    qualified = qualified.rstrip("/")
    for source in inputs:
        source_uri = fs.qualify(source).rstrip("/")
        if qualified == source_uri:
            raise OutputError(f"output path {target} is the job's input; write the output somewhere else")
        if source_uri.startswith(qualified + "/"):
            raise OutputError(f"output path {target} contains the job's input {source}; replacing it would delete it")
        if qualified.startswith(source_uri + "/"):
            raise OutputError(f"output path {target} is inside the job's input {source}; write it somewhere else")
    if fs.exists(qualified):
        if not fs.is_dir(qualified):
            raise OutputError(f"output path {target} exists and is not a directory")
        names = fs.list_names(qualified)
        if names and not any(marker in names for marker in markers):
            expected = " or ".join([", ".join(markers[:-1]), markers[-1]] if len(markers) > 1 else markers)
            raise OutputError(
                f"output path {target} is a non-empty directory without {expected} (not an earlier output); "
                "refusing to replace it"
            )
    return qualified


@contextlib.contextmanager
def atomic_output(
    spark: SparkSession,
    target: str,
    *,
    inputs: Sequence[str] = (),
    markers: Sequence[str] = OUTPUT_MARKERS,
) -> Iterator[str]:
    """Yield a staging directory; on normal exit it atomically replaces ``target``.

    ``target`` is first checked by :func:`check_output_path` (``inputs``: the paths the job reads).
    On an exception the staging directory is removed and ``target`` (if any) is left as it was.
    """
    fs = HadoopFS(spark)
    given = target
    target = check_output_path(spark, target, inputs=inputs, markers=markers)
    parent, name = _parent_and_name(fs, target, given)
    _remove_stale(fs, parent, name)
    run_id = uuid.uuid4().hex[:12]
    staging = f"{parent}/{name}{STAGING_MARK}{run_id}"
    previous = f"{parent}/{name}{PREVIOUS_MARK}{run_id}"
    fs.mkdirs(parent)
    try:
        yield staging
    except BaseException:
        with contextlib.suppress(Exception):
            fs.delete(staging)
        raise
    if not fs.exists(staging):
        raise OutputError(f"job wrote nothing to its staging directory for {target}")
    had_previous = fs.exists(target)
    if had_previous:
        fs.rename(target, previous)
    try:
        fs.rename(staging, target)
    except BaseException:
        if had_previous:
            fs.rename(previous, target)
        raise
    if had_previous:
        fs.delete(previous)
    log.info("committed %s", target)


def _remove_stale(fs: HadoopFS, parent: str, name: str) -> None:
    """Delete staging/previous leftovers of earlier killed runs of this same target."""
    for entry in fs.list_names(parent):
        if entry.startswith(name + STAGING_MARK):
            log.warning("removing stale staging directory %s/%s", parent, entry)
            fs.delete(f"{parent}/{entry}")
        elif entry.startswith(name + PREVIOUS_MARK) and not fs.exists(f"{parent}/{name}"):
            # Killed between the two renames: the previous version is the last good one.
            log.warning("restoring %s from interrupted commit", name)
            fs.rename(f"{parent}/{entry}", f"{parent}/{name}")
        elif entry.startswith(name + PREVIOUS_MARK):
            fs.delete(f"{parent}/{entry}")
