"""Host threads for the CPU kernels: how many, row chunks, a pool that runs a function over them,
and the BLAS library's own thread count.

SciPy's products, NumPy's partitions and the compiled top-k kernels release the
GIL, so plain Python threads over row chunks use every core. The two kinds of
threads are never stacked: inside the pool the BLAS runs one thread per call.
"""

from __future__ import annotations

import itertools
import os
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from functools import cache
from typing import Any, TypeVar

from threadpoolctl import ThreadpoolController

T = TypeVar("T")


def host_threads() -> int:
    """Cores this process may run on."""
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


@cache
def _blas_libraries() -> list[Any]:
    """threadpoolctl's controllers of the BLAS libraries loaded (NumPy's and SciPy's OpenBLAS)."""
    return list(ThreadpoolController().select(user_api="blas").lib_controllers)


_LIMIT_LOCK = threading.Lock()
#: The limits in force (one entry per open :func:`blas_threads`, from any thread) and the
#: libraries' thread counts from before the first of them.
_LIMITS: Counter[int] = Counter()
_ORIGINAL: list[int] = []


def _apply_limit() -> None:
    libraries = _blas_libraries()
    wanted = [min(_LIMITS)] * len(libraries) if _LIMITS else _ORIGINAL
    for library, n in zip(libraries, wanted, strict=True):
        library.set_num_threads(n)


@contextmanager
def blas_threads(n_threads: int) -> Iterator[None]:
    """Within the block, every BLAS library loaded (NumPy's, SciPy's) runs at most ``n_threads`` threads.

    The limit is process-wide, so blocks open at once in several threads (Dask tasks)
    share the smallest of their limits and the original counts are put back when the
    last one closes. (OpenBLAS 0.3.30 ignores a raise of its count from another thread
    than the one that lowered it; the count then stays low, never above a limit.)
    """
    n_threads = max(1, int(n_threads))
    with _LIMIT_LOCK:
        if not _LIMITS:
            _ORIGINAL[:] = [library.num_threads for library in _blas_libraries()]
        _LIMITS[n_threads] += 1
        _apply_limit()
    try:
        yield
    finally:
        with _LIMIT_LOCK:
            _LIMITS[n_threads] -= 1
            if not _LIMITS[n_threads]:
                del _LIMITS[n_threads]
            _apply_limit()


def row_chunks(n_rows: int, n_chunks: int) -> list[slice]:
    """``n_rows`` split into at most ``n_chunks`` contiguous slices of near-equal size."""
    bounds = [n_rows * i // n_chunks for i in range(n_chunks + 1)]
    return [slice(a, b) for a, b in itertools.pairwise(bounds) if b > a]


def run_parallel(fn: Callable[[T], object], items: Iterable[T], n_threads: int) -> None:
    """``fn(item)`` for every item, on ``n_threads`` threads (in this thread when one will do).

    BLAS calls inside ``fn`` get the threads the pool does not use: one each in the
    pool, ``n_threads`` when the items run in this thread.
    """
    items = list(items)
    if n_threads == 1 or len(items) == 1:
        with blas_threads(n_threads):
            for item in items:
                fn(item)
        return
    with blas_threads(1), ThreadPoolExecutor(min(n_threads, len(items))) as pool:
        wait_all([pool.submit(fn, item) for item in items])


def wait_all(futures: list[Future[Any]]) -> None:
    """Wait for every future, in order; on the first error (or Ctrl-C) the ones not started are cancelled.

    The error is re-raised once the call returns, so a pool closing after it waits for the
    few tasks already running, not for all that were queued.
    """
    try:
        for future in futures:
            future.result()
    finally:
        for future in futures:
            future.cancel()
