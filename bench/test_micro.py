"""Micro benchmarks (pytest-benchmark): the EASE kernels, and accel's fit against the seed recipe.

``pytest bench --benchmark-only`` runs them; ``ACCEL_BENCH_SLOW=1`` adds 6,000 items.
The fit comparison attaches to ``extra_info``: the sgemm rate, the fit time in
units of ``n³ / sgemm rate``, and the peak RSS of one fit in a fresh subprocess.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import scipy.sparse as sp
from micro_data import interactions

from accel.backends.numpy_backend import NumpyBackend, topk_rows
from accel.models.ease import DEFAULT_L2, EASE

L2 = DEFAULT_L2
FIT_SIZES = [
    1000,
    2000,
    4000,
    pytest.param(
        6000,
        marks=pytest.mark.skipif(
            not os.environ.get("ACCEL_BENCH_SLOW"), reason="set ACCEL_BENCH_SLOW=1 for the 6,000-item fit"
        ),
    ),
]


def seed_recipe(X: sp.csr_matrix, l2: float = L2) -> np.ndarray:
    """The original notebook's EASE fit: dense float64 Gram, ``np.linalg.inv``, then scale."""
    G = X.T.dot(X).toarray().astype(np.float64)
    P = np.linalg.inv(G + l2 * np.eye(G.shape[0]))
    B = P / (-np.diag(P))
    np.fill_diagonal(B, 0.0)
    return B


def accel_fit(X: sp.csr_matrix) -> np.ndarray:
    return EASE(l2=L2, backend="numpy").fit(X, show_progress=False).B_


_PEAK_SCRIPT = textwrap.dedent("""
    import sys
    import scipy.sparse as sp
    sys.path.insert(0, {bench_dir!r})
    from accel.memory import peak_rss
    from test_micro import accel_fit, seed_recipe
    X = sp.load_npz({path!r}).tocsr()
    before = peak_rss()
    {fn}(X)
    print(peak_rss(), before)
""")


def peak_rss_of_fit(fn: str, X: sp.csr_matrix, tmp_path) -> dict[str, int]:
    """Peak RSS (bytes) of one fit by ``fn`` in a fresh Python process, and its RSS before the fit."""
    path = tmp_path / "X.npz"
    sp.save_npz(path, X)
    script = _PEAK_SCRIPT.format(bench_dir=os.path.dirname(__file__), path=str(path), fn=fn)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    peak, before = (int(v) for v in out.split())
    return {"peak_rss_bytes": peak, "rss_before_fit_bytes": before}


def _attach(benchmark, n: int, sgemm_rate: float, memory: dict[str, int]) -> None:
    """Fit time relative to ``n³ / sgemm rate`` and peak memory, for the report."""
    best = benchmark.stats.stats.min
    benchmark.extra_info.update(
        n_items=n,
        sgemm_gflops=sgemm_rate / 1e9,
        n3_over_sgemm_s=n**3 / sgemm_rate,
        fit_in_n3_sgemm_units=best / (n**3 / sgemm_rate),
        **memory,
    )


@pytest.mark.parametrize("n", FIT_SIZES)
def test_fit_accel_ease(benchmark, n: int, sgemm_rate: float, tmp_path) -> None:
    X = interactions(n)
    benchmark.group = f"EASE fit, {n} items"
    B = benchmark.pedantic(accel_fit, args=(X,), rounds=3, iterations=1, warmup_rounds=0)
    assert B.shape == (n, n) and np.all(np.diag(B) == 0)
    _attach(benchmark, n, sgemm_rate, peak_rss_of_fit("accel_fit", X, tmp_path))


@pytest.mark.parametrize("n", FIT_SIZES)
def test_fit_seed_recipe(benchmark, n: int, sgemm_rate: float, tmp_path) -> None:
    X = interactions(n)
    benchmark.group = f"EASE fit, {n} items"
    rounds = 1 if n >= 6000 else 3
    B = benchmark.pedantic(seed_recipe, args=(X,), rounds=rounds, iterations=1, warmup_rounds=0)
    assert B.shape == (n, n)
    _attach(benchmark, n, sgemm_rate, peak_rss_of_fit("seed_recipe", X, tmp_path))


def test_sgemm_rate(benchmark) -> None:
    """A float32 2048² matmul: the machine's dense rate that the fit times are measured against."""
    n = 2048
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    benchmark.group = "kernels"
    benchmark(np.matmul, a, b)
    benchmark.extra_info.update(n=n, gflops=2 * n**3 / benchmark.stats.stats.min / 1e9)


@pytest.mark.parametrize("n", [1000, 2000])
def test_gram(benchmark, n: int) -> None:
    backend = NumpyBackend()
    X = backend.sparse_to_device(interactions(n), np.dtype(np.float32))
    out = np.empty((n, n), dtype=np.float32)
    benchmark.group = "kernels"
    benchmark(backend.gram, X, out)
    assert np.allclose(out, (X.T @ X).toarray())


@pytest.mark.parametrize("n", [1000, 2000])
def test_inverse(benchmark, n: int) -> None:
    backend = NumpyBackend()
    X = interactions(n)
    G = (X.T @ X).toarray().astype(np.float32)
    G[np.diag_indices(n)] += L2
    benchmark.group = "kernels"

    def fresh() -> tuple[tuple[np.ndarray], dict]:
        return (G.copy(),), {}

    P = benchmark.pedantic(backend.spd_inverse_inplace, setup=fresh, rounds=3, iterations=1)
    assert np.allclose(P @ G, np.eye(n), atol=1e-3)


def test_scoring(benchmark) -> None:
    n = 2000
    backend = NumpyBackend()
    X = interactions(n)
    B = accel_fit(X)
    batch = backend.sparse_to_device(X[:2000], np.dtype(np.float32))
    benchmark.group = "kernels"
    scores = benchmark(backend.sparse_dense_matmul, batch, B)
    assert scores.shape == (2000, n)


def test_topk(benchmark) -> None:
    scores = np.random.default_rng(0).standard_normal((2000, 4000)).astype(np.float32)
    benchmark.group = "kernels"
    ids, values = benchmark(topk_rows, scores, 20)
    assert ids.shape == (2000, 20) and np.all(np.diff(values, axis=1) <= 0)
