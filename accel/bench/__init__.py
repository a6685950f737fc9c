"""Benchmarks: each model fitted and scored in a fresh subprocess, reported as JSON, Markdown and PNG.

* :func:`run_benchmark` - every model on one dataset (split by time), plus an optional scaling sweep.
* :func:`run_sweep` - growing synthetic catalogues until each model stops fitting.
* :func:`default_specs` / :class:`ModelSpec` - which models run, with which parameters.
"""

import importlib
from typing import Any

from accel.bench.datasets import Dataset, holdout_split, log_file, movielens, synthetic
from accel.bench.specs import ModelSpec, default_specs, load_tuned_params

#: Loaded on first use: they draw with matplotlib, which each model's worker process never needs.
_LAZY = {
    "run_benchmark": "suite",
    "DEFAULT_SWEEP_ITEMS": "sweep",
    "run_sweep": "sweep",
    "sweep_specs": "sweep",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f"accel.bench.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'accel.bench' has no attribute {name!r}")


__all__ = [
    "DEFAULT_SWEEP_ITEMS",
    "Dataset",
    "ModelSpec",
    "default_specs",
    "holdout_split",
    "load_tuned_params",
    "log_file",
    "movielens",
    "run_benchmark",
    "run_sweep",
    "sweep_specs",
    "synthetic",
]
