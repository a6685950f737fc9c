"""``accel recommend``: top-k items for the users of a log (or for a list of items) from a saved model."""

from __future__ import annotations

import argparse
import sys

import numpy as np
import pandas as pd
import scipy.sparse as sp

from accel.cli._common import (
    OUTPUT_SUFFIXES,
    add_input_args,
    add_quiet_arg,
    check_output_path,
    load_saved_model,
    read_interactions,
    saved_text,
    write_table,
)
from accel.data.interactions import Interactions, lookup_ids, read_table
from accel.distributed.cli_options import add_dask_args, recommend_with_dask, wants_dask
from accel.errors import InputError
from accel.models.base import Recommender
from accel.validation import binary_matrix


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "recommend",
        help="recommend top-k items with a saved model",
        description="Recommend the top --k items for every user in INPUT (their history: items they "
        "already have are never recommended; items the model does not know are ignored), or for one "
        "new user who has the --items given. Writes columns user, item, rank, score with the original "
        "ids to --out (.parquet or .csv, atomically), or prints them. Example: accel recommend model/ "
        "log.parquet --k 12 --out recs.parquet",
    )
    parser.add_argument("model_dir", metavar="MODEL_DIR", help="folder written by `accel fit`")
    parser.add_argument("input", metavar="INPUT", nargs="?", help="interaction log of the users to serve")
    parser.add_argument("--items", nargs="+", metavar="ITEM_ID", help="instead of INPUT: one user's items")
    add_input_args(parser, defaults_from_model=True)
    parser.add_argument("--k", type=int, default=10, help="items per user (default 10)")
    for kind, words in (("allowed", "only these items are recommended"), ("forbidden", "never these items")):
        parser.add_argument(
            f"--{kind}-items",
            metavar="FILE",
            help=f"{words}: a .csv/.tsv/.parquet with the item column (as in the log); with a user "
            "column too, each user's own list (items and users the model or log lacks are ignored)",
        )
    parser.add_argument("--out", metavar="FILE", help="output .parquet or .csv (default: print)")
    parser.add_argument("--backend", default=None, help="override the saved backend (auto, numpy, cupy)")
    add_quiet_arg(parser)
    add_dask_args(parser)
    parser.set_defaults(func=run)


def model_item_positions(model: Recommender, ids: object) -> np.ndarray:
    """Model item index of each id (``-1`` for ids the model does not know)."""
    known = pd.Index(model.extras_["item_ids"])
    ids = np.asarray(ids)
    if known.dtype.kind in "OU" and ids.dtype.kind not in "OU":
        ids = ids.astype(str)
    return known.get_indexer(ids)


def history_matrix(model: Recommender, inter: Interactions) -> tuple[sp.csr_matrix, int]:
    """Users × model-items history of ``inter``; also how many interactions had unknown items."""
    to_model = model_item_positions(model, inter.item_ids)
    items = to_model[inter.frame["item"].to_numpy()]
    ok = items >= 0
    users = inter.frame["user"].to_numpy()[ok]
    X = sp.csr_matrix(
        (np.ones(int(ok.sum()), dtype=np.float32), (users, items[ok])), shape=(inter.n_users, model.n_items_)
    )
    X.sum_duplicates()
    return X, int((~ok).sum())


def item_filter(
    path: str, model: Recommender, item_col: str, user_col: str, user_ids: np.ndarray | None
) -> np.ndarray | sp.csr_matrix:
    """An ``allowed_items`` / ``forbidden_items`` value from a file of item ids (and maybe users).

    Without a ``user_col`` column: model item indices for every user. With one:
    a users × items matrix over ``user_ids`` (the served users, in order).
    """
    frame = read_table(path)
    if item_col not in frame.columns:
        raise InputError(
            f"{path} has no item column {item_col!r} (columns: {', '.join(map(str, frame.columns))})"
        )
    items = model_item_positions(model, frame[item_col].to_numpy())
    if user_col not in frame.columns:
        return np.unique(items[items >= 0])
    if user_ids is None:
        raise InputError(f"{path} has per-user lists (a {user_col!r} column): give INPUT, not --items")
    users = pd.Index(user_ids).get_indexer(frame[user_col].to_numpy().astype(np.asarray(user_ids).dtype))
    ok = (items >= 0) & (users >= 0)
    return binary_matrix(users[ok], items[ok], (len(user_ids), model.n_items_), np.dtype(np.float32))


def recommendations_frame(
    model: Recommender,
    X: sp.csr_matrix,
    user_ids: np.ndarray,
    k: int,
    show_progress: bool,
    filters: dict[str, object] | None = None,
) -> pd.DataFrame:
    """Long table of user, item, rank (1 = best), score in original ids; padding (-1) rows dropped."""
    ids, scores = model.recommend(X, k=k, show_progress=show_progress, **(filters or {}))
    keep = ids >= 0
    item_ids = np.asarray(model.extras_["item_ids"])
    return pd.DataFrame(
        {
            "user": np.repeat(np.asarray(user_ids), k)[keep.ravel()],
            "item": item_ids[ids[keep]],
            "rank": np.tile(np.arange(1, k + 1, dtype=np.int32), len(ids))[keep.ravel()],
            "score": scores[keep],
        }
    )


def filters_from_args(
    args: argparse.Namespace, model: Recommender, user_ids: np.ndarray | None
) -> dict[str, object]:
    """``allowed_items`` / ``forbidden_items`` keywords from ``--allowed-items`` / ``--forbidden-items``."""
    item_col = args.item_col or saved_text(model, "item_col") or "item_id"
    user_col = args.user_col or saved_text(model, "user_col") or "user_id"
    return {
        f"{kind}_items": item_filter(path, model, item_col, user_col, user_ids)
        for kind, path in (("allowed", args.allowed_items), ("forbidden", args.forbidden_items))
        if path is not None
    }


def run(args: argparse.Namespace) -> int:
    if (args.input is None) == (args.items is None):
        raise InputError("give either INPUT (a log of users) or --items, not both or neither")
    out = check_output_path(args.out, None if wants_dask(args) else OUTPUT_SUFFIXES) if args.out else None
    model = load_saved_model(args.model_dir, backend=args.backend)
    if args.items is not None:
        items = lookup_ids(args.items, np.asarray(model.extras_["item_ids"]), "item")
        X = sp.csr_matrix(
            (np.ones(len(items), dtype=np.float32), (np.zeros(len(items), int), items)),
            shape=(1, model.n_items_),
        )
        filters = filters_from_args(args, model, None)
        frame = recommendations_frame(model, X, np.array(["new"]), args.k, False, filters)
    else:
        inter = read_interactions(
            args.input,
            args.user_col or saved_text(model, "user_col") or "user_id",
            args.item_col or saved_text(model, "item_col") or "item_id",
            args.time_col,
            args.input_format or saved_text(model, "input_format") or "auto",
        )
        X, unknown = history_matrix(model, inter)
        if unknown and not args.quiet:
            print(
                f"accel recommend: ignored {unknown:,} interactions with items the model does not know",
                file=sys.stderr,
            )
        filters = filters_from_args(args, model, inter.user_ids)
        if wants_dask(args):
            return recommend_with_dask(args, model, X, inter.user_ids, filters)
        frame = recommendations_frame(model, X, inter.user_ids, args.k, not args.quiet, filters)
    if out is None:
        print(frame.to_csv(sep="\t", index=False), end="")
    else:
        write_table(frame, out)
        if not args.quiet:
            print(f"wrote {len(frame):,} recommendations to {out}", file=sys.stderr)
    return 0
