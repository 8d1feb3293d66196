"""The CUDA pairwise kernel (word2vec's per-pair SGD, one warp per window).

Without a GPU the kernel runs in numba's CUDA simulator, which must be switched on before numba's
CUDA target is first imported, so those checks run in a child process (``_simulate``). They pin
the kernel to the CPU kernel pair for pair: one warp trains the windows in order, so it must give
the CPU kernel's vectors; several warps with a zero step must give its losses. The training run
through ``train_sgns`` needs a CUDA device.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from test_torchtrain_planted import _params, _train, nearest_targets, planted_corpus

from embedpipe.errors import ConfigError
from embedpipe.torchtrain import kernel_common, train_sgns
from embedpipe.torchtrain import pairwise_cuda as pc
from embedpipe.torchtrain.pairwise_cpu import available as numba_available
from embedpipe.torchtrain.sgns_train import choose_kernel

pytestmark = pytest.mark.skipif(not numba_available(), reason="needs numba")
ROOT = Path(__file__).resolve().parents[2]

#: Runs in the child: builds a tiny problem, trains it with the CPU kernel pair by pair (the reference)
#: and with the CUDA kernel in the simulator; prints the largest differences as JSON.
CHILD = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    from numba import cuda
    from embedpipe.torchtrain import pairwise_cpu as pairwise, pairwise_cuda as pc
    from embedpipe.torchtrain.batching import alias_table
    from embedpipe.torchtrain.kernel_common import MAX_EXP, window_seed

    scale, lr, warps = float(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
    rng = np.random.default_rng(4)
    vocab, dim, n, width, negative, seed = 13, 40, 9, 4, 3, 12345  # dim 40: lanes hold 2 or 1 coordinates
    w_in = (rng.standard_normal((vocab, dim)) * scale).astype(np.float32)
    w_out = (rng.standard_normal((vocab, dim)) * scale).astype(np.float32)
    centers = rng.integers(0, vocab, n)
    contexts = rng.integers(0, vocab, (n, width))
    mask = (rng.random((n, width)) < 0.8).astype(np.float32)
    accept, alias = alias_table(rng.random(vocab) + 0.1)
    # the share of the pairs' first scores that gensim's rule skips (MAX_EXP)
    saturated = float(np.mean(np.abs((w_in[contexts] * w_out[centers][:, None]).sum(-1)) >= MAX_EXP))

    ref_in, ref_out, ref_loss = w_in.copy(), w_out.copy(), 0.0
    update = np.zeros(dim, np.float32)
    outputs = np.zeros(negative + 1, np.int64)
    scores = np.zeros(negative + 1, np.float32)
    for i in range(n):
        state = window_seed(seed, i)
        for j in range(width):
            if mask[i, j] != 0:
                ref_loss += pairwise._train_pair(ref_in, ref_out, contexts[i, j], centers[i], mask[i, j], lr,
                                                 accept, alias, negative, update, state, outputs, scores)

    losses = np.zeros(warps, np.float64)
    pc.launch(w_in, w_out, centers, contexts, mask, accept, alias, negative, lr, seed, losses)
    print(json.dumps({
        "simulator": cuda.simulator_enabled if hasattr(cuda, "simulator_enabled") else True,
        "in": float(np.abs(w_in - ref_in).max()), "out": float(np.abs(w_out - ref_out).max()),
        "size": float(max(np.abs(ref_in).max(), np.abs(ref_out).max())), "saturated": saturated,
        "loss": float(losses.sum()), "ref_loss": float(ref_loss), "warps_with_loss": int((losses != 0).sum()),
    }))
    """
)


def _simulate(scale: float, lr: float, warps: int) -> dict:
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "1", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(scale), str(lr), str(warps)],
        capture_output=True, text=True, env=env, timeout=600, check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("scale", [0.5, 1.0])
def test_one_warp_trains_like_the_cpu_kernel(scale):
    # one warp takes the windows in order, pair by pair: the CPU kernel's result up to float rounding
    # (the warp sums a score over 32 lanes); at scale 1 scores of about +-6 exercise gensim's rule
    out = _simulate(scale, lr=0.05, warps=1)
    assert (out["saturated"] > 0.1) == (scale == 1.0), out
    assert out["in"] < 2e-5 * max(1.0, out["size"]) and out["out"] < 2e-5 * max(1.0, out["size"]), out
    assert out["loss"] == pytest.approx(out["ref_loss"], rel=1e-5)


def test_every_warp_of_a_grid_trains_its_share_of_the_windows():
    # 8 warps over 9 windows, with a zero step so the order of updates cannot matter: the summed
    # loss is the CPU kernel's, so every window was trained once, each with its own noise
    out = _simulate(0.5, lr=0.0, warps=8)
    assert out["in"] == 0.0 and out["out"] == 0.0
    assert out["loss"] == pytest.approx(out["ref_loss"], rel=1e-6)
    assert out["warps_with_loss"] == 8  # warp 0 took windows 0 and 8, the others one each


def test_window_seeds_differ_and_are_reproducible():
    window_seed = kernel_common.window_seed
    states = {int(window_seed(7, i)[0]) for i in range(1000)}
    assert len(states) == 1000
    assert int(window_seed(7, 3)[0]) == int(window_seed(7, 3)[0]) != int(window_seed(8, 3)[0])


def test_the_grid_is_one_warp_per_window_up_to_the_cap():
    assert pc.grid_warps(0, 132) == 1
    assert pc.grid_warps(10, 132) == 10
    assert pc.grid_warps(10**6, 132) == 132 * pc.WARPS_PER_SM  # an H100: one wave
    assert pc.grid_warps(10**6, 1000) == pc.MAX_WARPS


def test_sizes_past_the_registers_are_refused_with_the_reason():
    assert pc.unsupported(kernel_common.MAX_DIM, kernel_common.MAX_TERMS - 1) is None
    assert pc.unsupported(kernel_common.MAX_DIM + 1, 5) == "dim is 513, above the 512 its registers hold"
    assert pc.unsupported(100, kernel_common.MAX_TERMS) == "negative is 32, above the 31 its registers hold"
    if pc.available():
        sampler = torch.ones(4, dtype=torch.float64), torch.zeros(4, dtype=torch.int64)
        with pytest.raises(ConfigError, match="^the pairwise CUDA kernel cannot run: dim is 600"):
            pc.CudaPairwiseStep(*sampler, negative=5, dim=600)


def test_the_pairwise_kernel_where_it_runs_else_the_batched_step(monkeypatch, caplog):
    cuda = torch.device("cuda", 0)
    assert choose_kernel(cuda, 100, 5, "batched") == "batched"  # the test hook is taken as given
    assert choose_kernel(cuda, 100, 5, "pairwise") == "pairwise"
    monkeypatch.setattr(pc, "probe", lambda index: None)
    assert choose_kernel(cuda, 100, 5) == "pairwise"
    assert choose_kernel(cuda, 600, 5) == "batched"  # past its registers
    monkeypatch.setattr(pc, "probe", lambda index: "NvvmSupportError: libNVVM cannot be found")
    with caplog.at_level("WARNING", logger="embedpipe.torchtrain.sgns_train"):
        assert choose_kernel(cuda, 100, 5) == "batched"
    assert "the pairwise kernel cannot run: NvvmSupportError: libNVVM cannot be found" in caplog.text


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the answer where there is no CUDA device")
def test_the_probe_reports_why_the_kernel_cannot_run_instead_of_raising():
    assert pc.probe(0)  # a reason, e.g. torch's "no NVIDIA driver" or numba-cuda missing


def _small():
    corpus, _ = planted_corpus(sentences=200)
    return corpus, None


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_pairwise_recovers_the_planted_groups_like_the_cpu_kernel():
    corpus, group = planted_corpus()
    cpu = _train(corpus, "pairwise", device="cpu")
    gpu = _train(corpus, "pairwise", device="cuda")
    assert gpu.kernel == "pairwise" and gpu.device.startswith("cuda")
    assert pc.probe(0) is None  # so the default picks it on this machine
    assert train_sgns(*_small(), _params(device="cuda", epochs=1)).kernel == "pairwise"
    assert np.array_equal(group[nearest_targets(gpu.input_vectors, len(group))], group)
    assert np.all(np.isfinite(gpu.input_vectors))
    # the same SGD in a different order: loss curves close
    np.testing.assert_allclose(gpu.epoch_losses, cpu.epoch_losses, rtol=0.05)
