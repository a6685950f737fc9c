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
    assert "[versions]" in result.stdout and "numpy:" in result.stdout
    assert "skipped: no usable CUDA device (" in result.stdout
    assert not out.exists()


#: The summary keys the first GPU run must produce (each filled, or an error recorded for it).
GPU_RUN_KEYS = {
    "device", "cupy", "cuda", "commit", "fit_100k_fp32_s", "fit_100k_tf32_s", "tf32_top10_agreement",
    "max_items_fitted", "max_items_predicted", "fit_50k_s", "fit_50k_peak_over_n2", "gram_1m_100k_s",
    "top10_1m_20k_s", "top10_1m_100k_s", "rescore_agreement", "job_1m_20k_warm_s", "job_1m_20k_cold_s",
    "similaripy_1m_20k_s", "speedup_vs_similaripy_1m_20k",
}  # fmt: skip


def test_summary_keys_are_the_gpu_runs() -> None:
    assert set(load_gpu_check().SUMMARY_KEYS) == GPU_RUN_KEYS


def test_host_dry_run_records_an_injected_failure_and_runs_every_later_step(tmp_path: Path) -> None:
    """Every step through the shell script on the NumPy backend at toy sizes, one of them failing."""
    gpu_check = load_gpu_check()
    env = {**os.environ, "PYTHON": sys.executable, "ACCEL_NO_WHEELS": "1"}
    command = ["bash", str(SCRIPT), str(tmp_path), "--host-dry-run", "--skip-tests", "--batch-size", "700"]
    result = subprocess.run(
        [*command, "--inject-failure", "inverse"], env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["dry_run"] is True and "not a measurement" in summary["device"]
    assert set(summary["errors"]) == {"inverse"}
    assert "injected" in summary["errors"]["inverse"]["error"]
    assert "Traceback" in summary["errors"]["inverse"]["traceback_tail"]
    steps = summary["details"]["steps"]
    order = list(gpu_check.STEP_KEYS)
    assert list(steps) == order
    assert all(steps[name]["ok"] for name in order[order.index("inverse") + 1 :])
    host_none = {"cupy", "cuda", "fit_50k_peak_over_n2"}  # the host has no memory pool, maybe no CuPy
    missing = {key for key in gpu_check.SUMMARY_KEYS if summary[key] is None} - set(summary["missing_keys"])
    assert missing <= host_none
    assert summary["max_items_fitted"] == summary["max_items_predicted"] == gpu_check.TOY.cap
    rescored = summary["details"]["rescore_100k"]
    assert rescored["agreement"] == 1.0 and rescored["seen_in_top10"] == 0 and rescored["last_row_checked"]
    assert rescored["rows"] >= gpu_check.RESCORE_SAMPLE
    log = (tmp_path / "gpu_check.log").read_text()
    assert "[similaripy]" in log and "failure injected" in log
    assert "| error in inverse |" in (tmp_path / "summary.md").read_text()


def test_host_dry_run_fills_every_summary_key(tmp_path: Path) -> None:
    gpu_check = load_gpu_check()
    assert gpu_check.main([str(tmp_path), "--host-dry-run", "--skip-tests"]) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["errors"] == {} and summary["missing_keys"] == {}
    missing = {key for key in gpu_check.SUMMARY_KEYS if summary[key] is None}
    assert missing <= {"cupy", "cuda", "fit_50k_peak_over_n2"}
    assert 0.0 <= summary["tf32_top10_agreement"] <= 1.0
    rows = summary["details"]["inverse"]
    assert [row["n"] for row in rows] == [64, 250, 300]  # 300: half the largest catalogue
    assert all(row["exact_rel_error"] < 1e-4 for row in rows)
    assert "tf32_blocked_s" in rows[1]  # the blocked Cholesky with TF32 updates, at the mid size


def test_a_failing_step_is_recorded_and_the_next_one_runs(tmp_path: Path) -> None:
    gpu_check = load_gpu_check()
    summary = dict.fromkeys(gpu_check.SUMMARY_KEYS)
    run = gpu_check.Run(tmp_path, summary, {}, deadline=gpu_check.time.monotonic() + 60)

    def broken() -> None:
        summary["fit_100k_fp32_s"] = 1.0
        raise MemoryError("out of memory allocating 80,000,000,000 bytes")

    assert not run.step("fit_100k", broken)
    assert run.step("job_1m_20k", lambda: summary.update(job_1m_20k_cold_s=2.0))
    assert not run.step("largest", lambda: None, needs_s=3600)  # the deadline is checked first
    written = json.loads((tmp_path / "summary.json").read_text())
    assert written["errors"]["fit_100k"]["error"].startswith("MemoryError: out of memory")
    assert "broken" in written["errors"]["fit_100k"]["traceback_tail"]
    assert written["errors"]["largest"]["error"].startswith("skipped:")
    assert written["job_1m_20k_cold_s"] == 2.0
    # keys the failed step left empty name it; what it did measure is kept
    assert "step 'fit_100k'" in written["missing_keys"]["rescore_agreement"]
    assert "fit_100k_fp32_s" not in written["missing_keys"]
    assert "step 'largest'" in written["missing_keys"]["max_items_fitted"]
    assert not list(tmp_path.glob(".*.tmp"))  # written by rename, nothing left behind


def test_largest_try_on_a_139_gib_device() -> None:
    """The largest-catalogue try comes from free memory: on an H200 (139 GiB) it is at least 185k."""
    gpu_check = load_gpu_check()
    from accel.backends.cupy.backend import CupyBackend
    from accel.models.ease import EASE

    backend = object.__new__(CupyBackend)  # the memory plan only; no device is touched
    backend.block_size = 1024
    users = 1_000_000
    nnz = users * gpu_check.DRAWS_PER_USER
    free = 139 << 30
    n = gpu_check.largest_try(free, backend, nnz, users, 1_000)
    assert 185_000 <= n < 195_000 and n % 1_000 == 0
    assert EASE.memory_required(n, "float32", backend, nnz) <= free
    assert EASE.memory_required(n + 1_000, "float32", backend, nnz) + 2 * nnz * 8 > free - (1 << 30)
    assert gpu_check.largest_try(80 << 30, backend, nnz, users, 1_000) < 145_000
    assert gpu_check.tf32_fit_seconds(280_000) == pytest.approx(8 * gpu_check.TF32_FIT_140K_S)


def test_rescoring_rows_and_a_scoring_bug_is_caught() -> None:
    gpu_check = load_gpu_check()
    from accel.backends.numpy_backend import NumpyBackend
    from accel.models.ease import EASE

    rows = gpu_check.rescore_rows(1000, 300)
    assert {299, 300, 599, 600, 899, 900, 999, 0} <= set(rows.tolist()) and len(rows) >= 64
    X = gpu_check.synthetic_log(1000, 120, seed=3)
    model = EASE(l2=50.0, backend="numpy").fit(X, show_progress=False)
    ids, _ = model.recommend(X, k=10, batch_size=300)
    backend = NumpyBackend()
    good = gpu_check.rescore(model.B_, backend, X, rows, ids)
    assert good["agreement"] == 1.0 and good["seen_in_top10"] == 0 and good["last_row_checked"]
    wrong = ids.copy()
    wrong[600] = ids[601]  # a batch's first row scored as its neighbour
    wrong[999, 0] = X.indices[X.indptr[999]]  # a seen item in the last row
    bad = gpu_check.rescore(model.B_, backend, X, rows, wrong)
    assert bad["agreement"] <= 1 - 2 / len(rows) and bad["seen_in_top10"] >= 1


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
    assert "| fit_50k_s | 3.5 |" in table
    assert "| 20,000 | exact | 0.3 | 1.0e-06 |" in table and "| 20,000 | tf32 | 0.2 | 3.0e-04 |" in table


def test_a_failed_wheel_install_does_not_stop_the_run(tmp_path: Path) -> None:
    """A broken wheel in .whl/ is reported and the run goes on; numba wheels are never installed."""
    from accel.backends import cupy_status

    if cupy_status()[0]:
        pytest.skip("a CUDA device is usable here: the script would run the full GPU check")
    (tmp_path / "scripts").mkdir()
    for name in ("gpu_check.sh", "gpu_check.py"):
        (tmp_path / "scripts" / name).write_bytes((ROOT / "scripts" / name).read_bytes())
    wheels = tmp_path / ".whl"
    wheels.mkdir()
    (wheels / "broken-1.0-py3-none-any.whl").write_bytes(b"not a zip file")
    (wheels / "numba-0.62.1-cp312-cp312-manylinux2014_x86_64.whl").write_bytes(b"")
    env = {**os.environ, "PYTHON": sys.executable, "TMPDIR": str(tmp_path)}
    env.pop("ACCEL_NO_WHEELS", None)
    result = subprocess.run(
        ["bash", str(tmp_path / "scripts" / "gpu_check.sh"), "--skip-tests"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "wheels: not installing .whl/numba-0.62.1" in result.stdout
    assert "wheels: installing .whl/ failed" in result.stdout
    assert "skipped: no usable CUDA device (" in result.stdout
