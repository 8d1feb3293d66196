"""The demo generators (deterministic bytes, the documented layout, structure a learner can find) and what the
demo reads off its tables.

No Spark here: the generators are plain NumPy, and the learnability checks use small NumPy
co-occurrence models (PPMI + truncated SVD, item co-occurrence) as an obviously-correct stand-in
for the real trainers.
"""

from __future__ import annotations

import csv
import hashlib
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import embedpipe.demo.generator as generator
from embedpipe.demo import (
    generate_corpus,
    generate_listings,
    generate_watch_log,
    items_path_for,
    write_analogy_file,
    write_similarity_file,
)
from embedpipe.demo.pipeline import draw_countries_capitals, word_structure
from embedpipe.errors import ConfigError
from embedpipe.table import EmbeddingTable


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    path = tmp_path_factory.mktemp("corpus") / "corpus.txt"
    return generate_corpus(path, documents=3_000, seed=11)


@pytest.fixture(scope="module")
def corpus_counts(corpus) -> Counter:
    return Counter(token for line in _lines(corpus.path) for token in line.split(" "))


@pytest.fixture(scope="module")
def watch_log(tmp_path_factory):
    path = tmp_path_factory.mktemp("watch") / "watch_log.csv"
    return generate_watch_log(path, users=600, seed=5, items=200)


# --- corpus ---------------------------------------------------------------------------------------


def test_corpus_is_deterministic_per_seed(tmp_path):
    first = generate_corpus(tmp_path / "a.txt", documents=500, seed=3)
    second = generate_corpus(tmp_path / "b.txt", documents=500, seed=3)
    other = generate_corpus(tmp_path / "c.txt", documents=500, seed=4)
    assert _digest(first.path) == _digest(second.path)
    assert _digest(first.path) != _digest(other.path)
    assert first.tokens == second.tokens


def test_corpus_layout_and_size_scaling(tmp_path):
    small = generate_corpus(tmp_path / "small.txt", documents=400, seed=1)
    large = generate_corpus(tmp_path / "large.txt", documents=1_600, seed=1)
    for info in (small, large):
        raw = info.path.read_bytes()
        assert raw.endswith(b"\n") and b"\r" not in raw and b"  " not in raw
        lines = _lines(info.path)
        assert len(lines) == info.documents
        lengths = [len(line.split(" ")) for line in lines]
        assert sum(lengths) == info.tokens
        assert min(lengths) >= generator.MIN_DOC_TOKENS and max(lengths) <= generator.MAX_DOC_TOKENS
        assert all(line == line.lower() and line.strip() == line for line in lines)
    assert 3.6 < large.tokens / small.tokens < 4.4


def test_corpus_chunks_join_seamlessly(tmp_path, monkeypatch):
    monkeypatch.setattr(generator, "_DOC_CHUNK", 64)
    info = generate_corpus(tmp_path / "chunked.txt", documents=200, seed=2)
    lines = _lines(info.path)
    assert len(lines) == 200 and all(10 <= len(line.split(" ")) <= 14 for line in lines)
    assert sum(len(line.split(" ")) for line in lines) == info.tokens


def test_every_planted_word_occurs(corpus, corpus_counts):
    assert len(corpus.capitals) >= 12 and len(corpus.animals) >= 8
    missing = sorted(w for w in corpus.planted_words() if corpus_counts[w] == 0)
    assert missing == []
    assert corpus_counts["vet"] > 20
    assert {a for a, _ in corpus.movies.values()} == {"children", "adult"}
    assert {s for _, s in corpus.movies.values()} == {"blockbuster", "arthouse"}


def test_korean_text_is_present(corpus, corpus_counts):
    assert corpus.korean_capitals["한국"] == "서울"
    assert corpus_counts["서울"] > 0 and corpus_counts["한국"] > 0
    assert any("서울" in line and "한국" in line for line in _lines(corpus.path))


def test_analogy_file_is_questions_words_format(tmp_path, corpus, corpus_counts):
    path = write_analogy_file(tmp_path / "analogies.txt", corpus)
    sections: dict[str, int] = {}
    current = None
    for line in _lines(path):
        if line.startswith(": "):
            current = line[2:]
            assert current and " " not in current
            sections[current] = 0
            continue
        words = line.split()
        assert current is not None and len(words) == 4 and len(set(words)) == 4, line
        assert all(corpus_counts[w] > 0 for w in words), line
        sections[current] += 1
    pairs = len(corpus.capitals)
    assert sections["capital-world"] == pairs * (pairs - 1)
    assert sections["gram6-nationality-adjective"] == pairs * (pairs - 1)
    assert sections["capital-korean"] == len(corpus.korean_capitals) * (len(corpus.korean_capitals) - 1)
    # "a b c d": a capital, its country, another capital, its country
    assert "paris france berlin germany" in _lines(path)


def test_similarity_file_is_wordsim_format(tmp_path, corpus, corpus_counts):
    path = write_similarity_file(tmp_path / "similarity.tsv", corpus)
    rows = [line.split("\t") for line in _lines(path) if not line.startswith("#")]
    assert len(rows) >= 50
    scores = {(a, b): float(s) for a, b, s in rows}
    assert all(0.0 <= s <= 10.0 for s in scores.values())
    assert all(corpus_counts[a] > 0 and corpus_counts[b] > 0 for a, b in scores)
    assert len(set(scores.values())) >= 4
    path_again = write_similarity_file(tmp_path / "again.tsv", corpus)
    assert path_again.read_bytes() == path.read_bytes()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"documents": 0, "seed": 1}, "'documents' must be an integer >= 1, got 0"),
        ({"documents": 10, "seed": -1}, "'seed' must be a non-negative integer, got -1"),
    ],
)
def test_corpus_rejects_bad_arguments(tmp_path, kwargs, message):
    with pytest.raises(ConfigError) as error:
        generate_corpus(tmp_path / "bad.txt", **kwargs)
    assert str(error.value) == message
    assert not (tmp_path / "bad.txt").exists()


def _ppmi_svd(path: Path, *, min_count: int, window: int = 5, dim: int = 40) -> tuple[list[str], np.ndarray]:
    """Unit-norm word vectors from a truncated SVD of the (context-smoothed) PPMI matrix."""
    docs = [line.split(" ") for line in _lines(path)]
    counts = Counter(t for d in docs for t in d)
    vocab = sorted(w for w, c in counts.items() if c >= min_count)
    index = {w: i for i, w in enumerate(vocab)}
    ids = np.array([index.get(t, -1) for d in docs for t in d])
    doc = np.repeat(np.arange(len(docs)), [len(d) for d in docs])
    size = len(vocab)
    keys = []
    for offset in range(1, window + 1):
        a, b = ids[:-offset], ids[offset:]
        keep = (a >= 0) & (b >= 0) & (doc[:-offset] == doc[offset:])
        keys += [a[keep] * size + b[keep], b[keep] * size + a[keep]]
    cooc = np.bincount(np.concatenate(keys), minlength=size * size).reshape(size, size).astype(np.float64)
    total = cooc.sum()
    context = cooc.sum(axis=0) ** 0.75
    with np.errstate(divide="ignore"):
        pmi = np.log(cooc * total) - np.log(cooc.sum(axis=1, keepdims=True) * (context / context.sum() * total))
    ppmi = np.where(np.isfinite(pmi), np.maximum(pmi, 0.0), 0.0)
    u, s, _ = np.linalg.svd(ppmi)
    vectors = u[:, :dim] * np.sqrt(s[:dim])
    return vocab, vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def ppmi_vectors(tmp_path_factory):
    path = tmp_path_factory.mktemp("learn") / "corpus.txt"
    info = generate_corpus(path, documents=8_000, seed=1)
    vocab, vectors = _ppmi_svd(path, min_count=12)
    return info, vocab, vectors


def test_planted_structure_is_learnable_from_cooccurrence(ppmi_vectors):
    info, vocab, vectors = ppmi_vectors
    index = {w: i for i, w in enumerate(vocab)}

    def nearest(word: str) -> str:
        scores = vectors @ vectors[index[word]]
        scores[index[word]] = -np.inf
        return vocab[int(np.argmax(scores))]

    countries, capitals = set(info.capitals), set(info.capitals.values())
    assert sum(nearest(c) in countries for c in countries) >= 0.9 * len(countries)
    assert sum(nearest(c) in capitals for c in capitals) >= 0.9 * len(capitals)
    assert sum(nearest(a) in set(info.animals) | {"vet"} for a in info.animals) >= 0.75 * len(info.animals)

    correct = 0
    questions = info.analogies["capital-world"]
    for a, b, c, d in questions:
        scores = vectors @ (vectors[index[b]] - vectors[index[a]] + vectors[index[c]])
        scores[[index[a], index[b], index[c]]] = -np.inf
        correct += vocab[int(np.argmax(scores))] == d
    assert correct / len(questions) > 0.8


# --- watch log ------------------------------------------------------------------------------------


def _read_csv(path: Path) -> tuple[list[str], list[list[str]]]:
    with open(path, encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle))
    return rows[0], rows[1:]


def test_watch_log_layout(watch_log):
    header, rows = _read_csv(watch_log.path)
    assert header == ["user", "item", "timestamp", "rating"]
    assert len(rows) == watch_log.interactions
    users = [r[0] for r in rows]
    assert len(set(users)) == watch_log.users == 600
    assert users == sorted(users)  # grouped by user, users in order
    known_items = set(watch_log.items)
    per_user: dict[str, list[tuple[str, int]]] = {}
    for user, item, stamp, rating in rows:
        assert item in known_items and 1 <= int(rating) <= 5
        per_user.setdefault(user, []).append((item, int(stamp)))
    for history in per_user.values():
        items = [i for i, _ in history]
        stamps = [t for _, t in history]
        assert 10 <= len(items) <= 100 and len(set(items)) == len(items)  # at most half the catalogue
        assert all(b > a for a, b in zip(stamps, stamps[1:], strict=False))
        assert stamps[0] > generator.WATCH_LOG_START


def test_item_metadata_matches_info(watch_log):
    assert watch_log.items_path == items_path_for(watch_log.path)
    header, rows = _read_csv(watch_log.items_path)
    assert header == ["item", "title", "audience", "style"]
    assert [r[0] for r in rows] == list(watch_log.items) == [f"m{i:04d}" for i in range(1, 201)]
    assert [r[1] for r in rows] == list(watch_log.titles) and len(set(watch_log.titles)) == 200
    assert [r[2] for r in rows] == watch_log.audience.tolist()
    assert [r[3] for r in rows] == watch_log.style.tolist()
    assert np.bincount(watch_log.segments, minlength=4).tolist() == [50, 50, 50, 50]
    assert np.isclose(watch_log.popularity.sum(), 1.0) and np.all(np.diff(watch_log.popularity) < 0)


def test_watch_log_is_deterministic_per_seed(tmp_path):
    first = generate_watch_log(tmp_path / "a.csv", users=50, seed=9, items=120)
    second = generate_watch_log(tmp_path / "b.csv", users=50, seed=9, items=120,
                                items_path=tmp_path / "meta" / "b_items.csv")
    other = generate_watch_log(tmp_path / "c.csv", users=50, seed=10, items=120)
    assert _digest(first.path) == _digest(second.path)
    assert _digest(first.items_path) == _digest(second.items_path)
    assert _digest(first.path) != _digest(other.path)
    assert second.items_path == tmp_path / "meta" / "b_items.csv"


def test_watch_log_multiple_chunks(tmp_path, monkeypatch):
    monkeypatch.setattr(generator, "_USER_CHUNK", 16)
    info = generate_watch_log(tmp_path / "w.csv", users=40, seed=1, items=100)
    _, rows = _read_csv(info.path)
    assert [f"u{i:06d}" for i in range(1, 41)] == sorted({r[0] for r in rows})


def test_watch_log_plants_segments_and_popularity(watch_log):
    _, rows = _read_csv(watch_log.path)
    position = {item: i for i, item in enumerate(watch_log.items)}
    segments = watch_log.segments
    histories: dict[str, list[int]] = {}
    for user, item, _, _ in rows:
        histories.setdefault(user, []).append(position[item])
    # Each user mostly watches one segment (less than half the time for some: their taste drifts).
    main_share = [np.bincount(segments[h], minlength=4).max() / len(h) for h in histories.values()]
    assert np.mean(main_share) > 0.45  # chance: 0.25
    # Popular items (low ids) are watched more often than the tail.
    watched = np.bincount([position[r[1]] for r in rows], minlength=len(watch_log.items))
    assert watched[:20].mean() > 2 * watched[-100:].mean()
    # Item co-occurrence alone already separates segments: each item's nearest item shares its segment.
    users = np.repeat(np.arange(len(histories)), [len(h) for h in histories.values()])
    matrix = np.zeros((len(histories), len(watch_log.items)))
    matrix[users, np.concatenate(list(histories.values()))] = 1.0
    cooc = matrix.T @ matrix
    np.fill_diagonal(cooc, 0.0)
    norm = cooc / np.sqrt(np.outer(np.diag(matrix.T @ matrix), np.diag(matrix.T @ matrix)))
    nearest = norm.argmax(axis=1)
    assert np.mean(segments[nearest] == segments) > 0.8


def test_watch_log_looks_like_a_real_log(watch_log):
    """Long tail, users of very different activity, and a taste that drifts along one planted axis."""
    log = pd.read_csv(watch_log.path)
    plays = log["item"].value_counts().to_numpy()
    assert plays[:10].sum() > 0.1 * plays.sum()  # the top 5% of titles draw over 10% of the plays
    assert plays[:10].mean() > 3.5 * plays[-50:].mean()
    lengths = log.groupby("user").size().to_numpy()
    assert np.percentile(lengths, 90) > 3 * np.percentile(lengths, 10)
    segment = dict(zip(watch_log.items, watch_log.segments.tolist(), strict=True))
    log["segment"] = log["item"].map(segment)
    log["late"] = log.groupby("user").cumcount() >= log.groupby("user")["item"].transform("size") / 2
    early_main = log[~log["late"]].groupby("user")["segment"].agg(lambda s: s.value_counts().index[0])
    in_main = log["segment"] == log["user"].map(early_main)
    early_share, late_share = in_main[~log["late"]].mean(), in_main[log["late"]].mean()
    assert late_share < early_share - 0.04, (early_share, late_share)  # 0.55 -> 0.49 at seed 5
    assert late_share > 0.4  # drift, not a new random taste


def test_watch_log_rejects_too_few_items(tmp_path):
    with pytest.raises(ConfigError) as error:
        generate_watch_log(tmp_path / "w.csv", users=10, seed=1, items=30)
    assert str(error.value) == "'items' must be an integer >= 80, got 30"
    assert not (tmp_path / "w.csv").exists()


# --- listings -------------------------------------------------------------------------------------


def test_listings_price_follows_planted_words(tmp_path):
    info = generate_listings(tmp_path / "listings.csv", listings=3_000, seed=4)
    again = generate_listings(tmp_path / "again.csv", listings=3_000, seed=4)
    assert _digest(info.path) == _digest(again.path)
    header, rows = _read_csv(info.path)
    assert header == ["id", "text", "price"] and len(rows) == 3_000
    assert sum(len(r[1].split(" ")) for r in rows) == info.tokens
    words = list(info.effects)
    features = np.array(
        [[1.0, float(r[1].split(" ")[1])] + [float(w in r[1].split(" ")) for w in words] for r in rows]
    )
    price = np.array([float(r[2]) for r in rows])
    coef, *_ = np.linalg.lstsq(features, price, rcond=None)
    assert coef[0] == pytest.approx(info.base_price, abs=3.0)
    assert coef[1] == pytest.approx(info.per_bedroom, abs=1.5)
    assert coef[2:] == pytest.approx([info.effects[w] for w in words], abs=3.0)


# --- what the demo reads off its tables -------------------------------------------------------------


def _planted_table(corpus, *, scramble: bool) -> EmbeddingTable:
    """A table in which the corpus's structure holds exactly (or, scrambled, not at all)."""
    rng = np.random.default_rng(3)
    dim = 32
    animal_axis, country_axis, capital_axis = np.eye(dim)[:3]
    keys, vectors = [], []
    for animal in [*corpus.animals, "vet"]:
        keys.append(animal)
        vectors.append(3 * animal_axis + 0.3 * rng.normal(size=dim))
    for country, capital in corpus.capitals.items():
        own = np.concatenate([np.zeros(3), rng.normal(size=dim - 3)])  # orthogonal to the class axes
        own *= 2 / np.linalg.norm(own)  # what a country and its capital share (less than their class)
        keys += [country, capital]
        vectors += [3 * country_axis + own, 3 * capital_axis + own]
    for word in ("the", "a", "of"):
        keys.append(word)
        vectors.append(rng.normal(size=dim))
    matrix = np.array(vectors, dtype=np.float32)
    if scramble:
        matrix = rng.normal(size=matrix.shape).astype(np.float32)
    return EmbeddingTable(keys=keys, ids=np.arange(len(keys)), counts=np.ones(len(keys)), vectors=matrix,
                          manifest={"dim": dim, "method": "sgns"})


def test_word_structure_counts_the_planted_neighbours(corpus):
    planted = word_structure(_planted_table(corpus, scramble=False), corpus)
    assert planted["vet_animals"] == 5
    assert planted["country_neighbours_countries"] == planted["country_neighbours"] == 5 * len(corpus.capitals)
    assert planted["own_capital_nearest"] == planted["countries"] == len(corpus.capitals)
    scrambled = word_structure(_planted_table(corpus, scramble=True), corpus)
    assert scrambled["vet_animals"] <= 3
    assert scrambled["country_neighbours_countries"] < 0.5 * scrambled["country_neighbours"]
    assert scrambled["own_capital_nearest"] < 0.5 * scrambled["countries"]


def test_countries_capitals_picture_is_a_png(corpus, tmp_path):
    path = tmp_path / "countries_capitals.png"
    draw_countries_capitals(_planted_table(corpus, scramble=False), corpus, str(path))
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no partial file left behind
