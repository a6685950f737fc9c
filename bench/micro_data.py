"""Synthetic interaction matrices and the sgemm rate, shared by the micro benchmarks and their fixtures."""

from __future__ import annotations

import functools
import time

import numpy as np
import scipy.sparse as sp

from accel.data import Interactions, synthetic_interactions

#: Users in every benchmark matrix (about 30 interactions each).
N_USERS = 20_000


@functools.lru_cache(maxsize=8)
def interactions(n_items: int, n_users: int = N_USERS) -> sp.csr_matrix:
    """Binary users × items CSR from the synthetic generator (seeded), every item kept as a column."""
    frame = synthetic_interactions(n_users, n_items, seed=1)
    X = Interactions.from_frame(frame, "user_id", "item_id").matrix()
    if X.shape[1] < n_items:  # items never drawn still count towards the catalogue
        X = sp.hstack([X, sp.csr_matrix((X.shape[0], n_items - X.shape[1]), dtype=X.dtype)]).tocsr()
    return X


def measure_sgemm_rate(n: int = 2048, repeats: int = 3) -> float:
    """Best-of-``repeats`` float32 ``n × n`` matmul rate in flop/s (2n³ flops per product)."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    a @ b  # warm up BLAS threads
    best = min(_timed(lambda: a @ b) for _ in range(repeats))
    return 2.0 * n**3 / best


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start
