"""``embedpipe import``: a vectors file -> an embedding table, streamed.

The file is parsed batch by batch (:mod:`embedpipe.interop.readers`) and each batch appended to
Parquet parts in the commit's staging directory with pyarrow, so memory stays at a few batches
however large the file. Before the commit the staged rows get the writer's own checks
(:func:`~embedpipe.table.spark_table_stats`, one Spark aggregation: duplicate keys, lengths, NaN/Inf)
and the manifest; the commit is :func:`~embedpipe.storage.atomic_output`'s, so a bad file leaves
nothing at the output. ids are the file's row order (the formats list the most frequent key first)
and counts are 0: none of the formats carries them.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from embedpipe import schema
from embedpipe.arrow_vectors import matrix_to_list_array
from embedpipe.errors import OutputError
from embedpipe.interop.readers import VectorsFile, open_vectors
from embedpipe.storage import HadoopFS, atomic_output, read_parquet
from embedpipe.table import (
    FOOTER_KEY,
    MANIFEST_FILE,
    build_manifest,
    check_table_stats,
    spark_table_stats,
)

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from embedpipe.jobconfig import ImportConfig

log = logging.getLogger(__name__)

METHOD = "imported"
#: Bytes of vectors per Parquet part file.
PART_BYTES = 256 << 20
#: Where Spark keeps its row schema in a Parquet footer; the manifest rides on the vector field there.
SPARK_ROW_METADATA = b"org.apache.spark.sql.parquet.row.metadata"


def run_import(spark: SparkSession, config: ImportConfig) -> dict[str, Any]:
    """Read ``config.input`` and commit it as a table at ``config.output``; returns the manifest."""
    source = open_vectors(config.input, config.format)  # the header is checked before the output is touched
    manifest = build_manifest(
        method=METHOD, dim=source.dim, rows=0, source=config.input, seed=None, key_kind=config.key_kind,
        params={"format": config.format, "input": config.input, "header_rows": source.declared_rows,
                "counts": "not in the format: every count is 0"},
    )
    with atomic_output(spark, config.output, inputs=(config.input,), markers=(MANIFEST_FILE,)) as staging:
        written = _write_parts(source, staging, manifest)
        stats = spark_table_stats(read_parquet(spark, staging), source.dim)
        check_table_stats(stats, dim=source.dim, name=f"vectors file {config.input}", manifest_rows=written)
        manifest["rows"] = stats.rows
        fs = HadoopFS(spark)
        fs.write_text(f"{staging}/{MANIFEST_FILE}", json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        fs.write_text(f"{staging}/_SUCCESS", "")
    log.info("imported %s (%s): %d rows x %d dims -> %s", config.input, config.format, manifest["rows"],
             source.dim, config.output)
    return {"output": config.output, "rows": manifest["rows"], "dim": source.dim, "format": config.format}


def table_schema(manifest: dict[str, Any]) -> pa.Schema:
    """The table's Arrow schema, with Spark's row metadata carrying the manifest (as the Spark writer does)."""
    from pyspark.sql.types import ArrayType, FloatType, LongType, StringType, StructField, StructType

    spark_schema = StructType([
        StructField(schema.KEY, StringType()),
        StructField(schema.ID, LongType()),
        StructField(schema.COUNT, LongType()),
        StructField(schema.VECTOR, ArrayType(FloatType()),
                    metadata={FOOTER_KEY: json.dumps(manifest, sort_keys=True)}),
    ])
    fields = [pa.field(schema.KEY, pa.string()), pa.field(schema.ID, pa.int64()),
              pa.field(schema.COUNT, pa.int64()), pa.field(schema.VECTOR, pa.list_(pa.float32()))]
    return pa.schema(fields, metadata={SPARK_ROW_METADATA: spark_schema.json().encode()})


def _write_parts(source: VectorsFile, staging: str, manifest: dict[str, Any]) -> int:
    """Append every batch to ``part-NNNNN.parquet`` files of about :data:`PART_BYTES`; returns the rows."""
    import pyarrow.fs as pafs

    try:
        fs, root = pafs.FileSystem.from_uri(staging)
        fs.create_dir(root, recursive=True)
    except (OSError, ValueError) as exc:
        raise OutputError(f"cannot write the table's staging directory {staging} with pyarrow: {exc}") from None
    arrow_schema = table_schema(manifest)
    part_rows = max(1, PART_BYTES // (4 * source.dim))
    rows = 0
    writer: pq.ParquetWriter | None = None
    part = in_part = 0
    try:
        for batch in source.batches:
            n = len(batch.keys)
            if writer is None or (in_part and in_part + n > part_rows):
                if writer is not None:
                    writer.close()
                writer = pq.ParquetWriter(f"{root}/part-{part:05d}.parquet", arrow_schema, filesystem=fs)
                part, in_part = part + 1, 0
            writer.write_batch(pa.record_batch([
                batch.keys,
                pa.array(np.arange(rows, rows + n, dtype=np.int64)),
                pa.array(np.zeros(n, dtype=np.int64)),
                matrix_to_list_array(batch.vectors),
            ], schema=arrow_schema))
            rows += n
            in_part += n
    finally:
        if writer is not None:
            writer.close()
    return rows

