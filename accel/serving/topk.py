"""Top-k answers of a fitted model in item indices: batching, rows without items, filters, dispatch.

Works on any object with the scoring contract of :class:`Scorer` (what
:class:`accel.models.base.Recommender` subclasses provide), so serving never
imports a model.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from typing import Any, ClassVar, Literal, Protocol

import numpy as np
import scipy.sparse as sp
from tqdm.auto import tqdm

from accel.backends import Backend
from accel.errors import InputError, UnknownItemsWarning
from accel.serving.filters import CandidateFilters
from accel.serving.popular_fallback import (
    UNKNOWN_ITEMS,
    UNKNOWN_USERS,
    UnknownItems,
    UnknownUsers,
    fill_rows_without_items,
    none_left_note,
)
from accel.validation import (
    as_binary_csr,
    binary_matrix,
    check_choice,
    check_item_indices,
    check_k,
    check_positive_int,
    item_index_array,
)

#: Rows per batch of models scored by a sparse product (no dense row, so batches can be large).
SPARSE_BATCH_ROWS = 65_536

Scoring = Literal["dense", "sparse"]


class Scorer(Protocol):
    """What serving needs of a fitted model (see :mod:`accel.models.base`)."""

    scoring: ClassVar[Scoring]
    n_items_: int
    dtype_: np.dtype
    backend_: Backend

    def _dense_weights(self) -> Any: ...

    def _sparse_factors(
        self, X: sp.csr_matrix, columns: np.ndarray | None, candidates: int | None
    ) -> tuple[sp.csr_matrix, sp.csr_matrix]: ...

    def _item_scores(self, item: int) -> Any: ...

    def _popularity_ranking(self) -> np.ndarray: ...


def default_batch_size(model: Scorer) -> int:
    """Rows per scoring batch that fit comfortably in the backend's free memory."""
    if model.scoring == "sparse":
        return SPARSE_BATCH_ROWS
    return model.backend_.dense_batch_rows(model.n_items_, model.dtype_.itemsize)


def recommend_batch(
    model: Scorer,
    X_host: sp.csr_matrix,
    k: int,
    exclude_seen: bool,
    filters: CandidateFilters = CandidateFilters(),  # noqa: B008 - immutable
) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` of the rows ``X_host`` (all with items) through the model's scoring form."""
    backend = model.backend_
    exclude = filters.exclusions(X_host if exclude_seen else None)
    include = filters.include()
    if model.scoring == "sparse":
        factors = model._sparse_factors(X_host, filters.columns, filters.candidates(k, exclude))
        ids, scores = backend.sparse_topk(*factors, k, exclude=exclude, include=include)
        return ids, scores.astype(model.dtype_, copy=False)
    return backend.dense_topk(X_host, model._dense_weights(), k, exclude=exclude, include=include)


def recommend_rows(
    model: Scorer,
    X_rows: object,
    k: int = 10,
    exclude_seen: bool = True,
    batch_size: int | None = None,
    show_progress: bool = False,
    unknown_users: UnknownUsers = "popular",
    allowed_items: object = None,
    forbidden_items: object = None,
) -> tuple[np.ndarray, np.ndarray]:
    """``(ids, scores)`` of the top ``k`` for every row of ``X_rows``, as ``Recommender.recommend`` says."""
    X = as_binary_csr(X_rows, dtype=model.dtype_, n_items=model.n_items_, name="X_rows")
    k = check_k(k, model.n_items_)
    check_choice("unknown_users", unknown_users, UNKNOWN_USERS)
    n_rows = X.shape[0]
    filters = CandidateFilters.resolve(allowed_items, forbidden_items, n_rows, model.n_items_)
    if batch_size is None:
        batch_size = default_batch_size(model)
    else:
        batch_size = check_positive_int("batch_size", batch_size)
    ids = np.empty((n_rows, k), dtype=np.int64)
    scores = np.empty((n_rows, k), dtype=model.dtype_)
    empty = np.diff(X.indptr) == 0
    if unknown_users == "error":  # refuse before any scoring
        fill_rows_without_items(model, empty, ids, scores, unknown_users)
    # Rows without items get their results from the popular fill: only the others are scored.
    rows = np.flatnonzero(~empty)
    if rows.size < n_rows:
        X, filters_scored = X[rows], filters.take(rows)
    else:
        filters_scored = filters
    starts: Any = range(0, rows.size, batch_size)
    if show_progress:
        starts = tqdm(starts, desc="recommend", unit="batch", disable=None)
    for start in starts:
        batch = slice(start, min(start + batch_size, rows.size))
        whole = batch.stop - batch.start == X.shape[0]
        ids[rows[batch]], scores[rows[batch]] = recommend_batch(
            model,
            X if whole else X[batch],
            k,
            exclude_seen,
            filters_scored if whole else filters_scored.take(batch),
        )
    fill_rows_without_items(model, empty, ids, scores, unknown_users, filters)
    return ids, scores


def known_item_indices(
    items: Iterable[int] | int,
    n_items: int,
    unknown_items: UnknownItems,
    unknown_users: UnknownUsers = "popular",
) -> np.ndarray:
    """The indices of ``items`` in ``[0, n_items)``; the others are dropped with a warning, or refused.

    ``unknown_items="error"`` raises :class:`InputError` naming the first index out
    of range; ``"drop"`` warns (:class:`~accel.errors.UnknownItemsWarning`) with the count.
    """
    check_choice("unknown_items", unknown_items, UNKNOWN_ITEMS)
    array = item_index_array(items)
    outside = (array < 0) | (array >= n_items)
    if not outside.any():
        return array
    if unknown_items == "error":
        return check_item_indices(array, n_items)  # raises, naming the first
    left = none_left_note(unknown_users) if outside.all() else ""
    warnings.warn(
        f"dropped {int(outside.sum()):,} of {array.size:,} item indices outside the model's "
        f"{n_items:,} items (e.g. {int(array[outside][0])}){left}",
        UnknownItemsWarning,
        stacklevel=4,  # the caller of Recommender.recommend_from_items
    )
    return array[~outside]


def recommend_from_items(
    model: Scorer,
    items: Iterable[int] | int,
    k: int = 10,
    exclude_seen: bool = True,
    unknown_users: UnknownUsers = "popular",
    allowed_items: object = None,
    forbidden_items: object = None,
    unknown_items: UnknownItems = "drop",
) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` ``(ids, scores)`` for one new user who interacted with ``items`` (indices).

    Indices outside the model's items are handled as :func:`known_item_indices` says.
    """
    k = check_k(k, model.n_items_)
    check_choice("unknown_users", unknown_users, UNKNOWN_USERS)
    items = known_item_indices(items, model.n_items_, unknown_items, unknown_users)
    filters = CandidateFilters.resolve(allowed_items, forbidden_items, 1, model.n_items_)
    row = binary_matrix(np.zeros(items.size, dtype=np.int64), items, (1, model.n_items_), model.dtype_)
    if items.size:
        ids, scores = recommend_batch(model, row, k, exclude_seen, filters)
    else:
        ids, scores = np.empty((1, k), dtype=np.int64), np.empty((1, k), dtype=model.dtype_)
    fill_rows_without_items(model, np.array([items.size == 0]), ids, scores, unknown_users, filters)
    return ids[0], scores[0]


def similar_items(model: Scorer, item: int, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` items most similar to item index ``item`` (itself excluded), best first."""
    if np.ndim(item) != 0:
        raise InputError(f"similar_items takes one item index, got {item!r}")
    (index,) = check_item_indices(item, model.n_items_)
    k = check_k(k, model.n_items_ - 1)
    backend = model.backend_
    scores = backend.to_device(model._item_scores(int(index))).reshape(1, -1).astype(model.dtype_, copy=True)
    if tuple(scores.shape) != (1, model.n_items_):
        raise ValueError(f"item scores have shape {tuple(scores.shape)}, expected (1, {model.n_items_})")
    seen = binary_matrix(np.array([0]), np.array([index]), (1, model.n_items_), model.dtype_)
    backend.mask_seen(scores, backend.sparse_to_device(seen, model.dtype_))
    ids, values = backend.topk(scores, k)
    return ids[0], values[0]
