"""`train --method item2vec`: SGNS over watch histories recovers the planted segments and recommends.

The planted watch log (:func:`embedpipe.demo.generator.generate_watch_log`) gives every movie an
audience (children/adult) and a style (blockbuster/arthouse); users mostly watch one segment. Each
user's last 2 movies are held out before `embedpipe histories`, so Recall@20 is measured on
movies the model never saw in that user's history.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from embedpipe.cli import main
from embedpipe.demo.generator import generate_watch_log
from embedpipe.table import read_embedding_table

pytest.importorskip("torch")

ITEM2VEC = ["--method", "item2vec", "--dim", "8", "--epochs", "5", "--device", "cpu", "--threads", "1",
            "--seed", "5"]
HELD_OUT = 2


@pytest.fixture(scope="module")
def watched(tmp_path_factory):
    """(root, info, training log, held-out log) with each user's last 2 movies held out."""
    root = tmp_path_factory.mktemp("item2vec")
    info = generate_watch_log(root / "log.csv", users=800, seed=4, items=200)
    log = pd.read_csv(info.path)  # sorted by user, then time
    last = log.groupby("user").cumcount(ascending=False) < HELD_OUT
    log[~last].to_csv(root / "train.csv", index=False)
    assert main(["histories", "--input", str(root / "train.csv"), "--output", str(root / "hist"),
                 "--time-column", "timestamp"]) == 0
    return root, info, log[~last], log[last]


@pytest.fixture(scope="module")
def trained(watched):
    """The item2vec table, trained twice into the same path (idempotence: identical vectors)."""
    root, *_ = watched
    out = root / "table"
    argv = ["train", "--input", str(root / "hist"), "--output", str(out), *ITEM2VEC]
    assert main(argv) == 0
    first = read_embedding_table(str(out))
    assert main(argv) == 0
    second = read_embedding_table(str(out))
    np.testing.assert_array_equal(first.vectors, second.vectors)
    assert first.keys == second.keys
    return second


def _aligned(table, info):
    """Item metadata reordered to the table's rows."""
    position = {item: i for i, item in enumerate(info.items)}
    order = np.array([position[key] for key in table.keys])
    return info.segments[order], info.audience[order] == "adult", info.style[order] == "arthouse"


def test_item2vec_table_and_manifest(trained, watched):
    _, info, train_log, _ = watched
    assert trained.manifest["method"] == "item2vec" and trained.dim == 8
    assert trained.manifest["key_kind"] == "item" and trained.manifest["tokenizer"] is None
    params = trained.manifest["params"]
    assert params["window"] == 50 and params["shrink_window"] is False
    assert params["input_kind"] == "histories" and params["sample"] == 1e-3 and params["processes"] == 1
    assert set(trained.keys) == set(train_log["item"])
    counts = train_log["item"].value_counts()
    assert [int(c) for c in trained.counts] == [int(counts[k]) for k in trained.keys]
    assert np.isfinite(trained.vectors).all()


def test_item2vec_neighbours_share_the_planted_segment(trained, watched):
    _, info, *_ = watched
    segments, _, _ = _aligned(trained, info)
    unit = trained.vectors / np.linalg.norm(trained.vectors, axis=1, keepdims=True)
    similarity = unit @ unit.T
    np.fill_diagonal(similarity, -np.inf)
    nearest = np.argsort(-similarity, axis=1)[:, :10]
    purity = float((segments[nearest] == segments[:, None]).mean())
    assert purity >= 0.8, purity  # chance: 0.25


def test_item2vec_linear_probe_separates_planted_axes(trained, watched):
    _, info, *_ = watched
    _, adult, arthouse = _aligned(trained, info)
    features = np.hstack([trained.vectors, np.ones((len(trained.vectors), 1))])
    for labels in (adult, arthouse):
        weights, *_ = np.linalg.lstsq(features, np.where(labels, 1.0, -1.0), rcond=None)
        accuracy = float(((features @ weights > 0) == labels).mean())
        assert accuracy >= 0.9, accuracy


def _recall_at(k: int, scores: np.ndarray, seen: np.ndarray, held: np.ndarray) -> float:
    """Mean over users of |top-k unseen items ∩ held-out| / |held-out| (users x items arrays)."""
    scores = np.where(seen, -np.inf, scores)
    top = np.argpartition(-scores, k, axis=1)[:, :k]
    hits = np.take_along_axis(held, top, axis=1).sum(1)
    return float((hits / held.sum(1)).mean())


def test_item2vec_recall_beats_popularity(trained, watched):
    _, _, train_log, held_log = watched
    items = {key: i for i, key in enumerate(trained.keys)}
    users = {user: u for u, user in enumerate(sorted(train_log["user"].unique()))}
    seen = np.zeros((len(users), len(items)), dtype=bool)
    seen[train_log["user"].map(users), train_log["item"].map(items)] = True
    held_log = held_log[held_log["item"].isin(items)]
    held = np.zeros_like(seen)
    held[held_log["user"].map(users), held_log["item"].map(items)] = True
    keep = held.any(1)
    seen, held = seen[keep], held[keep]

    unit = trained.vectors / np.linalg.norm(trained.vectors, axis=1, keepdims=True)
    profile = seen.astype(np.float64) @ unit / seen.sum(1, keepdims=True)  # mean of the training items' vectors
    profile /= np.linalg.norm(profile, axis=1, keepdims=True)
    item2vec = _recall_at(20, profile @ unit.T, seen, held)
    popularity = _recall_at(20, np.broadcast_to(np.asarray(trained.counts, dtype=np.float64), seen.shape),
                            seen, held)
    assert item2vec > popularity + 0.05, (item2vec, popularity)


def test_item2vec_refuses_a_tokenize_input(spark, tmp_path, capsys):
    from embedpipe.jobconfig import TokenizeConfig
    from embedpipe.text.pipeline import run_tokenize

    corpus = tmp_path / "corpus.txt"
    corpus.write_text("영화 보고 싶다\nthe film was good\n", encoding="utf-8")
    tokens = tmp_path / "tokens"
    run_tokenize(spark, TokenizeConfig(input=str(corpus), output=str(tokens), min_count=1))
    out = tmp_path / "table"
    capsys.readouterr()
    assert main(["train", "--input", str(tokens), "--output", str(out), *ITEM2VEC]) == 2
    qualified = f"file:{tokens}"
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("embedpipe train: error:")]
    assert errors == [
        f"embedpipe train: error: method item2vec needs a histories output as input (sequences/ of items), but "
        f"{qualified} is a tokenize output; run `embedpipe histories` on the interaction log, or use method sgns "
        "for text"
    ]
    assert not out.exists()
