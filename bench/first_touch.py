"""What the fit's first pass over its n² buffer costs before any arithmetic, in fresh processes.

Two costs land in the Gram step of a fit in a new process: numba loading its compiled
kernels from the on-disk cache, and the kernel faulting in the pages of the n² buffer
as it first writes them. This measures each alone, repetitions interleaved, one
process per measurement:

* ``numba``: the Gram kernel's first call on a 2 × 2 matrix (cached compilation loaded);
* ``touch numpy``: ``np.empty`` (NumPy asks for transparent huge pages on large arrays)
  filled once, from 1 and from 2 threads;
* ``touch accel``: the backend's n² buffer (4 KiB pages) filled the same way.

Writes ``bench/results/fit-cpu/first-touch.json``. Run from the repository root:
``python bench/first_touch.py`` (``--n``, ``--reps``; about a minute).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
OUT = HERE / "results" / "fit-cpu" / "first-touch.json"


def worker(kind: str, n: int, threads: int) -> float:
    """Seconds of one measurement of ``kind`` in this (fresh) process."""
    import numpy as np

    if kind == "numba":
        import scipy.sparse as sp

        from accel.backends.sparse_gram import gram_into

        X = sp.csr_matrix(np.ones((2, 2), dtype=np.float32))
        out = np.empty((2, 2), dtype=np.float32)
        start = time.perf_counter()
        gram_into(X, out, 1)
        return time.perf_counter() - start
    from accel.backends.numpy_backend import NumpyBackend
    from accel.backends.threads import row_chunks, run_parallel

    dtype = np.dtype(np.float32)
    start = time.perf_counter()
    buf = np.empty((n, n), dtype) if kind == "touch numpy" else NumpyBackend().empty((n, n), dtype)
    run_parallel(lambda rows: buf[rows].fill(0.0), row_chunks(n, threads), threads)
    return time.perf_counter() - start


def huge_page_settings() -> dict[str, str]:
    """The kernel's transparent huge page mode and defrag policy (Linux), as their files read."""
    folder = Path("/sys/kernel/mm/transparent_hugepage")
    return {
        name: (folder / name).read_text().strip()
        for name in ("enabled", "defrag")
        if (folder / name).exists()
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument(
        "--n", type=int, default=10_000, help="side of the n² float32 buffer (default 10,000)"
    )
    parser.add_argument("--reps", type=int, default=5, help="interleaved repetitions (default 5)")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    if args.worker:
        kind, n, threads = args.worker
        print(f"RESULT {worker(kind, int(n), int(threads))}")
        return 0
    from accel.bench.report import machine_info, write_json

    configs = [("numba", 1), ("touch numpy", 1), ("touch accel", 1), ("touch numpy", 2), ("touch accel", 2)]
    runs: dict[str, list[float]] = {f"{kind} {threads}t": [] for kind, threads in configs}
    for _ in range(args.reps):
        for kind, threads in configs:
            command = [sys.executable, str(Path(__file__)), "--worker", kind, str(args.n), str(threads)]
            done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, check=True)
            line = next(x for x in done.stdout.splitlines() if x.startswith("RESULT "))
            runs[f"{kind} {threads}t"].append(float(line.split()[1]))
    result: dict[str, Any] = {
        "machine": machine_info(),
        "transparent_hugepage": huge_page_settings(),
        "n": args.n,
        "buffer_mib": args.n**2 * 4 / 2**20,
        "runs_s": runs,
        "median_s": {label: statistics.median(values) for label, values in runs.items()},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_json(args.out, result)
    print(
        json.dumps({"transparent_hugepage": result["transparent_hugepage"], "median_s": result["median_s"]})
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
