"""CPU backend: NumPy dense arrays, SciPy sparse matrices and LAPACK through SciPy.

SciPy's sparse kernels release the GIL, so the Gram matrix and sparse × dense
products are split over a thread pool (``n_threads``, default one per usable core);
so is the inverse, as tiles of single-threaded BLAS calls (:mod:`accel.backends.tiled_blas`).
"""

from __future__ import annotations

import contextlib
import mmap

import numpy as np
import scipy.sparse as sp
from scipy.linalg import lapack

from accel.backends import _blocked_inverse as blocked
from accel.backends.base import Backend
from accel.backends.host_blas import HostBlasExecutor
from accel.backends.sparse_gram import gram_into
from accel.backends.threads import blas_threads, host_threads, row_chunks, run_parallel
from accel.backends.tiled_blas import tiled
from accel.memory import available_host_memory

#: The compiled Gram (:mod:`accel.backends.sparse_gram`, 2-4× faster than SciPy's product) runs when
#: the n² buffer is at least this big: its first call in a process loads numba's LLVM runtime (about
#: 44 MiB measured), which is then at most 1/8 of the buffer. Below it, SciPy's product a block of
#: rows at a time, whose temporaries stay within the limits below.
_COMPILED_GRAM_MIN_BYTES = 8 * (44 << 20)
#: Most bytes of temporaries one SciPy Gram block may make (sparse product + indices)...
_GRAM_BLOCK_BYTES = 64 << 20
#: ...and at most this fraction of the n² buffer across all threads.
_GRAM_WORKSPACE_FRACTION = 0.1
#: Bytes per stored entry of a sparse block product (value, column index, SciPy scratch).
_BYTES_PER_PRODUCT = 16
#: Most rows symmetrised at a time after the inverse; the temporary is rows × n.
_SYMMETRISE_ROWS = 256
#: Largest n inverted by one LAPACK ``potrf`` + ``potri`` pair, on one thread; larger matrices run
#: the blocked inverse of :mod:`accel.backends._blocked_inverse` (blocks: :func:`_inverse_block`)
#: on SciPy's BLAS without copies (:mod:`accel.backends.host_blas`), each call cut into tiles for the
#: thread pool (:mod:`accel.backends.tiled_blas`). bench/fit_cpu.py measured
#: OpenBLAS's threaded ``potri`` 5-20× slower than the blocked inverse from 1,000 to 10,000 items
#: on a shared 2-core machine (its threads wait on each other when a core is busy). The blocked
#: inverse also returns to Python between blocks (progress, Ctrl-C) and avoids OpenBLAS 0.3.30's
#: threaded ``spotrf``, which segfaults at n = 30,219.
_LAPACK_POTRF_MAX_N = 512
#: Largest block of the blocked inverse (b = 512 was fastest at 10,000 items, 256 at 6,000)...
_CHOLESKY_BLOCK = 512
#: ...and the smallest, used while n / 16 is below it (the diagonal blocks' serial work stays small).
_MIN_BLOCK = 64
#: Buffers from this size up are mapped on 4 KiB pages (:func:`_small_page_empty`).
_SMALL_PAGES_MIN_BYTES = 32 << 20
#: Rows per fused scoring call: only the progress bar's steps depend on it.
_FUSED_BATCH_ROWS = 65_536


def _small_page_empty(shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """An uninitialised array; from :data:`_SMALL_PAGES_MIN_BYTES` up, on 4 KiB pages where Linux allows.

    NumPy asks Linux for transparent huge pages on large arrays, and where the kernel
    compacts memory to find them at the first touch (``defrag`` set to ``madvise``, its
    default), filling a fresh 400 MB buffer took 0.87-1.47 s from one thread and 0.04-0.60 s
    from two, against 0.24-0.31 s and 0.13-0.18 s on 4 KiB pages (bench/first_touch.py, 2-core
    AMD EPYC). The buffer is an anonymous mapping with huge pages refused, unmapped when the
    array is freed.
    """
    nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
    if nbytes < _SMALL_PAGES_MIN_BYTES or not hasattr(mmap, "MADV_NOHUGEPAGE"):
        return np.empty(shape, dtype=dtype)
    mapping = mmap.mmap(-1, nbytes, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    with contextlib.suppress(OSError):  # a kernel without transparent huge pages refuses the advice
        mapping.madvise(mmap.MADV_NOHUGEPAGE)
    return np.frombuffer(mapping, dtype=dtype).reshape(shape)


def _inverse_block(n: int) -> int:
    """Block size of the blocked inverse of an n × n matrix: n / 16 within [_MIN_BLOCK, _CHOLESKY_BLOCK]."""
    return min(_CHOLESKY_BLOCK, max(_MIN_BLOCK, n // 16))


def _compiled_gram(n_items: int, itemsize: int) -> bool:
    """Whether the Gram into an n_items² buffer runs compiled (:data:`_COMPILED_GRAM_MIN_BYTES`)."""
    return n_items**2 * itemsize >= _COMPILED_GRAM_MIN_BYTES


def _symmetrise_rows(n: int) -> int:
    """Rows per symmetrise step: a small fraction of n, so the temporary stays ≪ n²."""
    return max(1, min(_SYMMETRISE_ROWS, n // 32))


class NumpyBackend(Backend):
    """NumPy / SciPy arrays on the host."""

    name = "numpy"
    #: Cache-sized batches: measured fastest at about 512 rows × 10k items (bench notes).
    batch_bytes = 64 << 20

    def __init__(self, n_threads: int | None = None) -> None:
        self.n_threads = n_threads or host_threads()

    def with_threads(self, n_threads: int | None) -> NumpyBackend:
        return NumpyBackend(n_threads)

    # ---- data movement -------------------------------------------------
    def to_device(self, array: np.ndarray) -> np.ndarray:
        return np.asarray(array)

    def to_host(self, array: np.ndarray) -> np.ndarray:
        return np.asarray(array)

    def sparse_to_device(self, X: sp.spmatrix | sp.sparray, dtype: np.dtype) -> sp.csr_matrix:
        X = sp.csr_matrix(X)
        return X if X.dtype == dtype else X.astype(dtype)

    def empty(self, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        return _small_page_empty(shape, dtype)

    # ---- memory ----------------------------------------------------------
    def free_memory(self) -> int:
        return available_host_memory()

    def memory_kind(self) -> str:
        return "host RAM"

    # ---- EASE kernels ----------------------------------------------------
    def gram(self, X: sp.csr_matrix, out: np.ndarray) -> np.ndarray:
        """Into ``out`` row by row (:mod:`accel.backends.sparse_gram`) from :data:`_COMPILED_GRAM_MIN_BYTES`
        on, else by SciPy's product a block of rows at a time; beside X only its transpose."""
        if _compiled_gram(out.shape[0], out.itemsize):
            return gram_into(X, out, self.n_threads)
        n_items = X.shape[1]
        XT = X.T.tocsr()
        rows = self._gram_block_rows(n_items, out.itemsize)

        def block(start: int) -> None:
            stop = min(start + rows, n_items)
            target = out[start:stop]
            target.fill(0)
            (XT[start:stop] @ X).toarray(out=target)

        self._run_parallel(block, range(0, n_items, rows))
        return out

    def _gram_block_rows(self, n_items: int, itemsize: int) -> int:
        """Item rows per SciPy Gram block: a block of b rows stores at most b × n_items products."""
        budget = min(_GRAM_BLOCK_BYTES, _GRAM_WORKSPACE_FRACTION * n_items**2 * itemsize / self.n_threads)
        return int(max(1, min(n_items, budget // (_BYTES_PER_PRODUCT * n_items))))

    def workspace_bytes(self, n_items: int, itemsize: int, nnz: int = 0) -> int:
        gram = 2 * (n_items + 1) * 8  # the compiled Gram: rows' costs and their sum (Xᵀ counts with X)
        if not _compiled_gram(n_items, itemsize):
            gram = self.n_threads * self._gram_block_rows(n_items, itemsize) * n_items * _BYTES_PER_PRODUCT
        symmetrise = 2 * _symmetrise_rows(n_items) * n_items * itemsize
        inverse = 0
        if n_items > _LAPACK_POTRF_MAX_N:
            inverse = blocked.workspace_elements(n_items, _inverse_block(n_items)) * itemsize
        return int(max(gram, symmetrise, inverse))

    def spd_inverse_inplace(self, A: np.ndarray, on_block: blocked.OnBlock | None = None) -> np.ndarray:
        """Above :data:`_LAPACK_POTRF_MAX_N` the blocked inverse (``on_block`` after every block);
        up to it LAPACK's ``potrf`` then ``potri`` on one thread (``on_block`` after each call).
        """
        if not A.flags.c_contiguous:
            raise ValueError("spd_inverse_inplace needs a C-contiguous array")
        n = A.shape[0]
        if n > _LAPACK_POTRF_MAX_N:
            with tiled(HostBlasExecutor(A.dtype), self.n_threads) as executor:
                blocked.spd_inverse_flat(executor, A.reshape(-1), n, _inverse_block(n), True, on_block)
            return A
        with blas_threads(1):
            return self._lapack_inverse(A, on_block or (lambda done, total: None))

    def _lapack_inverse(self, A: np.ndarray, report: blocked.OnBlock) -> np.ndarray:
        n = A.shape[0]
        potrf, potri = lapack.get_lapack_funcs(("potrf", "potri"), (A,))
        # A.T is the Fortran-ordered view of the same (symmetric) buffer, so LAPACK
        # works in place; its "upper" triangle is the lower triangle of A.
        factor, info = potrf(A.T, lower=False, overwrite_a=True, clean=False)
        if info > 0:
            raise np.linalg.LinAlgError(
                f"matrix is not positive definite (leading minor {info} of {n}); increase l2"
            )
        if info < 0:
            raise ValueError(f"potrf rejected argument {-info}")
        report(1, 2)
        inverse, info = potri(factor, lower=False, overwrite_c=True)
        if info != 0:
            raise np.linalg.LinAlgError(f"potri failed with info={info}: the factor is singular")
        if not np.shares_memory(inverse, A):  # pragma: no cover - LAPACK wrapper contract
            raise RuntimeError("LAPACK made a copy of the matrix; in-place inverse failed")
        self._symmetrise_from_lower(A)
        report(2, 2)
        return A

    def _symmetrise_from_lower(self, A: np.ndarray) -> None:
        """Copy the lower triangle onto the upper one, a few rows at a time."""
        n = A.shape[0]
        rows = _symmetrise_rows(n)
        for start in range(0, n, rows):
            stop = min(start + rows, n)
            block = A[start:stop, start:stop]
            upper = np.triu_indices(stop - start, 1)
            block[upper] = block.T[upper]
            A[start:stop, stop:] = A[stop:, start:stop].T

    def ease_weights_inplace(self, P: np.ndarray) -> np.ndarray:
        diag = P.diagonal().copy()

        def scale(rows: slice) -> None:
            P[rows] /= -diag

        self._run_parallel(scale, row_chunks(P.shape[0], 4 * self.n_threads))
        np.fill_diagonal(P, 0.0)
        return P

    def add_to_diagonal(self, A: np.ndarray, value: float | np.ndarray) -> np.ndarray:
        idx = np.arange(A.shape[0])
        A[idx, idx] += value
        return A

    def diagonal(self, A: np.ndarray) -> np.ndarray:
        return A.diagonal().copy()

    # ---- scoring -----------------------------------------------------------
    def sparse_dense_matmul(self, X: sp.csr_matrix, W: np.ndarray) -> np.ndarray:
        out = np.empty((X.shape[0], W.shape[1]), dtype=np.result_type(X.dtype, W.dtype))

        def part(rows: slice) -> None:
            out[rows] = X[rows] @ W

        self._run_parallel(part, row_chunks(X.shape[0], self.n_threads))
        return out

    def mask_seen(self, scores: np.ndarray, X: sp.csr_matrix) -> np.ndarray:
        rows = np.repeat(np.arange(X.shape[0]), np.diff(X.indptr))
        scores[rows, X.indices] = -np.inf
        return scores

    def topk(self, scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        ids = np.empty((scores.shape[0], k), dtype=np.int64)
        values = np.empty((scores.shape[0], k), dtype=scores.dtype)

        def part(rows: slice) -> None:
            ids[rows], values[rows] = topk_rows(scores[rows], k)

        # NumPy's partition and sort release the GIL, so row chunks run in parallel.
        self._run_parallel(part, row_chunks(scores.shape[0], self.n_threads))
        return ids, values

    def dense_topk(
        self,
        X: sp.csr_matrix,
        W: np.ndarray,
        k: int,
        exclude: sp.csr_matrix | None = None,
        include: sp.csr_matrix | np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Scored, filtered and ranked in one pass per row (:mod:`accel.backends.fused_topk`)."""
        from accel.backends.fused_topk import dense_topk

        return dense_topk(X, W, k, exclude=exclude, include=include, n_threads=self.n_threads)

    def dense_batch_rows(self, n_items: int, itemsize: int) -> int:
        # The fused top-k keeps one n_items-wide row per thread, whatever the batch.
        return _FUSED_BATCH_ROWS

    def _host_threads(self) -> int:
        return self.n_threads

    # ---- helpers -------------------------------------------------------------
    def _run_parallel(self, fn, items) -> None:
        run_parallel(fn, items, self.n_threads)


#: Columns are split into this many strided groups to bound each row's k-th score from below.
_TOPK_GROUPS = 64


def topk_rows(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top ``k`` columns of each row, by descending score, ties to the lower column.

    No full-row partition and no negated copy: the columns are split into strided
    groups, and the k-th largest group maximum is a lower bound on the row's k-th
    score (k groups each hold a score at least that high). Only the few columns
    at or above that bound (ties included) are sorted, so results are exact and
    never depend on batching.
    """
    n_rows, n_cols = scores.shape
    groups = max(1, min(_TOPK_GROUPS, n_cols // (4 * k)))
    main = n_cols // groups * groups
    maxima = scores[:, :main].reshape(n_rows, groups, -1).max(axis=1)
    if main < n_cols:
        maxima = np.concatenate([maxima, scores[:, main:]], axis=1)
    bound = np.partition(maxima, maxima.shape[1] - k, axis=1)[:, maxima.shape[1] - k]
    flat = np.flatnonzero((scores >= bound[:, None]).ravel())
    rows, cols = np.divmod(flat, n_cols)
    values = scores.ravel()[flat]
    order = np.lexsort((cols, -values, rows))
    rows, cols, values = rows[order], cols[order], values[order]
    rank = np.arange(rows.size) - np.searchsorted(rows, rows)
    keep = rank < k
    ids = np.empty((n_rows, k), dtype=np.int64)
    top = np.empty((n_rows, k), dtype=scores.dtype)
    ids[rows[keep], rank[keep]] = cols[keep]
    top[rows[keep], rank[keep]] = values[keep]
    return ids, top
