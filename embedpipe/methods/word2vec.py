"""Word2Vec with Spark MLlib (``pyspark.ml.feature.Word2Vec``: skip-gram, hierarchical softmax).

The table is keyed by the input's vocabulary, not by whatever MLlib decides to keep. MLlib builds
its own vocabulary and drops words below its ``minCount``; left alone, a vocabulary token could
silently have no vector. So the sequences are first filtered to the vocabulary (minus tokens below
this job's ``min_count``), MLlib runs with ``minCount=1``, and every kept vocabulary token is then
guaranteed a vector; a token that still lacks one means the vocabulary does not match the
sequences, which is reported as an input error. The settings are ``[train.word2vec]``
(:class:`~embedpipe.methods.settings.Word2VecSettings`). Filtering before fitting also means out-of-
vocabulary tokens do not occupy window positions, as in gensim.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from embedpipe import schema
from embedpipe.errors import EmptyResultError, InputError
from embedpipe.methods.result import EmbeddingRows, TrainedEmbeddings, flatten_lists

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from embedpipe.jobconfig import TrainConfig
    from embedpipe.methods.inputs import TrainingInput
    from embedpipe.methods.settings import Word2VecSettings

log = logging.getLogger(__name__)

MLLIB_MIN_COUNT = 1


def train_word2vec(spark: SparkSession, config: TrainConfig, data: TrainingInput) -> TrainedEmbeddings:
    """Fit MLlib Word2Vec on the input's sequences; one vector per (kept) vocabulary key."""
    from pyspark.ml.feature import Word2Vec
    from pyspark.ml.functions import vector_to_array

    settings: Word2VecSettings = config.settings
    vocab = data.kept_vocabulary(settings.min_count)
    keys = vocab.select(schema.TOKEN).toArrow().column(0).combine_chunks()  # vocabulary-sized
    if len(keys) == 0:
        raise EmptyResultError(
            f"no vocabulary {data.key_kind}s of {data.path} have count >= word2vec.min_count={settings.min_count}"
        )
    dropped = data.vocab_size - len(keys)
    if dropped:
        log.info("word2vec: min_count=%d drops %d of %d vocabulary %ss", settings.min_count, dropped,
                 data.vocab_size, data.key_kind)
    sentences = keep_vocabulary_tokens(data.sentences(), keys)
    params: dict[str, Any] = {
        **config.recorded_params(),
        "mllib_min_count": MLLIB_MIN_COUNT,
        "implementation": "pyspark.ml.feature.Word2Vec",
        "input_kind": data.kind,
        "vocab_size": len(keys),
        "vocab_dropped_below_min_count": dropped,
    }
    log.info("word2vec: fitting MLlib Word2Vec on %d %ss with %s", len(keys), data.key_kind, params)
    estimator = Word2Vec(
        vectorSize=config.dim,
        windowSize=settings.window,
        minCount=MLLIB_MIN_COUNT,
        maxIter=settings.epochs,
        numPartitions=settings.partitions,
        stepSize=settings.step_size,
        seed=config.seed,
        maxSentenceLength=settings.max_sentence_length,
        inputCol=schema.TOKENS,
        outputCol="_unused",
    )
    fit_started = time.perf_counter()
    model = estimator.fit(sentences)
    fit_seconds = time.perf_counter() - fit_started
    log.info("word2vec: fit took %.1f s", fit_seconds)
    vectors = model.getVectors()  # word, vector: vocabulary-sized
    rows = vocab.join(vectors, vocab[schema.TOKEN] == vectors["word"], "inner").select(
        vocab[schema.TOKEN].alias(schema.KEY),
        vocab[schema.ID],
        vocab[schema.COUNT],
        vector_to_array(vectors["vector"], "float32").alias(schema.VECTOR),
    )
    trained = vectors.count()
    if trained != len(keys):
        missing = vocab.join(vectors, vocab[schema.TOKEN] == vectors["word"], "left_anti")
        examples = [row[0] for row in missing.select(schema.TOKEN).orderBy(schema.ID).limit(3).collect()]
        raise InputError(
            f"{len(keys) - trained} vocabulary {data.key_kind}s of {data.path} never occur in its sequences "
            f"(e.g. {', '.join(map(repr, examples))}): the vocabulary does not match them"
        )
    return TrainedEmbeddings(
        keys=EmbeddingRows(rows, key_kind=data.key_kind, expected_rows=len(keys)),
        dim=config.dim,
        params=params,
        path="mllib-word2vec",
        seed=config.seed,
        stats={"fit_seconds": round(fit_seconds, 3)},
    )


def keep_vocabulary_tokens(sentences: DataFrame, vocabulary: pa.Array) -> DataFrame:
    """Drop tokens not in ``vocabulary`` from each sequence (order kept) and drop emptied sequences.

    Vectorised with Arrow per batch (hash lookup of the flattened tokens, offsets rebuilt from a
    running count); the vocabulary travels once per executor as a broadcast.
    """
    from pyspark.sql import functions as F

    broadcast = sentences.sparkSession.sparkContext.broadcast(vocabulary)

    def filter_batches(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        value_set = broadcast.value
        for batch in batches:
            tokens = filter_token_lists(batch.column(1), value_set)
            yield pa.RecordBatch.from_arrays([batch.column(0), tokens], names=[schema.DOC_ID, schema.TOKENS])

    filtered = sentences.select(schema.DOC_ID, schema.TOKENS).mapInArrow(
        filter_batches, f"{schema.DOC_ID} string, {schema.TOKENS} array<string>"
    )
    return filtered.where(F.size(schema.TOKENS) > 0)


def filter_token_lists(lists: pa.Array, value_set: pa.Array) -> pa.ListArray:
    """Keep, in each list, only the values found in ``value_set``; null lists become empty lists."""
    offsets, values = flatten_lists(lists)
    mask = pc.is_in(values, value_set=value_set).fill_null(False).to_numpy(zero_copy_only=False)
    kept_before = np.concatenate([[0], np.cumsum(mask, dtype=np.int64)])
    return pa.ListArray.from_arrays(pa.array(kept_before[offsets].astype(np.int32)), values.filter(pa.array(mask)))
