"""One SANSA run for bench/past_n2.py, in SANSA's own environment (NumPy, SciPy and sansa only).

Reads a training matrix and the rows to score from an ``.npz`` written by
``bench/past_n2.py``, fits ``sansa.SANSA`` once per λ given and times the top-k of
every row to score after each fit; writes the top-k item indices (``.npy``) and a
JSON of seconds, peak RSS and model bytes. ``--repeats R`` refits the last λ R times
and reports the median fit. Not for direct use:
``bench/past_n2.py`` starts it as a fresh process per run.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from past_n2_data import load_matrix

BATCH = 2048


def peak_rss_mib() -> float:
    """VmHWM of this process (MiB)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def model_for(l2: float, density: float, factorizer: str):
    import sansa

    if factorizer == "cholmod":
        factor_config = sansa.CHOLMODGramianFactorizerConfig()
    else:
        factor_config = sansa.ICFGramianFactorizerConfig(
            factorization_shift_step=1e-3, factorization_shift_multiplier=2.0
        )
    config = sansa.SANSAConfig(
        l2=l2,
        weight_matrix_density=density,
        gramian_factorizer_config=factor_config,
        lower_triangle_inverter_config=sansa.UMRUnitLowerTriangleInverterConfig(scans=1, finetune_steps=5),
    )
    return sansa.SANSA(config)


def top_k(model, X: sp.csr_matrix, k: int) -> np.ndarray:
    """SANSA's own ``recommend`` per batch; a batch where some row has fewer than ``k`` candidates
    (SANSA then fails) is ranked from its dense scores, seen items masked."""
    out = np.full((X.shape[0], k), -1, dtype=np.int64)
    for start in range(0, X.shape[0], BATCH):
        Xb = X[start : start + BATCH]
        try:
            ids, _ = model.recommend(Xb, k=k, mask_input=True)
        except ValueError:
            scores = model.forward(Xb).toarray()
            scores[Xb.nonzero()] = -np.inf
            part = np.argpartition(-scores, k, axis=1)[:, :k]
            order = np.argsort(-np.take_along_axis(scores, part, axis=1), axis=1, kind="stable")
            ids = np.take_along_axis(part, order, axis=1)
        out[start : start + Xb.shape[0]] = ids
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", required=True)
    parser.add_argument("--l2", type=float, nargs="+", required=True)
    parser.add_argument("--density", type=float, required=True, help="SANSA's weight_matrix_density")
    parser.add_argument("--factorizer", choices=("icf", "cholmod"), default="icf")
    parser.add_argument("--repeats", type=int, default=1, help="fits of the last λ; the median is reported")
    parser.add_argument("--k", type=int, default=20)
    parser.add_argument("--out", required=True, help="output prefix: PREFIX.json and PREFIX-<i>.npy")
    args = parser.parse_args()
    logging.disable(logging.INFO)
    import sansa

    X, users = load_matrix(args.data)
    result = {
        "library": "sansa",
        "version": sansa.__version__,
        "rss_before_fit_mib": peak_rss_mib(),
        "runs": [],
    }
    for i, l2 in enumerate(args.l2):
        times = []
        for _ in range(args.repeats if i == len(args.l2) - 1 else 1):
            model = model_for(l2, args.density, args.factorizer)  # the previous fit is let go here
            start = time.perf_counter()
            model.fit(X)
            times.append(time.perf_counter() - start)
        w1, w2 = model.weights
        start = time.perf_counter()
        recs = top_k(model, X[users], args.k)
        topk_s = time.perf_counter() - start
        np.save(f"{args.out}-{i}.npy", recs)
        nbytes = sum(m.data.nbytes + m.indices.nbytes + m.indptr.nbytes for m in (w1, w2))
        result["runs"].append(
            {
                "l2": l2,
                "fit_s": statistics.median(times),
                "fit_s_each": times,
                "topk_s": topk_s,
                "model_bytes": int(nbytes),
                "weights_nnz": int(w1.nnz + w2.nnz),
                "peak_rss_mib": peak_rss_mib(),
            }
        )
    Path(f"{args.out}.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
