"""Warm start (``train --init-from TABLE``): today's run starts from a parent table's vectors.

Why: a nightly retrain from scratch lands in a new, unrelated rotation of the space every day, so
every index, cache or downstream model built on yesterday's table silently breaks. Starting the
keys yesterday's table has from its vectors keeps them where they were; training then only moves
them as far as today's data asks (docs/warm-start.md has the measurements).

What carries over: ``key`` is the identity. A key of today's vocabulary that the parent has starts
from the parent's vector (and from its output/context vector when the parent exported those with
``export_output_vectors``: the parent's manifest names that table); a new key (sgns, item2vec) starts
from the mean parent vectors of the kept keys within the window around its occurrences
(:mod:`embedpipe.warm_context`), or, with none, from the usual seeded random vector; a key only the
parent has is dropped. Ids stay the frequency ranks of today's
vocabulary. The manifest records the parent (path and its manifest's identity) and the overlap.

Everything here runs on the driver on vocabulary-sized arrays (the parent table is read with
:func:`~embedpipe.table.read_embedding_table_spark`); no per-key Python.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from embedpipe.errors import ConfigError, EmbedpipeError, InputError
from embedpipe.table import EmbeddingTable, read_embedding_table_spark, read_manifest_spark

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from embedpipe.jobconfig import TrainConfig
    from embedpipe.torchtrain.model import InitialVectors

log = logging.getLogger(__name__)

#: The manifest ``params`` key under which a table names its exported output (context) vectors' table.
OUTPUT_TABLE_PARAM = "output_vectors_table"
#: The manifest ``params`` key that records a warm start (parent, overlap), absent on cold runs.
RECORD_PARAM = "warm_start"


@dataclass(frozen=True)
class WarmStart:
    """What a run starts from: the rows taken from the parent (None: a cold start) and the manifest record."""

    initial: InitialVectors | None
    record: dict[str, Any]


def parent_identity(path: str, manifest: dict[str, Any]) -> dict[str, Any]:
    """The parent as the manifest records it: its path and what identifies the manifest it had."""
    digest = hashlib.sha256(json.dumps(manifest, sort_keys=True).encode()).hexdigest()[:16]
    return {"path": path, "method": manifest.get("method"), "created_at": manifest.get("created_at"),
            "rows": manifest.get("rows"), "manifest_sha256": digest}


def _init_error(config: TrainConfig, exc: EmbedpipeError) -> EmbedpipeError:
    error = type(exc)(f"config key 'init_from' ({config.init_from}): {exc}")
    return error


def _read_parent(spark: SparkSession, config: TrainConfig, key_kind: str) -> EmbeddingTable | None:
    """The parent table, checked against this run (dim, key kind); None for a missing one with ``cold``."""
    from embedpipe.storage import HadoopFS

    path = str(config.init_from)
    fs = HadoopFS(spark)
    if fs.qualify(path).rstrip("/") == fs.qualify(str(config.output)).rstrip("/"):
        raise ConfigError("config key 'init_from' must differ from 'output' (the parent table would be replaced)")
    if not fs.exists(path):
        if config.init_from_missing == "cold":
            log.warning("warm start: init_from %s does not exist (init_from_missing = cold): a cold start", path)
            return None
        raise InputError(f"config key 'init_from': embedding table not found: {path} (set init_from_missing = "
                         "cold to cold-start when it is missing)")
    path = _rerun_source(spark, fs, path, str(config.output))
    try:
        manifest = read_manifest_spark(spark, path)
    except EmbedpipeError as exc:
        raise _init_error(config, exc) from None
    if int(manifest["dim"]) != config.dim:
        raise ConfigError(f"config key 'init_from': parent table {path} has dim {manifest['dim']}, this run has "
                          f"dim {config.dim}")
    parent_kind = manifest.get("key_kind", "token")
    if parent_kind != key_kind:
        raise ConfigError(f"config key 'init_from': parent table {path} has {parent_kind} keys, this run's input "
                          f"has {key_kind} keys")
    try:
        return read_embedding_table_spark(spark, path)
    except EmbedpipeError as exc:
        raise _init_error(config, exc) from None


def _published_record(fs: Any, path: str) -> dict[str, Any] | None:
    """The ``_published.json`` of ``path`` when it is a table published by ``embedpipe publish``."""
    from embedpipe.publish import PUBLISHED_FILE

    record = f"{path.rstrip('/')}/{PUBLISHED_FILE}"
    if not fs.exists(record):
        return None
    try:
        data = json.loads(fs.read_text(record))
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def source_of(fs: Any, path: str) -> str:
    """The table a published copy was published from (``_published.json``'s ``table``), else ``path`` itself.

    A warm start records this as its parent, so a table warm-started through the published path names
    the run it really came from, whatever is published later.
    """
    record = _published_record(fs, path)
    source = record.get("table") if record else None
    if not source:
        return path
    # publish records the path Hadoop-qualified; a local one is written back as a plain path
    return re.sub(r"^file:(//)?(?=/)", "", str(source))


def _rerun_source(spark: SparkSession, fs: Any, path: str, output: str) -> str:
    """Where a rerun of the published run starts from: the parent of that run, not the run itself.

    When ``path`` is a published copy of ``output`` (the nightly DAG reruns the date now published), starting
    from it would start a run from its own result; the published table's manifest names the parent its run
    started from, and the rerun starts from the same one, so a rerun gives the same table.
    """
    record = _published_record(fs, path)
    if not record or fs.qualify(str(record.get("table", ""))).rstrip("/") != fs.qualify(output).rstrip("/"):
        return path
    manifest = read_manifest_spark(spark, path)
    record = (manifest.get("params") or {}).get(RECORD_PARAM) or {}
    parent = record.get("parent")
    if not parent:
        raise _RerunOfColdStart(record or {"parent": None, "cold_start": "a rerun of a cold-started run"})
    log.info("warm start: %s is this run's own earlier result; starting from its parent %s", path, parent["path"])
    return str(parent["path"])


class _RerunOfColdStart(Exception):
    """The run being rerun was a cold start: so is the rerun, recorded as that run was (its record is the arg)."""


def _read_output_vectors(spark: SparkSession, parent: EmbeddingTable) -> np.ndarray | None:
    """The parent's exported output vectors in the parent's row order, or None (they then start fresh)."""
    path = (parent.manifest.get("params") or {}).get(OUTPUT_TABLE_PARAM)
    if not path:
        return None
    try:
        output = read_embedding_table_spark(spark, str(path))
    except EmbedpipeError as exc:
        log.warning("warm start: the parent's output vectors %s cannot be read (%s); they start fresh", path, exc)
        return None
    if output.dim != parent.dim or output.keys != parent.keys:
        log.warning("warm start: the output vectors %s do not match the parent's keys and dim; they start fresh",
                    path)
        return None
    return output.vectors


def plan_warm_start(spark: SparkSession, config: TrainConfig, keys: pa.Array, key_kind: str,
                    *, with_output: bool = True, sentences: DataFrame | None = None,
                    window: int | None = None) -> WarmStart | None:
    """The warm start of a run whose vocabulary is ``keys`` (id order); None when ``init_from`` is not set.

    Raises one-line errors (nothing is written: this runs before training) for a parent of another
    dim or key kind, without a manifest, of a newer format, or equal to the output. A parent sharing
    no key with ``keys`` is a warning and a cold start, recorded. With ``sentences`` (the run's
    sequences) and ``window``, new keys start from the mean parent vectors of the kept keys within
    ``window`` positions (:mod:`embedpipe.warm_context`) instead of random ones.
    """
    if config.init_from is None:
        return None
    try:
        parent = _read_parent(spark, config, key_kind)
    except _RerunOfColdStart as rerun:
        log.warning("warm start: %s is this run's own earlier result, which was a cold start: a cold start",
                    config.init_from)
        return WarmStart(None, dict(rerun.args[0]))
    if parent is None:
        return WarmStart(None, {"parent": None, "cold_start": f"init_from {config.init_from} did not exist"})
    from embedpipe.storage import HadoopFS

    identity = parent_identity(source_of(HadoopFS(spark), str(parent.path)), parent.manifest)
    parent_rows = pc.index_in(keys.cast(pa.string()), value_set=pa.array(parent.keys, pa.string()))
    kept_mask = parent_rows.is_valid().to_numpy(zero_copy_only=False)
    rows = np.flatnonzero(kept_mask).astype(np.int64)
    source = parent_rows.drop_null().to_numpy().astype(np.int64)
    overlap = {"kept": int(rows.size), "added": int(len(keys) - rows.size), "dropped": int(len(parent) - rows.size)}
    if rows.size == 0:
        log.warning("warm start: parent %s shares no key with this run's %d keys: a cold start", config.init_from,
                    len(keys))
        return WarmStart(None, {"parent": identity, **overlap, "cold_start": "no key shared with the parent"})
    output = _read_output_vectors(spark, parent) if with_output else None
    from embedpipe.torchtrain.model import InitialVectors

    w_in, w_out = parent.vectors[source], None if output is None else output[source]
    record = {"parent": identity, **overlap, "output_vectors": output is not None}
    if sentences is not None and window is not None and overlap["added"]:
        from embedpipe.warm_context import context_vectors

        started = time.perf_counter()
        new_rows, new_in, new_out = context_vectors(sentences, keys, rows, w_in, w_out, window)
        record["added_from_context"] = int(new_rows.size)
        log.info("warm start: %d of %d new keys start from their kept context keys (%.1f s)", new_rows.size,
                 overlap["added"], time.perf_counter() - started)
        rows, w_in = np.concatenate([rows, new_rows]), np.concatenate([w_in, new_in])
        w_out = None if w_out is None or new_out is None else np.concatenate([w_out, new_out])
    initial = InitialVectors(rows=rows, w_in=w_in, w_out=w_out)
    log.info("warm start from %s: %d keys kept, %d added (%s from their contexts), %d dropped; output vectors %s",
             config.init_from, overlap["kept"], overlap["added"], record.get("added_from_context", 0),
             overlap["dropped"], "from the parent" if output is not None else "start fresh")
    return WarmStart(initial, record)
