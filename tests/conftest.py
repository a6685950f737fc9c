"""Shared fixtures: small random interaction matrices and the real MovieLens 100k."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

ML100K = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "ml-100k"


def random_interactions(n_users: int, n_items: int, density: float, seed: int) -> sp.csr_matrix:
    """Binary users × items CSR with skewed item popularity; every item has an interaction."""
    rng = np.random.default_rng(seed)
    popularity = 1.0 / np.arange(1, n_items + 1) ** 0.7
    popularity /= popularity.sum()
    n = max(int(n_users * n_items * density), n_items)
    rows = rng.integers(0, n_users, size=n)
    cols = rng.choice(n_items, size=n, p=popularity)
    cols[:n_items] = np.arange(n_items)
    X = sp.csr_matrix((np.ones(n, dtype=np.float32), (rows, cols)), shape=(n_users, n_items))
    X.data[:] = 1.0
    return X


@pytest.fixture
def small_X() -> sp.csr_matrix:
    return random_interactions(400, 120, 0.05, seed=7)


@pytest.fixture(scope="session")
def ml100k_dir() -> Path:
    if not (ML100K / "u.data").is_file():
        pytest.skip(f"MovieLens 100k not found at {ML100K} (the shared data folder is absent)")
    return ML100K


@pytest.fixture(scope="session")
def ml100k_X(ml100k_dir: Path) -> sp.csr_matrix:
    """ml-100k as a binary users × items matrix (ids are 1-based and dense in the original)."""
    data = np.loadtxt(ml100k_dir / "u.data", dtype=np.int64)
    users, items = data[:, 0] - 1, data[:, 1] - 1
    X = sp.csr_matrix((np.ones(len(users), dtype=np.float32), (users, items)))
    X.data[:] = 1.0
    return X


def dense_scores(model, X: sp.csr_matrix) -> np.ndarray:
    """Dense scores of every row of ``X`` from the model's scoring form, summed in the model's dtype
    (as the top-k sums them) and returned as float64: the reference a full sort ranks."""
    X = sp.csr_matrix(X, dtype=model.dtype_)
    if model.scoring == "dense":
        W = np.asarray(model.backend_.to_host(model._dense_weights()))
        return np.asarray(X @ W, dtype=np.float64)
    A, W = model._sparse_factors(X, None, None)
    return (sp.csr_matrix(A) @ sp.csr_matrix(W)).toarray().astype(np.float64)


def dense_reference(scores: np.ndarray, k: int, blocked: np.ndarray, positive: bool = True):
    """Top-k of a dense score matrix by a stable full sort: unblocked entries only (positive ones
    too, the sparse contract); ties to the lower column; padded with -1 / -inf."""
    drop = blocked | (scores <= 0) if positive else blocked
    scores = np.where(drop, -np.inf, scores)
    ids = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    values = np.take_along_axis(scores, ids, axis=1)
    ids[np.isneginf(values)] = -1
    return ids, values
