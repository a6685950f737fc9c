"""Users scored per second: in-process ``model.recommend`` vs Dask with 1 and 2 local workers.

Fits EASE on a synthetic log (default 200,000 users × 10,000 items), then times

* ``model.recommend`` in this process (the reference; results must match exactly),
* ``accel.distributed.recommend`` (top-k arrays back) and ``recommend_to_parquet``
  (one file per chunk) on a fresh ``LocalCluster`` of 1 and of 2 worker processes,
* how the model reaches the workers: ``client.scatter(broadcast=True)`` vs a saved
  folder memory-mapped by each worker (seconds, and worker memory growth).

Prints a table and writes JSON to ``bench/results/dask_scoring.json``. Run from the
repository root:  ``python bench/dask_scoring.py`` (``--help`` for sizes).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from accel import EASE
from accel.bench.report import machine_info, write_json
from accel.data.synthetic import synthetic_interactions
from accel.distributed import connect, recommend, recommend_to_parquet
from accel.distributed.model_transfer import ModelPayload, PathRef, ship_model, worker_model


def _memory() -> tuple[int, int]:
    """This process's resident and private (unique) bytes: mapped file pages count only in the first."""
    import psutil

    info = psutil.Process().memory_full_info()
    return info.rss, info.uss


def _touch(ref: PathRef | ModelPayload) -> int:
    """Build the model on a worker and read every page of its learned state."""
    model = worker_model(ref)
    return int(sum(np.asarray(a).sum() != 0 for a in model._state().values()))


def measure_transfer(client, model: EASE) -> dict[str, dict[str, float]]:
    """Seconds until every worker has scored with the model, and worker memory growth, per transfer mode."""
    results = {}
    workers = list(client.scheduler_info()["workers"])
    for mode in ("mmap", "scatter"):
        before = client.run(_memory)
        start = time.perf_counter()
        shipped = ship_model(client, model, mode)
        ship_s = time.perf_counter() - start
        for worker in workers:
            client.submit(_touch, shipped.ref, workers=[worker], pure=False).result()
        ready_s = time.perf_counter() - start
        after = client.run(_memory)
        shipped.release(client)
        time.sleep(1.0)
        results[mode] = {
            "ship_s": round(ship_s, 3),
            "ready_on_all_workers_s": round(ready_s, 3),
            "worker_rss_growth_mib": round(max(after[w][0] - before[w][0] for w in workers) / 2**20, 1),
            "worker_private_growth_mib": round(max(after[w][1] - before[w][1] for w in workers) / 2**20, 1),
        }
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=200_000)
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--per-user", type=float, default=20.0, help="mean interactions per user")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--chunk-users", type=int, default=None, help="default: about 64 chunks")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "dask_scoring.json"))
    args = parser.parse_args(argv)

    log = synthetic_interactions(args.users, args.items, mean_per_user=args.per_user, seed=0)
    X = sp.csr_matrix(
        (np.ones(len(log), dtype=np.float32), (log["user_id"].to_numpy(), log["item_id"].to_numpy())),
        shape=(args.users, args.items),
    )
    X.sum_duplicates()
    X.data[:] = 1.0
    start = time.perf_counter()
    model = EASE(backend="numpy").fit(X, show_progress=False)
    fit_s = time.perf_counter() - start
    print(f"{args.users:,} users × {args.items:,} items, {X.nnz:,} interactions; EASE fit {fit_s:.1f} s")

    rows = []
    start = time.perf_counter()
    ref_ids, ref_scores = model.recommend(X, k=args.k)
    seconds = time.perf_counter() - start
    rows.append({"how": "in-process model.recommend", "workers": 0, "seconds": seconds})

    transfer = {}
    for n_workers in args.workers:
        start = time.perf_counter()
        with connect(n_workers=n_workers) as client:
            client.wait_for_workers(n_workers)
            startup_s = time.perf_counter() - start
            start = time.perf_counter()
            ids, scores = recommend(model, X, k=args.k, client=client, chunk_users=args.chunk_users)
            seconds = time.perf_counter() - start
            if not (np.array_equal(ids, ref_ids) and np.array_equal(scores, ref_scores)):
                raise SystemExit("distributed results differ from model.recommend")
            rows.append(
                {
                    "how": "distributed.recommend",
                    "workers": n_workers,
                    "seconds": seconds,
                    "cluster_startup_s": startup_s,
                }
            )
            with tempfile.TemporaryDirectory(prefix="accel-bench-") as tmp:
                start = time.perf_counter()
                recommend_to_parquet(
                    model, X, Path(tmp) / "recs", k=args.k, client=client, chunk_users=args.chunk_users
                )
                seconds = time.perf_counter() - start
            rows.append(
                {
                    "how": "distributed.recommend_to_parquet",
                    "workers": n_workers,
                    "seconds": seconds,
                    "cluster_startup_s": startup_s,
                }
            )
            if n_workers == max(args.workers):
                transfer = measure_transfer(client, model)

    print(f"\n{'how':<34} {'workers':>7} {'seconds':>8} {'users/s':>10}")
    for row in rows:
        row["users_per_s"] = args.users / row["seconds"]
        print(f"{row['how']:<34} {row['workers']:>7} {row['seconds']:>8.2f} {row['users_per_s']:>10,.0f}")
    print(f"\nmodel transfer to {max(args.workers)} workers (B is {model.B_.nbytes / 2**20:,.0f} MiB):")
    for mode, values in transfer.items():
        print(f"  {mode:<8} " + "  ".join(f"{k}={v}" for k, v in values.items()))

    result = {
        "benchmark": "dask_scoring",
        "users": args.users,
        "items": args.items,
        "interactions": int(X.nnz),
        "k": args.k,
        "fit_s": fit_s,
        "machine": machine_info(),
        "rows": rows,
        "model_transfer": transfer,
    }
    out = write_json(Path(args.out), result)
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
