"""Serving a fitted model: top-k in item indices (:mod:`~accel.serving.topk`), candidate filters,
the popular fallback for rows without items, the long result table and answers in a log's ids
(:mod:`~accel.serving.answers`, the only part that needs pandas).

Serving works on the scoring contract of :mod:`accel.models.base` and imports no model.
"""

from accel.serving.filters import CandidateFilters
from accel.serving.popular_fallback import UNKNOWN_ITEMS, UNKNOWN_USERS
from accel.serving.topk import recommend_from_items, recommend_rows, similar_items

__all__ = [
    "UNKNOWN_ITEMS",
    "UNKNOWN_USERS",
    "CandidateFilters",
    "recommend_from_items",
    "recommend_rows",
    "similar_items",
]
