"""CupyBackend: EASE's Gram, inverse and scoring on one CUDA device.

* Gram ``XᵀX``: ``cupyx.cusparse.spgemm`` on blocks of item rows of ``Xᵀ``, each block
  product scattered into its rows of the preallocated output. Blocks are planned from
  the memory free once the n² buffer exists (:func:`planning.plan_gram_blocks`); a block
  that runs out of memory is halved and retried. ``diag(G)`` and the row sums of ``G``
  are checked against per-item sums afterwards, because a one-shot product at 1M × 20k
  silently came back empty on an H100 (the diagonal alone would miss lost off-diagonal
  entries). After the Gram the memory pool's cached blocks are freed, so the inverse
  starts from the n² buffer alone; :attr:`CupyBackend.pool_peaks` holds each phase's pool.
* Inverse: :mod:`accel.backends.cupy.inverse` (cuSOLVER ``Xpotrf`` + cuBLAS, one buffer).
* Scoring: :func:`accel.backends.cupy.spmm.spmm` (``cusparseSpMM``, ``W`` never copied, in row
  chunks whose output stays under 2³¹ elements).
* Top-k: selection with ``ndarray.partition`` on order-preserving integer keys, never a
  full sort of a row; ties go to the lower column.
"""

from __future__ import annotations

import copy
import functools
from typing import Any, Literal

import numpy as np
import scipy.sparse as sp

from accel.backends import _blocked_inverse as blocked
from accel.backends.base import Array, Backend, SparseMatrix
from accel.backends.cupy import planning
from accel.backends.cupy.inverse import MATH_MODES, MathMode, spd_inverse
from accel.backends.cupy.kernels import ROW_THREADS, row_kernel
from accel.backends.cupy.libs import CUDA_DTYPE, Xpotrf, cupy_usable, device_name, load_xpotrf
from accel.backends.cupy.spmm import spmm
from accel.backends.cupy.topk import best_in_rows
from accel.errors import BackendUnavailableError

CholeskyMode = Literal["auto", "cusolver", "blocked"]
#: Share of free device memory one scoring batch may use (the model takes a further share of it).
_BATCH_FREE_SHARE = 1.0


class CupyBackend(Backend):
    """CuPy arrays on one CUDA device.

    Parameters
    ----------
    device:
        CUDA device index (default: CuPy's current device).
    block_size:
        Panel width of the blocked inverse; its workspace is one ``block_size × block_size`` block.
    math_mode:
        ``"exact"`` (float32/float64 as stored) or ``"tf32"``: TF32 tensor cores in the
        cuBLAS steps of the inverse (≈2× faster on an H100, relative error ~1e-4).
    cholesky:
        ``"auto"`` (cuSOLVER's 64-bit ``Xpotrf`` when it loads, else blocked), ``"cusolver"``
        (require ``Xpotrf``) or ``"blocked"`` (small potrf + trsm + syrk, the syrk as GEMMs in TF32).
    gram_block_size:
        Most item rows per Gram block (default: as many as free memory allows).
    """

    name = "cupy"

    def __init__(
        self,
        device: int | None = None,
        block_size: int = blocked.DEFAULT_BLOCK_SIZE,
        math_mode: MathMode = "exact",
        cholesky: CholeskyMode = "auto",
        gram_block_size: int | None = None,
    ) -> None:
        usable, reason = cupy_usable(device)
        if not usable:
            raise BackendUnavailableError(f"the CuPy backend cannot be used: {reason}")
        if math_mode not in MATH_MODES:
            raise ValueError(f"math_mode must be 'exact' or 'tf32', got {math_mode!r}")
        if cholesky not in ("auto", "cusolver", "blocked"):
            raise ValueError(f"cholesky must be 'auto', 'cusolver' or 'blocked', got {cholesky!r}")
        if int(block_size) < 1 or (gram_block_size is not None and int(gram_block_size) < 1):
            raise ValueError("block sizes must be positive")
        import cupy
        import cupyx.scipy.sparse

        self._cp = cupy
        self._cpx_sparse = cupyx.scipy.sparse
        self._device = cupy.cuda.Device(cupy.cuda.runtime.getDevice() if device is None else device)
        self.block_size = int(block_size)
        self.math_mode: MathMode = math_mode
        self.cholesky: CholeskyMode = cholesky
        self.gram_block_size = None if gram_block_size is None else int(gram_block_size)
        #: Bytes the memory pool held at the end of the last Gram (``"gram"``) and inverse (``"inverse"``).
        self.pool_peaks: dict[str, int] = {}
        #: The last Gram's blocks, out-of-memory retries and the pool's bytes per scalar product.
        self.gram_stats: dict[str, Any] = {}

    def with_math_mode(self, math_mode: str) -> CupyBackend:
        """This backend (same device and settings) with the inverse's cuBLAS steps in ``math_mode``."""
        if math_mode not in MATH_MODES:
            raise ValueError(f"math_mode must be 'exact' or 'tf32', got {math_mode!r}")
        if math_mode == self.math_mode:
            return self
        other = copy.copy(self)
        other.math_mode = math_mode
        other.pool_peaks, other.gram_stats = {}, {}
        return other

    @property
    def device_id(self) -> int:
        return int(self._device.id)

    # ---- data movement -------------------------------------------------
    def to_device(self, array: np.ndarray) -> Array:
        with self._device:
            return self._cp.asarray(array)

    def to_host(self, array: Array) -> np.ndarray:
        if isinstance(array, np.ndarray):
            return array
        return self._cp.asnumpy(array)

    def sparse_to_device(self, X: sp.spmatrix | sp.sparray, dtype: np.dtype) -> SparseMatrix:
        X = sp.csr_matrix(X)
        if X.dtype != dtype:
            X = X.astype(dtype)
        if not X.has_canonical_format:
            X = X.copy()
            X.sum_duplicates()
        with self._device:
            return self._cpx_sparse.csr_matrix(X)

    def empty(self, shape: tuple[int, ...], dtype: np.dtype) -> Array:
        with self._device:
            return self._cp.empty(shape, dtype=dtype)

    # ---- memory ----------------------------------------------------------
    def free_memory(self) -> int:
        with self._device:
            free, _total = self._cp.cuda.runtime.memGetInfo()
            return int(free + self._cp.get_default_memory_pool().free_bytes())

    def memory_kind(self) -> str:
        return f"GPU memory ({device_name(self._cp, self.device_id)})"

    @property
    def batch_bytes(self) -> int:  # type: ignore[override]
        """Scoring batches are sized from free device memory, not a fixed cap."""
        return int(self.free_memory() * _BATCH_FREE_SHARE)

    def dense_batch_rows(self, n_items: int, itemsize: int) -> int:
        """Rows per scoring batch: what free memory allows, and no more than one SpMM output holds."""
        return min(super().dense_batch_rows(n_items, itemsize), planning.spmm_max_rows(n_items))

    def workspace_bytes(self, n_items: int, itemsize: int, nnz: int = 0) -> int:
        """Peak device bytes a fit needs beyond the n² buffer, X and Xᵀ (the Gram or the inverse step)."""
        return max(
            planning.gram_workspace_bytes(n_items, nnz),
            planning.inverse_workspace_bytes(n_items, itemsize, self.block_size),
        )

    def synchronize(self) -> None:
        self._device.synchronize()

    # ---- EASE kernels ----------------------------------------------------
    def gram(self, X: SparseMatrix, out: Array) -> Array:
        n = X.shape[1]
        if out.shape != (n, n) or not out.flags.c_contiguous:
            raise ValueError(f"out must be a C-contiguous {n} × {n} array, got shape {out.shape}")
        pool = self._cp.get_default_memory_pool()
        with self._device:
            X = self._canonical(X, out.dtype)
            products, squares, sums = self._column_stats(X)
            XT = X.T.tocsr()
            XT.sum_duplicates()
            item_products = products.get()
            blocks = planning.plan_gram_blocks(item_products, self.free_memory(), self.gram_block_size)
            stats: dict[str, Any] = {"blocks": 0, "bytes_per_product": [], "pool_peak": 0}
            block = functools.partial(self._gram_block, XT, X, out, item_products, stats)
            stats["retries"] = planning.run_blocks(
                blocks, block, planning.is_out_of_memory, pool.free_all_blocks
            )
            del block, XT
            binary = bool((X.data == 1).all()) and float(squares.max()) < 2**24
            self._check_gram(squares, sums, out, exact=binary, row_sums=bool((X.data >= 0).all()))
            self.gram_stats = stats
            self.pool_peaks = {"gram": int(max(stats["pool_peak"], pool.total_bytes()))}
            pool.free_all_blocks()
        return out

    def _gram_block(
        self, XT: Any, X: Any, out: Array, products: np.ndarray, stats: dict[str, Any], start: int, stop: int
    ) -> None:
        """Rows ``start:stop`` of ``out = XᵀX`` by one SpGEMM; records the pool's bytes per product."""
        from cupyx import cusparse

        pool = self._cp.get_default_memory_pool()
        out[start:stop].fill(0)
        rows = XT[start:stop]
        if rows.nnz == 0:
            return
        rows.sum_duplicates()
        pool.free_all_blocks()
        before = pool.total_bytes()
        product = cusparse.spgemm(rows, X)
        self._scatter_rows(product, out[start:stop])
        total = pool.total_bytes()
        held = total - before
        stats["pool_peak"] = max(stats["pool_peak"], total)
        stats["blocks"] += 1
        stats["bytes_per_product"].append(round(held / max(1.0, float(products[start:stop].sum())), 2))

    def _column_stats(self, X: Any) -> tuple[Array, Array, Array]:
        """Per item: its Gram row's SpGEMM products (uint64), Σ_u X[u, j]² and Σ_u X[u, j]·Σ_i X[u, i]."""
        cp = self._cp
        n = X.shape[1]
        products = cp.zeros(n, dtype=cp.uint64)
        squares = cp.zeros(n, dtype=cp.float64)
        sums = cp.zeros(n, dtype=cp.float64)
        if X.nnz:
            kernel = row_kernel(
                "csr_column_stats", np.dtype(X.dtype), np.dtype(X.indices.dtype), self.device_id
            )
            indptr = X.indptr.astype(X.indices.dtype, copy=False)
            args = (indptr, X.indices, X.data, products, squares, sums, np.int64(X.shape[0]))
            kernel((X.shape[0],), (ROW_THREADS,), args)
        return products, squares, sums

    def _check_gram(self, squares: Array, sums: Array, out: Array, exact: bool, row_sums: bool) -> None:
        """Check ``diag(XᵀX)`` and ``XᵀX``'s row sums against per-item sums: catches silent SpGEMM failures.

        For binary X (whose Gram holds integers exactly) both must match exactly; otherwise to
        a relative tolerance of the dtype. Row sums are checked only for non-negative X, where
        no cancellation can hide behind the tolerance.
        """
        cp = self._cp
        rtol = 0.0 if exact else (1e-4 if out.dtype == np.float32 else 1e-10)
        checks = [("diag(XᵀX)", out.diagonal().astype(cp.float64), squares, "item interaction counts")]
        if row_sums:
            sums_got = out.sum(axis=1, dtype=cp.float64)
            checks.append(("the row sums of XᵀX", sums_got, sums, "item co-occurrence counts"))
        for what, got, expected, meaning in checks:
            bad = cp.abs(got - expected) > rtol * cp.abs(expected) + (0.5 if exact else 0.0)
            n_bad = int(bad.sum())
            if n_bad:
                first = int(cp.argmax(bad))
                raise RuntimeError(
                    f"Gram check failed: {what} differs from the {meaning} for {n_bad:,} of "
                    f"{out.shape[0]:,} items (first: item {first}, got {float(got[first])}, "
                    f"expected {float(expected[first])}). "
                    "cuSPARSE SpGEMM returned an incomplete product; retry with a smaller gram_block_size."
                )

    def spd_inverse_inplace(self, A: Array, on_block: blocked.OnBlock | None = None) -> Array:
        if A.ndim != 2 or A.shape[0] != A.shape[1] or not A.flags.c_contiguous:
            raise ValueError("spd_inverse_inplace needs a square C-contiguous array")
        if np.dtype(A.dtype) not in CUDA_DTYPE:
            raise ValueError(f"spd_inverse_inplace supports float32 and float64, got {A.dtype}")
        pool = self._cp.get_default_memory_pool()
        with self._device:
            pool.free_all_blocks()  # the phase's pool starts from what is live (A, and X if still held)
            spd_inverse(self._cp, A, self.block_size, self.math_mode, self._xpotrf(), on_block)
            self._device.synchronize()
            self.pool_peaks["inverse"] = int(pool.total_bytes())
        return A

    def _xpotrf(self) -> Xpotrf | None:
        """cuSOLVER's 64-bit potrf for the whole matrix, or ``None`` for the blocked Cholesky."""
        if self.cholesky == "blocked":
            return None
        loaded = load_xpotrf(self._cp, self.device_id)
        if isinstance(loaded, str):
            if self.cholesky == "cusolver":
                raise RuntimeError(f"cholesky='cusolver' was requested but {loaded}")
            return None
        return loaded

    @property
    def cholesky_impl(self) -> str:
        """Which Cholesky :meth:`spd_inverse_inplace` will run, and why when it is the fallback."""
        if self.cholesky == "blocked":
            return "blocked (requested)"
        with self._device:
            loaded = load_xpotrf(self._cp, self.device_id)
        return f"cusolverDnXpotrf ({loaded.library})" if isinstance(loaded, Xpotrf) else f"blocked ({loaded})"

    def ease_weights_inplace(self, P: Array) -> Array:
        cp = self._cp
        with self._device:
            diagonal = P.diagonal().copy()
            cp.divide(P, -diagonal[None, :], out=P)
            P.reshape(-1)[:: P.shape[0] + 1] = 0
        return P

    def add_to_diagonal(self, A: Array, value: float | Array) -> Array:
        with self._device:
            diagonal = A.reshape(-1)[:: A.shape[0] + 1]
            diagonal += value if np.isscalar(value) else self._cp.asarray(value, dtype=A.dtype)
        return A

    def diagonal(self, A: Array) -> np.ndarray:
        with self._device:
            return self._cp.asnumpy(A.diagonal())

    # ---- scoring -----------------------------------------------------------
    def sparse_dense_matmul(self, X: SparseMatrix, W: Array) -> Array:
        cp = self._cp
        from cupy_backends.cuda.libs import cusparse

        m, k = X.shape
        if W.ndim != 2 or W.shape[0] != k:
            raise ValueError(f"shapes {X.shape} and {W.shape} do not multiply")
        dtype = np.dtype(W.dtype)
        if dtype not in CUDA_DTYPE:
            raise ValueError(f"sparse_dense_matmul supports float32 and float64, got {dtype}")
        n = W.shape[1]
        with self._device:
            out = cp.empty((m, n), dtype=dtype)
            if X.nnz == 0 or n == 0:
                out.fill(0)
                return out
            if W.flags.c_contiguous:
                order, ld_w = cusparse.CUSPARSE_ORDER_ROW, n
            elif W.flags.f_contiguous:
                order, ld_w = cusparse.CUSPARSE_ORDER_COL, k
            else:
                raise ValueError("W must be C- or F-contiguous (it is never copied)")
            X = self._canonical(X, dtype)
            chunk = planning.spmm_max_rows(n)
            for start in range(0, m, chunk):
                stop = min(m, start + chunk)
                part = X if (start, stop) == (0, m) else X[start:stop]
                spmm(part, W, order, ld_w, out[start:stop])
        return out

    def mask_seen(self, scores: Array, X: SparseMatrix) -> Array:
        if scores.shape != X.shape:
            raise ValueError(f"scores {scores.shape} and X {X.shape} differ in shape")
        with self._device:
            if scores.strides[1] == scores.itemsize and scores.strides[0] % scores.itemsize == 0:
                self._fill_rows(X, scores, -np.inf)
            else:
                rows = self._cp.searchsorted(X.indptr, self._cp.arange(X.nnz), side="right") - 1
                scores[rows, X.indices] = -np.inf
        return scores

    def topk(self, scores: Array, k: int) -> tuple[np.ndarray, np.ndarray]:
        n_rows, n_cols = scores.shape
        k = max(0, min(int(k), n_cols))
        ids = np.empty((n_rows, k), dtype=np.int64)
        values = np.empty((n_rows, k), dtype=scores.dtype)
        if k == 0 or n_rows == 0:
            return ids, values
        if np.dtype(scores.dtype) not in planning.TOPK_BYTES_PER_SCORE:
            raise ValueError(f"topk supports float32 and float64 scores, got {scores.dtype}")
        chunk = planning.topk_chunk_rows(self.free_memory(), n_cols, scores.dtype)
        with self._device:
            best_in_rows(self._cp, scores, k, chunk, ids, values)
        return ids, values

    # ---- helpers -------------------------------------------------------------
    def _canonical(self, X: Any, dtype: np.dtype) -> Any:
        """``X`` as a canonical (sorted, no duplicates) cupyx CSR matrix of ``dtype`` on this device."""
        if not isinstance(X, self._cpx_sparse.csr_matrix):
            X = self._cpx_sparse.csr_matrix(X)
        if X.dtype != dtype:
            X = X.astype(dtype)
        X.sum_duplicates()
        return X

    def _scatter_rows(self, X: Any, out: Array) -> None:
        """``out[u, j] = X[u, j]`` for every stored entry of the CSR ``X``."""
        self._assign_rows(X, out, X.data.astype(out.dtype, copy=False), 0.0)

    def _fill_rows(self, X: Any, out: Array, value: float) -> None:
        """``out[u, j] = value`` for every stored entry of the CSR ``X``."""
        self._assign_rows(X, out, None, value)

    def _assign_rows(self, X: Any, out: Array, data: Array | None, value: float) -> None:
        """The ``csr_rows_assign`` kernel: ``data`` where given, else ``value``."""
        if out.ndim != 2 or X.shape[0] > out.shape[0] or X.shape[1] > out.shape[1]:
            raise ValueError(f"a CSR of shape {X.shape} does not fit a dense operand of shape {out.shape}")
        if X.shape[0] == 0 or X.nnz == 0:
            return
        if out.strides[1] != out.itemsize or out.strides[0] % out.itemsize:
            raise ValueError("the dense operand must have unit column stride")
        dtype = np.dtype(out.dtype)
        kernel = row_kernel("csr_rows_assign", dtype, np.dtype(X.indices.dtype), self.device_id)
        indptr = X.indptr.astype(X.indices.dtype, copy=False)
        source = (out, np.int32(0)) if data is None else (data, np.int32(1))
        ld = np.int64(out.strides[0] // out.itemsize)
        args = (indptr, X.indices, *source, dtype.type(value), out, ld, np.int64(X.shape[0]))
        kernel((X.shape[0],), (ROW_THREADS,), args)
