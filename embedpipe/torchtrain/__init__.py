"""embedpipe's own embedding trainer in PyTorch, CPU or CUDA: SGNS, and bag-of-items models.

The core imports no Spark: it trains from an integer-id corpus (:class:`IdCorpus`) and word counts,
so it can be tested and benchmarked alone; the Spark layer only encodes partitions into ids
(:func:`encode_sentences` works on Arrow list arrays) and hands them over.

Example::

    corpus = encode_sentences([["a", "b", "c"], ["b", "c", "a"]], {"a": 0, "b": 1, "c": 2})
    result = train_sgns(corpus, corpus.counts(3), SGNSParams(dim=16, epochs=2, sample=0))
    result.input_vectors.shape  # (3, 16)

The bag models (softmax over a catalogue, regression) train from a :class:`BagCorpus`
(:func:`encode_bags`) with :func:`train_bag_model`.
"""

from embedpipe.torchtrain.bag_corpus import BagCorpus, encode_bags
from embedpipe.torchtrain.bag_model import BagModelParams, BagModelResult, BagTrainingState, train_bag_model
from embedpipe.torchtrain.corpus import IdCorpus, encode_sentences, keep_probabilities, noise_distribution, vocab_keys
from embedpipe.torchtrain.model import TrainingState
from embedpipe.torchtrain.params import SGNSParams
from embedpipe.torchtrain.runtime import ReplicaSync, TrainProgress, resolve_device
from embedpipe.torchtrain.sgns_train import TrainResult, train_sgns

__all__ = [
    "BagCorpus",
    "BagModelParams",
    "BagModelResult",
    "BagTrainingState",
    "IdCorpus",
    "ReplicaSync",
    "SGNSParams",
    "TrainProgress",
    "TrainResult",
    "TrainingState",
    "encode_bags",
    "encode_sentences",
    "keep_probabilities",
    "noise_distribution",
    "resolve_device",
    "train_bag_model",
    "train_sgns",
    "vocab_keys",
]
