"""``accel evaluate``: split a log, fit EASE and TopPopular, and compare their top-k metrics."""

from __future__ import annotations

import argparse
import functools
import json
import sys
import time

import numpy as np

from accel.backends import get_backend
from accel.cli._common import (
    add_filter_args,
    add_input_args,
    add_quiet_arg,
    apply_filters,
    read_log,
    repeats_note,
)
from accel.cli._models import DEFAULT_L2, add_model_args, model_from_args
from accel.data.splits import Split, chronological_splits, split_by_fraction
from accel.errors import InputError
from accel.metrics import METRICS, evaluate_split
from accel.validation import check_k


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="compare EASE (or a KNN model) with TopPopular on a held-out split",
        description="Split INPUT, fit EASE (or --model itemknn/userknn) and TopPopular on the train "
        "side and report precision, recall, nDCG, MAP, hit rate and coverage at each --k on the test "
        "side (cold-start users and items dropped). The default chronological split uses "
        "back-to-back --window windows: fit on train_val and score the next window (valid; the best "
        "of several --l2 values is picked there), "
        "then refit on train and score the last window (test). --split fraction holds out "
        "--test-fraction of each user's interactions instead (test only). Example: accel evaluate "
        "log.parquet --time-col t_dat --window 180D --l2 100 500 1000 --k 12",
    )
    parser.add_argument("input", metavar="INPUT", help="interaction log (.csv, .tsv, .parquet)")
    add_input_args(parser)
    add_filter_args(parser)
    parser.add_argument("--split", choices=("chronological", "fraction"), default="chronological")
    parser.add_argument(
        "--window",
        default="180D",
        help="predict window length with its unit: 180D days, 12h hours (default 180D)",
    )
    parser.add_argument(
        "--train-window",
        default=None,
        help="train window length, or 'all' for all earlier history (default: --window)",
    )
    parser.add_argument("--test-fraction", type=float, default=0.2, help="for --split fraction (default 0.2)")
    parser.add_argument("--seed", type=int, default=0, help="for --split fraction (default 0)")
    add_model_args(parser)
    parser.add_argument(
        "--l2",
        type=float,
        nargs="+",
        help=f"EASE λ value(s) (default {DEFAULT_L2:g})",
    )
    parser.add_argument("--k", type=int, nargs="+", default=[10], help="cut-off(s) (default 10)")
    parser.add_argument(
        "--metric",
        default=None,
        help="what picks the best --l2 on valid, e.g. map@12 or recall@20 (default: ndcg at the largest --k)",
    )
    parser.add_argument("--backend", default="auto", help="auto, numpy or cupy (default auto)")
    parser.add_argument("--dtype", default="float32", help="float32 or float64 (default float32)")
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON")
    add_quiet_arg(parser)
    parser.set_defaults(func=run)


@functools.cache
def _matmul_rate(dtype: str) -> float:
    """This machine's dense matrix-product rate (flop/s) in ``dtype``, measured once (a few ms)."""
    a = np.random.default_rng(0).standard_normal((512, 512)).astype(dtype)
    a @ a
    start = time.perf_counter()
    a @ a
    return 2 * 512**3 / max(time.perf_counter() - start, 1e-6)


def rough_fit_seconds(n_items: int, dtype: str) -> float:
    """A rough EASE fit time on the CPU: Cholesky and inverse take about 2·n³ flop at the matmul rate."""
    return 2.0 * float(n_items) ** 3 / _matmul_rate(dtype)


def _score(name: str, l2: float | None, split: Split, args: argparse.Namespace) -> dict[str, float]:
    model = model_from_args(args, l2=l2, name=name)
    if not args.quiet:
        n_items = split.train.shape[1]
        estimate = ""
        if name == "ease" and get_backend(args.backend).name == "numpy":
            estimate = f" (fit roughly {rough_fit_seconds(n_items, args.dtype):,.0f} s on this CPU)"
        print(
            f"accel evaluate: fitting and scoring {type(model).__name__}"
            + (f"(l2={l2:g})" if l2 is not None and name == "ease" else "")
            + f" on {n_items:,} items, {len(split.test_users):,} test users{estimate}",
            file=sys.stderr,
        )
    return evaluate_split(model, split, ks=args.k, show_progress=not args.quiet)


def selection_metric(args: argparse.Namespace) -> str:
    """The ``metric@k`` that picks λ on the validation split (checked before any work)."""
    metric = args.metric or f"ndcg@{max(args.k)}"
    name, _, k = metric.partition("@")
    if name not in METRICS or not k.isdigit() or int(k) not in args.k:
        raise InputError(
            f"--metric {metric!r} must be one of {', '.join(METRICS)} at one of the --k values "
            f"({', '.join(map(str, args.k))}), e.g. {METRICS[2]}@{args.k[0]}"
        )
    return metric


def _label(args: argparse.Namespace) -> str:
    """The row name of a non-EASE ``--model`` (its class and similarity)."""
    model = model_from_args(args)
    similarity = getattr(model, "similarity", None)
    return f"{type(model).__name__}({similarity})" if similarity else type(model).__name__


def run(args: argparse.Namespace) -> int:
    if any(k < 1 for k in args.k):
        raise InputError(f"--k must be positive, got {args.k}")
    if args.model != "ease" and args.l2:
        raise InputError(f"--l2 values are searched for EASE only, not --model {args.model}")
    label = None if args.model == "ease" else _label(args)
    target = selection_metric(args)
    l2s = args.l2 or [DEFAULT_L2]
    inter, dropped = read_log(args.input, args.user_col, args.item_col, args.time_col, args.input_format)
    inter = apply_filters(inter, args)
    for k in args.k:
        check_k(k, inter.n_items)
    if args.split == "chronological":
        if not inter.has_time:
            raise InputError("a chronological split needs --time-col (or use --split fraction)")
        chrono = chronological_splits(inter, window=args.window, train_window=args.train_window)
        splits = {"valid": chrono.valid, "test": chrono.test}
    else:
        order = "time" if inter.has_time else "random"
        splits = {
            "test": split_by_fraction(inter, test_fraction=args.test_fraction, order=order, seed=args.seed)
        }
    results: dict[str, dict[str, dict[str, float]]] = {}
    best_l2 = l2s[0]
    test_l2s = l2s
    for name, split in splits.items():
        if label is not None:
            rows = {label: _score(args.model, None, split, args)}
        else:
            rows = {f"EASE(l2={l2:g})": _score("ease", l2, split, args) for l2 in test_l2s}
            if name == "valid":
                best_l2 = max(l2s, key=lambda l2: rows[f"EASE(l2={l2:g})"][target])
                test_l2s = [best_l2]
        if args.model != "toppop":
            rows["TopPopular"] = _score("toppop", None, split, args)
        results[name] = rows
    report = {
        "input": str(args.input),
        "n_users": inter.n_users,
        "n_items": inter.n_items,
        "n_interactions": len(inter),
        "repeats_dropped": dropped,
        "splits": {name: split.describe() for name, split in splits.items()},
        "best_l2": best_l2 if "valid" in splits and label is None else None,
        "selected_by": target if "valid" in splits and label is None else None,
        "results": results,
    }
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(format_report(report, args.k))
    if not args.quiet and not args.json:
        print("(higher is better; averages over warm test users)", file=sys.stderr)
    return 0


def format_report(report: dict, ks: list[int]) -> str:
    """The results as an aligned plain-text table, one row per split and model."""
    columns = [f"{m}@{k}" for k in ks for m in METRICS]
    lines = [
        f"{report['n_interactions']:,} interactions{repeats_note(report['repeats_dropped'])}, "
        f"{report['n_users']:,} users, {report['n_items']:,} items"
    ]
    lines += [f"{name}: {text}" for name, text in report["splits"].items()]
    if report["best_l2"] is not None:
        lines.append(f"best l2 on valid: {report['best_l2']:g} (by {report['selected_by']})")
    width = max(len(model) for rows in report["results"].values() for model in rows)
    lines.append(f"{'split':<6} {'model':<{width}} " + " ".join(f"{c:>12}" for c in columns))
    for split, rows in report["results"].items():
        for model, values in rows.items():
            lines.append(f"{split:<6} {model:<{width}} " + " ".join(f"{values[c]:>12.4f}" for c in columns))
    return "\n".join(lines)
