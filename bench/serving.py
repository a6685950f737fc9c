"""Serving: top-20 for every user (seen items excluded) by each model, and pruned EASE against density.

Splits a synthetic log (default 100,000 users × 10,000 items, about 28 interactions
each) by time (the benchmark's 80/20 holdout), fits on the earlier part, then times
top-20 for every training user with

* similaripy's own sparse top-k, ``dot_product(X, S, k=20, filter_cols=X)``, on ItemKNN's ``S``
  (cosine, k=100): the reference for the sparse path;
* accel ItemKNN and TopPopular (sparse top-k), accel EASE (dense, fused: each row
  scored, filtered and ranked in one pass), the backend-neutral unfused pipeline on
  the same ``B`` (a scored batch, masked, then ranked: what the GPU backend runs, and
  what the CPU ran before fusion), and the seed's batch recipe (``X_b · B``, mask
  seen, ``argpartition``, sort; 10,000 users a batch);
* pruned EASE at several densities (sparse top-k), with its P@10 on the test part.

Each row gives the median seconds of ``--repeats`` timings (default 3), the size
of the saved model (MiB) and, for an online request, the median milliseconds of
``recommend`` for one user at a time (200 users spread over the log). Ratios are
measured in the same run. Writes ``bench/results/serving.json`` and
``bench/results/pruned_ease_density.png``. Run from the repository root:
``python bench/serving.py`` (``--help`` for sizes; a few minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
import similaripy

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from accel import EASE, ItemKNN, TopPopular
from accel.backends.base import Backend
from accel.bench.datasets import holdout_split, synthetic
from accel.bench.report import machine_info, write_json
from accel.metrics import evaluate
from accel.models.ease import DEFAULT_L2

RESULTS = Path(__file__).resolve().parent / "results"
K = 20
DENSITIES = (0.005, 0.01, 0.02, 0.05)
SEED_BATCH = 10_000


def unfused(model: EASE, X: sp.csr_matrix, k: int) -> np.ndarray:
    """The backend-neutral dense path on the CPU: score a batch, mask seen items, rank."""
    backend = model.backend_
    batch = Backend.dense_batch_rows(backend, X.shape[1], model.B_.itemsize)
    parts = [
        Backend.dense_topk(backend, X[s : s + batch], model.B_, k, exclude=X[s : s + batch])[0]
        for s in range(0, X.shape[0], batch)
    ]
    return np.vstack(parts)


def weights_per_interaction(S: sp.csr_matrix, X: sp.csr_matrix) -> float:
    """Stored weights in the row of ``S`` an interaction adds up, on average over ``X``'s interactions
    (dense EASE adds ``n_items``): the sparse product's work per interaction."""
    counts = np.bincount(X.indices, minlength=S.shape[0])
    return float(counts @ np.diff(S.indptr) / counts.sum())


def seed_recipe(X: sp.csr_matrix, B: np.ndarray, k: int, batch: int = SEED_BATCH) -> np.ndarray:
    """The seed notebook's serving loop: dense scores per batch, mask seen, argpartition, sort."""
    ids = np.empty((X.shape[0], k), dtype=np.int64)
    for start in range(0, X.shape[0], batch):
        Xb = X[start : start + batch]
        scores = np.asarray(Xb @ B)
        scores[Xb.nonzero()] = -np.inf
        part = np.argpartition(-scores, k, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(scores, part, axis=1), axis=1)
        ids[start : start + batch] = np.take_along_axis(part, order, axis=1)
    return ids


#: Each path is timed this many times and its median kept (``--repeats``).
REPEATS = 3

#: Single-user requests timed per model; the median is kept.
ONE_USER_CALLS = 200


def timed(fn: Any, repeats: int = REPEATS) -> tuple[float, Any]:
    """Median seconds of ``repeats`` calls of ``fn`` (the machine is shared), and its last result."""
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        seconds.append(time.perf_counter() - start)
    return float(np.median(seconds)), result


def one_user_ms(recommend: Any, X: sp.csr_matrix, calls: int = ONE_USER_CALLS) -> float:
    """Median milliseconds of ``recommend(row)`` for one user's row at a time (an online request),
    over ``calls`` users spread across ``X``; taking the row out of ``X`` is not timed."""
    users = np.linspace(0, X.shape[0] - 1, calls).astype(int)
    recommend(X[users[0] : users[0] + 1])  # compile and warm up
    seconds = []
    for user in users:
        row = X[user : user + 1]
        start = time.perf_counter()
        recommend(row)
        seconds.append(time.perf_counter() - start)
    return round(1e3 * float(np.median(seconds)), 3)


def saved_mib(model: Any) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        model.save(Path(tmp) / "m")
        return sum(f.stat().st_size for f in (Path(tmp) / "m").iterdir() if f.is_file()) / 2**20


def precision(ids: np.ndarray, split: Any, items: np.ndarray, users: np.ndarray) -> float:
    recs = np.where(ids >= 0, items[np.maximum(ids, 0)], -1)
    return evaluate(recs, split.test[users], ks=(10,), metrics=("precision",))["precision@10"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--l2", type=float, default=DEFAULT_L2)
    parser.add_argument("--out", type=Path, default=RESULTS / "serving.json")
    parser.add_argument("--repeats", type=int, default=REPEATS, help="timings per path; the median is kept")
    args = parser.parse_args(argv)
    repeats = max(1, args.repeats)

    def timed_here(fn: Any) -> tuple[float, Any]:
        return timed(fn, repeats)

    split = holdout_split(synthetic(args.users, args.items, seed=0, mean_per_user=28))
    items = split.train_items
    X = split.train[:, items].tocsr()
    X = X[np.diff(X.indptr) > 0]
    test_users = split.test_users
    X_test_rows = split.train[test_users][:, items].tocsr()
    print(f"train: {X.shape[0]:,} users × {X.shape[1]:,} items, {X.nnz:,} interactions", file=sys.stderr)

    rows: list[dict[str, Any]] = []

    def record(name: str, seconds: float, mib: float | None, **extra: Any) -> None:
        rows.append({"model": name, "seconds": round(seconds, 3), "mib": mib and round(mib, 2), **extra})
        print(f"{name:<40} {seconds:8.2f} s   {mib or 0:8.1f} MiB", file=sys.stderr)

    def top(model: Any) -> Any:
        return lambda rows: model.recommend(rows, k=K)

    knn = ItemKNN(similarity="cosine", k=100, backend="numpy").fit(X, show_progress=False)
    S = sp.csr_array(knn.S_)

    def similaripy_top(rows: sp.csr_matrix) -> Any:
        rows = sp.csr_array(rows)
        return similaripy.dot_product(rows, S, k=K, filter_cols=rows, verbose=False)

    seconds, _ = timed_here(lambda: similaripy_top(X))
    record("similaripy dot_product (ItemKNN S)", seconds, None, one_user_ms=one_user_ms(similaripy_top, X))
    seconds, _ = timed_here(lambda: knn.recommend(X, k=K))
    record("accel ItemKNN (cosine, k=100)", seconds, saved_mib(knn), one_user_ms=one_user_ms(top(knn), X))

    pop = TopPopular(backend="numpy").fit(X, show_progress=False)
    seconds, _ = timed_here(lambda: pop.recommend(X, k=K))
    record("accel TopPopular", seconds, saved_mib(pop), one_user_ms=one_user_ms(top(pop), X))

    ease = EASE(l2=args.l2, backend="numpy").fit(X, show_progress=False)
    seconds, seed_ids = timed_here(lambda: seed_recipe(X, ease.B_, K))
    record("seed batch recipe (EASE B)", seconds, None)
    seconds, (ease_ids, _) = timed_here(lambda: ease.recommend(X, k=K))
    ease_mib = saved_mib(ease)
    p10_dense = precision(ease.recommend(X_test_rows, k=10)[0], split, items, test_users)
    ease_one = one_user_ms(top(ease), X)
    record("accel EASE (dense)", seconds, ease_mib, p_at_10=round(p10_dense, 5), one_user_ms=ease_one)
    same = float((seed_ids == ease_ids).all(axis=1).mean())
    seconds, unfused_ids = timed_here(lambda: unfused(ease, X, K))
    record("accel EASE (dense, unfused pipeline)", seconds, None)
    same_unfused = bool(np.array_equal(unfused_ids, ease_ids))

    for density in DENSITIES:
        pruned = ease.prune(density)
        seconds, _ = timed_here(lambda pruned=pruned: pruned.recommend(X, k=K))
        p10 = precision(pruned.recommend(X_test_rows, k=10)[0], split, items, test_users)
        record(
            f"accel PrunedEASE density={density:g}",
            seconds,
            saved_mib(pruned),
            density=density,
            p_at_10=round(p10, 5),
            weights_per_interaction=round(weights_per_interaction(pruned.S_, X), 1),
            one_user_ms=one_user_ms(top(pruned), X),
        )

    by = {r["model"]: r for r in rows}
    dense = by["accel EASE (dense)"]
    pruned5 = by["accel PrunedEASE density=0.05"]
    ratios = {
        "itemknn_vs_similaripy": by["accel ItemKNN (cosine, k=100)"]["seconds"]
        / by["similaripy dot_product (ItemKNN S)"]["seconds"],
        "toppopular_vs_ease": by["accel TopPopular"]["seconds"] / dense["seconds"],
        "seed_recipe_vs_ease": by["seed batch recipe (EASE B)"]["seconds"] / dense["seconds"],
        "unfused_vs_ease": by["accel EASE (dense, unfused pipeline)"]["seconds"] / dense["seconds"],
        "ease_vs_pruned_0.05": dense["seconds"] / pruned5["seconds"],
        "ease_unfused_vs_pruned_0.05": by["accel EASE (dense, unfused pipeline)"]["seconds"]
        / pruned5["seconds"],
        "pruned_0.05_p10_change": pruned5["p_at_10"] / dense["p_at_10"] - 1,
        "ease_vs_pruned_0.05_size": dense["mib"] / pruned5["mib"],
        "seed_rows_identical_to_ease": same,
        "unfused_identical_to_ease": same_unfused,
    }
    payload = {
        "machine": machine_info(),
        "repeats": repeats,
        "data": {"users": X.shape[0], "items": X.shape[1], "interactions": int(X.nnz), "k": K},
        "results": rows,
        "ratios": {key: round(value, 4) for key, value in ratios.items()},
    }
    write_json(args.out, payload)
    plot(rows, dense, args.out.parent / "pruned_ease_density.png")
    print(markdown(rows), "\n", payload["ratios"])
    return 0


def markdown(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| model | top-20 for all users (s) | one user (ms) | saved model (MiB) | P@10 |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        mib = "" if r["mib"] is None else f"{r['mib']:.1f}"
        p10 = f"{r['p_at_10']:.4f}" if "p_at_10" in r else ""
        one = f"{r['one_user_ms']:.2f}" if "one_user_ms" in r else ""
        lines.append(f"| {r['model']} | {r['seconds']:.2f} | {one} | {mib} | {p10} |")
    return "\n".join(lines)


def plot(rows: list[dict[str, Any]], dense: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pruned = [r for r in rows if "density" in r]
    density = [100 * r["density"] for r in pruned]
    fig, left = plt.subplots(figsize=(6.4, 4))
    left.plot(density, [r["p_at_10"] for r in pruned], "o-", color="C0", label="pruned EASE P@10")
    left.axhline(dense["p_at_10"], color="C0", ls="--", label="dense EASE P@10")
    left.set_xscale("log")
    left.set_xticks(density, [f"{d:g}" for d in density])
    left.minorticks_off()
    left.set_xlabel("share of each column of B kept (%)")
    left.set_ylabel("P@10", color="C0")
    right = left.twinx()
    right.plot(density, [r["seconds"] for r in pruned], "s-", color="C1", label="pruned EASE scoring")
    right.axhline(dense["seconds"], color="C1", ls="--", label="dense EASE scoring")
    right.set_ylabel("top-20 for all users (s)", color="C1")
    handles = left.get_legend_handles_labels()[0] + right.get_legend_handles_labels()[0]
    left.legend(handles, [str(h.get_label()) for h in handles], fontsize=8, loc="center right")
    left.set_title("Pruned EASE: precision and serving time against density")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    raise SystemExit(main())
