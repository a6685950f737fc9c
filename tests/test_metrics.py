"""Metrics against hand-computed values and a plain loop-based implementation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp

from accel import metrics
from accel.errors import InputError


def relevant_matrix(rows: list[list[int]], n_items: int) -> sp.csr_matrix:
    data = [(u, i) for u, items in enumerate(rows) for i in items]
    r, c = zip(*data, strict=True) if data else ((), ())
    return sp.csr_matrix((np.ones(len(r)), (r, c)), shape=(len(rows), n_items))


def test_hand_computed_values():
    recs = np.array([[1, 2, 3, 4], [5, 6, 7, 8], [0, -1, -1, -1]])
    rel = relevant_matrix([[2, 4, 9], [], [5]], n_items=10)
    # user 0 hits at ranks 2 and 4 of 4 with 3 relevant; user 1 does not count; user 2 has no hit
    assert metrics.precision_at_k(recs, rel, 4) == pytest.approx((2 / 4 + 0) / 2)
    assert metrics.recall_at_k(recs, rel, 4) == pytest.approx((2 / 3 + 0) / 2)
    assert metrics.recall_at_k(recs, rel, 2) == pytest.approx((1 / 2 + 0) / 2)  # min(k, |rel|) = 2
    dcg = 1 / math.log2(3) + 1 / math.log2(5)
    idcg = 1 + 1 / math.log2(3) + 1 / math.log2(4)
    assert metrics.ndcg_at_k(recs, rel, 4) == pytest.approx((dcg / idcg) / 2)
    assert metrics.map_at_k(recs, rel, 4) == pytest.approx(((1 / 2 + 2 / 4) / 3) / 2)
    assert metrics.hit_rate_at_k(recs, rel, 4) == pytest.approx(0.5)
    assert metrics.coverage(recs, 10) == pytest.approx(9 / 10)
    assert metrics.coverage(recs, 10, k=1) == pytest.approx(3 / 10)


def test_perfect_ranking_scores_one():
    recs = np.array([[3, 1, 0], [2, 0, 1]])
    rel = relevant_matrix([[1, 3], [2]], n_items=4)
    for fn in (metrics.recall_at_k, metrics.ndcg_at_k, metrics.map_at_k, metrics.hit_rate_at_k):
        assert fn(recs, rel, 2) == pytest.approx(1.0)


def loop_metrics(recs: np.ndarray, rel: sp.csr_matrix, k: int) -> dict[str, float]:
    """A direct, one-user-at-a-time reading of the definitions."""
    sums = {"precision": 0.0, "recall": 0.0, "ndcg": 0.0, "map": 0.0, "hit_rate": 0.0}
    n = 0
    for u in range(recs.shape[0]):
        truth = set(rel[u].indices.tolist())
        if not truth:
            continue
        n += 1
        hits = [1 if item in truth else 0 for item in recs[u, :k].tolist()]
        denom = min(k, len(truth))
        sums["precision"] += sum(hits) / k
        sums["recall"] += sum(hits) / denom
        dcg = sum(h / math.log2(i + 2) for i, h in enumerate(hits))
        sums["ndcg"] += dcg / sum(1 / math.log2(i + 2) for i in range(denom))
        ap, found = 0.0, 0
        for i, h in enumerate(hits):
            if h:
                found += 1
                ap += found / (i + 1)
        sums["map"] += ap / denom
        sums["hit_rate"] += 1.0 if any(hits) else 0.0
    return {name: value / n for name, value in sums.items()}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_loop_implementation(seed):
    rng = np.random.default_rng(seed)
    n_users, n_items, k = 200, 40, 10
    recs = np.stack([rng.permutation(n_items)[:15] for _ in range(n_users)])
    recs[rng.random(recs.shape) < 0.05] = -1
    rel = sp.random(n_users, n_items, density=0.08, random_state=seed, format="csr")
    rel.data[:] = 1
    expected = loop_metrics(recs, rel, k)
    got = metrics.evaluate(recs, rel, ks=(k,))
    for name, value in expected.items():
        assert got[f"{name}@{k}"] == pytest.approx(value), name
    users = np.diff(rel.indptr) > 0
    assert got["coverage@10"] == pytest.approx(len(set(recs[users, :k].ravel()) - {-1}) / n_items)


def test_evaluate_keys_and_metric_choice():
    recs = np.array([[0, 1, 2]])
    rel = relevant_matrix([[1]], 3)
    assert set(metrics.evaluate(recs, rel, ks=(1, 3), metrics=["precision", "map"])) == {
        "precision@1",
        "map@1",
        "precision@3",
        "map@3",
    }
    with pytest.raises(InputError, match="unknown metric 'auc'"):
        metrics.evaluate(recs, rel, metrics=["auc"])


@pytest.mark.parametrize(
    ("recs", "rel", "k", "message"),
    [
        (np.array([[0, 1]]), relevant_matrix([[1]], 3), 3, "fewer than k=3"),
        (np.array([[0, 1], [1, 2]]), relevant_matrix([[1]], 3), 1, "2 users but relevant has 1"),
        (np.array([0, 1]), relevant_matrix([[1]], 3), 1, "2-D"),
        (np.array([[0, 1]]), relevant_matrix([[]], 3), 1, "no user has a held-out item"),
        (np.array([[0, 1]]), np.array([[1, 0, 0]]), 1, "SciPy sparse"),
    ],
)
def test_bad_input(recs, rel, k, message):
    with pytest.raises(InputError, match=message):
        metrics.precision_at_k(recs, rel, k)
