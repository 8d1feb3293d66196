"""Correctness of the SGNS trainer core: kernels vs a NumPy loop, sampling statistics, windows,
determinism, checkpoints, divergence. No Spark; every input is tiny and built here."""

from __future__ import annotations

import io
import logging
import sys
import threading

import numpy as np
import pyarrow as pa
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats

from embedpipe.config import build_config
from embedpipe.errors import ConfigError, EmptyResultError, InputError, TrainingDivergedError
from embedpipe.torchtrain import (
    IdCorpus,
    SGNSParams,
    encode_sentences,
    keep_probabilities,
    noise_distribution,
    train_sgns,
)
from embedpipe.torchtrain.batched_step import auto_batch_size, lr_scale, score_batch, sgns_step
from embedpipe.torchtrain.batching import NoiseSampler, SkipGramBatcher, WindowBatch, window_offsets
from embedpipe.torchtrain.model import CHECKPOINT_NAME
from embedpipe.torchtrain.pairwise_cpu import available as pairwise_available

# --- the step against an obviously correct NumPy loop -------------------------------------------


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + np.exp(-x))


def _bound_curvature(z: float) -> float:
    """A bound on the curvature tanh(z/2)/(2z) of the Jaakkola-Jordan quadratic bound of -log sigmoid."""
    bound = min(0.25, 1.0 / (2.0 * abs(z))) if z else 0.25
    assert bound >= (np.tanh(z / 2) / (2 * z) if z else 0.25) >= _sigmoid(z) * (1 - _sigmoid(z))
    return bound


def _capped(table, terms, lr):
    """Apply one matrix's terms (row, other vector, y - sigmoid(s), bound curvature) with the row cap:
    each row's summed update g times min(lr, 1 / H), H = sum of curvature * |other|^2.

    Returns the new table and the largest lr / rate (<= 1: plain SGD).
    """
    grad = np.zeros_like(table)
    for row, other, residual, _ in terms:
        grad[row] += residual * other
    bound = np.zeros(len(table))
    for row, other, _, curvature in terms:
        bound[row] += curvature * (other @ other)
    new, largest = table.copy(), 0.0
    for row in {t[0] for t in terms}:
        rate = min(lr, 1.0 / bound[row]) if bound[row] > 0 else lr
        new[row] += rate * grad[row]
        largest = max(largest, lr / rate)
    return new, largest


def reference_step(w_in, w_out, centers, contexts, mask, noise_targets, lr):
    """One SGNS step, pair by pair, all gradients from the same snapshot (float64).

    Each row's summed update is capped as :func:`_capped` says; a term scored MAX_EXP (6) or more
    away from 0 adds to neither. Returns the new matrices, the loss, the largest lr / rate (1 means
    the step was plain SGD) and the fraction of terms skipped.
    """
    w_in0, w_out0 = w_in.astype(np.float64), w_out.astype(np.float64)
    in_terms, out_terms = [], []
    loss, skipped, terms = 0.0, 0, 0
    for i in range(len(centers)):
        for j in range(contexts.shape[1]):
            if not mask[i, j]:
                continue
            c, o = centers[i], contexts[i, j]
            # input: the context; predict the center vs the window's noise words (word2vec)
            for out, label in [(c, 1)] + [(n, 0) for n in noise_targets[i]]:
                s = w_in0[o] @ w_out0[out]
                p = _sigmoid(s)
                loss -= np.log(p) if label else np.log(1.0 - p)
                terms += 1
                if abs(s) >= 6.0:
                    skipped += 1
                    continue
                curvature = _bound_curvature(s if label else -s)
                in_terms.append((o, w_out0[out], label - p, curvature))
                out_terms.append((out, w_in0[o], label - p, curvature))
    new_in, largest_in = _capped(w_in0, in_terms, lr)
    new_out, largest_out = _capped(w_out0, out_terms, lr)
    return new_in, new_out, loss, max(largest_in, largest_out), skipped / terms


@pytest.mark.parametrize("scale", [0.5, 2.0])
@pytest.mark.parametrize("lr", [0.1, 3.0])
def test_step_matches_numpy_reference(lr, scale):
    rng = np.random.default_rng(3)
    vocab, dim, window = 7, 4, 2
    # scale 2: scores of about +-8, so gensim's rule (MAX_EXP 6) skips many terms
    w_in = rng.normal(0, scale, (vocab, dim)).astype(np.float32)
    w_out = rng.normal(0, scale, (vocab, dim)).astype(np.float32)
    # three windows with repeated ids (rows hit several times) and padded contexts
    centers = np.array([1, 4, 1])
    contexts = np.array([[0, 2, 6, 3], [5, 1, 1, 2], [2, 0, 3, 3]])
    mask = np.array([[1, 1, 1, 0], [1, 1, 0, 0], [1, 1, 1, 1]], dtype=np.float32)
    noise_targets = np.array([[6, 2, 2], [0, 3, 1], [5, 5, 4]])
    expected_in, expected_out, expected_loss, largest_step, skipped = reference_step(
        w_in, w_out, centers, contexts, mask, noise_targets, lr
    )
    assert (skipped > 0) == (scale > 1.0) and skipped < 0.8  # the rule is exercised, and not every term skipped
    if scale < 1.0:
        assert (largest_step > 1.0) == (lr > 1.0)  # lr 0.1 is plain SGD; lr 3 exercises the row cap
    assert contexts.shape[1] == 2 * window
    t_in, t_out = torch.from_numpy(w_in.copy()), torch.from_numpy(w_out.copy())
    batch = WindowBatch(
        centers=torch.from_numpy(centers),
        contexts=torch.from_numpy(contexts),
        mask=torch.from_numpy(mask),
        noise_targets=torch.from_numpy(noise_targets),
    )
    loss = sgns_step(t_in, t_out, batch, lr)
    np.testing.assert_allclose(t_in.numpy(), expected_in, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(t_out.numpy(), expected_out, rtol=1e-5, atol=1e-5)
    assert float(loss) == pytest.approx(expected_loss, rel=1e-5)
    assert not np.allclose(expected_in, w_in) and not np.allclose(expected_out, w_out)  # the step did something


# --- sampling statistics -------------------------------------------------------------------------


def test_noise_follows_unigram_to_the_three_quarters():
    counts = np.array([1000, 400, 250, 90, 40, 10, 3, 1, 0, 7])
    expected = counts ** 0.75 / (counts ** 0.75).sum()
    np.testing.assert_allclose(noise_distribution(counts), expected)
    draws = NoiseSampler(expected).sample((200_000,), torch.Generator().manual_seed(5)).numpy()
    observed = np.bincount(draws, minlength=len(counts))
    assert observed[8] == 0  # a word never seen is never noise
    positive = counts > 0
    chi2 = stats.chisquare(observed[positive], expected[positive] * len(draws))
    assert chi2.pvalue > 1e-3, chi2


def test_noise_sampler_is_deterministic_per_generator():
    sampler = NoiseSampler(noise_distribution(np.arange(1, 50)))
    first = sampler.sample((1000,), torch.Generator().manual_seed(1))
    again = sampler.sample((1000,), torch.Generator().manual_seed(1))
    other = sampler.sample((1000,), torch.Generator().manual_seed(2))
    assert torch.equal(first, again) and not torch.equal(first, other)


def test_keep_probabilities_follow_word2vec_formula():
    counts = np.array([5000, 1000, 100, 10, 1, 0])
    sample = 1e-3
    threshold = sample * counts.sum()  # 6.111
    keep = keep_probabilities(counts, sample)
    for c, k in zip(counts[:-1], keep[:-1], strict=True):
        assert k == pytest.approx(min(1.0, (np.sqrt(c / threshold) + 1) * threshold / c))
    assert keep[-1] == 1.0 and keep[3] == 1.0 and keep[0] < 0.04
    np.testing.assert_array_equal(keep_probabilities(counts, 0.0), np.ones(6))


def _centers_of_epoch(batcher, seed=0):
    batches = list(batcher.epoch(torch.Generator().manual_seed(seed)))
    return batches, torch.cat([b.centers for b in batches]).numpy()


def test_subsampling_keeps_expected_fraction_per_word():
    rng = np.random.default_rng(0)
    vocab = 20
    p = 1.0 / np.arange(1, vocab + 1)
    tokens = rng.choice(vocab, size=200_000, p=p / p.sum())
    corpus = IdCorpus(tokens, np.arange(0, len(tokens) + 1, 100))
    counts = corpus.counts(vocab)
    keep = keep_probabilities(counts, 1e-2)
    assert keep.min() < 0.5 and keep.max() == 1.0
    batcher = SkipGramBatcher(
        corpus, keep, NoiseSampler(noise_distribution(counts)), window=2, negative=1, batch_size=4096
    )
    _, centers = _centers_of_epoch(batcher)
    kept = np.bincount(centers, minlength=vocab)
    sd = np.sqrt(counts * keep * (1 - keep)) + 1
    assert np.all(np.abs(kept - counts * keep) < 5 * sd), (kept, counts * keep)


# --- windows -------------------------------------------------------------------------------------


def test_dynamic_window_pair_counts_per_distance():
    n, window = 60_000, 4
    corpus = IdCorpus(np.arange(n), np.array([0, n]))  # one sentence, id == position
    counts = np.ones(n)
    batcher = SkipGramBatcher(
        corpus, np.ones(n), NoiseSampler(noise_distribution(counts)), window=window, negative=1, batch_size=5000
    )
    batches, centers = _centers_of_epoch(batcher)
    np.testing.assert_array_equal(np.sort(centers), np.arange(n))  # every token is a center once
    offsets = window_offsets(window)
    per_offset = np.zeros(2 * window)
    for b in batches:  # a batch holds windows of one shrunk width: its first 2 * width offsets
        per_offset[: b.mask.shape[1]] += b.mask.sum(0).numpy()
    assert {b.mask.shape[1] for b in batches} == {2, 4, 6, 8}
    for col, delta in enumerate(offsets):
        d = abs(delta)
        expected = (n - d) * (window - d + 1) / window  # P(shrunk window >= d) = (window - d + 1) / window
        sd = np.sqrt(expected * (1 - (window - d + 1) / window)) + 1
        assert abs(per_offset[col] - expected) < 5 * sd, (delta, per_offset[col], expected)
    for b in batches:  # every valid context sits at its column's offset from the center
        valid = b.mask.bool()
        diffs = (b.contexts - b.centers[:, None])[valid]
        cols = torch.as_tensor(offsets[: b.contexts.shape[1]]).expand_as(b.contexts)[valid]
        assert torch.equal(diffs, cols)


def test_windows_stop_at_sentence_boundaries_and_subsampled_words():
    lengths = [1, 3, 2, 7, 1, 5]
    n = sum(lengths)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    sentence_of = np.repeat(np.arange(len(lengths)), lengths)
    corpus = IdCorpus(np.arange(n), offsets)
    keep = np.where(np.arange(n) % 4 == 1, 0.0, 1.0)  # ids 1, 5, 9, ... are always dropped
    batcher = SkipGramBatcher(corpus, keep, NoiseSampler(np.ones(n) / n), window=3, negative=2, batch_size=4)
    for seed in range(5):
        batches, centers = _centers_of_epoch(batcher, seed)
        np.testing.assert_array_equal(np.sort(centers), np.flatnonzero(keep))
        for b in batches:
            assert b.noise_targets.shape == (b.size, 2) and b.noise_seed is None
            rows, cols = torch.nonzero(b.mask, as_tuple=True)
            ctx, ctr = b.contexts[rows, cols].numpy(), b.centers[rows].numpy()
            assert np.all(sentence_of[ctx] == sentence_of[ctr])
            assert np.all(keep[ctx] == 1.0)
            # distance counts only kept words, as word2vec does
            kept_rank = np.cumsum(keep) - 1
            assert np.all(np.abs(kept_rank[ctx] - kept_rank[ctr]) <= 3)


def test_full_windows_make_every_pair_within_window_a_positive_once():
    """item2vec (shrink_window=False): each ordered pair at distance <= window in a sentence, exactly once."""
    lengths = [3, 9, 1, 6]
    n = sum(lengths)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    sentence_of = np.repeat(np.arange(len(lengths)), lengths)
    corpus = IdCorpus(np.arange(n), offsets)
    window = 4
    batcher = SkipGramBatcher(
        corpus, np.ones(n), NoiseSampler(np.ones(n) / n), window=window, negative=2, batch_size=5,
        shrink_window=False,
    )
    batches, centers = _centers_of_epoch(batcher)
    np.testing.assert_array_equal(np.sort(centers), np.arange(n))
    assert all(b.contexts.shape[1] == 2 * window and b.size <= 5 for b in batches)
    pairs = sorted(
        (int(c), int(o)) for b in batches for c, o in zip(*(b.centers[:, None].expand_as(b.contexts)[b.mask.bool()],
                                                           b.contexts[b.mask.bool()]), strict=True)
    )
    expected = sorted(
        (c, o) for c in range(n) for o in range(n)
        if c != o and sentence_of[c] == sentence_of[o] and abs(c - o) <= window
    )
    assert pairs == expected


def test_counts_total_checks_the_counts_against_all_replicas_tokens(caplog):
    corpus = _random_corpus(4)
    counts = corpus.counts(40) * 2  # this "replica" holds half of the corpus the counts describe
    with caplog.at_level("WARNING", logger="embedpipe.torchtrain.sgns_train"):
        _train(corpus, counts, params=_params(epochs=1), counts_total=2 * corpus.n_tokens)
    assert "word counts sum to" not in caplog.text
    with caplog.at_level("WARNING", logger="embedpipe.torchtrain.sgns_train"):
        _train(corpus, counts, params=_params(epochs=1), counts_total=3 * corpus.n_tokens)
    expected = f"word counts sum to {2 * corpus.n_tokens} but the replicas' corpora have {3 * corpus.n_tokens}"
    assert expected in caplog.text


# --- training loop -------------------------------------------------------------------------------


KERNELS = [
    "batched", pytest.param("pairwise", marks=pytest.mark.skipif(not pairwise_available(), reason="needs numba")),
]


def _random_corpus(seed=0, vocab=40, sentences=300, length=12):
    rng = np.random.default_rng(seed)
    p = 1.0 / np.arange(1, vocab + 1)
    tokens = rng.choice(vocab, size=sentences * length, p=p / p.sum())
    return IdCorpus(tokens, np.arange(0, len(tokens) + 1, length))


def _params(**overrides):
    values = dict(dim=8, window=3, negative=3, sample=1e-2, epochs=2, seed=11, device="cpu", threads=1)
    values.update(overrides)
    return SGNSParams(**values)


def _train(corpus, counts=None, *, params=None, kernel="batched", batch_size=64, **kwargs):
    """train_sgns on tiny settings; the batched step (the CUDA fallback) at 64 windows per step unless a
    test asks for the pairwise kernel (through the trainer's test hooks, not settings)."""
    return train_sgns(corpus, counts, params or _params(), _kernel=kernel, _batch_size=batch_size, **kwargs)


@pytest.mark.parametrize("kernel", KERNELS)
def test_same_seed_gives_identical_vectors(kernel):
    corpus = _random_corpus()
    first = _train(corpus, kernel=kernel)
    second = _train(corpus, kernel=kernel)
    other = _train(corpus, params=_params(seed=12), kernel=kernel)
    np.testing.assert_array_equal(first.input_vectors, second.input_vectors)
    np.testing.assert_array_equal(first.output_vectors, second.output_vectors)
    assert first.epoch_losses == second.epoch_losses
    assert not np.array_equal(first.input_vectors, other.input_vectors)
    assert first.input_vectors.dtype == np.float32 and first.input_vectors.shape == (40, 8)
    assert first.words == 2 * corpus.n_tokens and first.pairs > 0 and first.kernel == kernel


@pytest.mark.parametrize("kernel", KERNELS)
def test_worker_threads_do_not_change_the_vectors(kernel):
    corpus = _random_corpus(5)
    one = _train(corpus, params=_params(threads=1), kernel=kernel)
    two = _train(corpus, params=_params(threads=2), kernel=kernel)
    three = _train(corpus, params=_params(threads=3), kernel=kernel)
    for other in (two, three):
        np.testing.assert_array_equal(one.input_vectors, other.input_vectors)
        np.testing.assert_array_equal(one.output_vectors, other.output_vectors)
        assert one.epoch_losses == other.epoch_losses


@pytest.mark.parametrize("kernel", KERNELS)
def test_hogwild_workers_train_like_lock_step(kernel):
    corpus = _random_corpus(6, sentences=600)
    lock_step = _train(corpus, params=_params(threads=2), kernel=kernel)
    hogwild = _train(corpus, params=_params(threads=2, deterministic=False), kernel=kernel)
    assert np.all(np.isfinite(hogwild.input_vectors)) and hogwild.pairs == lock_step.pairs
    np.testing.assert_allclose(hogwild.epoch_losses, lock_step.epoch_losses, rtol=0.05)


class _Interrupted(Exception):
    pass


@pytest.mark.parametrize("kernel", KERNELS)
def test_resume_from_checkpoint_matches_uninterrupted_run(tmp_path, kernel):
    corpus = _random_corpus(1)
    counts = corpus.counts(40)
    straight = _train(corpus, counts, kernel=kernel, checkpoint_dir=tmp_path / "a")

    def stop_after_first_epoch(report):
        if report.epoch_end and report.epoch == 1:
            raise _Interrupted

    with pytest.raises(_Interrupted):
        _train(corpus, counts, kernel=kernel, checkpoint_dir=tmp_path / "b", progress=stop_after_first_epoch)
    saved = torch.load(tmp_path / "b" / CHECKPOINT_NAME, weights_only=True)
    assert saved["epoch"] == 1 and set(saved) >= {"w_in", "w_out", "params", "step", "epoch_losses"}
    resumed = _train(corpus, counts, kernel=kernel, checkpoint_dir=tmp_path / "b", resume=True)
    np.testing.assert_array_equal(straight.input_vectors, resumed.input_vectors)
    np.testing.assert_array_equal(straight.output_vectors, resumed.output_vectors)
    assert resumed.epoch_losses == straight.epoch_losses
    assert resumed.words == corpus.n_tokens  # only the second epoch ran


@pytest.mark.parametrize("kernel", KERNELS)
def test_tied_trains_one_matrix_as_both_sides_and_resumes_tied(tmp_path, kernel):
    """tied: the output vectors are the input ones (one matrix, started random), through a checkpoint too."""
    corpus = _random_corpus(3)
    counts = corpus.counts(40)
    params = _params(tied=True)
    straight = _train(corpus, counts, params=params, kernel=kernel, checkpoint_dir=tmp_path / "a")
    np.testing.assert_array_equal(straight.input_vectors, straight.output_vectors)
    untied = _train(corpus, counts, kernel=kernel)
    assert not np.allclose(straight.input_vectors, untied.input_vectors)
    assert straight.epoch_losses[-1] < straight.epoch_losses[0]  # it learns

    def stop_after_first_epoch(report):
        if report.epoch_end and report.epoch == 1:
            raise _Interrupted

    with pytest.raises(_Interrupted):
        _train(corpus, counts, params=params, kernel=kernel, checkpoint_dir=tmp_path / "b",
               progress=stop_after_first_epoch)
    resumed = _train(corpus, counts, params=params, kernel=kernel, checkpoint_dir=tmp_path / "b", resume=True)
    np.testing.assert_array_equal(straight.input_vectors, resumed.input_vectors)
    np.testing.assert_array_equal(resumed.input_vectors, resumed.output_vectors)
    with pytest.raises(ConfigError, match="config key 'tied' is False but checkpoint .* was trained with True"):
        _train(corpus, counts, kernel=kernel, checkpoint_dir=tmp_path / "b", resume=True)


def test_resume_refuses_a_checkpoint_from_other_settings(tmp_path):
    corpus = _random_corpus(2)
    _train(corpus, params=_params(epochs=1), checkpoint_dir=tmp_path)
    with pytest.raises(ConfigError, match="config key 'window' is 4 but checkpoint .* was trained with 3"):
        _train(corpus, params=_params(window=4), checkpoint_dir=tmp_path, resume=True)


def test_resume_refuses_a_checkpoint_of_the_former_format(tmp_path):
    # v1 checkpoints may have trained with a removed experiment setting (e.g. max_exp 0): never reinterpreted
    corpus = _random_corpus(2)
    _train(corpus, params=_params(epochs=1), checkpoint_dir=tmp_path)
    path = tmp_path / CHECKPOINT_NAME
    saved = torch.load(path, weights_only=True)
    saved["format"] = "embedpipe.sgns.checkpoint.v1"
    saved["params"]["max_exp"] = 0.0
    torch.save(saved, path)
    with pytest.raises(InputError, match=r"was written by another embedpipe version \(format embedpipe.sgns.checkpoint"
                                         r".v1, this one reads embedpipe.sgns.checkpoint.v2\); start without resume"):
        _train(corpus, params=_params(epochs=2), checkpoint_dir=tmp_path, resume=True)


def test_resume_without_checkpoint_starts_fresh(tmp_path):
    corpus = _random_corpus(3)
    fresh = _train(corpus, params=_params(epochs=1))
    resumed = _train(corpus, params=_params(epochs=1), checkpoint_dir=tmp_path, resume=True)
    np.testing.assert_array_equal(fresh.input_vectors, resumed.input_vectors)


def test_huge_learning_rate_is_capped_not_divergent():
    # the row cap bounds every row's step by the minimum of a quadratic bound of the batch loss, whatever lr is
    result = _train(_random_corpus(), params=_params(lr=1e30))
    assert np.all(np.isfinite(result.input_vectors)) and np.all(np.isfinite(result.output_vectors))
    assert np.all(np.isfinite(result.epoch_losses))


def test_nan_during_training_raises_training_diverged(monkeypatch):
    import embedpipe.torchtrain.sgns_train as train_module

    calls = []

    def poisoned_score_batch(w_in, w_out, batch):
        calls.append(1)
        if len(calls) == 20:
            w_in[batch.contexts[0, 0]] = float("nan")
        return score_batch(w_in, w_out, batch)

    monkeypatch.setattr(train_module, "score_batch", poisoned_score_batch)
    threads_before = threading.active_count()
    message = (r"^SGNS training diverged: the loss became nan in epoch 1/2 at step \d+ \(learning rate [\d.]+\); "
               r"lower the initial learning rate \(now 0.05\)")
    with pytest.raises(TrainingDivergedError, match=message) as err:
        _train(_random_corpus(), params=_params(threads=2))
    assert err.value.param == "lr" and "config key" not in str(err.value)  # the caller names its own key
    assert threading.active_count() == threads_before  # the batch prefetcher and workers are gone


def test_nan_in_the_weights_raises_training_diverged(tmp_path):
    corpus = _random_corpus(4)
    _train(corpus, params=_params(epochs=1), checkpoint_dir=tmp_path)
    path = tmp_path / CHECKPOINT_NAME
    state = torch.load(path, weights_only=True)
    state["w_in"][3, 0] = float("nan")
    torch.save(state, path)
    with pytest.raises(TrainingDivergedError, match="loss became nan in epoch 2/2"):
        _train(corpus, params=_params(epochs=2), checkpoint_dir=tmp_path, resume=True)


def test_progress_is_logged_with_rates(caplog):
    reports = []
    with caplog.at_level(logging.INFO, logger="embedpipe.torchtrain.epochs"):
        _train(_random_corpus(), params=_params(epochs=1), batch_size=16, progress=reports.append, log_interval=0.0)
    assert any("words/s" in r.message and "% done" in r.message and "ETA" in r.message for r in caplog.records)
    assert reports[-1].epoch_end and reports[-1].fraction_done == 1.0
    assert all(np.isfinite(r.loss) for r in reports) and len(reports) > 2


def test_progress_bar_only_on_a_terminal(monkeypatch):
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    terminal, pipe = Terminal(), io.StringIO()
    monkeypatch.setattr(sys, "stderr", terminal)
    _train(_random_corpus(), params=_params(epochs=1))
    monkeypatch.setattr(sys, "stderr", pipe)
    _train(_random_corpus(), params=_params(epochs=1))
    assert "\r[" in terminal.getvalue() and "100.0% epoch 1/1" in terminal.getvalue()
    assert "\r[" not in pipe.getvalue(), "no progress bar when stderr is not a terminal"


@pytest.mark.skipif(not pairwise_available(), reason="needs numba")
def test_the_cpu_default_is_the_pairwise_kernel_at_word2vecs_learning_rate():
    corpus = _random_corpus(sentences=3000)
    reports = []
    result = train_sgns(corpus, None, _params(epochs=1), progress=reports.append, log_interval=0)
    assert result.kernel == "pairwise" and result.batch_size == 1024  # a unit of work, not a step size
    assert reports[0].lr == pytest.approx(_params().lr, rel=0.05)  # unscaled


def test_bad_inputs_and_params_are_named():
    with pytest.raises(ConfigError, match="config key 'dim' must be >= 1, got 0"):
        SGNSParams(dim=0)
    with pytest.raises(ConfigError, match="config key 'min_lr' must be <= lr"):
        SGNSParams(lr=0.01, min_lr=0.1)
    with pytest.raises(ConfigError, match="config key 'lr' must be a finite number, got inf"):
        SGNSParams(lr=float("inf"))
    for removed in ("max_exp", "step_cap", "negative_mode", "batch_size", "cpu_kernel", "cuda_kernel", "objective"):
        with pytest.raises(TypeError, match=removed):  # experiment settings are gone, not ignored
            SGNSParams(**{removed: 1})
    assert SGNSParams().seed == 42  # the job's default too
    # the params are a regular embedpipe config section: text values from --set are typed and checked
    keys = {"dim": "16", "deterministic": "false", "threads": "2"}
    assert build_config(SGNSParams, keys, from_text_keys=frozenset(keys)) == SGNSParams(
        dim=16, deterministic=False, threads=2
    )
    corpus = _random_corpus()
    with pytest.raises(InputError, match="uses token id 39 but counts has only 10 entries"):
        _train(corpus, np.ones(10))
    with pytest.raises(EmptyResultError, match="no tokens"):
        _train(IdCorpus.from_id_lists([[], []]), np.ones(3))
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="config key 'device' is 'cuda'"):
            _train(corpus, params=_params(device="cuda"))


# --- encoding token lists ------------------------------------------------------------------------


def test_encode_sentences_from_lists_and_arrow():
    vocab = {"서울": 2, "the": 0, "cat": 1, "é": 3}
    lists = [["the", "cat", "dog", "서울"], [], ["dog"], ["é", "the"]]
    corpus = encode_sentences(lists, vocab)
    np.testing.assert_array_equal(corpus.tokens, [0, 1, 2, 3, 0])
    np.testing.assert_array_equal(corpus.offsets, [0, 3, 3, 3, 5])
    arrow = pa.array(lists + [None, ["cat", None]], type=pa.large_list(pa.large_string()))
    from_arrow = encode_sentences(pa.chunked_array([arrow[:2], arrow[2:]]), vocab)
    np.testing.assert_array_equal(from_arrow.tokens, [0, 1, 2, 3, 0, 1])
    np.testing.assert_array_equal(from_arrow.offsets, [0, 3, 3, 3, 5, 5, 6])
    sliced = encode_sentences(arrow[3:], vocab)  # an Arrow slice keeps its parent's offsets
    np.testing.assert_array_equal(sliced.tokens, [3, 0, 1])
    np.testing.assert_array_equal(sliced.offsets, [0, 2, 2, 3])
    assert encode_sentences(pa.array([], type=pa.list_(pa.string())), vocab).n_tokens == 0
    with pytest.raises(InputError, match="vocabulary ids must be exactly 0..1"):
        encode_sentences(lists, {"a": 0, "b": 5})
    with pytest.raises(InputError, match="must be a list<string> array, got int64"):
        encode_sentences(pa.array([1, 2]), vocab)


def test_id_corpus_validates_and_concatenates():
    a = IdCorpus.from_id_lists([[1, 2], [3]])
    b = IdCorpus.from_id_lists([[4], [], [5, 6]])
    joined = IdCorpus.concat([a, b])
    np.testing.assert_array_equal(joined.tokens, [1, 2, 3, 4, 5, 6])
    np.testing.assert_array_equal(joined.offsets, [0, 2, 3, 4, 4, 6])
    np.testing.assert_array_equal(joined.sentence_ids(), [0, 0, 1, 2, 4, 4])
    with pytest.raises(InputError, match="offsets must be 1-D, start at 0 and end at len"):
        IdCorpus(np.array([1, 2]), np.array([0, 1]))


@given(st.integers(min_value=0, max_value=10**10))
def test_auto_batch_size_is_a_power_of_two_in_range_that_grows_with_the_corpus(tokens):
    size = auto_batch_size(tokens)
    assert 1024 <= size <= 65536 and size & (size - 1) == 0
    assert auto_batch_size(tokens * 2) >= size


def test_auto_batch_size_on_the_benchmark_corpora():
    # the two corpora the rule was measured on (docs/decisions.md, "batch_size")
    assert auto_batch_size(452_944) == 16384  # gensim's Wikipedia excerpt
    assert auto_batch_size(24_000_181) == 65536  # the 2M-document demo corpus
    assert auto_batch_size(3_600) == 1024  # a tiny corpus keeps CPU-sized steps


def test_the_batched_step_sizes_its_batches_from_the_corpus_and_scales_the_learning_rate():
    corpus = _random_corpus(sentences=3000)  # 36,000 tokens -> 1,024 windows per step
    reports = []
    result = _train(corpus, params=_params(epochs=1), batch_size=None, progress=reports.append, log_interval=0)
    assert result.batch_size == auto_batch_size(corpus.n_tokens) == 1024 and result.kernel == "batched"
    lr = _params().lr
    assert reports[0].lr == pytest.approx(lr, rel=0.05)  # <= 1,024 windows: lr as given
    reports.clear()
    result = _train(corpus, params=_params(epochs=1), batch_size=4096, progress=reports.append, log_interval=0)
    assert result.batch_size == 4096
    assert reports[0].lr == pytest.approx(lr * lr_scale(4096), rel=0.05) and lr_scale(4096) == 2.0
    assert reports[-1].lr == pytest.approx(2.0 * 1e-4, rel=0.5)  # min_lr is scaled too
