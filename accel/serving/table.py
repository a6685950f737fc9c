"""The long result table ``user, item, rank, score, source``, built once for pandas and Parquet output."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

#: The ``source`` column: scored by the model, or the popularity fallback for a user with no known items.
SOURCES = ("model", "popular")


def long_table(
    ids: np.ndarray,
    scores: np.ndarray,
    X: sp.csr_matrix,
    user_ids: np.ndarray,
    item_ids: np.ndarray | None,
) -> dict[str, np.ndarray]:
    """Columns of one row per result of ``recommend``'s ``(ids, scores)`` for the rows ``X``; padding dropped.

    ``user_ids`` name the rows; ``item_ids`` the model's columns (``None``: item
    indices). A row of ``X`` without items got the popular fallback (``source``).
    """
    width = ids.shape[1]
    keep = (ids >= 0).ravel()
    items = ids.ravel()[keep]
    sources = np.where(np.diff(X.indptr) == 0, SOURCES[1], SOURCES[0]).astype(object)
    return {
        "user": np.repeat(np.asarray(user_ids), width)[keep],
        "item": items if item_ids is None else np.asarray(item_ids)[items],
        "rank": np.tile(np.arange(1, width + 1, dtype=np.int32), len(ids))[keep],
        "score": scores.ravel()[keep],
        "source": np.repeat(sources, width)[keep],
    }
