"""In-place selection and ranking of scores with their items, for the truncated Gram's kernel.

``kth_smallest`` is a quickselect; ``rank`` sorts by score descending, then item ascending
(the tie rule of :func:`accel.backends.fused_topk._ahead`, shared with the serving top-k).
Both are compiled by numba without bounds checks: the caller passes ``n`` within the arrays.
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np

from accel.backends.fused_topk import _ahead


@numba.njit(boundscheck=False)
def kth_smallest(buf: Any, n: int, k: int) -> float:
    """The ``k``-th smallest (from 0) of ``buf[:n]``, reordering ``buf`` (quickselect)."""
    lo, hi = 0, n - 1
    while hi > lo:
        a, b, c = buf[lo], buf[(lo + hi) // 2], buf[hi]
        pivot = max(min(a, b), min(max(a, b), c))  # the median of three
        i, j = lo, hi
        while i <= j:
            while buf[i] < pivot:
                i += 1
            while buf[j] > pivot:
                j -= 1
            if i <= j:
                buf[i], buf[j] = buf[j], buf[i]
                i += 1
                j -= 1
        if k <= j:
            hi = j
        elif k >= i:
            lo = i
        else:  # between the two parts: equal to the pivot
            break
    return buf[k]


@numba.njit(inline="always")
def _swap(score: Any, item: Any, a: int, b: int) -> None:
    score[a], score[b] = score[b], score[a]
    item[a], item[b] = item[b], item[a]


@numba.njit(boundscheck=False)
def rank(score: Any, item: Any, n: int) -> None:
    """Sort ``score[:n]`` descending, ties by ``item`` ascending, moving ``item`` along (quicksort,
    insertion sort below 16; the larger part is deferred, so the stack stays under 2·log2(n))."""
    stack = np.empty(128, dtype=np.int64)
    top, lo, hi = 0, 0, n - 1
    while True:
        if hi - lo < 16:
            for a in range(lo + 1, hi + 1):
                s, it, b = score[a], item[a], a - 1
                while b >= lo and _ahead(s, it, score[b], item[b]):
                    score[b + 1], item[b + 1] = score[b], item[b]
                    b -= 1
                score[b + 1], item[b + 1] = s, it
            if top == 0:
                return
            top -= 2
            lo, hi = stack[top], stack[top + 1]
            continue
        mid = (lo + hi) // 2  # the median of three as the pivot
        if _ahead(score[mid], item[mid], score[lo], item[lo]):
            _swap(score, item, mid, lo)
        if _ahead(score[hi], item[hi], score[lo], item[lo]):
            _swap(score, item, hi, lo)
        if _ahead(score[hi], item[hi], score[mid], item[mid]):
            _swap(score, item, hi, mid)
        pivot_score, pivot_item = score[mid], item[mid]
        i, j = lo, hi
        while i <= j:
            while _ahead(score[i], item[i], pivot_score, pivot_item):
                i += 1
            while _ahead(pivot_score, pivot_item, score[j], item[j]):
                j -= 1
            if i <= j:
                _swap(score, item, i, j)
                i += 1
                j -= 1
        if j - lo > hi - i:
            stack[top], stack[top + 1] = lo, j
            lo = i
        else:
            stack[top], stack[top + 1] = i, hi
            hi = j
        top += 2
