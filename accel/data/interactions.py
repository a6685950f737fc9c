"""An interaction log with fixed user and item id mappings, turned into sparse matrices on demand."""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import scipy.sparse as sp
from numpy.typing import ArrayLike

from accel.data.ids import check_id_column, lookup_ids
from accel.errors import InputError
from accel.validation import binary_matrix

if TYPE_CHECKING:
    from accel.models.base import Recommender  # the model passed in brings its answers: no import
    from accel.serving.popular_fallback import UnknownItems, UnknownUsers


def parse_times(values: pd.Series, column: str) -> pd.Series:
    """Datetimes from datetimes, dates as text, or Unix seconds; :class:`InputError` for the unparseable.

    Text is read as ISO 8601 (any precision, and precisions may differ within the
    column), else in the one format pandas infers from the first value. A column
    that would need a guess per value (pandas' dateutil fallback, which takes
    ``"t40"`` for the year 2040) is refused, not half-guessed. Times with differing
    UTC offsets, e.g. across a daylight-saving change, are converted to UTC (a time
    without an offset among them is taken as UTC).
    """
    if values.isna().any():
        raise InputError(f"time column {column!r} has missing values")
    if pd.api.types.is_datetime64_any_dtype(values):
        return values
    if pd.api.types.is_numeric_dtype(values):
        return pd.to_datetime(values, unit="s")
    iso = _text_times(values, "ISO8601")
    if iso is not None and iso.notna().all():
        return iso
    inferred = _text_times(values, None)
    if inferred is not None and inferred.notna().all():
        return inferred
    # Name a value the inferred format (else ISO 8601) could not read.
    parsed = inferred if inferred is not None else iso
    example = values.iloc[0] if parsed is None else values[parsed.isna()].iloc[0]
    alone = _text_times(pd.Series([example]), None)
    shape = re.compile(r"\d")  # "2024/01/03" and "2024-01-02" differ in shape, "13/02" and "01/02" do not
    other_shape = shape.sub("9", str(example)) != shape.sub("9", str(values.iloc[0]))
    if other_shape and parsed is not None and alone is not None and alone.notna().all():
        raise InputError(
            f"time column {column!r} mixes date formats: {example!r} is not written as "
            f"{values.iloc[0]!r} is; write every time in one format (ISO 8601 such as 2024-01-03 "
            "is always read)"
        )
    raise InputError(f"time column {column!r} holds a value that is not a date: {example!r}")


def _text_times(values: pd.Series, date_format: str | None) -> pd.Series | None:
    """``values`` read as dates in ``date_format`` (``None``: inferred from the first value), NaT where
    one does not fit; ``None`` when pandas would guess value by value."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # "Could not infer format": per-value guessing
        for utc in (False, True):  # differing UTC offsets need utc=True
            try:
                return pd.to_datetime(values, errors="coerce", format=date_format, utc=utc)
            except UserWarning:
                return None
            except (ValueError, TypeError):
                continue
    return None


class Interactions:
    """A de-duplicated log of (user, item[, time]) with fixed id ↔ index mappings.

    ``user_ids[u]`` and ``item_ids[i]`` are the original ids of user index ``u``
    and item index ``i``. ``frame`` has integer ``user`` and ``item`` columns
    (and ``time`` when the log has times). Subsets made by :meth:`select` or
    :meth:`between` keep the mappings, so their matrices all have shape
    ``(n_users, n_items)`` with the same meaning; :meth:`filter` builds new,
    smaller mappings.
    """

    def __init__(self, frame: pd.DataFrame, user_ids: np.ndarray, item_ids: np.ndarray) -> None:
        self.frame = frame
        self.user_ids = user_ids
        self.item_ids = item_ids

    # ---- construction -----------------------------------------------------------
    @classmethod
    def from_frame(
        cls,
        df: pd.DataFrame,
        user_col: str = "user_id",
        item_col: str = "item_id",
        time_col: str | None = None,
    ) -> Interactions:
        """Build from a DataFrame; repeats of a (user, item) pair keep the first (earliest) one."""
        columns = [user_col, item_col] + ([time_col] if time_col else [])
        missing = [c for c in columns if c not in df.columns]
        if missing:
            raise InputError(
                f"column {missing[0]!r} not found; the input has columns {', '.join(map(str, df.columns))}"
            )
        if len(df) == 0:
            raise InputError("the interaction log is empty")
        users, user_ids = pd.factorize(check_id_column(df[user_col], user_col), sort=True)
        items, item_ids = pd.factorize(check_id_column(df[item_col], item_col), sort=True)
        data = {"user": users.astype(np.int32), "item": items.astype(np.int32)}
        if time_col:
            data["time"] = parse_times(df[time_col], time_col).to_numpy()
        frame = pd.DataFrame(data)
        if time_col:
            frame = frame.sort_values("time", kind="stable")
        frame = frame.drop_duplicates(["user", "item"], keep="first").reset_index(drop=True)
        return cls(frame, np.asarray(user_ids), np.asarray(item_ids))

    @classmethod
    def from_csv(
        cls,
        path: str | os.PathLike[str],
        user_col: str = "user_id",
        item_col: str = "item_id",
        time_col: str | None = None,
        **read_csv_kwargs: object,
    ) -> Interactions:
        """Read the named columns of a CSV file (extra ``read_csv`` arguments pass through).

        The id columns are read as text, so ``"042"`` and ``"42"`` stay two ids; pass
        ``dtype={user_col: "int64"}`` (for example) to read them otherwise.
        """
        return cls.from_frame(
            read_table(path, "csv", id_cols=(user_col, item_col), **read_csv_kwargs),
            user_col=user_col,
            item_col=item_col,
            time_col=time_col,
        )

    @classmethod
    def from_parquet(
        cls,
        path: str | os.PathLike[str],
        user_col: str = "user_id",
        item_col: str = "item_id",
        time_col: str | None = None,
    ) -> Interactions:
        """Read the named columns of a Parquet file."""
        return cls.from_frame(
            read_table(path, "parquet"), user_col=user_col, item_col=item_col, time_col=time_col
        )

    # ---- sizes and mappings -----------------------------------------------------------
    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    @property
    def has_time(self) -> bool:
        return "time" in self.frame.columns

    def __len__(self) -> int:
        return len(self.frame)

    def __repr__(self) -> str:
        return (
            f"<Interactions {len(self):,} interactions, {self.n_users:,} users × {self.n_items:,} items"
            f"{', timed' if self.has_time else ''}>"
        )

    def user_index(self, ids: object) -> np.ndarray:
        """Indices of original user ``ids``; raises :class:`InputError` naming an unknown id."""
        return lookup_ids(ids, self.user_ids, "user")

    def item_index(self, ids: object) -> np.ndarray:
        """Indices of original item ``ids``; raises :class:`InputError` naming an unknown id."""
        return lookup_ids(ids, self.item_ids, "item")

    # ---- recommendations in this log's ids -------------------------------------------------
    def recommend(
        self,
        model: Recommender,
        users: object = None,
        k: int = 10,
        exclude_seen: bool = True,
        unknown_users: UnknownUsers = "popular",
        show_progress: bool = False,
        *,
        allowed_items: object = None,
        forbidden_items: object = None,
    ) -> pd.DataFrame:
        """Top ``k`` for ``users`` (ids of this log; default all) from their history in this log.

        Returns a DataFrame ``user, item, rank, score, source`` in the original ids.
        The model's items are matched by id when it knows them (fitted on an
        ``Interactions`` or by ``accel fit``), so the model may come from another
        log; items it does not know are left out of the histories. A user left with
        no known items gets the most popular items (``source == "popular"``) unless
        ``unknown_users`` is ``"skip"`` (no rows) or ``"error"``. An id of ``users``
        that is not in this log raises :class:`InputError`; ``"skip"`` leaves it out.

        ``allowed_items`` / ``forbidden_items`` restrict the candidates by id: a
        list of item ids for every user, or a DataFrame with columns ``user`` and
        ``item`` (e.g. an earlier result) of each user's own items; a user absent
        from a per-user allowed list gets nothing. Ids the model or ``users`` lack
        are ignored.
        """
        return model.in_log(self).recommend(
            users, k, exclude_seen, unknown_users, show_progress, allowed_items, forbidden_items
        )

    def recommend_from_items(
        self,
        model: Recommender,
        items: ArrayLike | None,
        k: int = 10,
        exclude_seen: bool = True,
        unknown_users: UnknownUsers = "popular",
        *,
        allowed_items: object = None,
        forbidden_items: object = None,
        unknown_items: UnknownItems = "drop",
    ) -> pd.DataFrame:
        """Top ``k`` (``item, rank, score, source``) for a new user who has ``items`` (item ids).

        Ids the model does not know are dropped with an :class:`~accel.errors.UnknownItemsWarning`
        that counts them (``unknown_items="error"`` refuses them); a list with no known
        items gets the popular items as ``unknown_users`` says. ``allowed_items`` /
        ``forbidden_items`` are lists of item ids (unknown ones are ignored).
        """
        return model.in_log(self).recommend_from_items(
            items, k, exclude_seen, unknown_users, allowed_items, forbidden_items, unknown_items
        )

    def similar_items(self, model: Recommender, item: ArrayLike, k: int = 10) -> pd.DataFrame:
        """The ``k`` items most similar to item id ``item`` as ``rank, item, score``."""
        return model.in_log(self).similar_items(item, k)

    # ---- matrices -------------------------------------------------------------------
    def matrix(self, rows: np.ndarray | None = None) -> sp.csr_matrix:
        """Binary float32 CSR of shape ``(n_users, n_items)`` from all of the log or selected ``rows``.

        ``rows`` picks rows of :attr:`frame` (a boolean mask or integer positions).
        """
        frame = self.frame if rows is None else self._rows(rows)
        return binary_matrix(frame["user"].to_numpy(), frame["item"].to_numpy(), (self.n_users, self.n_items))

    # ---- subsets --------------------------------------------------------------------
    def select(self, rows: np.ndarray) -> Interactions:
        """The interactions at ``rows`` (mask or positions of :attr:`frame`), same mappings."""
        return Interactions(self._rows(rows).reset_index(drop=True), self.user_ids, self.item_ids)

    def _rows(self, rows: np.ndarray) -> pd.DataFrame:
        rows = np.asarray(rows)
        if rows.dtype == bool:
            if rows.shape != (len(self.frame),):
                raise InputError(f"row mask has shape {rows.shape}, the log has {len(self.frame)} rows")
            return self.frame[rows]
        return self.frame.iloc[rows]

    def between(self, start: object = None, end: object = None) -> Interactions:
        """Interactions with ``start <= time < end`` (either bound optional), same mappings."""
        if not self.has_time:
            raise InputError("this log has no times: pass a time column to split or window it by time")
        times = self.frame["time"]
        mask = np.ones(len(times), dtype=bool)
        if start is not None:
            mask &= (times >= to_timestamp(start, "start")).to_numpy()
        if end is not None:
            mask &= (times < to_timestamp(end, "end")).to_numpy()
        return self.select(mask)

    def filter(self, min_user: int = 1, min_item: int = 1, iterate: bool = False) -> Interactions:
        """Keep users with ≥ ``min_user`` and items with ≥ ``min_item`` interactions, re-indexed.

        With ``iterate`` the two filters repeat until both hold at once (a k-core).
        Raises :class:`InputError` when nothing is left.
        """
        frame = self.frame
        while True:
            user_counts = np.bincount(frame["user"].to_numpy(), minlength=self.n_users)
            item_counts = np.bincount(frame["item"].to_numpy(), minlength=self.n_items)
            keep = (user_counts[frame["user"].to_numpy()] >= min_user) & (
                item_counts[frame["item"].to_numpy()] >= min_item
            )
            frame = frame[keep]
            if not iterate or keep.all():
                break
        if len(frame) == 0:
            raise InputError(
                f"no interactions left after filtering (min_user={min_user}, min_item={min_item})"
            )
        users, user_pos = np.unique(frame["user"].to_numpy(), return_inverse=True)
        items, item_pos = np.unique(frame["item"].to_numpy(), return_inverse=True)
        out = frame.assign(user=user_pos.astype(np.int32), item=item_pos.astype(np.int32)).reset_index(
            drop=True
        )
        return Interactions(out, self.user_ids[users], self.item_ids[items])


def to_timestamp(value: object, name: str) -> pd.Timestamp:
    """A :class:`pandas.Timestamp` from a date-like value; :class:`InputError` if it is not one."""
    try:
        stamp = pd.Timestamp(value)
    except (ValueError, TypeError):
        raise InputError(f"{name} must be a date, got {value!r}") from None
    if pd.isna(stamp):
        raise InputError(f"{name} must be a date, got {value!r}")
    return stamp


def read_table(
    path: str | os.PathLike[str],
    fmt: str = "auto",
    id_cols: Iterable[str] = (),
    **read_csv_kwargs: object,
) -> pd.DataFrame:
    """A CSV, TSV or Parquet file as a DataFrame (``fmt="auto"`` goes by the suffix).

    Text formats read ``id_cols`` as strings (ids like ``"0108775015"`` keep their
    leading zeros) unless ``dtype`` says otherwise; Parquet keeps its stored types.
    """
    path = Path(path)
    if path.is_dir():
        raise InputError(f"input {path} is a folder, not a file")
    if not path.is_file():
        raise InputError(f"input file {path} does not exist")
    dtype = read_csv_kwargs.pop("dtype", None)
    if not isinstance(dtype, dict) and dtype is not None:
        read_csv_kwargs["dtype"] = dtype
    else:
        read_csv_kwargs["dtype"] = {**dict.fromkeys(id_cols, str), **(dtype or {})}
    if fmt == "auto":
        suffix = path.suffix.lower()
        fmt = {".parquet": "parquet", ".pq": "parquet", ".tsv": "tsv"}.get(suffix, "csv")
    try:
        if fmt == "parquet":
            return pd.read_parquet(path)
        if fmt == "tsv":
            return pd.read_csv(path, sep="\t", **read_csv_kwargs)
        if fmt == "csv":
            return pd.read_csv(path, **read_csv_kwargs)
    except (ValueError, OSError, UnicodeDecodeError) as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"cannot read {path} as {fmt}: {first_line}") from None
    raise InputError(f"unknown input format {fmt!r}; choose csv, tsv or parquet")
