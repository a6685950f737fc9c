"""``accel bench``: every model, each in a fresh subprocess, on synthetic, MovieLens or your own log."""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import TypedDict

from accel.atomic import check_writable_folder
from accel.cli._common import add_dataset_args, dataset_from_args, is_json_with
from accel.errors import InputError, format_bytes


class QuickSizes(TypedDict):
    """The sizes of ``--quick``: synthetic users and items, and the sweep's catalogues and users."""

    users: int
    items: int
    sweep_items: tuple[int, ...]
    sweep_users: int


#: ``--quick``: a small synthetic dataset and a three-point sweep, about a minute on 2 cores.
QUICK: QuickSizes = {"users": 5000, "items": 2000, "sweep_items": (1000, 2000, 4000), "sweep_users": 5000}
_SIZE_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def parse_size(text: str) -> int:
    """``"8G"``, ``"8GiB"``, ``"512M"`` or plain bytes as an integer number of bytes."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*", text.lower())
    if not match:
        raise InputError(f"cannot read memory size {text!r}; write e.g. 8G, 512M or 1073741824")
    return int(float(match.group(1)) * _SIZE_UNITS[match.group(2)])


def parse_int_list(text: str) -> list[int]:
    """``"2000,4000,8k"`` as ``[2000, 4000, 8000]``."""
    values = []
    for part in text.split(","):
        part = part.strip().lower()
        scale = 1000 if part.endswith("k") else 1
        try:
            value = int(float(part[:-1] if scale > 1 else part) * scale)
        except ValueError:
            raise InputError(f"cannot read {part!r} in {text!r} as a number of items") from None
        if value < 2:
            raise InputError(f"catalogue sizes must be at least 2, got {value}")
        values.append(value)
    return values


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "bench",
        help="benchmark EASE, TopPopular and every ItemKNN similarity",
        description="Fit and score every model in a fresh subprocess (fit seconds, recommend-all seconds, "
        "peak host RSS and GPU pool, P@10, R@20, NDCG@10, MAP@12, coverage), optionally sweep the "
        "catalogue size, and write results.json, results.md and PNG plots to --out.",
    )
    data = add_dataset_args(parser, users=100_000, items=10_000)
    data.add_argument(
        "--quick",
        action="store_true",
        help=f"{QUICK['users']:,} × {QUICK['items']:,} synthetic plus a sweep over "
        f"{', '.join(map(str, QUICK['sweep_items']))} items (about a minute on 2 cores)",
    )
    data.add_argument(
        "--test-fraction",
        type=float,
        default=0.2,
        help="latest share of the log (by time) held out for testing (default 0.2)",
    )
    models = parser.add_argument_group("models")
    models.add_argument("--similarities", help="comma-separated ItemKNN similarities (default: all nine)")
    models.add_argument("--params", metavar="JSON", help="tuned parameters written by `accel tune`")
    models.add_argument("--workers", type=int, help="local Dask workers for the Dask-scored EASE row")
    models.add_argument("--scheduler", metavar="ADDR", help="Dask scheduler for the Dask-scored EASE row")
    sweep = parser.add_argument_group("scaling sweep")
    sweep.add_argument("--sweep", action="store_true", help="also run the scaling sweep")
    sweep.add_argument("--sweep-only", action="store_true", help="run only the scaling sweep")
    sweep.add_argument("--sweep-items", help="comma-separated catalogue sizes (default 2k,4k,...,64k)")
    sweep.add_argument("--sweep-users", type=int, help="synthetic users at every sweep size (default 20000)")
    run = parser.add_argument_group("running")
    run.add_argument("--out", default="bench-results", help="folder for the results (default bench-results)")
    run.add_argument(
        "--timeout", type=float, default=3600.0, help="seconds one model may take (default 3600)"
    )
    run.add_argument(
        "--memory-limit",
        metavar="SIZE",
        help="treat at most this much memory as free, e.g. 8G (to plan for a smaller machine)",
    )
    run.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    parser.set_defaults(func=run_command)


def check_results_folder(out: Path) -> None:
    """Fail before any work when ``out`` is a file or holds results that ``accel bench`` did not write."""
    from accel.bench.plots import PLOT_NAMES
    from accel.bench.suite import RESULTS_JSON, RESULTS_MD
    from accel.plots.draw import drawn_by_accel

    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out} is a file; give a folder for the results")
    existing = next(folder for folder in (out, *out.absolute().parents) if folder.exists())
    if not existing.is_dir():
        raise InputError(f"--out {out}: {existing} is a file, not a folder")
    check_writable_folder(existing, out)
    ours = is_json_with(out / RESULTS_JSON, ("machine", "wall_s"))
    for name in (RESULTS_JSON, RESULTS_MD, *PLOT_NAMES):
        owned = drawn_by_accel(out / name) if name in PLOT_NAMES else ours
        if (out / name).exists() and not owned:
            raise InputError(
                f"refusing to replace {out / name}: accel did not write it; choose another --out folder"
            )


def _dataset(args: argparse.Namespace):
    if args.quick:
        return dataset_from_args(args, users=QUICK["users"], items=QUICK["items"])
    return dataset_from_args(args)


def run_command(args: argparse.Namespace) -> int:
    from accel.bench import DEFAULT_SWEEP_ITEMS, default_specs, load_tuned_params, run_benchmark
    from accel.bench.sweep import DEFAULT_SWEEP_USERS, sweep_specs
    from accel.models.knn import SIMILARITIES

    similarities = SIMILARITIES
    if args.similarities:
        similarities = tuple(s.strip() for s in args.similarities.split(",") if s.strip())
        unknown = [s for s in similarities if s not in SIMILARITIES]
        if unknown:
            raise InputError(f"unknown similarity {unknown[0]!r}; choose from {', '.join(SIMILARITIES)}")
    if args.workers is not None and args.scheduler:
        raise InputError("give either --workers or --scheduler, not both")
    if args.timeout <= 0:
        raise InputError(f"--timeout must be positive, got {args.timeout}")
    check_results_folder(Path(args.out))
    tuned = load_tuned_params(args.params)
    memory_limit = parse_size(args.memory_limit) if args.memory_limit else None

    sweep_items: list[int] = []
    if args.sweep_items:
        sweep_items = parse_int_list(args.sweep_items)
    elif args.quick:
        sweep_items = list(QUICK["sweep_items"])
    elif args.sweep or args.sweep_only:
        sweep_items = list(DEFAULT_SWEEP_ITEMS)
    sweep_users = args.sweep_users or (QUICK["sweep_users"] if args.quick else DEFAULT_SWEEP_USERS)

    dataset = None if args.sweep_only else _dataset(args)
    payload = run_benchmark(
        dataset,
        default_specs(tuned, similarities),
        Path(args.out),
        test_fraction=args.test_fraction,
        sweep_items=sweep_items,
        sweep_users=sweep_users,
        sweep_specs=sweep_specs(tuned),
        timeout=args.timeout,
        memory_limit=memory_limit,
        workers=args.workers,
        scheduler=args.scheduler,
        dask_threads=args.quick and args.workers is None and args.scheduler is None,
        show_progress=not args.quiet,
    )
    rows = payload.get("results", []) + payload.get("sweep", [])
    bad = [r for r in rows if r["status"] != "ok"]
    print(f"{len(rows)} runs ({len(bad)} not ok) in {payload['wall_s']:.0f} s; wrote:")
    for path in payload["files"]:
        print(f"  {path}")
    if memory_limit:
        print(f"memory treated as at most {format_bytes(memory_limit)}")
    return 0
