"""The CuPy backend, by concern.

* :mod:`~accel.backends.cupy.libs` — whether CuPy and its CUDA libraries load; cuSOLVER's
  64-bit Cholesky through ``ctypes``.
* :mod:`~accel.backends.cupy.inverse` — the blocked one-buffer inverse on cuBLAS/cuSOLVER.
* :mod:`~accel.backends.cupy.kernels` — the CUDA kernels over CSR rows (scatter, fill, Gram statistics).
* :mod:`~accel.backends.cupy.topk` — top-k by order-preserving keys and a selection, no full sort.
* :mod:`~accel.backends.cupy.planning` — memory planning in plain NumPy.
* :mod:`~accel.backends.cupy.backend` — :class:`CupyBackend` itself.

Importing this package does not import CuPy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from accel.backends.cupy.libs import cupy_usable

if TYPE_CHECKING:
    from accel.backends.cupy.backend import CupyBackend


def __getattr__(name: str) -> Any:
    if name == "CupyBackend":
        from accel.backends.cupy.backend import CupyBackend

        return CupyBackend
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["CupyBackend", "cupy_usable"]
