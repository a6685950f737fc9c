"""Benchmark inputs: synthetic logs, MovieLens ``u.data`` folders or any CSV/Parquet log, split by time."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from accel.data.interactions import Interactions, read_table
from accel.data.splits import ChronologicalSplits, Split, chronological_splits, split_by_time
from accel.data.synthetic import synthetic_interactions
from accel.errors import InputError

#: Share of the log (by time) that the benchmark's test window holds.
DEFAULT_TEST_FRACTION = 0.2


@dataclass(frozen=True)
class Dataset:
    """A named interaction log ready to split."""

    name: str
    interactions: Interactions

    def describe(self) -> dict[str, object]:
        inter = self.interactions
        return {"name": self.name, "users": inter.n_users, "items": inter.n_items, "interactions": len(inter)}


def synthetic(n_users: int, n_items: int, seed: int = 0, mean_per_user: float = 30) -> Dataset:
    """A synthetic log of ``n_users`` × ``n_items`` (see :func:`accel.data.synthetic_interactions`)."""
    frame = synthetic_interactions(n_users, n_items, mean_per_user=mean_per_user, seed=seed)
    inter = Interactions.from_frame(frame, "user_id", "item_id", "timestamp")
    return Dataset(f"synthetic {n_users:,} users × {n_items:,} items", inter)


def movielens(folder: str | os.PathLike[str]) -> Dataset:
    """A MovieLens folder in the ml-100k layout (tab-separated ``u.data``: user, item, rating, time)."""
    folder = Path(folder)
    path = folder / "u.data"
    if not path.is_file():
        raise InputError(f"{folder} has no u.data: --movielens wants an ml-100k style folder")
    frame = read_table(path, "tsv", header=None, names=["user_id", "item_id", "rating", "timestamp"])
    return Dataset(folder.name, Interactions.from_frame(frame, "user_id", "item_id", "timestamp"))


def log_file(
    path: str | os.PathLike[str],
    user_col: str = "user_id",
    item_col: str = "item_id",
    time_col: str = "timestamp",
) -> Dataset:
    """Any CSV, TSV or Parquet interaction log with a time column."""
    frame = read_table(path, id_cols=(user_col, item_col))
    return Dataset(Path(path).name, Interactions.from_frame(frame, user_col, item_col, time_col))


def time_quantile(inter: Interactions, q: float) -> pd.Timestamp:
    """The time before which a share ``q`` of the log's interactions fall."""
    return pd.Timestamp(inter.frame["time"].quantile(q))


def holdout_split(dataset: Dataset, test_fraction: float = DEFAULT_TEST_FRACTION) -> Split:
    """Train on the earliest ``1 - test_fraction`` of the log (by time), test on the rest."""
    if not 0 < test_fraction < 1:
        raise InputError(f"test_fraction must be between 0 and 1, got {test_fraction!r}")
    inter = dataset.interactions
    return split_by_time(inter, train_end=time_quantile(inter, 1 - test_fraction))


def tuning_splits(dataset: Dataset, window_fraction: float = 0.1) -> ChronologicalSplits:
    """Valid (train_val → valid) and test (train → test) splits, windows ``window_fraction`` of the span.

    Both train on all earlier history; see :func:`accel.data.splits.chronological_splits`.
    """
    if not 0 < window_fraction < 0.5:
        raise InputError(f"window_fraction must be between 0 and 0.5, got {window_fraction!r}")
    times = dataset.interactions.frame["time"]
    window = (times.max() - times.min()) * window_fraction
    return chronological_splits(dataset.interactions, window=window, train_window="all")
