"""TopPopular: counts as scores, the shared recommend / similar / save / load interface."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from accel import TopPopular, load_model
from accel.errors import InputError, NotFittedError


def test_scores_are_counts_and_seen_items_are_excluded():
    X = sp.csr_matrix(np.array([[1, 1, 0, 0], [0, 1, 1, 0], [0, 1, 1, 1], [1, 0, 0, 0]], dtype=np.float32))
    model = TopPopular(backend="numpy").fit(X)
    np.testing.assert_array_equal(model.counts_, [2, 3, 2, 1])
    ids, scores = model.recommend(X, k=2)
    np.testing.assert_array_equal(ids, [[2, 3], [0, 3], [0, -1], [1, 2]])
    np.testing.assert_array_equal(scores[0], [2, 1])
    all_ids, _ = model.recommend(X[:1], k=4, exclude_seen=False)
    np.testing.assert_array_equal(all_ids[0], [1, 0, 2, 3])  # ties broken by the lower index
    ids, _ = model.recommend_from_items([1, 2], k=2)
    np.testing.assert_array_equal(ids, [0, 3])
    ids, _ = model.similar_items(1, k=3)
    np.testing.assert_array_equal(ids, [0, 2, 3])


def test_save_load_round_trip(tmp_path, small_X):
    model = TopPopular(backend="numpy").fit(small_X)
    model.save(tmp_path / "m", extras={"item_ids": np.arange(small_X.shape[1]) + 100})
    loaded = load_model(tmp_path / "m")
    assert isinstance(loaded, TopPopular)
    np.testing.assert_array_equal(
        loaded.recommend(small_X[:20], k=5)[0], model.recommend(small_X[:20], k=5)[0]
    )
    np.testing.assert_array_equal(loaded.extras_["item_ids"][:2], [100, 101])


def test_errors(small_X):
    with pytest.raises(NotFittedError):
        TopPopular().recommend(small_X)
    model = TopPopular(backend="numpy").fit(small_X)
    with pytest.raises(InputError, match="out of range"):
        model.recommend_from_items([small_X.shape[1] + 5], unknown_items="error")
    with pytest.raises(InputError, match="item columns"):
        model.recommend(small_X[:, :10])
