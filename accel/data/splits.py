"""Train/test splits of an interaction log that keep its id mappings and drop cold-start rows.

A :class:`Split` holds ``train`` and ``test`` matrices of the same shape
``(n_users, n_items)`` as the whole log. ``test`` keeps only users and items
that occur in ``train`` (a model cannot be judged on what it never saw), so
other users' test rows are empty and other items' test columns are zero.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from accel.data.interactions import Interactions, to_timestamp
from accel.errors import InputError


@dataclass(frozen=True)
class Split:
    """One train/test split; the windows are ``None`` for splits not made by time."""

    train: sp.csr_matrix
    test: sp.csr_matrix
    user_ids: np.ndarray
    item_ids: np.ndarray
    train_start: pd.Timestamp | None = None
    train_end: pd.Timestamp | None = None
    test_end: pd.Timestamp | None = None

    @property
    def test_users(self) -> np.ndarray:
        """Indices of users with at least one (warm) test interaction."""
        return np.flatnonzero(np.diff(self.test.indptr) > 0)

    @property
    def train_items(self) -> np.ndarray:
        """Indices of items with at least one train interaction."""
        return np.flatnonzero(np.diff(self.train.tocsc().indptr) > 0)

    def __repr__(self) -> str:
        """A short summary (the dataclass default would print every user and item id)."""
        return f"Split({self.describe()}; {len(self.user_ids):,} users × {len(self.item_ids):,} items)"

    def describe(self) -> str:
        """One line: the windows (if any) and the sizes of both sides."""
        window = ""
        if self.train_end is not None:
            start = "start" if self.train_start is None else f"{self.train_start:%Y-%m-%d}"
            window = f"train {start}..{self.train_end:%Y-%m-%d}, test ..{self.test_end:%Y-%m-%d}: "
        return (
            f"{window}{self.train.nnz:,} train interactions, {self.test.nnz:,} test interactions "
            f"of {len(self.test_users):,} warm users"
        )


def _make_split(train: sp.csr_matrix, test: sp.csr_matrix, inter: Interactions, **windows: object) -> Split:
    """Drop test rows of users and columns of items that train lacks, and wrap up."""
    warm_users = (np.diff(train.indptr) > 0).astype(np.float32)
    warm_items = (np.asarray(train.sum(axis=0)).ravel() > 0).astype(np.float32)
    test = sp.diags(warm_users).dot(test).dot(sp.diags(warm_items)).tocsr()
    test.eliminate_zeros()
    test.sort_indices()
    if train.nnz == 0:
        raise InputError("the train side of the split has no interactions")
    if test.nnz == 0:
        raise InputError("the test side of the split has no interactions of users and items seen in train")
    return Split(train.astype(np.float32), test.astype(np.float32), inter.user_ids, inter.item_ids, **windows)


def split_by_time(
    inter: Interactions, *, train_end: object, test_end: object = None, train_start: object = None
) -> Split:
    """Train on ``[train_start, train_end)``, test on ``[train_end, test_end)``; ``None`` bounds are open."""
    train_end = to_timestamp(train_end, "train_end")
    test_end = None if test_end is None else to_timestamp(test_end, "test_end")
    train_start = None if train_start is None else to_timestamp(train_start, "train_start")
    if test_end is not None and test_end <= train_end:
        raise InputError(f"test_end ({test_end}) must be after train_end ({train_end})")
    if train_start is not None and train_start >= train_end:
        raise InputError(f"train_start ({train_start}) must be before train_end ({train_end})")
    train = inter.between(train_start, train_end).matrix()
    test = inter.between(train_end, test_end).matrix()
    if test_end is None:
        test_end = inter.frame["time"].max() + pd.Timedelta(1, "ns")
    return _make_split(train, test, inter, train_start=train_start, train_end=train_end, test_end=test_end)


def split_by_fraction(
    inter: Interactions, *, test_fraction: float = 0.2, order: str = "random", seed: int = 0
) -> Split:
    """Hold out ``test_fraction`` of each user's interactions (rounded; at least one stays in train).

    ``order="random"`` holds out a random share (seeded); ``order="time"``
    holds out each user's latest interactions (a log with times is needed).
    """
    if not 0 < test_fraction < 1:
        raise InputError(f"test_fraction must be between 0 and 1, got {test_fraction!r}")
    if order not in ("random", "time"):
        raise InputError(f"order must be 'random' or 'time', got {order!r}")
    frame = inter.frame
    users = frame["user"].to_numpy()
    if order == "time":
        if not inter.has_time:
            raise InputError("order='time' needs a log with times: pass a time column")
        key = frame["time"].to_numpy().astype("datetime64[ns]").view(np.int64)
    else:
        key = np.random.default_rng(seed).random(len(frame))
    by_user = np.lexsort((key, users))
    counts = np.bincount(users, minlength=inter.n_users)
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    rank = np.empty(len(frame), dtype=np.int64)
    rank[by_user] = np.arange(len(frame)) - starts[users[by_user]]
    n_test = np.minimum(np.round(counts * test_fraction).astype(np.int64), np.maximum(counts - 1, 0))
    is_test = rank >= (counts - n_test)[users]
    return _make_split(inter.matrix(~is_test), inter.matrix(is_test), inter)


@dataclass(frozen=True)
class ChronologicalSplits:
    """The two splits of the seeds' scheme: tune on ``valid``, report on ``test``."""

    valid: Split
    test: Split

    def __repr__(self) -> str:
        return f"ChronologicalSplits(\n  valid={self.valid!r},\n  test={self.test!r}\n)"


def chronological_splits(
    inter: Interactions, window: str = "180D", train_window: str | None = None, end: object = None
) -> ChronologicalSplits:
    """Back-to-back time windows ending at ``end`` (default: just after the last interaction).

    With ``w = window`` and ``t = train_window`` (default ``w``)::

        valid split:  train_val [end-2w-t, end-2w)   predict [end-2w, end-w)
        test split:   train     [end-w-t,  end-w)    predict [end-w,  end)

    Tune on ``valid`` (fit on train_val, score its predict window), then report
    ``test`` (refit on train, score the last window). With ``t == w`` the
    validation predict window is exactly the test split's train window, as in
    the 6-month/6-month tutorials. ``train_window="all"`` trains on all history
    before each predict window. Within a split the windows never overlap, and
    each split drops cold-start users and items from its test side.
    """
    if not inter.has_time:
        raise InputError("chronological splits need a log with times: pass a time column")
    w = _to_timedelta(window, "window")
    t = None if train_window == "all" else _to_timedelta(train_window or window, "train_window")
    end = inter.frame["time"].max() + pd.Timedelta(1, "ns") if end is None else to_timestamp(end, "end")
    first = inter.frame["time"].min()
    splits = []
    for name, test_end in (("valid", end - w), ("test", end)):
        train_end = test_end - w
        train_start = None if t is None else train_end - t
        if train_end <= first:
            raise InputError(
                f"the log spans {first:%Y-%m-%d}..{end:%Y-%m-%d}, too short for a {name} split "
                f"with {window} windows: use a shorter window"
            )
        try:
            splits.append(
                split_by_time(inter, train_start=train_start, train_end=train_end, test_end=test_end)
            )
        except InputError as exc:
            raise InputError(f"{name} split ({train_end:%Y-%m-%d}..{test_end:%Y-%m-%d}): {exc}") from None
    return ChronologicalSplits(valid=splits[0], test=splits[1])


def _to_timedelta(value: object, name: str) -> pd.Timedelta:
    """``value`` as a positive duration; a bare number has no unit and is refused (not read as ns)."""
    if isinstance(value, (int, float, np.number)) or (
        isinstance(value, str) and re.fullmatch(r"\s*[+-]?\d+(\.\d*)?\s*", value)
    ):
        raise InputError(
            f"{name} {value!r} has no unit: write e.g. '{value}D' for days or '{value}h' for hours"
        )
    try:
        delta = pd.Timedelta(value)
    except (ValueError, TypeError):
        raise InputError(f"{name} must be a duration such as '180D', got {value!r}") from None
    if pd.isna(delta) or delta <= pd.Timedelta(0):
        raise InputError(f"{name} must be a positive duration, got {value!r}")
    return delta
