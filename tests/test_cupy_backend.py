"""CupyBackend against float64 NumPy references; skipped where CuPy or a CUDA device is not usable."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import scipy.sparse as sp

from tests.conftest import random_interactions

pytestmark = pytest.mark.gpu


@pytest.fixture(scope="module")
def cupy() -> Any:
    module = pytest.importorskip("cupy", reason="CuPy is not installed")
    from accel.backends.cupy import cupy_usable

    usable, reason = cupy_usable()
    if not usable:
        pytest.skip(f"no usable CUDA device: {reason}")
    return module


@pytest.fixture(scope="module")
def backend(cupy: Any) -> Any:
    from accel.backends.cupy.backend import CupyBackend

    return CupyBackend()


def spd_matrix(n: int, seed: int) -> np.ndarray:
    """EASE-like ``XᵀX + λI`` for a random binary X (float64)."""
    rng = np.random.default_rng(seed)
    X = (rng.random((3 * n + 5, n)) < 0.1).astype(np.float64)
    return X.T @ X + 2.0 * np.eye(n)


def rel_error(got: np.ndarray, want: np.ndarray) -> float:
    return float(np.abs(got.astype(np.float64) - want).max() / np.abs(want).max())


# ---- construction, memory, movement -------------------------------------------------------------
def test_unusable_device_is_reported(cupy: Any) -> None:
    from accel.backends.cupy.backend import CupyBackend
    from accel.errors import BackendUnavailableError

    with pytest.raises(BackendUnavailableError, match="does not exist"):
        CupyBackend(device=cupy.cuda.runtime.getDeviceCount())


def test_memory(backend: Any) -> None:
    assert backend.free_memory() > 0
    assert backend.memory_kind().startswith("GPU memory (")
    assert backend.workspace_bytes(10_000, 4) >= backend.block_size * 10_000 * 4


def test_round_trip(backend: Any) -> None:
    host = np.arange(12, dtype=np.float32).reshape(3, 4)
    device = backend.to_device(host)
    np.testing.assert_array_equal(backend.to_host(device), host)
    X = sp.random(20, 9, density=0.3, format="csr", dtype=np.float64, random_state=0)
    X_dev = backend.sparse_to_device(X, np.dtype(np.float32))
    assert X_dev.dtype == np.float32
    np.testing.assert_allclose(X_dev.get().toarray(), X.toarray(), rtol=1e-6)
    assert backend.empty((3, 5), np.dtype(np.float32)).shape == (3, 5)


# ---- Gram ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("gram_block_size", [None, 1, 7, 64])
def test_gram_matches_dense(cupy: Any, gram_block_size: int | None) -> None:
    from accel.backends.cupy.backend import CupyBackend

    backend = CupyBackend(gram_block_size=gram_block_size)
    X = random_interactions(500, 130, 0.05, seed=1)
    X[3] = 0  # an empty user row
    X.eliminate_zeros()
    X_dev = backend.sparse_to_device(X, np.dtype(np.float32))
    out = backend.empty((130, 130), np.dtype(np.float32))
    backend.gram(X_dev, out)
    dense = X.toarray().astype(np.float64)
    np.testing.assert_array_equal(backend.to_host(out), dense.T @ dense)


def test_gram_with_unused_items(cupy: Any) -> None:
    from accel.backends.cupy.backend import CupyBackend

    backend = CupyBackend(gram_block_size=1)
    X = sp.csr_matrix(np.array([[1, 0, 0, 1], [0, 0, 0, 1]], dtype=np.float32))
    out = backend.empty((4, 4), np.dtype(np.float32))
    backend.gram(backend.sparse_to_device(X, np.dtype(np.float32)), out)
    dense = X.toarray().astype(np.float64)
    np.testing.assert_array_equal(backend.to_host(out), dense.T @ dense)


def gram_through(backend: Any, monkeypatch: pytest.MonkeyPatch, wrap: Any, X: sp.csr_matrix) -> tuple:
    """``backend.gram(X)`` with cupyx's SpGEMM replaced by ``wrap(spgemm)``: G (host) and XᵀX in float64."""
    import cupyx.cusparse

    monkeypatch.setattr(cupyx.cusparse, "spgemm", wrap(cupyx.cusparse.spgemm))
    n = X.shape[1]
    out = backend.empty((n, n), np.dtype(np.float32))
    backend.gram(backend.sparse_to_device(X, np.dtype(np.float32)), out)
    dense = X.toarray().astype(np.float64)
    return backend.to_host(out), dense.T @ dense


def test_gram_is_one_block_when_memory_allows(backend: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def counted(spgemm: Any) -> Any:
        def run(a: Any, b: Any, alpha: float = 1) -> Any:
            calls.append(a.shape[0])
            return spgemm(a, b, alpha)

        return run

    got, want = gram_through(backend, monkeypatch, counted, random_interactions(3000, 400, 0.05, seed=8))
    np.testing.assert_array_equal(got, want)
    assert calls == [400]  # blocks are sized from free memory, not from a share of n²


def test_column_stats(backend: Any) -> None:
    X = random_interactions(300, 40, 0.1, seed=3)
    X.data[:] = np.arange(1, X.nnz + 1) % 3 + 1  # not only ones
    products, squares, sums = backend._column_stats(backend.sparse_to_device(X, np.dtype(np.float32)))
    lengths = np.diff(X.indptr)
    dense = X.toarray().astype(np.float64)
    np.testing.assert_array_equal(products.get(), (dense != 0).T @ lengths)
    np.testing.assert_array_equal(squares.get(), (dense**2).sum(axis=0))
    np.testing.assert_allclose(sums.get(), (dense.T @ dense).sum(axis=1), rtol=1e-12)


def test_column_stats_of_long_rows(backend: Any) -> None:
    """Rows longer than a thread block: the shared-memory row sum covers every entry."""
    X = random_interactions(5, 3000, 0.4, seed=4)
    _products, _squares, sums = backend._column_stats(backend.sparse_to_device(X, np.dtype(np.float32)))
    dense = X.toarray().astype(np.float64)
    np.testing.assert_array_equal(sums.get(), (dense.T @ dense).sum(axis=1))


def test_gram_row_sums_catch_a_lost_off_diagonal_entry(backend: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    def lossy(spgemm: Any) -> Any:
        def run(a: Any, b: Any, alpha: float = 1) -> Any:
            product = spgemm(a, b, alpha).tocoo()
            product.data[int((product.row != product.col).argmax())] = 0  # one block: rows are items
            return product.tocsr()

        return run

    with pytest.raises(RuntimeError, match="row sums"):
        gram_through(backend, monkeypatch, lossy, random_interactions(200, 30, 0.2, seed=9))


def test_gram_block_out_of_memory_is_halved_and_retried(
    backend: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import cupy

    sizes: list[int] = []

    def tight(spgemm: Any) -> Any:
        def run(a: Any, b: Any, alpha: float = 1) -> Any:
            sizes.append(a.shape[0])
            if a.shape[0] > 25:
                raise cupy.cuda.memory.OutOfMemoryError(1 << 40, 0, 0)
            return spgemm(a, b, alpha)

        return run

    got, want = gram_through(backend, monkeypatch, tight, random_interactions(500, 100, 0.1, seed=10))
    np.testing.assert_array_equal(got, want)
    assert sizes[0] == 100 and backend.gram_stats["retries"] >= 2
    assert backend.gram_stats["blocks"] == len(backend.gram_stats["bytes_per_product"]) >= 4


def test_memory_plans_follow_free_memory(backend: Any) -> None:
    assert backend.workspace_bytes(20_000, 4, nnz=48_500_000) > backend.workspace_bytes(20_000, 4)
    assert backend.batch_bytes > 0.5 * backend.free_memory()


def test_gram_detects_an_empty_product(backend: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import cupyx.cusparse
    import cupyx.scipy.sparse

    def empty_product(a: Any, b: Any, alpha: float = 1) -> Any:
        return cupyx.scipy.sparse.csr_matrix((a.shape[0], b.shape[1]), dtype=a.dtype)

    monkeypatch.setattr(cupyx.cusparse, "spgemm", empty_product)
    X = random_interactions(50, 20, 0.2, seed=2)
    out = backend.empty((20, 20), np.dtype(np.float32))
    with pytest.raises(RuntimeError, match="Gram check failed"):
        backend.gram(backend.sparse_to_device(X, np.dtype(np.float32)), out)


# ---- inverse -------------------------------------------------------------------------------------
@pytest.mark.parametrize("cholesky", ["auto", "blocked"])
@pytest.mark.parametrize(("n", "block"), [(1, 4), (7, 3), (300, 64), (1000, 96)])
def test_spd_inverse_float32(cupy: Any, n: int, block: int, cholesky: str) -> None:
    from accel.backends.cupy.backend import CupyBackend

    backend = CupyBackend(block_size=block, cholesky=cholesky)
    A = spd_matrix(n, seed=n)
    dev = backend.to_device(A.astype(np.float32))
    pointer = dev.data.ptr
    backend.spd_inverse_inplace(dev)
    assert dev.data.ptr == pointer
    got = backend.to_host(dev)
    assert rel_error(got, np.linalg.inv(A)) < 1e-4
    np.testing.assert_array_equal(got, got.T)


def test_spd_inverse_float64(cupy: Any) -> None:
    from accel.backends.cupy.backend import CupyBackend

    backend = CupyBackend(block_size=50)
    A = spd_matrix(257, seed=9)
    dev = backend.to_device(A)
    backend.spd_inverse_inplace(dev)
    assert rel_error(backend.to_host(dev), np.linalg.inv(A)) < 1e-10


def test_spd_inverse_uses_cusolver_xpotrf(backend: Any) -> None:
    assert backend.cholesky_impl.startswith("cusolverDnXpotrf"), backend.cholesky_impl


@pytest.mark.parametrize("cholesky", ["auto", "blocked"])
def test_spd_inverse_tf32(cupy: Any, cholesky: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from accel.backends.cupy import inverse
    from accel.backends.cupy.backend import CupyBackend

    monkeypatch.setattr(inverse, "TF32_SYRK_PANEL", 200)  # the blocked trailing updates in 3 panels
    backend = CupyBackend(block_size=128, math_mode="tf32", cholesky=cholesky)
    A = spd_matrix(600, seed=4)
    dev = backend.to_device(A.astype(np.float32))
    backend.spd_inverse_inplace(dev)
    assert rel_error(backend.to_host(dev), np.linalg.inv(A)) < 5e-3


@pytest.mark.parametrize("cholesky", ["auto", "blocked"])
def test_not_positive_definite_raises(cupy: Any, cholesky: str) -> None:
    from accel.backends.cupy.backend import CupyBackend

    backend = CupyBackend(block_size=8, cholesky=cholesky)
    A = spd_matrix(30, seed=1)
    A[17, 17] = -1.0
    with pytest.raises(np.linalg.LinAlgError, match="not positive definite"):
        backend.spd_inverse_inplace(backend.to_device(A.astype(np.float32)))


# ---- EASE weights and diagonal ------------------------------------------------------------------
def test_ease_weights_and_diagonal(backend: Any) -> None:
    P = np.linalg.inv(spd_matrix(40, seed=3))
    dev = backend.to_device(P.astype(np.float32))
    backend.ease_weights_inplace(dev)
    want = np.eye(40) - P / np.diag(P)[None, :]
    np.fill_diagonal(want, 0.0)
    got = backend.to_host(dev)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert not np.diag(got).any()


def test_add_to_diagonal(backend: Any) -> None:
    dev = backend.to_device(np.zeros((5, 5), dtype=np.float32))
    backend.add_to_diagonal(dev, 2.5)
    backend.add_to_diagonal(dev, np.arange(5, dtype=np.float32))
    np.testing.assert_array_equal(backend.diagonal(dev), 2.5 + np.arange(5))
    assert not (backend.to_host(dev) - np.diag(backend.diagonal(dev))).any()


# ---- scoring -------------------------------------------------------------------------------------
@pytest.mark.parametrize("order", ["C", "F"])
def test_sparse_dense_matmul(backend: Any, order: str) -> None:
    X = random_interactions(64, 50, 0.1, seed=5)
    W = np.random.default_rng(0).standard_normal((50, 33)).astype(np.float32)
    W_dev = backend.to_device(np.asarray(W, order=order))
    X_dev = backend.sparse_to_device(X, np.dtype(np.float32))
    got = backend.to_host(backend.sparse_dense_matmul(X_dev, W_dev))
    np.testing.assert_allclose(got, X.toarray().astype(np.float64) @ W, rtol=1e-5, atol=1e-5)


def test_sparse_dense_matmul_in_row_chunks(backend: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each SpMM's output stays under the element cap; rows come out as from one product."""
    from accel.backends.cupy import planning

    monkeypatch.setattr(planning, "SPMM_MAX_ELEMENTS", 7 * 33)  # 7 rows a product, 64 rows: 10 chunks
    X = random_interactions(64, 50, 0.1, seed=5)
    W = np.random.default_rng(0).standard_normal((50, 33)).astype(np.float32)
    got = backend.to_host(
        backend.sparse_dense_matmul(backend.sparse_to_device(X, np.dtype(np.float32)), backend.to_device(W))
    )
    np.testing.assert_allclose(got, X.toarray().astype(np.float64) @ W, rtol=1e-5, atol=1e-5)
    assert backend.dense_batch_rows(33, 4) == 7


def test_sparse_dense_matmul_empty_rows(backend: Any) -> None:
    X = sp.csr_matrix((3, 4), dtype=np.float32)
    W = backend.to_device(np.ones((4, 2), dtype=np.float32))
    got = backend.to_host(backend.sparse_dense_matmul(backend.sparse_to_device(X, np.dtype(np.float32)), W))
    np.testing.assert_array_equal(got, np.zeros((3, 2)))


def test_mask_seen(backend: Any) -> None:
    X = random_interactions(20, 15, 0.2, seed=6)
    scores = np.random.default_rng(1).random((20, 15)).astype(np.float32)
    dev = backend.to_device(scores)
    backend.mask_seen(dev, backend.sparse_to_device(X, np.dtype(np.float32)))
    want = scores.copy()
    want[X.toarray() != 0] = -np.inf
    np.testing.assert_array_equal(backend.to_host(dev), want)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_topk_order_and_ties(backend: Any, dtype: type) -> None:
    scores = np.array(
        [
            [0.5, 0.9, 0.5, 0.9, -np.inf, 0.1],
            [1.0, 1.0, 1.0, 1.0, 1.0, 1.0],
            [-np.inf, -np.inf, 0.0, -0.0, 3.0, -1.0],
        ],
        dtype=dtype,
    )
    ids, values = backend.topk(backend.to_device(scores), 4)
    np.testing.assert_array_equal(ids, [[1, 3, 0, 2], [0, 1, 2, 3], [4, 2, 3, 5]])
    np.testing.assert_array_equal(values, np.take_along_axis(scores, ids, axis=1))
    assert ids.dtype == np.int64 and isinstance(ids, np.ndarray) and isinstance(values, np.ndarray)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("k", [1, 10, 600, 2000])
def test_topk_matches_numpy(backend: Any, k: int, dtype: type) -> None:
    from accel.backends.numpy_backend import topk_rows

    rng = np.random.default_rng(k)
    scores = rng.integers(0, 50, size=(37, 2000)).astype(dtype)  # many ties
    scores[:, ::7] = -np.inf
    ids, values = backend.topk(backend.to_device(scores), k)
    want_ids, want_values = topk_rows(scores, k)
    np.testing.assert_array_equal(ids, want_ids)
    np.testing.assert_array_equal(values, want_values)


# ---- the whole model --------------------------------------------------------------------------------
def test_pool_peaks_by_phase(cupy: Any) -> None:
    from accel.backends.cupy.backend import CupyBackend
    from accel.models.ease import EASE

    backend = CupyBackend(block_size=64)
    X = random_interactions(4000, 600, 0.05, seed=12)
    cupy.get_default_memory_pool().free_all_blocks()
    EASE(l2=50.0, backend=backend).fit(X, show_progress=False)
    n2 = 600 * 600 * 4
    assert set(backend.pool_peaks) == {"gram", "inverse"}
    # the inverse phase starts from the n² buffer alone (the Gram's blocks were freed)
    assert n2 <= backend.pool_peaks["inverse"] <= n2 + 4 * backend.workspace_bytes(600, 4)
    assert backend.pool_peaks["gram"] >= n2


def test_ease_numpy_and_cupy_agree(backend: Any) -> None:
    ease = pytest.importorskip("accel.models.ease", reason="accel.models.ease is not available yet")
    X = random_interactions(800, 150, 0.04, seed=11)
    cpu = ease.EASE(l2=50.0, backend="numpy").fit(X, show_progress=False)
    gpu = ease.EASE(l2=50.0, backend=backend).fit(X, show_progress=False)
    B_cpu, B_gpu = np.asarray(cpu.B_), backend.to_host(gpu.B_)
    assert np.abs(B_gpu - B_cpu).max() <= 1e-4 * np.abs(B_cpu).max()
    ids_cpu, scores_cpu = cpu.recommend(X[:100], k=10)
    ids_gpu, scores_gpu = gpu.recommend(X[:100], k=10)
    np.testing.assert_allclose(scores_gpu, scores_cpu, rtol=1e-4, atol=1e-5)
    assert (ids_gpu == ids_cpu).mean() > 0.99  # only near-ties may swap at float32 precision
