"""``accel similar``: the items a saved model finds most similar to one item."""

from __future__ import annotations

import argparse
import json

from accel.cli._common import add_meta_arg, load_saved_model, saved_text, with_item_names
from accel.data.ids import plain_id
from accel.serving.answers import model_item_ids, similar_frame


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "similar",
        help="list the items most similar to one item",
        description="Print the --k items most similar to ITEM_ID (an original item id) under a model "
        "saved by `accel fit`, best first, as rank, item, score. Example: accel similar model/ 50 --k 5",
    )
    parser.add_argument("model_dir", metavar="MODEL_DIR", help="folder written by `accel fit`")
    parser.add_argument("item", metavar="ITEM_ID", help="an item id as it appears in the log")
    parser.add_argument("--k", type=int, default=10, help="how many items (default 10)")
    parser.add_argument("--backend", default=None, help="override the saved backend (auto, numpy, cupy)")
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON")
    add_meta_arg(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    model = load_saved_model(args.model_dir, backend=args.backend)
    frame = similar_frame(model, model_item_ids(model), args.item, k=args.k)
    frame = with_item_names(frame, args.meta, saved_text(model, "item_col") or "item_id")
    extra = list(frame.columns[3:])
    rows = [(int(r), plain_id(i), float(s), *rest) for r, i, s, *rest in frame.itertuples(False)]
    if args.json:
        print(
            json.dumps(
                [
                    {"rank": r, "item": i, "score": s, **dict(zip(extra, rest, strict=True))}
                    for r, i, s, *rest in rows
                ]
            )
        )
    else:
        print("\t".join(["rank", "item", "score", *extra]))
        for r, i, s, *rest in rows:
            print("\t".join([str(r), str(i), f"{s:.6g}", *map(str, rest)]))
    return 0
