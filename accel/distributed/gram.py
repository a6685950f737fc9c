"""The Gram matrix ``XᵀX`` of a partitioned Parquet interaction log, built by Dask workers.

``XᵀX = Σ_u x_u x_uᵀ`` sums one term per user, and each term needs all of that
user's items at once (and duplicates removed, as the matrix is binary). So the
log is first shuffled on the user column - afterwards every user's rows sit in
one partition - then each partition's sparse ``XₚᵀXₚ`` is formed and the partial
Grams are added pairwise in a tree. Only the final n_items × n_items matrix is
dense; no process ever holds the whole log. Feed it to :meth:`accel.EASE.fit_gram`.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from accel.distributed.client import using_client
from accel.errors import InputError
from accel.validation import binary_matrix, check_dtype, check_positive_int

#: Partial Grams added together per reduction task.
_TREE_FAN_IN = 4


def _item_codes(items: pd.Series, item_index: pd.Index | None, n_items: int) -> np.ndarray:
    """Column numbers of the item ids in one partition; :class:`InputError` for an unknown id."""
    if item_index is not None:
        codes = item_index.get_indexer(items.to_numpy())
        bad = codes < 0
        what = "not in item_index"
    else:
        codes = items.to_numpy()
        if not np.issubdtype(codes.dtype, np.integer):
            raise InputError(f"with n_items the item column must hold integer indices, got {codes.dtype}")
        bad = (codes < 0) | (codes >= n_items)
        what = f"outside 0..{n_items - 1}"
    if bad.any():
        raise InputError(f"item {items.to_numpy()[np.flatnonzero(bad)[0]]!r} is {what}")
    return codes.astype(np.int64, copy=False)


def _partition_gram(
    frame: pd.DataFrame, user_col: str, item_col: str, item_index: pd.Index | None, n_items: int
) -> sp.csr_matrix:
    """Sparse ``XₚᵀXₚ`` (int64 counts) of one partition holding all rows of its users."""
    if frame[[user_col, item_col]].isna().any().any():
        raise InputError(f"the log has missing values in {user_col!r} or {item_col!r}")
    users, _ = pd.factorize(frame[user_col], sort=False)
    items = _item_codes(frame[item_col], item_index, n_items)
    X = binary_matrix(users, items, (int(users.max(initial=-1)) + 1, n_items), np.int64)
    return (X.T @ X).tocsr()


def _add(*grams: sp.csr_matrix) -> sp.csr_matrix:
    total = grams[0]
    for gram in grams[1:]:
        total = total + gram
    return total


def _tree_sum(parts: list[Any]) -> Any:
    from dask import delayed

    while len(parts) > 1:
        parts = [delayed(_add)(*parts[i : i + _TREE_FAN_IN]) for i in range(0, len(parts), _TREE_FAN_IN)]
    return parts[0]


def gram_from_parquet(
    path: str | os.PathLike[str] | list[str],
    user_col: str,
    item_col: str,
    client: Any = None,
    n_items: int | None = None,
    item_index: object = None,
    dtype: str = "float32",
) -> tuple[np.ndarray, np.ndarray]:
    """``(G, item_ids)``: binary ``XᵀX`` of a Parquet log (file, folder, glob or list) and its columns' ids.

    Columns of ``G`` follow ``item_index`` (the item ids, in order) when given;
    with ``n_items`` the item column already holds indices ``0..n_items-1``;
    otherwise they are the log's distinct item ids, sorted. Repeated
    (user, item) rows count once. ``client`` defaults to the current Dask
    client, else a temporary local cluster.
    """
    import dask.dataframe as dd
    from dask import delayed

    out_dtype = check_dtype(dtype)
    if n_items is not None and item_index is not None:
        raise InputError(
            "give n_items (the item column holds indices) or item_index (the item ids), not both"
        )
    with using_client(client) as dask_client:
        try:
            log = dd.read_parquet(path, columns=[user_col, item_col])
        except (FileNotFoundError, OSError) as exc:
            raise InputError(f"cannot read the Parquet log {path}: {exc}") from None
        except (KeyError, ValueError) as exc:
            raise InputError(
                f"the Parquet log {path} lacks column {user_col!r} or {item_col!r}: {exc}"
            ) from None
        if item_index is not None:
            item_ids = np.asarray(item_index)
            if item_ids.ndim != 1 or len(item_ids) == 0 or len(pd.unique(item_ids)) != len(item_ids):
                raise InputError("item_index must be a non-empty 1-D array of distinct item ids")
        elif n_items is not None:
            item_ids = np.arange(check_positive_int("n_items", n_items))
        else:
            item_ids = np.sort(log[item_col].dropna().unique().compute().to_numpy())
            if len(item_ids) == 0:
                raise InputError(f"the Parquet log {path} has no interactions")
        # One shared key for the id index, so tasks reference it instead of each carrying a copy.
        index = None if n_items is not None else delayed(pd.Index(item_ids), pure=True)
        shuffled = log.shuffle(on=user_col)
        parts = [
            delayed(_partition_gram)(part, user_col, item_col, index, len(item_ids))
            for part in shuffled.to_delayed()
        ]
        total = dask_client.compute(_tree_sum(parts)).result()
    G = np.zeros((len(item_ids), len(item_ids)), dtype=out_dtype)
    _densify(total, G)
    return G, item_ids


def _densify(total: sp.csr_matrix, G: np.ndarray) -> None:
    """Write sparse integer counts into the dense float buffer ``G``, a row block at a time."""
    step = max(1, (64 << 20) // max(1, G.shape[1] * 8))
    for start in range(0, G.shape[0], step):
        block = total[start : start + step]
        G[start : start + step] = block.toarray()
