"""The CPU EASE fit, profiled per step and compared with irspack and the seed recipe, from one run.

Every measurement runs in a fresh Python process (``--worker``), one configuration at
a time, repetitions interleaved across configurations; each worker first measures
the sgemm rate (a 2048² float32 product) at its own thread count and load, so every
figure is also a ratio to the dense rate of the same moment. Configurations:

* ``accel``: ``EASE(l2=500).fit`` on the synthetic 100,000 users × 10,000 items log,
  at 1 and 2 threads, quiet and with a busy core beside it (a CPU-bound process);
  per step (Gram, factorisation, triangular inverse, ``LᵀL``, scaling) seconds and
  GFLOP/s, taken from the fit's own progress hook;
* ``inverse``: the inverse alone at 6,000 and 10,000 items, quiet and busy: LAPACK ``potrf`` +
  ``potri``, the blocked inverse on whole threaded-BLAS calls, and the blocked inverse as the fit
  runs it (its calls cut into tiles for the thread pool, :mod:`accel.backends.tiled_blas`);
* ``irspack``: irspack 0.5.x's EASE (``DenseSLIMRecommender``) on the same matrix, installed by this
  script in ``bench/.envs/irspack`` (skipped with the reason when that fails);
* ``seed`` / ``accel6k``: the seed recipe (dense float64 Gram, ``np.linalg.inv``) and
  accel at 6,000 items (20,000 users), time and peak RSS, quiet and busy;
* ``interrupt``: seconds from SIGINT to exit of a 10,000-item fit interrupted in its inverse.

Writes ``bench/results/fit-cpu/results.json`` and ``summary.md``. Run from the
repository root: ``python bench/fit_cpu.py`` (``--reps``, ``--quick``; about 20 min on 2 cores).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results" / "fit-cpu"
IRSPACK_ENV = HERE / ".envs" / "irspack"
IRSPACK_REQUIREMENT = "irspack>=0.5,<0.6"
L2 = 500.0
BUSY_LOOP = "while True: pass"


# ---- workers: each runs in its own process and prints one JSON line -------------------------------
def _sgemm_rate(n: int = 2048, repeats: int = 3) -> float:
    """Best-of-``repeats`` float32 n × n product rate in flop/s (no accel import: irspack's env runs it)."""
    import numpy as np

    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    a @ b
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2.0 * n**3 / best


def _peak_rss() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def _limit_blas(threads: int) -> None:
    from threadpoolctl import threadpool_limits

    threadpool_limits(threads)


def worker_accel(data: str, threads: int) -> dict[str, Any]:
    """One ``EASE.fit`` with per-step times from the fit's own step and block hooks."""
    import numpy as np
    import scipy.sparse as sp

    from accel import EASE
    from accel.models import ease

    X = sp.load_npz(data).tocsr()
    _limit_blas(threads)
    rate = _sgemm_rate()
    marks: list[tuple[str, int, int, float]] = []
    real_block, real_done = ease._FitSteps.block, ease._FitSteps.done

    def block(self: Any, done: int, total: int) -> None:
        marks.append(("block", done, total, time.perf_counter()))
        real_block(self, done, total)

    def step(self: Any, name: str) -> None:
        real_done(self, name)
        marks.append((name, 0, 0, time.perf_counter()))

    setattr(ease._FitSteps, "block", block)  # noqa: B010 - the hooks are patched for this process only
    setattr(ease._FitSteps, "done", step)  # noqa: B010
    before = _peak_rss()
    start = time.perf_counter()
    model = EASE(l2=L2, backend="numpy", n_threads=threads).fit(X, show_progress=False)
    total = time.perf_counter() - start
    n = model.n_items_
    at = {name: t for name, _, _, t in marks if name != "block"}
    blocks = [(d, tot, t) for name, d, tot, t in marks if name == "block"]
    steps = {"gram": at["gram"] - start}
    n_blocks = blocks[0][1]
    if n_blocks == 2:  # LAPACK: potrf, then potri (triangular inverse and LᵀL in one call)
        steps["factorisation"] = blocks[0][2] - at["gram"]
        steps["inverse_and_LtL"] = at["inverse"] - blocks[0][2]
    else:
        per_phase = n_blocks // 3
        ends = [blocks[per_phase * k - 1][2] for k in (1, 2, 3)]
        steps["factorisation"] = ends[0] - at["gram"]
        steps["triangular_inverse"] = ends[1] - ends[0]
        steps["LtL"] = ends[2] - ends[1]
        steps["symmetrise"] = at["inverse"] - ends[2]
    steps["scaling"] = at["weights"] - at["inverse"]
    pairs = float(np.square(np.diff(X.indptr).astype(np.float64)).sum())  # Σ_u nnz_u² products
    flops = {"gram": 2 * pairs, "factorisation": n**3 / 3, "triangular_inverse": n**3 / 3, "LtL": n**3 / 3}
    flops["inverse_and_LtL"] = 2 * n**3 / 3
    return {
        "seconds": total,
        "sgemm_gflops": rate / 1e9,
        "n_items": n,
        "nnz": int(X.nnz),
        "steps_s": steps,
        "steps_gflops": {k: flops[k] / v / 1e9 for k, v in steps.items() if k in flops and v > 0},
        "fit_over_n3_per_sgemm": total / (n**3 / rate),
        "peak_rss_bytes": _peak_rss(),
        "rss_before_fit_bytes": before,
        "blocks": n_blocks,
    }


def worker_inverse(n: int, threads: int, path: str) -> dict[str, Any]:
    """The inverse of an EASE-shaped ``G + λI`` alone, by ``path``: ``lapack`` (one threaded ``potrf`` +
    ``potri``), ``blas-threads`` (the blocked inverse on whole calls of the threaded BLAS) or ``tiles``
    (the blocked inverse as the fit runs it: each call cut into tiles for the thread pool)."""
    import numpy as np

    from accel.backends import _blocked_inverse as blocked
    from accel.backends import numpy_backend as nb
    from accel.backends.host_blas import HostBlasExecutor
    from accel.backends.threads import blas_threads

    sys.path.insert(0, str(HERE))
    from micro_data import interactions

    X = interactions(n)
    G = np.array((X.T @ X).toarray(), dtype=np.float32, order="C")
    G[np.diag_indices(n)] += L2
    _limit_blas(threads)
    rate = _sgemm_rate()
    backend = nb.NumpyBackend(threads)
    start = time.perf_counter()
    if path == "lapack":
        with blas_threads(threads):
            backend._lapack_inverse(G, lambda done, total: None)
    elif path == "blas-threads":
        with blas_threads(threads):
            blocked.spd_inverse_flat(HostBlasExecutor(G.dtype), G.reshape(-1), n, nb._inverse_block(n), True)
    else:
        backend.spd_inverse_inplace(G)
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "sgemm_gflops": rate / 1e9, "over_n3_per_sgemm": seconds / (n**3 / rate)}


def _timed_fit(data: str, threads: int, fit: Any) -> dict[str, Any]:
    """``fit(X)`` on the matrix saved at ``data`` with ``threads`` BLAS threads: seconds, sgemm rate, RSS."""
    import scipy.sparse as sp

    X = sp.load_npz(data).tocsr()
    _limit_blas(threads)
    rate = _sgemm_rate()
    before = _peak_rss()
    start = time.perf_counter()
    fit(X)
    seconds = time.perf_counter() - start
    return {
        "seconds": seconds,
        "n_items": X.shape[1],
        "sgemm_gflops": rate / 1e9,
        "peak_rss_bytes": _peak_rss(),
        "rss_before_fit_bytes": before,
    }


def worker_seed(data: str, threads: int) -> dict[str, Any]:
    """The seed recipe (bench/test_micro.py's ``seed_recipe``): float64 dense Gram and ``np.linalg.inv``."""
    sys.path.insert(0, str(HERE))
    from test_micro import seed_recipe

    return _timed_fit(data, threads, lambda X: seed_recipe(X, L2))


def worker_irspack(data: str, threads: int) -> dict[str, Any]:
    """irspack's EASE (``DenseSLIMRecommender``: float32 Gram, ``scipy.linalg.inv``) on the same matrix.

    Runs in irspack's own environment, so it imports nothing of accel. ``scipy.linalg.inv`` is
    wrapped with timers to split the fit into its steps: the sparse Gram and ``todense`` before
    the inverse, the inverse (SciPy from 1.17 detects a symmetric matrix and inverts it through
    ``potrf`` + ``potri``: n³ flops), and the scaling after it.
    """
    from importlib import metadata

    import scipy
    from irspack import DenseSLIMRecommender
    from scipy import linalg

    marks: dict[str, float] = {}
    real_inv = linalg.inv

    def timed_inv(*args: Any, **kwargs: Any) -> Any:
        marks["inverse_start"] = time.perf_counter()
        try:
            return real_inv(*args, **kwargs)
        finally:
            marks["inverse_end"] = time.perf_counter()

    def fit(X: Any) -> None:
        marks["start"] = time.perf_counter()
        DenseSLIMRecommender(X, reg=L2).learn()
        marks["end"] = time.perf_counter()

    linalg.inv = timed_inv  # irspack looks it up on the module at each call
    try:
        result = _timed_fit(data, threads, fit)
    finally:
        linalg.inv = real_inv
    n = result["n_items"]
    steps = {
        "gram_and_todense": marks["inverse_start"] - marks["start"],
        "inverse": marks["inverse_end"] - marks["inverse_start"],
        "scaling": marks["end"] - marks["inverse_end"],
    }
    return {
        **result,
        "version": metadata.version("irspack"),
        "scipy": scipy.__version__,
        "steps_s": steps,
        "steps_gflops": {"inverse": n**3 / steps["inverse"] / 1e9},
    }


WORKERS: dict[str, Callable[..., dict[str, Any]]] = {
    "accel": worker_accel,
    "inverse": worker_inverse,
    "seed": worker_seed,
    "irspack": worker_irspack,
}


# ---- driver ---------------------------------------------------------------------------------------
def run_worker(python: str, kind: str, busy: bool, timeout: float, **kwargs: Any) -> dict[str, Any]:
    """One measurement in a fresh process (beside a CPU-bound process when ``busy``)."""
    hog = subprocess.Popen([sys.executable, "-c", BUSY_LOOP]) if busy else None
    try:
        time.sleep(0.5 if busy else 0)
        proc = subprocess.run(
            [python, str(Path(__file__)), "--worker", kind, json.dumps(kwargs)],
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=ROOT,
        )
    except subprocess.TimeoutExpired:
        return {"status": "timeout", "reason": f"over {timeout:.0f} s"}
    finally:
        if hog is not None:
            hog.kill()
            hog.wait()
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return {"status": "failed", "reason": tail}
    return {"status": "ok", **json.loads(lines[-1][len("RESULT ") :])}


def install_irspack() -> tuple[str | None, str]:
    """irspack's interpreter in its own venv under bench/.envs (created once), or ``None`` and why."""
    python = IRSPACK_ENV / "bin" / "python"
    check = [str(python), "-c", "import irspack, threadpoolctl"]
    if python.exists() and subprocess.run(check, capture_output=True).returncode == 0:
        return str(python), "installed"
    try:
        subprocess.run([sys.executable, "-m", "venv", str(IRSPACK_ENV)], check=True, capture_output=True)
        pip = [str(python), "-m", "pip", "install", "-q", IRSPACK_REQUIREMENT, "threadpoolctl"]
        done = subprocess.run(pip, capture_output=True, text=True, timeout=900)
    except (subprocess.SubprocessError, OSError) as exc:
        return None, f"could not create the venv: {exc}"
    if done.returncode != 0:
        return None, "pip failed: " + (done.stderr.strip().splitlines() or ["no output"])[-1]
    return str(python), "installed now"


def save_matrices(folder: Path, quick: bool) -> dict[str, str]:
    """The 100k × 10k synthetic log and the 6k-item seed-comparison matrix, as .npz files."""
    import scipy.sparse as sp

    sys.path.insert(0, str(HERE))
    from micro_data import interactions

    sizes = {"log": (10_000, 100_000), "6k": (6000, 20_000)}
    if quick:
        sizes = {"log": (2000, 20_000), "6k": (1500, 5000)}
    paths = {}
    for name, (n_items, n_users) in sizes.items():
        paths[name] = str(folder / f"{name}.npz")
        sp.save_npz(paths[name], interactions(n_items, n_users))
    return paths


def plan(paths: dict[str, str], irspack: str | None, quick: bool) -> list[tuple[str, str, str, bool, dict]]:
    """(label, python, worker, busy, kwargs) for every configuration, in the order of one repetition."""
    me = sys.executable
    sizes = (1000, 1500) if quick else (6000, 10_000)
    configs: list[tuple[str, str, str, bool, dict]] = []
    for busy in (False, True):
        tag = "busy" if busy else "quiet"
        for threads in (2, 1):
            configs.append(
                (f"accel {threads}t {tag}", me, "accel", busy, {"data": paths["log"], "threads": threads})
            )
        if irspack:
            configs.append(
                (f"irspack 2t {tag}", irspack, "irspack", busy, {"data": paths["log"], "threads": 2})
            )
        configs.append((f"seed6k 2t {tag}", me, "seed", busy, {"data": paths["6k"], "threads": 2}))
        configs.append((f"accel6k 2t {tag}", me, "accel", busy, {"data": paths["6k"], "threads": 2}))
    for n in sizes:
        for path in ("lapack", "blas-threads", "tiles"):
            kwargs = {"n": n, "threads": 2, "path": path}
            configs.append((f"inverse {n} {path} quiet", me, "inverse", False, kwargs))
        for path in ("blas-threads", "tiles"):
            kwargs = {"n": n, "threads": 2, "path": path}
            configs.append((f"inverse {n} {path} busy", me, "inverse", True, kwargs))
    return configs


def interrupt_latency(data: str, wait: float) -> dict[str, Any]:
    """Seconds from SIGINT (sent ``wait`` s into a fit, in its inverse) to the fitting process's exit.

    The child gets SIGINT's default action back before it starts: a shell running this script in
    the background hands it down ignored, and Python then installs no KeyboardInterrupt.
    """
    code = (
        f"import scipy.sparse as sp, accel; X = sp.load_npz({data!r}).tocsr(); "
        f"accel.EASE(l2={L2!r}, backend='numpy').fit(X, show_progress=False)"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        stderr=subprocess.DEVNULL,
        cwd=ROOT,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    time.sleep(wait)
    if proc.poll() is not None:
        return {"status": "failed", "reason": f"the fit ended within {wait} s"}
    sent = time.perf_counter()
    proc.send_signal(signal.SIGINT)
    code_at_exit = proc.wait()
    if code_at_exit == 0:
        return {"status": "failed", "reason": "the fit ran to its end: SIGINT did not stop it"}
    return {"status": "ok", "seconds_to_exit": time.perf_counter() - sent, "sent_after_s": wait}


def median_of(runs: list[dict], key: str) -> float | None:
    values = [r[key] for r in runs if r.get("status") == "ok" and key in r]
    return statistics.median(values) if values else None


def summarise(runs: dict[str, list[dict]]) -> dict[str, Any]:
    """Medians per configuration and the targets, each a ratio of figures from this run."""
    med = {
        label: {k: median_of(rs, k) for k in ("seconds", "sgemm_gflops", "peak_rss_bytes")}
        for label, rs in runs.items()
    }

    def ratio(a: str, b: str, key: str = "seconds") -> float | None:
        x, y = med.get(a, {}).get(key), med.get(b, {}).get(key)
        return x / y if x and y else None

    fit_units = median_of(runs.get("accel 2t quiet", []), "fit_over_n3_per_sgemm")
    seed_slow, accel_slow = (
        ratio("seed6k 2t busy", "seed6k 2t quiet"),
        ratio("accel6k 2t busy", "accel6k 2t quiet"),
    )
    targets = {
        "fit_over_n3_per_sgemm_10k (<= 1.1)": fit_units,
        "accel_over_irspack_time (<= 0.5)": ratio("accel 2t quiet", "irspack 2t quiet"),
        "accel_over_irspack_time_busy": ratio("accel 2t busy", "irspack 2t busy"),
        "seed_over_accel_time_6k (>= 7)": ratio("seed6k 2t quiet", "accel6k 2t quiet"),
        "accel_over_seed_peak_rss_6k (<= 0.2)": ratio(
            "accel6k 2t quiet", "seed6k 2t quiet", "peak_rss_bytes"
        ),
        "busy_slowdown_accel_6k": accel_slow,
        "busy_slowdown_seed_6k": seed_slow,
        "busy_slowdown_accel_10k_2t": ratio("accel 2t busy", "accel 2t quiet"),
        "busy_slowdown_accel_10k_1t": ratio("accel 1t busy", "accel 1t quiet"),
        "busy_slowdown_irspack_10k": ratio("irspack 2t busy", "irspack 2t quiet"),
        **{  # the inverse alone, each path against the blocked inverse on whole threaded-BLAS calls
            f"inverse_{n}_{kind}_{path}": ratio(
                f"inverse {n} {path} {kind}", f"inverse {n} blas-threads {kind}"
            )
            for n in (6000, 10_000)
            for path, kind in (("tiles", "quiet"), ("tiles", "busy"), ("lapack", "quiet"))
        },
        **{
            f"busy_slowdown_inverse_{n}_{path}": ratio(
                f"inverse {n} {path} busy", f"inverse {n} {path} quiet"
            )
            for n in (6000, 10_000)
            for path in ("blas-threads", "tiles")
        },
    }
    return {"medians": med, "targets": targets}


def summary_markdown(result: dict[str, Any]) -> str:
    machine, summary = result["machine"], result["summary"]
    lines = [
        "# CPU EASE fit (bench/fit_cpu.py)",
        "",
        f"Machine: {machine['cpu']}, {machine['cpu_cores']} cores, load average {result['load_at_start']} "
        f"at the start (a shared machine). {result['reps']} interleaved repetitions, "
        "a fresh process each; every ratio below is between figures of this one run.",
        "",
        "| configuration | median s | sgemm GFLOP/s | peak RSS MiB | runs (s) |",
        "|---|---|---|---|---|",
    ]
    for label, runs in result["runs"].items():
        m = summary["medians"][label]
        times = ", ".join(f"{r['seconds']:.1f}" if r.get("status") == "ok" else r["status"] for r in runs)
        rss = f"{m['peak_rss_bytes'] / 2**20:.0f}" if m["peak_rss_bytes"] else "–"
        secs = f"{m['seconds']:.2f}" if m["seconds"] else "–"
        gf = f"{m['sgemm_gflops']:.0f}" if m["sgemm_gflops"] else "–"
        lines.append(f"| {label} | {secs} | {gf} | {rss} | {times} |")
    lines += ["", "Targets (ratios from this run):", ""]
    for name, value in summary["targets"].items():
        lines.append(f"- {name}: " + ("–" if value is None else f"{value:.2f}"))
    lines += ["", "Per-step seconds (GFLOP/s) of the 10,000-item fit, median repetition:", ""]
    for label in [k for k in result["runs"] if k.startswith(("accel ", "irspack ")) and "6k" not in k]:
        ok = [r for r in result["runs"][label] if r.get("status") == "ok"]
        if ok:
            r = sorted(ok, key=lambda r: r["seconds"])[len(ok) // 2]
            parts = [
                f"{k} {v:.2f}" + (f" ({r['steps_gflops'][k]:.0f})" if k in r["steps_gflops"] else "")
                for k, v in r["steps_s"].items()
            ]
            lines.append(f"- {label}: " + ", ".join(parts))
    if result.get("irspack_note"):
        lines += ["", f"irspack: {result['irspack_note']}"]
    if result.get("interrupt"):
        lines += ["", f"Ctrl-C during the 10,000-item inverse: {result['interrupt']}"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("kwargs", nargs="?", help=argparse.SUPPRESS)
    parser.add_argument("--reps", type=int, default=2, help="interleaved repetitions (default 2)")
    parser.add_argument("--quick", action="store_true", help="small sizes, to check the script")
    parser.add_argument("--no-irspack", action="store_true", help="skip irspack")
    parser.add_argument("--out", type=Path, default=RESULTS, help="results folder")
    args = parser.parse_args(argv)
    if args.worker:
        print("RESULT " + json.dumps(WORKERS[args.worker](**json.loads(args.kwargs))), flush=True)
        return 0
    from accel.bench.report import machine_info, write_json, write_text

    started = time.time()
    irspack, note = (None, "skipped (--no-irspack)") if args.no_irspack else install_irspack()
    with tempfile.TemporaryDirectory() as tmp:
        paths = save_matrices(Path(tmp), args.quick)
        configs = plan(paths, irspack, args.quick)
        runs: dict[str, list[dict]] = {label: [] for label, *_ in configs}
        load = os.getloadavg()[0]
        for rep in range(args.reps):
            for label, python, kind, busy, kwargs in configs:
                result = run_worker(python, kind, busy, timeout=600, **kwargs)
                runs[label].append(result)
                shown = f"{result['seconds']:.2f} s" if result["status"] == "ok" else result.get("reason", "")
                print(f"rep {rep} {label}: {result['status']} {shown}", flush=True)
        interrupt = interrupt_latency(paths["log"], wait=2.0 if args.quick else 5.0)
    result = {
        "machine": machine_info(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "load_at_start": round(load, 2),
        "reps": args.reps,
        "irspack_note": note if irspack is None else f"{IRSPACK_REQUIREMENT} ({note})",
        "runs": runs,
        "interrupt": interrupt,
        "wall_s": time.time() - started,
    }
    result["summary"] = summarise(runs)
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(args.out / "results.json", result)
    write_text(args.out / "summary.md", summary_markdown(result))
    print(summary_markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
