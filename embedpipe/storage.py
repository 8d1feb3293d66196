"""Atomic, idempotent directory outputs on any Hadoop-compatible filesystem.

A job writes everything into a staging directory beside its target and commits with renames:
the previous version moves aside, the staging directory takes its place, then the old one is
deleted. A job that fails (or is killed) before the commit leaves the target untouched; the next
run clears its own stale staging directories. Only paths derived from the target are ever deleted.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING

from embedpipe.errors import OutputError

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logging.getLogger(__name__)

STAGING_MARK = ".__embedpipe_staging-"
PREVIOUS_MARK = ".__embedpipe_previous-"


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


def _parent_and_name(path: str) -> tuple[str, str]:
    trimmed = path.rstrip("/")
    head, _, name = trimmed.rpartition("/")
    if not name:
        raise OutputError(f"output path {path!r} has no directory name")
    return head, name


@contextlib.contextmanager
def atomic_output(spark: SparkSession, target: str) -> Iterator[str]:
    """Yield a staging directory; on normal exit it atomically replaces ``target``.

    On an exception the staging directory is removed and ``target`` (if any) is left as it was.
    """
    fs = HadoopFS(spark)
    target = fs.qualify(target)
    parent, name = _parent_and_name(target)
    if fs.exists(target) and not fs.is_dir(target):
        raise OutputError(f"output path {target} exists and is not a directory")
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
