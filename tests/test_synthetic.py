"""The synthetic generator: reproducible, lean dtypes, skewed popularity and learnable cluster structure."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from accel import EASE, TopPopular
from accel.data import Interactions, split_by_fraction, synthetic_interactions
from accel.errors import InputError
from accel.metrics import evaluate_split


def test_columns_dtypes_and_ranges():
    df = synthetic_interactions(500, 200, mean_per_user=10, seed=1, start="2022-03-01", days=30)
    assert list(df.columns) == ["user_id", "item_id", "timestamp"]
    assert df["user_id"].dtype == np.int32 and df["item_id"].dtype == np.int32
    assert pd.api.types.is_datetime64_any_dtype(df["timestamp"])
    assert df["user_id"].nunique() == 500  # every user has at least one interaction
    assert df["item_id"].between(0, 199).all()
    assert df["timestamp"].min() >= pd.Timestamp("2022-03-01")
    assert df["timestamp"].max() < pd.Timestamp("2022-03-31")
    assert abs(len(df) / 500 - 10) < 1


def test_reproducible_from_seed():
    a = synthetic_interactions(300, 100, seed=5)
    b = synthetic_interactions(300, 100, seed=5)
    c = synthetic_interactions(300, 100, seed=6)
    pd.testing.assert_frame_equal(a, b)
    assert not a.equals(c)


def test_popularity_is_skewed():
    df = synthetic_interactions(2000, 500, seed=2, popularity_exponent=1.0)
    counts = np.sort(df["item_id"].value_counts().to_numpy())[::-1]
    assert counts[:25].sum() > 0.3 * counts.sum()  # the top 5% of items take a large share


def test_item_item_structure_beats_popularity():
    df = synthetic_interactions(1500, 200, mean_per_user=20, popularity_exponent=0.7, seed=3)
    split = split_by_fraction(Interactions.from_frame(df), test_fraction=0.3, seed=0)
    ease = evaluate_split(EASE(l2=100, backend="numpy"), split, metrics=["precision"])
    pop = evaluate_split(TopPopular(backend="numpy"), split, metrics=["precision"])
    assert ease["precision@10"] > 1.5 * pop["precision@10"]


@pytest.mark.parametrize(
    "kwargs",
    [{"n_users": 0}, {"n_items": -1}, {"mean_per_user": 0.5}, {"start": "not a date"}, {"days": 0}],
)
def test_bad_parameters(kwargs):
    params = {"n_users": 10, "n_items": 10} | kwargs
    with pytest.raises(InputError):
        synthetic_interactions(**params)


def test_n_interactions_sets_the_mean_per_user():
    df = synthetic_interactions(400, 100, n_interactions=4000, seed=1)
    assert abs(len(df) - 4000) < 300
    with pytest.raises(InputError, match="at least n_users"):
        synthetic_interactions(400, 100, n_interactions=100)


def test_synthetic_matrix_is_binary_reproducible_and_skewed():
    from accel.data.synthetic import synthetic_matrix

    X = synthetic_matrix(3000, 800, n_interactions=60_000, seed=4, chunk=7_000)
    assert X.shape == (3000, 800) and X.dtype == np.float32 and (X.data == 1).all()
    assert X.has_sorted_indices and (np.diff(X.indptr) >= 1).all()  # every user has an item
    copy = X.copy()
    copy.sum_duplicates()
    assert copy.nnz == X.nnz and 0.5 * 60_000 < X.nnz <= 1.05 * 60_000  # a repeated item counts once
    Y = synthetic_matrix(3000, 800, n_interactions=60_000, seed=4, chunk=7_000)
    assert (X != Y).nnz == 0
    Z = synthetic_matrix(3000, 800, n_interactions=60_000, seed=5, chunk=7_000)
    assert (X != Z).nnz > 0
    counts = np.sort(np.bincount(X.indices, minlength=800))[::-1]
    assert counts[:40].sum() > 0.3 * counts.sum()


def test_synthetic_matrix_has_the_log_s_cluster_structure():
    """Each user's items come mostly from one taste cluster, as in synthetic_interactions."""
    from accel.data.synthetic import synthetic_matrix

    X = synthetic_matrix(1500, 200, mean_per_user=20, popularity_exponent=0.7, seed=3, chunk=5_000)
    rows, cols = X.nonzero()
    frame = pd.DataFrame({"user_id": rows, "item_id": cols, "timestamp": pd.Timestamp("2024-01-01")})
    split = split_by_fraction(Interactions.from_frame(frame), test_fraction=0.3, seed=0)
    ease = evaluate_split(EASE(l2=100, backend="numpy"), split, metrics=["precision"])
    pop = evaluate_split(TopPopular(backend="numpy"), split, metrics=["precision"])
    assert ease["precision@10"] > 1.5 * pop["precision@10"]
