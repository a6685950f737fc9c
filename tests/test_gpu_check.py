"""scripts/gpu_check.sh: its CPU-side path end to end, and the pure pieces of its GPU steps."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "gpu_check.sh"


def load_gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "scripts" / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_without_a_gpu_runs_cpu_steps_and_writes_nothing(tmp_path: Path) -> None:
    from accel.backends import cupy_status

    if cupy_status()[0]:
        pytest.skip("a CUDA device is usable here: the script would run the full GPU check")
    out = tmp_path / "gpu"
    env = {**os.environ, "PYTHON": sys.executable}
    result = subprocess.run(
        ["bash", str(SCRIPT), str(out), "--skip-tests"], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert "(a) environment" in result.stdout and "numpy:" in result.stdout
    assert "skipped: no usable CUDA device (" in result.stdout
    assert not out.exists()


def test_script_is_executable() -> None:
    assert os.access(SCRIPT, os.X_OK)


def test_woodbury_reference_matches_dense_inverse() -> None:
    gpu_check = load_gpu_check()
    d, U, rows = gpu_check.known_inverse_problem(300, rank=8, sample=20)
    want = np.linalg.inv(np.diag(d) + U @ U.T)[rows]
    np.testing.assert_allclose(gpu_check.woodbury_rows(d, U, rows), want, rtol=1e-10, atol=1e-14)


def test_synthetic_log_and_agreement() -> None:
    gpu_check = load_gpu_check()
    X = gpu_check.synthetic_log(2000, 300, seed=1)
    assert X.shape == (2000, 300) and X.dtype == np.float32
    assert set(np.unique(X.data)) == {1.0}
    counts = np.diff(X.indptr)
    assert counts.max() <= gpu_check.DRAWS_PER_USER and counts.min() >= 1
    top = np.array([[1, 2, 3], [4, 5, 6]])
    assert gpu_check.agreement(top, top[:, ::-1]) == 1.0
    assert gpu_check.agreement(top, np.array([[1, 9, 9], [7, 8, 9]])) == pytest.approx(1 / 6)


def test_results_files(tmp_path: Path) -> None:
    gpu_check = load_gpu_check()
    summary = dict.fromkeys(gpu_check.SUMMARY_KEYS)
    summary["fit_50k_s"] = 3.5
    inverse = [{"n": 20_000, "exact_s": 0.3, "exact_rel_error": 1e-6, "tf32_s": 0.2, "tf32_rel_error": 3e-4}]
    gpu_check.write_results(tmp_path, summary, {"inverse": inverse})
    written = json.loads((tmp_path / "summary.json").read_text())
    assert set(gpu_check.SUMMARY_KEYS) <= set(written) and written["fit_50k_s"] == 3.5
    table = (tmp_path / "summary.md").read_text()
    assert "| fit_50k_s | 3.5 |" in table and "| 20,000 | 0.3 | 1.0e-06 | 0.2 | 3.0e-04 |" in table
