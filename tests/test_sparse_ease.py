"""SparseEASE against dense float64 references: the truncated Gram, the restricted solves, EASE itself."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pandas as pd
import pytest
import scipy.linalg.lapack
import scipy.sparse as sp
from conftest import random_interactions

import accel
from accel.backends import ranking, restricted_ease
from accel.backends.restricted_ease import restricted_solves, strongest_cooccurring
from accel.errors import InputError, InsufficientMemoryError
from accel.models import sparse_ease
from accel.models.item_item import cap_rows
from accel.models.sparse_ease import SparseEASE, weights_per_item


def dense_gram(X: sp.csr_matrix) -> np.ndarray:
    dense = (X.toarray() != 0).astype(np.float64)
    return dense.T @ dense


def reference_neighbours(G: np.ndarray, j: int, keep: int) -> tuple[np.ndarray, float]:
    """Column ``j``'s co-occurring items by ``G[i, j] / sqrt(G[i, i])`` (then item), and the floor."""
    score = G[:, j] / np.sqrt(np.maximum(np.diag(G), 1))
    candidates = np.nonzero((G[:, j] > 0) & (np.arange(G.shape[0]) != j))[0]
    order = candidates[np.lexsort((candidates, -score[candidates]))]
    floor = score[order[keep]] if order.size > keep else 0.0
    return order[:keep], floor


def reference_weights(G: np.ndarray, l2: float, m: int, keep: int) -> np.ndarray:
    """The restricted solves in float64 from the dense Gram, truncated and shifted as documented."""
    n = G.shape[0]
    lists = [reference_neighbours(G, j, keep) for j in range(n)]
    known = np.zeros((n, n), bool)
    for j, (rows, _) in enumerate(lists):
        known[rows, j] = True
    known |= known.T
    floor = np.array([f for _, f in lists])
    pop = np.diag(G)
    bound = np.minimum(floor[None, :] * np.sqrt(pop)[:, None], floor[:, None] * np.sqrt(pop)[None, :])
    bound = np.minimum(bound, np.minimum(pop[:, None], pop[None, :]))
    B = np.zeros((n, n))
    for j, (rows, _) in enumerate(lists):
        S = rows[:m]
        A = np.where(known[np.ix_(S, S)], G[np.ix_(S, S)], 0.0)
        missing = ~known[np.ix_(S, S)]
        np.fill_diagonal(missing, False)
        A[np.diag_indices(S.size)] = pop[S] + l2 + (bound[np.ix_(S, S)] * missing).sum(axis=1)
        B[S, j] = np.linalg.solve(A, G[S, j])
    return B


@pytest.mark.parametrize("keep", [1, 3, 10, 59])
def test_truncated_gram_matches_the_dense_gram(keep):
    X = random_interactions(300, 60, 0.08, seed=2)  # small counts: many ties at every cut
    G = dense_gram(X)
    items, counts, stored, floor = strongest_cooccurring(X, keep, n_threads=2)
    for j in range(60):
        rows, expected_floor = reference_neighbours(G, j, keep)
        assert stored[j] == rows.size
        assert np.array_equal(items[j, : stored[j]], rows)
        assert np.array_equal(counts[j, : stored[j]], G[rows, j])
        assert floor[j] == pytest.approx(expected_floor, rel=1e-12)


def test_listed_and_scanned_columns_both_match_the_dense_gram():
    """A wide catalogue with a skewed popularity: its popular columns are counted and scanned,
    its rare ones listed item by item; both give the reference's lists."""
    X = random_interactions(800, 1200, 0.01, seed=8)
    work = X.T @ np.diff(X.indptr).astype(np.float64)  # co-occurrence increments per column
    scanned = work * restricted_ease._SCAN_RATIO >= X.shape[1]
    assert 0 < scanned.sum() < scanned.size / 2
    G = dense_gram(X)
    items, counts, stored, floor = strongest_cooccurring(X, 12, n_threads=2)
    for j in range(X.shape[1]):
        rows, expected_floor = reference_neighbours(G, j, 12)
        assert np.array_equal(items[j, : stored[j]], rows)
        assert np.array_equal(counts[j, : stored[j]], G[rows, j])
        assert floor[j] == pytest.approx(expected_floor, rel=1e-12)


def test_with_every_item_co_occurring_and_kept_it_is_exact_ease():
    X = random_interactions(200, 25, 0.5, seed=3)
    G = dense_gram(X)
    assert (G > 0).all()
    P = np.linalg.inv(G + 50.0 * np.eye(25))
    B = -P / np.diag(P)
    np.fill_diagonal(B, 0.0)
    model = SparseEASE(l2=50.0, density=1.0, backend="numpy", dtype="float64").fit(X, show_progress=False)
    np.testing.assert_allclose(model.S_.toarray(), B, rtol=1e-9, atol=1e-12)


def test_each_column_is_the_restricted_inverse_column():
    """With the whole sub-Gram kept, column j is -P[S, j] / P[j, j] of (G + λI) on S ∪ {j}."""
    X = random_interactions(400, 50, 0.1, seed=4)
    G = dense_gram(X)
    model = SparseEASE(l2=20.0, density=0.2, gram_factor=50, backend="numpy", dtype="float64")
    W = model.fit(X, show_progress=False).S_.toarray()
    m = weights_per_item(50, 0.2)
    for j in range(50):
        S = reference_neighbours(G, j, m)[0]
        both = np.concatenate(([j], S))
        P = np.linalg.inv(G[np.ix_(both, both)] + 20.0 * np.eye(both.size))
        np.testing.assert_allclose(W[S, j], -P[1:, 0] / P[0, 0], rtol=1e-8)
        assert np.count_nonzero(W[:, j]) == S.size


@pytest.mark.parametrize("gram_factor", [1.0, 1.5, 3.0])
def test_truncated_solves_match_the_dense_reference(gram_factor):
    X = random_interactions(500, 90, 0.06, seed=5)
    model = SparseEASE(l2=30.0, density=0.1, gram_factor=gram_factor, backend="numpy", dtype="float64")
    W = model.fit(X, show_progress=False).S_.toarray()
    m = weights_per_item(90, 0.1)
    keep = sparse_ease.gram_entries_per_item(90, m, gram_factor)
    np.testing.assert_allclose(W, reference_weights(dense_gram(X), 30.0, m, keep), rtol=1e-8, atol=1e-12)
    assert np.isfinite(W).all()


def test_float32_weights_are_float64_solves_rounded():
    X = random_interactions(500, 90, 0.06, seed=5)
    single = SparseEASE(l2=30.0, density=0.1, backend="numpy").fit(X, show_progress=False).S_
    double = SparseEASE(l2=30.0, density=0.1, backend="numpy", dtype="float64").fit(X, show_progress=False).S_
    assert single.dtype == np.float32
    np.testing.assert_array_equal(single.indices, double.indices)
    np.testing.assert_allclose(single.data, double.data, rtol=1e-4, atol=1e-6 * abs(double.data).max())


def test_a_system_float32_cannot_factorise_is_solved_in_float64():
    """Six items bought by the same users with a tiny λ: their block is singular in float32."""
    rng = np.random.default_rng(0)
    dense = rng.random((300, 12)) < 0.2
    dense[:, 1:6] = dense[:, [0]]
    dense[:150, :6] = True
    X = sp.csr_matrix(dense.astype(np.float32))
    G = dense_gram(X)
    system = G[1:6, 1:6] + 1e-6 * np.eye(5)
    assert scipy.linalg.lapack.spotrf(system.astype(np.float32), lower=1)[1] > 0  # the premise
    assert scipy.linalg.lapack.dpotrf(system, lower=1)[1] == 0
    single = SparseEASE(l2=1e-6, density=1.0, backend="numpy").fit(X, show_progress=False).S_.toarray()
    double = SparseEASE(l2=1e-6, density=1.0, backend="numpy", dtype="float64").fit(X, show_progress=False)
    np.testing.assert_array_equal(single[:, :6], double.S_.toarray()[:, :6].astype(np.float32))


def test_closer_to_ease_than_pruning_at_the_same_density(ml100k_X):
    from accel.data import Interactions, split_by_fraction
    from accel.metrics import evaluate_split

    rows, cols = ml100k_X.nonzero()
    frame = pd.DataFrame({"user": rows, "item": cols})
    split = split_by_fraction(Interactions.from_frame(frame, "user", "item"), test_fraction=0.2, seed=0)
    ours = evaluate_split(SparseEASE(l2=200, density=0.06, backend="numpy"), split, ks=(20,))
    pruned = evaluate_split(accel.PrunedEASE(l2=200, density=0.06, backend="numpy"), split, ks=(20,))
    assert ours["recall@20"] > pruned["recall@20"]


def reference_cap(S: np.ndarray, cap: int) -> np.ndarray:
    """Each row's ``cap`` largest-magnitude non-zeros, ties to the lower column, by sorting."""
    out = np.zeros_like(S)
    for i, row in enumerate(S):
        nonzero = np.nonzero(row)[0]
        order = nonzero[np.lexsort((nonzero, -np.abs(row[nonzero])))][:cap]
        out[i, order] = row[order]
    return out


@pytest.mark.parametrize("cap", [1, 2, 5, 40])
def test_cap_rows_keeps_each_rows_largest(cap):
    rng = np.random.default_rng(cap)
    dense = np.round(rng.normal(size=(30, 40)), 1)  # one decimal: many ties at the cut
    dense[rng.random(dense.shape) < 0.5] = 0.0
    dense[3] = 0.0  # an empty row
    dense[4, :3] = [0.7, -0.7, 0.7]  # a tie across signs
    capped = cap_rows(sp.csr_matrix(dense), cap)
    np.testing.assert_array_equal(capped.toarray(), reference_cap(dense, cap))
    assert np.diff(capped.indptr).max() <= cap
    assert capped.has_sorted_indices or capped.nnz == 0


def test_capped_rows_are_the_uncapped_models_largest():
    X = random_interactions(600, 80, 0.08, seed=7)
    full = SparseEASE(l2=20.0, density=0.3, backend="numpy", dtype="float64").fit(X, show_progress=False)
    rows = np.diff(full.S_.indptr)
    cap = int(np.percentile(rows, 50))
    assert rows.max() > cap  # the cap binds on half the rows
    capped = SparseEASE(l2=20.0, density=0.3, max_row_weights=cap, backend="numpy", dtype="float64")
    capped.fit(X, show_progress=False)
    np.testing.assert_array_equal(capped.S_.toarray(), reference_cap(full.S_.toarray(), cap))
    assert np.diff(capped.S_.indptr).max() == cap
    recs, _ = capped.recommend(X[:5], k=5)  # served from the capped weights
    assert recs.shape == (5, 5)


def test_memory_is_linear_in_the_catalogue_and_predicted():
    small = SparseEASE.memory_required(100_000, 5_000_000, density=1e-3, n_threads=2)
    large = SparseEASE.memory_required(1_000_000, 50_000_000, density=1e-4, n_threads=2)
    assert large < 8 * 2**30  # a million items, 100 weights each: far below n² (4 TB)
    assert large / small < 15  # 10× the items and 10× the data, at the same weights per item


def test_no_n_squared_allocation():
    X = random_interactions(3000, 3000, 0.004, seed=6)
    tracemalloc.start()
    try:
        SparseEASE(l2=10.0, density=0.01, backend="numpy").fit(X, show_progress=False)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 3000 * 3000 * 4 / 4  # a quarter of one float32 n² buffer


def test_refused_before_allocating_with_the_numbers(small_X, monkeypatch):
    model = SparseEASE(l2=10.0, backend="numpy")
    monkeypatch.setattr(sparse_ease, "available_host_memory", lambda: 10_000)
    with pytest.raises(InsufficientMemoryError) as info:
        model.fit(small_X, show_progress=False)
    message = str(info.value)
    assert "SparseEASE fit of 120 items" in message and "9.8 KiB" in message and "host memory" in message
    assert not hasattr(model, "S_") and not hasattr(model, "n_items_")


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"l2": 0.0}, "l2 must be > 0"),
        ({"l2": -1.0}, "l2 must be >= 0"),
        ({"density": 0.0}, "density must be"),
        ({"density": 1.5}, "density must be"),
        ({"gram_factor": 0.5}, "gram_factor must be"),
        ({"gram_factor": float("inf")}, "gram_factor must be"),
        ({"max_row_weights": 0}, "max_row_weights must be a positive integer"),
        ({"max_row_weights": 2.5}, "max_row_weights must be a positive integer"),
        ({"max_row_weights": True}, "max_row_weights must be a positive integer"),
    ],
)
def test_bad_parameters(small_X, params, match):
    with pytest.raises(InputError, match=match):
        SparseEASE(backend="numpy", **params).fit(small_X, show_progress=False)


def test_kernels_check_their_shapes(small_X):
    with pytest.raises(ValueError, match="keep >= 1"):
        strongest_cooccurring(small_X, 0)
    gram = strongest_cooccurring(small_X, 8)
    pop = np.ones(small_X.shape[1])
    with pytest.raises(ValueError, match="disagree in shape"):
        restricted_solves(gram._replace(counts=gram.counts[:, :4]), pop, 4, 1.0, np.dtype("float32"))
    with pytest.raises(ValueError, match="disagree in shape"):
        restricted_solves(gram._replace(floor=gram.floor[:3]), pop, 4, 1.0, np.dtype("float32"))
    with pytest.raises(ValueError, match="1 <= m <= 8"):
        restricted_solves(gram, pop, 9, 1.0, np.dtype("float32"))
    with pytest.raises(ValueError, match="stored counts"):
        restricted_solves(gram._replace(stored=gram.stored + 9), pop, 4, 1.0, np.dtype("float32"))
    with pytest.raises(ValueError, match=r"items must lie in \[0, 120\)"):
        restricted_solves(gram._replace(items=gram.items + 120), pop, 4, 1.0, np.dtype("float32"))


@pytest.mark.parametrize("n", [1, 2, 15, 16, 17, 200, 3000])
def test_the_selection_helpers_match_numpy(n):
    rng = np.random.default_rng(n)
    score = rng.integers(0, max(2, n // 8), n).astype(np.float64) / 4  # many ties
    item = rng.permutation(n).astype(np.int32)
    for k in {0, n // 3, n - 1}:
        assert ranking.kth_smallest(score.copy(), n, k) == np.sort(score)[k]
    ranked_score, ranked_item = score.copy(), item.copy()
    ranking.rank(ranked_score, ranked_item, n)
    order = np.lexsort((item, -score))
    np.testing.assert_array_equal(ranked_item, item[order])
    np.testing.assert_array_equal(ranked_score, score[order])


def test_the_command_line_fits_it(tmp_path):
    from accel.cli import main
    from accel.data import synthetic_interactions

    log = tmp_path / "log.csv"
    synthetic_interactions(200, 50, mean_per_user=8, seed=1).to_csv(log, index=False)
    out = tmp_path / "model"
    args = ["fit", str(log), "--model", "sparse_ease", "--density", "0.1", "--max-row-weights", "3"]
    code = main([*args, "--out", str(out)])
    assert code == 0
    model = accel.load_model(out)
    assert isinstance(model, SparseEASE) and model.density == 0.1 and model.max_row_weights == 3
    assert np.diff(model.S_.tocsc().indptr).max() <= weights_per_item(model.n_items_, 0.1)
    assert np.diff(model.S_.indptr).max() <= 3


def test_the_row_cap_is_refused_for_other_models(tmp_path, capsys):
    from accel.cli import main
    from accel.data import synthetic_interactions

    log = tmp_path / "log.csv"
    synthetic_interactions(100, 30, mean_per_user=6, seed=2).to_csv(log, index=False)
    code = main(["fit", str(log), "--model", "ease", "--max-row-weights", "3", "--out", str(tmp_path / "m")])
    assert code == 2
    assert "--max-row-weights applies to --model sparse_ease, not ease" in capsys.readouterr().err
    assert not (tmp_path / "m").exists()
