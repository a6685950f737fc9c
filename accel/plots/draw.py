"""Drawing: figures saved atomically, and the item map as a picture or an HTML page to hover over."""

from __future__ import annotations

import html
import os
from pathlib import Path
from typing import Any, cast

import matplotlib.colors
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from accel.atomic import atomic_file
from accel.errors import InputError

#: Suffixes :func:`draw_item_map` writes.
MAP_SUFFIXES = (".png", ".svg", ".pdf", ".html")
#: Labels with their own colour; the rest are drawn as "other".
MAX_LEGEND = 12
_OTHER, _MISSING = "other", "no attribute"
#: The creator recorded in every picture accel draws, so a later run knows it may replace it.
CREATOR = "accel.plots"
#: Pictures larger than this are never read back to look for :data:`CREATOR`.
_MAX_CHECKED_BYTES = 256 << 20


def save_figure(fig: Any, path: str | os.PathLike[str], dpi: int = 120) -> Path:
    """Write ``fig`` to ``path`` atomically, in the format its suffix names, and close it.

    PNG, SVG and PDF record :data:`CREATOR` in their metadata (see :func:`drawn_by_accel`).
    """
    path = Path(path)
    with atomic_file(path) as tmp:
        fig.savefig(
            tmp,
            format=path.suffix.lstrip(".").lower() or "png",
            dpi=dpi,
            bbox_inches="tight",
            metadata={"Creator": CREATOR},
        )
    plt.close(fig)
    return path


def drawn_by_accel(path: str | os.PathLike[str]) -> bool:
    """Whether the picture at ``path`` names accel as its creator (what accel may replace)."""
    try:
        with open(path, "rb") as f:
            data = f.read(_MAX_CHECKED_BYTES)
    except OSError:
        return False
    return CREATOR.encode() in data


def _legend_labels(table: pd.DataFrame, color: str | None) -> tuple[pd.Series, list[str]]:
    """Each item's drawn label (its first label, ``other`` or ``no attribute``) and the legend order."""
    if color is None:
        return pd.Series(["item"] * len(table), index=table.index), ["item"]
    first = table[color].astype("string").str.split("|").str[0].fillna(_MISSING)
    top = [label for label in first.value_counts().index if label != _MISSING][:MAX_LEGEND]
    drawn = first.where(first.isin([*top, _MISSING]), _OTHER)
    return drawn, [*top, *(x for x in (_OTHER, _MISSING) if (drawn == x).any())]


def palette() -> tuple[Any, ...]:
    """Eighteen colours: tab20's strong ones first, then their light pairs; no greys (greys mean "other")."""
    # tab20 is a ListedColormap of RGB tuples (matplotlib types only a Colormap of array-likes)
    listed = cast(matplotlib.colors.ListedColormap, plt.get_cmap("tab20"))
    rgb = cast(list[tuple[float, float, float]], listed.colors)
    tab20 = [c for i, c in enumerate(rgb) if i not in (14, 15)]
    return tuple(tab20[0::2] + tab20[1::2])


def _colours(order: list[str]) -> dict[str, Any]:
    palette_ = palette()
    named = [label for label in order if label not in (_OTHER, _MISSING)]
    colours = {label: palette_[i % len(palette_)] for i, label in enumerate(named)}
    return {**colours, _OTHER: (0.55, 0.55, 0.55), _MISSING: (0.8, 0.8, 0.8)}


def map_title(table: pd.DataFrame) -> str:
    """What the map shows: items, layout, its time and, with a colour, the neighbourhood purity."""
    attrs = table.attrs
    title = (
        f"Item map: {len(table):,} items, {attrs.get('layout', '?')} layout ({attrs.get('seconds', 0):.1f} s)"
    )
    purity = attrs.get("purity")
    if purity:
        title += (
            f"\n{purity['k']} nearest neighbours sharing a {attrs['color_by']} label: "
            f"{purity['purity']:.2f} (shuffled labels: {purity['shuffled']:.2f})"
        )
    return title


def draw_item_map(table: pd.DataFrame, path: str | os.PathLike[str], title: str | None = None) -> Path:
    """Draw a table from :func:`accel.plots.item_map` to ``path`` (``.png``/``.svg``/``.pdf``/``.html``)."""
    path = Path(path)
    if path.suffix.lower() not in MAP_SUFFIXES:
        raise InputError(f"map output {path} must end in {', '.join(MAP_SUFFIXES)}")
    color = table.attrs.get("color_by")
    drawn, order = _legend_labels(table, color)
    colours = _colours(order)
    title = title or map_title(table)
    if path.suffix.lower() == ".html":
        return _write_html(table, drawn, order, colours, title, path)
    fig, ax = plt.subplots(figsize=(9, 7))
    size = float(np.clip(15000 / max(len(table), 1), 1, 20))
    for label in reversed(order):
        points = table[drawn == label]
        ax.scatter(
            points["x"], points["y"], s=size, color=colours.get(label, "C0"), alpha=0.7, lw=0, label=label
        )
    if color is not None:
        handles, labels = ax.get_legend_handles_labels()
        ax.legend(
            handles[::-1], labels[::-1], title=color, loc="center left", bbox_to_anchor=(1.01, 0.5),
            fontsize=8, markerscale=max(1.0, 20 / size) ** 0.5, frameon=False,
        )  # fmt: skip
    ax.set(xticks=[], yticks=[], title=title)
    ax.title.set_fontsize(10)
    return save_figure(fig, path)


def _write_html(
    table: pd.DataFrame, drawn: pd.Series, order: list[str], colours: dict[str, Any], title: str, path: Path
) -> Path:
    """A self-contained page: an SVG scatter whose points name their item on hover, and a legend."""
    width, height, pad = 900, 700, 10
    x, y = table["x"].to_numpy(), table["y"].to_numpy()
    span_x, span_y = max(np.ptp(x), 1e-12), max(np.ptp(y), 1e-12)
    px = pad + (x - x.min()) / span_x * (width - 2 * pad)
    py = height - pad - (y - y.min()) / span_y * (height - 2 * pad)
    hex_colour = {label: matplotlib.colors.to_hex(c) for label, c in colours.items()}
    extra = [c for c in table.columns if c not in ("item", "x", "y")]
    circles = []
    for i, label in enumerate(drawn.to_numpy()):
        row = table.iloc[i]
        tip = " — ".join([str(row["item"]), *(str(row[c]) for c in extra if pd.notna(row[c]))])
        circles.append(
            f'<circle cx="{px[i]:.1f}" cy="{py[i]:.1f}" r="2.5" fill="{hex_colour.get(label, "#1f77b4")}">'
            f"<title>{html.escape(tip)}</title></circle>"
        )
    legend = "".join(
        f'<li><span style="color:{hex_colour.get(label, "#1f77b4")}">●</span> {html.escape(label)}</li>'
        for label in order
    )
    page = (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>Item map</title>'
        f'<meta name="generator" content="{CREATOR}">'
        "<style>body{font-family:sans-serif;display:flex;gap:1em}ul{list-style:none;padding:0}"
        "circle{fill-opacity:.75}circle:hover{stroke:#000;r:5}</style></head><body>"
        f"<div><h3>{html.escape(title).replace(chr(10), '<br>')}</h3>"
        f'<svg width="{width}" height="{height}" style="border:1px solid #ddd">{"".join(circles)}</svg></div>'
        f"<ul>{legend}</ul></body></html>\n"
    )
    with atomic_file(path) as tmp:
        tmp.write_text(page, encoding="utf-8")
    return path
