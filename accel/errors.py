"""Exceptions that name the problem, so users see what to fix rather than a traceback."""

from __future__ import annotations


class AccelError(Exception):
    """Base class for every error accel raises on purpose."""


class InputError(AccelError, ValueError):
    """Input data or parameters that accel cannot work with (shape, value, id)."""


class NotFittedError(AccelError, RuntimeError):
    """A model method that needs ``fit`` was called before it."""


class BackendUnavailableError(AccelError, RuntimeError):
    """The requested array backend cannot be used here (the message says why)."""


class UnknownItemsWarning(UserWarning):
    """Items of a new user's list that the model does not know were left out of their answer."""


class InsufficientMemoryError(AccelError, MemoryError):
    """An allocation would not fit; raised before allocating, naming both sizes."""

    def __init__(self, what: str, needed: int, available: int, where: str) -> None:
        self.what = what
        self.needed = int(needed)
        self.available = int(available)
        self.where = where
        super().__init__(
            f"{what} needs {format_bytes(needed)} but only {format_bytes(available)} of {where} is available"
        )


def format_bytes(n: float) -> str:
    """``1536`` -> ``'1.5 KiB'``: sizes people can read in an error message."""
    n = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")
