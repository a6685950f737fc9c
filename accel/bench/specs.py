"""Which models a benchmark runs: plain, JSON-able specs from the model registry, and how to build each."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from accel.backends import available_backends
from accel.errors import InputError
from accel.models.base import Recommender
from accel.models.knn import SIMILARITIES, check_knn_params
from accel.models.registry import model_class, registered


@dataclass
class ModelSpec:
    """One benchmark row: a display name, a model class name, its parameters and options.

    ``scorer`` is ``"dask"`` for the row scored through :func:`accel.distributed.recommend`.
    """

    name: str
    model: str
    params: dict[str, Any] = field(default_factory=dict)
    scorer: str = "local"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelSpec:
        return cls(**data)


def load_tuned_params(path: str | os.PathLike[str] | None) -> dict[str, Any]:
    """Tuned parameters as written by ``accel tune`` (``{"EASE": {...}, "ItemKNN": {sim: {...}}}``)."""
    if path is None:
        return {}
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except OSError as exc:
        raise InputError(f"cannot read tuned parameters {path}: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"{path} is not valid JSON: {exc}") from None
    best = data.get("best", data) if isinstance(data, dict) else None
    if not isinstance(best, dict):
        raise InputError(f"{path} must hold a JSON object of tuned parameters")
    for class_name, tuned in best.items():
        cls = model_class(class_name)
        for variant, params in _tuned_variants(cls, tuned, path).items():
            unknown = sorted(set(params) - set(cls.param_names()))
            if unknown:
                raise InputError(
                    f"{path}: {class_name}{' ' + variant if variant else ''} has no parameter "
                    f"{', '.join(unknown)}"
                )
            if "similarity" in cls.param_names():
                check_knn_params(variant, {k: v for k, v in params.items() if k != "similarity"})
    return best


def _tuned_variants(cls: type[Recommender], tuned: object, path: Path) -> dict[str, dict[str, Any]]:
    """Tuned parameters of ``cls`` by variant (a model without variants has its one, ``""``)."""
    if not isinstance(tuned, dict):
        raise InputError(f"{path}: {cls.__name__} must be an object of parameters")
    if set(cls.entry.variants) == {""} if cls.entry else True:
        return {"": tuned}
    for variant, params in tuned.items():
        if not isinstance(params, dict):
            raise InputError(f"{path}: {cls.__name__}.{variant} must be an object of parameters")
    return tuned


def default_specs(
    tuned: dict[str, Any] | None = None,
    similarities: tuple[str, ...] = SIMILARITIES,
    backends: tuple[str, ...] | None = None,
    dask: bool = True,
) -> list[ModelSpec]:
    """Every benchmarked model of the registry: each variant with its defaults or ``tuned`` parameters.

    A per-backend model gets a row per usable backend (and a Dask-scored row with
    ``dask``); a KNN variant is a similarity, kept if in ``similarities``.
    """
    tuned = tuned or {}
    if backends is None:
        backends = tuple(name for name, status in available_backends().items() if status == "available")
    specs = []
    for cls in sorted(registered().values(), key=lambda c: c.entry.bench_order if c.entry else 0):
        entry = cls.entry
        if entry is None or not entry.benched:
            continue
        name = cls.__name__
        for variant, defaults in entry.variants.items():
            if "similarity" in cls.param_names() and variant not in similarities:
                continue
            given = tuned.get(name) or {}
            given = (given.get(variant) or {}) if variant else given
            if given:  # tuned values replace the defaults of every searched parameter
                space = entry.spaces.get(variant, {})
                defaults = {k: v for k, v in defaults.items() if k not in space and k not in given}
            params = {**defaults, **given}
            label = f"{name} {variant}" if variant else name
            if not entry.per_backend:
                specs.append(ModelSpec(label, name, params))
                continue
            specs += [ModelSpec(f"{label} ({b})", name, {**params, "backend": b}) for b in backends]
            if entry.dask_row and dask:
                specs.append(
                    ModelSpec(f"{label} (Dask-scored)", name, {**params, "backend": "numpy"}, "dask")
                )
    return specs


def build_model(spec: ModelSpec) -> Recommender:
    """An unfitted estimator for ``spec``."""
    return model_class(spec.model)(**spec.params)
