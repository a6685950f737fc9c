"""The NumPy backend's kernels against plain dense NumPy."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
from conftest import random_interactions

import accel.backends.numpy_backend as nb
from accel.backends import NumpyBackend, sparse_gram


@pytest.fixture(params=[1, 2], ids=["1-thread", "2-threads"])
def backend(request) -> NumpyBackend:
    return NumpyBackend(n_threads=request.param)


@pytest.fixture(params=["compiled", "scipy"])
def gram_path(request, monkeypatch) -> str:
    """Runs a test through each of the two Gram implementations."""
    monkeypatch.setattr(nb, "_COMPILED_GRAM_MIN_BYTES", 0 if request.param == "compiled" else 1 << 62)
    return request.param


@pytest.mark.parametrize("chunks_per_thread", [1, 3, 1000])
def test_gram_matches_dense_for_any_chunking(backend, gram_path, monkeypatch, chunks_per_thread):
    monkeypatch.setattr(sparse_gram, "_CHUNKS_PER_THREAD", chunks_per_thread)
    X = random_interactions(500, 97, 0.05, seed=1)
    keep = np.ones(97)
    keep[5] = 0  # an item nobody has: its row and column are zeros
    X = sp.csr_matrix(X @ sp.diags(keep.astype(X.dtype)))
    X.eliminate_zeros()
    out = np.full((97, 97), np.nan, dtype=np.float32)
    backend.gram(X, out)
    dense = X.toarray().astype(np.float64)
    np.testing.assert_array_equal(out, dense.T @ dense)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gram_of_weighted_values_matches_dense(backend, gram_path, dtype):
    X = sp.random(300, 41, density=0.1, format="csr", random_state=4, dtype=np.float64).astype(dtype)
    out = np.full((41, 41), np.nan, dtype=dtype)
    backend.gram(X, out)
    dense = X.toarray().astype(np.float64)
    np.testing.assert_allclose(out, dense.T @ dense, rtol=1e-6 if dtype == np.float32 else 1e-12)


@pytest.mark.parametrize("block_bytes", [1, 5000, 64 << 20])
def test_scipy_gram_matches_dense_for_any_block_size(backend, monkeypatch, block_bytes):
    monkeypatch.setattr(nb, "_COMPILED_GRAM_MIN_BYTES", 1 << 62)
    monkeypatch.setattr(nb, "_GRAM_BLOCK_BYTES", block_bytes)
    X = random_interactions(500, 97, 0.05, seed=1)
    out = np.full((97, 97), np.nan, dtype=np.float32)
    backend.gram(X, out)
    dense = X.toarray().astype(np.float64)
    np.testing.assert_array_equal(out, dense.T @ dense)


def test_compiled_gram_runs_from_the_size_threshold_on(monkeypatch):
    calls: list[int] = []
    monkeypatch.setattr(nb, "gram_into", lambda X, out, n_threads: calls.append(out.shape[0]) or out)
    monkeypatch.setattr(nb, "_COMPILED_GRAM_MIN_BYTES", 40 * 40 * 4)
    backend = NumpyBackend(n_threads=1)
    for n in (39, 40):
        backend.gram(random_interactions(100, n, 0.1, seed=n), np.empty((n, n), dtype=np.float32))
    assert calls == [40]


def test_gram_refuses_operands_that_do_not_match():
    X = random_interactions(50, 10, 0.2, seed=2).astype(np.float32)
    with pytest.raises(ValueError, match="10 × 10"):
        sparse_gram.gram_into(X, np.empty((9, 9), dtype=np.float32), 1)
    with pytest.raises(ValueError, match="10 × 10"):
        sparse_gram.gram_into(X, np.empty((10, 10), dtype=np.float32).T, 1)
    with pytest.raises(ValueError, match="CSR matrix of float64"):
        sparse_gram.gram_into(X, np.empty((10, 10), dtype=np.float64), 1)
    bad = X.copy()
    bad.indices[0] = 10
    with pytest.raises(ValueError, match="column indices outside"):
        sparse_gram.gram_into(bad, np.empty((10, 10), dtype=np.float32), 1)


@pytest.mark.parametrize("n", [1, 2, 33, 250])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_spd_inverse_in_place(backend, n, dtype):
    rng = np.random.default_rng(n)
    M = rng.standard_normal((n, 2 * n))
    A64 = M @ M.T + n * np.eye(n)
    A = A64.astype(dtype)
    out = backend.spd_inverse_inplace(A)
    assert out is A
    expected = np.linalg.inv(A64)
    tol = 1e-4 if dtype == np.float32 else 1e-10
    assert np.linalg.norm(A - expected) / np.linalg.norm(expected) < tol
    np.testing.assert_array_equal(A, A.T)


def test_not_positive_definite_raises(backend):
    A = np.array([[1.0, 2.0], [2.0, 1.0]], dtype=np.float32)
    with pytest.raises(np.linalg.LinAlgError, match="not positive definite"):
        backend.spd_inverse_inplace(A)


def test_ease_weights_in_place(backend):
    rng = np.random.default_rng(0)
    M = rng.standard_normal((40, 80))
    P = np.linalg.inv(M @ M.T + np.eye(40))
    expected = np.eye(40) - P @ np.diag(1 / np.diag(P))
    got = backend.ease_weights_inplace(P.copy())
    np.testing.assert_allclose(got, expected, atol=1e-12)
    assert np.all(np.diag(got) == 0)


def test_sparse_dense_matmul_and_mask(backend):
    X = random_interactions(300, 50, 0.1, seed=2)
    W = np.random.default_rng(3).standard_normal((50, 50)).astype(np.float32)
    S = backend.sparse_dense_matmul(X, W)
    np.testing.assert_allclose(S, X.toarray() @ W, rtol=1e-5, atol=1e-5)
    backend.mask_seen(S, X)
    assert np.array_equal(np.isneginf(S), X.toarray() != 0)


def test_topk_sorted_and_ties_go_to_the_lower_column():
    scores = np.array(
        [
            [0.5, 0.9, 0.5, 0.5, 0.1, 0.5],
            [1.0, 1.0, 1.0, 1.0, 1.0, 1.0],
            [-np.inf, 3.0, -np.inf, 2.0, 1.0, 0.0],
        ],
        dtype=np.float32,
    )
    ids, vals = nb.topk_rows(scores, 3)
    assert ids.tolist() == [[1, 0, 2], [0, 1, 2], [1, 3, 4]]
    np.testing.assert_array_equal(vals, np.take_along_axis(scores, ids, axis=1))
    ids_all, _ = nb.topk_rows(scores, 6)
    assert ids_all[0].tolist() == [1, 0, 2, 3, 5, 4]
    assert ids_all[2].tolist()[-2:] == [0, 2]


def test_topk_matches_a_full_stable_sort_on_random_rows():
    rng = np.random.default_rng(5)
    scores = rng.integers(0, 6, size=(200, 40)).astype(np.float32)
    ids, _vals = nb.topk_rows(scores, 7)
    expected = np.argsort(-scores, axis=1, kind="stable")[:, :7]
    np.testing.assert_array_equal(ids, expected)


def test_workspace_is_a_small_share_of_n_squared():
    backend = NumpyBackend(n_threads=2)
    for n in (500, 5000, 50_000):
        assert backend.workspace_bytes(n, 4) <= 0.25 * n * n * 4


def test_free_memory_is_positive():
    assert NumpyBackend().free_memory() > 0
    assert NumpyBackend().memory_kind() == "host RAM"


def test_sparse_to_device_keeps_values_and_dtype():
    X = sp.random(20, 10, density=0.3, format="coo", random_state=0)
    out = NumpyBackend().sparse_to_device(X, np.float32)
    assert sp.isspmatrix_csr(out) and out.dtype == np.float32
    np.testing.assert_allclose(out.toarray(), X.toarray(), rtol=1e-6)


@pytest.mark.parametrize(("n", "block"), [(300, 64), (257, 100), (130, 7)])
def test_blocked_cholesky_path_for_large_matrices(backend, monkeypatch, n, block):
    # Above _LAPACK_POTRF_MAX_N the factorisation runs in blocks (OpenBLAS's threaded
    # spotrf segfaults at n ≈ 30k); force that path at a small size and check it.
    monkeypatch.setattr(nb, "_LAPACK_POTRF_MAX_N", 50)
    monkeypatch.setattr(nb, "_CHOLESKY_BLOCK", block)
    rng = np.random.default_rng(n)
    M = rng.standard_normal((n, 2 * n))
    A64 = M @ M.T + n * np.eye(n)
    A = A64.astype(np.float32)
    backend.spd_inverse_inplace(A)
    expected = np.linalg.inv(A64)
    assert np.linalg.norm(A - expected) / np.linalg.norm(expected) < 1e-4
    np.testing.assert_array_equal(A, A.T)


def test_blocked_cholesky_reports_the_failing_minor(monkeypatch):
    monkeypatch.setattr(nb, "_LAPACK_POTRF_MAX_N", 10)
    monkeypatch.setattr(nb, "_CHOLESKY_BLOCK", 8)
    A = np.eye(30, dtype=np.float64)
    A[20, 20] = -1.0
    with pytest.raises(np.linalg.LinAlgError, match="leading minor 21 of 30"):
        NumpyBackend().spd_inverse_inplace(A)


def _vm_flags_at(address: int) -> list[str]:
    """The VmFlags of the mapping of this process that holds ``address`` (Linux /proc)."""
    inside, flags = False, []
    for line in Path("/proc/self/smaps").read_text().splitlines():
        head = line.split()[0]
        if "-" in head and not head.endswith(":"):
            lo, hi = (int(x, 16) for x in head.split("-"))
            inside = lo <= address < hi
        elif inside and head == "VmFlags:":
            flags = line.split()[1:]
    return flags


@pytest.mark.skipif(
    not Path("/sys/kernel/mm/transparent_hugepage").exists(), reason="needs Linux with transparent huge pages"
)
def test_the_n2_buffer_is_on_small_pages_from_its_threshold(backend) -> None:
    big = backend.empty((4096, 4096), np.float32)  # 64 MiB
    small = backend.empty((64, 64), np.float32)
    assert big.shape == (4096, 4096) and big.flags.c_contiguous and big.flags.writeable
    big[...] = 1.0
    assert float(big.sum(dtype=np.float64)) == 4096.0**2
    assert "nh" in _vm_flags_at(big.ctypes.data) and small.shape == (64, 64)
