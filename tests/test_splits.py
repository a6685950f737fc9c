"""Splits: windows that do not overlap, cold-start removal, stable mappings, the chronological scheme."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from accel.data import (
    Interactions,
    chronological_splits,
    split_by_fraction,
    split_by_time,
    synthetic_interactions,
)
from accel.errors import InputError


@pytest.fixture(scope="module")
def inter() -> Interactions:
    df = synthetic_interactions(600, 150, mean_per_user=15, seed=4, start="2023-01-01", days=540)
    return Interactions.from_frame(df, time_col="timestamp")


def times_of(inter: Interactions, X) -> pd.Series:
    """The times of the log's interactions that are stored in ``X``."""
    f = inter.frame
    stored = np.asarray(X[f["user"].to_numpy(), f["item"].to_numpy()]).ravel() > 0
    return f["time"][stored]


def test_split_by_time_windows_and_cold_start():
    df = pd.DataFrame(
        {
            "user_id": [1, 1, 2, 2, 3, 1, 2],
            "item_id": [10, 11, 10, 12, 11, 12, 13],
            "t": [
                "2024-01-01",
                "2024-01-02",
                "2024-01-03",
                "2024-01-04",
                "2024-02-02",
                "2024-02-03",
                "2024-02-04",
            ],
        }
    )
    inter = Interactions.from_frame(df, time_col="t")
    split = split_by_time(inter, train_end="2024-02-01")
    assert split.train.shape == split.test.shape == (3, 4)
    np.testing.assert_array_equal(split.train.toarray(), [[1, 1, 0, 0], [1, 0, 1, 0], [0, 0, 0, 0]])
    # user 3 is new (row dropped); item 13 is new (column dropped); (1, 12) stays
    np.testing.assert_array_equal(split.test.toarray(), [[0, 0, 1, 0], [0, 0, 0, 0], [0, 0, 0, 0]])
    np.testing.assert_array_equal(split.test_users, [0])
    assert split.user_ids is inter.user_ids and split.item_ids is inter.item_ids


def test_time_split_sides_do_not_overlap(inter):
    split = split_by_time(inter, train_start="2023-06-01", train_end="2024-01-01", test_end="2024-03-01")
    train_t, test_t = times_of(inter, split.train), times_of(inter, split.test)
    assert train_t.min() >= pd.Timestamp("2023-06-01") and train_t.max() < pd.Timestamp("2024-01-01")
    assert test_t.min() >= pd.Timestamp("2024-01-01") and test_t.max() < pd.Timestamp("2024-03-01")
    assert split.train.multiply(split.test).nnz == 0
    warm_users = np.diff(split.train.indptr) > 0
    warm_items = np.asarray(split.train.sum(axis=0)).ravel() > 0
    assert not np.diff(split.test.indptr)[~warm_users].any()
    assert not np.asarray(split.test.sum(axis=0)).ravel()[~warm_items].any()


def test_chronological_scheme(inter):
    chrono = chronological_splits(inter, window="90D")
    end = inter.frame["time"].max() + pd.Timedelta(1, "ns")
    w = pd.Timedelta("90D")
    assert chrono.test.test_end == end and chrono.test.train_end == end - w
    assert chrono.test.train_start == end - 2 * w == chrono.valid.train_end
    assert chrono.valid.test_end == end - w and chrono.valid.train_start == end - 3 * w
    # the valid predict window is the test split's train window (train_val → valid, train → test)
    valid_test = times_of(inter, chrono.valid.test)
    assert valid_test.min() >= end - 2 * w and valid_test.max() < end - w
    assert chrono.valid.train.shape == chrono.test.train.shape == (inter.n_users, inter.n_items)
    all_history = chronological_splits(inter, window="90D", train_window="all")
    assert all_history.test.train_start is None
    assert all_history.test.train.nnz > chrono.test.train.nnz


def test_split_by_fraction_per_user(inter):
    split = split_by_fraction(inter, test_fraction=0.25, seed=1)
    counts = np.diff(inter.matrix().indptr)
    train_counts = np.diff(split.train.indptr)
    assert (train_counts >= 1).all()
    np.testing.assert_array_equal(train_counts, counts - np.minimum(np.round(counts * 0.25), counts - 1))
    assert split.train.multiply(split.test).nnz == 0
    latest = split_by_fraction(inter, test_fraction=0.25, order="time")
    f = inter.frame
    last = f.loc[f.groupby("user")["time"].idxmax()]
    held = np.asarray(latest.test[last["user"].to_numpy(), last["item"].to_numpy()]).ravel()
    warm_items = np.asarray(latest.train.sum(axis=0)).ravel() > 0
    holds_out = np.round(counts[last["user"]] * 0.25) >= 1
    assert held[holds_out & warm_items[last["item"]]].all()
    assert held[holds_out].any()


def test_split_errors(inter):
    with pytest.raises(InputError, match="too short"):
        chronological_splits(inter, window="400D")
    with pytest.raises(InputError, match="duration"):
        chronological_splits(inter, window="half a year")
    with pytest.raises(InputError, match="must be after"):
        split_by_time(inter, train_end="2024-01-01", test_end="2023-01-01")
    with pytest.raises(InputError, match="train_end must be a date"):
        split_by_time(inter, train_end="someday")
    with pytest.raises(InputError, match="test side"):
        split_by_time(inter, train_end="2030-01-01")
    with pytest.raises(InputError, match="test_fraction"):
        split_by_fraction(inter, test_fraction=1.5)
    untimed = Interactions.from_frame(inter.frame, "user", "item")
    with pytest.raises(InputError, match="time column"):
        chronological_splits(untimed)


@pytest.mark.parametrize("window", ["30", 30, " 7 ", 2.5])
def test_a_window_without_unit_is_refused_not_read_as_nanoseconds(inter, window):
    with pytest.raises(InputError, match=r"has no unit: write e\.g\."):
        chronological_splits(inter, window=window)
    with pytest.raises(InputError, match=r"train_window .* has no unit"):
        chronological_splits(inter, window="30D", train_window=window)


def test_splits_print_short(inter):
    """A split prints its sizes and windows, never its id arrays."""
    chrono = chronological_splits(inter, window="30D")
    for text in (repr(chrono.valid), str(chrono.test), repr(chrono)):
        assert len(text.splitlines()) <= 4 and len(text) < 600 and "users ×" in text
    assert "train interactions" in repr(split_by_fraction(inter, test_fraction=0.2))
