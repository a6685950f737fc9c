"""``accel recommend``: top-k items for the users of a log (or for a list of items) from a saved model."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from accel.cli._common import (
    OUTPUT_SUFFIXES,
    add_input_args,
    add_meta_arg,
    add_quiet_arg,
    check_output_path,
    is_recommendations_table,
    load_saved_model,
    read_log,
    saved_text,
    with_item_names,
    write_table,
)
from accel.data.interactions import read_table
from accel.distributed.cli_options import add_dask_args, recommend_with_dask, wants_dask, with_cli_hint
from accel.distributed.run_output import check_run_folder, check_same_run, model_fingerprint
from accel.errors import InputError
from accel.models.base import Recommender
from accel.serving import UNKNOWN_ITEMS, UNKNOWN_USERS
from accel.serving.answers import (
    FILTER_KINDS,
    history_matrix,
    id_filter,
    model_item_ids,
    new_user_row,
    recommendations_frame,
)

#: How the command line leaves out items the model does not know (named in errors).
HINT = "--unknown-items drop"


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "recommend",
        help="recommend top-k items with a saved model",
        description="Recommend the top --k items for every user in INPUT (their history: items they "
        "already have are never recommended; items the model does not know are ignored), or for one "
        "new user who has the --items given. Writes columns user, item, rank, score, source with the "
        "original ids to --out (.parquet or .csv, atomically), or prints them; source is 'popular' for a "
        "user with no items the model knows, who gets the training log's most popular items (see "
        "--unknown-users). Example: accel recommend model/ log.parquet --k 12 --out recs.parquet",
    )
    parser.add_argument("model_dir", metavar="MODEL_DIR", help="folder written by `accel fit`")
    parser.add_argument("input", metavar="INPUT", nargs="?", help="interaction log of the users to serve")
    parser.add_argument(
        "--items",
        nargs="+",
        action="extend",
        metavar="ITEM_ID",
        help="instead of INPUT: one user's items (repeat the flag or list several)",
    )
    parser.add_argument(
        "--users",
        nargs="+",
        action="extend",
        metavar="USER_ID|FILE",
        help="serve only these users of INPUT: ids, or one file of them (a .txt with one id a line, "
        "or a .csv/.tsv/.parquet with the user column)",
    )
    add_input_args(parser, defaults_from_model=True)
    parser.add_argument("--k", type=int, default=10, help="items per user (default 10)")
    parser.add_argument(
        "--unknown-users",
        choices=UNKNOWN_USERS,
        default="popular",
        help="users with no items the model knows: give them the most popular items (default), "
        "leave them out, or stop with an error; skip also leaves out --users ids that INPUT lacks",
    )
    parser.add_argument(
        "--unknown-items",
        choices=UNKNOWN_ITEMS,
        default="drop",
        help="items the model does not know (in --items or INPUT): leave them out, counted on stderr "
        "(default; a new user left with none gets the most popular items), or stop with an error",
    )
    for kind, words in (("allowed", "only these items are recommended"), ("forbidden", "never these items")):
        parser.add_argument(
            f"--{kind}-items",
            metavar="FILE",
            help=f"{words}: a .csv/.tsv/.parquet with the item column (as in the log); with a user "
            "column too, each user's own list (items and users the model or log lacks are ignored)",
        )
    parser.add_argument("--out", metavar="FILE", help="output .parquet or .csv (default: print)")
    add_meta_arg(parser)
    parser.add_argument("--backend", default=None, help="override the saved backend (auto, numpy, cupy)")
    add_quiet_arg(parser)
    add_dask_args(parser)
    parser.set_defaults(func=run)


def report_unknown_users(X: sp.csr_matrix, user_ids: np.ndarray, args: argparse.Namespace) -> None:
    """Count on stderr the users with no items the model knows (or stop, with ``--unknown-users error``)."""
    empty = np.flatnonzero(np.diff(X.indptr) == 0)
    if empty.size == 0:
        return
    if args.unknown_users == "error":
        raise InputError(
            f"{empty.size:,} of {len(user_ids):,} users have no items the model knows (e.g. user "
            f"{np.asarray(user_ids)[empty[0]]!r}): use --unknown-users popular or skip"
        )
    if not args.quiet:
        what = "got the most popular items" if args.unknown_users == "popular" else "were left out"
        print(
            f"accel recommend: {empty.size:,} of {len(user_ids):,} users have no items the model knows "
            f"and {what}",
            file=sys.stderr,
        )


def report_left_out(unknown: int, missing: np.ndarray, asked: int) -> None:
    """Count on stderr the interactions with unknown items and the ``--users`` that INPUT lacks."""
    if unknown:
        print(
            f"accel recommend: ignored {unknown:,} interactions with items the model does not know",
            file=sys.stderr,
        )
    if missing.size:
        print(
            f"accel recommend: {missing.size:,} of {asked:,} --users are not in INPUT and were left out "
            f"(e.g. user {missing[0]!r})",
            file=sys.stderr,
        )


def id_columns(args: argparse.Namespace, model: Recommender) -> tuple[str, str]:
    """The user and item columns: as given, else as saved at fit time."""
    return (
        args.user_col or saved_text(model, "user_col") or "user_id",
        args.item_col or saved_text(model, "item_col") or "item_id",
    )


def filters_from_args(
    args: argparse.Namespace, model: Recommender, item_ids: np.ndarray, user_ids: np.ndarray | None
) -> dict[str, object]:
    """``allowed_items`` / ``forbidden_items`` keywords from ``--allowed-items`` / ``--forbidden-items``.

    Each is a file of item ids (one list for every user), or, with a user column,
    each served user's own list.
    """
    user_col, item_col = id_columns(args, model)
    filters = {}
    for kind in FILTER_KINDS:
        path = getattr(args, f"{kind}_items")
        if path is not None:
            table = read_table(path, id_cols=(item_col, user_col))
            filters[f"{kind}_items"] = id_filter(table, item_ids, user_ids, path, item_col, user_col)
    return filters


def requested_users(values: list[str] | None, user_col: str) -> list[object] | None:
    """The ``--users`` ids: as given, or read from the one file named (``None``: every user)."""
    if values is None:
        return None
    path = Path(values[0])
    if len(values) > 1 or not path.is_file():
        return list(values)
    if path.suffix.lower() == ".txt":
        lines = path.read_text(encoding="utf-8").splitlines()
        return [line.strip() for line in lines if line.strip()]
    table = read_table(path, id_cols=(user_col,))
    if user_col not in table.columns:
        raise InputError(
            f"--users {path} has no user column {user_col!r} (columns: {', '.join(table.columns)})"
        )
    return table[user_col].drop_duplicates().tolist()


def run(args: argparse.Namespace) -> int:
    if (args.input is None) == (args.items is None):
        raise InputError("give either INPUT (a log of users) or --items, not both or neither")
    if args.users is not None and args.input is None:
        raise InputError("--users picks users of INPUT: give the log too")
    if args.items is not None and wants_dask(args):
        raise InputError("--scheduler / --workers score the users of a log: give INPUT, not --items")
    out = None
    if wants_dask(args) and args.out:
        with_cli_hint(check_run_folder)(args.out, args.overwrite)
    elif args.out:
        out = check_output_path(args.out, OUTPUT_SUFFIXES, is_recommendations_table)
    model = load_saved_model(args.model_dir, backend=args.backend)
    if wants_dask(args) and args.out:  # a different model or k is refused before the log is read
        known = {"model": model_fingerprint(model), "k": args.k}
        with_cli_hint(check_same_run)(args.out, known, args.overwrite)
    item_ids = model_item_ids(model)
    if args.items is not None:
        X, note = new_user_row(item_ids, args.items, args.unknown_items, args.unknown_users, hint=HINT)
        user_ids = np.array(["new"], dtype=object)
        if args.unknown_users == "error":  # a list left with no known items is refused
            report_unknown_users(X, user_ids, args)
        if note is not None and not args.quiet:
            print(f"accel recommend: {note}", file=sys.stderr)
        filters = filters_from_args(args, model, item_ids, None)
    else:
        inter, _ = read_log(
            args.input,
            *id_columns(args, model),
            args.time_col,
            args.input_format or saved_text(model, "input_format") or "auto",
        )
        users = requested_users(args.users, id_columns(args, model)[0])
        X, user_ids, unknown, missing = history_matrix(
            item_ids, inter, users, args.unknown_users, "--unknown-users skip"
        )
        if unknown and args.unknown_items == "error":
            raise InputError(
                f"{unknown:,} of {unknown + X.nnz:,} interactions in {args.input} are with items the "
                f"model does not know: use {HINT} to ignore them"
            )
        report_unknown_users(X, user_ids, args)
        if not args.quiet:
            report_left_out(unknown, missing, len(dict.fromkeys(users or ())))
        filters = filters_from_args(args, model, item_ids, user_ids)
        if wants_dask(args):
            if X.shape[0] == 0:
                raise InputError(
                    f"none of the {missing.size:,} --users are in {args.input}: no users to score"
                )
            return recommend_with_dask(args, model, X, user_ids, filters)
    frame = recommendations_frame(
        model,
        X,
        user_ids,
        item_ids,
        args.k,
        unknown_users=args.unknown_users,
        show_progress=not args.quiet,
        filters=filters,
    )
    frame = with_item_names(frame, args.meta, id_columns(args, model)[1])
    if out is None:
        print(frame.to_csv(sep="\t", index=False), end="")
    else:
        write_table(frame, out)
        print(f"wrote {len(frame):,} recommendations to {out}", file=sys.stderr)  # kept by --quiet
    return 0
