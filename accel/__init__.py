"""accel: exact EASE and similaripy KNN recommenders on GPU (CuPy) or CPU (NumPy/SciPy).

The subpackages (``accel.data``, ``accel.metrics``, ``accel.tuning``, ``accel.plots``,
``accel.distributed``, ...) load on first attribute access, so ``import accel`` stays quick and
``accel.tuning.tune(...)`` works without importing ``accel.tuning`` first.
"""

import importlib
from typing import Any

from accel.backends import available_backends, get_backend
from accel.errors import (
    AccelError,
    BackendUnavailableError,
    InputError,
    InsufficientMemoryError,
    NotFittedError,
)
from accel.models import EASE, PrunedEASE, Recommender, load_model
from accel.models.knn import ItemKNN, UserKNN
from accel.models.popular import TopPopular

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
    "TopPopular",
    "UserKNN",
    "available_backends",
    "get_backend",
    "load_model",
]
