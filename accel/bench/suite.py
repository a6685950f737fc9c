"""The whole benchmark: every model on one dataset, an optional scaling sweep, and the report files."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from accel.bench.datasets import Dataset, holdout_split
from accel.bench.plots import plot_accuracy, plot_scaling
from accel.bench.report import (
    machine_info,
    machine_markdown,
    machine_summary,
    markdown_table,
    write_json,
    write_text,
)
from accel.bench.runner import DEFAULT_TIMEOUT, run_models
from accel.bench.specs import ModelSpec
from accel.bench.sweep import run_sweep
from accel.errors import InputError

RESULTS_JSON = "results.json"
RESULTS_MD = "results.md"


def run_benchmark(
    dataset: Dataset | None,
    specs: Sequence[ModelSpec],
    out_dir: str | os.PathLike[str],
    *,
    test_fraction: float = 0.2,
    sweep_items: Sequence[int] = (),
    sweep_users: int = 20000,
    sweep_specs: Sequence[ModelSpec] | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    memory_limit: int | None = None,
    workers: int | None = None,
    scheduler: str | None = None,
    dask_threads: bool = False,
    show_progress: bool = True,
) -> dict[str, Any]:
    """Run the models on ``dataset`` (split by time) and the sweep; write JSON, Markdown, PNGs to ``out_dir``.

    The catalogue is the items seen in the training window (as in
    :func:`accel.metrics.evaluate_split`); "recommend-all" times the top-20 of
    every user with a training interaction. ``dask_threads`` scores the Dask row on a cluster
    of threads in its worker process (no processes to start). Returns the JSON payload, plus ``files``:
    the paths written.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if not os.access(out, os.W_OK):
        raise InputError(f"cannot write results to {out}: the folder is not writable")
    started = time.time()
    payload: dict[str, Any] = {
        "machine": machine_info(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
    }
    workdir = Path(tempfile.mkdtemp(prefix=".bench-", dir=out))
    try:
        if dataset is not None:
            split = holdout_split(dataset, test_fraction)
            items = split.train_items
            train, test = split.train[:, items], split.test[:, items]
            payload["dataset"] = {
                **dataset.describe(),
                "catalogue_items": int(items.size),
                "train_interactions": int(train.nnz),
                "test_interactions": int(test.nnz),
                "test_users": int(split.test_users.size),
                "train_end": str(split.train_end),
            }
            payload["results"] = run_models(
                specs,
                train,
                test,
                workdir,
                timeout=timeout,
                memory_limit=memory_limit,
                workers=workers,
                scheduler=scheduler,
                dask_threads=dask_threads,
                show_progress=show_progress,
                data=dataset.name,
            )
        if sweep_items:
            payload["sweep"] = run_sweep(
                sweep_items,
                workdir,
                n_users=sweep_users,
                specs=sweep_specs,
                timeout=timeout,
                memory_limit=memory_limit,
                show_progress=show_progress,
            )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    payload["wall_s"] = time.time() - started
    payload["files"] = [str(path) for path in write_report(payload, out)]
    return payload


def write_report(payload: dict[str, Any], out_dir: Path) -> list[Path]:
    """``results.json``, ``results.md`` and the plots for whatever parts ``payload`` has."""
    paths = [write_json(out_dir / RESULTS_JSON, payload)]
    sections = ["# accel benchmark", "", machine_markdown(payload["machine"]), ""]
    if "results" in payload:
        d = payload["dataset"]
        sections += [
            f"## {d['name']}",
            "",
            f"{d['users']:,} users, {d['catalogue_items']:,} items in the training window, "
            f"{d['train_interactions']:,} train / {d['test_interactions']:,} test interactions "
            f"({d['test_users']:,} test users; split by time at {d['train_end']}).",
            "",
            markdown_table(payload["results"]),
            "",
        ]
        context = f"{d['name']} on {machine_summary(payload['machine'])}"
        paths.append(plot_accuracy(payload["results"], out_dir, context=context))
    if "sweep" in payload:
        sections += ["## Scaling sweep (synthetic)", ""]
        for n_items in sorted({row["catalogue_items"] for row in payload["sweep"]}):
            rows = [r for r in payload["sweep"] if r["catalogue_items"] == n_items]
            sections += [f"### {n_items:,} items", "", markdown_table(rows), ""]
        users = {r["n_users"] for r in payload["sweep"] if r.get("n_users")}
        data = f"synthetic, {max(users):,} users" if users else "synthetic"
        paths += plot_scaling(
            payload["sweep"], out_dir, context=f"{data} on {machine_summary(payload['machine'])}"
        )
    paths.append(write_text(out_dir / RESULTS_MD, "\n".join(sections)))
    return paths
