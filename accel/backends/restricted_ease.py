"""CPU kernels of the sparse EASE fit: a truncated Gram, then one small exact solve per item.

``strongest_cooccurring`` computes each item's column of ``XᵀX`` in one item-wide
integer accumulator per thread (from the users of the item, each user's items;
the items touched are listed as they come, or, for a column with about as many
co-occurrences as the catalogue is wide, found by one scan of the accumulator)
and keeps only its ``keep`` strongest off-diagonal entries (selected by a quickselect, then
only those sorted), ranked by ``G[i, j] / sqrt(G[i, i])`` (for a fixed ``j``, the cosine
order; raw counts would fill every list with the most popular items), so the Gram is never
held whole: memory is ``keep`` entries per item plus one accumulator per thread.

``restricted_solves`` fits item ``j``'s column of EASE's ``B`` on its ``m``
strongest co-occurring items ``S``: the ridge regression of ``X[:, j]`` on
``X[:, S]``, ``(G[S, S] + λI) β = G[S, j]``, which is the column ``-P[S, j] / P[j, j]``
of the inverse of the sub-problem that includes ``j`` (EASE's zero-diagonal
solution restricted to ``S ∪ {j}``). ``G[S, j]`` and ``diag(G)`` are exact;
``G[a, b]`` between two items of ``S`` comes from the truncated Gram, where it
is stored if either item keeps the other. An entry neither keeps is bounded by
each item's ``floor`` (the best score it did not keep, times the other's root
popularity): it is set to 0 and its bound is added to the diagonal of its row,
so ``G[S, S] + λI`` plus this shift dominates the exact matrix (Gershgorin) and
stays positive definite. The solve is LAPACK's Cholesky (``potrf``, called in place
from the kernel on a lower triangle gathered into a per-thread ``m × m`` buffer) in the
weights' precision; a float32 system that rounding leaves not positive definite is
built and solved again in float64. The substitutions accumulate in float64.

The kernels are compiled by numba without bounds checks: the wrappers check the
shapes they are given before calling them.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from typing import Any, NamedTuple

import numba
import numpy as np
import scipy.sparse as sp

from accel.backends.fused_topk import _compile
from accel.backends.numba_lapack import DPOTRF, LAPACK_INT, SPOTRF, potrf_lower
from accel.backends.ranking import kth_smallest, rank
from accel.backends.threads import host_threads, row_chunks, run_parallel

#: Tasks per thread: columns differ widely in cost (popular items have many users).
_TASKS_PER_THREAD = 16
#: A column of the Gram whose co-occurrences number at least ``n_items / _SCAN_RATIO`` is
#: counted without tracking which items it touched, then found by a scan of all items.
_SCAN_RATIO = 4


def _strongest_kernel(
    c_indptr: Any, c_users: Any, r_indptr: Any, r_items: Any, root: Any, work: Any, columns: Any,
    keep: int, acc: Any, touched: Any, score: Any, kept_score: Any, kept_item: Any,
    out_items: Any, out_counts: Any, out_stored: Any, out_floor: Any,
) -> None:  # fmt: skip
    """For each ``columns[c]``: the ``keep`` items of largest ``G[i, j] / root[i]`` (self
    excluded), by that score descending then item ascending; ``out_floor`` the largest score
    of an item not kept (0 when all were kept). ``work[j]`` is column ``j``'s count of
    increments (the row lengths of its users)."""
    n_items = acc.size
    for c in range(columns.size):
        j = columns[c]
        # Few co-occurrences: list the items touched. As many as the catalogue is wide
        # (1/_SCAN_RATIO of it): count without a branch, then scan every item.
        scan = work[j] * _SCAN_RATIO >= n_items
        n_touched = 0
        for p in range(c_indptr[j], c_indptr[j + 1]):
            u = c_users[p]
            if scan:
                for q in range(r_indptr[u], r_indptr[u + 1]):
                    acc[r_items[q]] += 1
            else:
                for q in range(r_indptr[u], r_indptr[u + 1]):
                    i = r_items[q]
                    if acc[i] == 0:
                        touched[n_touched] = i
                        n_touched += 1
                    acc[i] += 1
        acc[j] = 0  # the diagonal is not a neighbour
        total = 0
        for t in range(n_items if scan else n_touched):
            i = t if scan else touched[t]
            if acc[i] > 0:
                kept_item[total] = i
                score[total] = acc[i] / root[i]
                total += 1
        stored = min(keep, total)
        floor = 0.0
        n_kept = total
        for t in range(total):
            kept_score[t] = score[t]
        if total > keep:
            # Select, do not sort: the keep-th largest score, then every candidate at or above it.
            threshold = kth_smallest(kept_score, total, total - keep)
            n_kept, below = 0, 0.0
            for t in range(total):
                s = score[t]
                if s >= threshold:
                    kept_item[n_kept] = kept_item[t]  # n_kept <= t: compacted in place
                    kept_score[n_kept] = s
                    n_kept += 1
                elif s > below:
                    below = s
            floor = threshold if n_kept > keep else below
        # Ranked by score, then item: of the items equal to the threshold, the lowest are kept.
        rank(kept_score, kept_item, n_kept)
        for s in range(stored):
            i = kept_item[s]
            out_items[c, s] = i
            out_counts[c, s] = acc[i]
        out_stored[c] = stored
        out_floor[c] = floor
        if scan:
            acc[:] = 0
        else:
            for t in range(n_touched):
                acc[touched[t]] = 0


def _system_kernel(
    j: int, nbr_items: Any, nbr_counts: Any, nbr_stored: Any, floor: Any, popularity: Any,
    m: int, l2: float, pos: Any, A: Any, vectors: Any, place: Any, value: Any,
) -> int:  # fmt: skip
    """Item ``j``'s system ``G[S, S] + λI`` plus the bounds' shift in the lower triangle of ``A``
    (float32 or float64); returns ``|S|``. The other arguments are :func:`_solve_kernel`'s."""
    root, low, shift = vectors[0], vectors[1], vectors[2]
    size = min(m, nbr_stored[j])
    # root: sqrt(G[a, a]) of each neighbour a; low: its floor; shift: its diagonal
    # (G[a, a] + λ + the bounds), in float64 whatever A's precision.
    for x in range(size):
        pos[nbr_items[j, x]] = x
    for x in range(size):
        for y in range(x):
            A[x, y] = 0.0
    # G[a, b] is exact wherever either item keeps the other, so either copy will do.
    for x in range(size):
        a = nbr_items[j, x]
        found = 0
        for s in range(nbr_stored[a]):  # no branch: every entry noted, those in S counted
            y = pos[nbr_items[a, s]]
            place[found] = y
            value[found] = nbr_counts[a, s]
            found += y < m
        for t in range(found):
            y = place[t]
            A[max(x, y), min(x, y)] = value[t]
    for x in range(size):
        a = nbr_items[j, x]
        pos[a] = m
        root[x] = np.sqrt(popularity[a])
        low[x] = floor[a]
        shift[x] = popularity[a] + l2
    for x in range(size):
        root_x, low_x = root[x], low[x]
        added = 0.0
        for y in range(x):
            if A[x, y] == 0.0:  # kept by neither: bounded through both items' floors
                bound = min(low[y] * root_x, low_x * root[y], root_x * root_x, root[y] * root[y])
                added += bound
                shift[y] += bound
        shift[x] += added
    for x in range(size):
        A[x, x] = shift[x]
    return size


def _substitute_kernel(L: Any, rhs: Any, size: int, beta: Any) -> None:
    """``β`` of ``L·Lᵀ·β = rhs`` in float64 from the Cholesky factor in ``L``'s lower triangle:
    ``L·z = rhs``, then ``Lᵀ·β = z``, both by rows of ``L``."""
    for x in range(size):
        v = np.float64(rhs[x])
        for t in range(x):
            v -= L[x, t] * beta[t]
        beta[x] = v / L[x, x]
    for x in range(size - 1, -1, -1):
        b = beta[x] / L[x, x]
        beta[x] = b
        for t in range(x):
            beta[t] -= L[x, t] * b


def _solve_kernel(
    columns: Any, nbr_items: Any, nbr_counts: Any, nbr_stored: Any, floor: Any, popularity: Any,
    m: int, l2: float, potrf: int, A: Any, dpotrf: int, A64: Any,
    pos: Any, vectors: Any, place: Any, value: Any, ints: Any,
    out_rows: Any, out_values: Any, out_sizes: Any,
) -> None:  # fmt: skip
    """For each ``columns[c]``: the restricted EASE solve on its ``m`` strongest neighbours.

    Each system is built in ``A`` (``m × m``, lower triangle only) and factorised in place by
    LAPACK's ``potrf`` at address ``potrf`` (``spotrf`` for float32 ``A``). Where float32
    rounding leaves it not positive definite, it is built again in float64 ``A64`` and
    factorised by ``dpotrf``. ``pos`` holds each item's place in
    ``S`` (``m`` if none); ``vectors`` (``4 × m``), ``place`` and ``value`` (as long as the
    Gram's lists) and ``ints`` (potrf's order and info) are scratch.
    """
    beta = vectors[3]
    gram = (nbr_items, nbr_counts, nbr_stored, floor, popularity)
    for c in range(columns.size):
        j = columns[c]
        size = _system(j, *gram, m, l2, pos, A, vectors, place, value)
        ints[0] = size
        if potrf_lower(potrf, A, ints) == 0:
            _substitute(A, nbr_counts[j], size, beta)
        else:
            _system(j, *gram, m, l2, pos, A64, vectors, place, value)
            ints[0] = size
            if potrf_lower(dpotrf, A64, ints) != 0:
                raise np.linalg.LinAlgError("a restricted system is not positive definite")
            _substitute(A64, nbr_counts[j], size, beta)
        for x in range(size):
            out_rows[c, x] = nbr_items[j, x]
            out_values[c, x] = beta[x]
        out_sizes[c] = size


def _compile_fast(fn: Callable) -> Callable:
    """As :func:`~accel.backends.fused_topk._compile`, with fastmath: the gathers and substitutions
    vectorise (the order of their sums is left to the compiler)."""
    try:
        return numba.njit(nogil=True, boundscheck=False, fastmath=True, cache=True)(fn)
    except RuntimeError:  # no writable cache location: compile once per process
        return numba.njit(nogil=True, boundscheck=False, fastmath=True)(fn)


_strongest = _compile(_strongest_kernel)
_system = _compile_fast(_system_kernel)
_substitute = _compile_fast(_substitute_kernel)
_solve = _compile_fast(_solve_kernel)


def _balanced_tasks(cost: np.ndarray, n_tasks: int) -> list[slice]:
    """Contiguous column ranges of near-equal total ``cost``."""
    cum = np.cumsum(cost, dtype=np.float64)
    if cum[-1] <= 0:
        return row_chunks(cost.size, n_tasks)
    cuts = np.searchsorted(cum, cum[-1] * np.arange(1, n_tasks) / n_tasks)
    bounds = np.unique(np.concatenate(([0], cuts, [cost.size])))
    return [slice(int(a), int(b)) for a, b in itertools.pairwise(bounds) if b > a]


class TruncatedGram(NamedTuple):
    """Each item's strongest co-occurrences in ``XᵀX``, from :func:`strongest_cooccurring`."""

    items: np.ndarray
    counts: np.ndarray
    stored: np.ndarray
    floor: np.ndarray


def _over_columns(
    cost: np.ndarray,
    n_threads: int | None,
    scratch: Callable[[], Any],
    call: Callable[[np.ndarray, slice, Any], None],
) -> None:
    """``call(columns, part, buffers)`` over column ranges of near-equal ``cost`` on the host's
    threads, each thread with its own ``buffers = scratch()``."""
    threads = n_threads or host_threads()
    local = threading.local()

    def task(part: slice) -> None:
        if not hasattr(local, "buffers"):
            local.buffers = scratch()
        call(np.arange(part.start, part.stop, dtype=np.int64), part, local.buffers)

    run_parallel(task, _balanced_tasks(cost, threads * _TASKS_PER_THREAD), threads)


def strongest_cooccurring(X: sp.csr_matrix, keep: int, n_threads: int | None = None) -> TruncatedGram:
    """Each item's ``keep`` most co-occurring items in binary CSR ``X`` (users × items).

    Returns ``(items, counts, stored, floor)``: ``items[j, :stored[j]]`` (int32) and
    ``counts`` (int32, ``G[items, j]``) by ``G[i, j] / sqrt(G[i, i])`` descending, then item
    ascending; ``floor[j]`` is the largest such score of an item not kept (0 when all were kept).
    """
    n_users, n_items = X.shape
    if X.indptr.size != n_users + 1 or X.indices.size != X.indptr[-1] or keep < 1:
        raise ValueError(f"strongest_cooccurring needs a CSR matrix and keep >= 1, got keep={keep}")
    keep = int(min(keep, max(n_items - 1, 1)))
    r_indptr, r_items = X.indptr.astype(np.int64), X.indices.astype(np.int32)
    C = sp.csr_matrix((np.ones(X.nnz, dtype=np.int8), X.indices, X.indptr), shape=X.shape).tocsc()
    c_indptr, c_users = C.indptr.astype(np.int64), C.indices.astype(np.int32)
    del C
    row_length = np.diff(r_indptr)
    work = np.rint(X.T @ row_length.astype(np.float64)).astype(np.int64).ravel()  # increments per column
    # The column is counted, then each co-occurring item (at most all of them) ranked.
    cost = np.diff(c_indptr) + work + np.minimum(work, n_items).astype(np.float64)
    items = np.zeros((n_items, keep), dtype=np.int32)
    counts = np.zeros((n_items, keep), dtype=np.int32)
    stored = np.zeros(n_items, dtype=np.int64)
    floor = np.zeros(n_items, dtype=np.float64)

    root = np.sqrt(np.diff(c_indptr).astype(np.float64))

    def scratch() -> tuple[np.ndarray, ...]:
        ints = (np.zeros(n_items, dtype=np.int32), np.empty(n_items, dtype=np.int32))
        return *ints, np.empty(n_items), np.empty(n_items), np.empty(n_items, dtype=np.int32)

    def call(columns: np.ndarray, part: slice, buffers: tuple[np.ndarray, ...]) -> None:
        _strongest(
            c_indptr, c_users, r_indptr, r_items, root, work, columns, keep, *buffers,
            items[part], counts[part], stored[part], floor[part],
        )  # fmt: skip

    _over_columns(cost, n_threads, scratch, call)
    return TruncatedGram(items, counts, stored, floor)


def restricted_solves(
    gram: TruncatedGram,
    popularity: np.ndarray,
    m: int,
    l2: float,
    dtype: np.dtype,
    n_threads: int | None = None,
) -> sp.csc_matrix:
    """The sparse EASE weights (items × items CSC, column ``j`` = the weights leading to item ``j``)
    from the truncated Gram of :func:`strongest_cooccurring`, ``m`` weights per column at most.
    """
    items, counts, stored, floor = gram
    n_items, keep = items.shape
    if stored.shape != (n_items,) or floor.shape != (n_items,) or counts.shape != items.shape:
        raise ValueError(f"the truncated Gram's arrays disagree in shape: {items.shape}, {counts.shape}")
    if popularity.shape != (n_items,) or not 1 <= m <= keep:
        raise ValueError(f"restricted_solves needs {n_items} popularities and 1 <= m <= {keep}, got m={m}")
    if stored.size and (stored.min() < 0 or stored.max() > keep):
        raise ValueError(f"stored counts must lie in [0, {keep}]")
    if items.size and (items.min() < 0 or items.max() >= n_items):
        raise ValueError(f"the truncated Gram's items must lie in [0, {n_items})")
    rows = np.zeros((n_items, m), dtype=np.int32)
    values = np.zeros((n_items, m), dtype=dtype)
    sizes = np.zeros(n_items, dtype=np.int64)
    pop = np.asarray(popularity, dtype=np.float64)
    single = np.dtype(dtype) == np.float32  # float32 weights: float32 systems, float64 where they fail

    def scratch() -> tuple[np.ndarray, ...]:
        # The system (float32 and float64, or float64 alone), each item's place in S (m if
        # none), four vectors of the system, an item's entries found in S (place and count)
        # and potrf's order and info.
        A64 = np.empty((m, m))
        systems = (SPOTRF, np.empty((m, m), np.float32)) if single else (DPOTRF, A64)
        found = (np.empty(keep, dtype=np.int32), np.empty(keep, dtype=np.int32))
        pos = np.full(n_items, m, np.int32)
        return *systems, DPOTRF, A64, pos, np.empty((4, m)), *found, np.zeros(2, LAPACK_INT)

    def call(columns: np.ndarray, part: slice, buffers: tuple[np.ndarray, ...]) -> None:
        _solve(
            columns, items, counts, stored, floor, pop, m, float(l2), *buffers,
            rows[part], values[part], sizes[part],
        )  # fmt: skip

    _over_columns(np.minimum(stored, m).astype(np.float64) ** 3 + 1.0, n_threads, scratch, call)
    indptr = np.concatenate(([0], np.cumsum(sizes)))
    kept = np.arange(m)[None, :] < sizes[:, None]
    return sp.csc_matrix((values[kept], rows[kept], indptr), shape=(n_items, n_items))
