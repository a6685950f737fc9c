"""The CuPy backend's top-k selection, run on NumPy keys built as its CUDA key kernels build them."""

from __future__ import annotations

import numpy as np
import pytest

from accel.backends.cupy.topk import smallest_keys, smallest_packed
from accel.backends.numpy_backend import topk_rows


def order_bits(scores: np.ndarray) -> np.ndarray:
    """Keys ascending with the score (NaN first, -0.0 equal to 0.0): the kernels' ``ascending``."""
    unsigned = {4: np.uint32, 8: np.uint64}[scores.itemsize]
    sign = unsigned(1) << unsigned(8 * scores.itemsize - 1)
    bits = np.where(scores == 0, unsigned(0), scores.view(unsigned))
    ascending = np.where(bits & sign, ~bits, bits | sign)
    return np.where(np.isnan(scores), unsigned(0), ascending)


def packed_keys(scores: np.ndarray) -> np.ndarray:
    columns = np.broadcast_to(np.arange(scores.shape[1], dtype=np.uint64), scores.shape)
    return ((~order_bits(scores)).astype(np.uint64) << np.uint64(32)) | columns


def tricky_scores(dtype: type, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    scores = rng.integers(-20, 20, size=(41, 300)).astype(dtype)  # many ties
    scores[:, ::7] = -np.inf
    scores[0, :5] = [0.0, -0.0, 0.0, -0.0, 3.0]
    scores[1] = 1.0  # a row of ties
    scores[2, :] = -np.inf
    scores[2, 3] = np.finfo(dtype).tiny  # the smallest positive beats zero and -inf
    return scores


@pytest.mark.parametrize("k", [1, 3, 10, 299, 300])
def test_smallest_keys_float64(k: int) -> None:
    scores = tricky_scores(np.float64, seed=k)
    got = smallest_keys(np, ~order_bits(scores), k)
    want, _ = topk_rows(scores, k)
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("k", [1, 3, 10, 299, 300])
def test_smallest_packed_float32(k: int) -> None:
    scores = tricky_scores(np.float32, seed=k)
    got = smallest_packed(np, packed_keys(scores), k)
    want, _ = topk_rows(scores, k)
    np.testing.assert_array_equal(got, want)


def test_nan_goes_last() -> None:
    scores = np.array([[np.nan, 1.0, -np.inf, 2.0]])
    np.testing.assert_array_equal(smallest_keys(np, ~order_bits(scores), 4), [[3, 1, 2, 0]])
    np.testing.assert_array_equal(
        smallest_packed(np, packed_keys(scores.astype(np.float32)), 4), [[3, 1, 2, 0]]
    )
