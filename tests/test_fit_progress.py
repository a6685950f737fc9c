"""Progress and interrupts inside the inverse: a hook after every block, numerics unchanged."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import random_interactions
from test_ease import reference_B, rel_err

import accel
from accel.backends import _blocked_inverse as blocked
from accel.backends import numpy_backend as nb
from accel.backends.host_blas import HostBlasExecutor


def spd(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    X = (rng.random((3 * n + 5, n)) < 0.1).astype(np.float64)
    return X.T @ X + 2.0 * np.eye(n)


@pytest.mark.parametrize("blocked_cholesky", [True, False])
def test_on_block_counts_every_block_up_to_the_total(blocked_cholesky: bool) -> None:
    n, block = 100, 16  # 7 blocks per phase
    A64 = spd(n, 0)
    A, calls = A64.copy(), []
    blocked.spd_inverse_flat(
        HostBlasExecutor(np.float64),
        A.reshape(-1),
        n,
        block,
        blocked_cholesky,
        lambda d, t: calls.append((d, t)),
    )
    total = 7 * (3 if blocked_cholesky else 2)
    assert calls == [(done, total) for done in range(1, total + 1)]
    plain = A64.copy()
    blocked.spd_inverse_flat(HostBlasExecutor(np.float64), plain.reshape(-1), n, block, blocked_cholesky)
    np.testing.assert_array_equal(A, plain)  # the hook changes nothing
    assert rel_err(A, np.linalg.inv(A64)) < 1e-12


@pytest.mark.parametrize("lapack_max_n", [10, 10_000])
def test_backend_reports_progress_on_both_paths(monkeypatch, lapack_max_n: int) -> None:
    monkeypatch.setattr(nb, "_LAPACK_POTRF_MAX_N", lapack_max_n)
    monkeypatch.setattr(nb, "_CHOLESKY_BLOCK", 20)
    A64 = spd(90, 1)
    A, calls = A64.astype(np.float32), []
    nb.NumpyBackend().spd_inverse_inplace(A, on_block=lambda d, t: calls.append((d, t)))
    total = 15 if lapack_max_n == 10 else 2  # 5 blocks × 3 phases, or potrf and potri
    assert calls == [(done, total) for done in range(1, total + 1)]
    assert rel_err(A, np.linalg.inv(A64)) < 1e-5


class Interrupt:
    """An ``on_block`` hook that raises KeyboardInterrupt at block ``at``, as Ctrl-C would there."""

    def __init__(self, at: int) -> None:
        self.at, self.seen = at, 0

    def __call__(self, done: int, total: int) -> None:
        self.seen = done
        if done == self.at:
            raise KeyboardInterrupt


def interrupt_inverse(monkeypatch, at: int) -> Interrupt:
    hook = Interrupt(at)
    real = nb.NumpyBackend.spd_inverse_inplace
    monkeypatch.setattr(nb, "_LAPACK_POTRF_MAX_N", 10)
    monkeypatch.setattr(nb, "_CHOLESKY_BLOCK", 8)
    monkeypatch.setattr(
        nb.NumpyBackend, "spd_inverse_inplace", lambda self, A, on_block=None: real(self, A, hook)
    )
    return hook


def test_an_interrupt_in_the_inverse_keeps_the_old_weights(monkeypatch) -> None:
    old_X, new_X = random_interactions(300, 60, 0.08, seed=1), random_interactions(300, 60, 0.08, seed=2)
    model = accel.EASE(l2=20.0, backend="numpy").fit(old_X, show_progress=False)
    before = model.B_.copy()
    hook = interrupt_inverse(monkeypatch, at=5)
    with pytest.raises(KeyboardInterrupt):
        model.fit(new_X, show_progress=False)
    assert hook.seen == 5  # stopped at the block where it was raised, not at the end
    np.testing.assert_array_equal(model.B_, before)
    assert rel_err(model.B_, reference_B(old_X, 20.0)) < 1e-4
    model.recommend(old_X[:3], k=5)


def test_an_interrupt_in_the_inverse_leaves_an_unfitted_model_unfitted(monkeypatch) -> None:
    model = accel.EASE(l2=20.0, backend="numpy")
    interrupt_inverse(monkeypatch, at=3)
    with pytest.raises(KeyboardInterrupt):
        model.fit(random_interactions(200, 40, 0.1, seed=3), show_progress=False)
    assert not [name for name in vars(model) if name.endswith("_")]
    with pytest.raises(accel.NotFittedError):
        model.recommend(random_interactions(2, 40, 0.1, seed=4), k=3)


def test_the_fit_bar_advances_inside_the_inverse(monkeypatch) -> None:
    monkeypatch.setattr(nb, "_LAPACK_POTRF_MAX_N", 10)
    monkeypatch.setattr(nb, "_CHOLESKY_BLOCK", 16)
    X = random_interactions(300, 64, 0.08, seed=5)
    from accel.models import ease

    totals = []
    real_block = ease._FitSteps.block

    def spy(self, done: int, total: int) -> None:
        real_block(self, done, total)
        totals.append((done, self.bar.total))

    monkeypatch.setattr(ease._FitSteps, "block", spy)
    model = accel.EASE(l2=20.0, backend="numpy").fit(X, show_progress=False)
    assert totals == [(done, 3 + 12) for done in range(1, 13)]  # 3 steps and 4 blocks × 3 phases
    assert rel_err(model.B_, reference_B(X, 20.0)) < 1e-4
