"""Interactions: id mappings, de-duplication, matrices, subsets and filters."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from accel.data import Interactions
from accel.errors import InputError


@pytest.fixture
def log() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "u": ["b", "a", "a", "c", "b", "a"],
            "i": [30, 10, 20, 10, 30, 10],
            "t": ["2024-01-05", "2024-01-02", "2024-01-03", "2024-01-04", "2024-01-01", "2024-01-01"],
        }
    )


def test_mappings_and_dedup_keep_earliest(log):
    inter = Interactions.from_frame(log, "u", "i", "t")
    assert list(inter.user_ids) == ["a", "b", "c"]
    assert list(inter.item_ids) == [10, 20, 30]
    assert (inter.n_users, inter.n_items, len(inter)) == (3, 3, 4)
    times = inter.frame.set_index(["user", "item"])["time"]
    assert times[(0, 0)] == pd.Timestamp("2024-01-01")  # (a, 10): the earlier of two
    assert times[(1, 2)] == pd.Timestamp("2024-01-01")  # (b, 30)
    assert inter.frame["user"].dtype == np.int32


def test_dedup_without_time_keeps_first_row(log):
    inter = Interactions.from_frame(log, "u", "i")
    assert len(inter) == 4 and not inter.has_time


def test_matrix_is_binary_and_full_shape(log):
    inter = Interactions.from_frame(log, "u", "i", "t")
    X = inter.matrix()
    assert X.shape == (3, 3) and X.dtype == np.float32
    np.testing.assert_array_equal(X.toarray(), [[1, 1, 0], [0, 0, 1], [1, 0, 0]])
    early = inter.between(end="2024-01-03")
    assert early.matrix().shape == (3, 3)
    np.testing.assert_array_equal(early.matrix().toarray(), [[1, 0, 0], [0, 0, 1], [0, 0, 0]])
    np.testing.assert_array_equal(inter.matrix(inter.frame["user"].to_numpy() == 2).toarray()[2], [1, 0, 0])


def test_index_lookup_and_unknown_ids(log):
    inter = Interactions.from_frame(log, "u", "i")
    np.testing.assert_array_equal(inter.user_index(["c", "a"]), [2, 0])
    np.testing.assert_array_equal(inter.item_index([30, "10"]), [2, 0])  # text ids typed by users
    with pytest.raises(InputError, match="unknown item id 99"):
        inter.item_index([10, 99])
    with pytest.raises(InputError, match="unknown user id 'zz'"):
        inter.user_index("zz")


def test_filter_reindexes_and_iterates():
    df = pd.DataFrame({"user_id": [1, 1, 1, 2, 2, 3], "item_id": [5, 6, 7, 5, 6, 7]})
    inter = Interactions.from_frame(df)
    once = inter.filter(min_user=2, min_item=2)
    assert list(once.item_ids) == [5, 6, 7] and list(once.user_ids) == [1, 2]
    assert list(inter.filter(min_user=2, min_item=2, iterate=True).item_ids) == [5, 6]
    core = inter.filter(min_user=3, min_item=1, iterate=True)
    assert list(core.user_ids) == [1] and core.matrix().shape == (1, 3)
    with pytest.raises(InputError, match="no interactions left"):
        inter.filter(min_user=3, min_item=2, iterate=True)


def test_unix_seconds_times():
    df = pd.DataFrame({"user_id": [1], "item_id": [2], "ts": [86400]})
    assert Interactions.from_frame(df, time_col="ts").frame["time"][0] == pd.Timestamp("1970-01-02")


@pytest.mark.parametrize(
    ("times", "expected"),
    [
        # ISO 8601 of differing precision in one column (the first value's format would miss the second)
        (["2024-01-02", "2024-01-03 10:00"], ["2024-01-02 00:00", "2024-01-03 10:00"]),
        # one non-ISO format, inferred from the first value
        (["01/02/2024", "03/02/2024"], ["2024-01-02", "2024-03-02"]),
        # offsets that change across daylight saving: converted to UTC
        (
            ["2024-03-30T10:00:00+01:00", "2024-04-01T10:00:00+02:00"],
            ["2024-03-30 09:00", "2024-04-01 08:00"],
        ),
    ],
)
def test_text_times(times, expected):
    frame = pd.DataFrame({"user_id": [1, 2], "item_id": [2, 3], "t": times})
    parsed = Interactions.from_frame(frame, time_col="t").frame["time"]
    got = parsed.dt.tz_convert(None) if parsed.dt.tz is not None else parsed
    assert list(got) == [pd.Timestamp(e) for e in expected]


@pytest.mark.parametrize(
    ("times", "bad"),
    [
        (["t1", "t40"], "t1"),  # dateutil would read these as years 0001 and 2040
        (["01/02/2024", "13/02/2024"], "13/02/2024"),  # the first value's format does not fit
        (["2024-01-01", None], None),
    ],
)
def test_text_times_that_are_not_dates(times, bad):
    frame = pd.DataFrame({"user_id": [1, 2], "item_id": [2, 3], "t": times})
    message = "missing values" if bad is None else f"not a date: {bad!r}"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # and pandas' guessing warning never reaches the user
        with pytest.raises(InputError, match=message):
            Interactions.from_frame(frame, time_col="t")


@pytest.mark.parametrize(
    ("frame", "kwargs", "message"),
    [
        (pd.DataFrame({"user": [1], "item_id": [2]}), {}, "column 'user_id' not found"),
        (pd.DataFrame({"user_id": [], "item_id": []}), {}, "empty"),
        (pd.DataFrame({"user_id": [1, None], "item_id": [2, 3]}), {}, "missing ids"),
        (
            pd.DataFrame({"user_id": [1, 2], "item_id": [2, 3], "t": ["2024-01-01", "soon"]}),
            {"time_col": "t"},
            "not a date: 'soon'",
        ),
    ],
)
def test_bad_frames(frame, kwargs, message):
    with pytest.raises(InputError, match=message):
        Interactions.from_frame(frame, **kwargs)


def test_csv_and_parquet_round_trip(tmp_path, log):
    log.to_csv(tmp_path / "log.csv", index=False)
    log.to_parquet(tmp_path / "log.parquet")
    a = Interactions.from_csv(tmp_path / "log.csv", "u", "i", "t")
    b = Interactions.from_parquet(tmp_path / "log.parquet", "u", "i", "t")
    assert (a.matrix() != b.matrix()).nnz == 0
    with pytest.raises(InputError, match="does not exist"):
        Interactions.from_csv(tmp_path / "nope.csv")
    (tmp_path / "bad.parquet").write_text("not parquet")
    with pytest.raises(InputError, match="cannot read"):
        Interactions.from_parquet(tmp_path / "bad.parquet")


def test_slashed_dates_after_iso_ones_are_read_and_other_formats_named():
    from accel.data.interactions import parse_times

    times = parse_times(pd.Series(["2024-01-02", "2024/01/03", "2024-01-04 10:00"]), "t")
    assert list(times) == [
        pd.Timestamp("2024-01-02"),
        pd.Timestamp("2024-01-03"),
        pd.Timestamp("2024-01-04 10:00"),
    ]
    with pytest.raises(
        InputError, match=r"mixes date formats: '03\.01\.2024' is not written as '2024-01-02'"
    ):
        parse_times(pd.Series(["2024-01-02", "03.01.2024"]), "t")
    with pytest.raises(InputError, match="holds a value that is not a date: 'next tuesday'"):
        parse_times(pd.Series(["2024-01-02", "next tuesday"]), "t")
