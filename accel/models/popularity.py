"""Item popularity as sparse factors: the ranking TopPopular serves and cold-start users fall back to."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp


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
