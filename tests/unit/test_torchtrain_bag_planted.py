"""The bag models recover planted structure (Spark-free, a few seconds each).

* softmax on the planted watch log (2,000 users, 400 movies): at dim 8 and dim 2 it beats item
  popularity on Recall@20 with each user's last 2 watched items held out (users scored by the model
  itself, which, having no output bias, is the two exported tables' score: mean of their training
  items' input vectors . output vectors), and a linear probe on the 8-D item vectors (2-D: after one
  ReLU layer of 16) separates children/adult and blockbuster/arthouse;
* regression on the planted listings (3,000): far better than the mean predictor, and the planted
  price words have the largest effects (``BagModelResult.word_effects``: the mean d price / d count).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pytest

from embedpipe.demo.generator import generate_listings, generate_watch_log
from embedpipe.torchtrain import BagCorpus, BagModelParams, encode_bags, train_bag_model

K = 20



@pytest.fixture(scope="module")
def watch_split(tmp_path_factory):
    """(info, training corpus of every user's items but the last 2, the held-out 2 per user)."""
    info = generate_watch_log(tmp_path_factory.mktemp("watch") / "watch.csv", users=2000, seed=3)
    table = pcsv.read_csv(info.path)  # sorted by user, then time
    users = table["user"].to_numpy(zero_copy_only=False)
    starts = np.flatnonzero(np.r_[True, users[1:] != users[:-1]])
    offsets = np.append(starts, len(users))
    ids = encode_bags([[x] for x in table["item"].to_pylist()], list(info.items)).ids  # one key per row
    held = np.zeros(len(ids), dtype=bool)
    held[offsets[1:] - 1] = held[offsets[1:] - 2] = True
    lengths = np.diff(offsets) - 2
    train = BagCorpus(np.concatenate([[0], np.cumsum(lengths)]), ids[~held])
    return info, train, ids[held].reshape(-1, 2)


def recall_at_k(scores: np.ndarray, train: BagCorpus, test: np.ndarray, k: int = K) -> float:
    """Share of held-out items in each user's top k (seen items excluded), averaged over users."""
    scores = scores.astype(np.float64, copy=True)
    scores[np.repeat(np.arange(train.n_rows), train.lengths()), train.ids] = -np.inf
    top = np.argpartition(-scores, k, axis=1)[:, :k]
    return float((top[:, :, None] == test[:, None, :]).any(axis=1).mean())


def user_profiles(vectors: np.ndarray, train: BagCorpus) -> np.ndarray:
    """Mean of each user's training-item vectors."""
    rows = np.repeat(np.arange(train.n_rows), train.lengths())
    sums = np.zeros((train.n_rows, vectors.shape[1]))
    np.add.at(sums, rows, vectors[train.ids])
    return sums / train.lengths()[:, None]


def probe_accuracy(vectors: np.ndarray, labels: np.ndarray) -> float:
    """Held-out accuracy of a least-squares linear classifier (2 folds, seeded), averaged."""
    y = np.where(labels == labels[0], 1.0, -1.0)
    x = np.hstack([vectors, np.ones((len(vectors), 1))])
    folds = np.array_split(np.random.default_rng(0).permutation(len(x)), 2)
    accuracies = []
    for fit, held in (folds, folds[::-1]):
        w = np.linalg.lstsq(x[fit], y[fit], rcond=None)[0]
        accuracies.append(np.mean((x[held] @ w > 0) == (y[held] > 0)))
    return float(np.mean(accuracies))


@pytest.mark.parametrize("dim", [8, 2])
def test_softmax_beats_popularity_and_recovers_the_axes(watch_split, dim):
    info, train, test = watch_split
    counts = train.counts(len(info.items))
    params = BagModelParams(dim=dim, epochs=15, lr=0.02, batch_size=128, seed=1, device="cpu")
    result = train_bag_model(train, counts, params)
    assert result.epoch_losses[-1] < result.epoch_losses[0] < np.log(len(info.items))

    popularity = recall_at_k(np.tile(counts, (train.n_rows, 1)), train, test)
    scores = user_profiles(result.input_vectors, train) @ result.output_vectors.T
    recall = recall_at_k(scores, train, test)
    # The temporal holdout of a drifting taste is harder at 2-D (0.279 against 0.248 at seed 3).
    assert recall > popularity + (0.04 if dim == 8 else 0.02), (recall, popularity)

    audience = probe_accuracy(result.input_vectors, info.audience)
    style = probe_accuracy(result.input_vectors, info.style)
    if dim == 8:
        assert audience >= 0.9 and style >= 0.9, (audience, style)
    else:
        # 2-D: without hidden layers one of the two dimensions goes to popularity on the long-tailed
        # log and one axis is then left at chance for some seeds (0.49-0.83 over data seeds 3-4 and
        # training seeds 1-4); with hidden=(16,) both axes come out every time (0.83-0.91).
        assert max(audience, style) >= 0.9, (audience, style)
        hidden = train_bag_model(train, counts, dataclasses.replace(params, hidden=(16,))).input_vectors
        audience, style = probe_accuracy(hidden, info.audience), probe_accuracy(hidden, info.style)
        assert audience >= 0.8 and style >= 0.8, (audience, style)


def test_sampled_softmax_also_learns_the_axes(watch_split):
    info, train, test = watch_split
    counts = train.counts(len(info.items))
    params = BagModelParams(dim=8, epochs=15, lr=0.02, batch_size=128, sampled=50, seed=1, device="cpu")
    result = train_bag_model(train, counts, params)
    scores = user_profiles(result.input_vectors, train) @ result.output_vectors.T
    assert recall_at_k(scores, train, test) > recall_at_k(np.tile(counts, (train.n_rows, 1)), train, test)
    assert probe_accuracy(result.input_vectors, info.audience) >= 0.9
    assert probe_accuracy(result.input_vectors, info.style) >= 0.9


def test_regression_finds_the_price_words(tmp_path):
    info = generate_listings(tmp_path / "listings.csv", listings=3000, seed=5)
    table = pcsv.read_csv(info.path)
    tokens = pc.split_pattern(table["text"], " ")
    vocab = sorted(set(pc.list_flatten(tokens).to_pylist()))
    corpus = encode_bags(tokens, vocab, targets=table["price"])
    params = BagModelParams(
        objective="regression", dim=8, combiner="sum", epochs=20, lr=0.02, batch_size=64, seed=1, device="cpu"
    )
    result = train_bag_model(corpus, None, params)
    m = result.metrics
    assert m["validation_rows"] == 300
    assert m["rmse"] < 0.2 * m["mean_rmse"], m
    assert m["rmse"] < 2 * info.noise_sd and m["ridge_rmse"] < 2 * info.noise_sd, m

    effects = dict(zip(vocab, result.word_effects.tolist(), strict=True))
    # Bedroom counts ("1".."4") are planted too; every other word but the effect words is neutral.
    words = [w for w in vocab if not w.isdigit() and w != "bedroom"]
    top = sorted(words, key=lambda w: -abs(effects[w]))[: len(info.effects)]
    assert set(top) == set(info.effects)
    for word, planted in info.effects.items():
        assert effects[word] == pytest.approx(planted, abs=10), (word, effects[word], planted)
