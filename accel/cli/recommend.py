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
    is_recommendations_table,
    load_saved_model,
    read_interactions,
    saved_text,
    write_table,
)
from accel.data.interactions import Interactions, lookup_ids
from accel.distributed.cli_options import add_dask_args, recommend_with_dask, wants_dask
from accel.distributed.run_output import check_run_folder
from accel.errors import InputError
from accel.models.base import Recommender


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
    parser.add_argument("--out", metavar="FILE", help="output .parquet or .csv (default: print)")
    parser.add_argument("--backend", default=None, help="override the saved backend (auto, numpy, cupy)")
    add_quiet_arg(parser)
    add_dask_args(parser)
    parser.set_defaults(func=run)


def history_matrix(model: Recommender, inter: Interactions) -> tuple[sp.csr_matrix, int]:
    """Users × model-items history of ``inter``; also how many interactions had unknown items."""
    known = pd.Index(model.extras_["item_ids"])
    ids = inter.item_ids
    if known.dtype.kind in "OU" and np.asarray(ids).dtype.kind not in "OU":
        ids = np.asarray(ids).astype(str)
    to_model = known.get_indexer(ids)
    items = to_model[inter.frame["item"].to_numpy()]
    ok = items >= 0
    users = inter.frame["user"].to_numpy()[ok]
    X = sp.csr_matrix(
        (np.ones(int(ok.sum()), dtype=np.float32), (users, items[ok])), shape=(inter.n_users, model.n_items_)
    )
    X.sum_duplicates()
    return X, int((~ok).sum())


def recommendations_frame(
    model: Recommender, X: sp.csr_matrix, user_ids: np.ndarray, k: int, show_progress: bool
) -> pd.DataFrame:
    """Long table of user, item, rank (1 = best), score in original ids; padding (-1) rows dropped."""
    ids, scores = model.recommend(X, k=k, show_progress=show_progress)
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


def run(args: argparse.Namespace) -> int:
    if (args.input is None) == (args.items is None):
        raise InputError("give either INPUT (a log of users) or --items, not both or neither")
    out = None
    if wants_dask(args) and args.out:
        check_run_folder(args.out, args.overwrite)
    elif args.out:
        out = check_output_path(args.out, OUTPUT_SUFFIXES, is_recommendations_table)
    model = load_saved_model(args.model_dir, backend=args.backend)
    if args.items is not None:
        items = lookup_ids(args.items, np.asarray(model.extras_["item_ids"]), "item")
        X = sp.csr_matrix(
            (np.ones(len(items), dtype=np.float32), (np.zeros(len(items), int), items)),
            shape=(1, model.n_items_),
        )
        frame = recommendations_frame(model, X, np.array(["new"]), args.k, show_progress=False)
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
        if wants_dask(args):
            return recommend_with_dask(args, model, X, inter.user_ids)
        frame = recommendations_frame(model, X, inter.user_ids, args.k, show_progress=not args.quiet)
    if out is None:
        print(frame.to_csv(sep="\t", index=False), end="")
    else:
        write_table(frame, out)
        if not args.quiet:
            print(f"wrote {len(frame):,} recommendations to {out}", file=sys.stderr)
    return 0
