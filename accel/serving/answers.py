"""Recommendations and similar items in a log's own ids, as DataFrames, from any fitted model."""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import pandas as pd
import scipy.sparse as sp
from numpy.typing import ArrayLike

from accel.data.ids import id_array, lookup_ids, match_ids, plain_id
from accel.errors import InputError, UnknownItemsWarning
from accel.serving.popular_fallback import UNKNOWN_ITEMS, UnknownItems, UnknownUsers, none_left_note
from accel.serving.table import long_table
from accel.validation import binary_matrix, check_choice, check_k

if TYPE_CHECKING:
    from accel.data.interactions import Interactions
    from accel.models.base import Recommender

#: Filters of ``recommend`` that the id-level calls take as ids.
FILTER_KINDS = ("allowed", "forbidden")


def model_item_ids(model: Recommender, fallback: np.ndarray | None = None) -> np.ndarray:
    """The item ids of the model's columns: those it was fitted or saved with, else ``fallback``.

    ``fallback`` (a log's ``item_ids``) is used only for a model fitted on a bare
    matrix, which must then have been built with that log's mapping.
    """
    known = getattr(model, "extras_", {}).get("item_ids")
    if known is not None:
        return np.asarray(known)
    if fallback is not None and len(fallback) == model.n_items_:
        return np.asarray(fallback)
    raise InputError(
        f"the model does not know its item ids (it was fitted on a matrix of {model.n_items_:,} items): "
        "fit it on an Interactions, or save it with extras={'item_ids': ...}"
    )


class Histories(NamedTuple):
    """The served users' histories over a model's items (what :func:`history_matrix` returns)."""

    X: sp.csr_matrix  # users × model items
    user_ids: np.ndarray  # the rows' user ids
    unknown_interactions: int  # interactions with items the model does not know (left out)
    missing_users: np.ndarray  # requested ids that are not users of the log (left out)


def history_matrix(
    item_ids: np.ndarray,
    inter: Interactions,
    users: object = None,
    unknown_users: UnknownUsers = "popular",
    hint: str = "unknown_users='skip'",
) -> Histories:
    """The histories of ``users`` (log ids; default all) over the model's ``item_ids``.

    Items the model does not know are left out (and counted). An id of ``users``
    that is not in the log raises :class:`InputError` (``hint`` says how to skip
    such ids), or with ``unknown_users="skip"`` is left out (and returned).
    """
    frame, missing = inter.frame, np.array([], dtype=object)
    if users is None:
        rows, user_ids = np.arange(inter.n_users), inter.user_ids
    else:
        asked = id_array(users)
        found = match_ids(asked, inter.user_ids)
        missing = np.asarray(asked[found < 0].tolist(), dtype=object)
        if missing.size and unknown_users != "skip":
            raise InputError(
                f"unknown user id {missing[0]!r}: not in the {inter.n_users:,} users of this log "
                f"({hint} leaves such ids out)"
            )
        rows = pd.unique(found[found >= 0])  # a user asked for twice is answered once
        user_ids = inter.user_ids[rows]
        position = np.full(inter.n_users, -1, dtype=np.int64)
        position[rows] = np.arange(len(rows))
        frame = frame[position[frame["user"].to_numpy()] >= 0]
        frame = frame.assign(user=position[frame["user"].to_numpy()])
    to_model = match_ids(inter.item_ids, item_ids)
    items = to_model[frame["item"].to_numpy()]
    known = items >= 0
    X = binary_matrix(frame["user"].to_numpy()[known], items[known], (len(rows), len(item_ids)))
    return Histories(X, np.asarray(user_ids), int((~known).sum()), missing)


def recommendations_frame(
    model: Recommender,
    X: sp.csr_matrix,
    user_ids: np.ndarray,
    item_ids: np.ndarray,
    k: int = 10,
    exclude_seen: bool = True,
    unknown_users: UnknownUsers = "popular",
    show_progress: bool = False,
    filters: dict[str, object] | None = None,
) -> pd.DataFrame:
    """Long table ``user, item, rank, score, source`` of the top ``k`` for each row of ``X``.

    ``source`` is ``"model"``, or ``"popular"`` for a row with no items the model
    knows (see ``unknown_users`` of ``Recommender.recommend``); padding is dropped.
    ``filters`` are ``allowed_items`` / ``forbidden_items`` keywords of ``recommend``.
    """
    filters = filters or {}
    if X.shape[0] == 0:  # every requested user was left out
        none = np.empty((0, check_k(k, model.n_items_)), dtype=np.int64)
        return pd.DataFrame(long_table(none, none.astype(model.dtype_), X, user_ids, item_ids))
    ids, scores = model.recommend(
        X,
        k=k,
        exclude_seen=exclude_seen,
        show_progress=show_progress,
        unknown_users=unknown_users,
        allowed_items=filters.get("allowed_items"),
        forbidden_items=filters.get("forbidden_items"),
    )
    return pd.DataFrame(long_table(ids, scores, X, user_ids, item_ids))


def id_filter(
    value: object,
    item_ids: np.ndarray,
    user_ids: np.ndarray | None,
    name: str,
    item_col: str = "item",
    user_col: str = "user",
) -> np.ndarray | sp.csr_matrix:
    """An ``allowed_items`` / ``forbidden_items`` value of ``recommend`` from ids of the log.

    ``value`` is item ids for every user, or a DataFrame with an ``item_col``
    column and, for each user's own list, a ``user_col`` column: then a users ×
    items matrix over ``user_ids`` (the served users, in order; ``None`` for one
    new user, who has no id). Ids the model or the served users lack are ignored.
    ``name`` names ``value`` in errors.
    """
    if isinstance(value, pd.DataFrame):
        if item_col not in value.columns:
            raise InputError(
                f"{name} has no item column {item_col!r} (columns: {', '.join(map(str, value.columns))})"
            )
        if user_col in value.columns:
            if user_ids is None:
                raise InputError(
                    f"{name} has per-user lists (a {user_col!r} column), but a new user has no id: "
                    "give one list of items"
                )
            items = match_ids(value[item_col].to_numpy(), item_ids)
            users = match_ids(value[user_col].to_numpy(), np.asarray(user_ids))
            ok = (items >= 0) & (users >= 0)
            shape = (len(user_ids), len(item_ids))
            return binary_matrix(users[ok], items[ok], shape, np.dtype(np.float32))
        value = value[item_col].to_numpy()
    if isinstance(value, (set, frozenset)):
        value = list(value)
    items = match_ids(value, item_ids)
    return np.unique(items[items >= 0])


def id_filters(
    item_ids: np.ndarray, user_ids: np.ndarray | None, allowed_items: object, forbidden_items: object
) -> dict[str, object]:
    """``allowed_items`` / ``forbidden_items`` keywords of ``recommend`` from ids (see :func:`id_filter`)."""
    return {
        f"{kind}_items": id_filter(value, item_ids, user_ids, f"{kind}_items")
        for kind, value in zip(FILTER_KINDS, (allowed_items, forbidden_items), strict=True)
        if value is not None
    }


def unknown_items_text(unknown: np.ndarray, total: int) -> str:
    """``"2 of 3 items are not known to the model (e.g. item id '99999')"``, for notes and errors."""
    first = plain_id(unknown[0])
    return f"{len(unknown):,} of {total:,} items are not known to the model (e.g. item id {first!r})"


def new_user_row(
    item_ids: np.ndarray,
    items: ArrayLike | None,
    unknown_items: UnknownItems = "drop",
    unknown_users: UnknownUsers = "popular",
    hint: str = "unknown_items='drop'",
) -> tuple[sp.csr_matrix, str | None]:
    """A new user's row from item ids, and a note on the unknown ids dropped (``None``: none).

    ``unknown_items="error"`` raises :class:`InputError` for an unknown id instead;
    ``hint`` names the way to drop them in that message. The note says what a list
    left empty gets (``unknown_users``).
    """
    check_choice("unknown_items", unknown_items, UNKNOWN_ITEMS)
    given = id_array([] if items is None else items)
    positions = match_ids(given, item_ids) if given.size else np.empty(0, np.int64)
    known = positions[positions >= 0]
    row = binary_matrix(np.zeros(known.size, dtype=np.int64), known, (1, len(item_ids)))
    if known.size == given.size:
        return row, None
    text = unknown_items_text(given[positions < 0], given.size)
    if unknown_items == "error":
        raise InputError(f"{text}: use {hint} to leave them out")
    left = none_left_note(unknown_users) if known.size == 0 else ""
    return row, f"{text} and were dropped{left}"


def similar_frame(model: Recommender, item_ids: np.ndarray, item: ArrayLike, k: int = 10) -> pd.DataFrame:
    """``rank, item, score`` of the ``k`` items most similar to the item with id ``item``."""
    if np.ndim(item) != 0:
        raise InputError(f"similar_items takes one item id, got {item!r}")
    (index,) = lookup_ids(item, item_ids, "item")
    ids, scores = model.similar_items(int(index), k=k)
    return pd.DataFrame(
        {"rank": np.arange(1, len(ids) + 1, dtype=np.int32), "item": item_ids[ids], "score": scores}
    )


class LogAnswers:
    """A model's answers in the ids of interaction log ``inter`` (what ``Interactions.recommend*`` return)."""

    def __init__(self, model: Recommender, inter: Interactions) -> None:
        self.model = model
        self.inter = inter
        self.item_ids = model_item_ids(model, inter.item_ids)

    def recommend(
        self,
        users: object = None,
        k: int = 10,
        exclude_seen: bool = True,
        unknown_users: UnknownUsers = "popular",
        show_progress: bool = False,
        allowed_items: object = None,
        forbidden_items: object = None,
    ) -> pd.DataFrame:
        """``user, item, rank, score, source`` for ``users`` (log ids; default all) from their history."""
        X, user_ids, _, _ = history_matrix(self.item_ids, self.inter, users, unknown_users)
        filters = id_filters(self.item_ids, user_ids, allowed_items, forbidden_items)
        return recommendations_frame(
            self.model, X, user_ids, self.item_ids, k, exclude_seen, unknown_users, show_progress, filters
        )

    def recommend_from_items(
        self,
        items: ArrayLike | None,
        k: int = 10,
        exclude_seen: bool = True,
        unknown_users: UnknownUsers = "popular",
        allowed_items: object = None,
        forbidden_items: object = None,
        unknown_items: UnknownItems = "drop",
    ) -> pd.DataFrame:
        """``item, rank, score, source`` for a new user who has ``items`` (item ids).

        Ids the model does not know are dropped with an :class:`UnknownItemsWarning`
        (``unknown_items="error"``: refused); a list left empty gets the popular items.
        """
        X, note = new_user_row(self.item_ids, items, unknown_items, unknown_users)
        if note is not None:
            warnings.warn(note, UnknownItemsWarning, stacklevel=3)  # the caller of Interactions' method
        filters = id_filters(self.item_ids, None, allowed_items, forbidden_items)
        frame = recommendations_frame(
            self.model, X, np.array([None]), self.item_ids, k, exclude_seen, unknown_users, filters=filters
        )
        return frame.drop(columns="user")

    def similar_items(self, item: ArrayLike, k: int = 10) -> pd.DataFrame:
        """``rank, item, score`` of the ``k`` items most similar to item id ``item``."""
        return similar_frame(self.model, self.item_ids, item, k)
