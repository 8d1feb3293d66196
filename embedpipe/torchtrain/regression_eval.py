"""How good the regression bag model is: validation RMSE/MAE next to two baselines, and word effects.

The baselines answer "is the embedding model worth it?": the mean predictor (the training rows'
mean) and ridge regression on the raw bag-of-words counts, solved with LSQR on the sparse count
matrix, centred implicitly (a linear operator, so the matrix stays sparse); the cost is a few
hundred sparse mat-vecs, cheap for vocabularies of ~100k words.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import numpy as np
import torch

from embedpipe.torchtrain.bag_corpus import BagCorpus

if TYPE_CHECKING:
    from embedpipe.torchtrain.bag_model import BagModelParams, BagTrainingState

logger = logging.getLogger(__name__)

_PREDICT_BATCH = 4096


def count_matrix(corpus: BagCorpus, vocab_size: int):
    """The rows x vocabulary sparse matrix of weights (counts); repeated ids in a row add up."""
    from scipy import sparse

    matrix = sparse.csr_matrix(
        (corpus.entry_weights().astype(np.float64), corpus.ids, corpus.offsets), shape=(corpus.n_rows, vocab_size)
    )
    matrix.sum_duplicates()
    return matrix


def fit_ridge(corpus: BagCorpus, vocab_size: int, alpha: float) -> tuple[np.ndarray, float]:
    """Ridge regression of ``corpus.targets`` on the bag-of-words counts: (coefficients, intercept).

    Minimises ``|y - b - X w|^2 + alpha |w|^2`` with the intercept ``b`` unpenalised (by centring X
    and y), via LSQR's damped least squares on the implicitly centred sparse matrix.
    """
    from scipy.sparse.linalg import LinearOperator, lsqr

    x = count_matrix(corpus, vocab_size)
    y = corpus.targets.astype(np.float64)  # type: ignore[union-attr]
    y_mean = float(y.mean())
    col_mean = np.asarray(x.mean(axis=0)).ravel()
    op = LinearOperator(
        x.shape,
        matvec=lambda w: x @ w - col_mean @ w,
        rmatvec=lambda r: x.T @ r - col_mean * r.sum(),
        dtype=np.float64,
    )
    solution = lsqr(op, y - y_mean, damp=float(np.sqrt(alpha)), atol=1e-10, btol=1e-10, iter_lim=2_000)
    coef = solution[0]
    return coef, y_mean - float(col_mean @ coef)


def predict_ridge(corpus: BagCorpus, coef: np.ndarray, intercept: float) -> np.ndarray:
    return count_matrix(corpus, len(coef)) @ coef + intercept


def predict(state: BagTrainingState, corpus: BagCorpus, device: torch.device) -> np.ndarray:
    """The model's predictions for every row of ``corpus``, in the target's original units (float64)."""
    model = state.model
    model.eval()
    weights = corpus.entry_weights()
    out = np.empty(corpus.n_rows, dtype=np.float64)
    with torch.no_grad():
        for start in range(0, corpus.n_rows, _PREDICT_BATCH):
            stop = min(start + _PREDICT_BATCH, corpus.n_rows)
            lo, hi = corpus.offsets[start], corpus.offsets[stop]
            h = model.encode(
                torch.from_numpy(corpus.ids[lo:hi]).to(device),
                torch.from_numpy(corpus.offsets[start:stop + 1] - lo).to(device),
                torch.from_numpy(weights[lo:hi]).to(device),
            )
            out[start:stop] = model.predict(h).double().cpu().numpy()
    return out * state.target_std + state.target_mean


def _errors(prefix: str, predicted: np.ndarray, actual: np.ndarray) -> dict[str, float]:
    diff = predicted - actual
    return {f"{prefix}rmse": float(np.sqrt(np.mean(diff**2))), f"{prefix}mae": float(np.mean(np.abs(diff)))}


def regression_metrics(
    state: BagTrainingState,
    corpus: BagCorpus,
    train_rows: np.ndarray,
    val_rows: np.ndarray,
    params: BagModelParams,
    device: torch.device,
) -> dict[str, float]:
    """RMSE/MAE on the validation rows of the model, the mean predictor and ridge (original units).

    Empty when there are no validation rows (``validation_fraction = 0``).
    """
    if len(val_rows) == 0:
        return {}
    val = corpus.take(val_rows)
    actual = val.targets.astype(np.float64)  # type: ignore[union-attr]
    train = corpus.take(train_rows)
    metrics = {"validation_rows": float(len(val_rows))}
    metrics.update(_errors("", predict(state, val, device), actual))
    mean = float(train.targets.astype(np.float64).mean())  # type: ignore[union-attr]
    metrics.update(_errors("mean_", np.full_like(actual, mean), actual))
    coef, intercept = fit_ridge(train, state.model.vocab_size, params.ridge_alpha)
    metrics.update(_errors("ridge_", predict_ridge(val, coef, intercept), actual))
    logger.info(
        "regression on %d validation rows: RMSE %.4g (mean predictor %.4g, ridge %.4g), MAE %.4g",
        len(val_rows), metrics["rmse"], metrics["mean_rmse"], metrics["ridge_rmse"], metrics["mae"],
    )
    return metrics


def word_effects(state: BagTrainingState, corpus: BagCorpus, device: torch.device) -> np.ndarray:
    """Per id, the mean over its occurrences in ``corpus`` of d prediction / d count (target units).

    The derivative is taken through the whole model (pooling, MLP) by autograd on the per-entry
    weights, at each row's own counts; ids that occur nowhere get NaN. For a sum-pooled model
    without hidden layers it is exactly the word's linear coefficient.
    """
    model = state.model
    model.eval()
    weights = corpus.entry_weights()
    grads = np.empty(corpus.n_entries, dtype=np.float64)
    for start in range(0, corpus.n_rows, _PREDICT_BATCH):
        stop = min(start + _PREDICT_BATCH, corpus.n_rows)
        lo, hi = int(corpus.offsets[start]), int(corpus.offsets[stop])
        w = torch.from_numpy(weights[lo:hi]).to(device).requires_grad_(True)
        h = model.encode(
            torch.from_numpy(corpus.ids[lo:hi]).to(device),
            torch.from_numpy(corpus.offsets[start:stop + 1] - lo).to(device),
            w,
        )
        (grad,) = torch.autograd.grad(model.predict(h).sum(), w)
        grads[lo:hi] = grad.double().cpu().numpy()
    model.zero_grad(set_to_none=True)
    sums = np.bincount(corpus.ids, weights=grads, minlength=model.vocab_size)
    hits = np.bincount(corpus.ids, minlength=model.vocab_size)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (sums / hits * state.target_std).astype(np.float32)
