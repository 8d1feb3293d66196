"""The bag models' network and losses: embedding bag -> ReLU layers -> softmax or regression head.

Kept apart from the loop (:mod:`embedpipe.torchtrain.bag_model`) so the losses can be checked against
a NumPy reference on tiny inputs. Every function takes plain tensors; nothing here draws random
numbers except through a generator passed in, so a seed fixes a run on any device.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

#: Logit given to a sampled negative that is the example's own target (an "accidental hit").
_MASKED = float("-inf")


class BagNet(nn.Module):
    """``embedding`` (V x dim, sparse gradients) pooled per bag, ``hidden`` ReLU layers, then a head.

    softmax: ``out_weight`` (V x d_out, zero-initialised); the logit of item ``i`` for a bag with
    pooled vector ``h`` is ``h . out_weight[i]``, a plain inner product with no per-item bias, so the
    exported input and output tables reproduce the model's score exactly (two-tower retrieval). With
    ``sparse_output`` the output rows get sparse gradients (sampled softmax: only the rows of the
    batch's targets and negatives are touched). With ``tied`` (softmax without hidden layers) the
    output weights *are* the embedding: one table both pools a user and scores the items, so the
    exported table alone ranks as the model does. regression: ``head`` is a Linear(d_out, 1).
    """

    def __init__(
        self,
        vocab_size: int,
        dim: int,
        hidden: Sequence[int],
        combiner: str,
        objective: str,
        dropout: float = 0.0,
        sparse_output: bool = False,
        tied: bool = False,
    ):
        super().__init__()
        self.vocab_size = int(vocab_size)
        self.combiner = combiner
        self.objective = objective
        self.dropout = float(dropout)
        self.sparse_output = bool(sparse_output)
        self.tied = bool(tied)
        if self.tied and (objective != "softmax" or hidden):
            raise ValueError("tied output weights need the softmax objective without hidden layers")
        # N(0, 1/dim): pooled bags start with unit-scale dot products whatever the dimension.
        self.embedding = nn.Parameter(torch.randn(vocab_size, dim) / dim**0.5)
        widths = [dim, *hidden]
        self.hidden = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths[:-1], widths[1:], strict=True))
        d_out = widths[-1]
        if objective == "softmax":
            # tied: the same Parameter under a second name (parameters() lists it once)
            self.out_weight = self.embedding if self.tied else nn.Parameter(torch.zeros(vocab_size, d_out))
            self.head = None
        else:
            self.out_weight = None
            self.head = nn.Linear(d_out, 1)

    def sparse_parameters(self) -> list[nn.Parameter]:
        """Parameters whose gradients are sparse (for SparseAdam); the rest are dense."""
        if self.tied:  # the full softmax's logits touch every row: a dense gradient
            return [self.embedding] if self.sparse_output else []
        params = [self.embedding]
        if self.sparse_output and self.out_weight is not None:
            params.append(self.out_weight)
        return params

    def dense_parameters(self) -> list[nn.Parameter]:
        sparse = {id(p) for p in self.sparse_parameters()}
        return [p for p in self.parameters() if id(p) not in sparse]

    def pool(self, ids: torch.Tensor, offsets: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """Pooled bag vectors (B x dim). ``offsets`` has B + 1 entries; an empty bag pools to zeros.

        mean: sum(w v) / sum(w); sqrtn: sum(w v) / sqrt(sum(w^2)); sum: sum(w v).
        """
        n_rows = offsets.shape[0] - 1
        summed = F.embedding_bag(
            ids, self.embedding, offsets[:-1], mode="sum", per_sample_weights=weights,
            sparse=not self.tied or self.sparse_output,
        )
        if self.combiner == "sum":
            return summed
        lengths = offsets[1:] - offsets[:-1]
        rows = torch.repeat_interleave(torch.arange(n_rows, device=ids.device), lengths)
        mass = weights if self.combiner == "mean" else weights * weights
        total = torch.zeros(n_rows, dtype=summed.dtype, device=summed.device).index_add_(0, rows, mass)
        norm = total if self.combiner == "mean" else total.sqrt()
        return summed / norm.clamp_min(1e-12)[:, None]

    def encode(
        self,
        ids: torch.Tensor,
        offsets: torch.Tensor,
        weights: torch.Tensor,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """The vector that meets the head: pooled bag, then the ReLU layers (dropout while training)."""
        h = self._dropout(self.pool(ids, offsets, weights), generator)
        for layer in self.hidden:
            h = self._dropout(torch.relu(layer(h)), generator)
        return h

    def _dropout(self, h: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        if not self.training or self.dropout == 0.0:
            return h
        keep = torch.rand(h.shape, generator=generator, device=h.device, dtype=h.dtype) >= self.dropout
        return h * keep / (1.0 - self.dropout)

    def predict(self, h: torch.Tensor) -> torch.Tensor:
        """Regression: one number per bag (in the standardised target's units)."""
        return self.head(h)[:, 0]  # type: ignore[misc]


def masked_mean(values: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Mean of ``values`` (B x k) over the entries ``mask`` marks real (all of them when None)."""
    return values.mean() if mask is None else (values * mask).sum() / mask.sum()


def full_softmax_loss(
    h: torch.Tensor, targets: torch.Tensor, out_weight: torch.Tensor, target_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Mean cross-entropy of ``targets`` (B x k item ids, ``target_mask``'s real ones) under a softmax over
    every item (B x V logits)."""
    logits = h @ out_weight.T
    log_probs = torch.log_softmax(logits, dim=1)
    return masked_mean(-log_probs.gather(1, targets), target_mask)


def sampled_softmax_loss(
    h: torch.Tensor,
    targets: torch.Tensor,
    out_weight: torch.Tensor,
    negatives: torch.Tensor,
    target_log_expected: torch.Tensor,
    negative_log_expected: torch.Tensor,
    sparse: bool = True,
    target_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Mean sampled-softmax cross-entropy with the log-Q correction and accidental hits removed.

    ``negatives`` (S ids) are shared by the whole batch, drawn from a proposal Q;
    ``*_log_expected`` are ``log(S * Q[id])`` for the targets (B x k) and negatives (S), the
    expected number of times each id is drawn. Subtracting them from the logits makes the sampled
    loss a consistent estimate of the full softmax loss (Jean et al. 2015; Bengio & Senecal 2008);
    a negative equal to the example's target gets logit -inf so it does not compete with itself.
    Only the B x k x S sampled logits are built, never B x V. ``target_mask`` (B x k) as in
    :func:`full_softmax_loss`.
    """
    k = targets.shape[1]
    rows = torch.cat([targets.reshape(-1), negatives])
    w = F.embedding(rows, out_weight, sparse=sparse)
    n_true = targets.numel()
    w_true, w_neg = w[:n_true].view(targets.shape[0], k, -1), w[n_true:]
    true_logits = (h[:, None, :] * w_true).sum(-1) - target_log_expected
    neg_logits = h @ w_neg.T - negative_log_expected  # B x S
    neg_logits = neg_logits[:, None, :].expand(-1, k, -1)
    hits = negatives[None, None, :] == targets[:, :, None]
    neg_logits = neg_logits.masked_fill(hits, _MASKED)
    all_logits = torch.cat([true_logits[:, :, None], neg_logits], dim=2)
    return masked_mean(torch.logsumexp(all_logits, dim=2) - true_logits, target_mask)


def regression_loss(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error (the L2 loss) of the standardised target."""
    return ((prediction - target) ** 2).mean()
