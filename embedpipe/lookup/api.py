"""Embedding-table lookups for consumers without Spark: pyarrow + NumPy, nothing else running.

>>> from embedpipe.lookup import open_table
>>> table = open_table("out/demo/tables/words")                       # doctest: +SKIP
>>> table.vector("paris").shape                                         # doctest: +SKIP
(50,)
>>> table.most_similar("paris", k=3)                                    # doctest: +SKIP
[('berlin', 0.91), ('rome', 0.89), ('madrid', 0.88)]
>>> table.analogy("king", "man", "woman")                               # king - man + woman  # doctest: +SKIP
[('queen', 0.83)]
>>> table.embed(["the", "cat", "sat", "cat"], combiner="mean")          # doctest: +SKIP

The embedding kernels are :mod:`embedpipe.lookup.combiners`, the very functions the Spark
``embed`` job runs on each Arrow batch, so a vector computed here equals the job's.
"""

from __future__ import annotations

import logging
import os
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import pyarrow as pa

from embedpipe import schema
from embedpipe.errors import ConfigError, InputError, TableError
from embedpipe.lookup import combiners as K
from embedpipe.table import read_manifest

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EmbedResult:
    """Vectors of many rows: ``vectors`` (n, dim) float32 (zeros where ``has_vector`` is False),
    and per row how many tokens were ``found`` out of ``total``."""

    vectors: np.ndarray
    has_vector: np.ndarray
    found: np.ndarray
    total: np.ndarray

    def to_arrow(self) -> pa.Array:
        """The vectors as ``list<float32>`` with NULL rows, exactly as the Spark job writes them."""
        return K.vectors_to_arrow(self.vectors, self.has_vector)


def _check_choice(name: str, value: str, choices: Sequence[str]) -> None:
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}, got {value!r}")


class EmbeddingLookup:
    """An embedding table in memory with key lookups, neighbours, analogies and bag embeddings.

    Rows are in table order (sorted by id, i.e. most frequent first). Keys match exactly (no case
    folding): the keys of a token table are already tokenized (lowercased by default).
    """

    def __init__(self, keys: pa.Array, ids: np.ndarray, counts: np.ndarray, vectors: np.ndarray,
                 manifest: dict[str, Any], *, path: str | None = None):
        self.keys_arrow = keys
        self.ids = ids
        self.counts = counts
        self.matrix = vectors
        self.manifest = manifest
        self.path = path
        self._index = K.KeyIndex(keys, ids)

    @classmethod
    def from_arrow(cls, table: pa.Table, manifest: dict[str, Any], *, path: str | None = None) -> EmbeddingLookup:
        """Build from an Arrow table with the table columns (key, id, count, vector)."""
        name = path or "embedding table"
        if table.num_rows == 0:
            raise TableError(f"embedding table {name} has no rows")
        table = table.sort_by(schema.ID)
        dim = int(manifest["dim"])
        column = table.column(schema.VECTOR).combine_chunks()
        lengths = np.asarray(column.value_lengths().to_numpy(zero_copy_only=False))
        if not np.all(lengths == dim):
            bad = int(lengths[lengths != dim][0])
            raise TableError(f"embedding table {name}: manifest says dim {dim} but a vector has {bad} values")
        flat = column.flatten().to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
        vectors = flat.reshape(table.num_rows, dim)
        vectors.flags.writeable = False
        keys = table.column(schema.KEY).combine_chunks()
        return cls(keys, table.column(schema.ID).to_numpy(), table.column(schema.COUNT).to_numpy(), vectors,
                   manifest, path=path)

    # ------------------------------------------------------------------------------- basics

    def __len__(self) -> int:
        return int(self.matrix.shape[0])

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.row(key) >= 0

    def __repr__(self) -> str:
        return f"EmbeddingLookup({self.path or '<memory>'}: {len(self)} keys x {self.dim} dims)"

    @property
    def dim(self) -> int:
        return int(self.matrix.shape[1])

    @cached_property
    def keys(self) -> list[str]:
        """Keys in table order (a Python list, built on first use)."""
        return self.keys_arrow.to_pylist()

    @cached_property
    def index(self):  # noqa: ANN201 - embedpipe.evaluate.VectorIndex, imported lazily
        """Unit-normalised vectors for cosine queries (built on first use: one more N x dim matrix)."""
        from embedpipe.evaluate.vectors import VectorIndex

        return VectorIndex.from_arrays(self.keys, self.matrix, lowercase=False)

    def row(self, key: str) -> int:
        """Row of ``key`` in the table, -1 if absent."""
        return int(self._index.rows_of_keys([key])[0])

    def rows(self, keys: Sequence[str]) -> np.ndarray:
        """Rows of ``keys`` (int64), -1 where absent."""
        return self._index.rows_of_keys(list(keys))

    def vector(self, key: str) -> np.ndarray:
        """The vector of ``key`` (a read-only float32 view); KeyError names a missing key."""
        row = self.row(key)
        if row < 0:
            raise KeyError(f"key {key!r} is not in the table")
        return self.matrix[row]

    def vectors(self, keys: Sequence[str], *, oov: str = "fail") -> np.ndarray:
        """(len(keys), dim) float32 matrix; ``oov='zero'`` gives zero rows for missing keys."""
        _check_choice("oov", oov, ("fail", "zero"))
        rows = self.rows(keys)
        if oov == "fail" and np.any(rows < 0):
            raise KeyError(f"key {list(keys)[int(np.flatnonzero(rows < 0)[0])]!r} is not in the table")
        out = self.matrix[np.maximum(rows, 0)].copy() if len(self) else np.zeros((len(rows), self.dim), np.float32)
        out[rows < 0] = 0.0
        return out

    # ------------------------------------------------------------------------- similarity

    def most_similar(self, key: str, k: int = 10) -> list[tuple[str, float]]:
        """The ``k`` keys most cosine-similar to ``key`` (itself excluded), best first."""
        from embedpipe.evaluate.neighbours import top_k_neighbours

        row = self.row(key)
        if row < 0:
            raise KeyError(f"key {key!r} is not in the table")
        neighbours, cosines = top_k_neighbours(self.index, np.array([row]), k)
        return [(self.keys[int(n)], float(c)) for n, c in zip(neighbours[0], cosines[0], strict=True)]

    def analogy(self, a: str, b: str, c: str) -> tuple[str, float] | None:
        """The key closest to ``a - b + c`` (3CosAdd on unit vectors, a, b and c excluded) and its cosine.

        ``analogy("king", "man", "woman")`` asks *man is to king as woman is to ?* and should give
        ``queen``. None when every key is excluded.
        """
        answers = self.analogies([(a, b, c)])
        return answers[0]

    def analogies(self, questions: Sequence[tuple[str, str, str]]) -> list[tuple[str, float] | None]:
        """:meth:`analogy` for many questions in batched matrix products (KeyError on an unknown word)."""
        from embedpipe.evaluate.analogy import solve_analogies

        if not questions:
            return []
        words = [w for q in questions for w in q]
        rows = self.rows(words).reshape(len(questions), 3)
        if np.any(rows < 0):
            raise KeyError(f"key {words[int(np.flatnonzero(rows.reshape(-1) < 0)[0])]!r} is not in the table")
        index = self.index
        # solve_analogies answers b - a + c; a - b + c is the same with a and b swapped.
        predicted = solve_analogies(index, rows[:, 1], rows[:, 0], rows[:, 2], restrict_vocab=len(index))
        query = index.unit[rows[:, 0]] - index.unit[rows[:, 1]] + index.unit[rows[:, 2]]
        norms = np.linalg.norm(query, axis=1)
        results: list[tuple[str, float] | None] = []
        for i, best in enumerate(predicted):
            if best < 0:
                results.append(None)
                continue
            score = float(index.unit[best] @ query[i] / norms[i]) if norms[i] > 0 else 0.0
            results.append((self.keys[int(best)], score))
        return results

    # ------------------------------------------------------------------------------- embed

    @cached_property
    def table_idf(self) -> np.ndarray:
        """idf per row from the table's counts: ``ln((1 + sum(count)) / (1 + count)) + 1``."""
        return K.idf_weights(self.counts, int(np.sum(self.counts)))

    def input_idf(self, rows: Sequence[Sequence[str] | None]) -> np.ndarray:
        """idf per table row from a collection of token lists (document frequencies in ``rows``)."""
        bags, dictionary = K.token_bags(pa.array(list(rows), type=pa.list_(pa.string())))
        table_rows = self._index.rows_of_keys(dictionary)[bags.codes]
        df = np.bincount(table_rows[table_rows >= 0], minlength=len(self))
        return K.idf_weights(df, int(np.count_nonzero(bags.valid)))

    def _idf(self, combiner: str, idf: np.ndarray | None) -> np.ndarray | None:
        if combiner != "tfidf":
            return None
        return self.table_idf if idf is None else np.asarray(idf, dtype=np.float32)

    def embed_batch(
        self,
        rows: Sequence[Sequence[str] | None] | pa.Array,
        *,
        combiner: str = "mean",
        oov: str = "skip",
        normalize: bool = False,
        idf: np.ndarray | None = None,
    ) -> EmbedResult:
        """Embed many token lists at once (the job's kernel): see :mod:`embedpipe.lookup.combiners`.

        ``oov='fail'`` raises KeyError naming the first unknown token. ``idf`` (per table row)
        defaults to :attr:`table_idf` for the tfidf combiner.
        """
        _check_choice("combiner", combiner, K.COMBINERS)
        _check_choice("oov", oov, K.OOV_POLICIES)
        tokens = rows if isinstance(rows, pa.Array) else pa.array(list(rows), type=pa.list_(pa.string()))
        bags, dictionary = K.token_bags(tokens)
        dictionary_rows = self._index.rows_of_keys(dictionary)
        entry_rows = dictionary_rows[bags.codes] if bags.codes.size else bags.codes
        if oov == "fail" and np.any(entry_rows < 0):
            missing = dictionary[int(bags.codes[np.flatnonzero(entry_rows < 0)[0]])].as_py()
            raise KeyError(f"token {missing!r} is not in the table")
        result = K.embed_bags(bags, entry_rows, self.matrix, combiner=combiner, oov=oov, normalize=normalize,
                              idf=self._idf(combiner, idf))
        return EmbedResult(result.vectors, result.has_vector, result.found, result.total)

    def embed_sparse_batch(
        self,
        indices: Sequence[Sequence[int] | None] | pa.Array,
        values: Sequence[Sequence[float] | None] | pa.Array | None = None,
        *,
        combiner: str = "weighted_sum",
        oov: str = "skip",
        normalize: bool = False,
        idf: np.ndarray | None = None,
    ) -> EmbedResult:
        """Embed sparse rows whose ``indices`` are table ids (a tokenize ``bow/``'s indices and values)."""
        _check_choice("combiner", combiner, K.COMBINERS)
        _check_choice("oov", oov, K.OOV_POLICIES)
        if not isinstance(indices, pa.Array):
            indices = pa.array(list(indices), type=pa.list_(pa.int64()))
        if values is not None and not isinstance(values, pa.Array):
            values = pa.array(list(values), type=pa.list_(pa.float64()))
        bags = K.sparse_bags(indices, values)
        entry_rows = self._index.rows_of_ids(bags.codes)
        if oov == "fail" and np.any(entry_rows < 0):
            raise KeyError(f"index {int(bags.codes[np.flatnonzero(entry_rows < 0)[0]])} is not a table id")
        result = K.embed_bags(bags, entry_rows, self.matrix, combiner=combiner, oov=oov, normalize=normalize,
                              idf=self._idf(combiner, idf))
        return EmbedResult(result.vectors, result.has_vector, result.found, result.total)

    def embed(
        self,
        tokens: Sequence[str],
        *,
        combiner: str = "mean",
        oov: str = "skip",
        normalize: bool = False,
        idf: np.ndarray | None = None,
    ) -> np.ndarray | None:
        """One bag of tokens -> a float32 vector, or None when nothing was found (or ``tokens`` is empty)."""
        result = self.embed_batch([list(tokens)], combiner=combiner, oov=oov, normalize=normalize, idf=idf)
        return result.vectors[0] if result.has_vector[0] else None

    # ---------------------------------------------------------------------------- raw text

    @property
    def tokenizer(self):  # noqa: ANN201 - TokenizerSettings
        """The tokenizer settings the table was trained with; TableError for item tables."""
        from embedpipe.jobconfig import TokenizerSettings

        settings = self.manifest.get("tokenizer")
        if not settings:
            raise TableError(
                f"embedding table {self.path or '(in memory)'} records no tokenizer (key_kind "
                f"{self.manifest.get('key_kind')!r}); embed token lists, not raw text"
            )
        return TokenizerSettings(**settings)

    @cached_property
    def stop_words(self) -> frozenset[str]:
        """The tokenizer's stop words, read without Spark (a file, or Spark's bundled language lists)."""
        return read_stop_words(self.tokenizer.stop_words)

    def tokenize(self, text: str) -> list[str]:
        """``text`` split exactly as the table's training corpus was (the manifest's tokenizer)."""
        from embedpipe.text.tokenizer import tokenize_text

        return tokenize_text(text, self.tokenizer, self.stop_words)

    def embed_text(self, text: str, **options: Any) -> np.ndarray | None:
        """:meth:`embed` of :meth:`tokenize` (options as for :meth:`embed`)."""
        return self.embed(self.tokenize(text), **options)


def read_stop_words(spec: str) -> frozenset[str]:
    """Stop words named like ``TokenizerSettings.stop_words``, without a JVM.

    Language lists are read from the Spark MLlib jar that ships with pyspark (the same files
    ``StopWordsRemover.loadDefaultStopWords`` reads).
    """
    from embedpipe.text.tokenizer import APOSTROPHES, STOP_WORD_LANGUAGES

    spec = spec.strip()
    if not spec:
        return frozenset()
    if spec.lower() in STOP_WORD_LANGUAGES:
        import glob

        import pyspark

        jars = glob.glob(os.path.join(os.path.dirname(pyspark.__file__), "jars", "spark-mllib_*.jar"))
        if not jars:
            raise InputError(f"stop words {spec!r}: pyspark's MLlib jar is not installed")
        with zipfile.ZipFile(jars[0]) as jar:
            text = jar.read(f"org/apache/spark/ml/feature/stopwords/{spec.lower()}.txt").decode("utf-8")
    else:
        path = spec.removeprefix("file://").removeprefix("file:")
        if not os.path.isfile(path):
            raise InputError(f"stop words file not found: {spec}")
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    words = [line.strip() for line in text.splitlines()]
    return frozenset(w.replace(APOSTROPHES, "'").lower() for w in words if w and not w.startswith("#"))


def _is_local(path: str) -> bool:
    return "://" not in path or path.startswith("file://")


def read_table_arrow(path: str) -> pa.Table:
    """The table's rows as Arrow; local files are memory-mapped (no copy of the compressed pages)."""
    import pyarrow.parquet as pq

    from embedpipe.table import read_arrow_table

    try:
        if _is_local(path):
            local = path.removeprefix("file://")
            return pq.read_table(local, columns=list(schema.TABLE_COLUMNS), memory_map=True)
        return read_arrow_table(path)
    except (OSError, ValueError, KeyError) as exc:  # ArrowInvalid is a ValueError
        first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise InputError(f"cannot read embedding table {path}: {first_line}") from None


def open_table(path: str) -> EmbeddingLookup:
    """Open an embedding table directory for lookups (Spark-free).

    Errors are one line: a missing directory or manifest is an InputError, an empty table or
    vectors that disagree with the manifest's ``dim`` a TableError.
    """
    local = path.removeprefix("file://")
    if _is_local(path) and not os.path.exists(local):
        raise InputError(f"embedding table not found: {path}")
    manifest = read_manifest(path)
    if int(manifest.get("rows", 1)) == 0:
        raise TableError(f"embedding table {path} has no rows")
    lookup = EmbeddingLookup.from_arrow(read_table_arrow(path), manifest, path=path)
    log.info("opened table %s: %d keys x %d dims (method %s)", path, len(lookup), lookup.dim, manifest.get("method"))
    return lookup
