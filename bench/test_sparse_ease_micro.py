"""Micro benchmarks (pytest-benchmark) of the SparseEASE fit, step by step, beside exact EASE.

``pytest bench/test_sparse_ease_micro.py --benchmark-only`` times, on the seeded
2,000-item matrix of the other micro benchmarks at 6% density (120 weights per
item, 240 Gram entries): the truncated Gram, the restricted solves in each
precision, and the whole fit against exact EASE's, in one group so their ratio
comes from one run.
"""

from __future__ import annotations

import numpy as np
import pytest
from micro_data import interactions

from accel.backends.restricted_ease import restricted_solves, strongest_cooccurring
from accel.models.ease import DEFAULT_L2, EASE
from accel.models.sparse_ease import DEFAULT_GRAM_FACTOR, SparseEASE, gram_entries_per_item, weights_per_item

N_ITEMS = 2000
DENSITY = 0.06
M = weights_per_item(N_ITEMS, DENSITY)
KEEP = gram_entries_per_item(N_ITEMS, M, DEFAULT_GRAM_FACTOR)


def test_truncated_gram(benchmark) -> None:
    X = interactions(N_ITEMS)
    benchmark.group = "sparse-ease steps"
    gram = benchmark(strongest_cooccurring, X, KEEP)
    assert gram.items.shape == (N_ITEMS, KEEP)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_restricted_solves(benchmark, dtype: str) -> None:
    X = interactions(N_ITEMS)
    gram = strongest_cooccurring(X, KEEP)
    popularity = np.diff(X.tocsc().indptr).astype(np.float64)
    benchmark.group = "sparse-ease steps"
    W = benchmark(restricted_solves, gram, popularity, M, DEFAULT_L2, np.dtype(dtype))
    assert W.dtype == dtype and W.shape == (N_ITEMS, N_ITEMS)


@pytest.mark.parametrize("model", ["ease", "sparse_ease"])
def test_fit_beside_exact_ease(benchmark, model: str) -> None:
    X = interactions(N_ITEMS)
    make = {
        "ease": lambda: EASE(l2=DEFAULT_L2, backend="numpy"),
        "sparse_ease": lambda: SparseEASE(l2=DEFAULT_L2, density=DENSITY, backend="numpy"),
    }[model]
    make().fit(X, show_progress=False)  # the kernels compiled or loaded from numba's cache
    benchmark.group = f"fit of {N_ITEMS} items: SparseEASE at {DENSITY:.0%} beside exact EASE"
    fitted = benchmark.pedantic(lambda: make().fit(X, show_progress=False), rounds=7, iterations=1)
    assert fitted.n_items_ == N_ITEMS
