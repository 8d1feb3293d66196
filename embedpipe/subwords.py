"""fastText's character n-grams and their hash buckets: the scheme ``train --method fasttext`` trains and
lookups compose unseen words from.

A word ``w`` is wrapped as ``<w>``; its n-grams are every run of ``minn``..``maxn`` characters (Unicode
code points, found from the UTF-8 bytes as fastText does) of the wrapped word, except the two
1-grams ``<`` and ``>``; each n-gram's UTF-8 bytes go through fastText's 32-bit FNV-1a hash
(including its quirk: each byte is sign-extended, ``uint32(int8(b))``, before the xor) and land in
bucket ``hash % buckets``. The same word therefore maps to the same buckets here, in fastText and in
gensim's ``FastText`` (``gensim.models.fasttext_inner.ft_hash_bytes``), so the scheme is one readers
can reproduce without embedpipe (docs/table-format.md).

The vocabulary-wide index (:func:`subword_index`) is built from the UTF-8 bytes of an Arrow string
array in one compiled pass when numba is installed (the ``torch`` extra), in Python otherwise
(correct, slower: fine for the handful of unseen words a lookup composes).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from embedpipe.errors import ConfigError
from embedpipe.vectors import VectorIndex, unit_normalise

try:
    import numba
except ImportError:  # pragma: no cover - exercised where numba is not installed
    numba = None

#: What the manifests record as the hash, so a reader knows the scheme.
HASH_NAME = "fasttext-fnv1a32"
#: Longest n-gram range accepted (fastText has none; longer n-grams only add rare, word-like rows).
MAX_N = 10
_FNV_OFFSET = 2166136261
_FNV_PRIME = 16777619


def check_ngram_settings(minn: int, maxn: int, buckets: int, prefix: str = "") -> None:
    """One-line ConfigError naming the key for a range fastText could not use."""
    for name, value in (("minn", minn), ("maxn", maxn)):
        if not 1 <= value <= MAX_N:
            raise ConfigError(f"config key '{prefix}{name}' must be between 1 and {MAX_N}, got {value!r}")
    if minn > maxn:
        raise ConfigError(f"config key '{prefix}minn' must be <= {prefix}maxn ({maxn}), got {minn!r}")
    if buckets < 1:
        raise ConfigError(f"config key '{prefix}buckets' must be >= 1, got {buckets!r}")


def ft_hash(data: bytes) -> int:
    """fastText's ``Dictionary::hash`` of ``data`` (FNV-1a 32-bit over sign-extended bytes)."""
    h = _FNV_OFFSET
    for byte in data:
        h = ((h ^ ((byte - 256 if byte > 127 else byte) & 0xFFFFFFFF)) * _FNV_PRIME) & 0xFFFFFFFF
    return h


def char_ngrams(word: str, minn: int, maxn: int) -> list[str]:
    """The n-grams of ``<word>`` in fastText's order (by start position, then length)."""
    wrapped = f"<{word}>"
    grams = []
    for i in range(len(wrapped)):
        for n in range(1, maxn + 1):
            if i + n > len(wrapped):
                break
            if n >= minn and not (n == 1 and (i == 0 or i + n == len(wrapped))):
                grams.append(wrapped[i:i + n])
    return grams


def ngram_buckets(word: str, minn: int, maxn: int, buckets: int) -> np.ndarray:
    """The bucket of each n-gram of ``word`` (int64, fastText's order, duplicates kept as fastText keeps them)."""
    return np.array([ft_hash(g.encode("utf-8")) % buckets for g in char_ngrams(word, minn, maxn)], dtype=np.int64)


@dataclass(frozen=True)
class SubwordIndex:
    """Which input rows make up each vocabulary word, as CSR arrays.

    Word ``i``'s rows are ``rows[offsets[i]:offsets[i + 1]]``: first its own row ``i``, then one row
    per n-gram. N-gram rows are numbered ``V + j`` where ``j`` indexes ``buckets``, the distinct
    buckets the vocabulary uses (sorted): only those are ever trained (unseen words are dropped
    from the corpus), so the matrix holds ``V + len(buckets)`` rows, not ``V + buckets``.
    """

    offsets: np.ndarray  # int64, V + 1
    rows: np.ndarray  # int64
    buckets: np.ndarray  # int64, the bucket id of n-gram row V + j

    @property
    def vocab_size(self) -> int:
        return int(len(self.offsets) - 1)

    @property
    def n_rows(self) -> int:
        """Rows of the input matrix: words, then the used buckets."""
        return self.vocab_size + int(len(self.buckets))


def _utf8_buffers(words: pa.Array | Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """(byte offsets int64, bytes uint8) of ``words`` as UTF-8, without a Python step per word for Arrow input."""
    if isinstance(words, pa.ChunkedArray):
        words = words.combine_chunks()
    if not isinstance(words, pa.Array):
        words = pa.array(list(words), type=pa.large_string())
    words = words.cast(pa.large_string())
    if words.null_count:
        raise ValueError("subword_index: the vocabulary holds a null word")
    _, offsets_buffer, data_buffer = words.buffers()
    offsets = np.frombuffer(offsets_buffer, dtype=np.int64)[words.offset:words.offset + len(words) + 1].copy()
    data = np.frombuffer(data_buffer, dtype=np.uint8) if data_buffer is not None else np.zeros(0, dtype=np.uint8)
    return offsets, data


def _signed_byte_py(byte: int) -> int:
    """A UTF-8 byte as fastText feeds it to the hash: sign-extended to 32 bits (``uint32(int8(b))``)."""
    value = np.int64(byte)
    return value | 0xFFFFFF00 if value > 127 else value


def _word_hashes_py(data: np.ndarray, offsets: np.ndarray, minn: int, maxn: int, buckets: int,
                    counts_only: bool, out_offsets: np.ndarray, out: np.ndarray) -> None:
    """Every word's n-gram buckets (fastText's ``computeSubwords`` on ``<word>``'s bytes), into CSR ``out``.

    With ``counts_only`` it fills ``out_offsets[i + 1]`` with word ``i``'s n-gram count; otherwise
    it writes the buckets at ``out[out_offsets[i]:]``. Plain Python that numba compiles.
    """
    n_words = offsets.shape[0] - 1
    wrapped = np.empty(0, dtype=np.uint8)
    for w in range(n_words):
        start, end = offsets[w], offsets[w + 1]
        size = end - start + 2
        if wrapped.shape[0] < size:
            wrapped = np.empty(size * 2, dtype=np.uint8)
        wrapped[0] = 60  # '<'
        for b in range(end - start):
            wrapped[b + 1] = data[start + b]
        wrapped[size - 1] = 62  # '>'
        count = 0
        position = out_offsets[w]
        for i in range(size):
            if (wrapped[i] & 0xC0) == 0x80:
                continue
            h = np.int64(2166136261)  # int64 arithmetic masked to 32 bits: the same in numba and in Python
            j = i
            n = 1
            while j < size and n <= maxn:
                h = ((h ^ _signed_byte(wrapped[j])) * 16777619) & 0xFFFFFFFF
                j += 1
                while j < size and (wrapped[j] & 0xC0) == 0x80:
                    h = ((h ^ _signed_byte(wrapped[j])) * 16777619) & 0xFFFFFFFF
                    j += 1
                if n >= minn and not (n == 1 and (i == 0 or j == size)):
                    if not counts_only:
                        out[position + count] = h % buckets
                    count += 1
                n += 1
        if counts_only:
            out_offsets[w + 1] = count


if numba is not None:
    _signed_byte = numba.njit(cache=True)(_signed_byte_py)
    _word_hashes = numba.njit(cache=True, nogil=True)(_word_hashes_py)
else:  # pragma: no cover
    _signed_byte = _signed_byte_py
    _word_hashes = _word_hashes_py


def word_buckets(words: pa.Array | Sequence[str], minn: int, maxn: int, buckets: int) -> tuple[np.ndarray, np.ndarray]:
    """(offsets, buckets) CSR of every word's n-gram buckets, in fastText's order (duplicates kept)."""
    check_ngram_settings(minn, maxn, buckets)
    offsets, data = _utf8_buffers(words)
    out_offsets = np.zeros(len(offsets), dtype=np.int64)
    empty = np.zeros(0, dtype=np.int64)
    _word_hashes(data, offsets, minn, maxn, buckets, True, out_offsets, empty)
    np.cumsum(out_offsets, out=out_offsets)
    out = np.empty(int(out_offsets[-1]), dtype=np.int64)
    _word_hashes(data, offsets, minn, maxn, buckets, False, out_offsets, out)
    return out_offsets, out


def subword_index(words: pa.Array | Sequence[str], minn: int, maxn: int, buckets: int) -> SubwordIndex:
    """The input rows of every vocabulary word (its own row, then its n-grams' compacted bucket rows)."""
    gram_offsets, grams = word_buckets(words, minn, maxn, buckets)
    vocab_size = len(gram_offsets) - 1
    used, compact = np.unique(grams, return_inverse=True)
    lengths = np.diff(gram_offsets) + 1
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    rows = np.empty(int(offsets[-1]), dtype=np.int64)
    rows[offsets[:-1]] = np.arange(vocab_size, dtype=np.int64)
    gram_positions = np.ones(len(rows), dtype=bool)
    gram_positions[offsets[:-1]] = False
    rows[gram_positions] = vocab_size + compact.astype(np.int64).reshape(-1)
    return SubwordIndex(offsets=offsets, rows=rows, buckets=used.astype(np.int64))


def compose(matrix: np.ndarray, rows: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """The mean of each word's rows of ``matrix`` (fastText's word vector); a word with no rows gets zeros."""
    lengths = np.diff(offsets)
    out = np.zeros((len(lengths), matrix.shape[1]), dtype=np.float32)
    if len(rows):
        owner = np.repeat(np.arange(len(lengths)), lengths)
        np.add.at(out, owner, matrix[rows])
    nonzero = lengths > 0
    out[nonzero] /= lengths[nonzero, None].astype(np.float32)
    return out


# ------------------------------------------------------------------------- composing unseen words

#: The manifest param (both tables) holding the n-gram scheme and where the bucket table is.
SUBWORDS_PARAM = "subwords"
#: The scheme keys the two manifests must agree on.
SCHEME_KEYS = ("minn", "maxn", "buckets", "hash", "jamo")


@dataclass(frozen=True)
class SubwordVectors:
    """A table's trained bucket rows and its n-gram scheme: composes vectors for words it has not seen.

    ``buckets`` (sorted int64) and ``vectors`` (one row each) come from ``<table>/_subwords``. An unseen
    word's vector is the mean of the rows of its n-grams' buckets (fastText's ``get_word_vector``
    for a word without its own row); buckets no vocabulary word used were never trained and are
    not stored, so they are left out of the mean. A word none of whose n-grams has a row gets none.
    """

    buckets: np.ndarray
    vectors: np.ndarray
    minn: int
    maxn: int
    n_buckets: int

    def compose(self, words: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """(len(words), dim) float32 vectors and a bool mask of the words that got one."""
        offsets, grams = word_buckets(list(words), self.minn, self.maxn, self.n_buckets)
        position = np.searchsorted(self.buckets, grams)
        position = np.minimum(position, max(len(self.buckets) - 1, 0))
        known = (self.buckets[position] == grams) if len(self.buckets) else np.zeros(len(grams), dtype=bool)
        owner = np.repeat(np.arange(len(offsets) - 1), np.diff(offsets))
        counts = np.bincount(owner[known], minlength=len(offsets) - 1)
        kept_offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        out = compose(self.vectors, position[known], kept_offsets)
        return out, counts > 0


def scheme_of(manifest: dict) -> dict | None:
    """The n-gram scheme a table's manifest records, or None for a table without subword vectors."""
    found = (manifest.get("params") or {}).get(SUBWORDS_PARAM)
    return found if isinstance(found, dict) else None


def check_subword_manifest(main: dict, subwords: dict, path: str) -> dict:
    """The scheme, after checking the bucket table's manifest matches the main table's; TableError naming the key."""
    from embedpipe.errors import TableError

    expected, found = scheme_of(main), scheme_of(subwords)
    if expected is None:
        raise TableError(f"embedding table {path} has no subword vectors (train it with --method fasttext)")
    if found is None:
        raise TableError(f"subword table {path}/{expected.get('table')} records no n-gram scheme (params.subwords)")
    for key in SCHEME_KEYS:
        if expected.get(key) != found.get(key):
            raise TableError(
                f"subword table {path}/{expected.get('table')} does not match its table: params.subwords.{key} is "
                f"{found.get(key)!r} there and {expected.get(key)!r} in the table's manifest"
            )
    if int(subwords.get("dim", -1)) != int(main.get("dim", -2)):
        raise TableError(f"subword table {path}/{expected.get('table')} has dim {subwords.get('dim')}, its table "
                         f"{main.get('dim')}")
    if found.get("hash") != HASH_NAME:
        raise TableError(f"subword table {path}: params.subwords.hash {found.get('hash')!r} is not {HASH_NAME!r}")
    return expected


def subword_location(path: str, manifest: dict) -> str:
    """Where the bucket table of the table at ``path`` is; a one-line ConfigError for a table without one."""
    from embedpipe.errors import ConfigError

    scheme = scheme_of(manifest)
    if scheme is None:
        raise ConfigError(f"config key 'oov' is subwords but embedding table {path} has no subword vectors "
                          "(train it with --method fasttext)")
    return f"{path.rstrip('/')}/{scheme['table']}"


def subword_vectors_from(path: str, manifest: dict, bucket_table: Any) -> SubwordVectors:
    """The bucket rows of ``bucket_table`` (an EmbeddingTable read from :func:`subword_location`), checked
    against the main table's ``manifest``."""
    scheme = check_subword_manifest(manifest, bucket_table.manifest, path.rstrip("/"))
    order = np.argsort(bucket_table.ids, kind="stable")
    return SubwordVectors(buckets=bucket_table.ids[order], vectors=np.asarray(bucket_table.vectors)[order],
                          minn=int(scheme["minn"]), maxn=int(scheme["maxn"]), n_buckets=int(scheme["buckets"]))


def composed_rows(words: Sequence[str], subwords: SubwordVectors) -> tuple[list[str], np.ndarray]:
    """The distinct ``words`` that get a composed vector (some n-gram of theirs was trained) and those vectors."""
    wanted = list(dict.fromkeys(words))
    composed, ok = subwords.compose(wanted)
    return [w for w, o in zip(wanted, ok, strict=True) if o], composed[ok]


def extended_index(index: VectorIndex, words: Sequence[str], subwords: SubwordVectors) -> VectorIndex:
    """``index`` plus composed rows, after the table's, for the ``words`` it lacks (case folded as the
    index folds): the jobs score them like table keys, candidates stay the table's rows."""
    keys, vectors = composed_rows([index.fold(w) for w in words if index.row(w) < 0], subwords)
    if not keys:
        return index
    return VectorIndex(list(index.keys) + keys, np.concatenate([index.unit, unit_normalise(vectors)]),
                       index.lowercase)
