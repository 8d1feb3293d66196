"""fastText's CUDA kernel (one warp per window, the center's input the mean of its rows) and its device choice.

Without a GPU the kernel runs in numba's CUDA simulator in a child process (``_simulate``), as in
``test_torchtrain_pairwise_cuda.py``: one warp takes the windows in order, so it must give the CPU
kernel's matrices (word and bucket rows of ``W_in``, and ``W_out``) when the CPU kernel is given the same
per-window noise seeds; several warps with a zero step must give its losses. Training through
``train_fasttext`` on CUDA needs a device (``gpu_check.sh`` runs this file there).
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from embedpipe import subwords
from embedpipe.errors import ConfigError
from embedpipe.torchtrain import encode_sentences, vocab_keys
from embedpipe.torchtrain import pairwise_cuda as pc
from embedpipe.torchtrain.pairwise_cpu import available as numba_available
from embedpipe.torchtrain.subword_train import FastTextParams, train_fasttext

pytestmark = pytest.mark.skipif(not numba_available(), reason="needs numba")
ROOT = Path(__file__).resolve().parents[2]

#: Runs in the child: a tiny vocabulary of 7 words whose input rows are 1 to 4 of 13 (own rows 0-6, buckets
#: 7-12 shared between words), trained window by window with the CPU kernel (the reference) and with the CUDA
#: kernel in the simulator, for each case of argv (scale, lr, warps); prints the largest differences as JSON.
CHILD = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    from embedpipe.torchtrain import pairwise_cuda as pc, subword_cpu
    from embedpipe.torchtrain.batching import alias_table
    from embedpipe.torchtrain.kernel_common import MAX_EXP, window_seed

    out = []
    for case in sys.argv[1:]:
        scale, lr, warps = (float(x) for x in case.split(","))
        rng = np.random.default_rng(5)
        words, dim, n, width, negative, seed = 7, 40, 9, 4, 3, 4321  # dim 40: lanes hold 2 or 1 coordinates
        offsets = np.array([0, 1, 3, 6, 10, 12, 14, 16])
        rows = np.array([0, 1, 7, 2, 7, 8, 3, 9, 10, 11, 4, 12, 5, 8, 6, 12])
        w_in = (rng.standard_normal((13, dim)) * scale).astype(np.float32)
        w_out = (rng.standard_normal((words, dim)) * scale).astype(np.float32)
        centers = rng.integers(0, words, n)
        contexts = rng.integers(0, words, (n, width))
        mask = (rng.random((n, width)) < 0.7).astype(np.float32)
        mask[2] = 0.0  # a center alone in its sentence: skipped
        accept, alias = alias_table(rng.random(words) + 0.1)
        mean = np.stack([w_in[rows[offsets[w]:offsets[w + 1]]].mean(0) for w in range(words)])
        saturated = float(np.mean(np.abs((mean[centers][:, None] * w_out[contexts]).sum(-1)) >= MAX_EXP))

        start, ref_in, ref_out, ref_loss = w_in.copy(), w_in.copy(), w_out.copy(), 0.0
        scratch = [np.zeros(dim, np.float32) for _ in range(3)]
        outputs, scores = np.zeros(negative + 1, np.int64), np.zeros(negative + 1, np.float32)
        for i in range(n):
            if mask[i].any():
                ref_loss += subword_cpu._train_subword_center(
                    ref_in, ref_out, offsets, rows, centers[i], contexts[i], mask[i], lr, accept, alias, negative,
                    *scratch, window_seed(seed, i), outputs, scores)

        losses = np.zeros(int(warps), np.float64)
        pc.launch(w_in, w_out, centers, contexts, mask, accept, alias, negative, lr, seed, losses,
                  subwords=(offsets, rows))
        out.append({
            "in": float(np.abs(w_in - ref_in).max()), "out": float(np.abs(w_out - ref_out).max()),
            "buckets_moved": float(np.abs(ref_in[7:] - start[7:]).max()),
            "size": float(max(np.abs(ref_in).max(), np.abs(ref_out).max())), "saturated": saturated,
            "loss": float(losses.sum()), "ref_loss": float(ref_loss), "warps_with_loss": int((losses != 0).sum()),
        })
    print(json.dumps(out))
    """
)


def _simulate(*cases: tuple[float, float, int]) -> list[dict]:
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "1", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", CHILD, *(",".join(map(str, case)) for case in cases)],
        capture_output=True, text=True, env=env, timeout=600, check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.slow  # ~10 s: the simulator
def test_one_warp_trains_like_the_cpu_kernel_and_several_warps_train_every_window_once():
    # one warp takes the windows in order: the CPU kernel's word and bucket rows up to float rounding (the
    # warp sums a score over 32 lanes); at scale 1 scores of about +-6 exercise gensim's rule. 8 warps over
    # 9 windows with a zero step (order cannot matter): the CPU kernel's loss, every warp trained a window
    small, saturating, grid = _simulate((0.5, 0.05, 1), (1.0, 0.05, 1), (0.5, 0.0, 8))
    for out in (small, saturating):
        assert out["in"] < 2e-5 * max(1.0, out["size"]) and out["out"] < 2e-5 * max(1.0, out["size"]), out
        assert out["loss"] == pytest.approx(out["ref_loss"], rel=1e-5)
        assert out["buckets_moved"] > 1e-3  # the n-gram rows trained, not only the words' own rows
    assert small["saturated"] < 0.1 < saturating["saturated"]
    assert grid["in"] == 0.0 and grid["out"] == 0.0
    assert grid["loss"] == pytest.approx(grid["ref_loss"], rel=1e-6)
    assert grid["warps_with_loss"] == 7  # window 2 has no pair: warp 2 (windows 2 only) sums nothing; warp 0 takes 0, 8


def _pretend_cuda(monkeypatch, reason: str | None) -> list[bool]:
    """torch sees a CUDA device and the kernel's probe answers ``reason``; returns the probes' ``subwords`` flags."""
    asked: list[bool] = []

    def probe(index: int, subwords: bool = False) -> str | None:
        asked.append(subwords)
        return reason

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(pc, "probe", probe)
    return asked


def test_cuda_trains_with_the_kernel_where_its_probe_launch_works(monkeypatch):
    from embedpipe.torchtrain.subword_train import training_device

    asked = _pretend_cuda(monkeypatch, None)
    assert training_device(FastTextParams(device="auto")).type == "cuda"
    assert training_device(FastTextParams(device="cuda")).type == "cuda"
    assert asked == [True, True]  # fastText's kernel was probed, not SGNS's


def test_where_the_kernel_cannot_run_auto_trains_on_cpu_and_cuda_is_a_one_line_error(monkeypatch, caplog):
    from embedpipe.torchtrain.subword_train import training_device

    _pretend_cuda(monkeypatch, "NvvmSupportError: libNVVM cannot be found\nmore detail")
    with caplog.at_level(logging.WARNING, logger="embedpipe.torchtrain.subword_train"):
        assert training_device(FastTextParams(device="auto")).type == "cpu"
    assert "training on CPU, its CUDA kernel cannot run: NvvmSupportError" in caplog.text
    with pytest.raises(ConfigError) as error:
        training_device(FastTextParams(device="cuda"))
    assert str(error.value) == ("config key 'device' is 'cuda' but fasttext's CUDA kernel cannot run: "
                                "NvvmSupportError: libNVVM cannot be found (use 'cpu' or 'auto')")
    with pytest.raises(ConfigError, match="cannot run: dim is 600, above the 512 its registers hold"):
        training_device(FastTextParams(device="cuda", dim=600))


def _planted(groups: int = 2, targets: int = 8, contexts: int = 12, sentences: int = 3000):
    """Sentences ``c c t c c``: a target among four contexts of its group; words named apart by group
    (``a...`` / ``b...``) so their n-grams do not tie the groups together. Returns corpus, vocab, groups."""
    rng = np.random.default_rng(0)
    names = [f"{'ab'[g]}t{i:02d}" for g in range(groups) for i in range(targets)]
    names += [f"{'ab'[g]}c{i:02d}" for g in range(groups) for i in range(contexts)]
    vocab = {w: i for i, w in enumerate(names)}
    group = rng.integers(0, groups, sentences)
    t = group * targets + rng.integers(0, targets, sentences)
    c = groups * targets + group[:, None] * contexts + rng.integers(0, contexts, (sentences, 4))
    lines = [[names[j] for j in (c[k, 0], c[k, 1], t[k], c[k, 2], c[k, 3])] for k in range(sentences)]
    return encode_sentences(lines, vocab), vocab, np.repeat(np.arange(groups), targets)


def _fasttext(device: str):
    corpus, vocab, group = _planted()
    index = subwords.subword_index(vocab_keys(vocab), 3, 5, 5000)
    params = FastTextParams(dim=16, window=2, negative=5, sample=0.0, lr=0.025, epochs=5, seed=3, device=device,
                            threads=1, minn=3, maxn=5, buckets=5000)
    # 128 windows a launch, as the SGNS CUDA test: the automatic 1,024 would be most of this tiny vocabulary's
    # rows in flight at once
    return train_fasttext(corpus, None, params, index, _batch_size=128), group


def _nearest_in_group(vectors: np.ndarray, group: np.ndarray) -> bool:
    v = vectors[: len(group)] / np.linalg.norm(vectors[: len(group)], axis=1, keepdims=True)
    similarity = v @ v.T
    np.fill_diagonal(similarity, -np.inf)
    return bool(np.array_equal(group[similarity.argmax(1)], group))


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_fasttext_recovers_the_planted_groups_like_the_cpu_kernel():
    cpu, group = _fasttext("cpu")
    gpu, _ = _fasttext("cuda")
    assert pc.probe(0, subwords=True) is None  # so the trainer picks the kernel on this machine
    assert gpu.device.startswith("cuda") and gpu.kernel == "subword-pairwise"
    assert _nearest_in_group(cpu.input_vectors, group) and _nearest_in_group(gpu.input_vectors, group)
    assert np.all(np.isfinite(gpu.input_vectors)) and np.all(np.isfinite(gpu.subword_vectors))
    assert gpu.subword_vectors.shape == cpu.subword_vectors.shape
    # the same SGD in another order and with other noise streams: loss curves close
    np.testing.assert_allclose(gpu.epoch_losses, cpu.epoch_losses, rtol=0.05)


def test_the_planted_check_holds_on_cpu():
    # the CUDA test's reference: the CPU kernel recovers the groups on this corpus (so a CUDA failure is CUDA's)
    cpu, group = _fasttext("cpu")
    assert _nearest_in_group(cpu.input_vectors, group)
    assert cpu.epoch_losses[-1] < cpu.epoch_losses[0]
