"""Recommendations and similar items in a log's own ids, as DataFrames, from any fitted model."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import scipy.sparse as sp
from numpy.typing import ArrayLike

from accel.data.ids import lookup_ids, match_ids
from accel.errors import InputError
from accel.serving.popular_fallback import UnknownUsers
from accel.serving.table import long_table
from accel.validation import binary_matrix

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


def history_matrix(
    item_ids: np.ndarray, inter: Interactions, users: object = None
) -> tuple[sp.csr_matrix, np.ndarray, int]:
    """The histories of ``users`` (log ids; default all) over the model's ``item_ids``.

    Returns the users × model-items matrix, the users' ids, and how many
    interactions were with items the model does not know (they are left out).
    """
    frame = inter.frame
    if users is None:
        rows, user_ids = np.arange(inter.n_users), inter.user_ids
    else:
        rows = pd.unique(inter.user_index(users))  # a user asked for twice is answered once
        user_ids = inter.user_ids[rows]
        position = np.full(inter.n_users, -1, dtype=np.int64)
        position[rows] = np.arange(len(rows))
        frame = frame[position[frame["user"].to_numpy()] >= 0]
        frame = frame.assign(user=position[frame["user"].to_numpy()])
    to_model = match_ids(inter.item_ids, item_ids)
    items = to_model[frame["item"].to_numpy()]
    known = items >= 0
    X = binary_matrix(frame["user"].to_numpy()[known], items[known], (len(rows), len(item_ids)))
    return X, np.asarray(user_ids), int((~known).sum())


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


def items_row(item_ids: np.ndarray, items: ArrayLike | None) -> sp.csr_matrix:
    """One user's row over the model's items from their item ids (an unknown id is an error)."""
    given: ArrayLike = [] if items is None else items
    positions = lookup_ids(given, item_ids, "item") if np.size(given) else np.empty(0, np.int64)
    return binary_matrix(np.zeros(len(positions), dtype=np.int64), positions, (1, len(item_ids)))


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
        X, user_ids, _ = history_matrix(self.item_ids, self.inter, users)
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
    ) -> pd.DataFrame:
        """``item, rank, score, source`` for a new user who has ``items`` (item ids)."""
        X = items_row(self.item_ids, items)
        filters = id_filters(self.item_ids, None, allowed_items, forbidden_items)
        frame = recommendations_frame(
            self.model, X, np.array([None]), self.item_ids, k, exclude_seen, unknown_users, filters=filters
        )
        return frame.drop(columns="user")

    def similar_items(self, item: ArrayLike, k: int = 10) -> pd.DataFrame:
        """``rank, item, score`` of the ``k`` items most similar to item id ``item``."""
        return similar_frame(self.model, self.item_ids, item, k)
