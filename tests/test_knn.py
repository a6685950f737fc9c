"""ItemKNN / UserKNN against similaripy called directly, parameter checks, save/load."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import similaripy

from accel import InputError, ItemKNN, UserKNN, load_model
from accel.models.knn import SIMILARITIES

#: Non-default parameters for each similarity, so its own parameters are exercised.
PARAMS = {
    "dot_product": {},
    "cosine": {"shrink": 5.0},
    "asymmetric_cosine": {"alpha": 0.3},
    "jaccard": {"shrink_type": "additive", "shrink": 2.0},
    "dice": {"threshold": 0.05},
    "tversky": {"alpha": 0.7, "beta": 0.4},
    "p3alpha": {"alpha": 0.8},
    "rp3beta": {"alpha": 0.9, "beta": 0.4},
    "s_plus": {"l1": 0.4, "l2": 0.6, "t1": 0.8, "c1": 0.6, "c2": 0.4, "beta2": 0.3, "pop2": "sum"},
}


def reference_top(S: sp.sparray, X: sp.csr_matrix, k: int) -> list[dict[int, float]]:
    """similaripy's own scoring of ``X`` with ``S``: top-k per row, seen items filtered."""
    R = similaripy.dot_product(
        sp.csr_array(X), sp.csr_array(S), k=k, filter_cols=sp.csr_array(X), verbose=False, format_output="csr"
    )
    return reference_top_from(R)


def reference_top_from(R: sp.sparray) -> list[dict[int, float]]:
    """Each row of similaripy's sparse top-k result as ``{item: score}``."""
    R = sp.csr_matrix(R)
    return [
        dict(
            zip(R.indices[R.indptr[u] : R.indptr[u + 1]], R.data[R.indptr[u] : R.indptr[u + 1]], strict=True)
        )
        for u in range(R.shape[0])
    ]


def assert_same_top(ids: np.ndarray, scores: np.ndarray, reference: list[dict[int, float]]) -> None:
    """Same scores in order; same items except where a tie straddles the cut (or scores are zero)."""
    for u, ref in enumerate(reference):
        ref_scores = np.sort(np.array(list(ref.values()), dtype=np.float64))[::-1]
        n = len(ref_scores)
        assert n <= ids.shape[1]
        np.testing.assert_allclose(scores[u, :n], ref_scores, rtol=1e-4, atol=1e-6)
        if n:
            boundary = ref_scores[-1]
            sure = {
                int(i)
                for i, s in zip(ids[u, :n], scores[u, :n], strict=True)
                if s > boundary * (1 + 1e-4) + 1e-6
            }
            assert sure <= set(ref), (u, sure - set(ref))
            for i, s in zip(ids[u, :n], scores[u, :n], strict=True):
                if int(i) in ref:
                    assert ref[int(i)] == pytest.approx(s, rel=1e-4, abs=1e-6)
        # beyond similaripy's non-zero list, our dense scores can only be zero
        assert np.all(scores[u, n:] <= 1e-6)


@pytest.mark.parametrize("similarity", SIMILARITIES)
def test_item_knn_matches_similaripy(similarity: str, small_X: sp.csr_matrix) -> None:
    params = PARAMS[similarity]
    model = ItemKNN(similarity, k=20, backend="numpy", **params).fit(small_X, show_progress=False)
    S = getattr(similaripy, similarity)(
        sp.csr_array(small_X.T.tocsr()), k=20, verbose=False, format_output="csr", **params
    )
    ids, scores = model.recommend(small_X, k=10, unknown_users="skip")  # the models' own scores
    assert_same_top(ids, scores, reference_top(S, small_X, 10))
    seen = small_X.toarray() > 0
    assert not np.any(np.take_along_axis(seen, np.maximum(ids, 0), axis=1) & (ids >= 0))


@pytest.mark.parametrize("similarity", ["cosine", "rp3beta", "tversky", "s_plus"])
def test_user_knn_matches_similaripy(similarity: str, small_X: sp.csr_matrix) -> None:
    params = PARAMS[similarity]
    model = UserKNN(similarity, k=15, backend="numpy", **params).fit(small_X, show_progress=False)
    W = getattr(similaripy, similarity)(
        sp.csr_array(small_X), k=15, verbose=False, format_output="csr", **params
    )
    R = similaripy.dot_product(
        sp.csr_array(W),
        sp.csr_array(small_X),
        k=10,
        filter_cols=sp.csr_array(small_X),
        verbose=False,
        format_output="csr",
    )
    ids, scores = model.recommend(small_X, k=10, unknown_users="skip")  # the models' own scores
    assert_same_top(ids, scores, reference_top_from(R))


def test_user_knn_scores_new_users(small_X: sp.csr_matrix) -> None:
    model = UserKNN("cosine", k=10, backend="numpy").fit(small_X[:300], show_progress=False)
    new = small_X[300:]
    ids, scores = model.recommend(new, k=5)
    W = similaripy.cosine(
        sp.csr_array(new), sp.csr_array(small_X[:300].T.tocsr()), k=10, verbose=False, format_output="csr"
    )
    R = similaripy.dot_product(
        W, sp.csr_array(small_X[:300]), k=5, filter_cols=sp.csr_array(new), verbose=False, format_output="csr"
    )
    assert_same_top(ids, scores, reference_top_from(R))


def test_item_knn_similar_items_are_rows_of_s(small_X: sp.csr_matrix) -> None:
    model = ItemKNN("jaccard", k=10, backend="numpy").fit(small_X, show_progress=False)
    ids, scores = model.similar_items(3, k=5)
    row = model.S_[3].toarray().ravel()
    row[3] = -np.inf
    np.testing.assert_allclose(scores, np.sort(row)[::-1][:5], rtol=1e-6)
    assert 3 not in ids


@pytest.mark.parametrize("cls", [ItemKNN, UserKNN])
def test_save_load_roundtrip(cls, small_X: sp.csr_matrix, tmp_path) -> None:
    model = cls("rp3beta", k=12, alpha=0.7, beta=0.3, backend="numpy").fit(small_X, show_progress=False)
    expected = model.recommend(small_X[:50], k=7)
    loaded = load_model(model.save(tmp_path / "m"))
    assert isinstance(loaded, cls) and loaded.beta == 0.3
    got = loaded.recommend(small_X[:50], k=7)
    np.testing.assert_array_equal(got[0], expected[0])
    np.testing.assert_allclose(got[1], expected[1])


def test_recommend_from_items_and_padding(small_X: sp.csr_matrix) -> None:
    model = ItemKNN("cosine", k=5, backend="numpy").fit(small_X, show_progress=False)
    ids, scores = model.recommend_from_items([0, 1, 2], k=10)
    assert not {0, 1, 2} & set(ids.tolist())
    X_all = np.ones((1, small_X.shape[1]))
    X_all[0, :3] = 0
    ids, scores = model.recommend(X_all, k=5)
    assert set(ids[0, :3].tolist()) <= {0, 1, 2}
    assert np.all(ids[0, 3:] == -1) and np.all(np.isneginf(scores[0, 3:]))


def test_unknown_similarity_is_rejected(small_X: sp.csr_matrix) -> None:
    with pytest.raises(InputError, match="unknown similarity 'cosin'"):
        ItemKNN("cosin").fit(small_X)


@pytest.mark.parametrize(
    ("similarity", "params", "match"),
    [
        ("cosine", {"alpha": 0.5}, "'cosine' does not take parameter 'alpha'"),
        ("p3alpha", {"beta": 0.5}, "'p3alpha' does not take parameter 'beta'"),
        ("rp3beta", {"t1": 1.0}, "does not take parameter 't1'"),
        ("cosine", {"k": 0}, "k .* positive integer"),
        ("cosine", {"shrink": -1.0}, "shrink must be >= 0"),
        ("cosine", {"shrink_type": "odd"}, "unknown shrink_type"),
        ("s_plus", {"pop1": "max"}, "pop1 must be one of"),
        ("tversky", {"alpha": "big"}, "alpha must be a number"),
    ],
)
def test_bad_parameters_are_rejected(similarity, params, match, small_X: sp.csr_matrix) -> None:
    for cls in (ItemKNN, UserKNN):
        with pytest.raises(InputError, match=match):
            cls(similarity, backend="numpy", **params).fit(small_X, show_progress=False)


def test_user_knn_has_no_similar_items(small_X: sp.csr_matrix) -> None:
    model = UserKNN(backend="numpy").fit(small_X, show_progress=False)
    with pytest.raises(InputError, match="use ItemKNN"):
        model.similar_items(0)


def test_similaripy_bar_only_on_a_terminal(small_X: sp.csr_matrix, capfd, monkeypatch) -> None:
    """A redirected log gets no bar frames; a terminal does."""
    import sys

    ItemKNN("cosine", k=10).fit(small_X, show_progress=True)
    assert "it/s" not in capfd.readouterr().err
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    ItemKNN("cosine", k=10).fit(small_X, show_progress=True)
    assert "it/s" in capfd.readouterr().err


@pytest.mark.parametrize("similarity", SIMILARITIES)
def test_items_no_user_has_get_no_neighbours_and_change_nothing(
    similarity: str, small_X: sp.csr_matrix
) -> None:
    """Empty items inside and at the end of the catalogue (similaripy 0.7 alone fails on the latter)."""
    params = PARAMS[similarity]
    n = small_X.shape[1]
    spread = np.r_[np.arange(n // 2), np.arange(n // 2, n) + 2]  # two empty items inside, two at the end
    wide = sp.csr_matrix(
        (small_X.data, spread[small_X.indices], small_X.indptr), shape=(small_X.shape[0], n + 4)
    )
    base = ItemKNN(similarity, k=20, backend="numpy", **params).fit(small_X, show_progress=False)
    model = ItemKNN(similarity, k=20, backend="numpy", **params).fit(wide, show_progress=False)
    S = model.S_.toarray()
    empty = np.setdiff1d(np.arange(n + 4), spread)
    assert not S[empty].any() and not S[:, empty].any()
    np.testing.assert_allclose(S[np.ix_(spread, spread)], base.S_.toarray(), rtol=1e-6)


def test_user_knn_batch_ending_in_an_empty_row(small_X: sp.csr_matrix) -> None:
    model = UserKNN("cosine", k=15, backend="numpy").fit(small_X, show_progress=False)
    batch = sp.vstack([small_X[:5], sp.csr_matrix((1, small_X.shape[1]), dtype=small_X.dtype)]).tocsr()
    want = model._neighbours(small_X[:5]).toarray()
    got = model._neighbours(batch).toarray()
    np.testing.assert_array_equal(got[:5], want)
    assert not got[5].any()
