"""Input readers shared by the ``tokenize`` and ``histories`` jobs.

Both jobs accept the same kinds of input (plain text, Parquet, JSON lines, CSV/TSV and, for
interaction logs, MovieLens ``u.data``) as a file or a directory. This module finds the input,
resolves its format, reads it without inferring more than needed, and numbers every row by its
position in the input, so ids and tie-breaks never depend on how Spark split the files:

* ``__row``  -- 0-based position of the row in the whole input (files in path order, rows in file order);
* ``__line`` -- 0-based row (line) number inside its file;
* ``__file`` -- the file's path relative to the input directory (its name for a single-file input).

How rows are numbered without collecting them or shuffling the corpus: a file scan reads each file
split in order, and ``monotonically_increasing_id`` counts rows consecutively inside a Spark
partition, so a row's offset inside its split is ``id - min(id of that split)``. One small
aggregation (one row per file split: its row count and first id, collected to the driver) and a
running sum over the splits gives each split's offset in its file and in the input; a broadcast
join adds them back. The cost is one extra light scan of the input, and the numbering is the same
for any parallelism or split size.

The internal columns start with two underscores and are never written to an output.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from embedpipe.errors import InputError, SchemaError
from embedpipe.storage import HadoopFS, read_parquet

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession

log = logging.getLogger(__name__)

ROW = "__row"
LINE = "__line"
FILE = "__file"
#: JSON lines Spark could not parse land here (PERMISSIVE mode); the jobs count them.
CORRUPT_RECORD = "__corrupt_record"
#: The column of a plain-text input (one line per row).
TEXT_VALUE = "value"
#: Column names of a MovieLens ``u.data`` file (tab separated, no header).
UDATA_COLUMNS = ("user", "item", "rating", "timestamp")

_COMPRESSION_SUFFIXES = (".gz", ".bz2", ".deflate", ".lz4", ".snappy", ".zst", ".xz")
_EXTENSION_FORMATS = {
    "": "text",
    ".txt": "text",
    ".text": "text",
    ".parquet": "parquet",
    ".json": "json",
    ".jsonl": "json",
    ".ndjson": "json",
    ".csv": "csv",
    ".tsv": "tsv",
}
_MAX_LISTED_FILES = 1000  # enough to tell a directory's format; a huge corpus is not listed in full


@dataclass(frozen=True)
class InputSource:
    """A located input and how to read it."""

    path: str  # as the user gave it (used in messages and reports)
    uri: str  # fully qualified
    is_dir: bool
    format: str  # text, parquet, json, csv or udata
    delimiter: str = ","  # csv only


def file_format(name: str, *, logs: bool = False) -> str | None:
    """The format a file name implies (``None`` if unknown); ``u.data`` means MovieLens for logs."""
    lowered = name.lower()
    if logs and lowered in ("u.data", "u.data.gz"):
        return "udata"
    for suffix in _COMPRESSION_SUFFIXES:
        if lowered.endswith(suffix):
            lowered = lowered[: -len(suffix)]
            break
    stem, dot, extension = lowered.rpartition(".")
    return _EXTENSION_FORMATS.get(f".{extension}" if dot and stem else "")


def _is_data_file(name: str) -> bool:
    # Spark and Hadoop ignore these too (_SUCCESS, _manifest.json, .crc files, staging dirs).
    return not name.startswith(("_", "."))


def _data_file_names(fs: HadoopFS, uri: str) -> list[str]:
    """Names of (up to _MAX_LISTED_FILES) data files under a directory, breadth first."""
    names: list[str] = []
    pending = [uri.rstrip("/")]
    while pending and len(names) < _MAX_LISTED_FILES:
        directory = pending.pop(0)
        for name in sorted(fs.list_names(directory)):
            if not _is_data_file(name):
                continue
            child = f"{directory}/{name}"
            if fs.is_dir(child):
                pending.append(child)
            else:
                names.append(name)
    return names


def locate_input(spark: SparkSession, path: str) -> tuple[str, bool]:
    """The qualified URI of ``path`` and whether it is a directory; InputError if it does not exist."""
    from py4j.protocol import Py4JJavaError
    from pyspark.errors import IllegalArgumentException

    fs = HadoopFS(spark)
    try:
        exists = fs.exists(path)
    except (Py4JJavaError, IllegalArgumentException) as exc:  # a malformed URI, an unknown scheme
        raise InputError(f"cannot access input {path}: {_root_cause(exc)}") from None
    if not exists:
        raise InputError(f"input not found: {path}")
    return fs.qualify(path), fs.is_dir(path)


def resolve_input(
    spark: SparkSession,
    path: str,
    requested: str,
    *,
    allowed: tuple[str, ...],
    csv_delimiter: str = ",",
) -> InputSource:
    """Locate ``path`` and resolve its format (``requested`` unless it is ``auto``).

    ``auto`` looks at the file name, or at the names of a directory's data files (which must agree);
    a ``.tsv`` input is then CSV with a tab delimiter unless another delimiter was set.
    """
    uri, is_dir = locate_input(spark, path)
    choices = ", ".join(f for f in allowed if f != "auto")
    if requested == "auto":
        fmt = _detect_format(spark, path, uri, is_dir, logs="udata" in allowed, choices=choices)
    else:
        fmt = requested
    delimiter = csv_delimiter
    if fmt == "tsv":
        fmt = "csv"
        if csv_delimiter == ",":
            delimiter = "\t"
    if fmt not in allowed or fmt == "auto":
        raise InputError(f"input {path} looks like {fmt}, which this job does not read (formats: {choices})")
    log.info("input %s: format %s%s", path, fmt, f" (delimiter {delimiter!r})" if fmt == "csv" else "")
    return InputSource(path=path, uri=uri, is_dir=is_dir, format=fmt, delimiter=delimiter)


def _detect_format(spark: SparkSession, path: str, uri: str, is_dir: bool, *, logs: bool, choices: str) -> str:
    """The one format the input's file names imply; InputError when they imply none or several."""
    names = _data_file_names(HadoopFS(spark), uri) if is_dir else [uri.rstrip("/").rpartition("/")[2]]
    if not names:
        raise InputError(f"input directory {path} holds no data files; cannot detect its format")
    formats = {name: file_format(name, logs=logs) for name in names}
    unknown = sorted(name for name, fmt in formats.items() if fmt is None)
    if unknown:
        raise InputError(
            f"cannot detect the format of {path} from the file name {unknown[0]!r}; set format to one of {choices}"
        )
    detected = sorted({fmt for fmt in formats.values() if fmt is not None})
    if len(detected) > 1:
        raise InputError(f"input directory {path} mixes formats ({', '.join(detected)}); set format or split the input")
    return detected[0]


def read_input(
    spark: SparkSession, source: InputSource, *, csv_header: bool = True, order_only: bool = False
) -> DataFrame:
    """Read ``source`` as a DataFrame of its columns plus ``__row``, ``__line`` and ``__file``.

    Text inputs have one column, ``value``, one row per line. Every CSV column is read as a string
    (no type inference pass); JSON keeps unparseable lines in ``__corrupt_record``. Read errors
    Spark raises while planning (an unreadable Parquet footer, a bad option) become InputError.

    ``order_only``: for a job that uses the input position only to order rows (never as a number
    or a line name), ``__row`` is :func:`with_input_order`'s sort key and there is no ``__line`` or
    ``__file``; it spares the extra scan of the input that numbering needs.
    """
    frame = read_frame(spark, source, csv_header=csv_header)
    return with_input_order(frame) if order_only else with_input_position(frame, source)


def with_input_order(frame: DataFrame) -> DataFrame:
    """Add ``__row`` as a struct (file, split start, id) that sorts rows as the input holds them.

    Ids from ``monotonically_increasing_id`` increase along a file split, and splits sort by file
    and byte offset, so comparing the struct orders rows exactly as :func:`with_input_position`'s
    numbers do, for any parallelism, with no Spark job run here.
    """
    from pyspark.sql import functions as F

    order = F.struct(
        F.col("_metadata.file_path").alias("file"),
        F.col("_metadata.file_block_start").alias("start"),
        F.monotonically_increasing_id().alias("id"),
    )
    return frame.select(*[F.col(f"`{c}`") for c in frame.columns], order.alias(ROW))


def read_frame(
    spark: SparkSession, source: InputSource, *, csv_header: bool = True, keep_corrupt: bool = True
) -> DataFrame:
    """Read ``source`` as plain columns (no position columns): the one format dispatch of embedpipe.

    ``keep_corrupt=False`` reads JSON without the ``__corrupt_record`` column, for jobs (such as
    ``embed``) whose output must keep exactly the input's columns.
    """
    from py4j.protocol import Py4JJavaError
    from pyspark.errors import AnalysisException, IllegalArgumentException

    reader = spark.read
    try:
        if source.format == "text":
            frame = reader.option("recursiveFileLookup", "true").text(source.uri)
        elif source.format == "parquet":  # Spark-written files: the footer's schema, no inference job
            frame = read_parquet(spark, source.uri)
        elif source.format == "json" and not keep_corrupt:
            frame = reader.json(source.uri)
        elif source.format == "json":
            frame = (
                reader.option("mode", "PERMISSIVE")
                .option("columnNameOfCorruptRecord", CORRUPT_RECORD)
                .json(source.uri)
            )
        elif source.format == "csv":
            frame = reader.csv(source.uri, header=csv_header, sep=source.delimiter, mode="PERMISSIVE")
        elif source.format == "udata":
            ddl = ", ".join(f"{name} string" for name in UDATA_COLUMNS)
            frame = reader.csv(source.uri, schema=ddl, sep="\t", header=False, mode="PERMISSIVE")
        else:  # pragma: no cover - resolve_input only returns the formats above
            raise InputError(f"unsupported input format {source.format!r}")
    except (AnalysisException, IllegalArgumentException, Py4JJavaError) as exc:
        # Planning a read infers the schema (Parquet footers, CSV header, JSON records), so a
        # corrupt or unreadable file fails here, before any job of ours runs.
        raise InputError(f"cannot read {source.path} as {source.format}: {_root_cause(exc)}") from None
    return frame


def _root_cause(exc: Exception) -> str:
    """The innermost JVM message of a read error, on one line."""
    message = str(exc)
    java = getattr(exc, "java_exception", None)
    if java is not None:
        while java.getCause() is not None:
            java = java.getCause()
        message = str(java.getMessage() or java.toString())
    return " ".join(message.split("\n")[0].split())


@contextmanager
def first_scan(source: InputSource) -> Iterator[None]:
    """Around the first action that reads every input file: a file Spark cannot read is an InputError.

    Planning reads one Parquet footer only; the first scan opens every file, so a corrupt part file
    among good ones fails there, with a message naming the file.
    """
    from py4j.protocol import Py4JJavaError

    try:
        yield
    except Py4JJavaError as exc:
        if "FAILED_READ_FILE" not in str(exc):
            raise
        raise InputError(f"cannot read {source.path} as {source.format}: {_root_cause(exc)}") from None


def with_input_position(frame: DataFrame, source: InputSource) -> DataFrame:
    """Add ``__row``, ``__line`` and ``__file`` to a DataFrame read straight from files (see module doc).

    Runs one Spark job now: the per-split counts, one row per file split, are collected (a
    report-sized list, not the data) and turned into offsets on the driver.
    """
    from pyspark.sql import functions as F

    path, block, seq = "__path", "__block", "__seq"
    scanned = frame.select(
        *[F.col(f"`{c}`") for c in frame.columns],
        F.col("_metadata.file_path").alias(path),
        F.col("_metadata.file_block_start").alias(block),
        F.monotonically_increasing_id().alias(seq),
    )
    per_split = scanned.groupBy(path, block).agg(F.count(F.lit(1)).alias("rows"), F.min(seq).alias("first_seq"))
    with first_scan(source):
        collected = per_split.collect()
    splits = sorted((r[path], r[block], r["rows"], r["first_seq"]) for r in collected)
    offsets = []
    row_offset = 0
    rows_in_file: dict[str, int] = {}
    for file_path, block_start, rows, first_seq in splits:
        line_offset = rows_in_file.get(file_path, 0)
        offsets.append((file_path, block_start, first_seq, row_offset, line_offset))
        row_offset += rows
        rows_in_file[file_path] = line_offset + rows
    split_offsets = frame.sparkSession.createDataFrame(
        offsets, f"{path} string, {block} bigint, first_seq bigint, row_offset bigint, line_offset bigint"
    )
    in_split = F.col(seq) - F.col("first_seq")
    return scanned.join(F.broadcast(split_offsets), [path, block]).select(
        *[F.col(f"`{c}`") for c in frame.columns],
        (F.col("row_offset") + in_split).alias(ROW),
        (F.col("line_offset") + in_split).alias(LINE),
        _relative_file(F.col(path), source).alias(FILE),
    )


def _relative_file(file_uri: Column, source: InputSource) -> Column:
    """A file's path relative to the input directory (its name for a single-file input), decoded."""
    from pyspark.sql import functions as F

    # _metadata.file_path is a URI (spaces as %20); '+' is literal in a URI but a space to url_decode.
    decoded = F.url_decode(F.replace(file_uri, F.lit("+"), F.lit("%2B")))
    name = F.substring_index(decoded, "/", -1)
    if not source.is_dir:
        return name
    prefix = source.uri.rstrip("/") + "/"
    return F.when(decoded.startswith(prefix), F.substring(decoded, len(prefix) + 1, 1 << 30)).otherwise(name)


def data_columns(frame: DataFrame) -> list[str]:
    """The input's own columns (without the internal ones added here)."""
    return [c for c in frame.columns if c not in (ROW, LINE, FILE, CORRUPT_RECORD)]


def require_columns(frame: DataFrame, columns: dict[str, str | None], *, source: InputSource) -> None:
    """Raise SchemaError naming every missing column (by its config key) and the columns present."""
    present = data_columns(frame)
    missing = [f"{name} ({key})" for key, name in columns.items() if name is not None and name not in present]
    if missing:
        raise SchemaError(f"input {source.path} lacks required columns", missing=missing, present=present)


def require_scalar(frame: DataFrame, column: str, key: str, *, source: InputSource) -> None:
    """Raise SchemaError if ``column`` holds arrays, maps or structs (it is used as an id or text)."""
    from pyspark.sql.types import ArrayType, MapType, StructType

    data_type = frame.schema[column].dataType
    if isinstance(data_type, (ArrayType, MapType, StructType)):
        raise SchemaError(
            f"column '{column}' ({key}) of {source.path} must hold single values, found {data_type.simpleString()}"
        )
