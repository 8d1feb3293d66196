"""The pairwise CPU kernel (word2vec's per-pair SGD, compiled): against a plain NumPy loop and
autograd, its per-pair noise batches, and how the training loop uses it. No Spark; tiny inputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats

from embedpipe.errors import ConfigError, TrainingDivergedError
from embedpipe.torchtrain import IdCorpus, SGNSParams, train_sgns
from embedpipe.torchtrain import pairwise_cpu as pairwise
from embedpipe.torchtrain.batching import NoiseSampler, SkipGramBatcher, WindowBatch
from embedpipe.torchtrain.sgns_train import choose_kernel

pytestmark = pytest.mark.skipif(not pairwise.available(), reason="the pairwise kernel needs numba")


def reference_windows(w_in, w_out, centers, contexts, mask, noise, negative, lr):
    """Pair after pair in window order, in float64, consuming ``noise`` in order: for each valid
    (center, context), input the context and positive the center, with the next ``negative`` noise
    words. SGD on -log sigmoid(u.v) for the positive and -log sigmoid(-u.v) per noise word (a noise
    word equal to the positive is skipped); every score of a pair is taken before any of its rows
    move, then each output row moves by its term and the input row by the sum of its terms; a term
    scored 6 (word2vec's MAX_EXP) or more away from 0 moves nothing. Returns the new matrices, the
    summed loss and the fraction of terms skipped."""
    w_in, w_out = w_in.astype(np.float64), w_out.astype(np.float64)
    draws = iter(noise.tolist())
    loss, skipped, terms_seen = 0.0, 0, 0
    for i in range(len(centers)):
        for j in range(contexts.shape[1]):
            if mask[i, j] == 0:
                continue
            row, positive = contexts[i, j], centers[i]
            u = w_in[row].copy()
            change = np.zeros_like(u)
            words = [next(draws) for _ in range(negative)]
            terms = [(positive, 1.0)] + [(n, 0.0) for n in words if n != positive]
            scores = [u @ w_out[out] for out, _ in terms]  # all from the rows as the pair found them
            for (out, label), score in zip(terms, scores, strict=True):
                probability = 1.0 / (1.0 + np.exp(-score))
                loss -= mask[i, j] * (np.log(probability) if label else np.log(1.0 - probability))
                terms_seen += 1
                if abs(score) >= 6.0:
                    skipped += 1
                    continue
                gradient = mask[i, j] * lr * (label - probability)
                change += gradient * w_out[out]
                w_out[out] += gradient * u
            w_in[row] += change
    return w_in, w_out, loss, skipped / max(terms_seen, 1)


def _noise_tables(vocab: int, seed: int = 0):
    probabilities = np.random.default_rng(seed).random(vocab) + 0.05
    sampler = NoiseSampler(probabilities / probabilities.sum())
    return sampler, probabilities / probabilities.sum()


def _random_windows(seed: int, vocab: int = 7, dim: int = 5, windows: int = 12, width: int = 4, scale: float = 0.5):
    rng = np.random.default_rng(seed)
    w_in = torch.tensor(rng.normal(0, scale, (vocab, dim)), dtype=torch.float32)
    w_out = torch.tensor(rng.normal(0, scale, (vocab, dim)), dtype=torch.float32)
    mask = torch.tensor(rng.random((windows, width)) > 0.2, dtype=torch.float32)  # padding pairs: weight 0
    batch = WindowBatch(torch.tensor(rng.integers(0, vocab, windows)),
                        torch.tensor(rng.integers(0, vocab, (windows, width))), mask, noise_seed=seed + 100)
    return w_in, w_out, batch


@pytest.mark.parametrize("scale", [0.5, 1.5])
@pytest.mark.parametrize("seed", [0, 1])
def test_step_matches_the_numpy_loop(seed, scale):
    w_in, w_out, batch = _random_windows(seed, scale=scale)
    sampler, _ = _noise_tables(7)
    step = pairwise.PairwiseStep(sampler.accept, sampler.alias, 3)
    pairs = int(batch.mask.sum())
    noise = pairwise.noise_words(step.accept, step.alias, pairs * 3, batch.noise_seed)
    assert np.any(noise[None, :] == batch.centers.numpy()[:, None])  # some noise hits a positive: skipped
    expected_in, expected_out, expected_loss, skipped = reference_windows(
        w_in.numpy(), w_out.numpy(), batch.centers.numpy(), batch.contexts.numpy(), batch.mask.numpy(), noise, 3,
        0.3,
    )
    # scale 1.5 gives scores of about +-5, so gensim's rule skips some terms, not all; 0.5 none
    assert (skipped > 0) == (scale > 1.0) and skipped < 0.8
    loss = step(w_in, w_out, batch, 0.3)  # updates in place
    np.testing.assert_allclose(w_in.numpy(), expected_in, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(w_out.numpy(), expected_out, rtol=1e-4, atol=1e-5)
    assert loss.item() == pytest.approx(expected_loss, rel=1e-5)


def test_one_pair_moves_down_the_autograd_gradient():
    w_in, w_out, _ = _random_windows(5, vocab=50)
    sampler, _ = _noise_tables(50)
    step = pairwise.PairwiseStep(sampler.accept, sampler.alias, 3)
    batch = WindowBatch(torch.tensor([4]), torch.tensor([[2]]), torch.ones(1, 1), noise_seed=9)
    noise = pairwise.noise_words(step.accept, step.alias, 3, 9).tolist()
    assert len(set(noise)) == 3 and 4 not in noise  # three distinct noise rows: one snapshot suffices
    rows = [4] + noise
    u = torch.tensor(w_in[2].numpy(), dtype=torch.float64, requires_grad=True)
    v = torch.tensor(w_out[rows].numpy(), dtype=torch.float64, requires_grad=True)
    labels = torch.tensor([1.0, -1.0, -1.0, -1.0], dtype=torch.float64)
    loss = -torch.nn.functional.logsigmoid(labels * (v @ u)).sum()
    loss.backward()
    lr = 1e-3
    before_in, before_out = w_in.clone(), w_out.clone()
    returned = step(w_in, w_out, batch, lr)
    assert returned.item() == pytest.approx(loss.item(), rel=1e-5)
    np.testing.assert_allclose((w_in[2] - before_in[2]).numpy(), -lr * u.grad.numpy(), rtol=1e-3, atol=1e-9)
    np.testing.assert_allclose((w_out[rows] - before_out[rows]).numpy(), -lr * v.grad.numpy(), rtol=1e-3, atol=1e-9)


def test_the_steps_noise_follows_the_noise_distribution():
    sampler, probabilities = _noise_tables(30, seed=2)
    draws = pairwise.noise_words(sampler.accept.numpy(), sampler.alias.numpy(), 200_000, 7)
    observed = np.bincount(draws, minlength=30)
    assert stats.chisquare(observed, probabilities * len(draws)).pvalue > 1e-3
    again = pairwise.noise_words(sampler.accept.numpy(), sampler.alias.numpy(), 1000, 7)
    np.testing.assert_array_equal(again, draws[:1000])  # a seed gives the same draws


def test_batches_for_the_kernel_carry_a_seed_instead_of_noise():
    rng = np.random.default_rng(3)
    corpus = IdCorpus(rng.integers(0, 9, 60), np.array([0, 25, 60]))
    counts = corpus.counts(9).astype(np.float64)
    batcher = SkipGramBatcher(corpus, np.ones(9), NoiseSampler(counts / counts.sum()), window=3, negative=2,
                              batch_size=64, step_draws_noise=True)
    batches = list(batcher.epoch(torch.Generator().manual_seed(1)))
    assert all(b.noise_targets is None for b in batches)
    seeds = [b.noise_seed for b in batches]
    assert all(0 <= seed < 1 << 32 for seed in seeds) and len(set(seeds)) == len(seeds)
    again = list(batcher.epoch(torch.Generator().manual_seed(1)))
    assert [b.noise_seed for b in again] == seeds


def test_step_refuses_a_batch_without_a_seed():
    sampler, _ = _noise_tables(4)
    step = pairwise.PairwiseStep(sampler.accept, sampler.alias, 1)
    batch = WindowBatch(torch.tensor([0]), torch.tensor([[1, 2]]), torch.ones(1, 2), noise_targets=torch.tensor([[3]]))
    with pytest.raises(ValueError, match="draws its own noise"):
        step(torch.zeros(4, 2), torch.zeros(4, 2), batch, 0.1)


def _corpus() -> IdCorpus:
    rng = np.random.default_rng(0)
    p = 1.0 / np.arange(1, 41)
    tokens = rng.choice(40, size=3600, p=p / p.sum())
    return IdCorpus(tokens, np.arange(0, 3601, 12))


def test_pairwise_uses_word2vecs_learning_rate_at_any_batch_size():
    reports = []
    params = SGNSParams(dim=8, window=3, epochs=1, device="cpu", threads=1)
    result = train_sgns(_corpus(), None, params, progress=reports.append, log_interval=0, _batch_size=4096)
    assert result.batch_size == 4096 and result.kernel == "pairwise"
    assert reports[0].lr == pytest.approx(params.lr, rel=0.05)  # no sqrt(batch) scaling: updates are per pair
    default = train_sgns(_corpus(), None, SGNSParams(dim=8, epochs=1, device="cpu"))
    assert default.batch_size == 1024 and default.kernel == "pairwise"  # a unit of work, not a step size


def test_a_diverging_pairwise_run_stops_with_a_clear_error():
    # the pairwise kernel has no step cap (word2vec's sequential updates need none at sane rates)
    params = SGNSParams(dim=8, window=3, epochs=2, lr=1e30, device="cpu", threads=1)
    with pytest.raises(TrainingDivergedError, match="^SGNS training diverged: the loss became") as err:
        train_sgns(_corpus(), None, params)
    assert err.value.param == "lr"


def test_kernel_choice_per_device(monkeypatch, caplog):
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert choose_kernel(cpu, 100, 5) == "pairwise"
    assert choose_kernel(cpu, 100, 5, "batched") == "batched"  # the test hook
    assert choose_kernel(cuda, 100, 5, "batched") == "batched"
    # past the CUDA kernel's registers: the batched step, with the reason logged (no GPU needed to decide)
    with caplog.at_level("WARNING", logger="embedpipe.torchtrain.sgns_train"):
        assert choose_kernel(cuda, 600, 5) == "batched"
    assert "using the batched step, the pairwise kernel cannot run: dim is 600, above the 512" in caplog.text
    with pytest.raises(ValueError, match="unknown kernel 'warp'"):
        choose_kernel(cpu, 100, 5, "warp")


def test_without_numba_the_cpu_trainer_says_what_to_install(monkeypatch):
    monkeypatch.setattr(pairwise, "numba", None)
    message = r"^the SGNS trainer's CPU kernel needs numba: pip install 'embedpipe\[torch\]'"
    with pytest.raises(ConfigError, match=message):
        train_sgns(_corpus(), None, SGNSParams(dim=8, epochs=1, device="cpu"))


def test_kernel_compiles_when_embedpipe_is_shipped_as_a_wheel(tmp_path):
    # spark-submit --py-files puts the wheel itself on executors' sys.path: numba finds no cache
    # directory for a module inside it and must compile without one instead of failing
    import subprocess
    import sys
    import zipfile
    from pathlib import Path

    package = Path(pairwise.__file__).parents[1]
    wheel = tmp_path / "embedpipe-0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for path in package.rglob("*.py"):
            archive.write(path, path.relative_to(package.parent))
    script = (
        "import sys; sys.path.insert(0, sys.argv[1]); import numpy as np, torch\n"
        "from embedpipe.torchtrain import pairwise_cpu as pairwise\n"
        "from embedpipe.torchtrain.batching import NoiseSampler, WindowBatch\n"
        "assert pairwise.__file__.startswith(sys.argv[1])\n"
        "noise = NoiseSampler(np.ones(10) / 10)\n"
        "step = pairwise.PairwiseStep(noise.accept, noise.alias, 5)\n"
        "batch = WindowBatch(torch.tensor([0]), torch.tensor([[1, 2]]), torch.ones(1, 2), noise_seed=1)\n"
        "print(float(step(torch.zeros(10, 8), torch.zeros(10, 8), batch, 0.1)))\n"
    )
    done = subprocess.run([sys.executable, "-c", script, str(wheel)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    noise = NoiseSampler(np.ones(10) / 10)
    step = pairwise.PairwiseStep(noise.accept, noise.alias, 5)
    batch = WindowBatch(torch.tensor([0]), torch.tensor([[1, 2]]), torch.ones(1, 2), noise_seed=1)
    assert float(done.stdout) == pytest.approx(float(step(torch.zeros(10, 8), torch.zeros(10, 8), batch, 0.1)))
