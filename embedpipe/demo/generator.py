"""Deterministic demo data with planted structure: a text corpus, a watch log, property listings.

The demo and the benchmarks need data whose "right answer" is known: which words should be
neighbours, which analogies should hold, which movie axes a good item embedding recovers, which
words drive a price. Everything here is plain NumPy (no Spark), vectorised over chunks of documents
or users and streamed to disk, so a benchmark can make tens of millions of tokens in seconds without
holding them in memory. The same seed always gives the same bytes: each chunk draws from its own
generator seeded by ``(seed, stream, chunk index)`` and chunk sizes are fixed constants.

The planted word lists and sentence templates live in :mod:`embedpipe.demo.vocabulary`.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from embedpipe.demo import vocabulary as V
from embedpipe.errors import ConfigError

log = logging.getLogger(__name__)

# Fixed chunk sizes: part of the output's definition (changing one changes the bytes for a seed).
_DOC_CHUNK = 65_536
_USER_CHUNK = 8_192
_LISTING_CHUNK = 65_536

# Stream ids keep the generators of different outputs independent for the same seed.
_CORPUS_STREAM = 1
_WATCH_STREAM = 2
_LISTING_STREAM = 3
_ITEM_STREAM = 4

MIN_DOC_TOKENS = 10
MAX_DOC_TOKENS = 14
FILLER_ZIPF_EXPONENT = 1.05
TOPIC_SHARE = 0.1  # chance that a padding word of a country or animal document is a topic word
SCATTER_SHARE = 0.06  # chance that any padding word is a random pair-specific word (landmark, dish, ...)

# Share of documents per family; the rest of each document is Zipfian background words.
_FAMILY_WEIGHTS = {"countries": 0.34, "animals": 0.2, "movies": 0.24, "korean": 0.03, "filler": 0.19}

SECTION_CAPITALS = "capital-world"
SECTION_NATIONALITY = "gram6-nationality-adjective"
SECTION_KOREAN = "capital-korean"

WATCH_LOG_START = 1_577_836_800  # 2020-01-01T00:00:00Z: timestamps are seconds since the epoch


# --------------------------------------------------------------------------------------------------
# Results


@dataclass(frozen=True)
class CorpusInfo:
    """What :func:`generate_corpus` wrote and the structure it planted (the answers to check against)."""

    path: Path
    documents: int
    tokens: int
    seed: int
    animals: list[str]
    animal_context: list[str]  # vet, clinic, pet, ...: the words animals keep company with
    capitals: dict[str, str]  # country -> capital
    nationalities: dict[str, str]  # country -> nationality adjective
    korean_capitals: dict[str, str]  # Korean-script country -> capital
    local_words: dict[str, list[str]]  # country -> its own landmark, dish, river, famous name
    movies: dict[str, tuple[str, str]]  # title -> (audience, style)
    analogies: dict[str, list[tuple[str, str, str, str]]] = field(default_factory=dict)  # section -> a b c d

    @property
    def countries(self) -> list[str]:
        return list(self.capitals)

    def analogy_lines(self) -> list[str]:
        """The questions in Google's questions-words.txt layout (``: section`` then ``a b c d`` lines)."""
        lines = []
        for section, questions in self.analogies.items():
            lines.append(f": {section}")
            lines.extend(" ".join(q) for q in questions)
        return lines

    def planted_words(self) -> set[str]:
        """Every word the structure is made of (each occurs in any corpus of a few hundred documents)."""
        words = set(self.animals) | set(self.animal_context) | set(self.movies)
        words |= set(self.capitals) | set(self.capitals.values()) | set(self.nationalities.values())
        words |= set(self.korean_capitals) | set(self.korean_capitals.values())
        words |= {w for own in self.local_words.values() for w in own}
        return words


@dataclass(frozen=True)
class WatchLogInfo:
    """What :func:`generate_watch_log` wrote; item arrays are aligned with ``items`` (``m0001`` first).

    Items are numbered by popularity rank (``m0001`` is the most popular); ``audience`` and ``style``
    are the planted axes a good item embedding separates linearly.
    """

    path: Path
    items_path: Path
    users: int
    interactions: int
    seed: int
    items: tuple[str, ...]
    titles: tuple[str, ...]
    audience: np.ndarray  # str: "children" | "adult"
    style: np.ndarray  # str: "blockbuster" | "arthouse"
    popularity: np.ndarray  # float64 weights summing to 1 (the Zipf prior)

    @property
    def segments(self) -> np.ndarray:
        """Segment index 0..3 per item: 2 * (audience == adult) + (style == arthouse)."""
        return 2 * (self.audience == V.AUDIENCES[1]).astype(np.int64) + (self.style == V.STYLES[1])


@dataclass(frozen=True)
class ListingsInfo:
    """What :func:`generate_listings` wrote: price = base + per_bedroom * bedrooms + word effects + noise."""

    path: Path
    listings: int
    tokens: int
    seed: int
    base_price: float
    per_bedroom: float
    noise_sd: float
    effects: dict[str, float]


# --------------------------------------------------------------------------------------------------
# Shared helpers


def _chunk_rng(seed: int, stream: int, chunk: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), stream, chunk])


def _check_count(name: str, value: int, minimum: int = 1) -> None:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < minimum:
        raise ConfigError(f"'{name}' must be an integer >= {minimum}, got {value!r}")


def _check_seed(seed: int) -> None:
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ConfigError(f"'seed' must be a non-negative integer, got {seed!r}")


_CONSONANTS = "bdfgklmnprstvz"
_VOWELS = "aeiou"
_SYLLABLES = tuple(c + v for c in _CONSONANTS for v in _VOWELS)  # 70


def _invented_words(syllables: int, count: int, exclude: set[str], *, offset: int = 0) -> list[str]:
    """``count`` distinct pronounceable words of ``syllables`` syllables, fixed for all seeds.

    Walks the syllable space with a stride coprime to its size, so consecutive words look unrelated.
    """
    space = len(_SYLLABLES) ** syllables
    stride = 7919 if syllables > 1 else 1
    words: list[str] = []
    for k in itertools.count(offset):
        if len(words) == count:
            return words
        if k - offset >= space:
            raise ValueError(f"only {len(words)} invented words of {syllables} syllables available")
        n = (k * stride) % space
        parts = []
        for _ in range(syllables):
            n, r = divmod(n, len(_SYLLABLES))
            parts.append(_SYLLABLES[r])
        word = "".join(parts)
        if word not in exclude:
            words.append(word)
    raise AssertionError("unreachable")


class _Pool:
    """Words laid out in one byte buffer so token-id arrays turn into text without Python loops."""

    def __init__(self, words: Sequence[str]):
        encoded = [w.encode("utf-8") + b" " for w in words]
        self.bytes = np.frombuffer(b"".join(encoded), dtype=np.uint8)
        self.lengths = np.array([len(e) for e in encoded], dtype=np.int64)
        self.starts = np.concatenate(([0], np.cumsum(self.lengths)[:-1])).astype(np.int64)

    def render(self, ids: np.ndarray, doc_lengths: np.ndarray) -> bytes:
        """Space-separated tokens, one line per document (``ids`` is flat, ``doc_lengths`` sums to it)."""
        out_len = self.lengths[ids]
        out_end = np.cumsum(out_len)
        total = int(out_end[-1]) if len(out_end) else 0
        shift = np.repeat(self.starts[ids] - (out_end - out_len), out_len)
        buf = self.bytes[shift + np.arange(total, dtype=np.int64)]
        buf[out_end[np.cumsum(doc_lengths) - 1] - 1] = ord("\n")  # the last token's space ends the line
        return buf.tobytes()


# --------------------------------------------------------------------------------------------------
# Corpus


def _reserved_words() -> set[str]:
    words: set[str] = set()
    for country_row in V.COUNTRY_TABLE:
        words.update(country_row)
    for korean_row in V.KOREAN_TABLE:
        words.update(korean_row)
    words.update(V.GOODS, V.CITY_WORDS, V.ANIMALS, V.ANIMAL_PARTS, V.ANIMAL_FOODS, V.ANIMAL_CONTEXT)
    words.update(V.AUDIENCES, V.STYLES, V.COMMON_WORDS)
    for group in (*V.AUDIENCE_WORDS.values(), *V.STYLE_WORDS.values()):
        words.update(group)
    for template in (*V.COUNTRY_TEMPLATES, *V.ANIMAL_TEMPLATES, *V.MOVIE_TEMPLATES, *V.KOREAN_TEMPLATES):
        words.update(t for t in template.split() if not t.startswith("{"))
    words.update(V.LISTING_KINDS, V.LISTING_EFFECTS, V.LISTING_NEUTRAL)
    return words


_RESERVED = _reserved_words()


class _CorpusModel:
    """The compiled vocabulary, templates and samplers; built once per call, pure functions of the seed."""

    def __init__(self) -> None:
        self.movie_titles = _invented_words(3, V.CORPUS_MOVIES, _RESERVED, offset=1)
        # Background: common words first, then a long tail of invented two-syllable words.
        planted_slots = {w for row in V.COUNTRY_TABLE for w in row} | set(V.ANIMALS) | set(self.movie_titles)
        common = [w for w in V.COMMON_WORDS if w not in planted_slots]
        tail = _invented_words(2, 4_000, _RESERVED | set(self.movie_titles))
        self.filler = common + tail

        words: list[str] = []
        index: dict[str, int] = {}

        def ids(seq: Sequence[str]) -> np.ndarray:
            out = []
            for w in seq:
                if w not in index:
                    index[w] = len(words)
                    words.append(w)
                out.append(index[w])
            return np.array(out, dtype=np.int64)

        self.filler_ids = ids(self.filler)
        columns = list(zip(*V.COUNTRY_TABLE, strict=True))
        self.country_ids, self.capital_ids, self.nationality_ids = (ids(c) for c in columns[:3])
        self.local_ids = np.stack([ids(c) for c in columns[3:]], axis=1)  # (pairs, 4) pair-specific words
        self.ko_capital_ids = ids([c for c, _ in V.KOREAN_TABLE])
        self.ko_country_ids = ids([k for _, k in V.KOREAN_TABLE])
        self.good_ids = ids(V.GOODS)
        self.cityword_ids = ids(V.CITY_WORDS)
        self.animal_ids = ids(V.ANIMALS)
        self.part_ids = ids(V.ANIMAL_PARTS)
        self.food_ids = ids(V.ANIMAL_FOODS)
        self.movie_ids = ids(self.movie_titles)
        m = np.arange(V.CORPUS_MOVIES)
        self.movie_audience = m % 2  # 0 children, 1 adult
        self.movie_style = (m // 2) % 2  # 0 blockbuster, 1 arthouse
        self.movie_segment = 2 * self.movie_audience + self.movie_style
        self.segment_movies = [np.flatnonzero(self.movie_segment == s) for s in range(4)]
        self.aud_ids = np.stack([ids(V.AUDIENCE_WORDS[a]) for a in V.AUDIENCES])
        self.style_ids = np.stack([ids(V.STYLE_WORDS[s]) for s in V.STYLES])

        # Families: (name, entity count, templates); a template is a list of literal ids or slot names.
        self.families: list[tuple[str, int, list[list[int | str]]]] = []
        for name, count, templates in (
            ("countries", len(V.COUNTRY_TABLE), V.COUNTRY_TEMPLATES),
            ("animals", len(V.ANIMALS), V.ANIMAL_TEMPLATES),
            ("movies", V.CORPUS_MOVIES, V.MOVIE_TEMPLATES),
            ("korean", len(V.KOREAN_TABLE), V.KOREAN_TEMPLATES),
            ("filler", 1, ("",)),
        ):
            compiled = []
            for template in templates:
                parts: list[int | str] = []
                for token in template.split():
                    parts.append(token[1:-1] if token.startswith("{") else int(ids([token])[0]))
                if len(parts) > MIN_DOC_TOKENS:
                    raise AssertionError(f"template too long for {MIN_DOC_TOKENS}-token documents: {template}")
                compiled.append(parts)
            self.families.append((name, count, compiled))
        # Per-family topic words for the padding: per entity (2-D) or shared by the family (1-D).
        self.topics: dict[str, np.ndarray] = {
            "countries": self.local_ids,
            "animals": ids([*V.ANIMAL_CONTEXT, *V.ANIMAL_PARTS, *V.ANIMAL_FOODS]),
        }
        weights = np.array([_FAMILY_WEIGHTS[name] for name, _, _ in self.families])
        self.family_cdf = np.cumsum(weights / weights.sum())
        self.words = words
        self.pool = _Pool(words)

        ranks = np.arange(1, len(self.filler_ids) + 1, dtype=np.float64)
        zipf = ranks**-FILLER_ZIPF_EXPONENT
        self.filler_cdf = np.cumsum(zipf / zipf.sum())

    def _slot(self, slot: str, entity: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        n = len(entity)
        choose: dict[str, Callable[[], np.ndarray]] = {
            "country": lambda: self.country_ids[entity],
            "capital": lambda: self.capital_ids[entity],
            "nationality": lambda: self.nationality_ids[entity],
            "local": lambda: self.local_ids[entity, rng.integers(0, self.local_ids.shape[1], n)],
            "landmark": lambda: self.local_ids[entity, 0],
            "dish": lambda: self.local_ids[entity, 1],
            "river": lambda: self.local_ids[entity, 2],
            "person": lambda: self.local_ids[entity, 3],
            "country2": lambda: self.country_ids[_other(entity, len(self.country_ids), rng)],
            "capital2": lambda: self.capital_ids[_other(entity, len(self.capital_ids), rng)],
            "good": lambda: self.good_ids[rng.integers(0, len(self.good_ids), n)],
            "cityword": lambda: self.cityword_ids[rng.integers(0, len(self.cityword_ids), n)],
            "animal": lambda: self.animal_ids[entity],
            "animal2": lambda: self.animal_ids[rng.integers(0, len(self.animal_ids), n)],
            "part": lambda: self.part_ids[rng.integers(0, len(self.part_ids), n)],
            "food": lambda: self.food_ids[rng.integers(0, len(self.food_ids), n)],
            "movie": lambda: self.movie_ids[entity],
            "movie2": lambda: self.movie_ids[self._same_segment(entity, rng)],
            "aud": lambda: self.aud_ids[self.movie_audience[entity], rng.integers(0, self.aud_ids.shape[1], n)],
            "style": lambda: self.style_ids[self.movie_style[entity], rng.integers(0, self.style_ids.shape[1], n)],
            "ko_country": lambda: self.ko_country_ids[entity],
            "ko_capital": lambda: self.ko_capital_ids[entity],
        }
        return choose[slot]()

    def _same_segment(self, entity: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Another movie of each movie's (audience, style) segment.

        Segments interleave with period 4 (movie ``i`` is in segment ``i % 4``'s residue class), so
        a movie's position inside its segment is ``i // 4``.
        """
        table = np.stack(self.segment_movies)  # (4, per_segment)
        per_segment = table.shape[1]
        other = (entity // 4 + rng.integers(1, per_segment, len(entity))) % per_segment
        return table[self.movie_segment[entity], other]

    def chunk(self, size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Token ids (flat) and document lengths for ``size`` documents."""
        lengths = rng.integers(MIN_DOC_TOKENS, MAX_DOC_TOKENS + 1, size)
        grid = self.filler_ids[np.searchsorted(self.filler_cdf, rng.random((size, MAX_DOC_TOKENS)))]
        # Pair-specific words also turn up at random anywhere, as famous names do in real text: as
        # contexts they still tie a country to its capital, but as words they are not clones of it.
        scatter = rng.random((size, MAX_DOC_TOKENS)) < SCATTER_SHARE
        grid[scatter] = self.local_ids.ravel()[rng.integers(0, self.local_ids.size, int(scatter.sum()))]
        family = np.searchsorted(self.family_cdf, rng.random(size), side="right")
        family = np.minimum(family, len(self.families) - 1)
        for f, (_, count, templates) in enumerate(self.families):
            rows = np.flatnonzero(family == f)
            if not len(rows):
                continue
            entity = rng.integers(0, count, len(rows))
            which = rng.integers(0, len(templates), len(rows))
            topic = self.topics.get(self.families[f][0])
            if topic is not None:
                # Topic background: some padding words come from the document's subject, as in real text.
                words = topic[entity] if topic.ndim == 2 else np.broadcast_to(topic, (len(rows), len(topic)))
                column = rng.integers(0, words.shape[1], (len(rows), MAX_DOC_TOKENS))
                pick = words[np.arange(len(rows))[:, None], column]
                use = rng.random((len(rows), MAX_DOC_TOKENS)) < TOPIC_SHARE
                grid[rows] = np.where(use, pick, grid[rows])
            for t, parts in enumerate(templates):
                if not parts:
                    continue
                sel = which == t
                r, e = rows[sel], entity[sel]
                if not len(r):
                    continue
                block = np.stack(
                    [np.full(len(r), p) if isinstance(p, int) else self._slot(p, e, rng) for p in parts], axis=1
                )
                start = rng.integers(0, lengths[r] - len(parts) + 1)
                grid[r[:, None], start[:, None] + np.arange(len(parts))] = block
        mask = np.arange(MAX_DOC_TOKENS) < lengths[:, None]
        return grid[mask], lengths


def _other(entity: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """A uniformly random index in ``[0, count)`` different from each ``entity``."""
    return (entity + rng.integers(1, count, len(entity))) % count


def _planted_info(model: _CorpusModel, path: Path, documents: int, tokens: int, seed: int) -> CorpusInfo:
    capitals = {c: k for c, k, *_ in V.COUNTRY_TABLE}
    nationalities = {c: n for c, _, n, *_ in V.COUNTRY_TABLE}
    korean = {country: capital for capital, country in V.KOREAN_TABLE}
    movies = {
        title: (V.AUDIENCES[a], V.STYLES[s])
        for title, a, s in zip(model.movie_titles, model.movie_audience, model.movie_style, strict=True)
    }
    analogies = {
        SECTION_CAPITALS: _pair_analogies([(k, c) for c, k in capitals.items()]),
        SECTION_NATIONALITY: _pair_analogies(list(nationalities.items())),
        SECTION_KOREAN: _pair_analogies([(k, c) for c, k in korean.items()]),
    }
    return CorpusInfo(
        path=path,
        documents=documents,
        tokens=tokens,
        seed=seed,
        animals=list(V.ANIMALS),
        animal_context=list(V.ANIMAL_CONTEXT),
        capitals=capitals,
        nationalities=nationalities,
        korean_capitals=korean,
        local_words={row[0]: list(row[3:]) for row in V.COUNTRY_TABLE},
        movies=movies,
        analogies=analogies,
    )


def _pair_analogies(pairs: Sequence[tuple[str, str]]) -> list[tuple[str, str, str, str]]:
    """Every ordered combination of two distinct pairs: ``a b c d`` means b - a + c should be d."""
    return [(a, b, c, d) for (a, b), (c, d) in itertools.permutations(pairs, 2)]


def generate_corpus(path: str | Path, *, documents: int, seed: int) -> CorpusInfo:
    """Write ``documents`` lines of space-separated lowercase tokens (10-14 each) with planted structure.

    Planted: animals in sentences about vets, pets and barns; 20 countries with their capitals in
    templates where the country -> capital relation is always the same, countries sharing contexts
    with countries and capitals with capitals; each pair's own words (landmark, dish, river, famous
    name) around both the country and its capital, which gives every pair the specific component
    that makes capital analogies hold; Korean-script capitals and countries; 48 one-token movie
    titles with audience (children/adult) and style (blockbuster/arthouse) words; Zipfian
    background words everywhere. Same seed, same bytes.

    The mix was tuned against gensim skip-gram (dim 50-100, window 5) from 0.24M to 24M tokens:
    countries' and capitals' nearest neighbours are countries and capitals, and the capital-world
    analogies score 0.9-1.0 (see the module's tests for a NumPy PPMI-SVD check of the same).
    """
    _check_count("documents", documents)
    _check_seed(seed)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = _CorpusModel()
    log.info("generating corpus %s: %d documents, seed %d", path, documents, seed)
    began = time.perf_counter()
    tokens = 0
    with open(path, "wb") as out:
        for chunk, first in enumerate(range(0, documents, _DOC_CHUNK)):
            size = min(_DOC_CHUNK, documents - first)
            ids, lengths = model.chunk(size, _chunk_rng(seed, _CORPUS_STREAM, chunk))
            out.write(model.pool.render(ids, lengths))
            tokens += len(ids)
            if chunk % 16 == 15:
                elapsed = time.perf_counter() - began
                log.info("corpus: %d/%d documents (%.0f%%), %.0f tokens/s",
                         first + size, documents, 100.0 * (first + size) / documents, tokens / max(elapsed, 1e-9))
    elapsed = time.perf_counter() - began
    log.info("corpus written: %d documents, %d tokens in %.1f s (%.0f tokens/s)",
             documents, tokens, elapsed, tokens / max(elapsed, 1e-9))
    return _planted_info(model, path, documents, tokens, seed)


def write_analogy_file(path: str | Path, info: CorpusInfo) -> Path:
    """Write the planted analogies in Google's questions-words.txt format, for ``evaluate --analogies``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(info.analogy_lines()) + "\n", encoding="utf-8")
    return path


def similarity_pairs(info: CorpusInfo) -> list[tuple[str, str, float]]:
    """Planted word pairs with a 0-10 relatedness score (WordSim-353 scale), fixed for every seed.

    Own capital 9, same class (country/country, capital/capital, animal/animal, animal/vet,
    movies of one segment) 7-8, movies sharing one axis 4.5, movies sharing none 2, unrelated 1.
    """
    rng = np.random.default_rng(20_261_125)
    countries = list(info.capitals)
    capitals = list(info.capitals.values())
    animals = list(info.animals)
    movies = list(info.movies)
    pairs: list[tuple[str, str, float]] = []

    def pick(seq: Sequence[str], k: int) -> list[str]:
        return [seq[i] for i in rng.choice(len(seq), size=k, replace=False)]

    pairs += [(c, info.capitals[c], 9.0) for c in pick(countries, 10)]
    pairs += [(a, b, 7.5) for a, b in zip(pick(countries, 10), pick(countries, 10), strict=True) if a != b]
    pairs += [(a, b, 7.0) for a, b in zip(pick(capitals, 10), pick(capitals, 10), strict=True) if a != b]
    pairs += [(a, b, 7.5) for a, b in zip(pick(animals, 10), pick(animals, 10), strict=True) if a != b]
    pairs += [(a, "vet", 8.0) for a in pick(animals, 6)]
    for a, b in zip(pick(movies, 24), pick(movies, 24), strict=True):
        if a == b:
            continue
        shared = sum(x == y for x, y in zip(info.movies[a], info.movies[b], strict=True))
        pairs.append((a, b, {2: 7.5, 1: 4.5, 0: 2.0}[shared]))
    pairs += [(a, b, 1.0) for a, b in zip(pick(animals, 8), pick(countries, 8), strict=True)]
    pairs += [(a, b, 1.0) for a, b in zip(pick(movies, 8), pick(capitals, 8), strict=True)]
    pairs += [(a, b, 1.0) for a, b in zip(pick(animals, 8), pick(movies, 8), strict=True)]
    return pairs


def write_similarity_file(path: str | Path, info: CorpusInfo) -> Path:
    """Write :func:`similarity_pairs` in WordSim-353's tab-separated format (``#`` comment lines)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["# embedpipe planted word pairs: word1<TAB>word2<TAB>relatedness (0-10)"]
    lines += [f"{a}\t{b}\t{score:.2f}" for a, b, score in similarity_pairs(info)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# --------------------------------------------------------------------------------------------------
# Watch log

ITEM_ZIPF_EXPONENT = 1.0  # global chart: share of plays ~ rank^-1, a long tail as in real logs
_POPULAR_SHARE = 0.2  # share of a user's picks drawn from global popularity rather than taste
_MIN_WATCHED = 10  # the shortest history
_MEDIAN_WATCHED = 35  # history lengths are lognormal around this median ...
_WATCHED_SIGMA = 0.8  # ... with this log-sd (MovieLens latest-small: median 70, log-sd 1.06), capped at
_MAX_WATCHED = 200  # this or half the catalogue, whichever is smaller
_MIN_ITEMS = 80
_DRIFT = 0.4  # a user's taste ends this far at most (uniform per user) towards the neighbouring segment


def items_path_for(path: str | Path) -> Path:
    """Where :func:`generate_watch_log` writes the item metadata by default: ``<stem>_items.csv``."""
    path = Path(path)
    return path.with_name(f"{path.stem}_items.csv")


def generate_watch_log(
    path: str | Path, *, users: int, seed: int, items: int = 400, items_path: str | Path | None = None
) -> WatchLogInfo:
    """Write a CSV watch log ``user,item,timestamp,rating`` (sorted by user, then time) and item metadata.

    Each movie has a planted audience (children/adult) and style (blockbuster/arthouse), balanced
    across the four segments, and a Zipf popularity (``m0001`` most popular). Each user mostly
    watches one segment, somewhat a neighbouring one (one axis flipped), and some globally popular
    movies, at increasing timestamps, rating higher inside the segment they favour at the time.

    What makes it look like a real log (the knobs are the module's constants):

    - long tail: the global chart is Zipf, rank^-``ITEM_ZIPF_EXPONENT`` (1.0), its square root
      inside a segment; heavier tails make popularity so strong that a few hundred users no longer
      separate the learned methods from it;
    - activity: history lengths are lognormal (median ``_MEDIAN_WATCHED`` = 35, log-sd 0.8) between
      ``_MIN_WATCHED`` = 10 and min(``_MAX_WATCHED`` = 200, items / 2) distinct movies;
    - drift: each user's taste moves during their history towards the neighbouring segment, by a
      share of the lead drawn uniformly up to ``_DRIFT`` (0.4), so later items (a temporal holdout)
      differ from earlier ones: Recall@20 of EASE on the last 2 items falls from 1.49x to 1.3x
      popularity's (MovieLens: 1.86x).

    The 2-D structure stays recoverable: drift moves along one planted axis. The item CSV
    (``item,title,audience,style``) goes to ``items_path`` (default: ``<stem>_items.csv``).
    """
    _check_count("users", users)
    _check_count("items", items, minimum=_MIN_ITEMS)
    _check_seed(seed)
    path = Path(path)
    items_file = Path(items_path) if items_path is not None else items_path_for(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    items_file.parent.mkdir(parents=True, exist_ok=True)

    width = max(4, len(str(items)))
    item_ids = np.array([f"m{i + 1:0{width}d}" for i in range(items)], dtype=object)
    titles = _invented_words(3, items, _RESERVED, offset=10_000)
    segment = _chunk_rng(seed, _ITEM_STREAM, 0).permutation(np.arange(items) % 4)
    audience = np.array(V.AUDIENCES)[segment // 2]
    style = np.array(V.STYLES)[segment % 2]
    popularity = np.arange(1, items + 1, dtype=np.float64) ** -ITEM_ZIPF_EXPONENT
    popularity /= popularity.sum()
    # Within a segment users still favour popular titles, but less steeply than the global chart.
    in_segment = np.sqrt(popularity)
    segment_taste = np.zeros((4, items))
    for s in range(4):
        members = segment == s
        segment_taste[s, members] = in_segment[members] / in_segment[members].sum()

    with open(items_file, "w", encoding="utf-8", newline="") as out:
        out.write("item,title,audience,style\n")
        out.writelines(f"{i},{t},{a},{s}\n" for i, t, a, s in zip(item_ids, titles, audience, style, strict=True))

    log.info("generating watch log %s: %d users, %d items, seed %d", path, users, items, seed)
    began = time.perf_counter()
    user_width = max(6, len(str(users)))
    interactions = 0
    with open(path, "w", encoding="utf-8", newline="") as out:
        out.write("user,item,timestamp,rating\n")
        for chunk, first in enumerate(range(0, users, _USER_CHUNK)):
            size = min(_USER_CHUNK, users - first)
            rng = _chunk_rng(seed, _WATCH_STREAM, chunk)
            user_idx, item_idx, stamps, ratings = _watch_chunk(size, rng, segment, popularity, segment_taste)
            user_col = np.array([f"u{first + u + 1:0{user_width}d}" for u in range(size)], dtype=object)[user_idx]
            out.writelines(
                f"{u},{i},{t},{r}\n"
                for u, i, t, r in zip(user_col, item_ids[item_idx], stamps.tolist(), ratings.tolist(), strict=True)
            )
            interactions += len(item_idx)
    elapsed = time.perf_counter() - began
    log.info("watch log written: %d users, %d interactions in %.1f s", users, interactions, elapsed)
    return WatchLogInfo(
        path=path,
        items_path=items_file,
        users=users,
        interactions=interactions,
        seed=seed,
        items=tuple(item_ids.tolist()),
        titles=tuple(titles),
        audience=audience,
        style=style,
        popularity=popularity,
    )


def _watch_chunk(
    size: int, rng: np.random.Generator, segment: np.ndarray, popularity: np.ndarray, segment_taste: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One chunk of users: (user index, item index, timestamp, rating) rows sorted by user then time.

    A user's picks at time fraction f of their history follow w(f) = (1 - f) w_start + f w_end, the
    taste at the start and at the end. The set of items is drawn from the mean weights (Gumbel top-k,
    distinct), then each item gets its time fraction from its posterior under that mixture, the
    density proportional to (1 - f) w_start + f w_end on [0, 1]: the same log as picking along the
    way, without a Python loop.
    """
    items = len(segment)
    cap = min(_MAX_WATCHED, items // 2)
    primary = rng.integers(0, 4, size)
    primary_weight = rng.uniform(0.65, 0.9, size)
    # Segment s = 2 * adult + arthouse, so XOR 1 flips the style, XOR 2 the audience, XOR 3 both.
    flip = rng.choice(np.array([1, 2]), size)
    neighbour = primary ^ flip
    rest = 1.0 - primary_weight
    rows = np.arange(size)
    start = np.empty((size, 4))
    start[rows, primary] = primary_weight
    start[rows, neighbour] = 0.75 * rest  # the neighbour: one axis flipped
    start[rows, primary ^ (3 - flip)] = 0.125 * rest
    start[rows, primary ^ 3] = 0.125 * rest
    # Drift: by the end of the history the main segment hands up to _DRIFT of its lead to the neighbour.
    drift = rng.uniform(0.0, _DRIFT, size)
    moved = drift * (start[rows, primary] - start[rows, neighbour])
    end = start.copy()
    end[rows, primary] -= moved
    end[rows, neighbour] += moved
    w_start = _POPULAR_SHARE * popularity + (1 - _POPULAR_SHARE) * (start @ segment_taste)
    w_end = _POPULAR_SHARE * popularity + (1 - _POPULAR_SHARE) * (end @ segment_taste)

    # Distinct picks by Gumbel top-k on the mean taste; lognormal history lengths.
    keys = np.log(w_start + w_end) + rng.gumbel(size=(size, items))
    order = np.argsort(-keys, axis=1, kind="stable")
    watched = np.rint(_MEDIAN_WATCHED * rng.lognormal(0.0, _WATCHED_SIGMA, size)).astype(np.int64)
    watched = np.clip(watched, _MIN_WATCHED, cap)
    chosen = np.zeros((size, items), dtype=bool)
    taken = np.arange(items)[None, :] < watched[:, None]
    chosen[np.repeat(rows, watched), order[taken]] = True
    # Time fraction by inverting the CDF of the linear density (rationalised: exact at w_start == w_end).
    u = rng.random((size, items))
    when = u * (w_start + w_end) / (w_start + np.sqrt(w_start**2 + (w_end**2 - w_start**2) * u))
    sequence = np.argsort(np.where(chosen, when, np.inf), axis=1, kind="stable")[:, :cap]
    valid = np.arange(cap)[None, :] < watched[:, None]

    first = WATCH_LOG_START + rng.integers(0, 365 * 86_400, size)
    gaps = 1 + np.floor(rng.exponential(2 * 86_400, (size, cap))).astype(np.int64)
    stamps = first[:, None] + np.cumsum(gaps, axis=1)

    item_idx = sequence[valid]
    user_idx = np.repeat(rows, watched)
    # Rated highly: the segment the user favoured when watching (with _DRIFT <= 0.5 the main one, always).
    moved_share = drift[user_idx] * when[user_idx, item_idx]
    favourite = np.where(moved_share > 0.5, neighbour[user_idx], primary[user_idx])
    liked = segment[item_idx] == favourite
    raw = np.where(liked, rng.normal(4.3, 0.7, len(item_idx)), rng.normal(3.0, 1.0, len(item_idx)))
    ratings = np.clip(np.rint(raw), 1, 5).astype(np.int64)
    return user_idx, item_idx, stamps[valid], ratings


# --------------------------------------------------------------------------------------------------
# Listings (regression demo)

LISTING_BASE_PRICE = 100.0
LISTING_PER_BEDROOM = 40.0
LISTING_NOISE_SD = 10.0
_LISTING_WORD_PROBABILITY = 0.3


def generate_listings(path: str | Path, *, listings: int, seed: int) -> ListingsInfo:
    """Write a CSV ``id,text,price`` of rental listings whose price is planted in their words.

    ``price = 100 + 40 * bedrooms + sum(effect of each effect word in the text) + N(0, 10)``; the
    text holds the kind, ``<n> bedroom``, each effect word with probability 0.3, and neutral words.
    """
    _check_count("listings", listings)
    _check_seed(seed)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    effect_words = np.array(list(V.LISTING_EFFECTS), dtype=object)
    effect_values = np.array(list(V.LISTING_EFFECTS.values()))
    kinds = np.array(V.LISTING_KINDS, dtype=object)
    neutral = np.array(V.LISTING_NEUTRAL, dtype=object)
    width = max(6, len(str(listings)))
    tokens = 0
    with open(path, "w", encoding="utf-8", newline="") as out:
        out.write("id,text,price\n")
        for chunk, first in enumerate(range(0, listings, _LISTING_CHUNK)):
            size = min(_LISTING_CHUNK, listings - first)
            rng = _chunk_rng(seed, _LISTING_STREAM, chunk)
            kind = kinds[rng.integers(0, len(kinds), size)]
            bedrooms = rng.integers(1, 5, size)
            present = rng.random((size, len(effect_words))) < _LISTING_WORD_PROBABILITY
            filler = neutral[rng.integers(0, len(neutral), (size, 3))]
            position = rng.random((size, len(effect_words) + 3))
            price = (
                LISTING_BASE_PRICE
                + LISTING_PER_BEDROOM * bedrooms
                + present.astype(np.float64) @ effect_values
                + rng.normal(0.0, LISTING_NOISE_SD, size)
            )
            # Effect and neutral words in a random order after "<kind> <n> bedroom" ("" = absent).
            words = np.concatenate((np.where(present, effect_words, ""), filler), axis=1)
            words = np.take_along_axis(words, np.argsort(position, axis=1), axis=1)
            rows = []
            for r in range(size):
                body = [w for w in words[r] if w]
                tokens += 3 + len(body)
                text = " ".join([kind[r], str(bedrooms[r]), "bedroom", *body])
                rows.append(f"l{first + r + 1:0{width}d},{text},{price[r]:.2f}\n")
            out.writelines(rows)
    log.info("listings written: %s, %d listings, %d tokens", path, listings, tokens)
    return ListingsInfo(
        path=path,
        listings=listings,
        tokens=tokens,
        seed=seed,
        base_price=LISTING_BASE_PRICE,
        per_bedroom=LISTING_PER_BEDROOM,
        noise_sd=LISTING_NOISE_SD,
        effects=dict(V.LISTING_EFFECTS),
    )
