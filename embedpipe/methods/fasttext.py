"""``train --method fasttext``: fastText's skip-gram (subword vectors) in Spark barrier tasks.

The Spark side is SGNS's (:mod:`embedpipe.methods.sgns`): the token sequences are hash-partitioned by
``doc_id`` into ``processes`` barrier tasks, each replica trains on its partition and, with several
processes, the replicas combine as sgns's do (:class:`~embedpipe.methods.sgns_sync.SGNSReplicaGroup`:
the :data:`FASTTEXT_HOT_ROWS` rows with the most expected updates every 192 tokens per replica, here
frequent words' rows and the n-gram buckets they share, every row ``averages_per_epoch`` times per
epoch, each row's summed update scaled by its saturation); checkpoints and resume work the same way.
What differs is computed once on the driver from the vocabulary and broadcast with it: each word's
input rows (its own and its n-grams' buckets, :func:`embedpipe.subwords.subword_index`), so the tasks do
no string work.

Two tables come out, in one format: the main table holds the composed vector of every vocabulary
word (any Parquet reader uses it as any other table), and ``<output>/_subwords/`` holds the trained
bucket rows (``key`` = bucket number as text, ``id`` = bucket, ``count`` = vocabulary words using it),
from which unseen words are composed (:mod:`embedpipe.subwords`, docs/table-format.md). Readers
skip ``_``-prefixed directories, so the main table reads as before. Both manifests record the
n-gram scheme (minn, maxn, buckets, hash) and a reader refuses a pair that does not match.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from embedpipe import schema
from embedpipe.jobconfig import TrainConfig
from embedpipe.methods.barrier import Replica, TaskOutput, run_replicas
from embedpipe.methods.result import EmbeddingRows, ExtraTable, TrainedEmbeddings, driver_rows
from embedpipe.methods.sgns import _prepare_checkpoints, check_learned, core_params, task_threads
from embedpipe.methods.sgns_sync import HOT_ROUND_TOKENS, HOT_ROWS, SGNSReplicaGroup, plan_sync
from embedpipe.subwords import HASH_NAME, SUBWORDS_PARAM, subword_index

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from embedpipe.methods.inputs import TrainingInput

log = logging.getLogger(__name__)

#: Where the bucket table goes, inside the main table's directory (``_``: Parquet readers skip it).
SUBWORD_DIR = "_subwords"
#: Rows per matrix in the replicas' hot rounds: 4x sgns's, because a word's updates reach all its ~7 input
#: rows (1,024 held 35% of the input updates on the text8 prefix and lost 0.037 analogies at 8 replicas,
#: 4,096 lost 0.010; docs/benchmarks.md#replicas).
FASTTEXT_HOT_ROWS = 4 * HOT_ROWS


def scheme(minn: int, maxn: int, buckets: int) -> dict[str, Any]:
    """The n-gram scheme both manifests record under ``params.subwords`` (and the reader compares)."""
    return {"minn": minn, "maxn": maxn, "buckets": buckets, "hash": HASH_NAME, "jamo": False, "table": SUBWORD_DIR}


def fasttext_params(config: TrainConfig, threads: int | None = None) -> dict[str, Any]:
    """The trainer's parameters (a FastTextParams) for ``train --method fasttext``."""
    settings = config.settings
    base = core_params(config, threads=threads or config.threads, epochs=settings.epochs, sample=settings.sample,
                       shrink_window=True)
    return {**base, "minn": settings.minn, "maxn": settings.maxn, "buckets": settings.buckets}


def train_fasttext_on_spark(spark: SparkSession, config: TrainConfig, data: TrainingInput) -> TrainedEmbeddings:
    """``train --method fasttext``: composed word vectors as the table, bucket vectors in ``_subwords``."""
    from embedpipe.torchtrain.subword_train import FastTextParams

    params = FastTextParams(**fasttext_params(config, task_threads(spark, config)))
    vocab_table = data.vocabulary()  # non-empty, ids 0..V-1: checked when the input was opened
    keys = vocab_table.column(schema.TOKEN).combine_chunks()
    counts = vocab_table.column(schema.COUNT).to_numpy().astype(np.int64)
    subwords = subword_index(keys, params.minn, params.maxn, params.buckets)
    checkpoints = _prepare_checkpoints(config, params, subwords.n_rows, "fasttext")
    log.info("fasttext: %d words, %d n-gram buckets in use (%.1f rows per word), %d barrier task(s), params %s",
             len(keys), len(subwords.buckets), len(subwords.rows) / len(keys), config.processes, params.to_dict())

    result = run_replicas(
        data.sentences().select(schema.DOC_ID, schema.TOKENS), _train_replica, processes=config.processes,
        order_by=schema.DOC_ID, device=params.device, method="fasttext",
        shared=(keys, counts, params.to_dict(), config.averages_per_epoch, checkpoints, subwords),
    )
    info = result.info
    words = result.matrix("input", len(keys), params.dim)
    buckets = result.matrix("subwords", len(subwords.buckets), params.dim)
    tokens_trained = int(info["tokens"])
    # as sgns: a run whose replicas' combined updates still overshot must fail here, not write random vectors
    check_learned(float(info["loss"]), params.negative, config.processes, "fasttext")
    epochs_run = params.epochs - checkpoints.resume_epoch
    log.info("fasttext: trained on %d tokens x %d epoch(s) in %.1f s (%.0f words/s)", tokens_trained, epochs_run,
             result.seconds, tokens_trained * epochs_run / max(result.seconds, 1e-9))
    ngram_scheme = scheme(params.minn, params.maxn, params.buckets)
    recorded = {
        **config.recorded_params(),
        "threads": params.threads,
        "step": info["step"],
        "trained_on": info["trained_on"],
        "averaging": (f"saturation-scaled sum of input and output matrix updates {config.averages_per_epoch}x per "
                      f"epoch, the {FASTTEXT_HOT_ROWS} hottest rows of each every {HOT_ROUND_TOKENS} tokens"
                      if config.processes > 1 else "none"),
        "implementation": "embedpipe.torchtrain (PyTorch, numba subword kernel on CPU or CUDA) in Spark barrier tasks",
        "input_kind": data.kind,
        "vocab_size": len(keys),
        "vectors": "mean of the word's own vector and its character n-gram vectors (fastText's word vector)",
        SUBWORDS_PARAM: ngram_scheme,
    }
    # id = the bucket number itself, so a reader looks rows up by bucket without parsing the key
    bucket_words = np.bincount(subwords.rows[subwords.rows >= len(keys)] - len(keys),
                               minlength=len(subwords.buckets))
    bucket_rows = driver_rows(pa.array(subwords.buckets.astype(str).tolist(), type=pa.string()), bucket_words,
                              buckets, ids=subwords.buckets)
    extra = ExtraTable(
        output=f"{config.output.rstrip('/')}/{SUBWORD_DIR}",
        rows=EmbeddingRows(bucket_rows, key_kind="subword bucket", expected_rows=len(subwords.buckets)),
        dim=params.dim,
        params={SUBWORDS_PARAM: ngram_scheme, "layer": "subword buckets",
                "vocab_size": len(keys), "seed": params.seed},
        summary_key="subword_vectors",
    )
    return TrainedEmbeddings(
        keys=EmbeddingRows(driver_rows(keys, counts, words), key_kind=data.key_kind, expected_rows=len(keys)),
        dim=params.dim,
        params=recorded,
        path="fasttext" if config.processes == 1 else f"fasttext-{config.processes}-replicas",
        seed=params.seed,
        stats={"fit_seconds": round(result.seconds, 3), "tokens_trained": tokens_trained,
               "final_loss": float(info["loss"]), "subword_buckets": len(subwords.buckets),
               "resumed_after_epoch": checkpoints.resume_epoch},
        extra_tables=(extra,),
    )


def _train_replica(replica: Replica, batches: Iterator[pa.RecordBatch], shared: tuple) -> TaskOutput | None:
    """One fastText replica: encode the partition, train, combine updates with the other replicas; rank 0
    returns the composed word vectors, the bucket rows and the run facts."""
    from embedpipe.torchtrain import IdCorpus, encode_sentences
    from embedpipe.torchtrain.model import read_checkpoint
    from embedpipe.torchtrain.subword_train import FastTextParams, initial_state, train_fasttext

    keys, counts, params_dict, averages_per_epoch, checkpoints, subwords = shared
    parts = [encode_sentences(batch.column(0), keys) for batch in batches]
    corpus = IdCorpus.concat(parts) if parts else encode_sentences([], keys)
    params = FastTextParams(**{**params_dict, "device": replica.device})
    checkpoint_dir = checkpoints.replica_dir(replica.rank)
    resumed = read_checkpoint(checkpoint_dir) if checkpoints.resume_epoch and replica.world > 1 else None

    def initial(state: Any) -> tuple[Any, Any]:
        if resumed is not None:
            return resumed["w_in"].to(state.w_in.device), resumed["w_out"].to(state.w_out.device)
        start = initial_state(subwords, params, state.w_in.device)
        return start.w_in, start.w_out

    plan = plan_sync(counts, params, replica.world, averages_per_epoch,
                     input_rows=(subwords.offsets, subwords.rows, subwords.n_rows), hot_rows=FASTTEXT_HOT_ROWS)
    group = replica.join(SGNSReplicaGroup(averages_per_epoch, lambda state: (state.w_in, state.w_out),
                                          initial_of=initial, plan=plan))
    tokens = np.array([corpus.n_tokens], dtype=np.int64)
    started = time.time()
    try:
        if group is not None:
            group.resume_at(checkpoints.resume_epoch)
            tokens = group.total(tokens)
        result = train_fasttext(corpus, counts, params, subwords, replica_sync=group, counts_total=int(tokens[0]),
                                checkpoint_dir=checkpoint_dir, resume=checkpoints.resume_epoch > 0)
    finally:
        if group is not None:
            group.close()
    if replica.rank != 0:
        return None
    info = {
        "loss": float(result.epoch_losses[-1]) if result.epoch_losses else float("nan"),
        "tokens": int(tokens[0]), "train_seconds": time.time() - started,
        "step": result.kernel, "trained_on": result.device,
    }
    return TaskOutput(info=info, vectors={"input": result.input_vectors, "subwords": result.subword_vectors})
