"""``accel tune``: search EASE's λ and ItemKNN parameters on a validation window, report the test score."""

from __future__ import annotations

import argparse

from accel.cli._common import add_dataset_args, check_output_path, dataset_from_args, is_json_with

#: Keys of the JSON ``accel tune`` writes (how an earlier result is told from someone else's file).
TUNE_KEYS = ("metric", "search", "best", "results")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "tune",
        help="tune EASE's λ and each ItemKNN similarity on a validation window",
        description="Fit each candidate on train_val and score the next (valid) window; refit the best on "
        "train and score the last (test) window. Writes JSON that `accel bench --params` reads.",
    )
    data = add_dataset_args(parser, users=5000, items=2000)
    data.add_argument(
        "--window-fraction",
        type=float,
        default=0.1,
        help="length of the valid and test windows as a share of the log's time span (default 0.1)",
    )
    search = parser.add_argument_group("search")
    search.add_argument(
        "--search",
        choices=("grid", "random", "optuna"),
        default="random",
        help="grid, seeded random sampling, or Optuna TPE if installed (default random)",
    )
    search.add_argument(
        "--trials", type=int, default=10, help="trials per model for random/optuna (default 10)"
    )
    search.add_argument(
        "--grid-points", type=int, default=3, help="values per parameter for grid (default 3)"
    )
    search.add_argument(
        "--metric", default="ndcg@10", help="what to maximise, e.g. ndcg@10, map@12, recall@20"
    )
    search.add_argument("--similarities", help="comma-separated ItemKNN similarities (default: all nine)")
    search.add_argument("--no-ease", action="store_true", help="tune only the ItemKNN similarities")
    search.add_argument("--backend", default="auto", help="EASE backend: auto, numpy or cupy")
    parser.add_argument("--out", default="tuned.json", help="JSON file for the results (default tuned.json)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from accel.bench import datasets
    from accel.bench.report import write_json
    from accel.models.knn import SIMILARITIES
    from accel.tuning import tune

    out = check_output_path(args.out, None, lambda path: is_json_with(path, TUNE_KEYS))
    dataset = dataset_from_args(args)
    similarities = SIMILARITIES
    if args.similarities:
        similarities = tuple(s.strip() for s in args.similarities.split(",") if s.strip())
    result = tune(
        datasets.tuning_splits(dataset, args.window_fraction),
        ease=not args.no_ease,
        similarities=similarities,
        search=args.search,
        n_trials=args.trials,
        metric=args.metric,
        seed=args.seed,
        grid_points=args.grid_points,
        backend=args.backend,
        show_progress=not args.quiet,
    )
    result["dataset"] = dataset.describe()
    write_json(out, result)
    print(f"{'model':<28} {'valid ' + args.metric:>16} {'test ' + args.metric:>16}  best parameters")
    for row in result["results"]:
        params = ", ".join(
            f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row["best_params"].items()
        )
        print(f"{row['model']:<28} {row['valid']:>16.4f} {row['test']:>16.4f}  {params}")
    print(f"wrote {args.out}")
    return 0
