"""Item-item models whose weights are a sparse matrix ``S``: scores ``X · S``, served sparsely."""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from accel.models.base import Recommender


def cap_rows(S: sp.csr_matrix, cap: int) -> sp.csr_matrix:
    """``S`` with each row cut to its ``cap`` largest-magnitude entries (ties to the lower column).

    Rows at or under ``cap`` are kept whole; only the longer ones are selected, by a
    partition, so the cost follows the few long rows. ``S`` must have sorted indices.
    """
    lengths = np.diff(S.indptr)
    long_rows = np.flatnonzero(lengths > cap)
    if long_rows.size == 0:
        return S
    keep = np.ones(S.nnz, dtype=bool)
    for row in long_rows:
        start, stop = S.indptr[row], S.indptr[row + 1]
        magnitude = np.abs(S.data[start:stop])
        cut = np.partition(magnitude, magnitude.size - cap)[magnitude.size - cap]
        kept = magnitude > cut
        kept[np.flatnonzero(magnitude == cut)[: cap - int(kept.sum())]] = True
        keep[start:stop] = kept
    indptr = np.concatenate(([0], np.cumsum(np.minimum(lengths, cap)))).astype(S.indptr.dtype)
    return sp.csr_matrix((S.data[keep], S.indices[keep], indptr), shape=S.shape)


class SparseItemItem(Recommender):
    """Shared state and scoring of models with sparse item-item weights ``S_`` (items × items).

    ``S_`` stays on the host for the sparse top-k (the host's cores); one row of it
    goes to the backend for ``similar_items``. It is saved as its three CSR arrays
    (column indices as 2-byte integers up to 65,536 items; a memory-mapped ``S`` is
    read into memory on load).
    """

    scoring = "sparse"

    def _set_weights(self, S: sp.csr_matrix) -> None:
        S = sp.csr_matrix(S, dtype=self.dtype_)
        if not (S.data.flags.writeable and S.indices.flags.writeable and S.indptr.flags.writeable):
            S = S.copy()  # indices are sorted in place: a memory-mapped S is read once
        S.sort_indices()
        self.S_ = S

    def _sparse_factors(
        self, X: sp.csr_matrix, columns: np.ndarray | None, candidates: int | None
    ) -> tuple[sp.csr_matrix, sp.csr_matrix]:
        return X, self.S_

    def _item_scores(self, item: int) -> Any:
        return self.S_[item].toarray().ravel()

    def _state(self) -> dict[str, Any]:
        # Column indices in the narrowest integer type that holds them: 2 bytes up to 65,536 items.
        index_type = np.uint16 if self.n_items_ <= np.iinfo(np.uint16).max + 1 else self.S_.indices.dtype
        return {
            "S_data": self.S_.data,
            "S_indices": self.S_.indices.astype(index_type, copy=False),
            "S_indptr": self.S_.indptr,
        }

    def _set_state(self, arrays: dict[str, np.ndarray]) -> None:
        shape = (self.n_items_, self.n_items_)
        self._set_weights(
            sp.csr_matrix((arrays["S_data"], arrays["S_indices"], arrays["S_indptr"]), shape=shape)
        )
