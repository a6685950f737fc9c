"""Run each model of a benchmark in its own fresh subprocess and gather the results.

A model that raises, crashes, is killed or runs past ``timeout`` becomes a
``failed`` row with the reason, and the run goes on with the next model.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import scipy.sparse as sp
from tqdm.auto import tqdm

from accel.bench.specs import ModelSpec
from accel.bench.worker import save_split

#: Default wall-clock limit for one model (fit + recommend + metrics), in seconds.
DEFAULT_TIMEOUT = 3600.0


def _failure_reason(proc: subprocess.CompletedProcess[str]) -> str:
    if proc.returncode < 0:
        signal = -proc.returncode
        hint = " (probably out of memory)" if signal == 9 else ""
        return f"worker killed by signal {signal}{hint}"
    lines = [line for line in (proc.stderr or "").strip().splitlines() if line.strip()]
    return f"worker exited with code {proc.returncode}: {lines[-1] if lines else 'no message'}"


def run_one(
    spec: ModelSpec,
    split: Path,
    workdir: Path,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    memory_limit: int | None = None,
    evaluate: bool = True,
    workers: int | None = None,
    scheduler: str | None = None,
    dask_threads: bool = False,
) -> dict[str, Any]:
    """Measure ``spec`` on the saved ``split`` in a fresh Python process; always returns a result row."""
    fd, name = tempfile.mkstemp(prefix="task.", suffix=".json", dir=workdir)
    os.close(fd)
    task_path = Path(name)
    result_path = task_path.with_suffix(".result.json")
    task = {
        "spec": spec.to_dict(),
        "split": str(split),
        "result": str(result_path),
        "memory_limit": memory_limit,
        "evaluate": evaluate,
        "workers": workers,
        "scheduler": scheduler,
        "dask_threads": dask_threads,
    }
    task_path.write_text(json.dumps(task))
    failed = {"model": spec.name, "spec": spec.to_dict(), "status": "failed"}
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "accel.bench.worker", str(task_path)],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return {**failed, "reason": f"timed out after {timeout:g} s"}
    finally:
        task_path.unlink(missing_ok=True)
    if not result_path.is_file():
        return {**failed, "reason": _failure_reason(proc)}
    try:
        return json.loads(result_path.read_text())
    finally:
        result_path.unlink(missing_ok=True)


def run_line(row: dict[str, Any], data: str) -> str:
    """One line about a finished run: model, data, fit seconds and P@10 (or why it did not run)."""
    head = f"{row['model']} on {data}" if data else row["model"]
    if row.get("status") != "ok":
        return f"{head}: {row['status']}" + (f" ({row['reason']})" if row.get("reason") else "")
    p10 = row.get("precision@10")
    score = f", P@10 {p10:.4f}" if p10 is not None else ""
    return f"{head}: fit {row['fit_s']:.2f} s, recommend-all {row['recommend_s']:.2f} s{score}"


def say(line: str, show_progress: bool) -> None:
    """Print ``line`` on stderr (above any progress bar), terminal or not, unless quiet."""
    if show_progress:
        tqdm.write(line, file=sys.stderr)


def run_models(
    specs: Sequence[ModelSpec],
    train: sp.csr_matrix,
    test: sp.csr_matrix,
    workdir: Path,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    memory_limit: int | None = None,
    evaluate: bool = True,
    workers: int | None = None,
    scheduler: str | None = None,
    dask_threads: bool = False,
    show_progress: bool = True,
    desc: str = "bench",
    data: str = "",
) -> list[dict[str, Any]]:
    """Every spec measured on ``train``/``test``, one subprocess each, in order.

    With ``show_progress`` each finished run prints a line on stderr (see
    :func:`run_line`; ``data`` names the data set) and a terminal also gets a bar.
    """
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    split = save_split(workdir / f"split-{train.shape[0]}x{train.shape[1]}.npz", train, test)
    results = []
    try:
        bar = tqdm(specs, desc=desc, unit="model", disable=None if show_progress else True)
        for spec in bar:
            bar.set_postfix_str(spec.name)
            row = run_one(
                spec,
                split,
                workdir,
                timeout=timeout,
                memory_limit=memory_limit,
                evaluate=evaluate,
                workers=workers,
                scheduler=scheduler,
                dask_threads=dask_threads,
            )
            say(run_line(row, data), show_progress)
            results.append(row)
    finally:
        split.unlink(missing_ok=True)
    return results
