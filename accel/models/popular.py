"""TopPopular: recommend the most interacted-with items, the baseline every model must beat."""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from accel.backends import Backend
from accel.models.base import DType, Recommender
from accel.models.registry import Entry
from accel.serving.popular_fallback import popularity_factors, popularity_ranking


class TopPopular(Recommender):
    """Scores every item by how many users interacted with it in the training data.

    Every user gets the same ranking (minus what they have seen), and
    ``similar_items`` returns the most popular other items. Serving is sparse: a
    row's candidates are only the few most popular items that can fill its
    top-k after its exclusions, so no dense row is formed; items nobody
    interacted with (score 0) are never recommended.
    """

    entry = Entry("toppop", bench_order=1)
    scoring = "sparse"

    def __init__(self, backend: str | Backend = "auto", dtype: DType = "float32") -> None:
        super().__init__(backend=backend, dtype=dtype)

    def _fit(self, X: sp.csr_matrix, show_progress: bool) -> None:
        self._set_counts(self.popularity_)

    def _set_counts(self, counts: np.ndarray) -> None:
        self.counts_ = np.asarray(counts, dtype=self.dtype_)
        self.ranking_ = popularity_ranking(self.counts_)

    def _sparse_factors(
        self, X: sp.csr_matrix, columns: np.ndarray | None, candidates: int | None
    ) -> tuple[sp.csr_matrix, sp.csr_matrix]:
        return popularity_factors(self.counts_, self.ranking_, X.shape[0], columns, candidates, self.dtype_)

    def _item_scores(self, item: int) -> Any:
        return self.counts_

    def _state(self) -> dict[str, Any]:
        return {"counts": self.counts_}

    def _saved_state(self) -> dict[str, Any]:
        return self._state()  # the counts are the popularity: saved once

    def _set_state(self, arrays: dict[str, np.ndarray]) -> None:
        self._set_counts(np.asarray(arrays["counts"]))
        self.popularity_ = np.rint(self.counts_).astype(np.int64)
