"""EASE's ``tf32`` option: off by default, exact on the CPU, kept with a saved model; the backend it asks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import accel
from accel.errors import InputError
from tests.conftest import random_interactions


def test_tf32_is_off_by_default_and_documented() -> None:
    assert accel.EASE().tf32 is False and accel.PrunedEASE().tf32 is False
    assert "tf32" in accel.EASE.__doc__ and "Off by default" in accel.EASE.__doc__


def test_tf32_on_the_cpu_computes_exactly(tmp_path: Path) -> None:
    X = random_interactions(300, 60, 0.08, seed=1)
    exact = accel.EASE(l2=20.0, backend="numpy").fit(X, show_progress=False)
    fast = accel.EASE(l2=20.0, backend="numpy", tf32=True).fit(X, show_progress=False)
    np.testing.assert_array_equal(np.asarray(fast.B_), np.asarray(exact.B_))
    fast.save(tmp_path / "model")
    assert accel.load_model(tmp_path / "model").tf32 is True


def test_tf32_must_be_a_bool() -> None:
    X = random_interactions(50, 20, 0.2, seed=2)
    with pytest.raises(InputError, match="tf32 must be True or False"):
        accel.EASE(backend="numpy", tf32="yes").fit(X, show_progress=False)


def test_cupy_backend_in_another_math_mode_keeps_its_settings() -> None:
    from accel.backends.cupy.backend import CupyBackend

    backend = object.__new__(CupyBackend)  # settings only; no device is touched
    backend.math_mode, backend.block_size, backend.cholesky = "exact", 512, "blocked"
    backend.pool_peaks, backend.gram_stats = {"gram": 1}, {}
    fast = backend.with_math_mode("tf32")
    assert fast is not backend and fast.math_mode == "tf32" and backend.math_mode == "exact"
    assert (fast.block_size, fast.cholesky, fast.pool_peaks) == (512, "blocked", {})
    assert fast.with_math_mode("tf32") is fast
    with pytest.raises(ValueError, match="math_mode"):
        backend.with_math_mode("bf16")
