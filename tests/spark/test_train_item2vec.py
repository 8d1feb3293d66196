"""`train --method item2vec`: SGNS over watch histories recovers the planted segments and recommends.

The planted watch log (:func:`embedpipe.demo.generator.generate_watch_log`) gives every movie an
audience (children/adult) and a style (blockbuster/arthouse); users mostly watch one segment. Each
user's last 2 movies are held out before `embedpipe histories`, so Recall@20 is measured on
movies the model never saw in that user's history. The table is trained with
``item2vec.export_output_vectors``, so the context vectors are checked too: against the trainer core run
on the same sequences, and as the second tower of a recommender.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

from embedpipe.cli import main
from embedpipe.demo.generator import generate_watch_log
from embedpipe.table import read_embedding_table

pytest.importorskip("torch")

ITEM2VEC = ["--method", "item2vec", "--dim", "8", "--set", "item2vec.epochs=5", "--device", "cpu", "--threads", "1",
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
    """The item2vec table (and its context vectors), trained twice into the same paths (idempotence)."""
    root, *_ = watched
    out, context = root / "table", root / "table-output"
    argv = ["train", "--input", str(root / "hist"), "--output", str(out), *ITEM2VEC,
            "--set", f"item2vec.export_output_vectors={context}"]
    assert main(argv) == 0
    first, first_context = read_embedding_table(str(out)), read_embedding_table(str(context))
    assert main(argv) == 0
    second = read_embedding_table(str(out))
    np.testing.assert_array_equal(first.vectors, second.vectors)
    np.testing.assert_array_equal(first_context.vectors, read_embedding_table(str(context)).vectors)
    assert first.keys == second.keys
    return second


@pytest.fixture(scope="module")
def context_table(trained, watched):
    """The context (output) vectors item2vec exported next to the table."""
    root, *_ = watched
    return read_embedding_table(str(root / "table-output"))


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
    assert params["window"] == 5 and params["epochs"] == 5 and params["step_size"] == 0.025
    assert params["input_kind"] == "histories" and params["processes"] == 1
    # item2vec's own settings only: no sgns subsampling, no paths
    assert "sample" not in params and "export_output_vectors" not in params
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


def _split_matrices(trained, train_log, held_log) -> tuple[np.ndarray, np.ndarray]:
    """(seen, held) users x items boolean matrices in the table's item order, users with a held-out item."""
    items = {key: i for i, key in enumerate(trained.keys)}
    users = {user: u for u, user in enumerate(sorted(train_log["user"].unique()))}
    seen = np.zeros((len(users), len(items)), dtype=bool)
    seen[train_log["user"].map(users), train_log["item"].map(items)] = True
    held_log = held_log[held_log["item"].isin(items)]
    held = np.zeros_like(seen)
    held[held_log["user"].map(users), held_log["item"].map(items)] = True
    keep = held.any(1)
    return seen[keep], held[keep]


def test_item2vec_recall_beats_popularity(trained, watched):
    _, _, train_log, held_log = watched
    seen, held = _split_matrices(trained, train_log, held_log)
    unit = trained.vectors / np.linalg.norm(trained.vectors, axis=1, keepdims=True)
    profile = seen.astype(np.float64) @ unit / seen.sum(1, keepdims=True)  # mean of the training items' vectors
    profile /= np.linalg.norm(profile, axis=1, keepdims=True)
    item2vec = _recall_at(20, profile @ unit.T, seen, held)
    popularity = _recall_at(20, np.broadcast_to(np.asarray(trained.counts, dtype=np.float64), seen.shape),
                            seen, held)
    assert item2vec > popularity + 0.03, (item2vec, popularity)  # 0.38 against 0.35 (drifting tastes)


def test_item2vec_context_vectors_are_the_trainer_cores(spark, trained, context_table, watched):
    """processes=1: the exported tables equal the trainer core's input and output matrices on the same input."""
    from embedpipe.jobconfig import TrainConfig
    from embedpipe.methods.inputs import read_training_input
    from embedpipe.methods.item2vec import item2vec_params
    from embedpipe.torchtrain import SGNSParams, encode_sentences, train_sgns

    root, *_ = watched
    assert context_table.keys == trained.keys and list(context_table.ids) == list(trained.ids)
    assert list(context_table.counts) == list(trained.counts) and context_table.dim == trained.dim
    assert context_table.manifest["method"] == "item2vec" and context_table.manifest["key_kind"] == "item"
    assert context_table.manifest["params"]["layer"] == "output (context vectors)"
    assert trained.manifest["params"]["layer"] == "input"
    assert not np.allclose(context_table.vectors, trained.vectors)

    data = read_training_input(spark, str(root / "hist"))
    sequences = data.sentences().orderBy("doc_id").select("tokens").toArrow().column(0)
    corpus = encode_sentences(sequences, pa.array(trained.keys))
    config = TrainConfig(input=str(root / "hist"), output=str(root / "unused"), method="item2vec", dim=8,
                         device="cpu", threads=1, seed=5,
                         settings={"epochs": 5, "export_output_vectors": str(root / "unused-output")})
    params = SGNSParams(**item2vec_params(config, 1, interactions=corpus.n_tokens))
    assert not params.tied  # two towers asked for: two matrices
    core = train_sgns(corpus, np.asarray(trained.counts, dtype=np.int64), params,
                      counts_total=corpus.n_tokens)
    np.testing.assert_allclose(trained.vectors, core.input_vectors, rtol=0, atol=1e-6)
    np.testing.assert_allclose(context_table.vectors, core.output_vectors, rtol=0, atol=1e-6)


def test_item2vec_default_table_is_tied_and_ranks_alone(watched, trained, tmp_path):
    """Without an output table the one matrix is both sides (manifest ``tied``): its table alone, the mean of a
    user's unit item vectors by cosine, ranks held-out movies above popularity, as the two towers do."""
    root, _, train_log, held_log = watched
    assert main(["train", "--input", str(root / "hist"), "--output", str(tmp_path / "tied"), *ITEM2VEC]) == 0
    tied = read_embedding_table(str(tmp_path / "tied"))
    assert tied.manifest["params"]["tied"] is True and trained.manifest["params"]["tied"] is False
    assert tied.keys == trained.keys and not np.allclose(tied.vectors, trained.vectors)
    seen, held = _split_matrices(tied, train_log, held_log)
    unit = tied.vectors / np.linalg.norm(tied.vectors, axis=1, keepdims=True)
    profile = seen.astype(np.float64) @ unit / seen.sum(1, keepdims=True)
    recall = _recall_at(20, profile @ unit.T, seen, held)
    popularity = _recall_at(20, np.broadcast_to(np.asarray(tied.counts, dtype=np.float64), seen.shape), seen, held)
    assert recall > popularity, (recall, popularity)


@pytest.mark.slow
def test_item2vec_tied_replicas_combine_one_matrix(watched, tmp_path):
    """Two replicas of the default (one-matrix) item2vec combine that matrix once per round, not as two: the
    table still ranks held-out movies above popularity."""
    root, _, train_log, held_log = watched
    out = tmp_path / "tied2"
    assert main(["train", "--input", str(root / "hist"), "--output", str(out), *ITEM2VEC, "--processes", "2",
                 "--master", "local[2]"]) == 0
    table = read_embedding_table(str(out))
    assert table.manifest["params"]["tied"] is True and table.manifest["params"]["processes"] == 2
    seen, held = _split_matrices(table, train_log, held_log)
    unit = table.vectors / np.linalg.norm(table.vectors, axis=1, keepdims=True)
    recall = _recall_at(20, (seen.astype(np.float64) @ unit / seen.sum(1, keepdims=True)) @ unit.T, seen, held)
    popularity = _recall_at(20, np.broadcast_to(np.asarray(table.counts, dtype=np.float64), seen.shape), seen, held)
    assert recall > popularity, (recall, popularity)


def test_item2vec_tied_with_an_output_table_is_refused(watched, tmp_path, capsys):
    root, *_ = watched
    out = tmp_path / "t"
    code = main(["train", "--input", str(root / "hist"), "--output", str(out), *ITEM2VEC, "--set", "item2vec.tied=true",
                 "--set", f"item2vec.export_output_vectors={tmp_path / 'o'}"])
    assert code != 0
    assert "config key 'item2vec.tied' leaves no second table to write" in capsys.readouterr().err
    assert not out.exists() and not (tmp_path / "o").exists()


def test_item2vec_context_vectors_score_conditional_probabilities(trained, context_table, watched):
    """SGNS learns in . out = PMI(w, c) - log k against noise ~ count^0.75, so mean(the user's input
    vectors) . context vector + 0.75 log count ranks like log P(item | history): well above popularity.
    The plain dot (no popularity term) favours rare items and lands near popularity here: the popularity
    term is what makes the context table useful for ranking."""
    _, _, train_log, held_log = watched
    seen, held = _split_matrices(trained, train_log, held_log)
    log_counts = np.log(np.asarray(trained.counts, dtype=np.float64))
    profile = seen.astype(np.float64) @ trained.vectors / seen.sum(1, keepdims=True)
    conditional = _recall_at(20, profile @ context_table.vectors.T + 0.75 * log_counts, seen, held)
    popularity = _recall_at(20, np.broadcast_to(log_counts, seen.shape), seen, held)
    assert conditional > popularity + 0.05, (conditional, popularity)


@given(st.integers(min_value=0, max_value=10**11), st.integers(min_value=0, max_value=10**11))
def test_default_epochs_reach_the_budget_and_shrink_with_the_log(small, large):
    from embedpipe.methods.item2vec import MAX_DEFAULT_EPOCHS, TARGET_INTERACTIONS, default_epochs

    small, large = sorted((small, large))
    epochs = default_epochs(small)
    assert 1 <= epochs <= MAX_DEFAULT_EPOCHS
    assert default_epochs(large) <= epochs  # a bigger log never gets more passes
    if small > 0 and epochs < MAX_DEFAULT_EPOCHS:
        assert small * epochs >= TARGET_INTERACTIONS  # enough passes to reach the budget ...
        assert epochs == 1 or small * (epochs - 1) < TARGET_INTERACTIONS  # ... and not one more


def test_item2vec_epochs_default_to_the_budget_and_a_set_value_wins(watched, trained, tmp_path, capsys):
    """Without item2vec.epochs the pass count follows the log's size (recorded in the manifest); a set value wins."""
    from embedpipe.methods.item2vec import default_epochs

    root, _, train_log, _ = watched
    assert trained.manifest["params"]["epochs"] == 5  # the fixture's item2vec.epochs=5
    at = ITEM2VEC.index("item2vec.epochs=5") - 1
    argv = ITEM2VEC[:at] + ITEM2VEC[at + 2:]
    capsys.readouterr()
    assert main(["train", "--input", str(root / "hist"), "--output", str(tmp_path / "auto"), *argv]) == 0
    expected = default_epochs(len(train_log))
    assert expected > 5  # a small log: more passes than the fixture's
    assert read_embedding_table(str(tmp_path / "auto")).manifest["params"]["epochs"] == expected
    assert f"{expected} pass(es) over {len(train_log)} training interactions" in capsys.readouterr().err


def test_export_output_vectors_refused_for_word2vec(watched, tmp_path, capsys):
    root, *_ = watched
    out, context = tmp_path / "table", tmp_path / "context"
    capsys.readouterr()
    assert main(["train", "--input", str(root / "hist"), "--output", str(out), "--method", "word2vec",
                 "--export-output-vectors", str(context)]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("embedpipe train: error:")]
    assert errors == ["embedpipe train: error: config key 'export_output_vectors' moved to the method sections "
                      "(sgns.export_output_vectors, item2vec.export_output_vectors, softmax.export_output_vectors); "
                      "method word2vec has no such setting"]
    assert main(["train", "--input", str(root / "hist"), "--output", str(out), "--method", "word2vec",
                 "--set", f"item2vec.export_output_vectors={context}"]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("embedpipe train: error:")]
    assert errors == ["embedpipe train: error: config key 'item2vec.export_output_vectors' is a setting of method "
                      "item2vec, but the method is word2vec"]
    assert not out.exists() and not context.exists()


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
