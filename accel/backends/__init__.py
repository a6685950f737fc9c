"""Array backends: the only place that knows NumPy from CuPy.

``get_backend("auto")`` picks CuPy when it imports, its cuBLAS, cuSOLVER and cuSPARSE
load and a CUDA device answers, NumPy otherwise; ``get_backend("cupy")`` says why when
CuPy cannot be used.
"""

from __future__ import annotations

from accel.backends.base import Backend
from accel.backends.numpy_backend import NumpyBackend
from accel.errors import BackendUnavailableError, InputError

BACKEND_NAMES = ("auto", "numpy", "cupy")


def cupy_status() -> tuple[bool, str]:
    """Whether the CuPy backend is usable here, and if not, why."""
    try:
        from accel.backends.cupy import cupy_usable
    except ImportError as exc:  # pragma: no cover - the module itself imports nothing heavy
        return False, f"the CuPy backend module failed to import: {exc}"
    return cupy_usable()


def get_backend(name: str | Backend = "auto") -> Backend:
    """Return a backend by name (``"auto"``, ``"numpy"``, ``"cupy"``) or pass one through."""
    if isinstance(name, Backend):
        return name
    if name not in BACKEND_NAMES:
        raise InputError(f"unknown backend {name!r}; choose one of {', '.join(BACKEND_NAMES)}")
    if name == "numpy":
        return NumpyBackend()
    usable, reason = cupy_status()
    if name == "cupy" and not usable:
        raise BackendUnavailableError(f"the CuPy backend cannot be used: {reason}")
    if usable:
        from accel.backends.cupy.backend import CupyBackend

        return CupyBackend()
    return NumpyBackend()


def available_backends() -> dict[str, str]:
    """Each concrete backend mapped to ``"available"`` or the reason it is not."""
    usable, reason = cupy_status()
    return {"numpy": "available", "cupy": "available" if usable else reason}


__all__ = [
    "BACKEND_NAMES",
    "Backend",
    "NumpyBackend",
    "available_backends",
    "cupy_status",
    "get_backend",
]
