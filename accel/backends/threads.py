"""Host threads for the CPU kernels: how many, row chunks, a pool that runs a function over them,
and the BLAS library's own thread count.

SciPy's products, NumPy's partitions and the compiled top-k kernels release the
GIL, so plain Python threads over row chunks use every core. The two kinds of
threads are never stacked: inside the pool the BLAS runs one thread per call.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from functools import cache
from typing import TypeVar

from threadpoolctl import ThreadpoolController

T = TypeVar("T")


def host_threads() -> int:
    """Cores this process may run on."""
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


@cache
def _blas_controller() -> ThreadpoolController:
    return ThreadpoolController()


def blas_threads(n_threads: int) -> AbstractContextManager[object]:
    """Within the block, every BLAS library loaded (NumPy's, SciPy's) runs at most ``n_threads`` threads."""
    return _blas_controller().limit(limits=max(1, int(n_threads)), user_api="blas")


def row_chunks(n_rows: int, n_chunks: int) -> list[slice]:
    """``n_rows`` split into at most ``n_chunks`` contiguous slices of near-equal size."""
    bounds = [n_rows * i // n_chunks for i in range(n_chunks + 1)]
    return [slice(a, b) for a, b in itertools.pairwise(bounds) if b > a]


def run_parallel(fn: Callable[[T], object], items: Iterable[T], n_threads: int) -> None:
    """``fn(item)`` for every item, on ``n_threads`` threads (in this thread when one will do)."""
    items = list(items)
    if n_threads == 1 or len(items) == 1:
        for item in items:
            fn(item)
        return
    with ThreadPoolExecutor(min(n_threads, len(items))) as pool:
        for _ in pool.map(fn, items):
            pass
