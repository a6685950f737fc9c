"""Which models a benchmark runs: plain, JSON-able specs, and how to build each one."""

from __future__ import annotations

import importlib.util
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from accel.backends import available_backends
from accel.errors import InputError
from accel.models.knn import SIMILARITIES, check_knn_params

#: Reasonable untuned settings for each similarity: a few hundred neighbours
#: with a little shrinkage; the random-walk methods use their published defaults.
KNN_DEFAULTS: dict[str, dict[str, Any]] = {
    "dot_product": {"k": 100},
    "cosine": {"k": 100, "shrink": 10.0},
    "asymmetric_cosine": {"k": 100, "shrink": 10.0, "alpha": 0.7},
    "jaccard": {"k": 100, "shrink": 10.0},
    "dice": {"k": 100, "shrink": 10.0},
    "tversky": {"k": 100, "shrink": 10.0, "alpha": 0.8, "beta": 0.2},
    "p3alpha": {"k": 100, "alpha": 1.0},
    "rp3beta": {"k": 100, "alpha": 1.0, "beta": 0.5},
    "s_plus": {"k": 100, "shrink": 10.0, "l1": 0.5, "l2": 0.5, "t1": 1.0, "t2": 1.0, "c1": 0.5, "c2": 0.5},
}
EASE_DEFAULT_L2 = 500.0
MODEL_CLASSES = ("EASE", "TopPopular", "ItemKNN", "UserKNN")


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


def dask_available() -> bool:
    """Whether the optional Dask scorer (``accel.distributed``) is installed."""
    return importlib.util.find_spec("accel.distributed") is not None


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
    for similarity, params in (best.get("ItemKNN") or {}).items():
        if not isinstance(params, dict):
            raise InputError(f"{path}: ItemKNN.{similarity} must be an object of parameters")
        check_knn_params(similarity, {k: v for k, v in params.items() if k != "similarity"})
    ease = best.get("EASE") or {}
    if set(ease) - {"l2"}:
        raise InputError(f"{path}: EASE takes only l2, got {', '.join(sorted(set(ease) - {'l2'}))}")
    return best


def default_specs(
    tuned: dict[str, Any] | None = None,
    similarities: tuple[str, ...] = SIMILARITIES,
    backends: tuple[str, ...] | None = None,
    dask: bool | None = None,
) -> list[ModelSpec]:
    """EASE on every usable backend, TopPopular, ItemKNN per similarity, and Dask-scored EASE if present."""
    tuned = tuned or {}
    l2 = float((tuned.get("EASE") or {}).get("l2", EASE_DEFAULT_L2))
    if backends is None:
        backends = tuple(name for name, status in available_backends().items() if status == "available")
    specs = [ModelSpec(f"EASE ({name})", "EASE", {"l2": l2, "backend": name}) for name in backends]
    if dask if dask is not None else dask_available():
        specs.append(ModelSpec("EASE (Dask-scored)", "EASE", {"l2": l2, "backend": "numpy"}, scorer="dask"))
    specs.append(ModelSpec("TopPopular", "TopPopular", {}))
    knn_tuned = tuned.get("ItemKNN") or {}
    for similarity in similarities:
        params = dict(knn_tuned.get(similarity) or KNN_DEFAULTS[similarity])
        params.pop("similarity", None)
        specs.append(
            ModelSpec(
                f"ItemKNN {similarity}", "ItemKNN", {"similarity": similarity, **params, "backend": "numpy"}
            )
        )
    return specs


def build_model(spec: ModelSpec) -> Any:
    """An unfitted estimator for ``spec``."""
    import accel

    if spec.model not in MODEL_CLASSES:
        raise InputError(f"unknown model class {spec.model!r}; choose one of {', '.join(MODEL_CLASSES)}")
    return getattr(accel, spec.model)(**spec.params)
