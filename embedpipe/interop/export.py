"""``embedpipe export``: an embedding table -> a word2vec / fastText vectors file, streamed.

The table is first held to the format (:func:`~embedpipe.table.check_table_spark`, one Spark
aggregation), then read with pyarrow in batches in id order (most frequent first, as the formats
expect) and written batch by batch: text rows are built by Arrow (float32 -> shortest decimal that
reads back to the same float32, as ``repr`` of a NumPy float32), binary rows are key, space, the
little-endian float32s and a newline (word2vec.c's layout). The file is written under a temporary
name beside the output and renamed at the end, so a refused key or a failure leaves nothing at the
output (and an earlier file there untouched).
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from embedpipe import schema
from embedpipe.arrow_vectors import list_array_to_matrix, matrix_to_list_array
from embedpipe.errors import OutputError
from embedpipe.interop.formats import BINARY_FORMAT, check_keys
from embedpipe.table import check_table_spark, read_manifest_spark

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from embedpipe.jobconfig import ExportConfig

log = logging.getLogger(__name__)

#: Rows per batch read from the table and written to the file.
BATCH_ROWS = 8192
TEMP_MARK = ".__embedpipe_export-"


def run_export(spark: SparkSession, config: ExportConfig) -> dict[str, Any]:
    """Write table ``config.table`` to the vectors file ``config.output``; returns what was written."""
    manifest = read_manifest_spark(spark, config.table)
    check_table_spark(spark, config.table, manifest)
    dim, rows = int(manifest["dim"]), int(manifest["rows"])
    fs, target = _output_path(config.output, config.table)
    parent, _, name = target.rpartition("/")
    temp = f"{parent}/.{name}{TEMP_MARK}{uuid.uuid4().hex[:12]}"
    written = 0
    try:
        with fs.open_output_stream(temp, compression=None) as out:
            out.write(f"{rows} {dim}\n".encode())
            for keys, vectors in _batches_in_id_order(config.table, dim):
                check_keys(keys, config.format, table=config.table)
                out.write(_binary_rows(keys, vectors) if config.format == BINARY_FORMAT else _text_rows(keys, vectors))
                written += len(keys)
        if written != rows:  # check_table_spark counted the same rows: only a table rewritten meanwhile
            raise OutputError(f"embedding table {config.table} changed while it was exported ({written} rows read, "
                              f"its manifest says {rows}); export it again")
        fs.move(temp, target)
    except BaseException:
        with contextlib.suppress(Exception):
            fs.delete_file(temp)
        raise
    log.info("exported %s: %d rows x %d dims -> %s (%s)", config.table, rows, dim, config.output, config.format)
    return {"output": config.output, "rows": rows, "dim": dim, "format": config.format}


def _output_path(output: str, table: str) -> tuple[Any, str]:
    """The pyarrow filesystem and path of the output file; refuses a directory or a path inside the table."""
    import os

    import pyarrow.fs as pafs

    if "://" in output or output.startswith("file:"):
        try:
            fs, path = pafs.FileSystem.from_uri(output)
        except (OSError, ValueError) as exc:
            raise OutputError(f"cannot write output {output}: {exc}") from None
    else:
        fs, path = pafs.LocalFileSystem(), os.path.abspath(output)
        table_path = os.path.abspath(table.removeprefix("file://").removeprefix("file:"))
        if path == table_path or path.startswith(table_path.rstrip("/") + "/"):
            raise OutputError(f"output {output} is inside the table {table}; write the file somewhere else")
    path = path.rstrip("/")
    info = fs.get_file_info(path)
    if info.type == pafs.FileType.Directory:
        raise OutputError(f"output {output} is a directory; name the vectors file to write")
    parent = path.rpartition("/")[0] or "/"
    fs.create_dir(parent, recursive=True)
    return fs, path


def _batches_in_id_order(table: str, dim: int) -> Iterator[tuple[pa.Array, np.ndarray]]:
    """(keys, vectors) batches sorted by id: streamed when the parts are (as embedpipe writes them),
    else sorted in memory (a table from another tool; it fits the driver's Arrow reader)."""
    import pyarrow.dataset as pads

    from embedpipe.interop.readers import input_filesystem

    fs, root = input_filesystem(table, "embedding table")
    dataset = pads.dataset(root.rstrip("/"), filesystem=fs, format="parquet")
    ids = dataset.to_table(columns=[schema.ID]).column(schema.ID).to_numpy()
    columns = [schema.KEY, schema.ID, schema.VECTOR]
    if ids.size < 2 or bool(np.all(ids[1:] > ids[:-1])):
        batches: Iterator[pa.RecordBatch] = iter(dataset.to_batches(columns=columns, batch_size=BATCH_ROWS))
    else:
        batches = iter(dataset.to_table(columns=columns).sort_by(schema.ID).to_batches(max_chunksize=BATCH_ROWS))
    for batch in batches:
        if batch.num_rows:
            yield batch.column(schema.KEY), list_array_to_matrix(batch.column(schema.VECTOR), dim)


def _text_rows(keys: pa.Array, vectors: np.ndarray) -> bytes:
    """``key v1 ... vdim`` lines, formatted by Arrow (shortest float32 round trip), as one buffer."""
    values = pc.cast(matrix_to_list_array(vectors), pa.list_(pa.string()))
    lines = pc.binary_join_element_wise(keys, pc.binary_join(values, " "), " ")
    text = pc.binary_join(pa.ListArray.from_arrays(pa.array([0, len(lines)], pa.int32()), lines), "\n")
    return text[0].as_buffer().to_pybytes() + b"\n"


def _binary_rows(keys: pa.Array, vectors: np.ndarray) -> bytes:
    """word2vec.c rows: UTF-8 key, a space, ``dim`` little-endian float32s, a newline."""
    little = np.ascontiguousarray(vectors, dtype="<f4")
    rows = zip(keys.to_pylist(), little, strict=True)
    return b"".join(key.encode() + b" " + row.tobytes() + b"\n" for key, row in rows)
