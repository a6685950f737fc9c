"""The first GPU run of accel in one command: versions, inverse accuracy, EASE at scale, tests.

Run through ``scripts/gpu_check.sh [OUT_DIR]``. Steps, most valuable first:

1. ``environment``: CuPy, CUDA, the device, its free memory and the Cholesky in use;
2. ``inverse``: the in-place inverse at 20k, 50k and half the largest catalogue, exact and TF32
   (and the blocked Cholesky with TF32 updates at 50k), against a known inverse;
3. ``fit_100k``: a synthetic log of 1M users × 100k items, fitted exact and TF32 (Gram-phase and
   inverse-phase pool peaks), top-10 for every user, TF32 agreement, and an independent float64
   re-scoring of sampled users (rows at both sides of every batch boundary and the last row);
4. ``job_1m_20k``: 1M users × 20k items, fit and top-10 for every user, cold (a fresh process with
   an empty kernel cache) and warm;
5. ``largest``: the largest catalogue free memory allows (``EASE.memory_required``), fitted in TF32
   when the time left allows it (a guard scaled by (n / 140k)³);
6. ``fit_50k``: the first 50k items of the 100k log, with its inverse-phase pool peak;
7. ``similaripy``: cosine (k = 100) fit and top-10 on the 20k log on every host core;
8. ``tests``: the CuPy and blocked-inverse test files.

Each step runs through :meth:`Run.step`: a failure is recorded (``errors`` in the summary) with its
traceback's tail, the memory pool is freed and the next step runs. The deadline is checked before
every step (the budget counts from the shell script's start), every subprocess has a timeout, and
``summary.json`` / ``summary.md`` / ``gpu_check.log`` are rewritten atomically after every step.
Where no usable CUDA device is, only the environment and the tests run, nothing is written, and the
script says why and exits 0.
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
#: Optional packages and the steps that need them (a CUDA image may lack some).
OPTIONAL_MODULES = {
    "similaripy": "similaripy",
    "pytest": "tests",
    "dask": "tests (distributed)",
    "numba": "CPU serving",
    "pandas": "data loading",
    "pyarrow": "Parquet",
}

TESTS = (
    "tests/test_cupy_backend.py",
    "tests/test_blocked_inverse.py",
    "tests/test_cupy_names.py",
    "tests/test_cupy_emulated.py",
)
#: Summary keys, and the step that fills each.
STEP_KEYS: dict[str, tuple[str, ...]] = {
    "environment": ("device", "cupy", "cuda", "commit", "max_items_predicted"),
    "inverse": (),
    "fit_100k": (
        "fit_100k_fp32_s",
        "fit_100k_tf32_s",
        "tf32_top10_agreement",
        "gram_1m_100k_s",
        "top10_1m_100k_s",
        "rescore_agreement",
    ),
    "job_1m_20k": ("top10_1m_20k_s", "job_1m_20k_warm_s", "job_1m_20k_cold_s"),
    "largest": ("max_items_fitted",),
    "fit_50k": ("fit_50k_s", "fit_50k_peak_over_n2"),
    "similaripy": ("similaripy_1m_20k_s", "speedup_vs_similaripy_1m_20k"),
    "tests": (),
}
SUMMARY_KEYS = tuple(key for keys in STEP_KEYS.values() for key in keys)
#: Synthetic logs as in the GPU notes: 50 skewed draws per user (repeats count once).
DRAWS_PER_USER = 50
POPULARITY_EXPONENT = 0.8
L2 = 500.0
#: Bytes kept free beside the largest fit (allocator rounding, cuBLAS/cuSPARSE handles).
LARGEST_MARGIN = 1 << 30
#: Seconds a TF32 fit of 140k items took on an H100 (its inverse 28 s, plus Gram and margin).
TF32_FIT_140K_S = 45.0
#: Users re-scored independently of the GPU scoring path (besides the batch boundaries).
RESCORE_SAMPLE = 64
#: Ranks compared when re-scoring, and the tolerance on scores (float32 path against float64).
RESCORE_K = 10
RESCORE_RTOL = 1e-4


@dataclass(frozen=True)
class Sizes:
    """Users and catalogue sizes of the steps (the summary keys name the full sizes)."""

    users: int = 1_000_000
    small: int = 20_000
    mid: int = 50_000
    large: int = 100_000
    #: Inverse check sizes besides half the largest catalogue.
    inverse: tuple[int, ...] = (20_000, 50_000)
    #: The largest-catalogue try is rounded down to a multiple of this (and capped, at toy sizes).
    round_to: int = 1_000
    cap: int | None = None
    #: Seconds each step is expected to take at most (the step is skipped when less is left).
    seconds: tuple[tuple[str, float], ...] = (
        ("inverse", 60),
        ("fit_100k", 90),
        ("job_1m_20k", 60),
        ("fit_50k", 20),
        ("similaripy", 30),
        ("tests", 30),
    )


FULL = Sizes()
#: Toy sizes for ``--host-dry-run``: every step on the NumPy backend in seconds.
TOY = Sizes(users=3_000, small=200, mid=250, large=500, inverse=(64, 250), round_to=50, cap=600)


#: Every line :func:`log` printed (the log file's content when the shell script does not tee one).
LOG_LINES: list[str] = []


def log(message: str) -> None:
    LOG_LINES.append(message)
    print(message, flush=True)


def present_modules() -> dict[str, bool]:
    return {name: importlib.util.find_spec(name) is not None for name in OPTIONAL_MODULES}


# ---- environment -------------------------------------------------------------------------------
def environment() -> dict[str, Any]:
    """Versions, the commit, and whether (and which) CUDA device is usable."""
    import scipy

    from accel.backends import cupy_status

    info: dict[str, Any] = {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "commit": _commit(),
        "cupy": None,
        "cuda": None,
        "device": None,
        "host_cores": os.cpu_count(),
        "optional_packages": present_modules(),
    }
    try:
        import cupy

        info["cupy"] = cupy.__version__
        runtime = cupy.cuda.runtime.runtimeGetVersion()
        info["cuda"] = f"runtime {runtime // 1000}.{runtime % 1000 // 10}"
        driver = cupy.cuda.runtime.driverGetVersion()
        info["cuda"] += f", driver {driver // 1000}.{driver % 1000 // 10}"
    except Exception as exc:
        info["cuda_error"] = f"{type(exc).__name__}: {exc}"
    info["usable"], info["reason"] = cupy_status()
    if info["usable"]:
        from accel.backends.cupy.backend import CupyBackend

        backend = CupyBackend()
        info["device"] = backend.memory_kind().removeprefix("GPU memory (").removesuffix(")")
        info["cholesky"] = backend.cholesky_impl
        info["free_bytes"] = backend.free_memory()
    return info


def _commit() -> str:
    if os.environ.get("ACCEL_COMMIT"):
        return os.environ["ACCEL_COMMIT"]
    try:
        result = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        )
        return result.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


# ---- tests -------------------------------------------------------------------------------------
def run_tests(timeout: float) -> dict[str, Any]:
    """The CuPy and blocked-inverse test files in a subprocess; their summary line and exit code."""
    if importlib.util.find_spec("pytest") is None:
        return {"returncode": 0, "summary": "skipped: pytest is not installed"}
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *TESTS]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    if result.returncode not in (0, 5):
        log("\n".join(lines[-40:]))
    return {"returncode": result.returncode, "summary": lines[-1] if lines else result.stderr.strip()}


# ---- data --------------------------------------------------------------------------------------
def synthetic_log(n_users: int, n_items: int, seed: int = 0, xp: Any = np) -> sp.csr_matrix:
    """``n_users`` × ``n_items`` binary CSR (host): each user draws items with power-law popularity.

    ``xp`` is NumPy or CuPy; with CuPy the draws, the de-duplication and the CSR structure are
    made on the device (a 1M-user log takes seconds there, ~10 s on one host core).
    """
    rng = xp.random.RandomState(seed)
    weights = 1.0 / xp.arange(1, n_items + 1, dtype=xp.float64) ** POPULARITY_EXPONENT
    cdf = xp.cumsum(weights[rng.permutation(n_items)])
    cdf /= cdf[-1]
    cols = xp.minimum(xp.searchsorted(cdf, rng.random_sample(n_users * DRAWS_PER_USER)), n_items - 1)
    rows = xp.repeat(xp.arange(n_users, dtype=xp.int64), DRAWS_PER_USER)
    keys = xp.unique(rows * n_items + cols)
    del rows, cols
    indices = (keys % n_items).astype(xp.int32)
    indptr = xp.searchsorted(keys, xp.arange(n_users + 1, dtype=xp.int64) * n_items)
    if xp is not np:
        indices, indptr = indices.get(), indptr.get()
    data = np.ones(indices.size, dtype=np.float32)
    return sp.csr_matrix((data, indices, indptr.astype(np.int64)), shape=(n_users, n_items))


class Logs:
    """Synthetic logs, each size made once (on the device when there is one) and kept."""

    def __init__(self, users: int, xp: Any) -> None:
        self.users, self.xp = users, xp
        self._logs: dict[int, sp.csr_matrix] = {}

    def get(self, n_items: int, keep: bool = True) -> sp.csr_matrix:
        if n_items in self._logs:
            return self._logs[n_items]
        start = time.perf_counter()
        X = synthetic_log(self.users, n_items, seed=n_items, xp=self.xp)
        log(
            f"    log {self.users:,} users × {n_items:,} items: {X.nnz:,} interactions "
            f"({time.perf_counter() - start:.1f} s)"
        )
        if keep:
            self._logs[n_items] = X
        return X


# ---- measurements ------------------------------------------------------------------------------
class Device:
    """The backends measured (CuPy exact and TF32), timers that wait for the device, pool peaks.

    ``host=True`` stands the NumPy backend in for both (``--host-dry-run``), to check the steps.
    """

    def __init__(self, host: bool = False) -> None:
        self.host = host
        self.exact: Any
        self.tf32: Any
        self.tf32_blocked: Any
        if host:
            from accel.backends.numpy_backend import NumpyBackend

            self.xp, self.pool = np, None
            self.exact = self.tf32 = self.tf32_blocked = NumpyBackend()
            return
        import cupy

        from accel.backends.cupy.backend import CupyBackend

        self.xp, self.pool = cupy, cupy.get_default_memory_pool()
        self.exact = CupyBackend()
        self.tf32 = CupyBackend(math_mode="tf32")
        self.tf32_blocked = CupyBackend(math_mode="tf32", cholesky="blocked")

    def reset_pool(self) -> None:
        self.exact.synchronize()
        if self.pool is not None:
            self.pool.free_all_blocks()

    def held(self) -> int | None:
        """Bytes the pool holds (used + cached) since :meth:`reset_pool`: the peak of what was live."""
        self.exact.synchronize()
        return None if self.pool is None else int(self.pool.total_bytes())

    def timed(self, fn: Callable[[], Any]) -> tuple[Any, float]:
        self.exact.synchronize()
        start = time.perf_counter()
        result = fn()
        self.exact.synchronize()
        return result, time.perf_counter() - start


def ratio(numerator: float | None, denominator: float) -> float | None:
    return None if numerator is None else round(numerator / denominator, 3)


def woodbury_rows(d: np.ndarray, U: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Rows ``rows`` of ``(diag(d) + U Uᵀ)⁻¹`` in float64 by the Woodbury identity (no n² matrix).

    ``A⁻¹ = D⁻¹ − D⁻¹ U (I + Uᵀ D⁻¹ U)⁻¹ Uᵀ D⁻¹``.
    """
    Dinv_U = U / d[:, None]
    core = np.linalg.inv(np.eye(U.shape[1]) + U.T @ Dinv_U)
    want = -(Dinv_U[rows] @ core) @ Dinv_U.T
    want[np.arange(len(rows)), rows] += 1.0 / d[rows]
    return want


def known_inverse_problem(n: int, rank: int = 64, sample: int = 256) -> tuple[np.ndarray, ...]:
    """``d``, ``U`` (float32-exact) of an SPD ``diag(d) + U Uᵀ`` with EASE-like diagonal, sample rows."""
    rng = np.random.default_rng(n)
    d = L2 + rng.integers(0, 2000, n).astype(np.float64)
    U = rng.standard_normal((n, rank)).astype(np.float32).astype(np.float64)
    rows = np.sort(rng.choice(n, size=min(sample, n), replace=False))
    return d, U, rows


def inverse_check(gpu: Device, n: int, modes: tuple[str, ...] = ("exact", "tf32")) -> dict[str, Any]:
    """Invert ``A = diag(d) + U Uᵀ`` (n × n) in place per mode; relative error on sample rows."""
    xp = gpu.xp
    d, U, rows = known_inverse_problem(n)
    want = woodbury_rows(d, U, rows)
    backends = {"exact": gpu.exact, "tf32": gpu.tf32, "tf32_blocked": gpu.tf32_blocked}
    result: dict[str, Any] = {"n": n}
    U_dev = gpu.exact.to_device(U.astype(np.float32))
    for mode in modes:
        backend = backends[mode]
        gpu.reset_pool()
        A = backend.empty((n, n), np.dtype(np.float32))
        xp.matmul(U_dev, U_dev.T, out=A)
        backend.add_to_diagonal(A, d.astype(np.float32))
        _, seconds = gpu.timed(functools.partial(backend.spd_inverse_inplace, A))
        got = backend.to_host(A[backend.to_device(rows)]).astype(np.float64)
        result[f"{mode}_s"] = round(seconds, 3)
        result[f"{mode}_rel_error"] = float(np.abs(got - want).max() / np.abs(want).max())
        result[f"{mode}_peak_over_n2"] = ratio(gpu.held(), 4 * n * n)
        del A
    return result


def input_bytes(X: sp.csr_matrix) -> int:
    """Device bytes of X and its transpose during the Gram step."""
    return 2 * (X.data.nbytes + X.indices.nbytes + X.indptr.nbytes)


def fit(gpu: Device, X: sp.csr_matrix, tf32: bool = False) -> tuple[Any, dict[str, Any]]:
    """Fit EASE on ``X`` (``tf32``: its TF32 option); the model, seconds, ``fit_timings_``, pool peaks."""
    from accel.models.ease import EASE

    gpu.reset_pool()
    backend = gpu.exact
    model, fit_s = gpu.timed(lambda: EASE(l2=L2, backend=backend, tf32=tf32).fit(X, show_progress=False))
    peaks = dict(getattr(model.backend_, "pool_peaks", {}) or {})
    n = X.shape[1]
    out: dict[str, Any] = {
        "items": n,
        "fit_s": round(fit_s, 3),
        "fit_timings": {k: round(v, 3) for k, v in model.fit_timings_.items()},
        "fit_pool_bytes": gpu.held(),
        "gram_phase_peak_over_n2": ratio(peaks.get("gram"), 4 * n * n),
        "inverse_phase_peak_over_n2": ratio(peaks.get("inverse"), 4 * n * n),
        "memory_required": EASE.memory_required(n, "float32", backend, X.nnz) + input_bytes(X),
    }
    out["inverse_phase_peak_over_memory_required"] = ratio(peaks.get("inverse"), out["memory_required"])
    out.update({f"gram_{k}": v for k, v in (getattr(model.backend_, "gram_stats", {}) or {}).items()})
    return model, out


def top10(gpu: Device, model: Any, X: sp.csr_matrix, **kwargs: Any) -> tuple[np.ndarray, float]:
    (ids, _scores), seconds = gpu.timed(lambda: model.recommend(X, k=RESCORE_K, **kwargs))
    return ids, round(seconds, 3)


def rescore_rows(n_rows: int, batch: int, sample: int = RESCORE_SAMPLE, seed: int = 0) -> np.ndarray:
    """Sampled rows: both sides of every batch boundary (the first 32), the last row, and random ones."""
    boundaries = np.arange(batch, n_rows, batch)[:32]
    fixed = np.concatenate([boundaries - 1, boundaries, [0, n_rows - 1]])
    rng = np.random.default_rng(seed)
    extra = rng.choice(n_rows, size=min(sample, n_rows), replace=False)
    return np.unique(np.concatenate([fixed, extra]).astype(np.int64))


def rescore(B: Any, backend: Any, X: sp.csr_matrix, rows: np.ndarray, got: np.ndarray) -> dict[str, Any]:
    """Re-score ``rows`` in float64 by summing B's rows of their items, seen masked; compare ``got``.

    A row agrees when the float64 scores of ``got``'s items are, rank by rank, those of the
    reference top-k (so ties may swap items) and none of them is seen.
    """
    agree, seen_hits, worst = 0, 0, 0.0
    for row in rows:
        items = X.indices[X.indptr[row] : X.indptr[row + 1]]
        scores = backend.to_host(B[backend.to_device(items)]).astype(np.float64).sum(axis=0)
        scores[items] = -np.inf
        order = np.argsort(-scores, kind="stable")[: got.shape[1]]
        mine = got[row]
        seen_hits += int(np.isin(mine, items).sum())
        mine_scores = np.where(mine >= 0, scores[np.maximum(mine, 0)], -np.inf)
        scale = max(np.abs(scores[order]).max(), 1e-30)
        gap = float(np.abs(mine_scores - scores[order]).max() / scale)
        worst = max(worst, gap)
        agree += bool(gap <= RESCORE_RTOL and not np.isin(mine, items).any())
    return {
        "rows": len(rows),
        "agreement": round(agree / len(rows), 4),
        "seen_in_top10": seen_hits,
        "worst_relative_gap": worst,
        "last_row_checked": bool(rows[-1] == X.shape[0] - 1),
    }


def agreement(a: np.ndarray, b: np.ndarray) -> float:
    """Mean share of each row's top-10 that two runs have in common."""
    same = (a[:, :, None] == b[:, None, :]).any(axis=2)
    return float(same.mean())


def largest_try(free_bytes: int, backend: Any, nnz: int, n_users: int, round_to: int) -> int:
    """The largest float32 catalogue whose fit (``EASE.memory_required`` plus the log) fits free memory."""
    from accel.models.ease import EASE

    x_bytes = 2 * (nnz * 8 + (n_users + 1) * 8)
    budget = free_bytes - LARGEST_MARGIN - x_bytes
    lo, hi = 0, 1 << 22
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if EASE.memory_required(mid, "float32", backend, nnz) <= budget:
            lo = mid
        else:
            hi = mid - 1
    return lo // round_to * round_to


def tf32_fit_seconds(n_items: int) -> float:
    """Expected seconds of a TF32 fit of ``n_items`` (the H100's 140k fit scaled by (n / 140k)³)."""
    return TF32_FIT_140K_S * (n_items / 140_000) ** 3


def cold_job(path: str, backend: str) -> dict[str, Any]:
    """In a fresh process: fit and top-10 for every user of the saved log (kernels compile here)."""
    X = sp.load_npz(path).tocsr()
    start = time.perf_counter()
    from accel.models.ease import EASE

    model = EASE(l2=L2, backend=backend).fit(X, show_progress=False)
    model.recommend(X, k=10)
    model.backend_.synchronize()
    return {
        "job_s": round(time.perf_counter() - start, 3),
        "fit_timings": {k: round(v, 3) for k, v in model.fit_timings_.items()},
    }


def similaripy_job(X: sp.csr_matrix) -> dict[str, Any]:
    """similaripy cosine (k=100) item-item fit, then top-10 unseen items for every user, on all cores."""
    import similaripy

    threads = os.cpu_count() or 1
    start = time.perf_counter()
    S = similaripy.cosine(X.T.tocsr(), k=100, verbose=False, format_output="csr", num_threads=threads)
    fit_s = time.perf_counter() - start
    similaripy.dot_product(
        X, S.T.tocsr(), k=10, filter_cols=X, verbose=False, format_output="csr", num_threads=threads
    )
    total = time.perf_counter() - start
    return {"fit_s": round(fit_s, 3), "job_s": round(total, 3), "threads": threads}


# ---- the run -------------------------------------------------------------------------------------
class Run:
    """The summary, the details and the steps: each step guarded, timed and saved after."""

    def __init__(
        self,
        out: Path,
        summary: dict[str, Any],
        details: dict[str, Any],
        deadline: float,
        gpu: Device | None = None,
        inject: str | None = None,
    ) -> None:
        self.out, self.summary, self.details = out, summary, details
        self.deadline, self.gpu, self.inject = deadline, gpu, inject
        summary.setdefault("errors", {})
        details.setdefault("steps", {})

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def step(self, name: str, fn: Callable[[], None], needs_s: float = 0.0) -> bool:
        """Run ``fn`` unless less than ``needs_s`` is left; record an error and go on when it fails."""
        start = time.monotonic()
        record: dict[str, Any] = {}
        if self.left() < needs_s:
            record = {
                "error": f"skipped: {self.left():.0f} s left of the budget, the step needs {needs_s:.0f}"
            }
            log(f"[{name}] {record['error']}")
        else:
            log(f"[{name}] ({self.left():.0f} s left)")
            try:
                if name == self.inject:
                    raise RuntimeError(f"failure injected into step {name!r} (--inject-failure)")
                fn()
            except Exception as exc:
                tail = traceback.format_exc().strip().splitlines()[-12:]
                record = {"error": f"{type(exc).__name__}: {exc}"[:2000], "traceback_tail": "\n".join(tail)}
                log(f"    failed: {record['error']}")
        if self.gpu is not None:
            try:
                self.gpu.reset_pool()
            except Exception as exc:  # a broken device must not stop the summary being written
                record.setdefault("error", f"freeing the memory pool failed: {exc}")
        if record:
            self.summary["errors"][name] = record
        self.details["steps"][name] = {"seconds": round(time.monotonic() - start, 3), "ok": not record}
        self.save()
        return not record

    def save(self) -> None:
        missing = {
            key: f"step {step!r}: {self.summary['errors'][step]['error']}"
            for step, keys in STEP_KEYS.items()
            if step in self.summary["errors"]
            for key in keys
            if self.summary.get(key) is None
        }
        self.summary["missing_keys"] = missing
        write_results(self.out, self.summary, self.details)


def predict_largest(run: Run, gpu: Device, sizes: Sizes) -> None:
    """The largest catalogue free memory allows, before anything is allocated."""
    free = gpu.exact.free_memory()
    predicted = largest_try(free, gpu.exact, sizes.users * DRAWS_PER_USER, sizes.users, sizes.round_to)
    if sizes.cap is not None:
        predicted = min(predicted, sizes.cap)
    run.summary["max_items_predicted"] = predicted
    run.details["largest_predicted"] = {"free_bytes": free, "items": predicted}
    log(f"    largest catalogue predicted from {free:,} free bytes: {predicted:,} items")


def gpu_steps(run: Run, gpu: Device, sizes: Sizes, batch_size: int | None) -> None:
    """Every measured step after the environment, in order of value, each through :meth:`Run.step`."""
    from accel.serving.topk import default_batch_size

    summary, details = run.summary, run.details
    needs = dict(sizes.seconds)
    logs = Logs(sizes.users, gpu.xp)
    backend_name = "numpy" if gpu.host else "cupy"
    predicted = int(summary["max_items_predicted"])
    free = details["largest_predicted"]["free_bytes"]

    def inverse() -> None:
        half = predicted // 2 // sizes.round_to * sizes.round_to
        ns = sorted({*(n for n in sizes.inverse if n <= predicted), half})
        details["inverse"] = []
        failed = []
        for n in ns:
            modes = ("exact", "tf32", "tf32_blocked") if n == sizes.mid else ("exact", "tf32")
            if run.left() < 10 + 3 * tf32_fit_seconds(n):
                log(f"    {n:,}: skipped, too little time left")
                continue
            try:
                row = inverse_check(gpu, n, modes)
            except Exception as exc:  # one size failing (out of memory) leaves the others
                row = {"n": n, "error": f"{type(exc).__name__}: {exc}"[:2000]}
                failed.append(n)
            gpu.reset_pool()
            details["inverse"].append(row)
            log(f"    {json.dumps(row)}")
        if failed:
            raise RuntimeError(f"the inverse failed at {', '.join(f'{n:,}' for n in failed)} items")

    def fit_large() -> None:
        X = logs.get(sizes.large)
        model, exact = fit(gpu, X)
        summary["gram_1m_100k_s"] = exact["fit_timings"]["gram"]
        summary["fit_100k_fp32_s"] = exact["fit_s"]
        summary["max_items_fitted"] = summary["max_items_fitted"] or sizes.large
        batch = batch_size or default_batch_size(model)
        ids, summary["top10_1m_100k_s"] = top10(gpu, model, X, batch_size=batch)
        rows = rescore_rows(X.shape[0], batch)
        check = rescore(model.B_, gpu.exact, X, rows, ids)
        check["batch_rows"] = batch
        summary["rescore_agreement"] = check["agreement"]
        details["rescore_100k"] = check
        log(f"    exact: {json.dumps(exact)}")
        log(f"    re-scored in float64: {json.dumps(check)}")
        details["fit_large_exact"] = exact
        del model
        gpu.reset_pool()
        model, tf32 = fit(gpu, X, tf32=True)
        summary["fit_100k_tf32_s"] = tf32["fit_s"]
        tf32_ids, tf32["top10_s"] = top10(gpu, model, X)
        summary["tf32_top10_agreement"] = round(agreement(ids, tf32_ids), 4)
        details["fit_large_tf32"] = tf32
        log(f"    tf32: {json.dumps(tf32)}")

    def job_small() -> None:
        X = logs.get(sizes.small)
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "log.npz")
            sp.save_npz(path, X, compressed=False)
            env = {**os.environ, "CUPY_CACHE_DIR": os.path.join(tmp, "kernel-cache")}
            command = [sys.executable, __file__, "--cold-job", path, "--cold-backend", backend_name]
            timeout = max(1.0, min(run.left() - 5, 300))
            result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)
            if result.returncode != 0:
                raise RuntimeError(f"the cold job failed:\n{result.stderr[-3000:]}")
            cold = json.loads(result.stdout.strip().splitlines()[-1])
        details["cold_small"] = cold
        summary["job_1m_20k_cold_s"] = cold["job_s"]
        log(f"    cold (fresh process, empty kernel cache): {json.dumps(cold)}")
        for attempt in ("warm-up", "warm"):
            model, warm = fit(gpu, X)
            _ids, warm["top10_s"] = top10(gpu, model, X)
            del model
            gpu.reset_pool()
            log(f"    {attempt}: {json.dumps(warm)}")
        details["warm_small"] = warm
        summary["top10_1m_20k_s"] = warm["top10_s"]
        summary["job_1m_20k_warm_s"] = round(warm["fit_s"] + warm["top10_s"], 3)

    def largest() -> None:
        now = largest_try(
            gpu.exact.free_memory(), gpu.exact, sizes.users * DRAWS_PER_USER, sizes.users, sizes.round_to
        )
        n = min(predicted, now)
        details["largest_at_step"] = {"items_free_now": now, "tried": n}
        if n <= sizes.large:
            log(f"    skipped: {n:,} items is the most that fits")
            return
        guard = 30 + tf32_fit_seconds(n)
        if run.left() < guard:
            raise TimeoutError(f"{n:,} items would take about {guard:.0f} s; {run.left():.0f} s are left")
        log(f"    TF32 fit of {n:,} items (predicted from {free:,} free bytes; guard {guard:.0f} s)")
        X = logs.get(n, keep=False)
        _model, big = fit(gpu, X, tf32=True)
        summary["max_items_fitted"] = n
        details["fit_max_tf32"] = big
        log(f"    {json.dumps(big)}")

    def fit_mid() -> None:
        X = logs.get(sizes.large)[:, : sizes.mid]
        X = X[np.diff(X.indptr) > 0]
        _model, mid = fit(gpu, X)
        summary["fit_50k_s"] = mid["fit_s"]
        summary["fit_50k_peak_over_n2"] = mid["inverse_phase_peak_over_n2"]
        details["fit_mid"] = mid
        log(f"    {json.dumps(mid)}")

    def similaripy_step() -> None:
        log(f"    similaripy installed: {present_modules()['similaripy']}")
        simi = similaripy_job(logs.get(sizes.small))
        details["similaripy_small"] = simi
        summary["similaripy_1m_20k_s"] = simi["job_s"]
        log(f"    {json.dumps(simi)}")
        warm = summary["job_1m_20k_warm_s"]
        if warm is None:
            raise RuntimeError("no speed-up: the warm 1M × 20k job has no time (its step failed)")
        summary["speedup_vs_similaripy_1m_20k"] = round(simi["job_s"] / warm, 2)

    run.step("inverse", inverse, needs["inverse"])
    run.step("fit_100k", fit_large, needs["fit_100k"])
    run.step("job_1m_20k", job_small, needs["job_1m_20k"])
    run.step("largest", largest)
    run.step("fit_50k", fit_mid, needs["fit_50k"])
    run.step("similaripy", similaripy_step, needs["similaripy"])


def write_results(out: Path, summary: dict[str, Any], details: dict[str, Any]) -> None:
    """``summary.json``, ``summary.md`` and the log so far, each replaced atomically."""
    from accel.atomic import atomic_file

    out.mkdir(parents=True, exist_ok=True)
    lines = ["| measurement | value |", "|---|---|"]
    lines += [f"| {key} | {summary.get(key)} |" for key in SUMMARY_KEYS]
    for step, record in summary.get("errors", {}).items():
        lines.append(f"| error in {step} | {record['error'].splitlines()[0]} |")
    if details.get("inverse"):
        lines += ["", "| n | mode | seconds | rel. error |", "|---|---|---|---|"]
        for r in details["inverse"]:
            if "error" in r:
                lines.append(f"| {r['n']:,} | failed | {r['error'].splitlines()[0]} | |")
            for mode in ("exact", "tf32", "tf32_blocked"):
                if f"{mode}_s" in r:
                    lines.append(f"| {r['n']:,} | {mode} | {r[f'{mode}_s']} | {r[f'{mode}_rel_error']:.1e} |")
    texts = {
        "summary.json": json.dumps({**summary, "details": details}, indent=2, default=str) + "\n",
        "summary.md": "\n".join(lines) + "\n",
    }
    log_path = os.environ.get("ACCEL_GPU_CHECK_LOG")
    if log_path and os.path.exists(log_path):
        sys.stdout.flush()
        texts["gpu_check.log"] = Path(log_path).read_text(errors="replace")
    else:
        texts["gpu_check.log"] = "\n".join(LOG_LINES) + "\n"
    for name, text in texts.items():
        with atomic_file(out / name) as tmp:
            tmp.write_text(text)


def deadline_from(budget: float) -> float:
    """``time.monotonic()`` at which the budget ends, counted from the shell script's start."""
    started = os.environ.get("ACCEL_GPU_CHECK_START")
    elapsed = 0.0
    if started:
        try:
            elapsed = max(0.0, time.time() - float(started))
        except ValueError:
            elapsed = 0.0
    return time.monotonic() + budget - elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", nargs="?", default=None, help="results folder (default bench/results/gpu)")
    parser.add_argument(
        "--budget", type=float, default=540.0, help="seconds for the whole run, from the shell script's start"
    )
    parser.add_argument("--skip-tests", action="store_true", help="do not run the test files")
    parser.add_argument(
        "--host-dry-run",
        action="store_true",
        help="run every step on the NumPy backend at toy sizes to check the script (measures nothing; "
        "needs an explicit OUT folder)",
    )
    parser.add_argument(
        "--inject-failure",
        metavar="STEP",
        choices=tuple(STEP_KEYS),
        help="make STEP fail (checks the script)",
    )
    parser.add_argument("--batch-size", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--cold-job", help=argparse.SUPPRESS)
    parser.add_argument("--cold-backend", default="cupy", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.cold_job:
        print(json.dumps(cold_job(args.cold_job, args.cold_backend)))
        return 0
    if args.host_dry_run and args.out is None:
        parser.error("--host-dry-run needs an explicit OUT folder (it must not write toy figures as results)")
    deadline = deadline_from(args.budget)

    log("[versions]")
    try:
        env = environment()
    except ImportError as exc:
        log(f"failed: accel cannot be imported here: {exc}")
        return 1
    for key in ("python", "numpy", "scipy", "cupy", "cuda", "device", "cholesky", "free_bytes", "commit"):
        log(f"    {key}: {env.get(key)}")
    log(
        "    optional packages: "
        + ", ".join(f"{k} {'yes' if v else 'no'}" for k, v in env["optional_packages"].items())
    )
    if not env["usable"] and not args.host_dry_run:
        if not args.skip_tests:
            tests = run_tests(max(1.0, deadline - time.monotonic()))
            log(f"[tests] {tests['summary']}")
            if tests["returncode"] not in (0, 5):
                return 1
        log(f"skipped: no usable CUDA device ({env['reason']})")
        return 0

    summary: dict[str, Any] = dict.fromkeys(SUMMARY_KEYS)
    summary.update(
        {"device": env["device"], "cupy": env["cupy"], "cuda": env["cuda"], "commit": env["commit"]}
    )
    if args.host_dry_run:
        summary.update(
            {"device": "host dry run (NumPy backend, toy sizes: not a measurement)", "dry_run": True}
        )
    details: dict[str, Any] = {"environment": env}
    out = Path(args.out) if args.out else ROOT / "bench" / "results" / "gpu"
    sizes = TOY if args.host_dry_run else FULL
    details["sizes"] = {"users": sizes.users, "small": sizes.small, "mid": sizes.mid, "large": sizes.large}
    run = Run(out, summary, details, deadline, inject=args.inject_failure)
    tests = {"returncode": 0, "summary": "not run"}

    def start_device() -> None:
        run.gpu = Device(host=args.host_dry_run)
        predict_largest(run, run.gpu, sizes)

    def test_step() -> None:
        nonlocal tests
        if args.skip_tests:
            tests = {"returncode": 0, "summary": "skipped (--skip-tests)"}
        else:
            log(f"    pytest installed: {present_modules()['pytest']}")
            tests = run_tests(max(1.0, run.left() - 5))
        details["tests"] = tests
        log(f"    {tests['summary']}")
        if tests["returncode"] not in (0, 5):
            raise RuntimeError(f"tests failed: {tests['summary']}")

    if run.step("environment", start_device) and run.gpu is not None:
        gpu_steps(run, run.gpu, sizes, args.batch_size)
    else:  # the device did not come up: the measured steps cannot run
        for name in tuple(STEP_KEYS)[1:-1]:
            summary["errors"][name] = {"error": "skipped: the environment step failed"}
        run.save()
    run.step("tests", test_step, dict(sizes.seconds)["tests"])
    log(f"wrote {out / 'summary.json'}, {out / 'summary.md'} and {out / 'gpu_check.log'}")
    time.sleep(0.2)  # let the shell's tee catch up before the log's last copy
    run.save()
    return 0 if tests["returncode"] in (0, 5) else 1


if __name__ == "__main__":
    sys.exit(main())
