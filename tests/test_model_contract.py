"""The model contract, checked for every model in the registry against one float64 dense reference.

A newly registered model class is picked up here without editing this file.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from conftest import dense_reference, dense_scores, random_interactions

import accel  # noqa: F401 - registers every model
from accel.errors import InputError, NotFittedError
from accel.models.base import Recommender, clone, load_model

MODELS = sorted(Recommender._registry)


def make(name: str, **params) -> Recommender:
    """A float64, CPU model of class ``name`` with its first benchmark variant's parameters."""
    cls = Recommender._registry[name]
    defaults = dict(next(iter(cls.entry.variants.values()))) if cls.entry else {}
    return cls(**{**defaults, "backend": "numpy", "dtype": "float64", **params})


@pytest.fixture(scope="module")
def X() -> sp.csr_matrix:
    return random_interactions(300, 80, 0.06, seed=11)


@pytest.fixture(scope="module", params=MODELS)
def fitted(request, X) -> Recommender:
    return make(request.param).fit(X, show_progress=False)


def reference(model: Recommender, X: sp.csr_matrix, k: int, blocked: np.ndarray):
    """The top-k of the dense scores; rows without items are padded (``unknown_users="skip"``)."""
    blocked = blocked | (np.diff(X.indptr) == 0)[:, None]
    return dense_reference(dense_scores(model, X), k, blocked, positive=model.scoring == "sparse")


def check_equal(got, expected) -> None:
    assert np.array_equal(got[0], expected[0])
    np.testing.assert_allclose(got[1], expected[1], rtol=1e-9)


def test_seen_items_are_excluded_and_short_rows_padded(fitted, X):
    blocked = X.toarray() > 0
    for k in (5, 79):
        ids, scores = fitted.recommend(X, k, unknown_users="skip")
        assert ids.shape == scores.shape == (X.shape[0], k)
        check_equal((ids, scores), reference(fitted, X, k, blocked))
        assert not np.take_along_axis(blocked, np.maximum(ids, 0), axis=1)[ids >= 0].any()
        assert np.isneginf(scores[ids == -1]).all()
    check_equal(
        fitted.recommend(X, 79, exclude_seen=False, unknown_users="skip"),
        reference(fitted, X, 79, np.zeros_like(blocked)),
    )


def test_results_do_not_depend_on_the_batch_size(fitted, X):
    whole = fitted.recommend(X, 10)
    for batch_size in (1, 7, 1000):
        check_equal(fitted.recommend(X, 10, batch_size=batch_size), whole)


def test_rows_without_items_follow_unknown_users(fitted, X):
    rows = sp.vstack([X[:3], sp.csr_matrix((2, X.shape[1])), X[3:5]]).tocsr()
    ids, scores = fitted.recommend(rows, 6)
    counts = np.bincount(X.indices, minlength=X.shape[1]).astype(np.float64)
    popular = dense_reference(np.tile(counts, (2, 1)), 6, np.zeros((2, X.shape[1]), bool))
    check_equal((ids[3:5], scores[3:5]), popular)
    check_equal((ids[[0, 1, 2, 5, 6]], scores[[0, 1, 2, 5, 6]]), fitted.recommend(X[:5], 6))
    skipped = fitted.recommend(rows, 6, unknown_users="skip")
    assert (skipped[0][3:5] == -1).all() and np.isneginf(skipped[1][3:5]).all()
    with pytest.raises(InputError, match="no items the model knows"):
        fitted.recommend(rows, 6, unknown_users="error")
    check_equal(fitted.recommend_from_items([], 6), (popular[0][0], popular[1][0]))


def test_allowed_and_forbidden_items(fitted, X):
    rng = np.random.default_rng(3)
    rows = X[:40]
    allowed = np.sort(rng.choice(X.shape[1], 30, replace=False))
    forbidden = sp.random(40, X.shape[1], density=0.1, format="csr", random_state=4)
    blocked = rows.toarray() > 0
    blocked[:, np.setdiff1d(np.arange(X.shape[1]), allowed)] = True
    blocked |= forbidden.toarray() > 0
    got = fitted.recommend(rows, 8, allowed_items=allowed, forbidden_items=forbidden, unknown_users="skip")
    check_equal(got, reference(fitted, rows, 8, blocked))
    one = fitted.recommend_from_items(rows[0].indices, 8, allowed_items=allowed)
    expected = reference(fitted, rows[:1], 8, (rows[:1].toarray() > 0) | ~np.isin(np.arange(80), allowed))
    check_equal(one, (expected[0][0], expected[1][0]))


def test_save_and_load_round_trip(fitted, X, tmp_path):
    fitted.save(tmp_path / "m")
    loaded = load_model(tmp_path / "m")
    assert type(loaded) is type(fitted) and loaded.get_params() == fitted.get_params()
    check_equal(loaded.recommend(X, 10), fitted.recommend(X, 10))
    assert np.array_equal(loaded.popularity_, fitted.popularity_)


def test_similar_items_or_a_documented_refusal(fitted):
    try:
        ids, scores = fitted.similar_items(3, k=5)
    except InputError as exc:
        assert type(fitted).__name__ in str(exc)
        return
    item_scores = np.asarray(fitted.backend_.to_host(fitted._item_scores(3)), np.float64)
    blocked = np.zeros((1, fitted.n_items_), bool)
    blocked[0, 3] = True
    expected = dense_reference(item_scores[None, :], 5, blocked, positive=False)
    assert 3 not in ids
    np.testing.assert_allclose(scores, expected[1][0], rtol=1e-9)


@pytest.mark.parametrize("name", MODELS)
def test_parameters_round_trip(name):
    model = make(name)
    params = model.get_params()
    assert clone(model).get_params() == params
    assert type(model)(**params).get_params() == params
    assert model.set_params(**params) is model and model.get_params() == params
    with pytest.raises(InputError, match="no parameter 'nope'"):
        model.set_params(nope=1)


class FitFailed(Exception):
    pass


def failing(cls: type[Recommender], monkeypatch, error: type[BaseException] = FitFailed) -> None:
    """Make ``cls``'s fit fail at its very end, after it wrote its learned arrays."""
    learn = cls._fit

    def fit_then_fail(self, X, show_progress):
        learn(self, X, show_progress)
        raise error("the fit failed")

    monkeypatch.setattr(cls, "_fit", fit_then_fail)


@pytest.mark.parametrize("name", MODELS)
def test_a_failed_first_fit_leaves_the_model_unfitted(name, X, monkeypatch):
    model = make(name)
    failing(type(model), monkeypatch)
    with pytest.raises(FitFailed):
        model.fit(X, show_progress=False)
    assert set(vars(model)) == set(model.get_params())
    with pytest.raises(NotFittedError):
        model.recommend(X, 5)


@pytest.mark.parametrize("error", [FitFailed, KeyboardInterrupt, MemoryError])
@pytest.mark.parametrize("other_items", [30, 60], ids=["larger", "smaller"])
@pytest.mark.parametrize("name", MODELS)
def test_a_failed_refit_keeps_serving_the_old_model(name, other_items, error, monkeypatch, tmp_path):
    first = random_interactions(200, 45, 0.1, seed=1)
    other = random_interactions(200, other_items, 0.1, seed=2)
    model = make(name).fit(first, show_progress=False)
    before = model.recommend(first, 5)
    state = {name: value for name, value in vars(model).items() if name.endswith("_")}
    failing(type(model), monkeypatch, error)
    with pytest.raises(error):
        model.fit(other, show_progress=False)
    assert model.n_items_ == 45 and all(getattr(model, n) is v for n, v in state.items())
    check_equal(model.recommend(first, 5), before)
    with pytest.raises(InputError, match="items"):
        model.recommend(other, 5)
    model.save(tmp_path / "m")
    check_equal(load_model(tmp_path / "m").recommend(first, 5), before)


def test_an_ease_refit_that_fails_numerically_keeps_the_old_weights(X):
    """The singular-G refit: 30 items, λ = 0, fewer users than items."""
    model = make("EASE", l2=20).fit(X[:, :20], show_progress=False)
    before = model.recommend(X[:, :20], 5)
    singular = sp.csr_matrix(np.tile(np.eye(10), (1, 3)))  # items 0, 10 and 20 always together
    with pytest.raises(InputError, match="too small"):
        model.set_params(l2=0).fit(singular, show_progress=False)
    assert model.B_.shape == (20, 20)
    check_equal(model.recommend(X[:, :20], 5), before)
