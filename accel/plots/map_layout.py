"""The item map: each item's fingerprint in a fitted model, laid out in 2-D, with item attributes.

An item's fingerprint is what the model learned about it: for EASE, column ``j``
of ``B`` (how strongly each item leads to ``j``); for ItemKNN, row ``j`` of the
similarity ``S`` (its nearest items). UMAP (cuML's on a GPU when installed, else
umap-learn) places items with similar fingerprints (cosine) near each other; a
linear SVD layout needs nothing extra. :func:`neighbourhood_purity` says how much
more often an item's 2-D neighbours share its attribute than by chance.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.sparse.linalg import svds
from scipy.spatial import cKDTree

from accel.data.ids import match_ids
from accel.errors import InputError
from accel.models.base import Recommender
from accel.validation import binary_matrix, check_positive_int

#: Layout methods; ``auto`` is cuML on a GPU, else umap-learn.
LAYOUTS = ("auto", "umap", "cuml", "svd")
#: EASE fingerprints wider than this keep only their ``FINGERPRINT_TOP`` strongest entries (sparse).
DENSE_FINGERPRINT_LIMIT = 4096
FINGERPRINT_TOP = 256
#: Items mapped by default: a larger catalogue is sampled (``sample=None`` maps all).
MAX_ITEMS = 20_000
#: Above this many items, sparse fingerprints are first reduced to ``REDUCED_DIMS`` dense
#: dimensions (randomized SVD of the unit rows), so UMAP's neighbour search runs on short vectors.
REDUCE_ABOVE = 10_000
REDUCED_DIMS = 64
#: Attribute columns tried, in order, when no colour column is named.
COLOR_COLUMNS = ("genres", "genre", "index_group_name", "category")
#: Name columns shown on hover in the HTML map, tried in order.
NAME_COLUMNS = ("title", "prod_name", "name")
#: Separator of several labels in one attribute value (MovieLens genres: ``Action|Comedy``).
LABEL_SEPARATOR = "|"
#: MovieLens movie lists, read as in their folder (titles, and genres as ``a|b`` labels).
MOVIELENS_ITEM_FILES = ("u.item", "movies.dat", "movies.csv")

Layout = Callable[[Any, int, int], np.ndarray]


def item_fingerprints(model: Recommender, items: np.ndarray) -> np.ndarray | sp.csr_matrix:
    """One float32 row per item of ``items`` (indices): what ``model`` learned about that item."""
    top = FINGERPRINT_TOP if model.n_items_ > DENSE_FINGERPRINT_LIMIT else None
    vectors = model._item_vectors(np.asarray(items), top)
    if sp.issparse(vectors):
        return sp.csr_matrix(vectors, dtype=np.float32)
    return np.ascontiguousarray(vectors, dtype=np.float32)


def _unit_rows(features: Any) -> sp.csr_matrix:
    """The fingerprints scaled to unit length (so Euclidean geometry is cosine geometry)."""
    X = sp.csr_matrix(features, dtype=np.float64)
    norms = np.sqrt(np.asarray(X.multiply(X).sum(axis=1)).ravel())
    return sp.csr_matrix(sp.diags(1.0 / np.where(norms > 0, norms, 1.0)) @ X)


def _randomized_svd(X: sp.csr_matrix, dims: int, seed: int, power: int = 2) -> np.ndarray:
    """``U·Σ`` of ``X``'s leading ``dims`` singular directions (Halko et al.'s randomized range finder)."""
    rng = np.random.default_rng(seed)
    Q, _ = np.linalg.qr(X @ rng.standard_normal((X.shape[1], dims + 10)))
    for _ in range(power):
        Q, _ = np.linalg.qr(X @ (X.T @ Q))
    u, s, _ = np.linalg.svd((X.T @ Q).T, full_matrices=False)
    return (Q @ u[:, :dims]) * s[:dims]


def _compact(features: Any, seed: int) -> tuple[Any, str]:
    """Features and metric for UMAP: many sparse rows become ``REDUCED_DIMS`` dense ones."""
    if not sp.issparse(features) or features.shape[0] <= REDUCE_ABOVE or features.shape[1] <= REDUCED_DIMS:
        return features, "cosine"
    return _randomized_svd(_unit_rows(features), REDUCED_DIMS, seed).astype(np.float32), "euclidean"


def _umap_learn(features: Any, n_neighbors: int, seed: int) -> np.ndarray:
    import umap

    features, metric = _compact(features, seed)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*n_jobs.*overridden.*")
        reducer = umap.UMAP(
            n_neighbors=n_neighbors, n_components=2, metric=metric, random_state=seed, low_memory=True
        )
        return np.asarray(reducer.fit_transform(features), dtype=np.float64)


def _cuml(features: Any, n_neighbors: int, seed: int) -> np.ndarray:
    from cuml.manifold import UMAP

    features, metric = _compact(features, seed)
    reducer = UMAP(n_neighbors=n_neighbors, n_components=2, metric=metric, random_state=seed)
    xy = reducer.fit_transform(features)
    return np.asarray(xy.get() if hasattr(xy, "get") else xy, dtype=np.float64)


def _svd(features: Any, n_neighbors: int, seed: int) -> np.ndarray:
    """The two leading singular directions of the unit-length fingerprints (cosine geometry)."""
    X = _unit_rows(features)
    u, s, _ = svds(X, k=2, v0=np.random.default_rng(seed).random(min(X.shape)))
    return u[:, ::-1] * s[::-1]


def _gpu_umap_available() -> bool:
    if importlib.util.find_spec("cuml") is None:
        return False
    from accel.backends import available_backends

    return available_backends().get("cupy") == "available"


def resolve_layout(layout: str | Layout) -> tuple[str, Layout]:
    """The layout's name and function; ``auto`` picks cuML on a GPU, else umap-learn."""
    if callable(layout):
        return getattr(layout, "__name__", "custom"), layout
    if layout not in LAYOUTS:
        raise InputError(f"unknown layout {layout!r}; choose one of {', '.join(LAYOUTS)}")
    if layout == "auto":
        layout = "cuml" if _gpu_umap_available() else "umap"
    if layout == "umap" and importlib.util.find_spec("umap") is None:
        raise InputError(
            "the UMAP layout needs umap-learn: pip install umap-learn (or use the linear layout 'svd')"
        )
    if layout == "cuml" and importlib.util.find_spec("cuml") is None:
        raise InputError("the cuml layout needs RAPIDS cuML and a GPU (or use 'umap' or 'svd')")
    return layout, {"umap": _umap_learn, "cuml": _cuml, "svd": _svd}[layout]


def read_item_meta(source: str | os.PathLike[str] | pd.DataFrame, item_col: str) -> pd.DataFrame:
    """Item attributes from a frame, a CSV/TSV/Parquet file, or a MovieLens folder or movie list.

    A text file's ``item_col`` is read as strings, as the log's ids are (``"0108775015"``
    keeps its leading zero).
    """
    if isinstance(source, pd.DataFrame):
        return source
    from accel.data.interactions import read_table
    from accel.data.loaders import movielens_items

    path = Path(source)
    if path.is_dir():
        return movielens_items(path)
    if path.is_file() and path.name in MOVIELENS_ITEM_FILES:  # one rule with the folder: genres split
        return movielens_items(path.parent)
    if not path.is_file():
        raise InputError(f"item attributes {path} do not exist")
    return read_table(path, "auto", id_cols=(item_col,))


def _pick(frame: pd.DataFrame, wanted: str | None, candidates: tuple[str, ...], what: str) -> str | None:
    if wanted is not None:
        if wanted not in frame.columns:
            raise InputError(
                f"the item attributes have no {what} column {wanted!r}: {', '.join(frame.columns)}"
            )
        return wanted
    return next((c for c in candidates if c in frame.columns), None)


def _meta_columns(meta: pd.DataFrame, item_col: str, color_by: str | None) -> tuple[str | None, str | None]:
    """The colour and name columns of ``meta``; :class:`InputError` when a named column is missing."""
    if item_col not in meta.columns:
        raise InputError(
            f"the item attributes have no id column {item_col!r} (pass item_col / --item-col): "
            f"{', '.join(map(str, meta.columns))}"
        )
    return _pick(meta, color_by, COLOR_COLUMNS, "colour"), _pick(meta, None, NAME_COLUMNS, "name")


def _attach_meta(table: pd.DataFrame, meta: pd.DataFrame, item_col: str, columns: list[str]) -> None:
    """Add ``meta``'s ``columns`` to ``table``, matched on the item id as the log's ids are matched."""
    unique = meta.drop_duplicates(item_col)
    rows = match_ids(table["item"].to_numpy(), unique[item_col].to_numpy())
    found = rows >= 0
    for column in columns:
        values = pd.Series(unique[column].to_numpy()[np.maximum(rows, 0)], dtype=object)
        table[column] = values.where(found, None).to_numpy()


def item_map(
    model: Recommender,
    meta: str | os.PathLike[str] | pd.DataFrame | None = None,
    *,
    item_col: str | None = None,
    color_by: str | None = None,
    sample: int | None = MAX_ITEMS,
    seed: int = 0,
    layout: str | Layout = "auto",
    n_neighbors: int = 15,
    item_ids: np.ndarray | None = None,
    path: str | os.PathLike[str] | None = None,
    show_progress: bool = False,
) -> pd.DataFrame:
    """A 2-D map of ``model``'s items: a table with columns ``item``, ``x``, ``y`` (and attributes).

    ``item`` holds the model's item ids (``item_ids``, else those saved by ``accel
    fit``, else positions). ``meta`` (a frame, a CSV/Parquet file or a MovieLens
    folder) adds the ``color_by`` column (default: the first of
    :data:`COLOR_COLUMNS` present) and a name column, matched on ``item_col``
    (default: the model's item column, else ``item_id``). ``sample`` maps that many
    random items of a larger catalogue (``None``: all of them). ``layout`` is ``auto``/``umap``/``cuml``/
    ``svd`` or a function ``(features, n_neighbors, seed) -> (n, 2)``. With ``path``
    the map is also drawn there (``.png``/``.svg``/``.pdf``, or ``.html`` to hover).
    ``table.attrs`` holds ``layout``, ``seconds`` (the layout's time), ``color_by``
    and, with a colour, ``purity`` (see :func:`neighbourhood_purity`).
    """
    model._check_fitted()
    n_items = int(model.n_items_)
    extras = getattr(model, "extras_", {}) or {}
    if item_ids is None:
        item_ids = np.asarray(extras["item_ids"]) if "item_ids" in extras else np.arange(n_items)
    item_ids = np.asarray(item_ids)
    if item_ids.shape != (n_items,):
        raise InputError(f"item_ids must hold one id per item ({n_items}), got shape {item_ids.shape}")
    check_positive_int("n_neighbors", n_neighbors)
    items = np.arange(n_items)
    if sample is not None:
        check_positive_int("sample", sample)
        if sample < n_items:
            items = np.sort(np.random.default_rng(seed).choice(n_items, size=sample, replace=False))
    if items.size <= n_neighbors:
        raise InputError(f"mapping needs more than n_neighbors={n_neighbors} items, got {items.size}")
    name, function = resolve_layout(layout)
    frame, color, label_name = None, None, None
    if meta is not None:
        if item_col is None:
            saved = extras.get("item_col")
            item_col = str(saved[()]) if saved is not None and str(saved[()]) else "item_id"
        frame = read_item_meta(meta, item_col)
        color, label_name = _meta_columns(frame, item_col, color_by)
    elif color_by is not None:
        raise InputError(f"color_by={color_by!r} needs item attributes (meta / --meta)")
    started = time.perf_counter()
    if show_progress:
        print(f"map: laying out {items.size:,} items with {name} ...", file=sys.stderr, flush=True)
    xy = np.asarray(function(item_fingerprints(model, items), n_neighbors, seed), dtype=np.float64)
    seconds = time.perf_counter() - started
    table = pd.DataFrame({"item": item_ids[items], "x": xy[:, 0], "y": xy[:, 1]})
    if frame is not None and item_col is not None:  # set together, from the item attributes
        columns = [c for c in dict.fromkeys([color, label_name]) if c is not None and c != "item"]
        _attach_meta(table, frame, item_col, columns)
    if color is not None and table[color].notna().sum() == 0:
        raise InputError(f"no item id of the model matches a {item_col!r} in the item attributes")
    table.attrs.update(layout=name, seconds=seconds, color_by=color)
    if color is not None:
        table.attrs["purity"] = neighbourhood_purity(table[["x", "y"]].to_numpy(), table[color], seed=seed)
    if path is not None:
        from accel.plots.draw import draw_item_map

        draw_item_map(table, path)
    return table


def _label_matrix(labels: pd.Series) -> tuple[np.ndarray, sp.csr_matrix]:
    """Rows with a label and their 0/1 item × label matrix (``a|b`` gives two labels)."""
    text = labels.astype("string")
    has = text.notna().to_numpy() & (text.fillna("").str.len() > 0).to_numpy()
    rows = np.flatnonzero(has)
    parts = text[has].str.split(LABEL_SEPARATOR).explode()
    codes, _ = pd.factorize(parts.to_numpy())
    owner = np.repeat(np.arange(rows.size), text[has].str.split(LABEL_SEPARATOR).str.len().to_numpy())
    L = binary_matrix(owner, codes, (rows.size, int(codes.max()) + 1 if codes.size else 0), np.float32)
    return rows, L


def _shared_share(neighbours: np.ndarray, L: sp.csr_matrix) -> float:
    """Mean over items of the share of their neighbours with a label in common."""
    n, k = neighbours.shape
    shared = L[np.repeat(np.arange(n), k)].multiply(L[neighbours.ravel()]).sum(axis=1)
    return float(np.mean(np.asarray(shared).ravel() > 0))


def neighbourhood_purity(
    xy: np.ndarray, labels: pd.Series | np.ndarray, k: int = 10, n_shuffles: int = 5, seed: int = 0
) -> dict[str, float]:
    """How often an item's ``k`` nearest 2-D neighbours share a label with it, against chance.

    Only items with a label count (as items and as neighbours). A value may hold
    several labels joined by ``|``; sharing any one counts. ``shuffled`` is the
    same measure with the labels randomly reassigned among the items, averaged
    over ``n_shuffles`` shuffles: a map that groups items by label scores well
    above it.
    """
    rows, L = _label_matrix(pd.Series(np.asarray(labels, dtype=object)))
    if rows.size <= k:
        raise InputError(f"purity needs more than k={k} labelled items, got {rows.size}")
    points = np.asarray(xy, dtype=np.float64)[rows]
    _, found = cKDTree(points).query(points, k=k + 1)
    keep = found != np.arange(rows.size)[:, None]
    keep[keep.all(axis=1), -1] = False  # a duplicate point may displace the item itself
    neighbours = found[keep].reshape(rows.size, k)
    rng = np.random.default_rng(seed)
    shuffled = [_shared_share(neighbours, L[rng.permutation(rows.size)]) for _ in range(n_shuffles)]
    return {
        "k": k,
        "items": int(rows.size),
        "purity": _shared_share(neighbours, L),
        "shuffled": float(np.mean(shuffled)),
        "shuffled_std": float(np.std(shuffled)),
    }
