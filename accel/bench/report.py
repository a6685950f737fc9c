"""Benchmark reports: the machine and versions, a JSON file and a Markdown table."""

from __future__ import annotations

import json
import os
import platform
import subprocess
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import psutil

from accel.atomic import atomic_file
from accel.errors import format_bytes

#: Report columns: (result key, header, formatter name).
COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("fit_s", "fit s", "seconds"),
    ("recommend_s", "recommend-all s", "seconds"),
    ("peak_rss_bytes", "peak RSS", "bytes"),
    ("peak_gpu_bytes", "peak GPU", "bytes"),
    ("precision@10", "P@10", "metric"),
    ("recall@20", "R@20", "metric"),
    ("ndcg@10", "NDCG@10", "metric"),
    ("map@12", "MAP@12", "metric"),
    ("coverage@10", "coverage@10", "metric"),
)
_PACKAGES = (
    "numpy",
    "scipy",
    "numba",
    "similaripy",
    "pandas",
    "dask",
    "cupy-cuda12x",
    "cupy-cuda13x",
    "cupy",
)


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _gpus() -> list[str]:
    """GPU names and memory from ``nvidia-smi`` (no CUDA context is made in this process)."""
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.strip() for line in out.splitlines() if line.strip()]


def _git_commit() -> str | None:
    root = Path(__file__).resolve().parents[2]
    try:
        return (
            subprocess.run(
                ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10, check=True
            ).stdout.strip()
            or None
        )
    except (OSError, subprocess.SubprocessError):
        return None


def machine_info() -> dict[str, Any]:
    """What ran the benchmark: CPU, cores, RAM, GPUs, backends, package versions and the git commit."""
    from accel import __version__
    from accel.backends import available_backends

    versions = {"python": platform.python_version(), "accel": __version__}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "cpu": _cpu_model(),
        "cpu_cores": cores,
        "ram_bytes": int(psutil.virtual_memory().total),
        "gpus": _gpus(),
        "backends": available_backends(),
        "platform": platform.platform(),
        "versions": versions,
        "git_commit": _git_commit(),
    }


def _format(value: Any, kind: str) -> str:
    if value is None:
        return "–"
    if kind == "seconds":
        return f"{value:.2f}" if value < 100 else f"{value:,.0f}"
    if kind == "bytes":
        return format_bytes(value)
    return f"{value:.4f}"


def markdown_table(results: Sequence[dict[str, Any]]) -> str:
    """One row per model; a model that did not fit or failed says so across its cells."""
    header = "| model | " + " | ".join(h for _, h, _ in COLUMNS) + " |"
    lines = [header, "|" + "---|" * (len(COLUMNS) + 1)]
    for row in results:
        if row.get("status") != "ok":
            note = row["status"] + (f": {row['reason']}" if row.get("reason") else "")
            cells = [note.replace("|", "/").replace("\n", " ")] + [""] * (len(COLUMNS) - 1)
        else:
            cells = [_format(row.get(key), kind) for key, _, kind in COLUMNS]
        lines.append(f"| {row['model']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def machine_markdown(machine: dict[str, Any]) -> str:
    """A short paragraph naming the hardware and versions."""
    versions = ", ".join(f"{k} {v}" for k, v in machine["versions"].items())
    gpus = "; ".join(machine["gpus"]) or "none"
    commit = (machine.get("git_commit") or "unknown")[:12]
    return (
        f"Machine: {machine['cpu']}, {machine['cpu_cores']} cores, {format_bytes(machine['ram_bytes'])} RAM; "
        f"GPU: {gpus}. Versions: {versions}. Commit {commit}."
    )


def machine_summary(machine: dict[str, Any]) -> str:
    """The machine in a few words, for plot titles: CPU, cores and GPUs."""
    text = f"{machine['cpu']}, {machine['cpu_cores']} cores"
    return text + (f", {'; '.join(machine['gpus'])}" if machine.get("gpus") else ", no GPU")


def write_json(path: str | os.PathLike[str], payload: dict[str, Any]) -> Path:
    """Write ``payload`` as indented JSON, atomically."""
    path = Path(path)
    with atomic_file(path) as tmp:
        tmp.write_text(json.dumps(payload, indent=2, default=str))
    return path


def write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` atomically."""
    path = Path(path)
    with atomic_file(path) as tmp:
        tmp.write_text(text)
    return path
