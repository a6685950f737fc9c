"""The tiled executor: every call cut into tiles gives what the whole call gives, on any thread count."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from test_host_blas import spd
from threadpoolctl import threadpool_info

from accel.backends import _blocked_inverse as blocked
from accel.backends._blocked_inverse import NumpyExecutor, Ref
from accel.backends.host_blas import HostBlasExecutor
from accel.backends.tiled_blas import TiledExecutor, tiled


@pytest.fixture
def pool() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(3) as workers:
        yield workers


def pair(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Two copies of one random n² buffer with a well-conditioned lower triangle at (2, 2)."""
    flat = np.random.default_rng(seed).random(n * n)
    NumpyExecutor(np.float64).view(Ref(flat, 2 + 2 * n, n), 20, 20)[...] += 30 * np.eye(20)
    return flat, flat.copy()


@pytest.mark.parametrize(("side", "trans"), [("L", "N"), ("L", "T"), ("R", "N"), ("R", "T")])
@pytest.mark.parametrize("routine", ["trsm", "trmm"])
def test_triangular_tiles_match_the_whole_call(pool, routine: str, side: str, trans: str) -> None:
    n = 60
    ours, ref = pair(n, 0)
    rows, cols = (13, 20) if side == "R" else (20, 17)
    args = (side, "L", trans, rows, cols, -1.5, Ref(None, 2 + 2 * n, n), Ref(None, 25 + 30 * n, n))
    tiny = TiledExecutor(HostBlasExecutor(), pool, 3, min_tile=3, max_tile=3)
    for ex, flat in ((tiny, ours), (HostBlasExecutor(), ref)):
        a, b = (Ref(flat, r.off, r.ld) for r in args[-2:])
        getattr(ex, routine)(*args[:-2], a, b)
    np.testing.assert_allclose(ours, ref, rtol=1e-13)


@pytest.mark.parametrize(("transa", "transb"), [("N", "N"), ("N", "T"), ("T", "N"), ("T", "T")])
def test_gemm_tiles_match_the_whole_call(pool, transa: str, transb: str) -> None:
    n = 60
    ours, ref = pair(n, 1)
    tiny = TiledExecutor(HostBlasExecutor(), pool, 3, min_tile=4, max_tile=4)
    for ex, flat in ((tiny, ours), (HostBlasExecutor(), ref)):
        ex.gemm(
            transa,
            transb,
            15,
            11,
            7,
            -2.0,
            Ref(flat, 1, n),
            Ref(flat, 3 + 20 * n, n),
            0.5,
            Ref(flat, 40 + 40 * n, n),
        )
    np.testing.assert_allclose(ours, ref, rtol=1e-13)


@pytest.mark.parametrize("trans", ["N", "T"])
def test_syrk_tiles_match_the_whole_call_and_leave_the_upper_triangle(pool, trans: str) -> None:
    n = 60
    ours, ref = pair(n, 2)
    tiny = TiledExecutor(HostBlasExecutor(), pool, 3, min_tile=5, max_tile=5)
    for ex, flat in ((tiny, ours), (HostBlasExecutor(), ref)):
        ex.syrk("L", trans, 23, 6, 1.5, Ref(flat, 30 + 1 * n, n), 1.0, Ref(flat, 33 + 33 * n, n))
    np.testing.assert_allclose(ours, ref, rtol=1e-13)
    with pytest.raises(ValueError, match="lower triangle"):
        tiny.syrk("U", trans, 4, 2, 1.0, Ref(ours, 0, n), 1.0, Ref(ours, 10, n))


@pytest.mark.parametrize("base", [HostBlasExecutor, NumpyExecutor])
@pytest.mark.parametrize(("n", "block", "tile"), [(97, 16, 7), (200, 64, 50), (33, 40, 8)])
def test_blocked_inverse_on_tiles_matches_the_dense_inverse(
    pool, base: type, n: int, block: int, tile: int
) -> None:
    A = spd(n, 3)
    ex = TiledExecutor(base(np.float64), pool, 3, min_tile=tile, max_tile=tile)
    got = A.copy()
    blocked.spd_inverse_flat(ex, got.reshape(-1), n, block, blocked_cholesky=True)
    want = np.linalg.inv(A)
    assert np.abs(got - want).max() / np.abs(want).max() < 1e-12


def test_an_error_in_a_tile_reaches_the_caller(pool) -> None:
    flat = np.zeros(100)
    tiny = TiledExecutor(HostBlasExecutor(), pool, 3, min_tile=2, max_tile=2)
    with pytest.raises(ValueError, match="overruns its buffer"):  # C runs past the buffer's end
        tiny.gemm("N", "N", 10, 10, 1, 1.0, Ref(flat, 0, 10), Ref(flat, 0, 10), 0.0, Ref(flat, 5, 10))
    tiny.gemm(
        "N", "N", 4, 4, 1, 1.0, Ref(flat, 0, 10), Ref(flat, 0, 10), 0.0, Ref(flat, 50, 10)
    )  # pool still works


def test_tile_sides_are_checked(pool) -> None:
    with pytest.raises(ValueError, match="min_tile <= max_tile"):
        TiledExecutor(HostBlasExecutor(), pool, 2, min_tile=9, max_tile=4)


def blas_counts() -> set[int]:
    return {lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"}


@pytest.mark.parametrize("n_threads", [1, 2])
def test_tiled_runs_the_blas_on_one_thread_per_call(n_threads: int) -> None:
    base = HostBlasExecutor()
    with tiled(base, n_threads) as ex:
        assert blas_counts() == {1}
        assert (ex is base) == (n_threads == 1)
