"""Top-k ranking metrics, vectorised over users, and the evaluation of a model on a split.

``recommended`` is an ``(n_users, >=k)`` integer array of item indices, best
first, with ``-1`` for "no item"; ``relevant`` is a CSR matrix of held-out
items with the same rows. Every metric is averaged over the users with at
least one held-out item; the others are ignored.

Per user, with ``hit(i) = 1`` when the item at rank ``i`` (1-based) is relevant
and ``R`` the number of relevant items:

- precision@k = Σ hit(i) / k
- recall@k = Σ hit(i) / min(k, R)          (Liang et al. 2018; Steck 2019)
- ndcg@k = Σ hit(i) / log2(i + 1)  ÷  Σ_{i ≤ min(k, R)} 1 / log2(i + 1)
- map@k = Σ precision@i · hit(i) / min(k, R)   (the H&M Kaggle MAP@12)
- hit_rate@k = 1 if any hit(i) else 0
- coverage@k = distinct recommended items in the top k (all users) / n_items
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp

from accel.errors import InputError
from accel.validation import check_positive_int

if TYPE_CHECKING:
    from accel.data.splits import Split
    from accel.models.base import Recommender

METRICS = ("precision", "recall", "ndcg", "map", "hit_rate", "coverage")


def _check(recommended: object, relevant: object, k: int) -> tuple[np.ndarray, sp.csr_matrix]:
    recs = np.asarray(recommended)
    if recs.ndim != 2 or not (np.issubdtype(recs.dtype, np.integer) or recs.size == 0):
        raise InputError(f"recommended must be a 2-D integer array (users × ranks), got shape {recs.shape}")
    k = check_positive_int("k", k)
    if recs.shape[1] < k:
        raise InputError(f"recommended has {recs.shape[1]} items per user, fewer than k={k}")
    if not sp.issparse(relevant):
        raise InputError("relevant must be a SciPy sparse matrix (users × items)")
    rel = sp.csr_matrix(relevant)
    if rel.shape[0] != recs.shape[0]:
        raise InputError(f"recommended has {recs.shape[0]} users but relevant has {rel.shape[0]}")
    return recs[:, :k].astype(np.int64, copy=False), rel


def hits_matrix(recommended: np.ndarray, relevant: sp.csr_matrix) -> np.ndarray:
    """Boolean ``(n_users, k)``: is the item at each rank among the user's relevant items?"""
    rel = relevant.copy()
    rel.eliminate_zeros()
    rel.sort_indices()
    n_items = max(rel.shape[1], 1)
    rows = np.repeat(np.arange(rel.shape[0], dtype=np.int64), np.diff(rel.indptr))
    keys = rows * n_items + rel.indices.astype(np.int64)  # sorted: rows ascending, columns sorted
    rec_keys = np.arange(recommended.shape[0], dtype=np.int64)[:, None] * n_items + recommended
    pos = np.minimum(np.searchsorted(keys, rec_keys), max(len(keys) - 1, 0))
    found = keys[pos] == rec_keys if len(keys) else np.zeros(rec_keys.shape, dtype=bool)
    return found & (recommended >= 0) & (recommended < rel.shape[1])


def _per_user(recommended: object, relevant: object, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Hits of the users that count (≥ 1 relevant item) and their relevant counts."""
    recs, rel = _check(recommended, relevant, k)
    n_rel = np.diff(rel.indptr)
    users = n_rel > 0
    if not users.any():
        raise InputError("no user has a held-out item: nothing to evaluate")
    return hits_matrix(recs[users], rel[users]), n_rel[users]


def precision_at_k(recommended: object, relevant: object, k: int) -> float:
    """Share of the top ``k`` that is relevant, averaged over users."""
    hits, _ = _per_user(recommended, relevant, k)
    return float(np.mean(hits.sum(axis=1) / k))


def recall_at_k(recommended: object, relevant: object, k: int) -> float:
    """Hits in the top ``k`` over ``min(k, |relevant|)``, averaged over users."""
    hits, n_rel = _per_user(recommended, relevant, k)
    return float(np.mean(hits.sum(axis=1) / np.minimum(k, n_rel)))


def ndcg_at_k(recommended: object, relevant: object, k: int) -> float:
    """Binary-relevance nDCG of the top ``k``, averaged over users."""
    hits, n_rel = _per_user(recommended, relevant, k)
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    dcg = hits @ discounts
    ideal = np.cumsum(discounts)[np.minimum(k, n_rel) - 1]
    return float(np.mean(dcg / ideal))


def map_at_k(recommended: object, relevant: object, k: int) -> float:
    """Mean average precision at ``k`` (the H&M Kaggle definition), averaged over users."""
    hits, n_rel = _per_user(recommended, relevant, k)
    precision_at_i = np.cumsum(hits, axis=1) / np.arange(1, k + 1)
    return float(np.mean((precision_at_i * hits).sum(axis=1) / np.minimum(k, n_rel)))


def hit_rate_at_k(recommended: object, relevant: object, k: int) -> float:
    """Share of users with at least one relevant item in their top ``k``."""
    hits, _ = _per_user(recommended, relevant, k)
    return float(np.mean(hits.any(axis=1)))


def coverage(recommended: object, n_items: int, k: int | None = None) -> float:
    """Share of the ``n_items`` catalogue that appears in anyone's top ``k`` (all ranks when ``None``)."""
    recs = np.asarray(recommended)
    if recs.ndim != 2:
        raise InputError(f"recommended must be a 2-D array (users × ranks), got shape {recs.shape}")
    n_items = check_positive_int("n_items", n_items)
    top = recs if k is None else recs[:, :k]
    items = np.unique(top[(top >= 0) & (top < n_items)])
    return float(items.size / n_items)


_FUNCTIONS = {
    "precision": precision_at_k,
    "recall": recall_at_k,
    "ndcg": ndcg_at_k,
    "map": map_at_k,
    "hit_rate": hit_rate_at_k,
}


def evaluate(
    recommended: object,
    relevant: object,
    ks: Sequence[int] = (10,),
    metrics: Sequence[str] = METRICS,
) -> dict[str, float]:
    """Every metric at every k, as ``{"precision@10": ..., "coverage@10": ...}``.

    Coverage is over the users that count (those with a held-out item) and the
    catalogue of ``relevant.shape[1]`` items.
    """
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        raise InputError(f"unknown metric {unknown[0]!r}; choose from {', '.join(METRICS)}")
    results: dict[str, float] = {}
    for k in ks:
        recs, rel = _check(recommended, relevant, k)
        users = np.diff(rel.indptr) > 0
        for metric in metrics:
            if metric == "coverage":
                results[f"coverage@{k}"] = coverage(recs[users], rel.shape[1], k)
            else:
                results[f"{metric}@{k}"] = _FUNCTIONS[metric](recs, rel, k)
    return results


def evaluate_split(
    model: Recommender,
    split: Split,
    ks: Sequence[int] = (10,),
    metrics: Sequence[str] = METRICS,
    show_progress: bool = False,
) -> dict[str, float]:
    """Fit ``model`` on ``split.train`` and score its top-``max(ks)`` against ``split.test``.

    The model sees only the items that occur in train (so an EASE fit is as
    small as the training window allows); seen items are never recommended.
    """
    items = split.train_items
    X = split.train[:, items]
    model.fit(X, show_progress=show_progress)
    users = split.test_users
    k = min(max(ks), len(items))
    recs, _ = model.recommend(X[users], k=k, show_progress=show_progress)
    recs = np.where(recs >= 0, items[np.maximum(recs, 0)], -1)
    if k < max(ks):
        recs = np.pad(recs, ((0, 0), (0, max(ks) - k)), constant_values=-1)
    return evaluate(recs, split.test[users], ks=ks, metrics=metrics)
