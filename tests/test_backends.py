"""Choosing a backend: auto falls back to NumPy; an unusable CuPy says why."""

from __future__ import annotations

import pytest

import accel
from accel.backends import NumpyBackend, available_backends, cupy_status, get_backend
from accel.errors import BackendUnavailableError, InputError


def test_numpy_is_always_available():
    assert available_backends()["numpy"] == "available"
    assert isinstance(get_backend("numpy"), NumpyBackend)


def test_auto_picks_cupy_only_when_usable():
    usable, _ = cupy_status()
    assert get_backend("auto").name == ("cupy" if usable else "numpy")


def test_cupy_request_without_gpu_says_why():
    usable, reason = cupy_status()
    if usable:
        pytest.skip("CuPy and a GPU are usable here")
    assert reason
    with pytest.raises(BackendUnavailableError, match="CuPy backend cannot be used"):
        get_backend("cupy")
    assert available_backends()["cupy"] == reason


def test_unknown_name_and_passthrough():
    with pytest.raises(InputError, match="unknown backend 'jax'"):
        get_backend("jax")
    backend = NumpyBackend()
    assert get_backend(backend) is backend
    assert accel.get_backend is get_backend
