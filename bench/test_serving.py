"""Serving benchmarks (pytest-benchmark): top-20 for every user, seen items excluded, per model.

``pytest bench/test_serving.py --benchmark-only``. The sparse models are compared with
similaripy's own top-k on the same weights, dense EASE with its unfused pipeline, the
seed's batch recipe and pruned EASE (5% of each column of B); ``bench/serving.py`` measures the same
at full size and writes the README table.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import similaripy
from micro_data import interactions
from serving import K, seed_recipe, unfused

from accel import EASE, ItemKNN, TopPopular

N_ITEMS = 2000


@pytest.fixture(scope="module")
def X() -> sp.csr_matrix:
    return interactions(N_ITEMS)


@pytest.fixture(scope="module")
def ease(X) -> EASE:
    return EASE(backend="numpy").fit(X, show_progress=False)


@pytest.fixture(scope="module")
def knn(X) -> ItemKNN:
    return ItemKNN(similarity="cosine", k=100, backend="numpy").fit(X, show_progress=False)


def test_similaripy_reference(benchmark, X, knn):
    S, Xa = sp.csr_array(knn.S_), sp.csr_array(X)
    benchmark(lambda: similaripy.dot_product(Xa, S, k=K, filter_cols=Xa, verbose=False))


def test_itemknn(benchmark, X, knn):
    ids, _ = benchmark(lambda: knn.recommend(X, k=K))
    assert not X[np.arange(X.shape[0])[:, None], np.maximum(ids, 0)].toarray()[ids >= 0].any()


def test_toppopular(benchmark, X):
    model = TopPopular(backend="numpy").fit(X)
    benchmark(lambda: model.recommend(X, k=K))


def test_ease_dense(benchmark, X, ease):
    ids, _ = benchmark(lambda: ease.recommend(X, k=K))
    benchmark.extra_info["rows_equal_to_seed_recipe"] = float(
        (ids == seed_recipe(X, ease.B_, K)).all(axis=1).mean()
    )


def test_ease_dense_unfused(benchmark, X, ease):
    ids = benchmark(lambda: unfused(ease, X, K))
    assert np.array_equal(ids, ease.recommend(X, k=K)[0])


def test_seed_recipe(benchmark, X, ease):
    benchmark.pedantic(seed_recipe, args=(X, ease.B_, K), rounds=2)


@pytest.mark.parametrize("density", [0.02, 0.05])
def test_pruned_ease(benchmark, X, ease, density):
    pruned = ease.prune(density)
    benchmark(lambda: pruned.recommend(X, k=K))
    benchmark.extra_info["weights_nnz"] = int(pruned.S_.nnz)


@pytest.mark.parametrize("model", ["ease", "knn"])
def test_one_user(benchmark, X, model, request):
    """One user's top-20 per call: the latency of an online request, overheads included."""
    fitted, row = request.getfixturevalue(model), X[7:8]
    ids, _ = benchmark(lambda: fitted.recommend(row, k=K))
    assert not np.isin(ids, row.indices).any()
