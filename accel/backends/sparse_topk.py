"""Top-k of a sparse product ``A · W`` without a dense row per user (host, SciPy CSR).

similaripy's ``dot_product`` accumulates each row of the product in C++ threads,
skips the columns a row must not get (``filter_cols``) or keeps only those it may
get (``target_cols``) and returns each row's top scores. Its heap keeps whichever
of two equal scores came first, so one extra score per row is fetched: where it
ties with the k-th, the row is recomputed exactly here (SciPy product, stable
sort), so ties always go to the lower column and results never depend on batching.

Contract: only positive scores are returned; a row with fewer than ``k`` of them
is padded with id ``-1`` and score ``-inf``. similaripy accumulates in float32, so
a float64 model served this way gets float32-precision scores (relative error
about 1e-7), and rows whose order depends on smaller differences may differ from
an exact float64 ranking.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import similaripy


def padded_topk(
    rows: np.ndarray, cols: np.ndarray, vals: np.ndarray, n_rows: int, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """(n_rows, k) ids and scores from (row, col, value) triples: positive values only,
    by descending value then ascending column; missing slots are ``-1`` / ``-inf``."""
    positive = vals > 0
    rows, cols, vals = rows[positive], cols[positive], vals[positive]
    order = np.lexsort((cols, -vals, rows))
    rows, cols, vals = rows[order], cols[order], vals[order]
    rank = np.arange(rows.size) - np.searchsorted(rows, rows, side="left")
    keep = rank < k
    ids = np.full((n_rows, k), -1, dtype=np.int64)
    scores = np.full((n_rows, k), -np.inf, dtype=vals.dtype if vals.size else np.float32)
    ids[rows[keep], rank[keep]] = cols[keep]
    scores[rows[keep], rank[keep]] = vals[keep]
    return ids, scores


_NO_ENTRY = np.iinfo(np.int64).max


def rows_topk(product: sp.csr_array, k: int) -> tuple[np.ndarray, np.ndarray]:
    """:func:`padded_topk` of a CSR with few float32 entries per row, by one int64 sort per row.

    A positive float32's bits order like its value, so ``(~bits << 32) | column``
    sorts by descending score, then ascending column.
    """
    n_rows = product.shape[0]
    indptr = np.asarray(product.indptr, dtype=np.int64)
    vals = np.asarray(product.data, dtype=np.float32)
    counts = np.diff(indptr)
    width = max(k, int(counts.max(initial=0)))
    rows = np.repeat(np.arange(n_rows, dtype=np.int64), counts)
    slots = rows * width + (np.arange(vals.size) - indptr[rows])
    positive = vals > 0
    keys = np.full(n_rows * width, _NO_ENTRY, dtype=np.int64)
    bits = vals[positive].view(np.uint32).astype(np.int64)
    keys[slots[positive]] = ((0xFFFFFFFF - bits) << 32) | np.asarray(product.indices, dtype=np.int64)[
        positive
    ]
    keys = keys.reshape(n_rows, width)
    keys.sort(axis=1)
    keys = keys[:, :k]
    missing = keys == _NO_ENTRY
    ids = np.where(missing, -1, keys & 0xFFFFFFFF)
    scores = (0xFFFFFFFF - (keys >> 32)).astype(np.uint32).view(np.float32)
    scores[missing] = -np.inf
    return ids, scores


def exact_topk(
    A: sp.csr_matrix,
    W: sp.csr_matrix,
    k: int,
    exclude: sp.csr_matrix | None = None,
    include: sp.csr_matrix | np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The reference: SciPy's sparse product, filtered, then :func:`padded_topk`.

    Filtered entries become zeros (only positive scores are ever returned).
    """
    P = sp.csr_matrix(A) @ sp.csr_matrix(W)
    if exclude is not None:
        P = P - P.multiply(sp.csr_matrix(exclude).astype(bool))
    if isinstance(include, np.ndarray):
        mask = np.zeros(P.shape[1], dtype=P.dtype)
        mask[include] = 1
        P = P.multiply(mask[None, :])
    elif include is not None:
        P = P.multiply(sp.csr_matrix(include).astype(bool))
    P = sp.coo_matrix(P)
    return padded_topk(P.row, P.col, P.data, A.shape[0], k)


def sparse_topk(
    A: sp.csr_matrix,
    W: sp.csr_matrix,
    k: int,
    exclude: sp.csr_matrix | None = None,
    include: sp.csr_matrix | np.ndarray | None = None,
    num_threads: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Per row of ``A · W``, the ``k`` best positive scores (see the module notes).

    ``exclude`` (rows × columns CSR) names columns a row never gets (seen or
    forbidden items); ``include`` keeps only the columns it names, per row
    (CSR) or for every row (index array).
    """
    n_rows, n_cols = A.shape[0], W.shape[1]
    fetch = min(k + 1, n_cols)
    nothing_allowed = isinstance(include, np.ndarray) and include.size == 0
    if n_rows == 0 or A.nnz == 0 or W.nnz == 0 or nothing_allowed:
        return padded_topk(*(np.empty(0, dtype=t) for t in (np.int64, np.int64, np.float32)), n_rows, k)
    product = similaripy.dot_product(
        _writable(A),
        _writable(W),
        k=fetch,
        filter_cols=None if exclude is None or exclude.nnz == 0 else _sorted_csr(exclude),
        target_cols=include if include is None or isinstance(include, np.ndarray) else _sorted_csr(include),
        verbose=False,
        format_output="csr",
        num_threads=num_threads,
    )
    ids, scores = rows_topk(product, fetch)
    if fetch > k:
        tied = np.nonzero(np.isfinite(scores[:, k]) & (scores[:, k] == scores[:, k - 1]))[0]
        if tied.size:
            sub = exact_topk(
                A[tied],
                W,
                k,
                None if exclude is None else sp.csr_matrix(exclude)[tied],
                include
                if include is None or isinstance(include, np.ndarray)
                else sp.csr_matrix(include)[tied],
            )
            ids[tied, :k], scores[tied, :k] = sub
        ids, scores = ids[:, :k], scores[:, :k]
    return np.ascontiguousarray(ids), np.ascontiguousarray(scores)


def _writable(M: sp.spmatrix) -> sp.csr_array:
    """``M`` as a CSR array similaripy may tidy in place (a copy when its arrays are read-only)."""
    M = sp.csr_array(M)
    if all(a.flags.writeable for a in (M.data, M.indices, M.indptr)):
        return M
    return M.copy()


def _sorted_csr(M: sp.spmatrix) -> sp.csr_array:
    """CSR with sorted column indices (similaripy binary-searches each row)."""
    M = sp.csr_array(M)
    if not M.has_sorted_indices:
        M = M.sorted_indices()
    return M
