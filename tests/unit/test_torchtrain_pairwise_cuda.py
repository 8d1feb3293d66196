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
from test_torchtrain_planted import _params, nearest_targets, planted_corpus

from embedpipe.errors import ConfigError
from embedpipe.torchtrain import SGNSParams, train_sgns
from embedpipe.torchtrain import pairwise_cpu as pairwise
from embedpipe.torchtrain import pairwise_cuda as pc
from embedpipe.torchtrain.pairwise_cpu import available as numba_available

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

    mode, max_exp, lr, warps = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
    rng = np.random.default_rng(4)
    vocab, dim, n, width, negative, seed = 13, 40, 9, 4, 3, 12345  # dim 40: lanes hold 2 or 1 coordinates
    w_in = (rng.standard_normal((vocab, dim)) * 0.5).astype(np.float32)
    w_out = (rng.standard_normal((vocab, dim)) * 0.5).astype(np.float32)
    centers = rng.integers(0, vocab, n)
    contexts = rng.integers(0, vocab, (n, width))
    mask = (rng.random((n, width)) < 0.8).astype(np.float32)
    accept, alias = alias_table(rng.random(vocab) + 0.1)
    m = pairwise.MODES[mode]

    ref_in, ref_out, ref_loss = w_in.copy(), w_out.copy(), 0.0
    update = np.zeros(dim, np.float32)
    outputs = np.zeros(negative + 1, np.int64)
    scores = np.zeros(negative + 1, np.float32)
    for i in range(n):
        state = pc.window_seed(seed, i)
        for j in range(width):
            if mask[i, j] == 0:
                continue
            for row, positive in ([(contexts[i, j], centers[i])] if m != pairwise.CONTEXT else []) + (
                    [(centers[i], contexts[i, j])] if m != pairwise.TARGET else []):
                ref_loss += pairwise._train_pair(ref_in, ref_out, row, positive, mask[i, j], lr, accept, alias,
                                                 negative, update, state, outputs, scores, max_exp)

    losses = np.zeros(warps, np.float64)
    pc.launch(w_in, w_out, centers, contexts, mask, accept, alias, negative, m, lr, seed, max_exp, losses)
    print(json.dumps({
        "simulator": cuda.simulator_enabled if hasattr(cuda, "simulator_enabled") else True,
        "in": float(np.abs(w_in - ref_in).max()), "out": float(np.abs(w_out - ref_out).max()),
        "loss": float(losses.sum()), "ref_loss": float(ref_loss), "warps_with_loss": int((losses != 0).sum()),
    }))
    """
)


def _simulate(mode: str, max_exp: float, lr: float, warps: int) -> dict:
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "1", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", CHILD, mode, str(max_exp), str(lr), str(warps)],
        capture_output=True, text=True, env=env, timeout=600, check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize(("mode", "max_exp"), [("target", 0.0), ("context", 6.0), ("both", 1.0)])
def test_one_warp_trains_like_the_cpu_kernel(mode, max_exp):
    # one warp takes the windows in order, pair by pair: the CPU kernel's result up to float rounding
    # (the warp sums a score over 32 lanes); max_exp 1 skips many terms, so the rule is exercised
    out = _simulate(mode, max_exp, lr=0.05, warps=1)
    assert out["in"] < 2e-5 and out["out"] < 2e-5, out
    assert out["loss"] == pytest.approx(out["ref_loss"], rel=1e-5)


def test_every_warp_of_a_grid_trains_its_share_of_the_windows():
    # 8 warps over 9 windows, with a zero step so the order of updates cannot matter: the summed
    # loss is the CPU kernel's, so every window was trained once, each with its own noise
    out = _simulate("both", 6.0, lr=0.0, warps=8)
    assert out["in"] == 0.0 and out["out"] == 0.0
    assert out["loss"] == pytest.approx(out["ref_loss"], rel=1e-6)
    assert out["warps_with_loss"] == 8  # warp 0 took windows 0 and 8, the others one each


def test_window_seeds_differ_and_are_reproducible():
    states = {int(pc.window_seed(7, i)[0]) for i in range(1000)}
    assert len(states) == 1000
    assert int(pc.window_seed(7, 3)[0]) == int(pc.window_seed(7, 3)[0]) != int(pc.window_seed(8, 3)[0])


def test_the_grid_is_one_warp_per_window_up_to_the_cap():
    assert pc.grid_warps(0, 132) == 1
    assert pc.grid_warps(10, 132) == 10
    assert pc.grid_warps(10**6, 132) == 132 * pc.WARPS_PER_SM  # an H100: one wave
    assert pc.grid_warps(10**6, 1000) == pc.MAX_WARPS


def test_sizes_past_the_registers_are_config_errors():
    pc.check_supported(pc.MAX_DIM, pc.MAX_TERMS - 1)
    with pytest.raises(ConfigError, match="config key 'dim' must be <= 512"):
        pc.check_supported(pc.MAX_DIM + 1, 5)
    with pytest.raises(ConfigError, match="config key 'negative' must be <= 31"):
        pc.check_supported(100, pc.MAX_TERMS)


def test_auto_picks_the_pairwise_kernel_where_it_runs_else_the_batched_step(monkeypatch, caplog):
    cuda = torch.device("cuda", 0)
    assert pairwise.resolve_kernel("auto", cuda, "batched") == "batched"  # explicit choices are taken as given
    assert pairwise.resolve_kernel("auto", cuda, "pairwise") == "pairwise"
    monkeypatch.setattr(pc, "probe", lambda index: None)
    assert pairwise.resolve_kernel("auto", cuda, "auto") == "pairwise"
    assert pairwise.resolve_kernel("auto", cuda, "auto", dim=600) == "batched"  # past its registers
    monkeypatch.setattr(pc, "probe", lambda index: "NvvmSupportError: libNVVM cannot be found")
    with caplog.at_level("WARNING", logger="embedpipe.torchtrain.pairwise_cpu"):
        assert pairwise.resolve_kernel("auto", cuda, "auto") == "batched"
    assert "the pairwise kernel cannot run: NvvmSupportError: libNVVM cannot be found" in caplog.text


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the answer where there is no CUDA device")
def test_the_probe_reports_why_the_kernel_cannot_run_instead_of_raising():
    assert pc.probe(0)  # a reason, e.g. torch's "no NVIDIA driver" or numba-cuda missing


def test_the_kernel_choice_is_validated_and_recorded():
    with pytest.raises(ConfigError, match="config key 'cuda_kernel' must be one of auto, batched, pairwise"):
        SGNSParams(cuda_kernel="warp")
    with pytest.raises(ConfigError, match="config key 'dim' must be <= 512 with cuda_kernel 'pairwise'"):
        SGNSParams(cuda_kernel="pairwise", dim=1000)
    # on CPU the choice changes nothing: the CPU kernels run and the result says which
    result = train_sgns(*_small(), _params(epochs=1, cuda_kernel="pairwise", cpu_kernel="batched"))
    assert result.kernel == "batched"


def _small():
    corpus, _ = planted_corpus(sentences=200)
    return corpus, None


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_pairwise_recovers_the_planted_groups_like_the_cpu_kernel():
    corpus, group = planted_corpus()
    cpu = train_sgns(corpus, None, _params(device="cpu", cpu_kernel="pairwise"))
    gpu = train_sgns(corpus, None, _params(device="cuda", cuda_kernel="pairwise"))
    assert gpu.kernel == "pairwise" and gpu.device.startswith("cuda")
    assert pc.probe(0) is None  # so 'auto', the default, picks it on this machine
    assert train_sgns(*_small(), _params(device="cuda", epochs=1)).kernel == "pairwise"
    assert np.array_equal(group[nearest_targets(gpu.input_vectors, len(group))], group)
    assert np.all(np.isfinite(gpu.input_vectors))
    # the same SGD in a different order: loss curves close
    np.testing.assert_allclose(gpu.epoch_losses, cpu.epoch_losses, rtol=0.05)
