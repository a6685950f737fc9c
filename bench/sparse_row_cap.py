"""SparseEASE's ``max_row_weights``: serving time and accuracy with each item's row capped.

Each column of SparseEASE's ``B`` holds ``m`` weights, but a popular item is among the
strongest co-occurrences of almost every item, so its row (the items it leads to)
grows long, and scoring a user costs the lengths of the rows of the items they have.
This fits SparseEASE on the same 80/20 split (``past_n2.holdout``, seed 0) with the
rows uncapped and capped at 10·m, 3·m and m weights, and records for each the fit
seconds, the weights kept, the longest row, top-20 seconds for the scored users and
Recall@20 / NDCG@20 / P@10 on them (one process, one run each, after an untimed
warm-up fit). Datasets: MovieLens 100k (6% density, λ = 200), the 100k × 10k synthetic
log (0.5%, λ = 500) and the scale logs of ``past_n2.py`` (100 weights per item, λ = 200;
20,000 sampled test users). Writes ``bench/results/past-n2/row-cap.json``. Run from
the repository root: ``python bench/sparse_row_cap.py [--sizes 200000 1000000]``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from past_n2 import holdout, load_dataset, scores  # noqa: E402

from accel import SparseEASE  # noqa: E402
from accel.bench.report import machine_info, write_json  # noqa: E402
from accel.models.sparse_ease import weights_per_item  # noqa: E402

RESULTS = HERE / "results" / "past-n2" / "row-cap.json"
#: (dataset, density, λ) of the small logs; the scale logs keep 100 weights per item.
SMALL = (("ml-100k", 0.06, 200.0), ("synthetic-100k-10k", 0.005, 500.0))
SCALE_L2 = 200.0
CAPS = (None, 10, 3, 1)  # multiples of m
SCORED_USERS = 20_000
K = 20


def rows_of(S: sp.csr_matrix) -> np.ndarray:
    return np.diff(S.indptr)


def measure(name: str, X: sp.csr_matrix, density: float, l2: float) -> list[dict[str, Any]]:
    """One fit and top-20 per cap on ``X``'s split; a row per cap."""
    train, test = holdout(X, 0.2, seed=0)
    users = np.nonzero(np.diff(test.indptr) > 0)[0]
    if users.size > SCORED_USERS:
        users = np.sort(np.random.default_rng(3).choice(users, SCORED_USERS, replace=False))
    m = weights_per_item(X.shape[1], density)
    rows = []
    for factor in CAPS:
        cap = None if factor is None else factor * m
        model = SparseEASE(l2=l2, density=density, max_row_weights=cap, backend="numpy")
        start = time.perf_counter()
        model.fit(train, show_progress=False)
        fit_s = time.perf_counter() - start
        start = time.perf_counter()
        recs, _ = model.recommend(train[users], k=K)
        topk_s = time.perf_counter() - start
        target = (test[users], np.arange(X.shape[1]))
        row = {
            "dataset": name,
            "items": X.shape[1],
            "weights_per_item": m,
            "max_row_weights": cap,
            "l2": l2,
            "fit_s": fit_s,
            "weights": int(model.S_.nnz),
            "longest_row": int(rows_of(model.S_).max()),
            "scored_users": int(users.size),
            "topk_s": topk_s,
            **scores(recs, target),
        }
        print(
            f"{name} cap {cap}: fit {fit_s:.1f} s, {row['weights']:,} weights (longest row "
            f"{row['longest_row']:,}), top-{K} {topk_s:.2f} s, Recall@{K} {row['recall20']:.4f}",
            flush=True,
        )
        rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[200_000], help="scale logs (items)")
    parser.add_argument("--shared", type=Path, default=HERE.parent.parent / "shared" / "data")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    warm = load_dataset("scale-10000", args.shared)
    SparseEASE(l2=SCALE_L2, density=0.01, max_row_weights=5, backend="numpy").fit(warm, show_progress=False)
    rows: list[dict[str, Any]] = []
    for name, density, l2 in SMALL:
        if name == "ml-100k" and not (args.shared / "ml-100k" / "u.data").exists():
            print(f"ml-100k skipped: not found under {args.shared}")
            continue
        rows += measure(name, load_dataset(name, args.shared), density, l2)
    for n_items in args.sizes:
        name = f"scale-{n_items}"
        rows += measure(name, load_dataset(name, args.shared), 100 / n_items, SCALE_L2)
    command = "python bench/sparse_row_cap.py --sizes " + " ".join(map(str, args.sizes))
    write_json(args.out, {"machine": machine_info(), "command": command, "rows": rows})
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
