"""Score, filter and rank in one pass on the CPU: top-k of ``X · W`` without a batch × n_items matrix.

Each thread keeps one n_items-wide accumulator. For a user it adds up the rows of
``W`` their items name (whole rows of a dense ``W``; stored entries of a sparse
one), blanks the columns the user must not get and offers the rest, in column
order, to a sorted top-k of ``k`` slots. The accumulator stays in the core's
cache, so nothing but the ``k`` winners ever goes back to memory: no dense score
batch, no masking pass, no partition or sort of a whole row. The kernels are
compiled by numba, run without the GIL, and row chunks go to a thread pool.

The sums are taken in the order SciPy's products take them, so scores equal
``X @ W`` bit for bit in ``W``'s precision (float32 or float64). Ties go to the
lower column. A dense ``W`` may return any score above ``-inf``; a sparse ``W``
returns positive scores only (its unstored entries mean "no evidence", not 0 as
a score). A row with fewer than ``k`` candidates is padded with id ``-1`` and
score ``-inf``.

Filters: ``exclude`` (rows × columns CSR) names columns a row never gets (seen or
forbidden items); ``include`` keeps only the columns it names, for every row
(sorted index array) or per row (CSR).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numba
import numpy as np
import scipy.sparse as sp

from accel.backends.threads import host_threads, row_chunks, run_parallel

#: A sparse product whose rows touch fewer than this share of the columns on average
#: tracks the columns it touched instead of clearing and scanning the whole accumulator.
_TOUCHED_SHARE = 1 / 16

#: Rows per task given to the thread pool.
_CHUNK_ROWS = 2048

#: ``include`` modes of the kernels.
_ALL, _GLOBAL, _PER_ROW = 0, 1, 2


def _compile(fn: Callable) -> Callable:
    """numba's no-Python, no-GIL compilation, cached on disk where a cache folder is writable."""
    try:
        return numba.njit(nogil=True, boundscheck=False, cache=True)(fn)
    except RuntimeError:  # no writable cache location: compile once per process
        return numba.njit(nogil=True, boundscheck=False)(fn)


@numba.njit(inline="always")
def _ahead(score_a: Any, id_a: Any, score_b: Any, id_b: Any) -> bool:
    """Whether ``a`` ranks before ``b``: the higher score, then the lower id."""
    return score_a > score_b or (score_a == score_b and id_a < id_b)


@numba.njit(inline="always")
def _offer(vals: Any, ids: Any, v: Any, j: Any, k: int) -> None:
    """Insert ``(v, j)`` into the top-k ``vals``/``ids`` (descending score, then ascending column).

    The caller has checked that it beats the last slot.
    """
    p = k - 1
    while p > 0 and _ahead(v, j, vals[p - 1], ids[p - 1]):
        vals[p] = vals[p - 1]
        ids[p] = ids[p - 1]
        p -= 1
    vals[p] = v
    ids[p] = j


@numba.njit(inline="always")
def _start_row(acc, r, floor, e_ptr, e_idx, vals, ids) -> None:
    """Blank row ``r``'s excluded columns to ``floor`` (never offered) and empty its top-k."""
    for p in range(e_ptr[r], e_ptr[r + 1]):
        acc[e_idx[p]] = floor
    vals[:] = -np.inf
    ids[:] = -1


@numba.njit(inline="always")
def _rank_scanning(acc, r, floor, e_ptr, e_idx, mode, i_ptr, i_idx, k, vals, ids) -> None:
    """Top-k of row ``r``'s accumulator, visiting its candidate columns in ascending order."""
    _start_row(acc, r, floor, e_ptr, e_idx, vals, ids)
    kth = floor
    # The offer step is written out in both loops: a helper returning the new bound made the
    # scan about 4× slower under numba.
    if mode == _ALL:
        for j in range(acc.size):
            v = acc[j]
            if v > kth:
                _offer(vals, ids, v, j, k)
                if vals[k - 1] > kth:
                    kth = vals[k - 1]
    else:
        lo, hi = (0, i_idx.size) if mode == _GLOBAL else (i_ptr[r], i_ptr[r + 1])
        for p in range(lo, hi):
            j = i_idx[p]
            v = acc[j]
            if v > kth:
                _offer(vals, ids, v, j, k)
                if vals[k - 1] > kth:
                    kth = vals[k - 1]


def _dense_rows(lo, hi, x_ptr, x_idx, x_val, W, e_ptr, e_idx, mode, i_ptr, i_idx, k, ids, vals, acc):
    """Rows ``lo:hi`` of ``X · W`` for a dense ``W``, up to four rows of ``W`` per pass over the
    accumulator (each pass reads and writes the accumulator once, whatever it adds)."""
    n = acc.size
    for r in range(lo, hi):
        acc[:] = 0
        p, end = x_ptr[r], x_ptr[r + 1]
        while p + 3 < end:
            a, row_a = x_val[p], W[x_idx[p]]
            b, row_b = x_val[p + 1], W[x_idx[p + 1]]
            c, row_c = x_val[p + 2], W[x_idx[p + 2]]
            d, row_d = x_val[p + 3], W[x_idx[p + 3]]
            for j in range(n):
                acc[j] = (((acc[j] + a * row_a[j]) + b * row_b[j]) + c * row_c[j]) + d * row_d[j]
            p += 4
        while p < end:
            a, row_a = x_val[p], W[x_idx[p]]
            for j in range(n):
                acc[j] += a * row_a[j]
            p += 1
        _rank_scanning(acc, r, -np.inf, e_ptr, e_idx, mode, i_ptr, i_idx, k, vals[r], ids[r])


def _sparse_rows(
    lo, hi, a_ptr, a_idx, a_val, w_ptr, w_idx, w_val, e_ptr, e_idx, mode, i_ptr, i_idx, k, ids, vals, acc
):
    """Rows ``lo:hi`` of ``A · W`` for a CSR ``W``: scatter into a cleared accumulator, scan it whole."""
    for r in range(lo, hi):
        acc[:] = 0
        for p in range(a_ptr[r], a_ptr[r + 1]):
            a, i = a_val[p], a_idx[p]
            for q in range(w_ptr[i], w_ptr[i + 1]):
                acc[np.uint32(w_idx[q])] += a * w_val[q]  # unsigned: no negative-index wraparound
        _rank_scanning(acc, r, 0.0, e_ptr, e_idx, mode, i_ptr, i_idx, k, vals[r], ids[r])


def _sparse_rows_touched(
    lo,
    hi,
    a_ptr,
    a_idx,
    a_val,
    w_ptr,
    w_idx,
    w_val,
    e_ptr,
    e_idx,
    mode,
    i_ptr,
    i_idx,
    k,
    ids,
    vals,
    acc,
    stamp,
    touched,
):
    """As :func:`_sparse_rows`, for rows that touch few columns: only the touched ones are visited.

    ``stamp[c]`` holds the last row (plus one) that touched column ``c``, so the
    accumulator is never cleared; touched columns come in any order, so the
    top-k compares (score, column) pairs in full.
    """
    for r in range(lo, hi):
        tag = r + 1
        n_touched = 0
        for p in range(a_ptr[r], a_ptr[r + 1]):
            a, i = a_val[p], a_idx[p]
            for q in range(w_ptr[i], w_ptr[i + 1]):
                c = np.uint32(w_idx[q])
                if stamp[c] != tag:
                    stamp[c] = tag
                    acc[c] = a * w_val[q]
                    touched[n_touched] = c
                    n_touched += 1
                else:
                    acc[c] += a * w_val[q]
        row_vals, row_ids = vals[r], ids[r]
        _start_row(acc, r, 0.0, e_ptr, e_idx, row_vals, row_ids)
        if mode == _ALL:
            lo_c, hi_c = 0, n_touched
        else:
            lo_c, hi_c = (0, i_idx.size) if mode == _GLOBAL else (i_ptr[r], i_ptr[r + 1])
        for t in range(lo_c, hi_c):
            c = touched[t] if mode == _ALL else i_idx[t]
            if stamp[c] != tag:
                continue
            v = acc[c]
            last_v, last_c = row_vals[k - 1], row_ids[k - 1]
            if v > 0 and (v > last_v or (v == last_v and c < last_c)):
                _offer(row_vals, row_ids, v, c, k)


_dense_rows = _compile(_dense_rows)
_sparse_rows = _compile(_sparse_rows)
_sparse_rows_touched = _compile(_sparse_rows_touched)


def dense_topk(
    X: sp.csr_matrix,
    W: np.ndarray,
    k: int,
    exclude: sp.csr_matrix | None = None,
    include: sp.csr_matrix | np.ndarray | None = None,
    n_threads: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Per row of ``X · W`` (dense ``W``), the ``k`` best scores above ``-inf`` (see the module notes)."""
    W = np.ascontiguousarray(np.asarray(W))
    X = _csr(X)
    if W.ndim != 2 or X.shape[1] != W.shape[0]:
        raise ValueError(f"X of shape {X.shape} cannot multiply W of shape {W.shape}")
    n_rows = X.shape[0]
    _check_filters(n_rows, W.shape[1], k, exclude, include)
    ids, vals = _padded(n_rows, k, W.dtype)
    if n_rows == 0 or _nothing_allowed(include):
        return ids, vals
    filters = _filters(n_rows, exclude, include)
    n, dtype = W.shape[1], W.dtype

    def run(lo: int, hi: int) -> None:
        acc = np.empty(n, dtype=dtype)
        _dense_rows(lo, hi, X.indptr, X.indices, X.data, W, *filters, k, ids, vals, acc)

    _in_chunks(run, n_rows, n_threads)
    return ids, vals


def sparse_topk(
    A: sp.csr_matrix,
    W: sp.csr_matrix,
    k: int,
    exclude: sp.csr_matrix | None = None,
    include: sp.csr_matrix | np.ndarray | None = None,
    n_threads: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Per row of ``A · W`` (both CSR), the ``k`` best positive scores (see the module notes)."""
    A, W = _csr(A), _csr(W)
    if A.shape[1] != W.shape[0]:
        raise ValueError(f"A of shape {A.shape} cannot multiply W of shape {W.shape}")
    n_rows, n = A.shape[0], W.shape[1]
    _check_filters(n_rows, n, k, exclude, include)
    dtype = np.result_type(A.dtype, W.dtype)
    ids, vals = _padded(n_rows, k, dtype)
    if n_rows == 0 or A.nnz == 0 or W.nnz == 0 or _nothing_allowed(include):
        return ids, vals
    filters = _filters(n_rows, exclude, include)
    per_row = A.nnz / n_rows * W.nnz / max(W.shape[0], 1)
    touched = per_row < _TOUCHED_SHARE * n

    factors = (A.indptr, A.indices, A.data, W.indptr, W.indices, W.data)

    def run(lo: int, hi: int) -> None:
        acc = np.empty(n, dtype=dtype)
        if touched:
            stamp, seen = np.zeros(n, dtype=np.int64), np.empty(n, dtype=np.int64)
            _sparse_rows_touched(lo, hi, *factors, *filters, k, ids, vals, acc, stamp, seen)
        else:
            _sparse_rows(lo, hi, *factors, *filters, k, ids, vals, acc)

    _in_chunks(run, n_rows, n_threads)
    return ids, vals


def _csr(M: Any) -> sp.csr_matrix | sp.csr_array:
    """``M`` as a SciPy CSR whose arrays numba can take (plain ndarrays, not memmaps).

    A CSR of plain arrays is taken as it is: building a new one costs more than a
    one-user top-k.
    """
    if not (sp.issparse(M) and M.format == "csr"):
        M = sp.csr_matrix(M)
    if all(type(a) is np.ndarray for a in (M.indptr, M.indices, M.data)):
        return M
    M = sp.csr_matrix(M)
    M.indptr, M.indices, M.data = (np.asarray(a) for a in (M.indptr, M.indices, M.data))
    return M


def _check_filters(n_rows: int, n: int, k: int, exclude: Any, include: Any) -> None:
    """Raise ``ValueError`` unless ``k`` and the filters fit ``n_rows`` rows of ``n`` columns
    (the kernels run without bounds checks)."""
    if k < 1:
        raise ValueError(f"k must be positive, got {k}")
    for name, M in (("exclude", exclude), ("include", include)):
        if M is None:
            continue
        if isinstance(M, np.ndarray):
            if M.ndim != 1 or (M.size and (M.min() < 0 or M.max() >= n)):
                raise ValueError(f"{name} must be column indices below {n}")
        elif tuple(M.shape) != (n_rows, n):
            raise ValueError(f"{name} has shape {tuple(M.shape)}, expected {(n_rows, n)}")


def _padded(n_rows: int, k: int, dtype: np.dtype) -> tuple[np.ndarray, np.ndarray]:
    return np.full((n_rows, k), -1, dtype=np.int64), np.full((n_rows, k), -np.inf, dtype=dtype)


def _nothing_allowed(include: Any) -> bool:
    return isinstance(include, np.ndarray) and include.size == 0


def _filters(
    n_rows: int, exclude: Any, include: Any
) -> tuple[np.ndarray, np.ndarray, int, np.ndarray, np.ndarray]:
    """Kernel arguments for ``exclude`` and ``include``: (e_ptr, e_idx, mode, i_ptr, i_idx)."""
    if exclude is None:
        e_ptr, e_idx = np.zeros(n_rows + 1, dtype=np.int64), np.empty(0, dtype=np.int64)
    else:
        exclude = _csr(exclude)
        e_ptr, e_idx = (np.asarray(a, dtype=np.int64) for a in (exclude.indptr, exclude.indices))
    no_rows = np.zeros(1, dtype=np.int64)
    if include is None:
        return e_ptr, e_idx, _ALL, no_rows, np.empty(0, dtype=np.int64)
    if isinstance(include, np.ndarray):
        return e_ptr, e_idx, _GLOBAL, no_rows, np.unique(include.astype(np.int64))
    include = _csr(include)
    if not include.has_sorted_indices:
        include = include.sorted_indices()
    i_ptr, i_idx = (np.asarray(a, dtype=np.int64) for a in (include.indptr, include.indices))
    return e_ptr, e_idx, _PER_ROW, i_ptr, i_idx


def _in_chunks(run: Callable[[int, int], None], n_rows: int, n_threads: int) -> None:
    """``run(lo, hi)`` over row chunks of at most :data:`_CHUNK_ROWS`, on ``n_threads`` threads
    (0: one per core)."""
    n_threads = n_threads or host_threads()
    chunks = row_chunks(n_rows, max(n_threads, -(-n_rows // _CHUNK_ROWS)))
    run_parallel(lambda rows: run(rows.start, rows.stop), chunks, n_threads)
