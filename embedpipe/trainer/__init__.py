"""embedpipe's own embedding trainer: skip-gram with negative sampling in PyTorch, CPU or CUDA.

The core imports no Spark: it trains from an integer-id corpus (:class:`IdCorpus`) and word counts,
so it can be tested and benchmarked alone; the Spark layer only encodes partitions into ids
(:func:`encode_sentences` works on Arrow list arrays) and hands them over.

Example::

    corpus = encode_sentences([["a", "b", "c"], ["b", "c", "a"]], {"a": 0, "b": 1, "c": 2})
    result = train_sgns(corpus, corpus.counts(3), SGNSParams(dim=16, epochs=2, sample=0))
    result.input_vectors.shape  # (3, 16)
"""

from embedpipe.trainer.config import SGNSParams
from embedpipe.trainer.corpus import IdCorpus, encode_sentences, keep_probabilities, noise_distribution, vocab_keys
from embedpipe.trainer.model import TrainingState
from embedpipe.trainer.runtime import ReplicaSync, TrainProgress, resolve_device
from embedpipe.trainer.train import TrainResult, train_sgns

__all__ = [
    "IdCorpus",
    "ReplicaSync",
    "SGNSParams",
    "TrainProgress",
    "TrainResult",
    "TrainingState",
    "encode_sentences",
    "keep_probabilities",
    "noise_distribution",
    "resolve_device",
    "train_sgns",
    "vocab_keys",
]
