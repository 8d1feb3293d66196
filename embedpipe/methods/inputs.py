"""Read a tokenize or histories output as training input; the only module that knows their layout.

Both jobs write the same shape of directory: ``report.json`` saying which job made it, a
``vocab/`` table (ids 0..V-1, most frequent first), one Parquet table of token sequences and one of
sparse count vectors over the vocabulary. Trainers see them under one set of column names, so a
method works on text and on interaction histories alike:

=============  ===========================  ===========================
               tokenize output              histories output
=============  ===========================  ===========================
sentences      tokens/ (doc_id, tokens)     sequences/ (user, items)
matrix         bow/ (doc_id, features...)   vectors/ (user, features...)
keys           "token"                      "item"
rows           "document"                   "user"
=============  ===========================  ===========================

The report and the vocabulary are checked when the input is opened; the sentences and the matrix
only when a method asks for them, so a method is not failed by a part it never reads. Nothing here
collects corpus-sized data.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from embedpipe import schema
from embedpipe.errors import EmptyResultError, InputError, SchemaError
from embedpipe.storage import HadoopFS, read_parquet

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.types import DataType

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class _Layout:
    sentences_dir: str
    matrix_dir: str
    row_column: str  # doc_id / user
    sequence_column: str  # tokens / items
    key_kind: str
    row_kind: str


_LAYOUTS = {
    "tokenize": _Layout(schema.TOKENS_DIR, schema.BOW_DIR, schema.DOC_ID, schema.TOKENS, "token", "document"),
    "histories": _Layout(schema.SEQUENCES_DIR, schema.VECTORS_DIR, schema.USER, schema.ITEMS, "item", "user"),
}


@dataclass(frozen=True)
class TrainingInput:
    """An opened training input: its report, its vocabulary and lazy access to the rest.

    ``sentences()`` and ``matrix()`` return frames whose row key is always ``doc_id`` (a document
    id, or a user for histories) and whose sequence column is always ``tokens``.
    """

    spark: SparkSession
    path: str
    kind: str
    report: dict[str, Any]
    vocab: DataFrame  # token string, id bigint, count bigint
    vocab_size: int
    layout: _Layout
    #: The vocabulary's (token, id, count) in id order on the driver, when open read it there (a local input).
    vocab_rows: pa.Table | None = None

    def vocabulary(self) -> pa.Table:
        """``token``, ``id``, ``count`` of every key in id order, on the driver (vocabulary-sized).

        The table :func:`read_training_input` read with pyarrow for a local input, else one Spark collect
        (on first use); a method that trains on the driver's vocabulary takes it from here, so no more
        Spark jobs run for it.
        """
        return self._collected_vocabulary if self.vocab_rows is None else self.vocab_rows

    @cached_property
    def _collected_vocabulary(self) -> pa.Table:
        """The vocabulary collected through Spark once (an input pyarrow cannot read: HDFS, S3)."""
        return self.vocab.select(schema.TOKEN, schema.ID, schema.COUNT).orderBy(schema.ID).toArrow()

    @property
    def key_kind(self) -> str:
        """What the vocabulary keys are: ``token`` (text) or ``item`` (histories)."""
        return self.layout.key_kind

    @property
    def row_kind(self) -> str:
        """What the rows of the sentences/matrix are: ``document`` or ``user``."""
        return self.layout.row_kind

    @property
    def tokenizer(self) -> dict[str, Any] | None:
        """The tokenizer settings to record in a table's manifest (None for item histories)."""
        if self.kind != "tokenize":
            return None
        return self.report.get("tokenizer")

    def kept_vocabulary(self, min_count: int) -> DataFrame:
        """The vocabulary rows counted at least ``min_count`` times: ids 0..k-1, as ids go by count."""
        from pyspark.sql import functions as F

        return self.vocab.where(F.col(schema.COUNT) >= min_count)

    def sentences(self) -> DataFrame:
        """``doc_id`` string, ``tokens`` array<string>: every sequence, in order, all tokens."""
        layout = self.layout
        frame = _read_part(self.spark, self.path, layout.sentences_dir, {
            layout.row_column: ("string", _is_string),
            layout.sequence_column: ("array<string>", _is_string_array),
        })
        return frame.select(
            frame[layout.row_column].alias(schema.DOC_ID), frame[layout.sequence_column].alias(schema.TOKENS)
        )

    def matrix(self) -> DataFrame:
        """``doc_id``, ``features`` (SparseVector of size V), ``indices`` (vocab ids), ``values``."""
        layout = self.layout
        frame = _read_part(self.spark, self.path, layout.matrix_dir, {
            layout.row_column: ("string", _is_string),
            schema.FEATURES: ("vector", _is_vector),
            schema.INDICES: ("array<int>", _is_int_array),
            schema.VALUES: ("array<double>", _is_double_array),
        })
        return frame.select(
            frame[layout.row_column].alias(schema.DOC_ID),
            schema.FEATURES,
            schema.INDICES,
            schema.VALUES,
        )

    @property
    def label_column(self) -> str | None:
        """The input column a tokenize output's ``bow/`` labels came from (None if it has none)."""
        labels = self.report.get("labels") if self.kind == "tokenize" else None
        return labels.get("column") if isinstance(labels, dict) else None

    def labelled_matrix(self, method: str) -> DataFrame:
        """``doc_id``, ``indices``, ``values``, ``label`` (double): the bag of words of every labelled document.

        Only a tokenize output written with ``label_column`` has labels (``bow/`` then holds only
        the labelled documents); anything else is a one-line error naming ``method``.
        """
        from pyspark.sql import functions as F

        if self.kind != "tokenize":
            raise InputError(
                f"train --method {method} needs a tokenize output made with --label-column; {self.path} is a "
                f"{self.kind} output"
            )
        layout = self.layout
        bow_path = f"{self.path}/{layout.matrix_dir}"
        if self.label_column is None:
            raise InputError(
                f"train --method {method} needs a label per document; {bow_path} has none "
                "(run embedpipe tokenize with --label-column)"
            )
        frame = _read_part(self.spark, self.path, layout.matrix_dir, {
            layout.row_column: ("string", _is_string),
            schema.INDICES: ("array<int>", _is_int_array),
            schema.VALUES: ("array<double>", _is_double_array),
            schema.LABEL: ("double", _is_number),
        })
        return frame.select(
            frame[layout.row_column].alias(schema.DOC_ID), schema.INDICES, schema.VALUES,
            F.col(schema.LABEL).cast("double").alias(schema.LABEL),
        )


def read_training_input(spark: SparkSession, path: str) -> TrainingInput:
    """Open ``path`` (a tokenize or histories output); fail with a one-line message if it is not one."""
    from pyspark.sql import functions as F

    fs = HadoopFS(spark)
    if not fs.exists(path):
        raise InputError(f"train input {path} does not exist")
    if not fs.is_dir(path):
        raise InputError(f"train input {path} is not a directory (expected a tokenize or histories output)")
    qualified = fs.qualify(path)
    report_path = f"{qualified}/{schema.REPORT_FILE}"
    if not fs.exists(report_path):
        raise InputError(f"train input {path} is not a tokenize or histories output (no {schema.REPORT_FILE})")
    try:
        report = json.loads(fs.read_text(report_path))
    except ValueError as exc:
        raise InputError(f"{report_path} is not valid JSON: {exc}") from None
    kind = report.get("kind") if isinstance(report, dict) else None
    if kind not in _LAYOUTS:
        raise InputError(
            f"train input {path} is not a tokenize or histories output ({schema.REPORT_FILE} kind is {kind!r})"
        )
    vocab = _read_part(spark, qualified, schema.VOCAB_DIR, {
        schema.TOKEN: ("string", _is_string),
        schema.ID: ("bigint", _is_integral),
        schema.COUNT: ("bigint", _is_integral),
    }).select(
        schema.TOKEN, F.col(schema.ID).cast("bigint").alias(schema.ID),
        F.col(schema.COUNT).cast("bigint").alias(schema.COUNT),
    )
    # Trainers index matrices by id, so ids must be 0..V-1: one pass over the (vocabulary-sized) table.
    vocab_rows = _read_local_vocabulary(qualified)
    stats = _vocabulary_stats(vocab, vocab_rows)
    size = int(stats["rows"])
    if size == 0:
        raise EmptyResultError(f"train input {path} has an empty vocabulary ({schema.VOCAB_DIR}/ has no rows)")
    if int(stats["ids"]) != size or int(stats["tokens"]) != size or stats["min_id"] != 0 or stats["max_id"] != size - 1:
        raise InputError(
            f"{qualified}/{schema.VOCAB_DIR} must hold {size} distinct tokens with ids 0..{size - 1}, found "
            f"{stats['tokens']} distinct tokens and {stats['ids']} distinct ids in {stats['min_id']}..{stats['max_id']}"
        )
    log.info("train input %s: %s output, vocabulary of %d %ss", qualified, kind, size, _LAYOUTS[kind].key_kind)
    return TrainingInput(
        spark=spark, path=qualified, kind=kind, report=report, vocab=vocab, vocab_size=size, layout=_LAYOUTS[kind],
        vocab_rows=vocab_rows,
    )


def _read_local_vocabulary(root: str) -> pa.Table | None:
    """The ``vocab/`` rows in id order, read with pyarrow when the input is on a local filesystem (no Spark
    job: a job's fixed cost, seconds on a small input); None elsewhere, or when pyarrow cannot read it
    (Spark then reads it, and reports what is wrong)."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    local = _local_path(root)
    if local is None:
        return None
    try:
        rows = pq.read_table(f"{local}/{schema.VOCAB_DIR}", columns=[schema.TOKEN, schema.ID, schema.COUNT])
        rows = pa.table({schema.TOKEN: rows.column(schema.TOKEN).cast(pa.string()),
                         schema.ID: rows.column(schema.ID).cast(pa.int64()),
                         schema.COUNT: rows.column(schema.COUNT).cast(pa.int64())})
    except (OSError, ValueError, KeyError, TypeError, NotImplementedError):  # ArrowInvalid is a ValueError
        return None
    ids = rows.column(schema.ID).combine_chunks()
    if ids.null_count or (len(ids) > 1 and not pc.all(pc.greater(ids[1:], ids[:-1])).as_py()):
        rows = rows.sort_by(schema.ID)
    return rows


def _local_path(path: str) -> str | None:
    """The local filesystem path of a Hadoop-qualified ``file:`` path (or a plain one); None for other schemes."""
    if path.startswith("file:"):
        return "/" + path.removeprefix("file:").lstrip("/")
    return None if "://" in path else path


def _vocabulary_stats(vocab: DataFrame, rows: pa.Table | None) -> dict[str, Any]:
    """Rows, distinct ids and tokens, min and max id: from the driver's rows when there are any, else one Spark
    aggregation (the same figures: NULLs count as rows, not as distinct values)."""
    from pyspark.sql import functions as F

    if rows is None:
        return vocab.agg(
            F.count(F.lit(1)).alias("rows"),
            F.countDistinct(schema.ID).alias("ids"),
            F.countDistinct(schema.TOKEN).alias("tokens"),
            F.min(schema.ID).alias("min_id"),
            F.max(schema.ID).alias("max_id"),
        ).first().asDict()
    import pyarrow.compute as pc

    ids = rows.column(schema.ID)
    bounds = pc.min_max(ids)
    return {"rows": rows.num_rows, "ids": pc.count_distinct(ids).as_py(),
            "tokens": pc.count_distinct(rows.column(schema.TOKEN)).as_py(),
            "min_id": bounds["min"].as_py(), "max_id": bounds["max"].as_py()}


def _read_part(
    spark: SparkSession, root: str, name: str, expected: dict[str, tuple[str, Any]]
) -> DataFrame:
    """Read ``root/name`` as Parquet and check that it has the expected columns and types."""
    fs = HadoopFS(spark)
    path = f"{root.rstrip('/')}/{name}"
    if not fs.is_dir(path):
        raise InputError(f"train input {root} has no {name}/ directory")
    try:
        frame = read_parquet(spark, path)
    except Exception as exc:  # AnalysisException: no Parquet files, unreadable footer, ...
        raise InputError(f"{path} is not a readable Parquet table: {_first_line(exc)}") from None
    present = {field.name: field.dataType for field in frame.schema.fields}
    missing = [column for column in expected if column not in present]
    if missing:
        raise SchemaError(f"{path} lacks required columns", missing=missing, present=list(present))
    for column, (wanted, accepts) in expected.items():
        if not accepts(present[column]):
            raise SchemaError(f"{path}: column '{column}' is {present[column].simpleString()}, expected {wanted}")
    return frame


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _is_string(tp: DataType) -> bool:
    from pyspark.sql.types import StringType

    return isinstance(tp, StringType)


def _is_integral(tp: DataType) -> bool:
    from pyspark.sql.types import IntegerType, LongType, ShortType

    return isinstance(tp, (IntegerType, LongType, ShortType))


def _is_number(tp: DataType) -> bool:
    from pyspark.sql.types import NumericType

    return isinstance(tp, NumericType)


def _is_string_array(tp: DataType) -> bool:
    from pyspark.sql.types import ArrayType

    return isinstance(tp, ArrayType) and _is_string(tp.elementType)


def _is_int_array(tp: DataType) -> bool:
    from pyspark.sql.types import ArrayType

    return isinstance(tp, ArrayType) and _is_integral(tp.elementType)


def _is_double_array(tp: DataType) -> bool:
    from pyspark.sql.types import ArrayType, DoubleType, FloatType

    return isinstance(tp, ArrayType) and isinstance(tp.elementType, (DoubleType, FloatType))


def _is_vector(tp: DataType) -> bool:
    from pyspark.ml.linalg import VectorUDT

    return isinstance(tp, VectorUDT)
