"""EASE against an independent float64 dense reference, and its contract."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
import scipy.sparse as sp
from conftest import random_interactions

import accel
from accel.errors import InputError, InsufficientMemoryError, NotFittedError


def reference_B(X: sp.spmatrix, l2: float) -> np.ndarray:
    """The textbook formula in float64 with a general inverse (the seed recipe)."""
    dense = (X.toarray() != 0).astype(np.float64)
    G = dense.T @ dense
    P = np.linalg.inv(G + l2 * np.eye(G.shape[0]))
    B = P / (-np.diag(P))
    np.fill_diagonal(B, 0.0)
    return B


def rel_err(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize(("n_users", "n_items", "l2"), [(300, 50, 10.0), (1000, 333, 200.0), (50, 400, 30.0)])
def test_weights_match_dense_reference(n_users, n_items, l2, dtype):
    X = random_interactions(n_users, n_items, 0.05, seed=n_items)
    model = accel.EASE(l2=l2, backend="numpy", dtype=dtype).fit(X, show_progress=False)
    assert model.B_.dtype == np.dtype(dtype)
    assert rel_err(model.B_, reference_B(X, l2)) < (1e-4 if dtype == "float32" else 1e-10)
    assert np.all(np.diag(model.B_) == 0)


def test_weights_match_reference_on_movielens(ml100k_X):
    model = accel.EASE(l2=300.0, backend="numpy").fit(ml100k_X, show_progress=False)
    assert rel_err(model.B_, reference_B(ml100k_X, 300.0)) < 1e-4
    assert np.all(np.diag(model.B_) == 0)


def test_counts_and_duplicates_are_binarised(small_X):
    counts = small_X.copy()
    counts.data = np.random.default_rng(0).integers(1, 5, counts.nnz).astype(np.float64)
    a = accel.EASE(l2=20, backend="numpy").fit(counts, show_progress=False).B_
    b = accel.EASE(l2=20, backend="numpy").fit(small_X, show_progress=False).B_
    np.testing.assert_array_equal(a, b)


def test_dense_input_is_accepted(small_X):
    a = accel.EASE(l2=20, backend="numpy").fit(small_X.toarray(), show_progress=False).B_
    b = accel.EASE(l2=20, backend="numpy").fit(small_X, show_progress=False).B_
    np.testing.assert_array_equal(a, b)


def test_recommendations_are_the_best_unseen_items(small_X):
    model = accel.EASE(l2=15, backend="numpy").fit(small_X, show_progress=False)
    ids, scores = model.recommend(small_X, k=10)
    assert ids.shape == scores.shape == (small_X.shape[0], 10)
    full = (small_X.toarray().astype(np.float64)) @ reference_B(small_X, 15)
    empty = np.diff(small_X.indptr) == 0
    assert empty.any()  # users with no items get the most popular ones
    counts = np.asarray((small_X != 0).sum(axis=0)).ravel()
    np.testing.assert_array_equal(scores[empty], np.tile(np.sort(counts)[::-1][:10], (empty.sum(), 1)))
    for u in np.flatnonzero(~empty):
        seen = set(small_X[u].indices)
        assert not seen & set(ids[u].tolist())
        assert np.all(np.diff(scores[u]) <= 0)
        unseen = np.array([i for i in range(small_X.shape[1]) if i not in seen])
        expected = np.sort(full[u, unseen])[::-1][:10]
        np.testing.assert_allclose(np.sort(scores[u])[::-1], expected, rtol=1e-4, atol=1e-5)


def test_no_seen_item_is_ever_returned_even_when_k_exceeds_unseen():
    X = sp.csr_matrix(np.array([[1, 1, 1, 0], [1, 0, 0, 0], [0, 1, 1, 1]], dtype=np.float32))
    model = accel.EASE(l2=1, backend="numpy").fit(X, show_progress=False)
    ids, scores = model.recommend(X, k=4)
    assert ids[0].tolist()[1:] == [-1, -1, -1] and ids[0, 0] == 3
    assert np.isneginf(scores[0, 1:]).all()
    for u in range(3):
        assert not set(X[u].indices) & set(ids[u].tolist())
    ids_all, _ = model.recommend(X, k=4, exclude_seen=False)
    assert sorted(ids_all[1].tolist()) == [0, 1, 2, 3]


@pytest.mark.parametrize("batch_size", [1, 7, 64, 10_000])
def test_batch_size_does_not_change_results(small_X, batch_size):
    model = accel.EASE(l2=15, backend="numpy").fit(small_X, show_progress=False)
    ids, scores = model.recommend(small_X, k=12)
    ids_b, scores_b = model.recommend(small_X, k=12, batch_size=batch_size)
    np.testing.assert_array_equal(ids, ids_b)
    np.testing.assert_array_equal(scores, scores_b)


def test_recommend_from_items_matches_a_row(small_X):
    model = accel.EASE(l2=15, backend="numpy").fit(small_X, show_progress=False)
    row = small_X[5]
    ids, scores = model.recommend_from_items(row.indices.tolist(), k=8)
    ids_r, scores_r = model.recommend(row, k=8)
    np.testing.assert_array_equal(ids, ids_r[0])
    np.testing.assert_allclose(scores, scores_r[0])
    repeated, _ = model.recommend_from_items(row.indices.tolist() * 2, k=8)
    np.testing.assert_array_equal(repeated, ids)


def test_similar_items_is_the_row_of_B_without_the_item(small_X):
    model = accel.EASE(l2=15, backend="numpy").fit(small_X, show_progress=False)
    ids, scores = model.similar_items(3, k=5)
    row = model.B_[3].copy()
    row[3] = -np.inf
    expected = np.argsort(-row, kind="stable")[:5]
    np.testing.assert_array_equal(ids, expected)
    np.testing.assert_allclose(scores, row[expected])
    assert 3 not in ids


@pytest.mark.parametrize("mmap", [True, False])
def test_save_load_round_trip(tmp_path, small_X, mmap):
    model = accel.EASE(l2=15, backend="numpy", dtype="float64").fit(small_X, show_progress=False)
    model.save(tmp_path / "m", extras={"item_ids": np.arange(small_X.shape[1]) + 100})
    loaded = accel.EASE.load(tmp_path / "m", mmap=mmap)
    assert loaded.get_params() == model.get_params()
    np.testing.assert_array_equal(loaded.B_, model.B_)
    np.testing.assert_array_equal(loaded.extras_["item_ids"], np.arange(small_X.shape[1]) + 100)
    a = model.recommend(small_X, k=5)
    b = loaded.recommend(small_X, k=5)
    np.testing.assert_array_equal(a[0], b[0])
    assert isinstance(accel.load_model(tmp_path / "m"), accel.EASE)


def test_a_failed_save_keeps_the_previous_model(tmp_path, small_X, monkeypatch):
    path = tmp_path / "m"
    first = accel.EASE(l2=15, backend="numpy").fit(small_X, show_progress=False)
    first.save(path)
    second = accel.EASE(l2=999, backend="numpy").fit(small_X, show_progress=False)

    def broken_save(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("accel.model_folder.write_array", broken_save)
    with pytest.raises(OSError, match="disk full"):
        second.save(path)
    monkeypatch.undo()
    loaded = accel.EASE.load(path)
    assert loaded.l2 == 15
    np.testing.assert_array_equal(loaded.B_, first.B_)
    assert [p.name for p in tmp_path.iterdir()] == ["m"]


def test_load_rejects_what_is_not_a_model(tmp_path):
    with pytest.raises(InputError, match="not a saved accel model"):
        accel.EASE.load(tmp_path)


def test_fit_keeps_one_n_squared_buffer():
    n = 1500
    X = random_interactions(6000, n, 0.01, seed=3)
    x_bytes = X.data.nbytes + X.indices.nbytes + X.indptr.nbytes
    model = accel.EASE(l2=50, backend="numpy")
    tracemalloc.start()
    try:
        model.fit(X, show_progress=False)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # One n² buffer plus workspace, plus the binarised copy of X and its transpose.
    assert peak <= 1.25 * n * n * 4 + 2 * x_bytes
    assert peak >= n * n * 4


def test_memory_required_and_the_check_before_allocating(small_X, monkeypatch):
    assert accel.EASE.memory_required(1000, "float32") >= 1000**2 * 4
    assert accel.EASE.memory_required(1000, "float64") >= 1000**2 * 8
    assert accel.EASE.memory_required(20_000, "float32") <= 1.25 * 20_000**2 * 4
    model = accel.EASE(l2=10, backend="numpy")
    monkeypatch.setattr(accel.backends.NumpyBackend, "free_memory", lambda self: 10_000)
    with pytest.raises(InsufficientMemoryError) as info:
        model.fit(small_X, show_progress=False)
    message = str(info.value)
    assert "120 items" in message and "host RAM" in message and "9.8 KiB" in message
    assert info.value.needed > info.value.available == 10_000


@pytest.mark.parametrize(
    ("X", "match"),
    [
        (sp.csr_matrix((0, 5)), "empty"),
        (sp.csr_matrix((5, 0)), "empty"),
        (sp.csr_matrix((4, 4)), "no interactions"),
        (np.ones(5), "2-D"),
        (np.ones((2, 2, 2)), "2-D"),
        (np.array([[1.0, np.nan]]), "NaN"),
        (np.array([["a", "b"]]), "numbers"),
    ],
)
def test_bad_matrices_are_named(X, match):
    with pytest.raises(InputError, match=match):
        accel.EASE(backend="numpy").fit(X, show_progress=False)


@pytest.mark.parametrize("l2", [-1.0, float("nan"), float("inf"), "big"])
def test_bad_l2_is_named(small_X, l2):
    with pytest.raises(InputError, match="l2"):
        accel.EASE(l2=l2, backend="numpy").fit(small_X, show_progress=False)


def test_bad_dtype_and_backend_are_named(small_X):
    with pytest.raises(InputError, match="dtype"):
        accel.EASE(dtype="float16", backend="numpy").fit(small_X)
    with pytest.raises(InputError, match="unknown backend"):
        accel.EASE(backend="tpu").fit(small_X)


@pytest.mark.parametrize("l2", [0.0, 1e-30])
def test_singular_system_says_use_a_larger_l2(l2):
    X = sp.csr_matrix(np.array([[1, 1, 0], [0, 0, 1]], dtype=np.float32))  # items 0 and 1 always together
    with pytest.raises(InputError, match=r"too small: .*singular.*use a larger l2"):
        accel.EASE(l2=l2, backend="numpy").fit(X, show_progress=False)


@pytest.mark.parametrize("fit", ["matrix", "gram"])
def test_l2_so_large_that_b_underflows_is_refused(small_X, fit):
    model = accel.EASE(l2=1e30, backend="numpy")
    with pytest.raises(InputError, match=r"too large: every weight of B underflowed to 0 in float32"):
        if fit == "matrix":
            model.fit(small_X, show_progress=False)
        else:
            model.fit_gram(np.asarray((small_X.T @ small_X).toarray(), order="C"), show_progress=False)
    assert not hasattr(model, "B_")
    # float64 has the range to keep those weights, and a log with no co-occurring items legitimately has B = 0
    assert accel.EASE(l2=1e30, backend="numpy", dtype="float64").fit(small_X, show_progress=False).B_.any()
    diagonal = sp.identity(5, dtype=np.float32, format="csr")
    assert not accel.EASE(l2=1e30, backend="numpy").fit(diagonal, show_progress=False).B_.any()


def test_bad_queries_are_named(small_X):
    model = accel.EASE(l2=10, backend="numpy")
    with pytest.raises(NotFittedError, match="fit"):
        model.recommend(small_X)
    model.fit(small_X, show_progress=False)
    n = small_X.shape[1]
    for k in (0, -3, n + 1, 2.5, True):
        with pytest.raises(InputError, match="k must"):
            model.recommend(small_X, k=k)
    with pytest.raises(InputError, match="item columns"):
        model.recommend(sp.csr_matrix((3, n + 1)))
    with pytest.raises(InputError, match="out of range"):
        model.recommend_from_items([1, n], k=3, unknown_items="error")
    with pytest.raises(InputError, match="out of range"):
        model.similar_items(-1)
    with pytest.raises(InputError, match="integers"):
        model.recommend_from_items([1.5])
    with pytest.raises(InputError, match="batch_size"):
        model.recommend(small_X, batch_size=0)
    with pytest.raises(InputError, match="k must"):
        model.similar_items(2, k=n)


def test_params_follow_scikit_learn_conventions():
    model = accel.EASE(l2=42.0, backend="numpy", dtype="float64")
    assert model.get_params() == {
        "l2": 42.0,
        "backend": "numpy",
        "dtype": "float64",
        "tf32": False,
        "n_threads": None,
    }
    assert "l2=42.0" in repr(model)
    assert not hasattr(model, "B_")
