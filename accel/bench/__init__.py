"""Benchmarks: each model fitted and scored in a fresh subprocess, reported as JSON, Markdown and PNG.

* :func:`run_benchmark` - every model on one dataset (split by time), plus an optional scaling sweep.
* :func:`run_sweep` - growing synthetic catalogues until each model stops fitting.
* :func:`default_specs` / :class:`ModelSpec` - which models run, with which parameters.
"""

from accel.bench.datasets import Dataset, holdout_split, log_file, movielens, synthetic
from accel.bench.specs import ModelSpec, default_specs, load_tuned_params
from accel.bench.suite import run_benchmark
from accel.bench.sweep import DEFAULT_SWEEP_ITEMS, run_sweep, sweep_specs

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
