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
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_without_a_gpu_runs_cpu_steps_and_writes_nothing(tmp_path: Path) -> None:
    from accel.backends import cupy_status

    if cupy_status()[0]:
        pytest.skip("a CUDA device is usable here: the script would run the full GPU check")
    out = tmp_path / "gpu"
    env = {**os.environ, "PYTHON": sys.executable, "ACCEL_NO_WHEELS": "1"}
    result = subprocess.run(
        ["bash", str(SCRIPT), str(out), "--skip-tests"], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert "(a) environment" in result.stdout and "numpy:" in result.stdout
    assert "skipped: no usable CUDA device (" in result.stdout
    assert not out.exists()


def test_host_dry_run_fills_every_summary_key(tmp_path: Path) -> None:
    """Every GPU step, on the NumPy backend at toy sizes: the script's logic end to end."""
    gpu_check = load_gpu_check()
    assert gpu_check.main([str(tmp_path), "--host-dry-run", "--skip-tests"]) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["dry_run"] is True and "not a measurement" in summary["device"]
    missing = {key for key in gpu_check.SUMMARY_KEYS if summary[key] is None}
    assert missing <= {"cupy", "cuda", "fit_50k_peak_over_n2"}  # the host has no pool, maybe no CuPy
    assert 0.0 <= summary["tf32_top10_agreement"] <= 1.0
    assert summary["max_items_fitted"] == gpu_check.TOY.max_try
    for row in summary["details"]["inverse"]:
        assert row["exact_rel_error"] < 1e-4
    assert "| fit_50k_s |" in (tmp_path / "summary.md").read_text()


def test_host_dry_run_needs_an_explicit_folder() -> None:
    with pytest.raises(SystemExit):
        load_gpu_check().main(["--host-dry-run", "--skip-tests"])


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
