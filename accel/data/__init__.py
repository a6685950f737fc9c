"""Interaction logs: loading, id mappings, train/test splits and synthetic data."""

from accel.data.interactions import Interactions, read_table
from accel.data.splits import (
    ChronologicalSplits,
    Split,
    chronological_splits,
    split_by_fraction,
    split_by_time,
)
from accel.data.synthetic import synthetic_interactions

__all__ = [
    "ChronologicalSplits",
    "Interactions",
    "Split",
    "chronological_splits",
    "read_table",
    "split_by_fraction",
    "split_by_time",
    "synthetic_interactions",
]
