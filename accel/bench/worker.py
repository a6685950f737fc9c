"""One benchmark measurement in a fresh process: fit, recommend for every user, score, report.

The runner starts ``python -m accel.bench.worker TASK.json`` once per model so
that peak memory, allocator pools and thread state never carry over from one
model to the next. The task names the split (a ``.npz`` written by the runner),
the model spec and where to write the result; the result is written atomically
whatever happens, with ``status`` ``ok``, ``does not fit`` or ``failed``.
"""

from __future__ import annotations

import json
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from accel.atomic import atomic_file
from accel.bench.specs import ModelSpec, build_model
from accel.errors import InsufficientMemoryError, format_bytes
from accel.memory import peak_rss

#: The list lengths the report's metrics use; recommendations are made once at the longest.
METRIC_KS = {"precision@10": 10, "recall@20": 20, "ndcg@10": 10, "map@12": 12, "coverage@10": 10}
RECOMMEND_K = max(METRIC_KS.values())


def load_split(path: str | Path) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """The ``train`` and ``test`` matrices saved by :func:`save_split`."""
    with np.load(path) as f:
        mats = []
        for name in ("train", "test"):
            shape = tuple(f[f"{name}_shape"])
            mats.append(
                sp.csr_matrix((f[f"{name}_data"], f[f"{name}_indices"], f[f"{name}_indptr"]), shape=shape)
            )
    return mats[0], mats[1]


def save_split(path: str | Path, train: sp.csr_matrix, test: sp.csr_matrix) -> Path:
    """Write train/test CSR matrices to one ``.npz`` (atomically) for workers to load."""
    arrays = {}
    for name, X in (("train", sp.csr_matrix(train)), ("test", sp.csr_matrix(test))):
        arrays.update(
            {
                f"{name}_data": X.data,
                f"{name}_indices": X.indices,
                f"{name}_indptr": X.indptr,
                f"{name}_shape": np.array(X.shape),
            }
        )
    path = Path(path)
    with atomic_file(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, **arrays)
    return path


def evaluate(ids: np.ndarray, users: np.ndarray, test: sp.csr_matrix) -> dict[str, float]:
    """The report's metrics (:mod:`accel.metrics`) for the lists ``ids`` of rows ``users``.

    Only users with held-out items count, as in :func:`accel.metrics.evaluate`.
    """
    from accel import metrics

    position = np.full(test.shape[0], -1, dtype=np.int64)
    position[users] = np.arange(users.size)
    judged = np.flatnonzero(np.diff(test.indptr) > 0)
    if np.any(position[judged] < 0):
        raise ValueError("some test users have no training interactions")
    recommended = ids[position[judged]]
    relevant = test[judged]
    return {
        "precision@10": metrics.precision_at_k(recommended, relevant, 10),
        "recall@20": metrics.recall_at_k(recommended, relevant, 20),
        "ndcg@10": metrics.ndcg_at_k(recommended, relevant, 10),
        "map@12": metrics.map_at_k(recommended, relevant, 12),
        "coverage@10": metrics.coverage(recommended, test.shape[1], k=10),
    }


def _gpu_pool_bytes(model: Any) -> int | None:
    """Bytes the CuPy memory pool holds (it keeps freed blocks, so this is its high-water mark)."""
    backend = getattr(model, "backend_", None)
    if getattr(backend, "name", None) != "cupy":
        return None
    import cupy

    return int(cupy.get_default_memory_pool().total_bytes())


def _recommend(model: Any, spec: ModelSpec, X: sp.csr_matrix, task: dict[str, Any]) -> np.ndarray:
    """Top-``RECOMMEND_K`` ids for every row of ``X``, locally or on a Dask cluster."""
    if spec.scorer != "dask":
        return model.recommend(X, k=RECOMMEND_K)[0]
    from accel import distributed

    client = None
    if task.get("scheduler") or task.get("workers") or task.get("dask_threads"):
        processes = not task.get("dask_threads")  # threads: no cluster start-up in a quick run
        client = distributed.connect(task.get("scheduler"), task.get("workers"), processes=processes)
    try:
        return np.asarray(distributed.recommend(model, X, k=RECOMMEND_K, client=client)[0])
    finally:
        if client is not None:
            client.close()


def fits_in_memory(spec: ModelSpec, train: sp.csr_matrix, memory_limit: int | None) -> str | None:
    """A "does not fit" reason for an EASE fit larger than free memory (or ``memory_limit``), else None."""
    if spec.model != "EASE":
        return None
    from accel.backends import get_backend
    from accel.models.ease import EASE

    backend = get_backend(spec.params.get("backend", "auto"))
    dtype = spec.params.get("dtype", "float32")
    needed = EASE.memory_required(train.shape[1], dtype, backend, n_interactions=train.nnz)
    needed += train.data.nbytes + train.indices.nbytes
    free = backend.free_memory()
    available = free if memory_limit is None else min(free, int(memory_limit))
    if needed <= available:
        return None
    return f"needs {format_bytes(needed)} of {backend.memory_kind()}, {format_bytes(available)} available"


def run_task(task: dict[str, Any]) -> dict[str, Any]:
    """Measure one model on one split; never raises for a model's own failure."""
    spec = ModelSpec.from_dict(task["spec"])
    result: dict[str, Any] = {"model": spec.name, "spec": spec.to_dict(), "status": "ok", "reason": None}
    result["baseline_rss_bytes"] = peak_rss()  # Python, NumPy, SciPy and accel, before any data
    try:
        train, test = load_split(task["split"])
        result.update(n_users=int(train.shape[0]), n_items=int(train.shape[1]), train_nnz=int(train.nnz))
        reason = fits_in_memory(spec, train, task.get("memory_limit"))
        if reason is not None:
            result.update(status="does not fit", reason=reason)
            return result
        model = build_model(spec)
        result["rss_before_fit_bytes"] = peak_rss()
        start = time.perf_counter()
        model.fit(train, show_progress=False)
        result["fit_s"] = time.perf_counter() - start
        users = np.flatnonzero(np.diff(train.indptr) > 0)
        start = time.perf_counter()
        # One row first: the host top-k kernels compile on first use (once per install, cached on
        # disk), a cost kept out of the serving time and reported on its own.
        model.recommend(train[users[:1]], k=RECOMMEND_K)
        result["warmup_s"] = time.perf_counter() - start
        start = time.perf_counter()
        ids = _recommend(model, spec, train[users], task)
        result["recommend_s"] = time.perf_counter() - start
        result["recommended_users"] = int(users.size)
        result["peak_rss_bytes"] = peak_rss()
        result["peak_gpu_bytes"] = _gpu_pool_bytes(model)
        if task.get("evaluate", True):
            result.update(evaluate(ids, users, test))
    except InsufficientMemoryError as exc:
        result.update(status="does not fit", reason=str(exc))
    except Exception as exc:
        result.update(
            status="failed", reason=f"{type(exc).__name__}: {exc}", traceback=traceback.format_exc(limit=8)
        )
    return result


def main(argv: list[str] | None = None) -> int:
    """``python -m accel.bench.worker TASK.json``: run the task and write its result file."""
    argv = sys.argv[1:] if argv is None else argv
    task = json.loads(Path(argv[0]).read_text())
    result = run_task(task)
    with atomic_file(task["result"]) as tmp:
        tmp.write_text(json.dumps(result, indent=2, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
