"""Arguments and helpers shared by the data-handling subcommands (fit, recommend, evaluate, similar)."""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from accel.atomic import atomic_file, check_writable_folder
from accel.data.ids import storable_ids
from accel.data.interactions import Interactions, read_table
from accel.data.loaders import read_movielens_ratings
from accel.errors import InputError
from accel.models.base import Recommender, load_model

#: Ids as ``accel fit`` saves them with a model (see :func:`accel.data.ids.storable_ids`).
id_array = storable_ids
INPUT_FORMATS = ("auto", "csv", "tsv", "parquet", "movielens")
OUTPUT_SUFFIXES = (".parquet", ".pq", ".csv")
#: The first columns of every table ``accel recommend`` writes.
RECOMMENDATION_COLUMNS = ("user", "item", "rank", "score")


def add_input_args(parser: argparse.ArgumentParser, defaults_from_model: bool = False) -> None:
    """INPUT's format and column names (``None`` defaults let a saved model supply them)."""
    saved = " (default: as at fit time)" if defaults_from_model else ""
    default = {"user": None, "item": None} if defaults_from_model else {"user": "user_id", "item": "item_id"}
    parser.add_argument(
        "--user-col", default=default["user"], help=f"user id column (default user_id){saved}"
    )
    parser.add_argument(
        "--item-col", default=default["item"], help=f"item id column (default item_id){saved}"
    )
    parser.add_argument("--time-col", default=None, help="timestamp column (dates or Unix seconds)")
    parser.add_argument(
        "--input-format",
        choices=INPUT_FORMATS,
        default=None if defaults_from_model else "auto",
        help="auto: by suffix (.parquet/.pq, .tsv, else CSV); movielens: a MovieLens u.data, ratings.dat "
        "or ratings.csv (or its folder), with columns user_id, item_id, rating, timestamp" + saved,
    )


def add_quiet_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-q", "--quiet", action="store_true", help="no progress bars or notes; the one result line stays"
    )


def add_meta_arg(parser: argparse.ArgumentParser) -> None:
    """``--meta``: item attributes whose name column (title, prod_name, name) is added to the output."""
    parser.add_argument(
        "--meta",
        metavar="FILE",
        help="item attributes (a CSV/TSV/Parquet with the item column, or a MovieLens folder): adds "
        "each item's title, prod_name or name",
    )


def with_item_names(frame: pd.DataFrame, meta: str | None, item_col: str) -> pd.DataFrame:
    """``frame`` with its items' names from ``meta`` as a last column (unchanged without ``meta``)."""
    if meta is None:
        return frame
    from accel.data.ids import match_ids
    from accel.plots.map_layout import NAME_COLUMNS, read_item_meta

    table = read_item_meta(meta, item_col)
    id_col = item_col if item_col in table.columns else "item_id"
    name = next((c for c in NAME_COLUMNS if c in table.columns), None)
    if id_col not in table.columns or name is None:
        raise InputError(
            f"--meta {meta} needs the item column {item_col!r} and one of {', '.join(NAME_COLUMNS)} "
            f"(columns: {', '.join(map(str, table.columns))})"
        )
    table = table.drop_duplicates(id_col)
    rows = match_ids(frame["item"].to_numpy(), table[id_col].to_numpy())
    names = table[name].to_numpy(dtype=object)
    return frame.assign(**{name: np.where(rows >= 0, names[np.maximum(rows, 0)], None)})


def add_filter_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--min-user", type=int, default=1, help="drop users with fewer interactions")
    parser.add_argument("--min-item", type=int, default=1, help="drop items with fewer interactions")


def read_log(
    path: str | os.PathLike[str],
    user_col: str = "user_id",
    item_col: str = "item_id",
    time_col: str | None = None,
    input_format: str = "auto",
) -> tuple[Interactions, int]:
    """The log at ``path`` in ``input_format`` (MovieLens logs are timed by default), and how many
    repeated (user, item) rows were dropped from it."""
    if input_format == "movielens":
        if not Path(path).exists():
            raise InputError(f"input {path} does not exist")
        frame = read_movielens_ratings(path)
        time_col = time_col or "timestamp"
    else:
        frame = read_table(path, input_format, id_cols=(user_col, item_col))
    inter = Interactions.from_frame(frame, user_col=user_col, item_col=item_col, time_col=time_col)
    return inter, len(frame) - len(inter)


def repeats_note(dropped: int) -> str:
    """`` (N repeated (user, item) rows dropped)`` for a result line, or nothing."""
    return f" ({dropped:,} repeated (user, item) rows dropped)" if dropped else ""


def apply_filters(inter: Interactions, args: argparse.Namespace) -> Interactions:
    if args.min_user > 1 or args.min_item > 1:
        return inter.filter(min_user=args.min_user, min_item=args.min_item)
    return inter


def check_output_path(
    path: str | os.PathLike[str],
    suffixes: tuple[str, ...] | None,
    written_by_accel: Callable[[Path], bool],
) -> Path:
    """Fail before any work when ``path`` cannot be written (missing or read-only folder, bad suffix).

    Every output file of every command goes through here: an existing file is
    replaced only when ``written_by_accel`` says accel wrote it; anything else is
    refused and left untouched.
    """
    path = Path(path)
    if suffixes is not None and path.suffix.lower() not in suffixes:
        raise InputError(f"output {path} must end in {', '.join(suffixes)}")
    check_writable_folder(path.parent, path)
    if path.is_dir():
        raise InputError(f"cannot write {path}: it is a folder")
    if path.exists() and not written_by_accel(path):
        raise InputError(
            f"refusing to replace {path}: accel did not write it; remove it or choose another name"
        )
    return path


def table_columns(path: Path) -> list[str]:
    """The column names of a Parquet or CSV table (empty when it cannot be read as one)."""
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            import pyarrow.parquet as pq

            return list(pq.read_schema(path).names)
        with open(path, encoding="utf-8") as f:
            return f.readline().rstrip("\r\n").split(",")
    except Exception:
        return []


def is_recommendations_table(path: Path) -> bool:
    """Whether ``path`` is a table ``accel recommend`` wrote (its columns start user, item, rank, score)."""
    return table_columns(path)[: len(RECOMMENDATION_COLUMNS)] == list(RECOMMENDATION_COLUMNS)


def is_coordinates_table(path: Path) -> bool:
    """Whether ``path`` is a table ``accel map --coords`` wrote (its columns start item, x, y)."""
    return table_columns(path)[:3] == ["item", "x", "y"]


def is_json_with(path: Path, keys: tuple[str, ...]) -> bool:
    """Whether ``path`` is a JSON object holding every one of ``keys`` (how accel's reports are known)."""
    try:
        payload = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    return isinstance(payload, dict) and all(key in payload for key in keys)


def write_table(frame: pd.DataFrame, path: Path) -> None:
    """Write ``frame`` as Parquet or CSV (by suffix), atomically."""
    with atomic_file(path) as tmp:
        if path.suffix.lower() in (".parquet", ".pq"):
            frame.to_parquet(tmp, index=False)
        else:
            frame.to_csv(tmp, index=False)


def check_model_dir(path: str | os.PathLike[str]) -> None:
    """Raise :class:`InputError` unless MODEL_DIR ``path`` is an existing folder."""
    if Path(path).exists() and not Path(path).is_dir():
        raise InputError(f"{path} is a file; MODEL_DIR is the folder `accel fit --out` wrote")
    if not Path(path).is_dir():
        raise InputError(f"model folder {path} does not exist")


def load_saved_model(path: str | os.PathLike[str], backend: str | None = None) -> Recommender:
    """A model saved by ``accel fit`` (one that carries its item ids)."""
    check_model_dir(path)
    model = load_model(path, backend=backend)
    if "item_ids" not in getattr(model, "extras_", {}):
        raise InputError(f"{path} was not saved by `accel fit`: it has no item ids")
    return model


def saved_text(model: Recommender, name: str) -> str | None:
    """A string kept by ``accel fit`` in the model's extras (``None`` when absent or empty)."""
    value = model.extras_.get(name)
    return str(value[()]) if value is not None and str(value[()]) else None


def add_dataset_args(parser: argparse.ArgumentParser, users: int, items: int) -> argparse._ArgumentGroup:
    """The benchmark data options (synthetic by default, or MovieLens, or a log); returns the group."""
    data = parser.add_argument_group("data (default: a synthetic log)")
    data.add_argument("--users", type=int, default=users, help=f"synthetic users (default {users})")
    data.add_argument("--items", type=int, default=items, help=f"synthetic items (default {items})")
    data.add_argument(
        "--seed", type=int, default=0, help="random seed (synthetic data and any random search)"
    )
    data.add_argument("--movielens", metavar="DIR", help="a MovieLens folder with u.data (e.g. ml-100k)")
    data.add_argument("--log", metavar="FILE", help="a CSV/TSV/Parquet interaction log with times")
    data.add_argument("--user-col", default="user_id", help="user column of --log")
    data.add_argument("--item-col", default="item_id", help="item column of --log")
    data.add_argument("--time-col", default="timestamp", help="time column of --log")
    return data


def dataset_from_args(args: argparse.Namespace, users: int | None = None, items: int | None = None):
    """The :class:`accel.bench.datasets.Dataset` the options of :func:`add_dataset_args` name."""
    from accel.bench import datasets

    if args.movielens and args.log:
        raise InputError("give either --movielens or --log, not both")
    if args.movielens:
        return datasets.movielens(args.movielens)
    if args.log:
        return datasets.log_file(args.log, args.user_col, args.item_col, args.time_col)
    return datasets.synthetic(users or args.users, items or args.items, seed=args.seed)
