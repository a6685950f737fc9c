"""PNG plots of benchmark results (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from accel.atomic import atomic_file


def _save(fig: Any, path: Path) -> Path:
    with atomic_file(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path


def _series(rows: Sequence[dict[str, Any]], key: str) -> dict[str, tuple[list[int], list[float]]]:
    """Per model, the catalogue sizes and values of ``key`` where the run succeeded."""
    series: dict[str, tuple[list[int], list[float]]] = {}
    for row in sorted(rows, key=lambda r: r["catalogue_items"]):
        if row.get("status") == "ok" and row.get(key) is not None:
            xs, ys = series.setdefault(row["model"], ([], []))
            xs.append(row["catalogue_items"])
            ys.append(row[key])
    return series


def plot_scaling(rows: Sequence[dict[str, Any]], out_dir: str | os.PathLike[str]) -> list[Path]:
    """``sweep_time.png`` (fit and recommend seconds) and ``sweep_memory.png`` vs catalogue size."""
    out_dir = Path(out_dir)
    paths = []
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), sharex=True)
    for ax, key, title in ((axes[0], "fit_s", "fit"), (axes[1], "recommend_s", "recommend all users")):
        for model, (xs, ys) in _series(rows, key).items():
            ax.plot(xs, ys, marker="o", label=model)
        ax.set(xscale="log", yscale="log", xlabel="catalogue size (items)", ylabel="seconds", title=title)
        ax.grid(True, which="both", alpha=0.3)
    _mark_failures(axes[0], rows)
    axes[0].legend(fontsize=8)
    paths.append(_save(fig, out_dir / "sweep_time.png"))

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for key, style in (("peak_rss_bytes", "-"), ("peak_gpu_bytes", "--")):
        for model, (xs, ys) in _series(rows, key).items():
            kind = "host RSS" if key == "peak_rss_bytes" else "GPU pool"
            ax.plot(xs, [y / 2**30 for y in ys], style, marker="o", label=f"{model} ({kind})")
    ax.set(
        xscale="log",
        yscale="log",
        xlabel="catalogue size (items)",
        ylabel="peak memory (GiB)",
        title="peak memory",
    )
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    paths.append(_save(fig, out_dir / "sweep_memory.png"))
    return paths


def _mark_failures(ax: Any, rows: Sequence[dict[str, Any]]) -> None:
    """A cross on the x axis where a model did not fit or failed, labelled once."""
    stops = [r for r in rows if r.get("status") != "ok"]
    if not stops:
        return
    for row in stops:
        ax.axvline(row["catalogue_items"], color="grey", alpha=0.2)
    ax.plot(
        [r["catalogue_items"] for r in stops],
        [ax.get_ylim()[0]] * len(stops),
        "x",
        color="red",
        label="did not fit / failed / skipped",
        clip_on=False,
    )


def plot_accuracy(
    rows: Sequence[dict[str, Any]], out_dir: str | os.PathLike[str], metric: str = "ndcg@10"
) -> Path:
    """``accuracy_vs_fit_time.png``: each model's ``metric`` against its fit seconds."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for row in rows:
        if row.get("status") == "ok" and row.get(metric) is not None:
            fit = max(row["fit_s"], 1e-3)
            ax.scatter(fit, row[metric])
            ax.annotate(
                row["model"], (fit, row[metric]), fontsize=7, xytext=(3, 3), textcoords="offset points"
            )
    ax.set(
        xscale="log", xlabel="fit seconds (log)", ylabel=metric.upper(), title=f"{metric.upper()} vs fit time"
    )
    ax.grid(True, which="both", alpha=0.3)
    return _save(fig, Path(out_dir) / "accuracy_vs_fit_time.png")
