"""PNG plots of benchmark results (matplotlib, Agg backend: no display needed).

Every model gets its own colour and marker and is named in a legend beside the
axes (never as labels on the points, which overlap); titles name the data set
and the machine; memory is shown in MiB above the worker interpreter's own.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from itertools import cycle
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
from matplotlib.ticker import LogFormatter

from accel.plots.draw import palette, save_figure

_MARKERS = "osD^vP*Xh<>p"
_MIB = 2**20
#: The pictures a benchmark run writes into its results folder.
PLOT_NAMES = ("sweep_time.png", "sweep_memory.png", "accuracy_vs_fit_time.png")


def _styles(models: Sequence[str]) -> dict[str, dict[str, Any]]:
    """A colour and marker per model, stable across the plots of one report."""
    colours = palette()
    markers = cycle(_MARKERS)
    return {m: {"color": colours[i % len(colours)], "marker": next(markers)} for i, m in enumerate(models)}


def _plain_log_ticks(ax: Any) -> None:
    """Log axes labelled 2000 and 0.5 rather than 2×10³ and 5×10⁻¹."""
    for axis in (ax.xaxis, ax.yaxis):
        if axis.get_scale() == "log":
            axis.set_major_formatter(LogFormatter())
            axis.set_minor_formatter(LogFormatter(labelOnlyBase=False))


def _legend_beside(ax: Any, **kwargs: Any) -> None:
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8, frameon=False, **kwargs)


def _title(text: str, context: str) -> str:
    return f"{text}\n{context}" if context else text


def _memory_above_baseline(row: dict[str, Any]) -> float | None:
    """Peak host RSS in MiB above the worker's RSS once Python and accel were imported."""
    if row.get("peak_rss_bytes") is None:
        return None
    return (row["peak_rss_bytes"] - row.get("baseline_rss_bytes", 0)) / _MIB


def _series(rows: Sequence[dict[str, Any]], value: Any) -> dict[str, tuple[list[int], list[float]]]:
    """Per model, the catalogue sizes and ``value(row)`` (or ``row[value]``) where the run succeeded."""
    get = value if callable(value) else (lambda row: row.get(value))
    series: dict[str, tuple[list[int], list[float]]] = {}
    for row in sorted(rows, key=lambda r: r["catalogue_items"]):
        if row.get("status") == "ok" and get(row) is not None:
            xs, ys = series.setdefault(row["model"], ([], []))
            xs.append(row["catalogue_items"])
            ys.append(get(row))
    return series


def plot_scaling(
    rows: Sequence[dict[str, Any]], out_dir: str | os.PathLike[str], context: str = ""
) -> list[Path]:
    """``sweep_time.png`` (fit and recommend seconds) and ``sweep_memory.png`` vs catalogue size.

    ``context`` (the data and the machine) goes under each title.
    """
    out_dir = Path(out_dir)
    styles = _styles(list(dict.fromkeys(r["model"] for r in rows)))
    paths = []
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), sharex=True)
    for ax, key, title in ((axes[0], "fit_s", "fit"), (axes[1], "recommend_s", "recommend all users")):
        for model, (xs, ys) in _series(rows, key).items():
            ax.plot(xs, ys, label=model, **styles[model])
        ax.set(xscale="log", yscale="log", xlabel="catalogue size (items)", ylabel="seconds", title=title)
        ax.grid(True, which="both", alpha=0.3)
        _plain_log_ticks(ax)
    _mark_failures(axes[0], rows)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper left", bbox_to_anchor=(0.99, 0.9), fontsize=8, frameon=False)
    fig.suptitle(_title("scaling sweep: seconds vs catalogue size", context), fontsize=10)
    fig.tight_layout()
    paths.append(save_figure(fig, out_dir / PLOT_NAMES[0]))

    fig, ax = plt.subplots(figsize=(8, 4.5))
    for value, style, kind in (
        (_memory_above_baseline, "-", "host RSS"),
        (lambda r: None if r.get("peak_gpu_bytes") is None else r["peak_gpu_bytes"] / _MIB, "--", "GPU pool"),
    ):
        for model, (xs, ys) in _series(rows, value).items():
            ax.plot(xs, ys, style, label=f"{model} ({kind})", **styles[model])
    ax.set(
        xscale="log",
        yscale="log",
        xlabel="catalogue size (items)",
        ylabel="peak memory (MiB above the interpreter)",
        title=_title("peak memory (host RSS above the worker's baseline; GPU pool)", context),
    )
    ax.title.set_fontsize(10)
    ax.grid(True, which="both", alpha=0.3)
    _plain_log_ticks(ax)
    _legend_beside(ax)
    paths.append(save_figure(fig, out_dir / PLOT_NAMES[1]))
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
    rows: Sequence[dict[str, Any]],
    out_dir: str | os.PathLike[str],
    metric: str = "ndcg@10",
    context: str = "",
) -> Path:
    """``accuracy_vs_fit_time.png``: each model's ``metric`` against its fit seconds, named in a legend."""
    fig, ax = plt.subplots(figsize=(8, 4.5))
    done = [r for r in rows if r.get("status") == "ok" and r.get(metric) is not None]
    styles = _styles([r["model"] for r in done])
    for row in done:
        ax.scatter(max(row["fit_s"], 1e-3), row[metric], s=40, label=row["model"], **styles[row["model"]])
    ax.set(
        xscale="log",
        xlabel="fit seconds (log)",
        ylabel=metric.upper(),
        title=_title(f"{metric.upper()} vs fit time", context),
    )
    ax.title.set_fontsize(10)
    ax.grid(True, which="both", alpha=0.3)
    _plain_log_ticks(ax)
    if done:
        _legend_beside(ax)
    return save_figure(fig, Path(out_dir) / PLOT_NAMES[2])
