"""The blocked inverse's BLAS calls cut into tiles that a pool of threads takes as each is free.

A threaded BLAS splits each call evenly over its threads and waits for the slowest,
so one busy core halves the whole call (OpenBLAS's threaded fit slowed 1.8× beside
a CPU-bound process, as much as a single-threaded one). Here every GEMM, SYRK, TRSM
and TRMM of :mod:`accel.backends._blocked_inverse` is cut into independent tiles of
its output, each a single-threaded BLAS call, handed out largest first to
``n_threads`` workers: a worker on a busy core takes fewer tiles and the others
take the rest. SYRK becomes GEMM tiles off its diagonal and small SYRKs on it.
Each output element is computed by exactly one tile, over the whole inner
dimension, as in the undivided call. Every operand of a call is checked to lie inside
its buffer before any tile runs, so a refused call writes nothing.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from functools import partial
from typing import Any

from accel.backends._blocked_inverse import BlasExecutor, Ref, Side, Trans, Uplo
from accel.backends.threads import blas_threads, wait_all

#: Longest side of an output tile. On a 2-core AMD EPYC (bench/fit_cpu.py, three runs) the inverse on
#: 1536-wide tiles took 1.02-1.16× the time of whole threaded-BLAS calls with both cores free and
#: 0.71-0.96× beside a CPU-bound process. Narrower tiles pay more per-tile packing and Python overhead.
MAX_TILE = 1536
#: Smaller calls are cut finer, down to this side, so that each has about
#: :data:`TILES_PER_THREAD` tiles per worker: the last tile of a call (the others wait for it) stays short.
MIN_TILE = 256
TILES_PER_THREAD = 4

_Call = tuple[float, Callable[[], None]]


def _cuts(size: int, tile: int) -> list[tuple[int, int]]:
    """``[0, size)`` as (start, length) pieces of near-equal length, none longer than ``tile``."""
    parts = max(1, math.ceil(size / tile))
    bounds = [size * i // parts for i in range(parts + 1)]
    return [(a, b - a) for a, b in itertools.pairwise(bounds) if b > a]


def _at(ref: Ref, row: int, col: int) -> Ref:
    """The operand starting at (``row``, ``col``) of the column-major operand ``ref``."""
    return Ref(ref.buf, ref.off + row + col * ref.ld, ref.ld)


def _stored(trans: Trans, rows: int, cols: int) -> tuple[int, int]:
    """The stored shape of an operand used as ``op(X)`` of ``rows × cols``."""
    return (rows, cols) if trans == "N" else (cols, rows)


def _op_at(ref: Ref, trans: Trans, row: int, col: int) -> Ref:
    """The operand starting at (``row``, ``col``) of ``op(ref)``."""
    return _at(ref, *_stored(trans, row, col))


class TiledExecutor:
    """A :class:`~accel.backends._blocked_inverse.BlasExecutor` running ``base``'s calls as tiles on ``pool``.

    ``pool`` has ``n_threads`` workers and the BLAS runs one thread per call (see :func:`tiled`).
    ``potrf`` (one diagonal block) and the array helpers go to ``base`` unchanged.
    """

    def __init__(
        self,
        base: BlasExecutor,
        pool: ThreadPoolExecutor,
        n_threads: int,
        min_tile: int = MIN_TILE,
        max_tile: int = MAX_TILE,
    ) -> None:
        if not 1 <= min_tile <= max_tile:
            raise ValueError(f"tile sides must satisfy 1 <= min_tile <= max_tile, got {min_tile}, {max_tile}")
        self.base, self.pool, self.n_threads = base, pool, max(1, n_threads)
        self.min_tile, self.max_tile = min_tile, max_tile

    def _tile(self, area: float) -> int:
        """Tile side for an output of ``area`` elements: about TILES_PER_THREAD tiles per worker."""
        side = math.sqrt(area / (TILES_PER_THREAD * self.n_threads))
        return int(min(self.max_tile, max(self.min_tile, side)))

    @property
    def xp(self) -> Any:
        return self.base.xp

    def empty(self, size: int) -> Any:
        return self.base.empty(size)

    def view(self, ref: Ref, rows: int, cols: int) -> Any:
        return self.base.view(ref, rows, cols)

    def potrf(self, n: int, a: Ref) -> int:
        return self.base.potrf(n, a)

    def _run(self, calls: list[_Call]) -> None:
        """Every call, largest first, on the pool; waits for all and re-raises the first error."""
        if len(calls) == 1:
            calls[0][1]()
            return
        calls.sort(key=lambda call: -call[0])
        wait_all([self.pool.submit(fn) for _, fn in calls])

    def gemm(
        self,
        transa: Trans,
        transb: Trans,
        m: int,
        n: int,
        k: int,
        alpha: float,
        a: Ref,
        b: Ref,
        beta: float,
        c: Ref,
    ) -> None:
        a.check_inside(*_stored(transa, m, k))
        b.check_inside(*_stored(transb, k, n))
        c.check_inside(m, n)
        calls: list[_Call] = []
        tile = self._tile(m * n)
        for i, mi in _cuts(m, tile):
            a_i = _op_at(a, transa, i, 0)
            for j, nj in _cuts(n, tile):
                b_j = _op_at(b, transb, 0, j)
                c_ij = _at(c, i, j)
                call = partial(self.base.gemm, transa, transb, mi, nj, k, alpha, a_i, b_j, beta, c_ij)
                calls.append((mi * nj * k, call))
        self._run(calls)

    def syrk(
        self, uplo: Uplo, trans: Trans, n: int, k: int, alpha: float, a: Ref, beta: float, c: Ref
    ) -> None:
        if uplo != "L":
            raise ValueError("the tiled SYRK writes the lower triangle only")
        a.check_inside(*_stored(trans, n, k))
        c.check_inside(n, n)
        calls: list[_Call] = []
        cuts = _cuts(n, self._tile(n * n / 2))
        # Below the diagonal, C[i, j] = op(A)[i] · op(A)[j]ᵀ: one GEMM, A's tile i and then tile j transposed.
        transposes: tuple[Trans, Trans] = ("N", "T") if trans == "N" else ("T", "N")
        for i, ni in cuts:
            a_i = _op_at(a, trans, i, 0)
            calls.append(
                (ni * ni * k / 2, partial(self.base.syrk, uplo, trans, ni, k, alpha, a_i, beta, _at(c, i, i)))
            )
            for j, nj in cuts:
                if j >= i:
                    break
                a_j = _op_at(a, trans, j, 0)
                call = partial(self.base.gemm, *transposes, ni, nj, k, alpha, a_i, a_j, beta, _at(c, i, j))
                calls.append((ni * nj * k, call))
        self._run(calls)

    def trsm(
        self, side: Side, uplo: Uplo, trans: Trans, m: int, n: int, alpha: float, a: Ref, b: Ref
    ) -> None:
        self._triangular(self.base.trsm, side, uplo, trans, m, n, alpha, a, b)

    def trmm(
        self, side: Side, uplo: Uplo, trans: Trans, m: int, n: int, alpha: float, a: Ref, b: Ref
    ) -> None:
        self._triangular(self.base.trmm, side, uplo, trans, m, n, alpha, a, b)

    def _triangular(
        self,
        routine: Callable[..., None],
        side: Side,
        uplo: Uplo,
        trans: Trans,
        m: int,
        n: int,
        alpha: float,
        a: Ref,
        b: Ref,
    ) -> None:
        """TRSM or TRMM: B's rows (side R) or columns (side L) are independent, so they are the tiles."""
        order = m if side == "L" else n  # A is order × order
        a.check_inside(order, order)
        b.check_inside(m, n)
        calls: list[_Call] = []
        tile = self._tile(m * n)
        if side == "R":
            for i, mi in _cuts(m, tile):
                calls.append((mi * n * n, partial(routine, side, uplo, trans, mi, n, alpha, a, _at(b, i, 0))))
        else:
            for j, nj in _cuts(n, tile):
                calls.append((m * m * nj, partial(routine, side, uplo, trans, m, nj, alpha, a, _at(b, 0, j))))
        self._run(calls)


@contextmanager
def tiled(base: BlasExecutor, n_threads: int) -> Iterator[BlasExecutor]:
    """``base`` itself on one thread, else tiled over ``n_threads`` workers; one BLAS thread a call."""
    if n_threads <= 1:
        with blas_threads(1):
            yield base
        return
    with blas_threads(1), ThreadPoolExecutor(n_threads, thread_name_prefix="accel-blas") as pool:
        yield TiledExecutor(base, pool, n_threads)
