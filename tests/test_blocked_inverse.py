"""The blocked one-buffer SPD inverse, run on NumPy/SciPy BLAS with the CuPy backend's loop structure."""

from __future__ import annotations

import numpy as np
import pytest

from accel.backends import _blocked_inverse as blocked
from accel.backends._blocked_inverse import NumpyExecutor, Ref, spd_inverse_inplace_numpy
from accel.backends.cupy import planning
from accel.backends.cupy.planning import plan_gram_blocks, plan_row_blocks


def spd_matrix(n: int, seed: int, dtype: type = np.float64) -> np.ndarray:
    """A well-conditioned SPD matrix shaped like EASE's ``XᵀX + λI`` (binary X)."""
    rng = np.random.default_rng(seed)
    X = (rng.random((3 * n + 5, n)) < 0.1).astype(np.float64)
    return np.ascontiguousarray(X.T @ X + 2.0 * np.eye(n), dtype=dtype)


def rel_error(got: np.ndarray, want: np.ndarray) -> float:
    return float(np.abs(got.astype(np.float64) - want).max() / np.abs(want).max())


def colmajor(ex: NumpyExecutor, M: np.ndarray) -> tuple[np.ndarray, Ref]:
    """A flat column-major copy of ``M`` and the Ref of its whole matrix."""
    flat = np.asfortranarray(M).reshape(-1, order="F").copy()
    return flat, Ref(flat, 0, M.shape[0])


# ---- the executor implements BLAS semantics for the flags the algorithm passes ------------------
@pytest.mark.parametrize("side", ["L", "R"])
@pytest.mark.parametrize("trans", ["N", "T"])
def test_trsm_semantics(side: str, trans: str) -> None:
    rng = np.random.default_rng(0)
    ex = NumpyExecutor(np.float64)
    m, n = 5, 3
    k = m if side == "L" else n
    L = np.tril(rng.random((k, k))) + k * np.eye(k)
    B = rng.random((m, n))
    _, a = colmajor(ex, L + np.triu(rng.random((k, k)), 1))  # garbage above the diagonal is ignored
    _, b = colmajor(ex, B)
    ex.trsm(side, "L", trans, m, n, -2.0, a, b)
    op = L.T if trans == "T" else L
    want = -2.0 * (np.linalg.solve(op, B) if side == "L" else B @ np.linalg.inv(op))
    np.testing.assert_allclose(ex.view(b, m, n), want, rtol=1e-12)


def test_gemm_and_syrk_semantics() -> None:
    rng = np.random.default_rng(1)
    ex = NumpyExecutor(np.float64)
    A, B, C = rng.random((4, 3)), rng.random((4, 5)), rng.random((3, 5))
    _, a = colmajor(ex, A)
    _, b = colmajor(ex, B)
    _, c = colmajor(ex, C)
    ex.gemm("T", "N", 3, 5, 4, 2.0, a, b, 0.5, c)
    np.testing.assert_allclose(ex.view(c, 3, 5), 2.0 * A.T @ B + 0.5 * C, rtol=1e-12)

    S = rng.random((6, 6))
    _, s = colmajor(ex, S)
    P = rng.random((6, 2))
    _, p = colmajor(ex, P)
    ex.syrk("L", "N", 6, 2, -1.0, p, 1.0, s)
    got = ex.view(s, 6, 6)
    np.testing.assert_allclose(np.tril(got), np.tril(S - P @ P.T), rtol=1e-12)
    np.testing.assert_array_equal(np.triu(got, 1), np.triu(S, 1))  # upper triangle untouched

    _, s = colmajor(ex, S)
    Q = rng.random((3, 6))
    _, q = colmajor(ex, Q)
    ex.syrk("L", "T", 6, 3, 2.0, q, 0.5, s)
    np.testing.assert_allclose(np.tril(ex.view(s, 6, 6)), np.tril(2.0 * Q.T @ Q + 0.5 * S), rtol=1e-12)


def test_view_addresses_column_major_submatrices() -> None:
    ex = NumpyExecutor(np.float64)
    flat = np.arange(20.0)
    view = ex.view(Ref(flat, 6, 4), 2, 3)  # rows 2..3, columns 1..3 of a 4-row column-major matrix
    M = flat.reshape(5, 4).T
    np.testing.assert_array_equal(view, M[2:4, 1:4])


# ---- the pieces ------------------------------------------------------------------------------
@pytest.mark.parametrize(("n", "block"), [(1, 1), (7, 3), (50, 16), (64, 64), (65, 8)])
def test_invert_lower_triangular(n: int, block: int) -> None:
    rng = np.random.default_rng(n)
    L = np.tril(rng.random((n, n))) + n * np.eye(n)
    garbage = np.triu(rng.random((n, n)), 1)
    ex = NumpyExecutor(np.float64)
    flat, _ = colmajor(ex, L + garbage)
    blocked.invert_lower_triangular(ex, flat, n, block)
    M = flat.reshape(n, n).T
    np.testing.assert_allclose(np.tril(M), np.linalg.inv(L), rtol=1e-10, atol=1e-14)
    for j in range(0, n, block):  # strict upper part of every diagonal block is exactly zero
        jb = min(block, n - j)
        assert not np.triu(M[j : j + jb, j : j + jb], 1).any()


@pytest.mark.parametrize(("n", "block"), [(1, 4), (9, 4), (40, 7), (40, 40)])
def test_lower_gram_inplace(n: int, block: int) -> None:
    rng = np.random.default_rng(n + 1)
    L = np.tril(rng.random((n, n))) + np.eye(n)
    M = L.copy()
    for i in range(0, n, block):  # upper parts outside the diagonal blocks may hold anything
        M[i : i + block, i + block :] = 7.0
    ex = NumpyExecutor(np.float64)
    flat, _ = colmajor(ex, M)
    blocked.lower_gram_inplace(ex, flat, n, block)
    got = flat.reshape(n, n).T
    np.testing.assert_allclose(np.tril(got), np.tril(L.T @ L), rtol=1e-12)


@pytest.mark.parametrize("n", [1, 6, 33])
def test_cholesky_lower_blocked(n: int) -> None:
    A = spd_matrix(n, seed=n)
    ex = NumpyExecutor(np.float64)
    flat, _ = colmajor(ex, A)
    assert blocked.cholesky_lower_blocked(ex, flat, n, 5) == 0
    np.testing.assert_allclose(np.tril(flat.reshape(n, n).T), np.linalg.cholesky(A), rtol=1e-10, atol=1e-12)


def test_symmetrize_from_lower() -> None:
    n, block = 11, 4
    rng = np.random.default_rng(3)
    lower = np.tril(rng.random((n, n)))
    ex = NumpyExecutor(np.float64)
    flat, _ = colmajor(ex, lower + np.triu(np.full((n, n), 9.0), 1))
    blocked.symmetrize_from_lower(ex, flat, n, block)
    np.testing.assert_array_equal(flat.reshape(n, n).T, lower + np.tril(lower, -1).T)


# ---- the whole inverse --------------------------------------------------------------------------
@pytest.mark.parametrize("blocked_cholesky", [False, True])
@pytest.mark.parametrize(("n", "block"), [(1, 1), (1, 64), (7, 3), (300, 64), (300, 300), (1000, 96)])
def test_spd_inverse_float64(n: int, block: int, blocked_cholesky: bool) -> None:
    A = spd_matrix(n, seed=n)
    want = np.linalg.inv(A)
    spd_inverse_inplace_numpy(A, block, blocked_cholesky)
    assert rel_error(A, want) < 1e-10
    np.testing.assert_array_equal(A, A.T)


@pytest.mark.parametrize("blocked_cholesky", [False, True])
@pytest.mark.parametrize(("n", "block"), [(7, 3), (300, 64), (1000, 96)])
def test_spd_inverse_float32(n: int, block: int, blocked_cholesky: bool) -> None:
    A64 = spd_matrix(n, seed=n + 100)
    A = A64.astype(np.float32)
    spd_inverse_inplace_numpy(A, block, blocked_cholesky)
    assert rel_error(A, np.linalg.inv(A64)) < 1e-4
    np.testing.assert_array_equal(A, A.T)


@pytest.mark.parametrize("blocked_cholesky", [False, True])
def test_not_positive_definite_raises(blocked_cholesky: bool) -> None:
    A = spd_matrix(20, seed=5)
    A[12, 12] = -1.0
    with pytest.raises(np.linalg.LinAlgError, match="not positive definite"):
        spd_inverse_inplace_numpy(A, 8, blocked_cholesky)


def test_rejects_non_contiguous() -> None:
    with pytest.raises(ValueError):
        spd_inverse_inplace_numpy(np.asfortranarray(spd_matrix(4, seed=0)))


def test_workspace_elements() -> None:
    assert blocked.workspace_elements(10, 4) == 16
    assert blocked.workspace_elements(3, 1024) == 9


@pytest.mark.parametrize(("n", "block"), [(3, 1024), (50, 16), (97, 32)])
def test_workspace_is_what_the_inverse_allocates(n: int, block: int) -> None:
    """Every workspace the inverse asks for fits in :func:`workspace_elements` (one b × b block)."""
    sizes: list[int] = []

    class Counting(NumpyExecutor):
        def empty(self, size: int) -> np.ndarray:
            sizes.append(size)
            return super().empty(size)

    A = spd_matrix(n, seed=n)
    want = np.linalg.inv(A)
    blocked.spd_inverse_flat(Counting(np.float64), A.reshape(-1), n, block, blocked_cholesky=True)
    assert sizes and max(sizes) == blocked.workspace_elements(n, block)
    assert rel_error(A, want) < 1e-10


# ---- Gram block planning (pure NumPy helpers of the CuPy backend) -----------------------------
def test_plan_row_blocks_respects_both_limits() -> None:
    weights = np.array([5, 1, 1, 1, 50, 1, 1, 2, 2, 2], dtype=float)
    blocks = plan_row_blocks(weights, max_rows=3, max_weight=6)
    assert blocks[0] == (0, 2)
    assert (4, 5) in blocks  # a row heavier than the limit gets a block of its own
    assert blocks[-1][1] == len(weights)
    assert all(a < b for a, b in blocks)
    assert [b for _, b in blocks[:-1]] == [a for a, _ in blocks[1:]]  # contiguous, no gaps
    for a, b in blocks:
        assert b - a <= 3
        assert b - a == 1 or weights[a:b].sum() <= 6


def test_plan_row_blocks_edge_cases() -> None:
    assert plan_row_blocks(np.zeros(0), 4, 10) == []
    assert plan_row_blocks(np.zeros(10), 4, 10) == [(0, 4), (4, 8), (8, 10)]
    assert plan_row_blocks(np.ones(3), 100, 1e18) == [(0, 3)]


def test_gram_blocks_grow_with_free_memory() -> None:
    # 1M users × 20k items, ~50 interactions each: about 2.5e9 scalar products in all.
    products = np.full(20_000, 125_000.0)
    few = plan_gram_blocks(products, free_bytes=70 << 30)
    many = plan_gram_blocks(products, free_bytes=4 << 30)
    assert len(few) <= 10 < len(many)  # 2.5e9 products in blocks of at most 2²⁸
    for blocks in (few, many):
        assert blocks[0][0] == 0 and blocks[-1][1] == 20_000
        assert all(products[a:b].sum() <= planning.MAX_PRODUCTS_PER_BLOCK for a, b in blocks)
    budget = int((4 << 30) * planning.GRAM_FREE_SHARE)
    assert all(products[a:b].sum() * planning.BYTES_PER_PRODUCT <= budget for a, b in many)
    assert plan_gram_blocks(products, 70 << 30, max_rows=7)[0] == (0, 7)


def test_workspace_counts_interactions() -> None:
    # The transpose buffer of X grows with the interactions; the inverse's is one b × b block.
    assert (
        planning.gram_workspace_bytes(100_000, 48_500_000) - planning.gram_workspace_bytes(100_000, 0)
        == 48_500_000 * planning.TRANSPOSE_BUFFER_PER_NNZ
    )
    assert planning.inverse_workspace_bytes(100_000, 4, 1024) == 1024 * 1024 * 4 + planning.INVERSE_SLACK
    assert planning.topk_chunk_rows(8 << 30, 20_000, np.dtype(np.float32)) == 26_843
    assert planning.topk_chunk_rows(0, 20_000, np.dtype(np.float64)) == 1
