"""accel: exact EASE and similaripy KNN recommenders on GPU (CuPy) or CPU (NumPy/SciPy).

The subpackages (``accel.data``, ``accel.metrics``, ``accel.tuning``, ``accel.plots``,
``accel.distributed``, ...) load on first attribute access, so ``import accel`` stays quick and
``accel.tuning.tune(...)`` works without importing ``accel.tuning`` first.
"""

import importlib
from typing import Any

from accel.errors import (
    AccelError,
    BackendUnavailableError,
    InputError,
    InsufficientMemoryError,
    NotFittedError,
    UnknownItemsWarning,
)

#: The models and backend helpers, imported on first use (NumPy, SciPy and numba load then; the
#: command line catches a Ctrl-C there instead of printing a traceback).
_LAZY = {
    "available_backends": "accel.backends",
    "get_backend": "accel.backends",
    "EASE": "accel.models",
    "PrunedEASE": "accel.models",
    "SparseEASE": "accel.models",
    "Recommender": "accel.models",
    "load_model": "accel.models",
    "ItemKNN": "accel.models",
    "UserKNN": "accel.models",
    "TopPopular": "accel.models",
}

__version__ = "0.1.0"

#: Subpackages and modules loaded on first access as attributes of ``accel``.
SUBMODULES = (
    "atomic",
    "backends",
    "bench",
    "cli",
    "data",
    "distributed",
    "errors",
    "memory",
    "metrics",
    "models",
    "plots",
    "tuning",
    "validation",
)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    if name in SUBMODULES:
        return importlib.import_module(f"accel.{name}")
    raise AttributeError(f"module 'accel' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *SUBMODULES})


__all__ = [
    "EASE",
    "AccelError",
    "BackendUnavailableError",
    "InputError",
    "InsufficientMemoryError",
    "ItemKNN",
    "NotFittedError",
    "PrunedEASE",
    "Recommender",
    "SparseEASE",
    "TopPopular",
    "UnknownItemsWarning",
    "UserKNN",
    "available_backends",
    "get_backend",
    "load_model",
]
