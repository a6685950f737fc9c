"""``accel map``: lay a saved model's items out in 2-D (UMAP of their fingerprints) and draw them."""

from __future__ import annotations

import argparse
import sys

from accel.cli._common import (
    OUTPUT_SUFFIXES,
    add_quiet_arg,
    check_output_path,
    is_coordinates_table,
    load_saved_model,
    write_table,
)
from accel.plots.draw import MAP_SUFFIXES, drawn_by_accel
from accel.plots.map_layout import LAYOUTS, MAX_ITEMS


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "map",
        help="draw a 2-D map of a saved model's items, coloured by an item attribute",
        description="Lay out the items of an EASE or ItemKNN model saved by `accel fit` in 2-D (UMAP of each "
        "item's fingerprint: its column of EASE's B or its row of the KNN similarity, cosine) and draw "
        "them to --out (.png, .svg, .pdf, or .html to hover over items), coloured by a --meta column. "
        "Reports how often an item's 10 nearest neighbours on the map share its label, against "
        "shuffled labels. Example: accel map model/ --meta ml-100k/ --out map.png --coords map.csv",
    )
    parser.add_argument("model_dir", metavar="MODEL_DIR", help="folder written by `accel fit`")
    parser.add_argument("--out", required=True, help=f"the picture to write ({', '.join(MAP_SUFFIXES)})")
    parser.add_argument(
        "--meta",
        metavar="FILE",
        help="item attributes: a CSV/TSV/Parquet table, or a MovieLens folder (titles and genres)",
    )
    parser.add_argument(
        "--item-col", help="id column of --meta (default: the model's item column, else item_id)"
    )
    parser.add_argument(
        "--color-by",
        metavar="COLUMN",
        help="the --meta column to colour by; 'a|b' values hold several labels "
        "(default: the first of genres, genre, index_group_name, category)",
    )
    parser.add_argument(
        "--coords", metavar="FILE", help="also write item, x, y (and attributes) to .parquet or .csv"
    )
    parser.add_argument(
        "--sample",
        type=int,
        default=MAX_ITEMS,
        help=f"map this many random items of a larger catalogue; 0 maps all (default {MAX_ITEMS:,})",
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="random seed of the sample and layout (default 0)"
    )
    parser.add_argument(
        "--layout",
        choices=LAYOUTS,
        default="auto",
        help="umap (umap-learn: pip install umap-learn), cuml (GPU), svd (linear, no extra), "
        "auto: cuml on a GPU, else umap (default)",
    )
    parser.add_argument("--neighbors", type=int, default=15, help="UMAP's n_neighbors (default 15)")
    parser.add_argument("--backend", default=None, help="override the saved backend (auto, numpy, cupy)")
    add_quiet_arg(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from accel.plots import item_map

    out = check_output_path(args.out, MAP_SUFFIXES, drawn_by_accel)
    coords = check_output_path(args.coords, OUTPUT_SUFFIXES, is_coordinates_table) if args.coords else None
    model = load_saved_model(args.model_dir, backend=args.backend)
    table = item_map(
        model,
        args.meta,
        item_col=args.item_col,
        color_by=args.color_by,
        sample=args.sample or None,
        seed=args.seed,
        layout=args.layout,
        n_neighbors=args.neighbors,
        path=out,
        show_progress=not args.quiet,
    )
    if coords is not None:
        write_table(table, coords)
    if not args.quiet:
        attrs = table.attrs
        print(
            f"mapped {len(table):,} items with {attrs['layout']} in {attrs['seconds']:.1f} s", file=sys.stderr
        )
        purity = attrs.get("purity")
        if purity:
            chance = f"{purity['shuffled']:.3f} ± {purity['shuffled_std']:.3f}"
            print(
                f"{purity['k']} nearest neighbours sharing a {attrs['color_by']} label: "
                f"{purity['purity']:.3f} (shuffled labels: {chance})",
                file=sys.stderr,
            )
    print(f"wrote {out}" + (f" and {coords}" if coords else ""), file=sys.stderr)  # kept by --quiet
    return 0
