"""The ``accel`` command line: one entry point, a module per subcommand.

Each module in :data:`SUBCOMMANDS` provides ``add_parser(subparsers)`` (which
registers its arguments and sets ``func``) and raises :class:`accel.AccelError`
for problems the user can fix; ``main`` prints those as one line and exits 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from accel.errors import AccelError

#: Subcommand modules under ``accel.cli``, in the order ``--help`` lists them.
SUBCOMMANDS: list[str] = ["info", "fit", "recommend", "evaluate", "similar", "check", "map", "bench", "tune"]


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="accel",
        description="Train, serve and benchmark EASE and KNN item-item recommenders.",
    )
    from accel import __version__

    parser.add_argument("--version", action="version", version=f"accel {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in SUBCOMMANDS:
        importlib.import_module(f"accel.cli.{name}").add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one subcommand; user errors become a one-line message and exit code 2, Ctrl-C exit 130."""
    try:
        parser = build_parser()  # imports every subcommand: Ctrl-C may land here
    except KeyboardInterrupt:
        print("accel: interrupted", file=sys.stderr)
        return 130
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except AccelError as exc:
        print(f"accel {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except (OSError, MemoryError) as exc:
        print(f"accel {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"accel {args.command}: interrupted", file=sys.stderr)
        return 130
