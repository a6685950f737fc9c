"""``--scheduler`` / ``--workers`` for ``accel recommend``: score on a Dask cluster into a folder of parts."""

from __future__ import annotations

import argparse
import sys
from typing import Any

import numpy as np
import scipy.sparse as sp

from accel.errors import InputError
from accel.serving.answers import model_item_ids


def add_dask_args(parser: argparse.ArgumentParser) -> None:
    """The options that send scoring to Dask workers."""
    group = parser.add_argument_group("Dask (score on many processes or machines)")
    where = group.add_mutually_exclusive_group()
    where.add_argument(
        "--scheduler", metavar="ADDRESS", help="a running Dask scheduler, e.g. tcp://HOST:8786"
    )
    where.add_argument("--workers", type=int, metavar="N", help="start N local Dask worker processes")
    group.add_argument("--chunk-users", type=int, metavar="N", help="users per task (default: ~64 chunks)")
    group.add_argument(
        "--overwrite", action="store_true", help="replace a different earlier run in the --out folder"
    )
    group.add_argument(
        "--timeout", type=float, default=10.0, help="seconds to wait for --scheduler (default 10)"
    )


def with_cli_hint(function: Any) -> Any:
    """``function`` with the Python advice in its errors (``overwrite=True``) given as the option."""

    def call(*args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except InputError as exc:
            if "overwrite=True" not in str(exc):
                raise
            raise InputError(str(exc).replace("overwrite=True", "--overwrite")) from None

    return call


def wants_dask(args: argparse.Namespace) -> bool:
    """Whether the command line asked for Dask workers."""
    return args.scheduler is not None or args.workers is not None


def recommend_with_dask(
    args: argparse.Namespace,
    model: Any,
    X: sp.csr_matrix,
    user_ids: np.ndarray,
    filters: dict[str, Any] | None = None,
) -> int:
    """Score ``X`` on the cluster into the ``--out`` folder (one Parquet file per chunk)."""
    from accel.distributed.client import connect, silence_dask_logs
    from accel.distributed.scoring import recommend_to_parquet

    if not args.out:
        raise InputError("with --scheduler or --workers, --out must name an output folder")
    # Workers memory-map the saved folder unless the backend was overridden here.
    source = args.model_dir if args.backend is None else model
    client = connect(args.scheduler, args.workers, timeout=args.timeout)
    try:
        manifest = with_cli_hint(recommend_to_parquet)(
            source,
            X,
            args.out,
            k=args.k,
            client=client,
            chunk_users=args.chunk_users,
            user_ids=user_ids,
            item_ids=model_item_ids(model),
            overwrite=args.overwrite,
            show_progress=not args.quiet,
            unknown_users=args.unknown_users,
            **(filters or {}),
        )
    except KeyboardInterrupt:
        silence_dask_logs()  # stopping the workers mid-task is expected now: one line, exit 130
        raise
    finally:
        client.close()
    print(  # the one result line, kept by --quiet
        f"wrote {manifest['rows_written']:,} recommendations in {manifest['chunks_written']:,} parts "
        f"to {args.out}"
        + (f" ({manifest['chunks_resumed']:,} parts kept)" if manifest["chunks_resumed"] else ""),
        file=sys.stderr,
    )
    return 0
