"""The one list of models: each class's name, benchmark defaults and tuning space.

The command line (``--model``), the benchmarks (:mod:`accel.bench.specs`), tuning
(:mod:`accel.tuning`) and :func:`accel.load_model` all read it. A class is listed
when it is defined (every concrete :class:`~accel.models.base.Recommender`
subclass), and offered by name when it has an :class:`Entry`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

from accel.errors import InputError

if TYPE_CHECKING:
    from accel.models.base import Recommender

#: Every concrete model class by class name (what a saved model's ``class`` names).
CLASSES: dict[str, type[Recommender]] = {}


class Range(NamedTuple):
    """One parameter's tuning range: ``low`` to ``high``, on a log scale or not, integers or not."""

    low: float
    high: float
    log: bool = False
    integer: bool = False


@dataclass(frozen=True)
class Entry:
    """A model's registry entry: how the command line, the benchmarks and tuning know it.

    ``variants`` are the benchmark's rows of this model, by label suffix (``""``:
    the model alone), each with its default parameters; ``spaces`` the tuning
    search space of each variant (a variant without one is not tuned).
    ``per_backend`` benchmarks the model on every usable backend; ``dask_row``
    adds a row scored through :mod:`accel.distributed`; ``benched`` puts the
    model in the default benchmark at all, at ``bench_order`` (lower first).
    """

    name: str
    variants: Mapping[str, Mapping[str, Any]] = field(default_factory=lambda: {"": {}})
    spaces: Mapping[str, Mapping[str, Range]] = field(default_factory=dict)
    per_backend: bool = False
    dask_row: bool = False
    benched: bool = True
    bench_order: int = 100


def registered() -> dict[str, type[Recommender]]:
    """The models the command line, the benchmarks and tuning offer, by command-line name."""
    return {cls.entry.name: cls for cls in CLASSES.values() if cls.entry is not None}


def model_class(name: str) -> type[Recommender]:
    """The registered model class of command-line name or class name ``name``."""
    models = registered()
    by_class = {cls.__name__: cls for cls in models.values()}
    if name in models or name in by_class:
        return models.get(name) or by_class[name]
    raise InputError(f"unknown model class {name!r}; choose one of {', '.join(models)}")
