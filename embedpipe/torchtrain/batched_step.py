"""The SGNS loss and its hand-written gradient step on batches of windows, with sparse row updates.

The step CUDA runs where the pairwise CUDA kernel cannot (:mod:`embedpipe.torchtrain.pairwise_cuda`),
and the reference the tests compare devices with. For a pair with input vector ``u`` and output
vector ``v`` and label ``y`` (1 for the observed pair, 0 for noise), the loss is ``-log sigmoid(s)``
with ``s = u.v`` for ``y = 1`` and ``-log sigmoid(-s)`` for ``y = 0``; its gradient w.r.t. ``s`` is
``-(y - sigmoid(s))``. A step computes every gradient of the batch from the same snapshot of the two
matrices (like word2vec's threads racing on one window, HogBatch-style) and adds
``lr * (y - sigmoid(s)) * other_vector`` to the touched rows with ``index_add_`` — no dense gradient
of a V x d table is ever formed. A term whose score is at least
:data:`~embedpipe.torchtrain.kernel_common.MAX_EXP` away from 0 moves nothing (its loss still
counts), as in gensim.

Orientation is word2vec's (``c`` center, ``o`` context, ``n`` noise): per window, inputs
``W_in[o]`` (the window's contexts, ``I x d``) times outputs ``W_out[c]`` (y=1) and ``W_out[n]``
(y=0) (``J x d``) give an ``I x J`` block of scores.

The row cap. Summing a batch's gradients is plain SGD only while it is close to applying them one
after another; a very frequent word can receive hundreds of contributions in one step, and their
sum overshoots (word2vec's sequential updates damp themselves through the sigmoid), which made
batches of 4096 windows diverge at lr 0.025 on English text. So each row's summed update is divided
by ``max(1, lr * H)``, where ``H = sum(weight * c(z) * |other|^2)`` over the row's contributions and
``c(z) = min(1/4, 1/(2|z|))`` bounds the curvature ``tanh(z/2) / (2z)`` of the tightest quadratic
upper bound of the pair loss (Jaakkola & Jordan) — so ``H`` bounds the curvature of the batch loss
along the row, and a step of at most ``1 / H`` cannot overshoot it. Where ``lr * H <= 1`` the step
is exactly SGD; elsewhere it is capped, which keeps large batches and even absurd learning rates
finite. Only frequent words are capped: on the Wikipedia excerpt with lr 0.025 over 3 epochs, 11%
of the W_in row contributions (6% of W_out's) fell in capped rows at 1024 windows per step and 3%
(1%) at 256, none in the last part of training. (A cap along the summed gradient only, longer
steps, was measured and removed: ``docs/decisions.md``, "step_cap".)

The batch size is chosen here, not by the user (:func:`auto_batch_size`), and the learning rate
scales with it (:func:`lr_scale`): a step's fixed cost is what limits a GPU.

The step is split into :func:`score_batch` (reads both matrices, gathering copies of the rows)
and :func:`update_inputs` / :func:`update_outputs` (each writes one matrix, from the copies), so
worker threads can score parts of a batch concurrently and then update the two matrices
concurrently; every sum runs in a fixed order, so the result is bit-identical to the one-thread
step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from embedpipe.torchtrain.batching import WindowBatch
from embedpipe.torchtrain.kernel_common import MAX_EXP

#: The windows per step ``lr`` is stated for; see :func:`lr_scale`.
REFERENCE_BATCH = 1024
AUTO_BATCH_RANGE = (1024, 65536)
#: Corpus tokens per window of the automatic batch size (about 32 steps per epoch before subsampling).
AUTO_TOKENS_PER_WINDOW = 32


def auto_batch_size(corpus_tokens: int) -> int:
    """Windows per step: the power of two nearest ``corpus_tokens / 32``, within 1,024..65,536.

    It grows with the corpus because a step's fixed cost (a few dozen kernel launches) is what
    limits a GPU, while an epoch of a small corpus must still take enough steps to converge
    (measurements: ``docs/decisions.md``, "batch_size"). Tiny corpora get the CPU-friendly 1,024.
    """
    low, high = AUTO_BATCH_RANGE
    target = max(1.0, corpus_tokens / AUTO_TOKENS_PER_WINDOW)
    nearest = 1 << max(0, round(math.log2(target)))
    return int(min(high, max(low, nearest)))


def lr_scale(batch_size: int) -> float:
    """The factor on ``lr``/``min_lr`` at ``batch_size`` windows per step: ``sqrt(batch_size / 1024)``, at least 1.

    A step sums its windows' gradients, so a bigger batch takes fewer steps; growing the step with
    the square root of the batch (Krizhevsky's rule) kept quality (``docs/decisions.md``,
    "batch_size"). Smaller batches keep ``lr`` itself: they are already close to word2vec's
    one-pair-at-a-time SGD, which uses it unscaled.
    """
    return max(1.0, math.sqrt(batch_size / REFERENCE_BATCH))


@dataclass
class ScoredBatch:
    """A (part of a) batch after the forward pass."""

    in_ids: torch.Tensor  # (n * I,) rows of W_in
    out_ids: torch.Tensor  # (n * J,) rows of W_out
    inputs: torch.Tensor  # (n, I, d) gathered W_in rows
    outputs: torch.Tensor  # (n, J, d) gathered W_out rows
    coeff: torch.Tensor  # (n, I, J) weight * (y - sigmoid(s))
    curvature: torch.Tensor  # (n, I, J) weight * c(z), the bound curvature of each term
    window_loss: torch.Tensor  # (n,)


def score_batch(w_in: torch.Tensor, w_out: torch.Tensor, batch: WindowBatch) -> ScoredBatch:
    """The forward pass of ``batch``: scores of its windows' ``I x J`` blocks (column 0 the observed pair)."""
    if batch.noise_targets is None:
        raise ValueError("the batched step needs batch.noise_targets (build batches with step_draws_noise=False)")
    n, i = batch.contexts.shape
    j = 1 + batch.noise_targets.shape[1]
    d = w_in.shape[1]
    in_ids = batch.contexts.reshape(-1)
    out_ids = torch.cat([batch.centers[:, None], batch.noise_targets], dim=1).reshape(-1)
    weight = batch.mask[:, :, None]  # each valid context is one pair with its center and k noise words
    inputs = w_in.index_select(0, in_ids).view(n, i, d)
    outputs = w_out.index_select(0, out_ids).view(n, j, d)
    z = torch.bmm(inputs, outputs.transpose(1, 2))  # n x I x J scores s
    z[:, :, 1:].neg_()  # z = +s for observed pairs, -s for noise: the loss is -logsigmoid(z)
    loss = -(F.logsigmoid(z) * weight).sum((1, 2))
    # saturated terms train nothing (gensim); NaN scores stay in, for the divergence check
    weight = weight * (z.abs() >= MAX_EXP).logical_not_()
    residual = torch.sigmoid(-z)  # |y - sigmoid(s)|
    # min(1/4, 1/(2|z|)) >= tanh(z/2)/(2z), the curvature of the tightest quadratic upper bound of
    # -logsigmoid around z (Jaakkola & Jordan); unlike sigmoid'(z) it does not vanish where z saturates
    curvature = z.abs_().mul_(2.0).clamp_(min=4.0).reciprocal_().mul_(weight)
    coeff = residual.mul_(weight)
    coeff[:, :, 1:].neg_()  # weight * (y - sigmoid(s))
    return ScoredBatch(in_ids, out_ids, inputs, outputs, coeff, curvature, loss)


@dataclass
class _Contributions:
    """The terms that update one matrix: ``n`` windows, ``R`` rows each, ``C`` terms per row."""

    ids: torch.Tensor  # (n * R,) the rows updated
    coeff: torch.Tensor  # (n, R, C) weight * (y - sigmoid(s)) per term
    others: torch.Tensor  # (n, C, d) the other matrix's vectors of the terms
    curvature: torch.Tensor  # (n, R, C) weight * c(z) per term


def _inputs_side(part: ScoredBatch) -> _Contributions:
    return _Contributions(part.in_ids, part.coeff, part.outputs, part.curvature)


def _outputs_side(part: ScoredBatch) -> _Contributions:
    return _Contributions(part.out_ids, part.coeff.transpose(1, 2), part.inputs, part.curvature.transpose(1, 2))


def _row_cap_update(table: torch.Tensor, buffer: torch.Tensor, terms: list[_Contributions], lr: float) -> None:
    """Each row's summed update times ``min(lr, 1 / H)``, ``H`` the row's summed ``c(z) * |other|^2``
    (``buffer``: a zero-filled V-long scratch vector, zero-filled again on return)."""
    curvatures = [
        torch.bmm(t.curvature, torch.linalg.vector_norm(t.others, dim=2, keepdim=True).square_()).view(-1)
        for t in terms
    ]
    for t, h in zip(terms, curvatures, strict=True):
        buffer.index_add_(0, t.ids, h)
    rows = []
    for t in terms:
        n, r, _ = t.coeff.shape
        rate = buffer[t.ids].reciprocal().clamp_(max=lr)  # min(lr, 1/H)
        rows.append(torch.bmm(t.coeff * rate.view(n, r, 1), t.others).view(n * r, table.shape[1]))
    for t, values in zip(terms, rows, strict=True):
        buffer.index_fill_(0, t.ids, 0.0)
        table.index_add_(0, t.ids, values)


def update_inputs(w_in: torch.Tensor, buffer: torch.Tensor, parts: list[ScoredBatch], lr: float) -> None:
    """Cap, form and add the W_in row updates of a whole batch (given as scored parts, in order).

    ``buffer`` is a zero-filled V-long scratch vector; it is zero-filled again on return. Reads only
    the scored copies, never ``W_out``, so it can run while :func:`update_outputs` writes ``W_out``.
    """
    _row_cap_update(w_in, buffer, [_inputs_side(part) for part in parts], lr)


def update_outputs(w_out: torch.Tensor, buffer: torch.Tensor, parts: list[ScoredBatch], lr: float) -> None:
    """Cap, form and add the W_out row updates of a whole batch; see :func:`update_inputs`."""
    _row_cap_update(w_out, buffer, [_outputs_side(part) for part in parts], lr)


def batch_loss(parts: list[ScoredBatch]) -> torch.Tensor:
    """The summed pair loss of the batch (per-window losses concatenated first, so the sum does not
    depend on how the batch was split)."""
    return (parts[0].window_loss if len(parts) == 1 else torch.cat([part.window_loss for part in parts])).sum()


def sgns_step(
    w_in: torch.Tensor,
    w_out: torch.Tensor,
    batch: WindowBatch,
    lr: float,
    buffers: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> torch.Tensor:
    """One SGD step on ``batch``; updates ``w_in``/``w_out`` in place and returns the summed loss.

    The loss is a 0-dim tensor on the device (no host sync): the sum over the batch's valid pairs
    of the pair loss (observed term plus its noise terms) before the update. ``buffers`` are the
    zero-filled scratch vectors of :func:`update_inputs` / :func:`update_outputs` (allocated per
    call when omitted).
    """
    if buffers is None:
        buffers = (w_in.new_zeros(w_in.shape[0]), w_out.new_zeros(w_out.shape[0]))
    parts = [score_batch(w_in, w_out, batch)]  # all gradients from this snapshot
    update_inputs(w_in, buffers[0], parts, lr)
    update_outputs(w_out, buffers[1], parts, lr)
    return batch_loss(parts)


def pair_count(batch: WindowBatch) -> torch.Tensor:
    """Valid (center, context) pairs in the batch, as a device tensor."""
    return batch.mask.sum()
