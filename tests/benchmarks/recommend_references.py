"""Reference recommenders for bench_recommend.py, scored on a histories split in NumPy.

The references are what a new recommendation model has to beat, measured on the very split
``embedpipe evaluate --histories`` scores (``sequences/`` = training, ``heldout/`` = truth) and with
its metrics kernel (:func:`embedpipe.evaluate.recommend.ranking_metrics`; ties to the lower row, as there), so the
figures compare like for like:

* popularity: items ranked by training users;
* EASE (Steck 2019): ``B = I - P diag(1/diag P)``, ``P = (X^T X + lambda I)^-1`` on the binary
  user x item matrix, score = ``x_u B``;
* Spark ALS (implicit) on the training pairs, score = user factors . item factors.

The catalogue is the histories vocabulary (every item with a training interaction); held-out items
outside it count as misses, as in ``evaluate``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import scipy.sparse as sp

from embedpipe.evaluate.recommend import ranking_metrics

log = logging.getLogger("bench_recommend")
KS = (10, 20, 50)


@dataclass(frozen=True)
class Split:
    """A histories split in NumPy: the catalogue, the binary training matrix, the truth of split users."""

    items: list[str]
    train: sp.csr_matrix  # users x items, 1 where the user met the item in training
    users: list[str]
    eval_rows: np.ndarray  # training-matrix rows of the split users
    truth_parents: np.ndarray  # (eval user position, catalogue row) of every distinct held-out item known
    truth_rows: np.ndarray
    truth_counts: np.ndarray  # distinct held-out items per eval user, known or not


def load_split(histories: Path) -> Split:
    vocab = pq.read_table(histories / "vocab").to_pandas().sort_values("id")
    items = vocab["token"].tolist()
    position = {item: i for i, item in enumerate(items)}
    sequences = pq.read_table(histories / "sequences", columns=["user", "items"]).to_pylist()
    users = [row["user"] for row in sequences]
    user_row = {user: i for i, user in enumerate(users)}
    rows, cols = [], []
    for i, row in enumerate(sequences):
        known = {position[item] for item in row["items"] if item in position}
        rows += [i] * len(known)
        cols += sorted(known)
    train = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(len(users), len(items)))
    held = pq.read_table(histories / "heldout").to_pylist()
    eval_rows, parents, truth, counts = [], [], [], []
    for j, row in enumerate(held):
        distinct = set(row["items"])
        eval_rows.append(user_row[row["user"]])
        counts.append(len(distinct))
        for item in sorted(distinct & position.keys()):
            parents.append(j)
            truth.append(position[item])
    return Split(items, train, users, np.array(eval_rows), np.array(parents, np.int64), np.array(truth, np.int64),
                 np.array(counts, np.int64))


def score_split(split: Split, scores_of: Callable[[np.ndarray], np.ndarray], block: int = 256) -> dict[str, float]:
    """Recall/NDCG/HR@K averaged over the split users and coverage@K of ``scores_of(user rows) -> (B, N)``."""
    tops = []
    for start in range(0, split.eval_rows.size, block):
        rows = split.eval_rows[start:start + block]
        scores = np.asarray(scores_of(rows), dtype=np.float32)
        seen = split.train[rows].tocoo()
        tops.append(_top_direct(scores, seen.row, seen.col, max(KS)))
    top = np.concatenate(tops)
    metrics = ranking_metrics(top, split.truth_parents, split.truth_rows, split.truth_counts, KS)
    result = {name.replace("_", "@"): float(values.mean()) for name, values in metrics.items()}
    for k in KS:
        result[f"coverage@{k}"] = np.unique(top[:, :k][top[:, :k] >= 0]).size / len(split.items)
    return result


def _top_direct(scores: np.ndarray, seen_parents: np.ndarray, seen_rows: np.ndarray, k: int) -> np.ndarray:
    """top_k_items' ranking (ties to the lower row) without the matrix product."""
    scores = scores.copy()
    scores[seen_parents, seen_rows] = -np.inf
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return np.where(np.isfinite(np.take_along_axis(scores, order, axis=1)), order, -1)


def popularity(split: Split) -> dict[str, float]:
    counts = np.asarray(split.train.sum(axis=0)).ravel()
    return score_split(split, lambda rows: np.broadcast_to(counts, (rows.size, counts.size)))


def ease(split: Split, lambdas: Sequence[float]) -> dict[float, dict[str, float]]:
    """EASE for each lambda (one Gram matrix, one inverse per lambda)."""
    x = split.train
    gram = (x.T @ x).toarray().astype(np.float64)
    diag = np.arange(gram.shape[0])
    results = {}
    for lam in lambdas:
        started = time.perf_counter()
        g = gram.copy()
        g[diag, diag] += lam
        p = np.linalg.inv(g)
        b = (p / (-np.diag(p))).astype(np.float32)
        b[diag, diag] = 0.0
        results[lam] = score_split(split, lambda rows, b=b: x[rows] @ b)
        log.info("EASE lambda=%g: %.1f s: %s", lam, time.perf_counter() - started, _short(results[lam]))
    return results


#: Spark ALS grid: (rank, regParam, alpha), 15 iterations each: Spark's default regParam and the
#: ANCHORS' tuned one, alpha 1 (Spark's) and 10 (for binary positives), at the methods' rank 32.
ALS_GRID = tuple((32, reg, alpha) for reg in (0.05, 0.1) for alpha in (1.0, 10.0))


def spark_als(split: Split, grid: Sequence[tuple[int, float, float]] = ALS_GRID, seed: int = 0,
              iterations: int = 15) -> dict[tuple[int, float, float], dict[str, float]]:
    """pyspark.ml ALS (implicitPrefs) for each grid point, scored by user . item factors."""
    from pyspark.ml.recommendation import ALS
    from pyspark.sql import SparkSession

    spark = SparkSession.builder.getOrCreate()
    coo = split.train.tocoo()
    frame = spark.createDataFrame(
        [(int(u), int(i), 1.0) for u, i in zip(coo.row, coo.col, strict=True)], "user int, item int, rating float"
    ).cache()
    results = {}
    for rank, reg, alpha in grid:
        started = time.perf_counter()
        model = ALS(rank=rank, regParam=reg, alpha=alpha, maxIter=iterations, implicitPrefs=True, seed=seed,
                    userCol="user", itemCol="item", ratingCol="rating", coldStartStrategy="drop").fit(frame)
        users = _factors(model.userFactors, split.train.shape[0], rank)
        items = _factors(model.itemFactors, split.train.shape[1], rank)
        results[(rank, reg, alpha)] = score_split(split, lambda rows, u=users, v=items: u[rows] @ v.T)
        log.info("Spark ALS rank=%d reg=%g alpha=%g: %.1f s: %s", rank, reg, alpha, time.perf_counter() - started,
                 _short(results[(rank, reg, alpha)]))
    frame.unpersist()
    return results


def _factors(frame, n: int, rank: int) -> np.ndarray:
    out = np.zeros((n, rank), np.float32)
    for row in frame.collect():  # factors of a benchmark-sized catalogue, not corpus-sized data
        out[row["id"]] = row["features"]
    return out


def _short(metrics: dict[str, float]) -> str:
    return f"R@20 {metrics['recall@20']:.4f} NDCG@20 {metrics['ndcg@20']:.4f}"
