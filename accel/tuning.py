"""Hyper-parameter search on a validation window, then one refit scored on the test window.

The models and their search spaces come from the registry (``Entry.spaces``):
EASE's λ on a log scale, each ItemKNN similarity over ``k``, ``shrink`` and its
own parameters. Every candidate is fitted on ``train_val``
and scored on the following ``valid`` window; the best is refitted on
``train`` and scored on ``test`` (see :func:`accel.data.chronological_splits`).
Search is a grid, random sampling (seeded) or, when installed, Optuna's TPE.
"""

from __future__ import annotations

import importlib.util
import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal, TypedDict, get_args

import numpy as np
from tqdm.auto import tqdm

from accel.data.splits import ChronologicalSplits, Split
from accel.errors import InputError
from accel.metrics import METRICS, evaluate_split
from accel.models.base import Recommender
from accel.models.knn import SIMILARITIES
from accel.models.registry import Range, registered
from accel.progress import terminal_progress
from accel.validation import check_positive_int

Search = Literal["grid", "random", "optuna"]
SEARCHES: tuple[str, ...] = get_args(Search)
#: Points per parameter in a grid search.
GRID_POINTS = 3


def optuna_available() -> bool:
    """Whether the optional Optuna search can be used."""
    return importlib.util.find_spec("optuna") is not None


def parse_metric(metric: str) -> tuple[str, int]:
    """``"ndcg@10"`` as ``("ndcg", 10)``; :class:`InputError` for anything else."""
    name, _, k = metric.partition("@")
    if name not in METRICS or name == "coverage" or not k.isdigit() or int(k) < 1:
        choices = ", ".join(m for m in METRICS if m != "coverage")
        raise InputError(f"metric must look like ndcg@10 with one of {choices}, got {metric!r}")
    return name, int(k)


def _grid_values(low: float, high: float, log: bool, integer: bool, n: int) -> list[float]:
    values = np.geomspace(max(low, 1e-9), high, n) if log else np.linspace(low, high, n)
    return sorted({round(float(v)) for v in values}) if integer else [float(v) for v in values]


def _sample(rng: np.random.Generator, low: float, high: float, log: bool, integer: bool) -> float:
    value = math.exp(rng.uniform(math.log(max(low, 1e-9)), math.log(high))) if log else rng.uniform(low, high)
    return round(value) if integer else float(value)


def _candidates(
    space: Mapping[str, Range],
    search: str,
    n_trials: int,
    rng: np.random.Generator,
    grid_points: int,
) -> list[dict[str, Any]]:
    if search == "grid":
        names = list(space)
        grids = [_grid_values(*space[n], grid_points) for n in names]
        return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*grids)]
    return [{name: _sample(rng, *bounds) for name, bounds in space.items()} for _ in range(n_trials)]


def _score(make: Callable[[dict[str, Any]], Any], params: dict[str, Any], split: Split, metric: str) -> float:
    name, k = parse_metric(metric)
    return evaluate_split(make(params), split, ks=(k,), metrics=(name,))[metric]


class SearchOptions(TypedDict):
    """How :func:`tune` searches every model (keywords of :func:`_search_one`)."""

    search: str
    n_trials: int
    metric: str
    seed: int
    show_progress: bool


def _search_one(
    label: str,
    make: Callable[[dict[str, Any]], Any],
    space: Mapping[str, Range],
    splits: ChronologicalSplits,
    *,
    search: str,
    n_trials: int,
    metric: str,
    seed: int,
    grid_points: int,
    show_progress: bool,
) -> dict[str, Any]:
    """Best parameters of one model on ``splits.valid`` and the refit's score on ``splits.test``."""
    trials: list[dict[str, Any]] = []
    if search == "optuna":
        import optuna

        def objective(trial: Any) -> float:
            params = {}
            for name, (low, high, log, integer) in space.items():
                if integer:
                    params[name] = trial.suggest_int(name, int(low), int(high), log=log)
                else:
                    params[name] = trial.suggest_float(name, low, high, log=log)
            value = _score(make, params, splits.valid, metric)
            trials.append({"params": params, "valid": value})
            return value

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))
        study.optimize(objective, n_trials=n_trials, show_progress_bar=terminal_progress(show_progress))
    else:
        rng = np.random.default_rng(seed)
        candidates = _candidates(space, search, n_trials, rng, grid_points)
        for params in tqdm(
            candidates, desc=f"tune {label}", unit="trial", disable=None if show_progress else True
        ):
            trials.append({"params": params, "valid": _score(make, params, splits.valid, metric)})
    best = max(trials, key=lambda t: t["valid"])
    test = _score(make, best["params"], splits.test, metric)
    return {
        "model": label,
        "best_params": best["params"],
        "valid": best["valid"],
        "test": test,
        "trials": trials,
    }


def tune(
    splits: ChronologicalSplits,
    *,
    ease: bool = True,
    similarities: Sequence[str] = SIMILARITIES,
    search: Search = "random",
    n_trials: int = 10,
    metric: str = "ndcg@10",
    seed: int = 0,
    grid_points: int = GRID_POINTS,
    backend: str = "auto",
    show_progress: bool = True,
) -> dict[str, Any]:
    """Tune EASE and ItemKNN per similarity on ``splits.valid``; report each best refit on ``splits.test``.

    Returns ``{"metric", "search", "best": {"EASE": {"l2"}, "ItemKNN": {similarity: params}},
    "results": [...]}``; ``best`` is what ``accel bench --params`` reads. A one-parameter
    space (EASE's λ) gets at least 7 grid points; other searches try ``n_trials``.
    """
    if search not in SEARCHES:
        raise InputError(f"unknown search {search!r}; choose one of {', '.join(SEARCHES)}")
    if search == "optuna" and not optuna_available():
        raise InputError("search='optuna' needs Optuna: pip install optuna (or use grid or random)")
    check_positive_int("n_trials", n_trials)
    check_positive_int("grid_points", grid_points)
    parse_metric(metric)
    unknown = [s for s in similarities if s not in SIMILARITIES]
    if unknown:
        raise InputError(f"unknown similarity {unknown[0]!r}; choose from {', '.join(SIMILARITIES)}")
    options: SearchOptions = {
        "search": search,
        "n_trials": n_trials,
        "metric": metric,
        "seed": seed,
        "show_progress": show_progress,
    }
    results = []
    best: dict[str, Any] = {}
    for cls, variant, space in search_spaces(similarities):
        if cls.__name__ == "EASE" and not ease:
            continue
        variants = cls.entry.variants if cls.entry else {}  # search_spaces yields registered models only
        defaults = {"backend": backend, **variants.get(variant, {})}

        def make(
            params: dict[str, Any], cls: type[Recommender] = cls, defaults: dict = defaults
        ) -> Recommender:
            return cls(**{**defaults, **params})

        label = f"{cls.__name__} {variant}" if variant else cls.__name__
        points = max(grid_points, 7) if search == "grid" and len(space) == 1 else grid_points
        result = _search_one(label, make, space, splits, grid_points=points, **options)
        if variant:
            best.setdefault(cls.__name__, {})[variant] = result["best_params"]
        else:
            best[cls.__name__] = result["best_params"]
        results.append(result)
    return {"metric": metric, "search": search, "best": best, "results": results}


def search_spaces(
    similarities: Sequence[str] = SIMILARITIES,
) -> list[tuple[type[Recommender], str, Mapping[str, Range]]]:
    """Every registered model's tuning spaces, by variant (KNN variants: only ``similarities``)."""
    spaces = []
    for cls in registered().values():
        for variant, space in (cls.entry.spaces if cls.entry else {}).items():
            if "similarity" in cls.param_names() and variant not in similarities:
                continue
            spaces.append((cls, variant, space))
    return spaces
