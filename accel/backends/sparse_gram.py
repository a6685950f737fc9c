"""``XᵀX`` of a sparse users × items matrix written straight into a dense n × n buffer, row by row.

Row j of the Gram matrix is ``Σ_u X[u, j] · X[u, :]`` over the users u who have item j:
for each of them their CSR row is added into the output row. The output row
(n_items floats) stays in cache while it is built, every row is independent (no
locks, no atomics), and the work is ``Σ_u nnz_u²`` multiply-adds, with no sparse
product, index sort or n × block temporary as SciPy's ``Xᵀ @ X`` would make. Rows go to
the thread pool in chunks of equal work (popular items cost more), compiled by numba
without the GIL.

The sums run over users in ascending order, so each entry is the same whatever the
chunking and thread count.
"""

from __future__ import annotations

import itertools

import numpy as np
import scipy.sparse as sp

from accel.backends.fused_topk import _compile
from accel.backends.threads import run_parallel

#: Chunks of rows per thread, so that a chunk that runs slowly (a busy core) is balanced by the others.
_CHUNKS_PER_THREAD = 8


@_compile
def _gram_rows(lo, hi, t_ptr, t_idx, t_val, x_ptr, x_idx, x_val, out):  # pragma: no cover - compiled
    """``out[j] = Σ_u Xᵀ[j, u] · X[u]`` for rows ``lo ≤ j < hi``; ``Xᵀ`` and ``X`` as CSR arrays."""
    for j in range(lo, hi):
        row = out[j]
        row[:] = 0
        for p in range(t_ptr[j], t_ptr[j + 1]):
            u = t_idx[p]
            weight = t_val[p]
            for q in range(x_ptr[u], x_ptr[u + 1]):
                row[x_idx[q]] += weight * x_val[q]


@_compile
def _binary_gram_rows(lo, hi, t_ptr, t_idx, x_ptr, x_idx, out):  # pragma: no cover - compiled
    """:func:`_gram_rows` for a 0/1 ``X``: counts, without reading the values."""
    for j in range(lo, hi):
        row = out[j]
        row[:] = 0
        for p in range(t_ptr[j], t_ptr[j + 1]):
            u = t_idx[p]
            for q in range(x_ptr[u], x_ptr[u + 1]):
                row[x_idx[q]] += 1


@_compile
def _row_costs(t_ptr, t_idx, x_ptr):  # pragma: no cover - compiled
    """Multiply-adds of each Gram row: ``Σ nnz(X[u])`` over the users u of item j."""
    cost = np.zeros(t_ptr.size, dtype=np.float64)
    for j in range(t_ptr.size - 1):
        for p in range(t_ptr[j], t_ptr[j + 1]):
            u = t_idx[p]
            cost[j + 1] += x_ptr[u + 1] - x_ptr[u]
    return cost


def _balanced_chunks(
    t: tuple[np.ndarray, ...], x: tuple[np.ndarray, ...], parts: int
) -> list[tuple[int, int]]:
    """Row ranges splitting the Gram's rows into ``parts`` chunks of near-equal multiply-adds."""
    cumulative = np.cumsum(_row_costs(t[0], t[1], x[0]))
    bounds = np.unique(np.searchsorted(cumulative, np.linspace(0.0, cumulative[-1], parts + 1)))
    bounds[0], bounds[-1] = 0, cumulative.size - 1
    return [(int(a), int(b)) for a, b in itertools.pairwise(bounds) if b > a]


def gram_into(X: sp.csr_matrix, out: np.ndarray, n_threads: int) -> np.ndarray:
    """Write ``XᵀX`` (both triangles) into the C-contiguous ``out`` (n_items × n_items) and return it.

    ``X`` is a SciPy CSR matrix of ``out``'s dtype. Raises ``ValueError`` when the shapes
    or dtypes do not match (the kernel runs without bounds checks).
    """
    n_items = X.shape[1]
    if out.shape != (n_items, n_items) or not out.flags.c_contiguous or not out.flags.writeable:
        raise ValueError(f"out must be a writable C-contiguous {n_items} × {n_items} array, got {out.shape}")
    if X.format != "csr" or X.dtype != out.dtype:
        raise ValueError(f"X must be a CSR matrix of {out.dtype}, got {X.format} of {X.dtype}")
    X = sp.csr_matrix(X)
    if X.indices.size and (X.indices.min() < 0 or X.indices.max() >= n_items):
        raise ValueError("X has column indices outside its shape")
    XT = X.T.tocsr()
    x = tuple(np.ascontiguousarray(a) for a in (X.indptr, X.indices, X.data))
    t = tuple(np.ascontiguousarray(a) for a in (XT.indptr, XT.indices, XT.data))
    chunks = _balanced_chunks(t, x, max(1, n_threads * _CHUNKS_PER_THREAD))
    if bool(np.all(X.data == 1)):  # interaction logs are binary: counts need no values
        run_parallel(lambda r: _binary_gram_rows(r[0], r[1], t[0], t[1], x[0], x[1], out), chunks, n_threads)
    else:
        run_parallel(lambda r: _gram_rows(r[0], r[1], *t, *x, out), chunks, n_threads)
    return out
