"""Top-k without a full sort: scores become order-preserving integer keys, then a selection.

A key is ascending where the score is descending (NaN last, -0.0 equal to 0.0), so each
row's k smallest keys are its k best scores. The selection functions are written against
the NumPy API that CuPy mirrors (``xp`` is either), so the CPU tests run them on NumPy keys.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

#: Score → key with ascending keys for descending scores: NaN last, -0.0 equal to 0.0.
_ORDER_BITS = {
    "float32": """
        unsigned int bits = (score == 0.0f) ? 0u : __float_as_uint(score);
        unsigned int ascending = (bits & 0x80000000u) ? ~bits : (bits | 0x80000000u);
        if (isnan(score)) ascending = 0u;
        """,
    "float64": """
        unsigned long long bits = (score == 0.0) ? 0ull : (unsigned long long)__double_as_longlong(score);
        unsigned long long ascending = (bits & 0x8000000000000000ull) ? ~bits
                                                                      : (bits | 0x8000000000000000ull);
        if (isnan(score)) ascending = 0ull;
        """,
}


@functools.cache
def packed_topk_key_kernel(cupy: Any) -> Any:
    """float32 score and its column → one unique uint64 key (score descending, then column ascending)."""
    return cupy.ElementwiseKernel(
        "float32 score, int64 n_cols",
        "uint64 key",
        _ORDER_BITS["float32"]
        + "key = ((unsigned long long)(~ascending) << 32) | (unsigned long long)(i % n_cols);",
        "accel_topk_keys",
    )


@functools.cache
def order_key_kernel64(cupy: Any) -> Any:
    """float64 score → uint64 key, ascending for descending scores (ties share a key)."""
    return cupy.ElementwiseKernel(
        "float64 score", "uint64 key", _ORDER_BITS["float64"] + "key = ~ascending;", "accel_order_keys64"
    )


def smallest_packed(xp: Any, keys: Any, k: int) -> Any:
    """Column ids of each row's ``k`` smallest packed keys (order bits << 32 | column), in order.

    Packed keys are unique, so a partition then a sort of the first k is exact; ties in
    score come out by ascending column. ``keys`` is partitioned in place.
    """
    keys.partition(k - 1, axis=1)
    head = xp.sort(keys[:, :k], axis=1)
    return (head & np.uint64(0xFFFFFFFF)).astype(xp.int64)


def smallest_keys(xp: Any, keys: Any, k: int) -> Any:
    """Column ids of each row's ``k`` smallest (possibly tied) keys, in order, ties by ascending column.

    Each row's k-th key is found by a partition; every key below it is taken, and of those
    equal to it the lowest columns until k. Only those k per row are then sorted, stably.
    """
    kth = xp.partition(keys, k - 1, axis=1)[:, k - 1 : k]
    better = keys < kth
    tied = keys == kth
    room = k - better.sum(axis=1, dtype=xp.int32)
    take = better | (tied & (xp.cumsum(tied, axis=1, dtype=xp.int32) <= room[:, None]))
    del better, tied
    columns = xp.nonzero(take)[1].reshape(keys.shape[0], k)
    # CuPy's argsort is always stable (and takes no ``kind``); NumPy's must be asked.
    stable = {"kind": "stable"} if xp is np else {}
    order = xp.argsort(xp.take_along_axis(keys, columns, axis=1), axis=1, **stable)
    return xp.take_along_axis(columns, order, axis=1).astype(xp.int64, copy=False)


def best_in_rows(cp: Any, scores: Any, k: int, chunk: int, ids: np.ndarray, values: np.ndarray) -> None:
    """Each row's ``k`` best scores and their columns into host ``ids`` / ``values``, ``chunk`` rows
    of device ``scores`` at a time (ties to the lower column)."""
    n_cols = scores.shape[1]
    for start in range(0, scores.shape[0], chunk):
        part = scores[start : start + chunk]
        if part.dtype == np.float32:
            part_ids = smallest_packed(cp, packed_topk_key_kernel(cp)(part, np.int64(n_cols)), k)
        else:
            part_ids = smallest_keys(cp, order_key_kernel64(cp)(part), k)
        ids[start : start + chunk] = cp.asnumpy(part_ids)
        values[start : start + chunk] = cp.asnumpy(cp.take_along_axis(part, part_ids, axis=1))
