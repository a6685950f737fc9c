"""Ids kept exactly as the data has them, answers in those ids, and users the model knows nothing about."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from conftest import random_interactions

import accel
from accel.cli import main
from accel.data import Interactions, synthetic_interactions
from accel.data.ids import match_ids
from accel.distributed.cli_options import with_cli_hint
from accel.distributed.run_output import prepare_folder
from accel.errors import InputError


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_fails(capsys, args: list[str], message: str) -> str:
    """The command exits 2 with one line on stderr naming the problem, and no traceback."""
    code, _, err = run_cli(capsys, *args)
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert message in err, err
    return err


# ---- ids as the data has them ------------------------------------------------------------
def test_csv_ids_keep_leading_zeros_and_stay_distinct(tmp_path):
    path = tmp_path / "c.csv"
    path.write_text("user_id,item_id\nA,042\nA,42\nB,7\n1,0108775015\n")
    inter = Interactions.from_csv(path)
    assert list(inter.item_ids) == ["0108775015", "042", "42", "7"]
    assert list(inter.user_ids) == ["1", "A", "B"]  # integer-looking user ids stay text too
    assert len(inter) == 4
    # the caller can still ask for another type
    typed = Interactions.from_csv(path, dtype={"user_id": str, "item_id": "int64"})
    assert list(typed.item_ids) == [7, 42, 108775015]


def test_parquet_ids_keep_their_type(tmp_path):
    path = tmp_path / "log.parquet"
    pd.DataFrame({"user_id": [10, 10, 20], "item_id": np.array([5, 6, 5], dtype=np.int32)}).to_parquet(path)
    inter = Interactions.from_parquet(path)
    assert inter.user_ids.dtype.kind == "i" and list(inter.item_ids) == [5, 6]
    categorical = pd.DataFrame({"user_id": ["a", "b"], "item_id": pd.Categorical(["x", "y"])})
    assert list(Interactions.from_frame(categorical).item_ids) == ["x", "y"]
    objects = pd.DataFrame({"user_id": ["a", "b"], "item_id": pd.Series([3, 4], dtype=object)})
    assert Interactions.from_frame(objects).item_ids.dtype.kind == "i"


@pytest.mark.parametrize(
    ("values", "described"),
    [
        ([1.0, 2.0, 2.0], "floats (float64)"),
        ([True, False, True], "booleans"),
        ([[1], [2, 3], [4]], "nested values"),
        ([{"a": 1}, {"b": 2}, {"c": 3}], "nested values"),
        (["a", 1, "b"], "a mix of integers and other values"),
        (pd.to_datetime(["2020-01-01"] * 3), "datetime"),
    ],
)
def test_unusable_id_columns_are_named(tmp_path, values, described):
    frame = pd.DataFrame({"user_id": ["u", "v", "w"], "item_id": values})
    with pytest.raises(InputError) as info:
        Interactions.from_frame(frame)
    message = str(info.value)
    assert "'item_id'" in message and described in message and "\n" not in message
    if described.startswith("a mix"):
        return  # Parquet cannot store a column of mixed types
    path = tmp_path / "bad.parquet"
    frame.to_parquet(path)
    with pytest.raises(InputError, match="id column 'item_id' holds"):
        Interactions.from_parquet(path)


def test_missing_ids_are_counted():
    with pytest.raises(InputError, match="column 'user_id' has 1 missing ids"):
        Interactions.from_frame(pd.DataFrame({"user_id": ["a", None], "item_id": ["x", "y"]}))


def test_text_and_integer_ids_match_each_other():
    assert list(match_ids(["42", "042", "x", "42.0", 7], np.array([7, 42]))) == [1, 1, -1, 1, 0]
    assert list(match_ids([42, 7], np.array(["42", "7", "042"]))) == [0, 1]
    assert list(match_ids("042", np.array(["42", "042"]))) == [1]


# ---- users with no known items -----------------------------------------------------------
@pytest.fixture(scope="module")
def fitted() -> tuple[accel.EASE, sp.csr_matrix]:
    X = random_interactions(200, 40, 0.1, seed=5)
    return accel.EASE(l2=10, backend="numpy").fit(X, show_progress=False), X


def popular_top(X: sp.csr_matrix, k: int) -> tuple[np.ndarray, np.ndarray]:
    counts = np.asarray((X != 0).sum(axis=0)).ravel()
    order = np.argsort(-counts, kind="stable")[:k]
    return order, counts[order]


@pytest.mark.parametrize("model_class", [accel.EASE, accel.TopPopular, accel.ItemKNN, accel.UserKNN])
def test_rows_without_items_get_the_most_popular_items(model_class):
    X = random_interactions(200, 40, 0.1, seed=5)
    model = model_class(backend="numpy").fit(X, show_progress=False)
    rows = sp.vstack([X[:3], sp.csr_matrix((1, 40)), X[3:4]]).tocsr()
    ids, scores = model.recommend(rows, k=5)
    top, counts = popular_top(X, 5)
    np.testing.assert_array_equal(ids[3], top)
    np.testing.assert_array_equal(scores[3], counts)
    expected, _ = model.recommend(X[:4], k=5)
    np.testing.assert_array_equal(ids[[0, 1, 2, 4]], expected)  # other rows are the model's own
    ids, scores = model.recommend_from_items([], k=5)
    np.testing.assert_array_equal(ids, top)


def test_unknown_users_skip_error_and_bad_choice(fitted):
    model, X = fitted
    rows = sp.vstack([X[:2], sp.csr_matrix((2, 40))]).tocsr()
    ids, scores = model.recommend(rows, k=4, unknown_users="skip")
    assert (ids[2:] == -1).all() and np.isneginf(scores[2:]).all() and (ids[:2] >= 0).all()
    with pytest.raises(InputError, match=r"2 of 4 rows \(the first is row 2\) have no items"):
        model.recommend(rows, k=4, unknown_users="error")
    with pytest.raises(InputError, match="have no items"):
        model.recommend_from_items([], k=4, unknown_users="error")
    with pytest.raises(InputError, match="unknown_users must be one of 'popular', 'skip', 'error'"):
        model.recommend(X[:2], k=4, unknown_users="random")
    model.recommend(X[:2], k=4, unknown_users="error")  # no such row: no error


def test_popularity_is_saved_and_learned_from_a_gram(tmp_path, fitted):
    model, X = fitted
    loaded = accel.load_model(model.save(tmp_path / "m"))
    np.testing.assert_array_equal(loaded.popularity_, model.popularity_)
    G = np.asarray((X.T @ X).toarray(), dtype=np.float32, order="C")
    from_gram = accel.EASE(l2=10, backend="numpy").fit_gram(G, show_progress=False)
    np.testing.assert_array_equal(from_gram.popularity_, model.popularity_)
    del loaded.popularity_  # as a model saved before popularity was kept
    with pytest.raises(InputError, match="saved without item popularity"):
        loaded.recommend(sp.csr_matrix((1, 40)), k=3)
    assert (loaded.recommend(sp.csr_matrix((1, 40)), k=3, unknown_users="skip")[0] == -1).all()


def test_item_ids_always_match_the_model(tmp_path, log):
    model = accel.EASE(l2=10, backend="numpy").fit(log, show_progress=False)
    assert len(model.extras_["item_ids"]) == log.n_items
    G = np.eye(5, dtype=np.float32) * 3
    model.fit_gram(G.copy(), show_progress=False)  # a refit forgets the earlier log's ids
    assert model.extras_ == {}
    ids = np.array(["a", "b", "c", "d", "e"])
    model.fit_gram(G.copy(), show_progress=False, item_ids=ids)
    np.testing.assert_array_equal(model.extras_["item_ids"], ids)
    with pytest.raises(InputError, match="item_ids has 4 ids but G has 5 columns"):
        model.fit_gram(G.copy(), show_progress=False, item_ids=ids[:4])
    with pytest.raises(InputError, match=r"extras\['item_ids'\] has shape \(2,\) but the model has 5 items"):
        model.save(tmp_path / "m", extras={"item_ids": ids[:2]})
    path = model.save(tmp_path / "m")
    np.save(path / "extra.item_ids.npy", ids[:3])  # edited by hand: out of step with the weights
    (path / "model.json").write_text((path / "model.json").read_text().replace('"files"', '"_files"'))
    with pytest.raises(InputError, match=r"extra.item_ids.npy has shape \(3,\) but the model has 5 items"):
        accel.load_model(path)


# ---- answers in the log's ids ------------------------------------------------------------
@pytest.fixture(scope="module")
def log() -> Interactions:
    frame = synthetic_interactions(300, 60, mean_per_user=8, seed=2)
    frame["item_id"] = frame["item_id"].map(lambda i: f"{i:05d}")
    frame["user_id"] = frame["user_id"].map(lambda u: f"u{u}")
    return Interactions.from_frame(frame, time_col="timestamp")


def test_recommend_in_log_ids_matches_index_results(log):
    model = accel.EASE(l2=20, backend="numpy").fit(log, show_progress=False)
    assert list(model.extras_["item_ids"]) == list(log.item_ids)
    users = ["u7", "u3"]
    recs = log.recommend(model, users=users, k=4)
    assert list(recs.columns) == ["user", "item", "rank", "score", "source"]
    ids, scores = model.recommend(log.matrix()[log.user_index(users)], k=4)
    assert recs["user"].tolist() == ["u7"] * 4 + ["u3"] * 4
    assert recs["item"].tolist() == list(log.item_ids[ids.ravel()])
    np.testing.assert_allclose(recs["score"], scores.ravel())
    assert (recs["source"] == "model").all()
    assert log.recommend(model, users=["u3", "u7", "u3"], k=1)["user"].tolist() == ["u3", "u7"]
    everyone = log.recommend(model, k=2)
    assert len(everyone) == 2 * log.n_users


def test_recommend_with_a_model_from_another_log(log):
    train = log.filter(min_item=30)  # fewer items, another mapping
    model = accel.EASE(l2=20, backend="numpy").fit(train, show_progress=False)
    recs = log.recommend(model, k=3)
    assert set(recs["item"]) <= set(train.item_ids)
    # a user whose items were all dropped gets the popular items, marked as such
    cold = [u for u in log.user_ids if u not in set(train.user_ids)]
    assert cold, "the filter should leave some users with no known items"
    rows = recs[recs["user"] == cold[0]]
    assert (rows["source"] == "popular").all() and len(rows) == 3
    top, _ = popular_top(train.matrix(), 3)
    assert rows["item"].tolist() == list(train.item_ids[top])
    assert recs[recs["user"] != cold[0]]["source"].isin(["model", "popular"]).all()
    assert cold[0] not in set(log.recommend(model, k=3, unknown_users="skip")["user"])


def test_recommend_from_items_and_similar_items_take_ids(log, tmp_path):
    model = accel.EASE(l2=20, backend="numpy").fit(log, show_progress=False)
    loaded = accel.load_model(model.save(tmp_path / "m"))
    items = list(log.item_ids[[3, 9]])
    recs = log.recommend_from_items(loaded, items, k=5)
    ids, scores = model.recommend_from_items([3, 9], k=5)
    assert recs["item"].tolist() == list(log.item_ids[ids]) and not set(items) & set(recs["item"])
    assert list(recs.columns) == ["item", "rank", "score", "source"]
    cold = log.recommend_from_items(loaded, [], k=5)
    assert (cold["source"] == "popular").all()
    similar = log.similar_items(loaded, items[0], k=4)
    ids, scores = model.similar_items(3, k=4)
    assert similar["item"].tolist() == list(log.item_ids[ids]) and similar["rank"].tolist() == [1, 2, 3, 4]
    np.testing.assert_allclose(similar["score"], scores)
    with pytest.raises(InputError, match="unknown item id 'nope'"):
        log.similar_items(model, "nope")


def test_unknown_items_of_a_new_user_are_dropped_with_a_warning(log):
    model = accel.EASE(l2=20, backend="numpy").fit(log, show_progress=False)
    known = list(log.item_ids[[3, 9]])
    expected = log.recommend_from_items(model, known, k=5)
    with pytest.warns(
        accel.UnknownItemsWarning, match=r"1 of 3 items are not known .* 'nope'\) and were dropped$"
    ):
        got = log.recommend_from_items(model, [known[0], "nope", known[1]], k=5)
    pd.testing.assert_frame_equal(got, expected)
    with pytest.raises(InputError, match=r"1 of 3 items are not known .*'nope'.*unknown_items='drop'"):
        log.recommend_from_items(model, [known[0], "nope", known[1]], unknown_items="error")
    with pytest.raises(InputError, match="unknown_items must be one of 'drop', 'error'"):
        log.recommend_from_items(model, known, unknown_items="ignore")
    # Only unknown items: the popular fallback, marked so in the source column.
    with pytest.warns(accel.UnknownItemsWarning, match="none are left, so the user gets the most popular"):
        cold = log.recommend_from_items(model, ["nope", "99999"], k=4)
    top, top_scores = popular_top(log.matrix(), 4)
    assert cold["item"].tolist() == list(log.item_ids[top]) and (cold["source"] == "popular").all()
    np.testing.assert_array_equal(cold["score"], top_scores)
    with pytest.warns(accel.UnknownItemsWarning, match="gets no recommendations"):
        assert log.recommend_from_items(model, ["nope"], unknown_users="skip").empty
    with (
        pytest.raises(InputError, match="have no items the model knows"),
        pytest.warns(accel.UnknownItemsWarning),
    ):
        log.recommend_from_items(model, ["nope"], unknown_users="error")


def test_item_indices_outside_the_model_are_dropped_with_a_warning(log):
    model = accel.EASE(l2=20, backend="numpy").fit(log, show_progress=False)
    n = log.n_items
    expected = model.recommend_from_items([3, 9], k=5)
    with pytest.warns(
        accel.UnknownItemsWarning, match=rf"dropped 2 of 4 item indices outside .* {n} items \(e.g. {n}\)$"
    ):
        got = model.recommend_from_items([3, n, 9, -1], k=5)
    np.testing.assert_array_equal(got[0], expected[0])
    np.testing.assert_array_equal(got[1], expected[1])
    with pytest.raises(InputError, match=f"item index {n} is out of range"):
        model.recommend_from_items([3, n], unknown_items="error")
    with pytest.warns(accel.UnknownItemsWarning, match="most popular items"):
        ids, scores = model.recommend_from_items([n + 5], k=3)
    top, counts = popular_top(log.matrix(), 3)
    np.testing.assert_array_equal(ids, top)
    np.testing.assert_array_equal(scores, counts)
    with pytest.raises(InputError, match="must be integers"):
        model.recommend_from_items([1.5])


def test_unknown_users_skip_leaves_out_ids_the_log_lacks(log):
    model = accel.EASE(l2=20, backend="numpy").fit(log, show_progress=False)
    expected = log.recommend(model, users=["u7", "u3"], k=3)
    with pytest.raises(InputError, match=r"unknown user id 'nobody'.*unknown_users='skip'"):
        log.recommend(model, users=["u7", "nobody", "u3"], k=3)
    with pytest.raises(InputError, match="unknown user id 'nobody'"):
        log.recommend(model, users=["u7", "nobody"], k=3, unknown_users="error")
    got = log.recommend(model, users=["u7", "nobody", "u3"], k=3, unknown_users="skip")
    pd.testing.assert_frame_equal(got, expected)
    nobody = log.recommend(model, users=["nobody"], k=3, unknown_users="skip")
    assert nobody.empty and list(nobody.columns) == list(expected.columns)


def test_recommend_takes_candidate_filters_as_ids(log):
    model = accel.EASE(l2=20, backend="numpy").fit(log, show_progress=False)
    users = ["u7", "u3", "u11"]
    rows = log.matrix()[log.user_index(users)]
    allowed, forbidden = list(log.item_ids[::2]), list(log.item_ids[:6])
    # Lists of item ids for every user: the same as the model's index filters; unknown ids are ignored.
    recs = log.recommend(
        model, users=users, k=4, allowed_items=[*allowed, "nope"], forbidden_items={*forbidden, "gone"}
    )
    ids, scores = model.recommend(
        rows, k=4, allowed_items=np.arange(0, log.n_items, 2), forbidden_items=np.arange(6)
    )
    assert recs["item"].tolist() == list(log.item_ids[ids[ids >= 0]])
    np.testing.assert_allclose(recs["score"], scores[ids >= 0])
    assert recs["item"].isin(allowed).all() and not recs["item"].isin(forbidden).any()
    # Per-user lists as a frame of user and item ids: an earlier answer is never repeated, so the
    # next answer is that answer's continuation.
    longer = log.recommend(model, users=users, k=6)
    shown = longer[longer["rank"] <= 3][["user", "item"]]
    extra = pd.DataFrame({"user": ["nobody", "u7"], "item": [log.item_ids[0], "nope"]})
    more = log.recommend(model, users=users, k=3, forbidden_items=pd.concat([shown, extra]))
    rest = longer[longer["rank"] > 3]
    assert more[["user", "item"]].values.tolist() == rest[["user", "item"]].values.tolist()
    np.testing.assert_allclose(more["score"], rest["score"])
    # A per-user allowed list: a user without one gets nothing; the others only their own items.
    mine = list(log.item_ids[[1, 2, 5, 40]])
    only = log.recommend(model, users=users, k=5, allowed_items=pd.DataFrame({"user": "u3", "item": mine}))
    seen = set(log.item_ids[rows[1].indices])
    assert set(only["user"]) == {"u3"} and set(only["item"]) == set(mine) - seen
    with pytest.raises(InputError, match="allowed_items has no item column 'item'"):
        log.recommend(model, users=users, allowed_items=pd.DataFrame({"item_id": mine}))


def test_recommend_from_items_takes_candidate_filters_as_ids(log):
    model = accel.EASE(l2=20, backend="numpy").fit(log, show_progress=False)
    items = list(log.item_ids[[3, 9]])
    allowed = pd.DataFrame({"item": log.item_ids[10:30]})  # a frame without users: one list for all
    recs = log.recommend_from_items(model, items, k=5, allowed_items=allowed, forbidden_items=["00012"])
    ids, scores = model.recommend_from_items(
        [3, 9], k=5, allowed_items=np.arange(10, 30), forbidden_items=log.item_index(["00012"])
    )
    assert recs["item"].tolist() == list(log.item_ids[ids]) and "00012" not in set(recs["item"])
    np.testing.assert_allclose(recs["score"], scores)
    # A new user with no items gets the most popular of the allowed items.
    cold = log.recommend_from_items(model, [], k=3, allowed_items=list(log.item_ids[10:30]))
    top, _ = popular_top(log.matrix()[:, 10:30], 3)
    assert cold["item"].tolist() == list(log.item_ids[10 + top]) and (cold["source"] == "popular").all()
    per_user = pd.DataFrame({"user": "u1", "item": items})
    with pytest.raises(InputError, match=r"forbidden_items has per-user lists .* a new user has no id"):
        log.recommend_from_items(model, items, forbidden_items=per_user)


def test_a_model_without_ids_uses_the_logs_when_they_fit(log):
    model = accel.TopPopular(backend="numpy").fit(log.matrix(), show_progress=False)
    assert "item_ids" not in model.extras_
    recs = log.recommend(model, users=["u1"], k=2)
    assert set(recs["item"]) <= set(log.item_ids)
    other = accel.TopPopular(backend="numpy").fit(sp.identity(5, format="csr"), show_progress=False)
    with pytest.raises(InputError, match="does not know its item ids"):
        log.recommend(other, k=2)


# ---- λ at the edges and small CLI messages -------------------------------------------------
@pytest.fixture
def leading_zeros(tmp_path) -> Path:
    path = tmp_path / "c.csv"
    path.write_text("user_id,item_id\nA,042\nA,42\nB,7\nC,042\nC,7\n")
    return path


def test_cli_keeps_ids_and_matches_arguments(capsys, tmp_path, leading_zeros):
    model_dir = tmp_path / "m"
    assert main(["fit", str(leading_zeros), "--out", str(model_dir), "--quiet"]) == 0
    assert list(accel.load_model(model_dir).extras_["item_ids"]) == ["042", "42", "7"]
    code, out, err = run_cli(capsys, "recommend", str(model_dir), "--items", "042", "--k", "2")
    assert code == 0, err
    assert [line.split("\t")[1] for line in out.strip().splitlines()[1:]] == ["7", "42"]
    code, out, err = run_cli(capsys, "similar", str(model_dir), "042", "--k", "2", "--json")
    assert code == 0, err
    assert {row["item"] for row in json.loads(out)} == {"42", "7"}


def test_cli_user_and_item_columns_by_name(capsys, tmp_path):
    log = tmp_path / "log.tsv"
    log.write_text("customer\tarticle\n001\t0108775015\n001\t0108775044\n002\t0108775015\n")
    model_dir = tmp_path / "m"
    cols = ["--user-col", "customer", "--item-col", "article"]
    assert main(["fit", str(log), *cols, "--l2", "1", "--out", str(model_dir), "--quiet"]) == 0
    code, out, err = run_cli(capsys, "recommend", str(model_dir), str(log), "--k", "1")
    assert code == 0, err
    assert out.splitlines()[1:] == ["002\t0108775044\t1\t" + out.splitlines()[1].split("\t")[3] + "\tmodel"]


def test_cli_unknown_items_and_users(capsys, tmp_path, leading_zeros):
    model_dir = tmp_path / "m"
    assert main(["fit", str(leading_zeros), "--out", str(model_dir), "--quiet"]) == 0
    base = ["recommend", str(model_dir)]
    code, expected, _ = run_cli(capsys, *base, "--items", "042", "--k", "2")
    assert code == 0
    code, out, err = run_cli(capsys, *base, "--items", "042", "99999", "--k", "2")
    assert code == 0 and out == expected
    assert (
        err
        == "accel recommend: "
        + "1 of 2 items are not known to the model (e.g. item id '99999') and were dropped\n"
    )
    code, out, err = run_cli(capsys, *base, "--items", "99999", "nope", "--k", "2")
    assert (
        code == 0 and err.count("\n") == 1 and "none are left, so the user gets the most popular items" in err
    )
    assert out.splitlines()[1:] == ["new\t042\t1\t2.0\tpopular", "new\t7\t2\t2.0\tpopular"]
    code, out, err = run_cli(capsys, *base, "--items", "042", "99999", "--k", "2", "-q")
    assert code == 0 and out == expected and err == ""
    assert_fails(
        capsys,
        [*base, "--items", "042", "99999", "--unknown-items", "error"],
        "1 of 2 items are not known to the model (e.g. item id '99999'): use --unknown-items drop",
    )
    assert_fails(
        capsys, [*base, "--items", "99999", "--unknown-users", "error"], "have no items the model knows"
    )
    history = tmp_path / "h.csv"
    history.write_text("user_id,item_id\nZ,999\nA,042\nB,7\n")
    assert_fails(
        capsys,
        [*base, str(history), "--k", "2", "--unknown-items", "error"],
        f"1 of 3 interactions in {history} are with items the model does not know",
    )
    code, everyone, _ = run_cli(capsys, *base, str(history), "--k", "2")
    asked = [*base, str(history), "--k", "2", "--users", "A", "nobody", "B"]
    assert_fails(
        capsys, asked, "unknown user id 'nobody': not in the 3 users of this log (--unknown-users skip"
    )
    code, out, err = run_cli(capsys, *asked, "--unknown-users", "skip")
    assert code == 0 and "1 of 3 --users are not in INPUT and were left out (e.g. user 'nobody')" in err
    assert out.splitlines()[1:] == [line for line in everyone.splitlines()[1:] if line[0] in "AB"]


def test_cli_unknown_users(capsys, tmp_path, leading_zeros):
    model_dir = tmp_path / "m"
    assert main(["fit", str(leading_zeros), "--out", str(model_dir), "--quiet"]) == 0
    history = tmp_path / "h.csv"
    history.write_text("user_id,item_id\nZ,999\nA,042\n")
    out = tmp_path / "recs.csv"
    code, _, err = run_cli(capsys, "recommend", str(model_dir), str(history), "--k", "2", "--out", str(out))
    assert code == 0, err
    assert "1 of 2 users have no items the model knows and got the most popular items" in err
    recs = pd.read_csv(out, dtype={"user": str, "item": str})
    assert recs[recs["user"] == "Z"][["item", "source"]].values.tolist() == [
        ["042", "popular"],
        ["7", "popular"],
    ]
    assert (recs[recs["user"] == "A"]["source"] == "model").all()
    code, out_text, err = run_cli(
        capsys, "recommend", str(model_dir), str(history), "--k", "2", "--unknown-users", "skip"
    )
    assert code == 0 and "left out" in err and "\nZ\t" not in out_text
    assert_fails(
        capsys,
        [
            "recommend",
            str(model_dir),
            str(history),
            "--unknown-users",
            "error",
            "--out",
            str(tmp_path / "e.csv"),
        ],
        "1 of 2 users have no items the model knows (e.g. user 'Z')",
    )
    assert not (tmp_path / "e.csv").exists()


def test_cli_bad_inputs_exit_2(capsys, tmp_path, leading_zeros):
    singular = tmp_path / "s.csv"
    singular.write_text("user_id,item_id\nA,1\nA,2\nB,3\n")  # items 1 and 2 always together
    for l2 in ("0", "1e-30"):
        assert_fails(capsys, ["fit", str(singular), "--l2", l2, "--out", str(tmp_path / "m0")], "too small")
    err = assert_fails(
        capsys, ["fit", str(leading_zeros), "--l2", "1e30", "--out", str(tmp_path / "m1")], "underflowed"
    )
    assert "too large" in err
    assert not (tmp_path / "m0").exists() and not (tmp_path / "m1").exists()
    assert_fails(capsys, ["fit", str(tmp_path), "--out", str(tmp_path / "m2")], "is a folder, not a file")
    assert_fails(
        capsys, ["evaluate", str(leading_zeros), "--split", "fraction", "--k", "5000"], "(3), got 5000"
    )
    floats = tmp_path / "floats.parquet"
    pd.DataFrame({"user_id": ["a", "b"], "item_id": [1.0, 2.5]}).to_parquet(floats)
    assert_fails(capsys, ["fit", str(floats), "--out", str(tmp_path / "m3")], "'item_id' holds floats")
    nested = tmp_path / "nested.parquet"
    pd.DataFrame({"user_id": [[1], [2]], "item_id": ["x", "y"]}).to_parquet(nested)
    assert_fails(
        capsys, ["fit", str(nested), "--out", str(tmp_path / "m4")], "'user_id' holds mixed or nested"
    )
    flags = tmp_path / "flags.parquet"
    pd.DataFrame({"user_id": ["a", "b"], "item_id": [True, False]}).to_parquet(flags)
    assert_fails(capsys, ["fit", str(flags), "--out", str(tmp_path / "m5")], "'item_id' holds booleans")


def test_cli_output_folder_errors_name_the_option(tmp_path):
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    with pytest.raises(InputError) as info:
        with_cli_hint(prepare_folder)(folder, {"k": 1}, False)
    assert "--overwrite" in str(info.value) and "overwrite=True" not in str(info.value)
    assert (folder / "notes.txt").exists()
