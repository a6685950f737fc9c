"""TopPopular: recommend the most interacted-with items, the baseline every model must beat."""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from accel.backends import Backend
from accel.models.base import Recommender


class TopPopular(Recommender):
    """Scores every item by how many users interacted with it in the training data.

    Every user gets the same ranking (minus what they have seen), and
    ``similar_items`` returns the most popular other items.
    """

    def __init__(self, backend: str | Backend = "auto", dtype: str = "float32") -> None:
        super().__init__(backend=backend, dtype=dtype)

    def _fit(self, X: sp.csr_matrix, show_progress: bool) -> None:
        counts = np.bincount(X.indices, minlength=self.n_items_).astype(self.dtype_)
        self.counts_ = self.backend_.to_device(counts)

    def _score_batch(self, X: Any, rows: np.ndarray) -> Any:
        return self.counts_.reshape(1, -1).repeat(X.shape[0], axis=0)

    def _item_scores(self, item: int) -> Any:
        return self.counts_

    def _state(self) -> dict[str, Any]:
        return {"counts": self.counts_}

    def _set_state(self, arrays: dict[str, np.ndarray]) -> None:
        self.counts_ = self.backend_.to_device(np.asarray(arrays["counts"]))
