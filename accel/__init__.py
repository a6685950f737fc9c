"""accel: exact EASE and similaripy KNN recommenders on GPU (CuPy) or CPU (NumPy/SciPy)."""

from accel.backends import available_backends, get_backend
from accel.errors import (
    AccelError,
    BackendUnavailableError,
    InputError,
    InsufficientMemoryError,
    NotFittedError,
)
from accel.models import EASE, ItemKNN, PrunedEASE, Recommender, TopPopular, UserKNN, load_model

__version__ = "0.1.0"

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
