"""LAPACK's Cholesky called from a numba kernel against NumPy's, in both precisions."""

from __future__ import annotations

import numba
import numpy as np
import pytest
from numba.core.errors import TypingError

from accel.backends.numba_lapack import DPOTRF, LAPACK_INT, SPOTRF, potrf_lower


@numba.njit
def factorise(address: int, a: np.ndarray, n: int) -> int:
    ints = np.zeros(2, dtype=LAPACK_INT)
    ints[0] = n
    return potrf_lower(address, a, ints)


@pytest.mark.parametrize(
    ("dtype", "address", "rtol"), [(np.float64, DPOTRF, 1e-12), (np.float32, SPOTRF, 1e-4)]
)
def test_the_leading_block_is_factorised_in_place(dtype, address, rtol):
    rng = np.random.default_rng(0)
    n, width = 7, 9  # a leading 7 × 7 block of a wider buffer: its rows are 9 apart
    M = rng.random((n, 2 * n))
    spd = M @ M.T + np.eye(n)
    buffer = np.full((width, width), 7.0, dtype=dtype)
    buffer[:n, :n] = np.tril(spd)
    buffer[:n, :n][np.triu_indices(n, 1)] = -1.0  # the upper triangle is neither read nor written
    assert factorise(address, buffer, n) == 0
    L = np.tril(buffer[:n, :n])
    np.testing.assert_allclose(L, np.linalg.cholesky(spd), rtol=rtol, atol=rtol)
    assert (buffer[:n, :n][np.triu_indices(n, 1)] == -1.0).all()
    assert (buffer[n:] == 7.0).all() and (buffer[:n, n:] == 7.0).all()


def test_a_matrix_that_is_not_positive_definite_gives_its_order():
    a = np.array([[4.0, 0.0, 0.0], [2.0, 1.0, 0.0], [0.0, 0.0, 1.0]])  # minor 2: 4·1 - 2² = 0
    assert factorise(DPOTRF, a, 3) == 2


@numba.njit
def factorise_with(a: np.ndarray, ints: np.ndarray) -> int:
    return potrf_lower(DPOTRF, a, ints)


def test_it_refuses_arrays_lapack_cannot_take():
    wrong = np.int64 if np.dtype(LAPACK_INT) == np.int32 else np.int32
    with pytest.raises(TypingError, match="LAPACK's integers"):
        factorise_with(np.eye(3), np.array([3, 0], dtype=wrong))
    with pytest.raises(TypingError, match="C-contiguous"):
        factorise(DPOTRF, np.eye(4)[:, ::2], 2)
    with pytest.raises(TypingError, match="float32 or float64"):
        factorise(DPOTRF, np.eye(3, dtype=np.int64), 3)
