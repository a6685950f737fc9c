"""Thread control: the BLAS limit, the pool never stacked on BLAS threads, EASE(n_threads)."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from conftest import random_interactions
from test_ease import reference_B, rel_err
from threadpoolctl import threadpool_info

import accel
from accel.backends import numpy_backend as nb
from accel.backends import tiled_blas
from accel.backends.host_blas import HostBlasExecutor
from accel.backends.threads import blas_threads, host_threads, run_parallel


def blas_counts() -> list[int]:
    return [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]


def test_blas_threads_limits_inside_and_restores_after() -> None:
    before = blas_counts()
    with blas_threads(1):
        assert set(blas_counts()) == {1}
        with blas_threads(5):  # the smallest limit in force wins: never more than asked
            assert set(blas_counts()) == {1}
    assert blas_counts() == before


@pytest.mark.parametrize("n_threads", [1, 2])
def test_blas_runs_one_thread_inside_the_pool(n_threads: int) -> None:
    seen: list[list[int]] = []
    run_parallel(lambda _: seen.append(blas_counts()), range(4), n_threads)
    assert seen and all(set(counts) == {1} for counts in seen)


def test_inline_work_gets_the_callers_thread_count() -> None:
    seen: list[list[int]] = []
    run_parallel(lambda _: seen.append(blas_counts()), [0], 3)
    assert set(seen[0]) == {3}


@pytest.mark.parametrize("n_threads", [1, 2])
@pytest.mark.parametrize("lapack_max_n", [10, 10_000])
def test_ease_n_threads_caps_the_threads_of_the_inverse(
    monkeypatch, lapack_max_n: int, n_threads: int
) -> None:
    """Blocked: at most n_threads threads call the BLAS, one BLAS thread each; LAPACK: one thread."""
    monkeypatch.setattr(nb, "_LAPACK_POTRF_MAX_N", lapack_max_n)
    monkeypatch.setattr(nb, "_CHOLESKY_BLOCK", 16)
    monkeypatch.setattr(tiled_blas, "MIN_TILE", 8)
    seen: list[tuple[str, list[int]]] = []

    def spying(real):
        def spy(*args, **kwargs):
            seen.append((threading.current_thread().name, blas_counts()))
            return real(*args, **kwargs)

        return spy

    for name in ("gemm", "syrk", "trsm", "trmm"):
        monkeypatch.setattr(HostBlasExecutor, name, spying(getattr(HostBlasExecutor, name)))
    monkeypatch.setattr(nb.NumpyBackend, "_lapack_inverse", spying(nb.NumpyBackend._lapack_inverse))
    X = random_interactions(300, 70, 0.08, seed=2)
    model = accel.EASE(l2=20.0, backend="numpy", n_threads=n_threads).fit(X, show_progress=False)
    assert seen and all(set(counts) == {1} for _, counts in seen)
    assert 1 <= len({thread for thread, _ in seen}) <= n_threads and model.backend_.n_threads == n_threads
    assert rel_err(model.B_, reference_B(X, 20.0)) < 1e-4


def test_n_threads_round_trips_through_params_clone_and_save(tmp_path) -> None:
    X = random_interactions(200, 40, 0.1, seed=4)
    model = accel.EASE(l2=10.0, backend="numpy", n_threads=1)
    assert accel.models.base.clone(model).get_params()["n_threads"] == 1
    assert model.set_params(n_threads=2).n_threads == 2
    model.fit(X, show_progress=False)
    assert model.backend_.n_threads == 2
    model.save(tmp_path / "m")
    loaded = accel.load_model(tmp_path / "m")
    assert loaded.get_params()["n_threads"] == 2 and loaded.backend_.n_threads == 2
    np.testing.assert_array_equal(loaded.recommend(X, 5)[0], model.recommend(X, 5)[0])
    pruned = model.prune(0.5)
    assert pruned.n_threads == 2 and pruned.backend_.n_threads == 2


def test_default_is_every_usable_core() -> None:
    X = random_interactions(100, 20, 0.2, seed=5)
    model = accel.EASE(backend="numpy").fit(X, show_progress=False)
    assert model.n_threads is None and model.backend_.n_threads == host_threads()


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2"])
def test_bad_n_threads_is_named(bad: object) -> None:
    X = random_interactions(50, 10, 0.3, seed=6)
    with pytest.raises(accel.InputError, match="n_threads"):
        accel.EASE(backend="numpy", n_threads=bad).fit(X, show_progress=False)


def test_the_command_line_sets_n_threads(tmp_path, capsys) -> None:
    from accel.cli import main
    from accel.data import synthetic_interactions

    log = tmp_path / "log.csv"
    synthetic_interactions(200, 50, mean_per_user=8, seed=1).to_csv(log, index=False)
    assert main(["fit", str(log), "--threads", "1", "--out", str(tmp_path / "ease"), "-q"]) == 0
    assert accel.load_model(tmp_path / "ease").n_threads == 1
    capsys.readouterr()
    for extra, message in ((["--model", "toppop"], "--threads applies to --model ease, not toppop"),
                           (["--threads", "0"], "n_threads")):  # fmt: skip
        argv = ["fit", str(log), "--threads", "1", "--out", str(tmp_path / "refused"), *extra]
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1 and "Traceback" not in err
        assert not (tmp_path / "refused").exists()


def test_an_error_cancels_the_items_not_started() -> None:
    """After one item fails, the pool runs only what had started: Ctrl-C and errors return promptly."""
    started: list[int] = []

    def work(item: int) -> None:
        started.append(item)
        if item == 0:
            raise RuntimeError("item 0 failed")
        time.sleep(0.01)

    with pytest.raises(RuntimeError, match="item 0 failed"):
        run_parallel(work, range(200), 2)
    assert len(started) < 50
