"""Scaling sweep: the same models on synthetic logs of growing catalogue size, until each stops fitting.

At each size a model runs in its own subprocess as in the main benchmark. An
EASE fit whose ``EASE.memory_required`` exceeds free memory is reported
``does not fit`` without trying; once a model did not fit, failed or timed out,
larger sizes are ``skipped`` for it, and an EASE fit predicted (n³ from its last
fit) to run past the timeout is skipped too.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from accel.bench.datasets import holdout_split, synthetic
from accel.bench.runner import DEFAULT_TIMEOUT, run_line, run_models, say
from accel.bench.specs import ModelSpec, default_specs

DEFAULT_SWEEP_ITEMS: tuple[int, ...] = (2000, 4000, 8000, 16000, 32000, 64000)
DEFAULT_SWEEP_USERS = 20000
SWEEP_SIMILARITIES = ("cosine", "rp3beta")


def sweep_specs(
    tuned: dict[str, Any] | None = None, backends: Sequence[str] | None = None
) -> list[ModelSpec]:
    """The benchmark's models (:func:`default_specs`) with two ItemKNN similarities and no Dask row."""
    return default_specs(tuned, SWEEP_SIMILARITIES, None if backends is None else tuple(backends), dask=False)


def run_sweep(
    items: Sequence[int],
    workdir: Path,
    *,
    n_users: int = DEFAULT_SWEEP_USERS,
    specs: Sequence[ModelSpec] | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    memory_limit: int | None = None,
    seed: int = 0,
    show_progress: bool = True,
) -> list[dict[str, Any]]:
    """One result row per (catalogue size, model); rows carry ``catalogue_items``."""
    specs = list(specs if specs is not None else sweep_specs())
    stopped: dict[str, str] = {}
    last_fit: dict[str, tuple[int, float]] = {}
    rows: list[dict[str, Any]] = []
    for n_items in sorted(int(n) for n in items):
        dataset = synthetic(n_users, n_items, seed=seed)
        split = holdout_split(dataset)
        to_run = []
        for spec in specs:
            reason = stopped.get(spec.name) or _predicted_too_slow(spec, n_items, last_fit, timeout)
            if reason:
                row: dict[str, Any] = {
                    "model": spec.name,
                    "spec": spec.to_dict(),
                    "status": "skipped",
                    "reason": reason,
                    "catalogue_items": n_items,
                }
                say(run_line(row, dataset.name), show_progress)
                rows.append(row)
            else:
                to_run.append(spec)
        results = run_models(
            to_run,
            split.train,
            split.test,
            workdir,
            timeout=timeout,
            memory_limit=memory_limit,
            show_progress=show_progress,
            desc=f"sweep {n_items:,} items",
            data=dataset.name,
        )
        for row in results:
            row["catalogue_items"] = n_items
            if row["status"] == "ok":
                last_fit[row["model"]] = (n_items, row["fit_s"])
            else:
                stopped[row["model"]] = f"{row['status']} at {n_items:,} items"
            rows.append(row)
    return rows


def _predicted_too_slow(
    spec: ModelSpec, n_items: int, last_fit: dict[str, tuple[int, float]], timeout: float
) -> str | None:
    """For EASE (fit time ∝ n³), a reason to skip when the extrapolated fit exceeds ``timeout``."""
    if spec.model != "EASE" or spec.name not in last_fit:
        return None
    n_last, seconds = last_fit[spec.name]
    predicted = seconds * (n_items / n_last) ** 3
    if predicted <= timeout:
        return None
    basis = f"n³ from {seconds:.1f} s at {n_last:,} items"
    return f"predicted fit {predicted:,.0f} s ({basis}) exceeds {timeout:g} s"
