"""The popular fallback: the ranking TopPopular serves and rows without known items fall back to."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal, get_args

import numpy as np
import scipy.sparse as sp

from accel.errors import InputError
from accel.serving.filters import CandidateFilters
from accel.validation import check_choice

if TYPE_CHECKING:
    from accel.serving.topk import Scorer

#: What ``recommend`` does for a row with no items the model knows (a cold-start user).
UnknownUsers = Literal["popular", "skip", "error"]
UNKNOWN_USERS: tuple[str, ...] = get_args(UnknownUsers)
#: What ``recommend_from_items`` does with items of a new user's list that the model does not know:
#: leave them out (a list left empty gets the popular fallback) or refuse the list.
UnknownItems = Literal["drop", "error"]
UNKNOWN_ITEMS: tuple[str, ...] = get_args(UnknownItems)


def none_left_note(unknown_users: UnknownUsers) -> str:
    """The end of a note on a new user's list whose items were all dropped: what they get instead."""
    gets = {"popular": "the most popular items", "skip": "no recommendations"}.get(unknown_users)
    return f"; none are left, so the user gets {gets}" if gets else "; none are left"


def popularity_ranking(counts: np.ndarray) -> np.ndarray:
    """Items with a positive count, most interacted-with first (ties: lower index first)."""
    counts = np.asarray(counts)
    ranking = np.lexsort((np.arange(counts.size), -counts))
    return ranking[counts[ranking] > 0]


def popularity_factors(
    counts: np.ndarray,
    ranking: np.ndarray,
    n_rows: int,
    columns: np.ndarray | None,
    candidates: int | None,
    dtype: np.dtype,
) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """Host CSR ``(ones, W)`` whose product gives each of ``n_rows`` rows the popularity counts.

    ``W`` holds only the allowed items of ``ranking`` (``columns``, a boolean mask)
    and, with ``candidates``, only that many of the most popular, which is enough
    to fill a top-k after each row's exclusions; no dense row is formed.
    """
    if columns is not None:
        ranking = ranking[columns[ranking]]
    if candidates is not None:
        ranking = ranking[:candidates]
    ranking = np.sort(ranking)
    W = sp.csr_matrix(
        (np.asarray(counts, dtype=dtype)[ranking], ranking, np.array([0, ranking.size])),
        shape=(1, len(counts)),
    )
    ones = sp.csr_matrix(
        (np.ones(n_rows, dtype=dtype), np.zeros(n_rows, dtype=np.int32), np.arange(n_rows + 1)),
        shape=(n_rows, 1),
    )
    return ones, W


def fill_rows_without_items(
    model: Scorer,
    empty: np.ndarray,
    ids: np.ndarray,
    scores: np.ndarray,
    unknown_users: UnknownUsers = "popular",
    filters: CandidateFilters = CandidateFilters(),  # noqa: B008 - immutable
) -> None:
    """Replace, in place, the results of the rows where ``empty`` is true (rows with no items).

    A model scores such a row 0 everywhere, so its top k would be arbitrary.
    ``"popular"`` gives it the training log's most interacted-with items, scored
    by their number of interactions, within ``filters`` (never an item nobody
    interacted with); ``"skip"`` pads it (id ``-1``, score ``-inf``); ``"error"``
    raises :class:`InputError`.
    """
    rows = np.flatnonzero(empty)
    if rows.size == 0:
        return
    check_choice("unknown_users", unknown_users, UNKNOWN_USERS)
    if unknown_users == "error":
        raise InputError(
            f"{rows.size:,} of {len(empty):,} rows (the first is row {rows[0]}) have no items the model "
            "knows: pass unknown_users='popular' or 'skip'"
        )
    if unknown_users == "skip":
        ids[rows], scores[rows] = -1, -np.inf
        return
    popularity = getattr(model, "popularity_", None)
    if popularity is None:
        raise InputError(
            "this model was saved without item popularity, so rows with no known items cannot get "
            "popular items: refit it, or pass unknown_users='skip'"
        )
    k, chosen = ids.shape[1], filters.take(rows)
    factors = popularity_factors(
        popularity,
        model._popularity_ranking(),
        rows.size,
        chosen.columns,
        chosen.candidates(k, chosen.forbidden),
        model.dtype_,
    )
    ids[rows], scores[rows] = model.backend_.sparse_topk(
        *factors, k, exclude=chosen.forbidden, include=chosen.include()
    )
