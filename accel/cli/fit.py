"""``accel fit``: learn a model from an interaction log and save it with its item ids."""

from __future__ import annotations

import argparse
import sys

import numpy as np

from accel.cli._common import (
    add_filter_args,
    add_input_args,
    add_quiet_arg,
    apply_filters,
    id_array,
    read_log,
    repeats_note,
)
from accel.cli._models import DEFAULT_L2, add_model_args, model_from_args
from accel.errors import InputError
from accel.model_folder import check_model_destination
from accel.models.ease import EASE, check_density


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "fit",
        help="fit a model on an interaction log and save it",
        description="Read an interaction log (CSV or Parquet; one row per user-item interaction), "
        "fit EASE, TopPopular, ItemKNN or UserKNN on all of it and save the model folder, with the "
        "item ids, to --out. Example: accel fit log.parquet --user-col customer_id --item-col "
        "article_id --l2 500 --out model/, or accel fit log.parquet --model itemknn "
        "--similarity rp3beta --neighbours 200 --alpha 0.8 --beta 0.3 --out knn/",
    )
    parser.add_argument("input", metavar="INPUT", help="interaction log (.csv, .tsv, .parquet)")
    add_input_args(parser)
    add_filter_args(parser)
    add_model_args(parser)
    parser.add_argument(
        "--l2", type=float, help=f"EASE L2 penalty λ (default {DEFAULT_L2:g}); s_plus's is --s-plus-l2"
    )
    parser.add_argument(
        "--prune",
        type=float,
        metavar="DENSITY",
        help="EASE only: keep this share of each column of B (e.g. 0.05) and save a sparse PrunedEASE, "
        "served without the dense matrix",
    )
    parser.add_argument("--backend", default="auto", help="auto, numpy or cupy (default auto)")
    parser.add_argument("--dtype", default="float32", help="float32 or float64 (default float32)")
    parser.add_argument(
        "--out",
        required=True,
        metavar="MODEL_DIR",
        help="folder to write the model to: new, empty, or a saved model to replace",
    )
    add_quiet_arg(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    out = check_model_destination(args.out)
    model = model_from_args(args)
    if args.prune is not None:
        if not isinstance(model, EASE):
            raise InputError(f"--prune applies to EASE only, not --model {args.model}")
        check_density(args.prune)
    inter, dropped = read_log(args.input, args.user_col, args.item_col, args.time_col, args.input_format)
    inter = apply_filters(inter, args)
    model.fit(inter.matrix(), show_progress=not args.quiet)
    if args.prune is not None and isinstance(model, EASE):  # any other model was refused above
        model = model.prune(args.prune)
    extras = {
        "item_ids": id_array(inter.item_ids),
        "user_col": np.array(args.user_col),
        "item_col": np.array(args.item_col),
        "time_col": np.array(args.time_col or ""),
        "input_format": np.array(args.input_format),
    }
    model.save(out, extras=extras)
    print(  # the one result line, kept by --quiet
        f"fitted {model!r} on {len(inter):,} interactions{repeats_note(dropped)} of {inter.n_users:,} "
        f"users × {inter.n_items:,} items; saved to {out}",
        file=sys.stderr,
    )
    return 0
