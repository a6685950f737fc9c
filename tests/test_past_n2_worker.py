"""bench/past_n2_accel.py: one fresh process, the models' imports only, the median of its repeated fits."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from conftest import random_interactions

WORKER = Path(__file__).resolve().parents[1] / "bench" / "past_n2_accel.py"


def test_the_worker_fits_ranks_and_reports_the_median_fit(tmp_path):
    X = random_interactions(300, 80, 0.08, seed=1)
    users = np.arange(0, 300, 3)
    data = tmp_path / "train.npz"
    np.savez(data, indptr=X.indptr, indices=X.indices, shape=np.array(X.shape), users=users)
    out = tmp_path / "run"
    params = json.dumps({"density": 0.1, "backend": "numpy"})
    # As `python bench/past_n2_accel.py ...` runs it (its folder first on the path), then what it imported.
    probe = "import os, sys, runpy; sys.argv = sys.argv[1:]; "
    probe += "sys.path.insert(0, os.path.dirname(sys.argv[0])); "
    probe += "runpy.run_path(sys.argv[0], run_name='__main__'); "
    probe += "print(sorted({m.split('.')[0] for m in sys.modules} & {'pandas', 'pyarrow', 'matplotlib'}))"
    command = [sys.executable, "-c", probe, str(WORKER), "--data", str(data), "--model", "sparse_ease"]
    command += ["--params", params, "--l2", "5", "50", "--repeats", "3", "--k", "7", "--out", str(out)]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"  # nothing of the benchmark's own reporting is imported
    result = json.loads(Path(f"{out}.json").read_text())
    first, last = result["runs"]
    assert [run["l2"] for run in result["runs"]] == [5.0, 50.0]
    assert len(first["fit_s_each"]) == 1 and len(last["fit_s_each"]) == 3
    assert last["fit_s"] == sorted(last["fit_s_each"])[1]
    assert last["peak_rss_mib"] >= result["rss_before_fit_mib"] > 0
    recs = np.load(f"{out}-1.npy")
    assert recs.shape == (users.size, 7)
    seen = X[users].toarray() != 0
    assert not seen[np.arange(users.size)[:, None], np.maximum(recs, 0)][recs >= 0].any()
