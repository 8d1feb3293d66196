"""The SGNS loss and its hand-written gradient step, with sparse row updates.

For a pair with input vector ``u`` and output vector ``v`` and label ``y`` (1 for the observed
pair, 0 for noise), the loss is ``-log sigmoid(s)`` with ``s = u.v`` for ``y = 1`` and
``-log sigmoid(-s)`` for ``y = 0``; its gradient w.r.t. ``s`` is ``-(y - sigmoid(s))``. A step
computes every gradient of the batch from the same snapshot of the two matrices (like word2vec's
threads racing on one window, HogBatch-style) and adds ``lr * (y - sigmoid(s)) * other_vector`` to
the touched rows with ``index_add_`` — no dense gradient of a V x d table is ever formed.
With ``max_exp > 0`` a term whose score is at least ``max_exp`` away from 0 moves nothing (its loss
still counts), as in gensim; see ``SGNSParams.max_exp``.

Orientation per ``negative_mode`` (``c`` center, ``o`` context, ``n`` noise). Both are one kernel:
per window, inputs ``(I x d)`` times outputs ``(J x d)`` give an ``I x J`` block of scores.

* ``target``: inputs ``W_in[o]`` (the window's contexts), outputs ``W_out[c]`` (y=1) and
  ``W_out[n]`` (y=0) — word2vec.c and gensim;
* ``context``: input ``W_in[c]``, outputs ``W_out[o]`` (y=1) and ``W_out[n]`` (y=0) — the paper;
  the k noise contexts are shared by the window's pairs, so each counts once per valid context;
* ``both``: the sum of the two losses.

Step cap. Summing a batch's gradients is plain SGD only while it is close to applying them one
after another; a very frequent word can receive hundreds of contributions in one step, and their
sum overshoots (word2vec's sequential updates damp themselves through the sigmoid), which made
batches of 4096 windows diverge at lr 0.025 on English text. So each row's summed update is divided
by ``max(1, lr * H)``, where ``H = sum(weight * c(z) * |other|^2)`` over the row's contributions and
``c(z) = min(1/4, 1/(2|z|))`` bounds the curvature ``tanh(z/2) / (2z)`` of the tightest quadratic
upper bound of the pair loss (Jaakkola & Jordan) — so ``H`` bounds the curvature of the batch loss
along the row, and a step of at most ``1 / H`` cannot overshoot it. Where ``lr * H <= 1`` the step
is exactly SGD; elsewhere it is capped, which keeps large batches, ``both`` and even absurd
learning rates finite. Only frequent words are capped: on the Wikipedia excerpt with lr 0.025
over 3 epochs, 11% of the W_in row contributions (6% of W_out's) fell in capped rows at 1024
windows per step and 3% (1%) at 256, none in the last part of training; word-similarity scores
matched gensim's. That is ``step_cap="row"`` (the default). ``H`` bounds the curvature in every
direction at once, which is far more than the curvature along the row's actual step when the
row's other vectors point many ways (at 65,536 windows on the demo corpus 90% of the touched W_in
rows were capped, median ``lr * H`` 14.5). ``step_cap="line"`` moves a row along its summed
gradient ``g`` by ``min(lr, |g|^2 / q)`` with ``q = sum(weight * c(z) * (other . g)^2)``: the
minimum of the same bound along ``g``, so it never overshoots what ``row`` guards against and is
never shorter than ``row``'s step. Which is better depends on the run (see ``SGNSParams.step_cap``).

The step is split into :func:`score_batch` (reads both matrices, gathering copies of the rows)
and :func:`update_inputs` / :func:`update_outputs` (each writes one matrix, from the copies), so
worker threads can score parts of a batch concurrently and then update the two matrices
concurrently; every sum runs in a fixed order, so the result is bit-identical to the one-thread
step.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from embedpipe.torchtrain.batching import WindowBatch


@dataclass
class ScoredSide:
    """One side (``target`` or ``context``) of a (part of a) batch after the forward pass."""

    in_ids: torch.Tensor  # (n * I,) rows of W_in
    out_ids: torch.Tensor  # (n * J,) rows of W_out
    inputs: torch.Tensor  # (n, I, d) gathered W_in rows
    outputs: torch.Tensor  # (n, J, d) gathered W_out rows
    coeff: torch.Tensor  # (n, I, J) weight * (y - sigmoid(s))
    curvature: torch.Tensor  # (n, I, J) weight * c(z), the bound curvature of each term
    window_loss: torch.Tensor  # (n,)


def _score(
    in_ids: torch.Tensor,
    out_ids: torch.Tensor,
    w_in: torch.Tensor,
    w_out: torch.Tensor,
    shape: tuple[int, int, int],
    positives: int,
    weight: torch.Tensor,
    max_exp: float,
) -> ScoredSide:
    """Scores of ``n`` windows' ``I x J`` blocks; output columns ``< positives`` are observed pairs."""
    n, i, j = shape
    d = w_in.shape[1]
    inputs = w_in.index_select(0, in_ids).view(n, i, d)
    outputs = w_out.index_select(0, out_ids).view(n, j, d)
    z = torch.bmm(inputs, outputs.transpose(1, 2))  # n x I x J scores s
    z[:, :, positives:].neg_()  # z = +s for observed pairs, -s for noise: the loss is -logsigmoid(z)
    loss = -(F.logsigmoid(z) * weight).sum((1, 2))
    if max_exp > 0:  # saturated terms train nothing (gensim); NaN scores stay in, for the divergence check
        weight = weight * (z.abs() >= max_exp).logical_not_()
    residual = torch.sigmoid(-z)  # |y - sigmoid(s)|
    # min(1/4, 1/(2|z|)) >= tanh(z/2)/(2z), the curvature of the tightest quadratic upper bound of
    # -logsigmoid around z (Jaakkola & Jordan); unlike sigmoid'(z) it does not vanish where z saturates
    curvature = z.abs_().mul_(2.0).clamp_(min=4.0).reciprocal_().mul_(weight)
    coeff = residual.mul_(weight)
    coeff[:, :, positives:].neg_()  # weight * (y - sigmoid(s))
    return ScoredSide(in_ids, out_ids, inputs, outputs, coeff, curvature, loss)


def score_batch(
    w_in: torch.Tensor,
    w_out: torch.Tensor,
    batch: WindowBatch,
    negative_mode: str = "target",
    max_exp: float = 0.0,
) -> list[ScoredSide]:
    """The forward pass of ``batch``: one :class:`ScoredSide` per side ``negative_mode`` trains
    (terms scored ``max_exp`` or more away from 0 get no update; 0 trains every term)."""
    n, width = batch.contexts.shape
    sides = []
    if negative_mode in ("target", "both"):
        if batch.noise_targets is None:
            raise ValueError("negative_mode 'target' needs batch.noise_targets")
        k = batch.noise_targets.shape[1]
        out_ids = torch.cat([batch.centers[:, None], batch.noise_targets], dim=1).reshape(-1)
        weight = batch.mask[:, :, None]  # each valid context is one pair with its center and k noise words
        inputs = batch.contexts.reshape(-1)
        sides.append(_score(inputs, out_ids, w_in, w_out, (n, width, 1 + k), 1, weight, max_exp))
    if negative_mode in ("context", "both"):
        if batch.noise_contexts is None:
            raise ValueError("negative_mode 'context' needs batch.noise_contexts")
        k = batch.noise_contexts.shape[1]
        out_ids = torch.cat([batch.contexts, batch.noise_contexts], dim=1).reshape(-1)
        # each noise context stands in for one noise pair per valid context of the window
        weight = torch.cat([batch.mask, batch.mask.sum(1, keepdim=True).expand(n, k)], dim=1)[:, None, :]
        sides.append(_score(batch.centers, out_ids, w_in, w_out, (n, 1, width + k), width, weight, max_exp))
    if not sides:
        raise ValueError(f"unknown negative_mode {negative_mode!r}")
    return sides


def _ordered(parts: list[list[ScoredSide]]) -> list[ScoredSide]:
    """The sides of all parts in the order the whole batch would have them: side by side, parts in order."""
    return [part[s] for s in range(len(parts[0])) for part in parts]


@dataclass
class _Contributions:
    """The terms of one side that update one matrix: ``n`` windows, ``R`` rows each, ``C`` terms per row."""

    ids: torch.Tensor  # (n * R,) the rows updated
    coeff: torch.Tensor  # (n, R, C) weight * (y - sigmoid(s)) per term
    others: torch.Tensor  # (n, C, d) the other matrix's vectors of the terms
    curvature: torch.Tensor  # (n, R, C) weight * c(z) per term


def _inputs_side(side: ScoredSide) -> _Contributions:
    return _Contributions(side.in_ids, side.coeff, side.outputs, side.curvature)


def _outputs_side(side: ScoredSide) -> _Contributions:
    return _Contributions(side.out_ids, side.coeff.transpose(1, 2), side.inputs, side.curvature.transpose(1, 2))


def _bmm(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``torch.bmm``, or a broadcast product where the inner dimension is 1 (the W_out side of
    ``context``'s 1 x J blocks), which bmm computes several times slower on CPU."""
    return a * b if a.shape[2] == 1 else torch.bmm(a, b)


def _row_cap_update(table: torch.Tensor, buffer: torch.Tensor, terms: list[_Contributions], lr: float) -> None:
    """``step_cap="row"``: each row's summed update times ``min(lr, 1 / H)``, ``H`` the row's summed
    ``c(z) * |other|^2`` (``buffer``: a zero-filled V-long scratch vector, zero-filled again on return)."""
    curvatures = [
        _bmm(t.curvature, torch.linalg.vector_norm(t.others, dim=2, keepdim=True).square_()).view(-1)
        for t in terms
    ]
    for t, h in zip(terms, curvatures, strict=True):
        buffer.index_add_(0, t.ids, h)
    rows = []
    for t in terms:
        n, r, _ = t.coeff.shape
        rate = buffer[t.ids].reciprocal().clamp_(max=lr)  # min(lr, 1/H)
        rows.append(_bmm(t.coeff * rate.view(n, r, 1), t.others).view(n * r, table.shape[1]))
    for t, values in zip(terms, rows, strict=True):
        buffer.index_fill_(0, t.ids, 0.0)
        table.index_add_(0, t.ids, values)


def _line_search_update(table: torch.Tensor, terms: list[_Contributions], lr: float) -> None:
    """``step_cap="line"``: each row moves along its summed gradient ``g`` by ``min(lr, |g|^2 / q)``,
    ``q = sum(c(z) * (other . g)^2)`` the bound's curvature along ``g`` (the minimiser of the bound there)."""
    rows, inverse = torch.unique(torch.cat([t.ids for t in terms]), return_inverse=True)
    segments = torch.split(inverse, [t.ids.numel() for t in terms])  # each side's rows, as indices into rows
    d = table.shape[1]
    grad = table.new_zeros(len(rows), d)  # minus the gradient of the batch loss, per touched row
    for t, segment in zip(terms, segments, strict=True):
        grad.index_add_(0, segment, _bmm(t.coeff, t.others).view(segment.numel(), d))
    along = table.new_zeros(len(rows))
    for t, segment in zip(terms, segments, strict=True):
        n, r, _ = t.coeff.shape
        projections = _bmm(grad[segment].view(n, r, d), t.others.transpose(1, 2))  # n x R x C: other . g
        along.index_add_(0, segment, projections.square_().mul_(t.curvature).sum(2).view(-1))
    squared = grad.square().sum(1)
    rate = torch.where(along > 0, squared / along, torch.inf).clamp_(max=lr)
    table.index_add_(0, rows, grad.mul_(rate.view(-1, 1)))


def _update(table: torch.Tensor, buffer: torch.Tensor, terms: list[_Contributions], lr: float, step_cap: str) -> None:
    if step_cap == "line":
        _line_search_update(table, terms, lr)
    elif step_cap == "row":
        _row_cap_update(table, buffer, terms, lr)
    else:
        raise ValueError(f"unknown step_cap {step_cap!r}")


def update_inputs(
    w_in: torch.Tensor, buffer: torch.Tensor, parts: list[list[ScoredSide]], lr: float, step_cap: str = "row"
) -> None:
    """Cap, form and add the W_in row updates of a whole batch (given as scored parts).

    ``buffer`` is a zero-filled V-long scratch vector (``step_cap="row"``); it is zero-filled again
    on return. Reads only the scored copies, never ``W_out``, so it can run while
    :func:`update_outputs` writes ``W_out``.
    """
    _update(w_in, buffer, [_inputs_side(side) for side in _ordered(parts)], lr, step_cap)


def update_outputs(
    w_out: torch.Tensor, buffer: torch.Tensor, parts: list[list[ScoredSide]], lr: float, step_cap: str = "row"
) -> None:
    """Cap, form and add the W_out row updates of a whole batch; see :func:`update_inputs`."""
    _update(w_out, buffer, [_outputs_side(side) for side in _ordered(parts)], lr, step_cap)


def batch_loss(parts: list[list[ScoredSide]]) -> torch.Tensor:
    """The summed pair loss of the batch (per-window losses concatenated first, so the sum does not
    depend on how the batch was split)."""
    per_part = [part[0].window_loss if len(part) == 1 else part[0].window_loss + part[1].window_loss for part in parts]
    return (per_part[0] if len(per_part) == 1 else torch.cat(per_part)).sum()


def sgns_step(
    w_in: torch.Tensor,
    w_out: torch.Tensor,
    batch: WindowBatch,
    lr: float,
    negative_mode: str = "target",
    buffers: tuple[torch.Tensor, torch.Tensor] | None = None,
    max_exp: float = 0.0,
    step_cap: str = "row",
) -> torch.Tensor:
    """One SGD step on ``batch``; updates ``w_in``/``w_out`` in place and returns the summed loss.

    The loss is a 0-dim tensor on the device (no host sync): the sum over the batch's valid pairs
    of the pair loss (observed term plus its noise terms) before the update. ``buffers`` are the
    zero-filled scratch vectors of :func:`update_inputs` / :func:`update_outputs` (allocated per
    call when omitted). ``max_exp``: see :func:`score_batch`.
    """
    if buffers is None:
        buffers = (w_in.new_zeros(w_in.shape[0]), w_out.new_zeros(w_out.shape[0]))
    parts = [score_batch(w_in, w_out, batch, negative_mode, max_exp)]  # all gradients from this snapshot
    update_inputs(w_in, buffers[0], parts, lr, step_cap)
    update_outputs(w_out, buffers[1], parts, lr, step_cap)
    return batch_loss(parts)


def pair_count(batch: WindowBatch) -> torch.Tensor:
    """Valid (center, context) pairs in the batch, as a device tensor."""
    return batch.mask.sum()
