"""The ``--model`` choice and each model's parameters, shared by ``accel fit`` and ``accel evaluate``.

The KNN options are generated from :mod:`accel.models.knn` (its similarities,
shrink types and each similarity's own parameters), so the command line always
offers exactly what :class:`accel.ItemKNN` and :class:`accel.UserKNN` take.
"""

from __future__ import annotations

import argparse
import inspect
from typing import Any

from accel.errors import InputError
from accel.models.base import Recommender
from accel.models.ease import EASE
from accel.models.knn import (
    METHOD_PARAMS,
    POP_CHOICES,
    SHRINK_TYPES,
    SIMILARITIES,
    SIMILARITY_PARAMS,
    ItemKNN,
    UserKNN,
    check_knn_params,
)
from accel.models.popular import TopPopular

#: Command-line model names and their classes.
MODELS: dict[str, type[Recommender]] = {
    "ease": EASE,
    "toppop": TopPopular,
    "itemknn": ItemKNN,
    "userknn": UserKNN,
}
KNN_MODELS = ("itemknn", "userknn")
#: EASE's default λ when ``--l2`` is not given (``--l2`` is also s_plus's own l2).
DEFAULT_L2 = 500.0
#: The KNN models' own defaults, quoted in the help.
_DEFAULTS = {name: p.default for name, p in inspect.signature(ItemKNN.__init__).parameters.items()}
#: KNN options besides each similarity's own: (flag dest, model parameter).
_KNN_COMMON = ("similarity", "knn_k", "shrink", "shrink_type", "threshold")


def add_model_args(
    parser: argparse.ArgumentParser, k_flags: tuple[str, ...] = ("--k", "--neighbours")
) -> None:
    """``--model``, the KNN options (``--similarity``, neighbours, shrink, each similarity's own).

    ``--l2`` is not added here: the caller defines it (EASE's λ, and s_plus's l2).
    """
    parser.add_argument("--model", choices=tuple(MODELS), default="ease", help="which model (default ease)")
    knn = parser.add_argument_group("KNN models (--model itemknn or userknn; similaripy's parameters)")
    knn.add_argument(
        "--similarity", choices=SIMILARITIES, help=f"the similarity (default {_DEFAULTS['similarity']})"
    )
    knn.add_argument(
        *k_flags,
        dest="knn_k",
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
        if name == "l2":
            continue
        takers = ", ".join(s for s, params in SIMILARITY_PARAMS.items() if name in params)
        if name in ("pop1", "pop2"):
            knn.add_argument(f"--{name}", choices=POP_CHOICES, help=f"for {takers}")
        else:
            knn.add_argument(f"--{name}", type=float, help=f"for {takers} (default: similaripy's)")


def _knn_options(args: argparse.Namespace) -> dict[str, Any]:
    """The KNN options given on the command line, by model parameter name."""
    names = {"knn_k": "k", **{n: n for n in _KNN_COMMON if n != "knn_k"}}
    names.update({n: n for n in METHOD_PARAMS if n != "l2"})
    return {param: getattr(args, dest) for dest, param in names.items() if getattr(args, dest) is not None}


def model_from_args(
    args: argparse.Namespace, l2: float | None = None, name: str | None = None
) -> Recommender:
    """A fresh model of ``--model`` (or ``name``) from the parsed options; ``l2`` overrides ``--l2``.

    KNN options given for another ``--model`` are an error (they would be ignored).
    """
    name = name or args.model
    l2 = args.l2 if l2 is None else l2
    options = _knn_options(args)
    if name in KNN_MODELS:
        if l2 is not None:
            options["l2"] = l2
        model = MODELS[name](backend=args.backend, dtype=args.dtype, **options)
        check_knn_params(model.similarity, model.method_params())
        return model
    if options and name == args.model:
        flags = ", ".join("--" + ("k" if n == "k" else n.replace("_", "-")) for n in options)
        raise InputError(f"{flags} apply to --model itemknn or userknn, not {name}")
    if name == "ease":
        return EASE(l2=DEFAULT_L2 if l2 is None else l2, backend=args.backend, dtype=args.dtype)
    return MODELS[name](backend=args.backend, dtype=args.dtype)
