"""The first GPU run of accel in one command: versions, GPU tests, inverse accuracy, EASE at scale.

Run through ``scripts/gpu_check.sh [OUT_DIR]``. Steps:

a. CuPy, CUDA, the device and the Cholesky implementation in use;
b. the CuPy backend's tests and the blocked inverse's CPU tests;
c. the inverse at 20k, 50k and 80k items, exact and TF32, against a known inverse;
d. a synthetic log of 1M users × 20k items (~48M interactions): the fit and top-10 for every
   user, cold (a fresh process with an empty kernel cache) and warm, with ``fit_timings_`` and
   the memory pool's peak;
e. 1M users × 100k items: Gram and fit (exact and TF32, with top-10 agreement between them),
   the pool peak against ``EASE.memory_required``; 50k items; the largest catalogue that fits;
f. similaripy cosine (k=100) fit and top-10 on the 1M × 20k log on the host's cores.

Results go to ``OUT_DIR/summary.json`` and ``OUT_DIR/summary.md``. Where no usable CUDA device
is, only (a) and (b) run, nothing is written, and the script says why and exits 0.
Budgeted from the measured H100 timings to finish in under 10 minutes; optional steps are
skipped (with a line saying so) when the time left is short.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
#: What accel and this script import beyond NumPy/SciPy (a CUDA image may lack some).
NEEDED_MODULES = (
    "pandas",
    "pyarrow",
    "tqdm",
    "psutil",
    "matplotlib",
    "similaripy",
    "numba",
    "dask",
    "pytest",
)

TESTS = (
    "tests/test_cupy_backend.py",
    "tests/test_blocked_inverse.py",
    "tests/test_cupy_names.py",
    "tests/test_cupy_emulated.py",
)
SUMMARY_KEYS = (
    "device",
    "cupy",
    "cuda",
    "commit",
    "fit_100k_fp32_s",
    "fit_100k_tf32_s",
    "tf32_top10_agreement",
    "max_items_fitted",
    "fit_50k_s",
    "fit_50k_peak_over_n2",
    "gram_1m_100k_s",
    "top10_1m_20k_s",
    "top10_1m_100k_s",
    "job_1m_20k_warm_s",
    "job_1m_20k_cold_s",
    "similaripy_1m_20k_s",
    "speedup_vs_similaripy_1m_20k",
)
#: Synthetic logs as in the GPU notes: 50 skewed draws per user (repeats count once).
DRAWS_PER_USER = 50
POPULARITY_EXPONENT = 0.8
L2 = 500.0


@dataclass(frozen=True)
class Sizes:
    """Users and catalogue sizes of the steps (the summary keys name the full sizes)."""

    users: int = 1_000_000
    small: int = 20_000
    mid: int = 50_000
    large: int = 100_000
    inverse: tuple[int, ...] = (20_000, 50_000, 80_000)
    #: Largest catalogue tried (one n² float32 buffer caps an 80 GB card near 142k items).
    max_try: int = 140_000


FULL = Sizes()
#: Toy sizes for ``--host-dry-run``: every step on the NumPy backend in seconds.
TOY = Sizes(users=3_000, small=200, mid=250, large=500, inverse=(64, 150), max_try=600)


def log(message: str) -> None:
    print(message, flush=True)


# ---- (a) versions ----------------------------------------------------------------------------
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
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        )
        return result.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


# ---- (b) tests ---------------------------------------------------------------------------------
def missing_modules() -> list[str]:
    return [name for name in NEEDED_MODULES if importlib.util.find_spec(name) is None]


def run_tests() -> dict[str, Any]:
    """The CuPy and blocked-inverse test files in a subprocess; their summary line and exit code."""
    if importlib.util.find_spec("pytest") is None:
        return {"returncode": 0, "summary": "skipped: pytest is not installed"}
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *TESTS]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    if result.returncode not in (0, 5):
        log("\n".join(lines[-40:]))
    return {"returncode": result.returncode, "summary": lines[-1] if lines else result.stderr.strip()}


# ---- data --------------------------------------------------------------------------------------
def synthetic_log(n_users: int, n_items: int, seed: int = 0) -> sp.csr_matrix:
    """``n_users`` × ``n_items`` binary CSR: each user draws items with power-law popularity."""
    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, n_items + 1, dtype=np.float64) ** POPULARITY_EXPONENT
    cdf = np.cumsum(weights[rng.permutation(n_items)])
    cdf /= cdf[-1]
    cols = np.searchsorted(cdf, rng.random(n_users * DRAWS_PER_USER)).astype(np.int32)
    np.minimum(cols, n_items - 1, out=cols)
    rows = np.repeat(np.arange(n_users, dtype=np.int32), DRAWS_PER_USER)
    from accel.validation import binary_matrix

    return binary_matrix(rows, cols, (n_users, n_items), np.float32)


# ---- measurements ------------------------------------------------------------------------------
class Device:
    """The backends measured (CuPy exact and TF32), timers that wait for the device, pool peaks.

    ``host=True`` stands the NumPy backend in for both (``--host-dry-run``), to check the steps.
    """

    def __init__(self, host: bool = False) -> None:
        self.host = host
        if host:
            from accel.backends.numpy_backend import NumpyBackend

            self.xp, self.pool = np, None
            self.exact = self.tf32 = NumpyBackend()
            return
        import cupy

        from accel.backends.cupy.backend import CupyBackend

        self.xp, self.pool = cupy, cupy.get_default_memory_pool()
        self.exact = CupyBackend()
        self.tf32 = CupyBackend(math_mode="tf32")

    def reset_pool(self) -> None:
        self.exact.synchronize()
        if self.pool is not None:
            self.pool.free_all_blocks()

    def peak(self) -> int | None:
        """Bytes the pool holds (used + cached) since :meth:`reset_pool`: the peak of what was live."""
        self.exact.synchronize()
        return None if self.pool is None else int(self.pool.total_bytes())

    def timed(self, fn: Any) -> tuple[Any, float]:
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


def inverse_check(gpu: Device, n: int) -> dict[str, Any]:
    """Invert ``A = diag(d) + U Uᵀ`` (n × n) exact and TF32 in place; relative error on sample rows."""
    xp = gpu.xp
    d, U, rows = known_inverse_problem(n)
    want = woodbury_rows(d, U, rows)
    result: dict[str, Any] = {"n": n}
    U_dev = gpu.exact.to_device(U.astype(np.float32))
    for mode, backend in (("exact", gpu.exact), ("tf32", gpu.tf32)):
        gpu.reset_pool()
        A = backend.empty((n, n), np.dtype(np.float32))
        xp.matmul(U_dev, U_dev.T, out=A)
        backend.add_to_diagonal(A, d.astype(np.float32))
        _, seconds = gpu.timed(lambda A=A, backend=backend: backend.spd_inverse_inplace(A))
        got = backend.to_host(A[backend.to_device(rows)]).astype(np.float64)
        result[f"{mode}_s"] = round(seconds, 3)
        result[f"{mode}_rel_error"] = float(np.abs(got - want).max() / np.abs(want).max())
        result[f"{mode}_peak_over_n2"] = ratio(gpu.peak(), 4 * n * n)
        del A
    return result


def fit_and_top10(gpu: Device, X: sp.csr_matrix, backend: Any, top10: bool = True) -> dict[str, Any]:
    """Fit EASE on ``X`` and (optionally) top-10 for every row; seconds, fit_timings_, pool peak."""
    from accel.models.ease import EASE

    gpu.reset_pool()
    model, fit_s = gpu.timed(lambda: EASE(l2=L2, backend=backend).fit(X, show_progress=False))
    out: dict[str, Any] = {
        "fit_s": round(fit_s, 3),
        "fit_timings": {k: round(v, 3) for k, v in model.fit_timings_.items()},
        "fit_peak_bytes": gpu.peak(),
        "memory_required": EASE.memory_required(X.shape[1], "float32", backend, X.nnz)
        + 2 * (X.data.nbytes + X.indices.nbytes + X.indptr.nbytes),
    }
    if top10:
        (ids, _scores), out["top10_s"] = gpu.timed(lambda model=model: model.recommend(X, k=10))
        out["top10_s"] = round(out["top10_s"], 3)
        out["ids"] = ids
    del model
    gpu.reset_pool()
    return out


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

    start = time.perf_counter()
    S = similaripy.cosine(X.T.tocsr(), k=100, verbose=False, format_output="csr")
    fit_s = time.perf_counter() - start
    similaripy.dot_product(X, S.T.tocsr(), k=10, filter_cols=X, verbose=False, format_output="csr")
    total = time.perf_counter() - start
    return {"fit_s": round(fit_s, 3), "job_s": round(total, 3), "cores": os.cpu_count()}


def agreement(a: np.ndarray, b: np.ndarray) -> float:
    """Mean share of each row's top-10 that two runs have in common."""
    same = (a[:, :, None] == b[:, None, :]).any(axis=2)
    return float(same.mean())


def gpu_steps(
    gpu: Device, sizes: Sizes, summary: dict[str, Any], details: dict[str, Any], deadline: float, save: Any
) -> None:
    """Steps (c)–(f); ``save()`` after each, so a run stopped by a time limit keeps what it measured."""
    from accel.cli.info import largest_fit

    backend_name = "numpy" if gpu.host else "cupy"
    listed = ", ".join(f"{n:,}" for n in sizes.inverse)
    log(f"(c) inverse at {listed} items, exact and TF32, against a known inverse")
    details["inverse"] = []
    for n in sizes.inverse:
        row = inverse_check(gpu, n)
        details["inverse"].append(row)
        log(f"    {json.dumps(row)}")

    save()
    log(f"(d) synthetic log {sizes.users:,} users × {sizes.small:,} items")
    X_small = synthetic_log(sizes.users, sizes.small, seed=1)
    details["log_small"] = {"users": sizes.users, "items": sizes.small, "nnz": int(X_small.nnz)}
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "log.npz")
        sp.save_npz(path, X_small, compressed=False)
        env = {**os.environ, "CUPY_CACHE_DIR": os.path.join(tmp, "kernel-cache")}
        command = [sys.executable, __file__, "--cold-job", path, "--cold-backend", backend_name]
        result = subprocess.run(command, env=env, capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"the cold job failed:\n{result.stderr[-3000:]}")
        cold = json.loads(result.stdout.strip().splitlines()[-1])
    details["cold_small"] = cold
    summary["job_1m_20k_cold_s"] = cold["job_s"]
    log(f"    cold (fresh process, empty kernel cache): {json.dumps(cold)}")
    fit_and_top10(gpu, X_small, gpu.exact)  # warms this process up
    warm = fit_and_top10(gpu, X_small, gpu.exact)
    warm.pop("ids")
    details["warm_small"] = warm
    summary["top10_1m_20k_s"] = warm["top10_s"]
    summary["job_1m_20k_warm_s"] = round(warm["fit_s"] + warm["top10_s"], 3)
    log(f"    warm: {json.dumps(warm)}")

    save()
    log("(f) similaripy cosine k=100 on the same log")
    try:
        simi = similaripy_job(X_small)
        details["similaripy_small"] = simi
        summary["similaripy_1m_20k_s"] = simi["job_s"]
        summary["speedup_vs_similaripy_1m_20k"] = round(simi["job_s"] / summary["job_1m_20k_warm_s"], 2)
        log(f"    {json.dumps(simi)}")
    except ImportError as exc:
        log(f"    skipped: similaripy is not installed ({exc})")
    del X_small

    save()
    log(f"(e) synthetic log {sizes.users:,} users × {sizes.large:,} items")
    X_large = synthetic_log(sizes.users, sizes.large, seed=2)
    details["log_large"] = {"users": sizes.users, "items": sizes.large, "nnz": int(X_large.nnz)}
    exact = fit_and_top10(gpu, X_large, gpu.exact)
    summary["gram_1m_100k_s"] = exact["fit_timings"]["gram"]
    summary["fit_100k_fp32_s"] = exact["fit_s"]
    summary["top10_1m_100k_s"] = exact["top10_s"]
    summary["max_items_fitted"] = sizes.large
    tf32 = fit_and_top10(gpu, X_large, gpu.tf32)
    summary["fit_100k_tf32_s"] = tf32["fit_s"]
    summary["tf32_top10_agreement"] = round(agreement(exact.pop("ids"), tf32.pop("ids")), 4)
    for name, row in (("fit_large_exact", exact), ("fit_large_tf32", tf32)):
        row["peak_over_memory_required"] = ratio(row["fit_peak_bytes"], row["memory_required"])
        details[name] = row
        log(f"    {name}: {json.dumps(row)}")

    save()
    log(f"    {sizes.mid:,} items (the log's first {sizes.mid:,} item columns)")
    X_mid = X_large[:, : sizes.mid]
    X_mid = X_mid[np.diff(X_mid.indptr) > 0]
    del X_large
    mid = fit_and_top10(gpu, X_mid, gpu.exact, top10=False)
    summary["fit_50k_s"] = mid["fit_s"]
    summary["fit_50k_peak_over_n2"] = ratio(mid["fit_peak_bytes"], 4 * sizes.mid**2)
    details["fit_mid"] = mid
    log(f"    {json.dumps(mid)}")
    del X_mid

    save()
    step = max(1, sizes.max_try // 14)
    n_max = min(sizes.max_try, largest_fit(gpu.exact.free_memory() - (1 << 30), gpu.exact) // step * step)
    if n_max <= sizes.large:
        log(f"    largest catalogue: skipped, {n_max:,} items is the most that fits")
    elif time.monotonic() + 150 > deadline:
        log("    largest catalogue: skipped, not enough time left in the 10-minute budget")
    else:
        log(f"    largest catalogue: TF32 fit of {n_max:,} items")
        X_max = synthetic_log(sizes.users, n_max, seed=3)
        try:
            big = fit_and_top10(gpu, X_max, gpu.tf32, top10=False)
            summary["max_items_fitted"] = n_max
            details["fit_max_tf32"] = {"items": n_max, **big}
            log(f"    {json.dumps(big)}")
        except Exception as exc:  # out of memory is a result here, not a crash
            details["max_items_error"] = f"{n_max}: {type(exc).__name__}: {exc}"
            log(f"    {n_max:,} items failed: {type(exc).__name__}: {exc}")


def write_results(out: Path, summary: dict[str, Any], details: dict[str, Any]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps({**summary, "details": details}, indent=2) + "\n")
    lines = ["| measurement | value |", "|---|---|"]
    lines += [f"| {key} | {summary.get(key)} |" for key in SUMMARY_KEYS]
    if details.get("inverse"):
        lines += [
            "",
            "| n | exact s | exact rel. error | TF32 s | TF32 rel. error |",
            "|---|---|---|---|---|",
        ]
        lines += [
            f"| {r['n']:,} | {r['exact_s']} | {r['exact_rel_error']:.1e} | {r['tf32_s']} | "
            f"{r['tf32_rel_error']:.1e} |"
            for r in details["inverse"]
        ]
    (out / "summary.md").write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", nargs="?", default=None, help="results folder (default bench/results/gpu)")
    parser.add_argument("--budget", type=float, default=570.0, help="seconds for the whole run")
    parser.add_argument("--skip-tests", action="store_true", help="do not run the test files")
    parser.add_argument(
        "--cpu-similaripy-users",
        type=int,
        default=0,
        help="without a GPU: time similaripy on this many users",
    )
    parser.add_argument(
        "--host-dry-run",
        action="store_true",
        help="run every step on the NumPy backend at toy sizes to check the script (measures nothing; "
        "needs an explicit OUT folder)",
    )
    parser.add_argument("--cold-job", help=argparse.SUPPRESS)
    parser.add_argument("--cold-backend", default="cupy", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.cold_job:
        print(json.dumps(cold_job(args.cold_job, args.cold_backend)))
        return 0
    if args.host_dry_run and args.out is None:
        parser.error("--host-dry-run needs an explicit OUT folder (it must not write toy figures as results)")
    deadline = time.monotonic() + args.budget

    log("(a) environment")
    missing = missing_modules()
    if missing:
        log(f"    not installed: {', '.join(missing)} (steps that need them fail or are skipped)")
    try:
        env = environment()
    except ImportError as exc:
        log(f"failed: accel cannot be imported here: {exc}")
        return 1
    for key in ("python", "numpy", "scipy", "cupy", "cuda", "device", "cholesky", "commit"):
        log(f"    {key}: {env.get(key)}")
    tests = {"summary": "skipped (--skip-tests)", "returncode": 0}
    if not args.skip_tests:
        log("(b) " + " ".join(TESTS))
        tests = run_tests()
        log(f"    {tests['summary']}")
    tests_ok = tests["returncode"] in (0, 5)
    if not env["usable"] and not args.host_dry_run:
        if args.cpu_similaripy_users:
            X = synthetic_log(args.cpu_similaripy_users, FULL.small)
            timing = json.dumps(similaripy_job(X))
            log(f"(f) similaripy on {X.shape[0]:,} users × {FULL.small:,} items: {timing}")
        log(f"skipped: no usable CUDA device ({env['reason']})")
        return 0 if tests_ok else 1

    summary: dict[str, Any] = dict.fromkeys(SUMMARY_KEYS)
    summary.update(
        {"device": env["device"], "cupy": env["cupy"], "cuda": env["cuda"], "commit": env["commit"]}
    )
    if args.host_dry_run:
        summary.update(
            {"device": "host dry run (NumPy backend, toy sizes: not a measurement)", "dry_run": True}
        )
    details: dict[str, Any] = {"environment": env, "tests": tests}
    out = Path(args.out) if args.out else ROOT / "bench" / "results" / "gpu"
    sizes = TOY if args.host_dry_run else FULL
    details["sizes"] = {**sizes.__dict__, "inverse": list(sizes.inverse)}
    try:
        gpu_steps(
            Device(host=args.host_dry_run),
            sizes,
            summary,
            details,
            deadline,
            lambda: write_results(out, summary, details),
        )
    finally:
        write_results(out, summary, details)
        log(f"wrote {out / 'summary.json'} and {out / 'summary.md'}")
    return 0 if tests_ok else 1


if __name__ == "__main__":
    sys.exit(main())
