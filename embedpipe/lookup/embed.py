"""``embedpipe embed``: join a dataset's bags of tokens/items with an embedding table.

Every row's column (tokens, raw text or sparse indices + values) becomes a bag of keys, and the
bag becomes a vector with one of the combiners of :mod:`embedpipe.combiners` (the same
kernel the Spark-free API runs). Two physical plans, chosen from the table's size:

* **broadcast** (the table fits in an executor Python worker): the table's keys, ids and vectors
  are shipped once per executor as a broadcast variable and cached per worker process with its
  hash index; a scalar Arrow UDF then embeds whole Arrow batches of the column with one sparse x
  dense product each (the other input columns never leave the JVM). No shuffle, no per-row Python.
* **shuffle** (e.g. 5M keys x 300 dims): each row's bag entries ``(row id, key, weight)`` are
  produced in ``mapInArrow``, left-joined with the table on the key (a sort-merge join, the
  table never leaves Spark), sorted by (row id, table id) within hash partitions of the row id and
  combined group by group with the same kernel; the vectors are joined back to the rows.

Either way the table is held to the format first (:mod:`embedpipe.table`'s checks: NaN/Inf,
vector lengths, NULL or duplicate keys, the manifest's row count): the broadcast plan as it loads
the table, the shuffle plan with one Spark aggregation; a broken table fails the job with one line
before anything is written.

Both plans sum a row's found vectors in table-row order with float32 accumulation, so their
outputs are identical. The output keeps every input column and adds ``vector`` (list<float32>,
NULL when the row has nothing to embed: NULL/empty input, or no key found under ``oov = skip``),
``tokens_found`` and ``tokens_total`` (tokens, or sparse entries, per row).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from embedpipe import combiners as K
from embedpipe import schema
from embedpipe.arrow_vectors import list_array_to_matrix
from embedpipe.errors import ConfigError, InputError, SchemaError, TableError
from embedpipe.jobconfig import EMBED_FORMATS, EmbedConfig, TokenizerSettings
from embedpipe.stages import StageClock
from embedpipe.storage import HadoopFS, atomic_output, read_parquet
from embedpipe.table import EmbeddingTable, check_table_spark, read_embedding_table_spark, read_manifest_spark

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)

TOKENS_FOUND = "tokens_found"
TOKENS_TOTAL = "tokens_total"
_TOKENS = "__embed_tokens"
_RID = "__embed_rid"
_KEY = "__embed_key"
_WEIGHT = "__embed_weight"
_OCC = "__embed_occ"
_NORM1 = "__embed_norm1"
_NORM2 = "__embed_norm2"
_STAT = "__embed_stat"
_ID = "__embed_id"
_VECTOR = "__embed_vector"
_FOUND = "__embed_found"
_TOTAL = "__embed_total"

#: Estimated bytes per key besides the vector: the key string, its id, pandas index overhead.
_KEY_OVERHEAD_BYTES = 96


# ------------------------------------------------------------------------------- the table


def check_table_dim(path: str, manifest: dict[str, Any], expected_dim: int | None) -> None:
    """Refuse a table of another dimension than the config's ``dim`` before any work starts."""
    dim = int(manifest["dim"])
    if expected_dim is not None and dim != expected_dim:
        raise TableError(f"embedding table {path} has dim {dim}, expected {expected_dim} (config key 'dim')")


def table_bytes(manifest: dict[str, Any], extra_bytes: int = 0) -> int:
    """Memory one copy of the table takes in a Python worker (vectors + keys + index, plus
    ``extra_bytes``: the n-gram bucket rows shipped with it under ``oov = subwords``), estimated."""
    return int(manifest["rows"]) * (int(manifest["dim"]) * 4 + _KEY_OVERHEAD_BYTES) + extra_bytes


def choose_strategy(config: EmbedConfig, manifest: dict[str, Any], extra_bytes: int = 0) -> tuple[str, str]:
    """(``broadcast`` or ``shuffle``, why) -- logged and returned in the job summary."""
    size_mb = table_bytes(manifest, extra_bytes) / 2**20
    if config.strategy != "auto":
        return config.strategy, f"strategy = {config.strategy} (table about {size_mb:.0f} MiB)"
    if size_mb <= config.broadcast_max_mb:
        return "broadcast", f"table about {size_mb:.0f} MiB <= broadcast_max_mb {config.broadcast_max_mb}"
    return "shuffle", f"table about {size_mb:.0f} MiB > broadcast_max_mb {config.broadcast_max_mb}"


# ------------------------------------------------------------------------------- the input


def _read_input(spark: SparkSession, config: EmbedConfig) -> tuple[DataFrame, str]:
    from embedpipe.readers import read_frame, resolve_input

    source = resolve_input(spark, config.input, config.format, allowed=EMBED_FORMATS,
                           csv_delimiter=config.csv_delimiter)
    return read_frame(spark, source, csv_header=config.csv_header, keep_corrupt=False), source.format


def resolve_kind(frame: DataFrame, config: EmbedConfig) -> str:
    """``tokens``, ``text`` or ``sparse``, from the config or the column's type; SchemaError otherwise."""
    from pyspark.sql.types import ArrayType, IntegralType, NumericType, StringType

    present = list(frame.columns)
    for key, name in (("column", config.column), ("values_column", config.values_column)):
        if name is not None and name not in present:
            raise SchemaError(f"input {config.input} lacks the column to embed", missing=[f"{name} ({key})"],
                              present=present)
    data_type = frame.schema[config.column].dataType
    is_string_array = isinstance(data_type, ArrayType) and isinstance(data_type.elementType, StringType)
    is_int_array = isinstance(data_type, ArrayType) and isinstance(data_type.elementType, IntegralType)
    kind = config.kind
    if kind == "auto":
        if isinstance(data_type, StringType):
            kind = "text"
        elif is_int_array and config.values_column is not None:
            kind = "sparse"
        elif is_string_array or is_int_array:
            kind = "tokens"
        else:
            kind = "unknown"
    expected = {
        "text": ("a string", isinstance(data_type, StringType)),
        "tokens": ("an array of strings or integers", is_string_array or is_int_array),
        "sparse": ("an array of integer indices", is_int_array),
        "unknown": ("an array of tokens, a string or sparse indices", False),
    }[kind]
    if not expected[1]:
        raise SchemaError(
            f"column '{config.column}' of {config.input} must be {expected[0]}, found {data_type.simpleString()}"
        )
    if kind == "sparse" and config.values_column is not None:
        values_type = frame.schema[config.values_column].dataType
        if not (isinstance(values_type, ArrayType) and isinstance(values_type.elementType, NumericType)):
            raise SchemaError(f"column '{config.values_column}' (values_column) of {config.input} must be an "
                              f"array of numbers, found {values_type.simpleString()}")
    return kind


def _check_tokenizer(spark: SparkSession, config: EmbedConfig, manifest: dict[str, Any]) -> None:
    """A tokenize output tokenized differently from the table's corpus is an error, not bad vectors."""
    table_settings = manifest.get("tokenizer")
    if not table_settings:
        return
    fs = HadoopFS(spark)
    root = config.input.rstrip("/")
    for directory in (root, root.rpartition("/")[0]):
        report_path = f"{directory}/{schema.REPORT_FILE}"
        if not directory or not fs.exists(report_path):
            continue
        try:
            report = json.loads(fs.read_text(report_path))
        except (ValueError, UnicodeDecodeError):
            return
        input_settings = report.get("tokenizer") if isinstance(report, dict) else None
        if isinstance(input_settings, dict):  # keys added since (tokenizer, keep_particles) at their defaults
            defaults = dataclasses.asdict(TokenizerSettings())
            input_settings, table_settings = {**defaults, **input_settings}, {**defaults, **table_settings}
        if isinstance(input_settings, dict) and input_settings != table_settings:
            keys = sorted(set(input_settings) | set(table_settings))
            diffs = [f"{k}: table {table_settings.get(k)!r}, input {input_settings.get(k)!r}"
                     for k in keys if input_settings.get(k) != table_settings.get(k)]
            raise TableError(f"embedding table {config.table} was trained with a different tokenizer than "
                             f"input {config.input} was tokenized with ({'; '.join(diffs)})")
        return


def prepare_input(spark: SparkSession, frame: DataFrame, config: EmbedConfig, kind: str,
                  manifest: dict[str, Any]) -> tuple[DataFrame, str]:
    """The input plus (if needed) an internal token column; returns (frame, column to embed)."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import StringType

    if kind == "text":
        settings = manifest.get("tokenizer")
        if not settings:
            raise TableError(
                f"column '{config.column}' of {config.input} is raw text but embedding table {config.table} "
                f"records no tokenizer (key_kind {manifest.get('key_kind')!r}); pass a column of keys"
            )
        from embedpipe.text.tokenizer import load_stop_words, tokenize_column

        tokenizer = TokenizerSettings(**settings)
        stop_words = load_stop_words(spark, tokenizer.stop_words)
        return frame.withColumn(_TOKENS, tokenize_column(F.col(f"`{config.column}`"), tokenizer, stop_words)), _TOKENS
    if kind == "tokens":
        _check_tokenizer(spark, config, manifest)
        element = frame.schema[config.column].dataType.elementType
        if not isinstance(element, StringType):
            return frame.withColumn(_TOKENS, F.col(f"`{config.column}`").cast("array<string>")), _TOKENS
    return frame, config.column


# ------------------------------------------------------------------------- broadcast path

_WORKER_TABLES: dict[tuple[Any, ...], tuple[K.KeyIndex, dict[str, Any]]] = {}


def _table_on_worker(broadcast: Any, cache_key: tuple[Any, ...]) -> tuple[K.KeyIndex, dict[str, Any]]:
    """The broadcast table and its hash index, built once per Python worker process."""
    hit = _WORKER_TABLES.get(cache_key)
    if hit is None:
        payload = broadcast.value
        _WORKER_TABLES.clear()  # one table per worker: never accumulate old ones
        hit = (K.KeyIndex(payload["keys"], payload["ids"]), payload)
        _WORKER_TABLES[cache_key] = hit
    return hit


def _bags_and_rows(batch_column: pa.Array, values: pa.Array | None, kind: str,
                   index: K.KeyIndex) -> tuple[K.Bags, np.ndarray]:
    if kind == "sparse":
        bags = K.sparse_bags(batch_column, values)
        return bags, index.rows_of_ids(bags.codes)
    bags, dictionary = K.token_bags(batch_column)
    rows = index.rows_of_keys(dictionary)[bags.codes] if bags.codes.size else bags.codes
    return bags, rows


def embed_broadcast(
    spark: SparkSession,
    table: EmbeddingTable,
    prepared: DataFrame,
    column: str,
    kind: str,
    config: EmbedConfig,
    manifest: dict[str, Any],
    keep: list[str],
    document_frequency: DataFrame | None,
    documents: int,
) -> DataFrame:
    """The broadcast plan: a scalar Arrow UDF over the column, the table in every Python worker."""
    from pyspark.sql import functions as F

    keys = pa.array(table.keys, pa.string())
    idf = None
    if config.combiner == "tfidf":
        if document_frequency is None:
            idf = table.table_idf
        else:
            idf = K.idf_weights(_df_per_row(document_frequency, kind, keys, table.ids), documents)
    subwords = None
    if config.oov == "subwords":
        from embedpipe.composed import read_subword_vectors_spark

        subwords = read_subword_vectors_spark(spark, config.table, manifest)
    payload = {"keys": keys, "ids": table.ids, "vectors": table.vectors, "idf": idf, "subwords": subwords}
    broadcast = spark.sparkContext.broadcast(payload)
    cache_key = (config.table, manifest.get("created_at"), uuid.uuid4().hex)
    options = {"broadcast": broadcast, "cache_key": cache_key, "kind": kind, "combiner": config.combiner,
               "oov": config.oov, "normalize": config.normalize}
    # A scalar Arrow UDF: only the embedded column travels to Python, and only the new columns come
    # back; every other input column stays in the JVM (mapInArrow would round-trip them all).
    if config.values_column:
        def embed_sparse(indices: pa.Array, values: pa.Array) -> pa.Array:
            return _embed_arrays(indices, values, **options)

        udf, arguments = embed_sparse, [column, config.values_column]
    else:
        def embed_tokens(tokens: pa.Array) -> pa.Array:
            return _embed_arrays(tokens, None, **options)

        udf, arguments = embed_tokens, [column]
    # Non-deterministic only so the optimizer never evaluates the UDF once per struct field.
    embedded = F.arrow_udf(udf, _RESULT_TYPE).asNondeterministic()(*[F.col(f"`{c}`") for c in arguments])
    result = prepared.withColumn(_VECTOR, embedded)
    return result.select(
        *[F.col(f"`{name}`") for name in keep],
        F.col(f"{_VECTOR}.vector").alias(config.vector_column),
        F.coalesce(F.col(f"{_VECTOR}.found"), F.lit(0).cast("bigint")).alias(TOKENS_FOUND),
        F.coalesce(F.col(f"{_VECTOR}.total"), F.lit(0).cast("bigint")).alias(TOKENS_TOTAL),
    )


_RESULT_TYPE = "struct<vector: array<float>, found: bigint, total: bigint>"


def _embed_arrays(column: pa.Array, values: pa.Array | None, *, broadcast: Any, cache_key: tuple[Any, ...],
                  kind: str, combiner: str, oov: str, normalize: bool) -> pa.Array:
    """One Arrow batch of the embedded column -> struct<vector, found, total> (the broadcast plan)."""
    index, payload = _table_on_worker(broadcast, cache_key)
    vectors, subwords = payload["vectors"], payload.get("subwords")
    if subwords is not None:  # oov = subwords (tokens only, no tfidf): unseen keys get composed rows
        from embedpipe.composed import rows_with_composed

        bags, dictionary = K.token_bags(column)
        dictionary_rows, vectors = rows_with_composed(dictionary, index.rows_of_keys(dictionary), vectors, subwords)
        rows = dictionary_rows[bags.codes] if bags.codes.size else bags.codes
        oov = "skip"  # a key none of whose n-grams was trained stays unseen
    else:
        bags, rows = _bags_and_rows(column, values, kind, index)
    result = K.embed_bags(bags, rows, vectors, combiner=combiner, oov=oov, normalize=normalize,
                          idf=payload["idf"])
    return pa.StructArray.from_arrays(
        [K.vectors_to_arrow(result.vectors, result.has_vector), pa.array(result.found, pa.int64()),
         pa.array(result.total, pa.int64())],
        names=["vector", "found", "total"],
    )


def _df_per_row(document_frequency: DataFrame, kind: str, keys: pa.Array, ids: np.ndarray) -> np.ndarray:
    """Input document frequencies collected (vocabulary-sized) and aligned with the table rows."""
    rows = document_frequency.collect()
    index = K.KeyIndex(keys, ids)
    df = np.zeros(len(ids), dtype=np.int64)
    if not rows:
        return df
    names = [r[0] for r in rows]
    positions = index.rows_of_ids(np.array(names, dtype=np.int64)) if kind == "sparse" else index.rows_of_keys(names)
    counts = np.array([r[1] for r in rows], dtype=np.int64)
    df[positions[positions >= 0]] = counts[positions >= 0]
    return df


# --------------------------------------------------------------------------- shuffle path


def _entry_batches(batches: Iterator[pa.RecordBatch], *, column: str, values_column: str | None,
                   kind: str) -> Iterator[pa.RecordBatch]:
    """Each row's bag entries (row id, key, weight, occurrences, the row's norms over all keys)."""
    for batch in batches:
        values = batch.column(values_column) if values_column else None
        if kind == "sparse":
            bags = K.sparse_bags(batch.column(column), values)
            keys: pa.Array = pa.array(bags.codes, pa.int64())
        else:
            bags, dictionary = K.token_bags(batch.column(column))
            keys = dictionary.take(pa.array(bags.codes, pa.int64())) if bags.codes.size else pa.array([], pa.string())
        norm1, norm2 = bags.norms()
        rid = batch.column(_RID).to_numpy(zero_copy_only=False)
        yield pa.RecordBatch.from_arrays(
            [
                pa.array(rid[bags.parents], pa.int64()),
                keys.cast(pa.int64() if kind == "sparse" else pa.string()),
                pa.array(bags.weights, pa.float64()),
                pa.array(bags.occurrences, pa.int64()),
                pa.array(norm1[bags.parents], pa.float64()),
                pa.array(norm2[bags.parents], pa.float64()),
            ],
            names=[_RID, _KEY, _WEIGHT, _OCC, _NORM1, _NORM2],
        )


def _combine_groups(batches: Iterator[pa.RecordBatch], *, dim: int, combiner: str, oov: str, normalize: bool,
                    documents: int) -> Iterator[pa.RecordBatch]:
    """Combine entries sorted by (row id, table id); a row's entries may straddle Arrow batches."""
    pending: pa.Table | None = None
    for batch in batches:
        current = pa.Table.from_batches([batch])
        if pending is not None and pending.num_rows:
            current = pa.concat_tables([pending, current])
        if current.num_rows == 0:
            continue
        rid = current.column(_RID).to_numpy()
        cut = int(np.searchsorted(rid, rid[-1], side="left"))
        pending = current.slice(cut)
        if cut:
            yield _combine_table(current.slice(0, cut), dim=dim, combiner=combiner, oov=oov, normalize=normalize,
                                 documents=documents)
    if pending is not None and pending.num_rows:
        yield _combine_table(pending, dim=dim, combiner=combiner, oov=oov, normalize=normalize, documents=documents)


def _combine_table(entries: pa.Table, *, dim: int, combiner: str, oov: str, normalize: bool,
                   documents: int) -> pa.RecordBatch:
    entries = entries.combine_chunks()
    rid = entries.column(_RID).to_numpy()
    starts = np.flatnonzero(np.r_[True, rid[1:] != rid[:-1]])
    n = starts.size
    parents = np.repeat(np.arange(n), np.diff(np.r_[starts, rid.size]))
    found = entries.column(_ID).is_valid().to_numpy(zero_copy_only=False)
    weights = entries.column(_WEIGHT).to_numpy()
    occurrences = entries.column(_OCC).to_numpy()
    matrix = list_array_to_matrix(entries.column(_VECTOR).filter(pa.array(found)), dim)
    idf = None
    if combiner == "tfidf":
        idf = K.idf_weights(entries.column(_STAT).to_numpy(zero_copy_only=False)[found], documents)
    totals = np.bincount(parents, weights=occurrences, minlength=n).astype(np.int64)
    norms_all = (entries.column(_NORM1).to_numpy()[starts], entries.column(_NORM2).to_numpy()[starts])
    result = K.embed_found_entries(
        n_rows=n, parents=parents[found], weights=weights[found], occurrences=occurrences[found], matrix=matrix,
        matrix_columns=np.arange(matrix.shape[0]), idf=idf, totals=totals, norms_all=norms_all,
        valid=np.ones(n, dtype=bool), combiner=combiner, oov=oov, normalize=normalize,
    )
    return pa.RecordBatch.from_arrays(
        [pa.array(rid[starts], pa.int64()), K.vectors_to_arrow(result.vectors, result.has_vector),
         pa.array(result.found, pa.int64()), pa.array(result.total, pa.int64())],
        names=[_RID, _VECTOR, _FOUND, _TOTAL],
    )


def embed_shuffle(
    spark: SparkSession,
    prepared: DataFrame,
    column: str,
    kind: str,
    config: EmbedConfig,
    manifest: dict[str, Any],
    keep: list[str],
    document_frequency: DataFrame | None,
    documents: int,
) -> DataFrame:
    """The shuffle-join plan: bag entries join the table on the key; nothing is broadcast."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import ArrayType, FloatType, LongType, StructField, StructType

    dim = int(manifest["dim"])
    # Row ids straight off the file scan (no shuffle before them), so both uses see the same ids.
    with_rid = prepared.withColumn(_RID, F.monotonically_increasing_id())
    key_type = "bigint" if kind == "sparse" else "string"
    needed = [column] + ([config.values_column] if config.values_column else []) + [_RID]
    entries = with_rid.select(*[F.col(f"`{c}`") for c in needed]).mapInArrow(
        functools.partial(_entry_batches, column=column, values_column=config.values_column, kind=kind),
        f"{_RID} bigint, {_KEY} {key_type}, {_WEIGHT} double, {_OCC} bigint, {_NORM1} double, {_NORM2} double",
    )
    table = read_parquet(spark, config.table)
    join_column = schema.ID if kind == "sparse" else schema.KEY
    table = table.select(
        F.col(join_column).alias(_KEY), F.col(schema.ID).alias(_ID), F.col(schema.VECTOR).alias(_VECTOR),
        F.col(schema.COUNT).alias(_STAT),
    )
    if document_frequency is not None:
        table = table.drop(_STAT).join(document_frequency.toDF(_KEY, _STAT), _KEY, "left").fillna(0, [_STAT])
    order = [_RID, F.col(_ID).asc_nulls_first()]
    if config.oov == "subwords":  # unseen keys join their composed vectors, ordered after the table's rows
        from embedpipe.composed import COMPOSED_ID, composed_keys

        unseen = entries.select(_KEY).join(table.select(_KEY), _KEY, "left_anti")
        composed = composed_keys(spark, unseen, config.table, manifest).select(
            F.col("key").alias(_KEY), F.lit(COMPOSED_ID).cast("bigint").alias(_ID), F.col("vector").alias(_VECTOR),
            F.lit(0).cast("bigint").alias(_STAT))
        table = table.unionByName(composed)
        order.append(_KEY)
    joined = entries.join(table, _KEY, "left")
    partitions = int(spark.conf.get("spark.sql.shuffle.partitions"))
    grouped = joined.repartition(partitions, _RID).sortWithinPartitions(*order)
    combined = grouped.select(_RID, _ID, _WEIGHT, _OCC, _NORM1, _NORM2, _VECTOR, _STAT).mapInArrow(
        functools.partial(_combine_groups, dim=dim, combiner=config.combiner,
                          oov="skip" if config.oov == "subwords" else config.oov,
                          normalize=config.normalize, documents=documents),
        StructType([
            StructField(_RID, LongType(), False), StructField(_VECTOR, ArrayType(FloatType(), True), True),
            StructField(_FOUND, LongType(), False), StructField(_TOTAL, LongType(), False),
        ]),
    )
    result = with_rid.join(combined, _RID, "left")
    return result.select(
        *[F.col(f"`{name}`") for name in keep],
        F.col(_VECTOR).alias(config.vector_column),
        F.coalesce(F.col(_FOUND), F.lit(0).cast("bigint")).alias(TOKENS_FOUND),
        F.coalesce(F.col(_TOTAL), F.lit(0).cast("bigint")).alias(TOKENS_TOTAL),
    )


# ------------------------------------------------------------------------------------- job


def input_document_frequency(prepared: DataFrame, column: str, kind: str) -> tuple[DataFrame, int]:
    """(key, df) over the input's non-NULL rows and their number: tf-idf with ``idf = input``.

    The (vocabulary-sized) frame is collected by the broadcast plan, joined by the shuffle plan.
    """
    from pyspark.sql import functions as F

    rows = prepared.filter(F.col(f"`{column}`").isNotNull())
    documents = rows.count()
    keys = F.explode(F.array_distinct(F.filter(F.col(f"`{column}`"), lambda x: x.isNotNull())))
    df = rows.select(keys.alias("key")).groupBy("key").agg(F.count(F.lit(1)).alias("df"))
    if kind == "sparse":
        df = df.select(F.col("key").cast("bigint").alias("key"), "df")
    return df, int(documents)


def _oov_examples(spark: SparkSession, prepared: DataFrame, column: str, kind: str, config: EmbedConfig) -> list[str]:
    from pyspark.sql import functions as F

    table = read_parquet(spark, config.table)
    if kind == "sparse":
        keys = prepared.select(F.explode(F.col(f"`{column}`")).cast("bigint").alias("k"))
        known = table.select(F.col(schema.ID).alias("k"))
    else:
        keys = prepared.select(F.explode(F.col(f"`{column}`")).alias("k"))
        known = table.select(F.col(schema.KEY).alias("k"))
    missing = keys.filter(F.col("k").isNotNull()).join(known, "k", "left_anti").distinct().orderBy("k").limit(3)
    return [str(r[0]) for r in missing.collect()]


@dataclass(frozen=True)
class EmbedPlan:
    """The embedding DataFrame of a config and what was decided on the way (for logs and tests)."""

    result: DataFrame
    prepared: DataFrame
    column: str
    kind: str
    strategy: str
    reason: str
    manifest: dict[str, Any]


def plan_embed(spark: SparkSession, config: EmbedConfig) -> EmbedPlan:
    """Validate table and input (one-line errors) and build the output DataFrame (nothing runs yet
    except the small input-idf aggregation for ``tfidf`` with ``idf = input``)."""
    from pyspark.sql import functions as F

    config.validate()  # also when called directly, not through the CLI
    manifest = read_manifest_spark(spark, config.table)
    check_table_dim(config.table, manifest, config.dim)
    frame, fmt = _read_input(spark, config)
    kind = resolve_kind(frame, config)
    keep = list(frame.columns)
    for name in (config.vector_column, TOKENS_FOUND, TOKENS_TOTAL):
        if name in keep:
            raise ConfigError(f"input {config.input} already has a column '{name}' (set vector_column, or drop "
                              f"the column: the output adds {config.vector_column}, {TOKENS_FOUND}, {TOKENS_TOTAL})")
    if config.oov == "subwords" and kind == "sparse":
        raise ConfigError(f"config key 'oov' = subwords needs tokens or text; column '{config.column}' of "
                          f"{config.input} holds sparse indices (no characters to make n-grams of)")
    prepared, column = prepare_input(spark, frame, config, kind, manifest)
    extra_bytes = 0
    if config.oov == "subwords":  # a table without _subwords fails here, one line, before any work
        from embedpipe.composed import subword_bytes

        extra_bytes = subword_bytes(spark, config.table, manifest)
    strategy, reason = choose_strategy(config, manifest, extra_bytes)
    # Held to the format before any work: loaded (and checked) for broadcast, one aggregation for shuffle.
    table = read_embedding_table_spark(spark, config.table) if strategy == "broadcast" else None
    if table is None:
        check_table_spark(spark, config.table, manifest)
    log.info("embed %s (%s, column %s as %s) with %s: %s plan (%s); combiner %s, oov %s",
             config.input, fmt, config.column, kind, config.table, strategy, reason, config.combiner, config.oov)
    document_frequency, documents = None, 0
    if config.combiner == "tfidf" and config.idf == "input":
        document_frequency, documents = input_document_frequency(prepared, column, kind)
    elif config.combiner == "tfidf" and strategy == "shuffle":  # the broadcast plan sums the counts itself
        documents = int(read_parquet(spark, config.table).agg(F.sum(schema.COUNT)).first()[0] or 0)
    if table is not None:
        result = embed_broadcast(spark, table, prepared, column, kind, config, manifest, keep, document_frequency,
                                 documents)
    else:
        result = embed_shuffle(spark, prepared, column, kind, config, manifest, keep, document_frequency, documents)
    return EmbedPlan(result, prepared, column, kind, strategy, reason, manifest)


def run_embed(spark: SparkSession, config: EmbedConfig) -> dict[str, Any]:
    """Embed ``config.column`` of ``config.input`` with ``config.table`` into ``config.output`` (atomic)."""
    from pyspark.sql import Observation
    from pyspark.sql import functions as F

    started = time.monotonic()
    clock = StageClock()
    plan = plan_embed(spark, config)
    clock.lap("open")  # table read, checked and (broadcast plan) loaded; input opened
    result, prepared, column, kind, manifest = plan.result, plan.prepared, plan.column, plan.kind, plan.manifest
    # The summary's figures are aggregated as the rows are written (Spark counts each task's once, retries
    # included), not by reading the output back: one Spark job less.
    observed = Observation("embed")
    result = result.observe(
        observed,
        F.count(F.lit(1)).alias("rows"),
        F.sum(TOKENS_FOUND).alias("found"),
        F.sum(TOKENS_TOTAL).alias("total"),
        F.sum(F.col(f"`{config.vector_column}`").isNull().cast("int")).alias("null_vectors"),
    )
    with atomic_output(spark, config.output, inputs=(config.input, config.table)) as staging:
        # Float vectors almost never repeat: trying a dictionary for them only costs time (measured
        # ~0.3 s per 100k documents) before Parquet falls back to plain encoding.
        result.write.mode("error").option(f"parquet.enable.dictionary#{config.vector_column}.list.element", "false") \
            .parquet(staging)
        clock.lap("embed_write")  # read, look up, combine and write run as one Spark job
        stats = observed.get
        rows, found, total = int(stats["rows"]), int(stats["found"] or 0), int(stats["total"] or 0)
        if config.oov == "fail" and found < total:
            examples = _oov_examples(spark, prepared, column, kind, config)
            raise InputError(
                f"{total - found} of {total} tokens of column '{config.column}' of {config.input} are not in "
                f"embedding table {config.table} (oov = fail), e.g. {', '.join(repr(e) for e in examples)}"
            )
        clock.lap("count")
    clock.lap("commit")
    clock.log(log, "embed")
    oov_rate = (total - found) / total if total else 0.0
    elapsed = time.monotonic() - started
    log.info("embedded %d rows (%d tokens, OOV rate %.2f%%, %d NULL vectors) in %.1fs (%.0f tokens/s) -> %s",
             rows, total, 100 * oov_rate, int(stats["null_vectors"] or 0), elapsed,
             total / elapsed if elapsed > 0 else 0.0, config.output)
    return {
        "output": config.output,
        "rows": rows,
        "tokens": total,
        "tokens_found": found,
        "oov_rate": round(oov_rate, 6),
        "null_vectors": int(stats["null_vectors"] or 0),
        "kind": kind,
        "strategy": plan.strategy,
        "strategy_reason": plan.reason,
        "combiner": config.combiner,
        "dim": int(manifest["dim"]),
        "seconds": round(elapsed, 3),
        "stages": clock.seconds(),
    }

