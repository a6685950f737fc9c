"""The copy-free host BLAS executor: same results as SciPy's wrappers, in place, in bounds."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from accel.backends import _blocked_inverse as blocked
from accel.backends._blocked_inverse import NumpyExecutor, Ref
from accel.backends.host_blas import HostBlasExecutor


def spd(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    X = (rng.random((3 * n + 5, n)) < 0.1).astype(np.float64)
    return X.T @ X + 2.0 * np.eye(n)


def two_buffers(n: int, dtype: type, seed: int) -> tuple[np.ndarray, np.ndarray]:
    flat = np.random.default_rng(seed).random(n * n).astype(dtype)
    return flat, flat.copy()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(("side", "trans"), [("L", "N"), ("R", "N"), ("R", "T"), ("L", "T")])
def test_trsm_matches_the_reference_executor_on_sub_matrices(dtype: type, side: str, trans: str) -> None:
    n, m, k = 40, 9, 7
    ours, ref = two_buffers(n, dtype, 0)
    for flat in (ours, ref):  # a well-conditioned triangle at (3, 3)
        NumpyExecutor(dtype).view(Ref(flat, 3 + 3 * n, n), 12, 12)[...] += 20 * np.eye(12, dtype=dtype)
    rows, cols = (m, k) if side == "R" else (k, m)
    args = (side, "L", trans, rows, cols, -1.5)
    HostBlasExecutor(dtype).trsm(*args, Ref(ours, 3 + 3 * n, n), Ref(ours, 20 + 5 * n, n))
    NumpyExecutor(dtype).trsm(*args, Ref(ref, 3 + 3 * n, n), Ref(ref, 20 + 5 * n, n))
    np.testing.assert_allclose(ours, ref, rtol=1e-5 if dtype == np.float32 else 1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gemm_syrk_potrf_match_the_reference_executor(dtype: type) -> None:
    n = 50
    ours, ref = two_buffers(n, dtype, 1)
    for ex, flat in ((HostBlasExecutor(dtype), ours), (NumpyExecutor(dtype), ref)):
        ex.gemm(
            "T", "N", 6, 8, 5, 2.0, Ref(flat, 1 + 2 * n, n), Ref(flat, 30, n), 0.5, Ref(flat, 10 + 20 * n, n)
        )
        ex.syrk("L", "N", 9, 4, -1.0, Ref(flat, 40 + 1 * n, n), 1.0, Ref(flat, 11 + 30 * n, n))
        ex.syrk("L", "T", 7, 3, 1.5, Ref(flat, 2 + 40 * n, n), 1.0, Ref(flat, 20 + 41 * n, n))
        ex.gemm(
            "N", "N", 6, 4, 3, -1.0, Ref(flat, 30 + 1 * n, n), Ref(flat, 3 + 9 * n, n), 1.0, Ref(flat, 9, n)
        )
    np.testing.assert_allclose(ours, ref, rtol=1e-5 if dtype == np.float32 else 1e-12)
    A = spd(12, 2).astype(dtype)
    for ex, flat in ((HostBlasExecutor(dtype), ours), (NumpyExecutor(dtype), ref)):
        ex.view(Ref(flat, 5 + 5 * n, n), 12, 12)[...] = A
        assert ex.potrf(12, Ref(flat, 5 + 5 * n, n)) == 0
    np.testing.assert_allclose(ours, ref, rtol=1e-5 if dtype == np.float32 else 1e-12)


def test_potrf_reports_the_failing_minor() -> None:
    A = np.eye(6)
    A[3, 3] = -1.0
    assert HostBlasExecutor(np.float64).potrf(6, Ref(A.reshape(-1), 0, 6)) == 4


def test_operands_outside_the_buffer_are_refused() -> None:
    flat = np.zeros(100)
    ex = HostBlasExecutor(np.float64)
    with pytest.raises(ValueError, match="overruns its buffer"):
        ex.gemm("N", "N", 10, 10, 1, 1.0, Ref(flat, 0, 10), Ref(flat, 0, 10), 0.0, Ref(flat, 5, 10))
    with pytest.raises(ValueError, match="flat, contiguous, writable arrays"):
        ex.potrf(2, Ref(np.zeros(4, dtype=np.float32), 0, 2))
    read_only = np.eye(2).reshape(-1)
    read_only.flags.writeable = False
    with pytest.raises(ValueError, match="writable"):
        ex.potrf(2, Ref(read_only, 0, 2))
    with pytest.raises(ValueError, match="float32 and float64"):
        HostBlasExecutor(np.int64)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_blocked_inverse_is_in_place_with_block_workspace(dtype: type) -> None:
    n, block = 400, 32
    A64 = spd(n, 3)
    A = A64.astype(dtype)
    warm = spd(8, 4).astype(dtype)  # the routines' first lookup allocates once per dtype
    blocked.spd_inverse_flat(HostBlasExecutor(dtype), warm.reshape(-1), 8, 4, blocked_cholesky=True)
    tracemalloc.start()
    blocked.spd_inverse_flat(HostBlasExecutor(dtype), A.reshape(-1), n, block, blocked_cholesky=True)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert A.dtype == dtype
    # One b × b workspace and a few b × b temporaries: nothing that grows with n.
    assert peak <= 8 * block * block * A.itemsize + (16 << 10)
    want = np.linalg.inv(A64)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    assert np.abs(A - want).max() / np.abs(want).max() < tol
    np.testing.assert_array_equal(A, A.T)
