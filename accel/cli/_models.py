"""The ``--model`` choice and each model's options, shared by ``accel fit`` and ``accel evaluate``.

The choices are the registry's models (:func:`accel.models.base.registered`); the
KNN options are generated from :mod:`accel.models.knn` (its similarities, shrink
types and each similarity's own parameters), so the command line always offers
exactly what :class:`accel.ItemKNN` and :class:`accel.UserKNN` take.
"""

from __future__ import annotations

import argparse
import inspect
from typing import Any

from accel.errors import InputError
from accel.models.base import Recommender
from accel.models.ease import DEFAULT_L2
from accel.models.knn import (
    METHOD_PARAMS,
    POP_CHOICES,
    SHRINK_TYPES,
    SIMILARITIES,
    SIMILARITY_PARAMS,
    ItemKNN,
    check_knn_params,
)
from accel.models.registry import model_class, registered

__all__ = ["DEFAULT_L2", "add_model_args", "model_from_args"]

#: The KNN models' own defaults, quoted in the help.
_DEFAULTS = {name: p.default for name, p in inspect.signature(ItemKNN.__init__).parameters.items()}
#: KNN options (flag dest → model parameter): the common ones and each similarity's own.
_KNN_OPTIONS = {
    "similarity": "similarity",
    "neighbours": "k",
    "shrink": "shrink",
    "shrink_type": "shrink_type",
    "threshold": "threshold",
    **{("s_plus_l2" if name == "l2" else name): name for name in METHOD_PARAMS},
}
#: Options that set one parameter of the models that have it (flag dest → model parameter).
_PARAM_OPTIONS = {"density": "density", "max_row_weights": "max_row_weights", "threads": "n_threads"}


def _takers(param: str) -> str:
    """The registered models that take ``param``, by command-line name (``"ease or pruned_ease"``)."""
    return " or ".join(name for name, cls in registered().items() if param in cls.param_names())


def add_model_args(parser: argparse.ArgumentParser) -> None:
    """``--model`` and the KNN options (``--similarity``, ``--neighbours``, shrink, each similarity's own).

    ``--l2`` (EASE's λ) is not added here: the caller defines it.
    """
    parser.add_argument(
        "--model", choices=tuple(registered()), default="ease", help="which model (default ease)"
    )
    parser.add_argument(
        "--density",
        type=float,
        help="--model sparse_ease: the share of each item's weights kept, e.g. 0.05 or 1e-4 "
        "(100 weights per item on a million items; default 0.05)",
    )
    parser.add_argument(
        "--max-row-weights",
        type=int,
        metavar="N",
        help="--model sparse_ease: the most weights kept in each item's row, the items it leads to "
        "(default all; a few hundred serve large catalogues far faster)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        metavar="N",
        help=f"--model {_takers('n_threads')}: CPU threads of the fit and scoring "
        "(default: every core this process may use)",
    )
    knn = parser.add_argument_group("KNN models (--model itemknn or userknn; similaripy's parameters)")
    knn.add_argument(
        "--similarity", choices=SIMILARITIES, help=f"the similarity (default {_DEFAULTS['similarity']})"
    )
    knn.add_argument(
        "--neighbours",
        type=int,
        metavar="N",
        help=f"neighbours kept per item or user (default {_DEFAULTS['k']})",
    )
    knn.add_argument("--shrink", type=float, help=f"shrinkage term (default {_DEFAULTS['shrink']:g})")
    knn.add_argument(
        "--shrink-type", choices=SHRINK_TYPES, help=f"kind of shrinkage (default {_DEFAULTS['shrink_type']})"
    )
    knn.add_argument(
        "--threshold", type=float, help=f"smallest similarity kept (default {_DEFAULTS['threshold']:g})"
    )
    for name in METHOD_PARAMS:
        takers = ", ".join(s for s, params in SIMILARITY_PARAMS.items() if name in params)
        flag = "--s-plus-l2" if name == "l2" else f"--{name}"
        if name in ("pop1", "pop2"):
            knn.add_argument(flag, choices=POP_CHOICES, help=f"for {takers}")
        else:
            knn.add_argument(flag, type=float, help=f"for {takers} (default: similaripy's)")


def _knn_options(args: argparse.Namespace) -> dict[str, Any]:
    """The KNN options given on the command line, by model parameter name."""
    return {
        param: getattr(args, dest) for dest, param in _KNN_OPTIONS.items() if getattr(args, dest) is not None
    }


def _flag(param: str) -> str:
    dest = next(d for d, p in _KNN_OPTIONS.items() if p == param)
    return "--" + dest.replace("_", "-")


def model_from_args(
    args: argparse.Namespace, l2: float | None = None, name: str | None = None
) -> Recommender:
    """A fresh model of ``--model`` (or ``name``) from the parsed options; ``l2`` overrides ``--l2``.

    KNN options given for another ``--model``, and ``--l2`` for a model without λ, are errors
    (they would be ignored).
    """
    name = name or args.model
    cls = model_class(name)
    params = cls.param_names()
    options = _knn_options(args)
    l2 = args.l2 if l2 is None else l2
    if "similarity" in params:
        if l2 is not None and name == args.model:
            raise InputError(f"--l2 is EASE's λ; for --model {name} with s_plus, pass --s-plus-l2")
        knn: Any = cls(backend=args.backend, dtype=args.dtype, **options)
        check_knn_params(knn.similarity, knn.method_params())
        return knn
    if options and name == args.model:
        raise InputError(f"{', '.join(map(_flag, options))} apply to --model itemknn or userknn, not {name}")
    if l2 is not None and "l2" not in params:
        if name != args.model:
            l2 = None
        else:
            raise InputError(f"--l2 applies to --model ease, not {name}")
    given = {"l2": l2}
    for dest, param in _PARAM_OPTIONS.items():
        value = getattr(args, dest, None)
        if value is None or param in params:
            given[param] = value
        elif name == args.model:
            raise InputError(f"--{dest.replace('_', '-')} applies to --model {_takers(param)}, not {name}")
    return cls(backend=args.backend, dtype=args.dtype, **{k: v for k, v in given.items() if v is not None})
