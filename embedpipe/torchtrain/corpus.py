"""The trainer's input: a corpus of integer token ids, and the word statistics derived from counts.

An :class:`IdCorpus` is two flat arrays — token ids and sentence offsets — the layout of an Arrow
``ListArray``. That is what Spark partitions hand over as Arrow batches, so feeding the trainer
from Spark is a zero-copy reinterpretation plus one vectorised dictionary lookup
(:func:`encode_sentences`), never a Python loop per token.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from embedpipe.errors import InputError


@dataclass(frozen=True)
class IdCorpus:
    """Sentences of token ids, stored flat: sentence ``i`` is ``tokens[offsets[i]:offsets[i + 1]]``."""

    tokens: np.ndarray
    offsets: np.ndarray

    def __post_init__(self) -> None:
        tokens = np.asarray(self.tokens)
        offsets = np.asarray(self.offsets, dtype=np.int64)
        if tokens.ndim != 1 or not np.issubdtype(tokens.dtype, np.integer):
            raise InputError(
                f"IdCorpus tokens must be a 1-D integer array, got {tokens.dtype} with shape {tokens.shape}"
            )
        if offsets.ndim != 1 or len(offsets) == 0 or offsets[0] != 0 or offsets[-1] != len(tokens):
            raise InputError(
                f"IdCorpus offsets must be 1-D, start at 0 and end at len(tokens)={len(tokens)}, "
                f"got {len(offsets)} offsets"
            )
        if np.any(np.diff(offsets) < 0):
            raise InputError("IdCorpus offsets must be non-decreasing")
        if len(tokens) and tokens.min() < 0:
            raise InputError(f"IdCorpus token ids must be >= 0, found {int(tokens.min())}")
        object.__setattr__(self, "tokens", tokens)
        object.__setattr__(self, "offsets", offsets)

    @property
    def n_tokens(self) -> int:
        return int(len(self.tokens))

    @property
    def n_sentences(self) -> int:
        return int(len(self.offsets) - 1)

    def sentence_ids(self) -> np.ndarray:
        """The sentence index of every token (int64), so windows can stop at sentence boundaries."""
        lengths = np.diff(self.offsets)
        return np.repeat(np.arange(self.n_sentences, dtype=np.int64), lengths)

    def counts(self, vocab_size: int | None = None) -> np.ndarray:
        """Occurrences of each id (int64), at least ``vocab_size`` long."""
        return np.bincount(self.tokens, minlength=vocab_size or 0).astype(np.int64)

    @classmethod
    def from_id_lists(cls, sentences: Iterable[Sequence[int]]) -> IdCorpus:
        """Build from lists of ids; meant for tests and small inputs (one Python step per sentence)."""
        arrays = [np.asarray(s, dtype=np.int64) for s in sentences]
        lengths = np.array([len(a) for a in arrays], dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        tokens = np.concatenate(arrays) if arrays else np.zeros(0, dtype=np.int64)
        return cls(tokens.astype(np.int64), offsets)

    @classmethod
    def concat(cls, parts: Sequence[IdCorpus]) -> IdCorpus:
        """Join corpora end to end (e.g. one per Arrow batch); sentence order is kept."""
        if not parts:
            return cls(np.zeros(0, dtype=np.int64), np.zeros(1, dtype=np.int64))
        tokens = np.concatenate([p.tokens for p in parts])
        starts = np.cumsum([0] + [p.n_tokens for p in parts[:-1]])
        offsets = np.concatenate([[0]] + [p.offsets[1:] + s for p, s in zip(parts, starts, strict=True)])
        return cls(tokens, offsets.astype(np.int64))


def vocab_keys(vocab: Mapping[str, int]) -> pa.Array:
    """The vocabulary's words as an Arrow array ordered by id; ids must be exactly 0..V-1."""
    ids = np.fromiter(vocab.values(), dtype=np.int64, count=len(vocab))
    order = np.argsort(ids, kind="stable")
    if len(ids) and not np.array_equal(ids[order], np.arange(len(ids))):
        raise InputError(f"vocabulary ids must be exactly 0..{len(ids) - 1} (one per word), got a different set")
    words = list(vocab.keys())
    return pa.array([words[i] for i in order], type=pa.string())


def encode_sentences(
    sentences: pa.Array | pa.ChunkedArray | Sequence[Sequence[str]],
    vocab: Mapping[str, int] | pa.Array,
) -> IdCorpus:
    """Map token lists to an :class:`IdCorpus`; tokens missing from ``vocab`` are dropped.

    ``sentences`` is an Arrow (large) list array of strings — e.g. a column of a Spark partition's
    Arrow batch — or plain Python lists. ``vocab`` maps word -> id (ids 0..V-1), or is already the
    Arrow array of words in id order (:func:`vocab_keys`), which saves rebuilding it per batch.
    Out-of-vocabulary tokens are removed before windows are formed, as word2vec does; null lists
    count as empty sentences. The lookup is one hash join in Arrow's C++ (``index_in``).
    """
    keys = vocab if isinstance(vocab, (pa.Array, pa.ChunkedArray)) else vocab_keys(vocab)
    if isinstance(keys, pa.ChunkedArray):
        keys = keys.combine_chunks()
    if isinstance(sentences, pa.ChunkedArray):
        sentences = sentences.combine_chunks() if sentences.num_chunks != 1 else sentences.chunk(0)
    if not isinstance(sentences, pa.Array):
        sentences = pa.array(sentences, type=pa.list_(pa.string()))
    if not (pa.types.is_list(sentences.type) or pa.types.is_large_list(sentences.type)):
        raise InputError(f"sentences must be a list<string> array, got {sentences.type}")
    if not (pa.types.is_string(sentences.type.value_type) or pa.types.is_large_string(sentences.type.value_type)):
        raise InputError(f"sentences must be a list<string> array, got {sentences.type}")
    n = len(sentences)
    if n == 0:
        return IdCorpus(np.zeros(0, dtype=np.int64), np.zeros(1, dtype=np.int64))
    values = pc.list_flatten(sentences)
    parents = pc.list_parent_indices(sentences)
    if not values.type.equals(keys.type):
        keys = keys.cast(values.type)
    ids = pc.index_in(values, value_set=keys)
    known = pc.is_valid(ids)
    ids_np = pc.filter(ids, known).to_numpy(zero_copy_only=False).astype(np.int64)
    parents_np = pc.filter(parents, known).to_numpy(zero_copy_only=False)
    lengths = np.bincount(parents_np, minlength=n)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    return IdCorpus(ids_np, offsets)


def noise_distribution(counts: np.ndarray, power: float = 0.75) -> np.ndarray:
    """word2vec's noise distribution: unigram counts raised to ``power``, normalised (float64)."""
    weights = np.asarray(counts, dtype=np.float64) ** power
    total = weights.sum()
    if not total > 0:
        raise InputError("word counts must contain at least one positive count to draw noise words")
    return weights / total


def keep_probabilities(counts: np.ndarray, sample: float) -> np.ndarray:
    """Probability that each occurrence of a word survives subsampling (word2vec.c / gensim formula).

    With ``t = sample * total``, a word seen ``c`` times is kept with ``(sqrt(c / t) + 1) * t / c``,
    clipped to 1: words rarer than about ``t`` are always kept, very frequent ones mostly dropped.
    ``sample = 0`` keeps everything.
    """
    counts = np.asarray(counts, dtype=np.float64)
    if sample <= 0:
        return np.ones_like(counts)
    threshold = sample * counts.sum()
    with np.errstate(divide="ignore", invalid="ignore"):
        keep = (np.sqrt(counts / threshold) + 1.0) * threshold / counts
    keep[~np.isfinite(keep)] = 1.0
    return np.minimum(keep, 1.0)
