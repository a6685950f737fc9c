"""One accel run for bench/past_n2.py: the models' own imports only (NumPy, SciPy, accel's models).

Reads a training matrix and the rows to score from an ``.npz`` written by
``bench/past_n2.py``, fits one registered model once per λ given, ranks the rows to
score after each fit, and writes the top-k item indices (``.npy``) and a JSON of
seconds, peak RSS and model bytes. ``--repeats R`` refits the last λ R times and
reports the median fit. Nothing of the benchmark's own (its reports, metrics,
pandas) is imported here, so the peak RSS is what a script fitting the model
holds, as for ``past_n2_sansa.py``. Not for direct use: ``bench/past_n2.py``
starts it as a fresh process per run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from past_n2_data import load_matrix

from accel.errors import AccelError
from accel.memory import peak_rss
from accel.models.registry import model_class


def fit_once(cls: type, params: dict[str, Any], X: sp.csr_matrix) -> tuple[Any, float]:
    model = cls(**params)
    start = time.perf_counter()
    model.fit(X, show_progress=False)
    return model, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", required=True)
    parser.add_argument("--model", required=True, help="a registered model name")
    parser.add_argument("--params", default="{}", help="the model's parameters, as JSON")
    parser.add_argument("--l2", type=float, nargs="*")
    parser.add_argument("--repeats", type=int, default=1, help="fits of the last λ; the median is reported")
    parser.add_argument("--k", type=int, default=20)
    parser.add_argument("--out", required=True, help="output prefix: PREFIX.json and PREFIX-<i>.npy")
    args = parser.parse_args()
    X, users = load_matrix(args.data)
    params = json.loads(args.params)
    cls = model_class(args.model)
    result: dict[str, Any] = {"library": "accel", "rss_before_fit_mib": peak_rss() / 2**20, "runs": []}
    # One untimed fit on a corner of the matrix first: numba loads the compiled kernels from its disk cache
    # (or compiles them, once per install) on their first call in a process, which is not the fit.
    start = time.perf_counter()
    with contextlib.suppress(AccelError):
        cls(**params).fit(X[:2000, :1000], show_progress=False)
    result["warmup_s"] = time.perf_counter() - start
    l2s = args.l2 or [None]
    for i, l2 in enumerate(l2s):
        fit_params = {**params, **({} if l2 is None else {"l2": l2})}
        times = []
        for _ in range(args.repeats if i == len(l2s) - 1 else 1):
            model = None  # the previous fit's weights are let go before the next fit
            try:
                model, seconds = fit_once(cls, fit_params, X)
            except AccelError as exc:
                result["runs"].append({"l2": l2, "status": "refused", "reason": str(exc)})
                break
            times.append(seconds)
        if model is None:
            continue
        start = time.perf_counter()
        recs, _ = model.recommend(X[users], k=args.k)
        topk_s = time.perf_counter() - start
        np.save(f"{args.out}-{i}.npy", recs)
        arrays = model._saved_state()
        result["runs"].append(
            {
                "l2": l2,
                "status": "ok",
                "fit_s": statistics.median(times),
                "fit_s_each": times,
                "fit_timings": getattr(model, "fit_timings_", {}),
                "topk_s": topk_s,
                "model_bytes": int(sum(np.asarray(a).nbytes for a in arrays.values())),
                "weights_nnz": int(model.S_.nnz) if hasattr(model, "S_") else int(model.n_items_) ** 2,
                "peak_rss_mib": peak_rss() / 2**20,
            }
        )
    Path(f"{args.out}.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
