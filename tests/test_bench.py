"""The benchmark runner: every column for every model, failures and "does not fit" rows, reports, CLI."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from accel import InputError
from accel.bench import (
    ModelSpec,
    default_specs,
    load_tuned_params,
    run_benchmark,
    run_sweep,
    runner,
    synthetic,
    worker,
)
from accel.bench.datasets import holdout_split
from accel.bench.report import COLUMNS
from accel.bench.runner import run_models
from accel.cli import main
from accel.cli.bench import parse_int_list, parse_size
from accel.models.ease import EASE
from accel.models.knn import SIMILARITIES

#: A benchmark of seconds: 300 × 120 synthetic, sweeps at 200 users.
TINY_BENCH = ("bench", "--users", "300", "--items", "120", "--sweep-users", "200")
METRIC_KEYS = ("precision@10", "recall@20", "ndcg@10", "map@12", "coverage@10")


#: Tests that need the runner's real subprocess (a timeout); the others run each worker in-process.
REAL_PROCESS = {"test_a_model_past_the_timeout_is_failed"}


@pytest.fixture(autouse=True)
def workers_in_process(request, monkeypatch):
    """Run ``python -m accel.bench.worker TASK`` as a call: the same task file, result file and code."""
    if request.node.originalname in REAL_PROCESS:
        return

    real = subprocess.run

    def run(command, **kwargs):
        if list(command[1:3]) != ["-m", "accel.bench.worker"]:
            return real(command, **kwargs)
        return subprocess.CompletedProcess(command, worker.main(command[3:]), "", "")

    monkeypatch.setattr(runner.subprocess, "run", run)


@pytest.fixture(scope="module")
def small_split():
    split = holdout_split(synthetic(300, 150, seed=3))
    items = split.train_items
    return split.train[:, items], split.test[:, items]


def test_every_model_gets_every_column(tmp_path) -> None:
    specs = default_specs(dask=False)
    expected = ["EASE (numpy)", "TopPopular", "SparseEASE"] + [f"ItemKNN {s}" for s in SIMILARITIES]
    assert [s.name for s in specs] == expected
    payload = run_benchmark(synthetic(300, 150, seed=3), specs, tmp_path, show_progress=False)
    assert len(payload["results"]) == len(specs)
    for row in payload["results"]:
        assert row["status"] == "ok", row
        for key in ("fit_s", "recommend_s", "peak_rss_bytes", *METRIC_KEYS):
            assert isinstance(row[key], float | int) and row[key] >= 0, (row["model"], key)
        assert row["peak_gpu_bytes"] is None  # numpy rows have no GPU pool
        assert 0 < row["recall@20"] <= 1 and 0 < row["coverage@10"] <= 1
    by_name = {r["model"]: r for r in payload["results"]}
    assert by_name["EASE (numpy)"]["ndcg@10"] > by_name["TopPopular"]["ndcg@10"]
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["machine"]["cpu_cores"] >= 1 and "similaripy" in saved["machine"]["versions"]
    table = (tmp_path / "results.md").read_text()
    assert all(header in table for _, header, _ in COLUMNS)
    assert all(f"| {s.name} |" in table for s in specs)
    assert (tmp_path / "accuracy_vs_fit_time.png").stat().st_size > 1000
    assert not list(tmp_path.glob(".bench-*"))


def test_failing_model_is_reported_and_the_run_goes_on(small_split, tmp_path) -> None:
    specs = [
        ModelSpec("broken KNN", "ItemKNN", {"similarity": "cosine", "k": 0}),
        ModelSpec("no such class", "Nope", {}),
        ModelSpec("TopPopular", "TopPopular", {}),
    ]
    rows = run_models(specs, *small_split, tmp_path, show_progress=False)
    assert [r["status"] for r in rows] == ["failed", "failed", "ok"]
    assert "InputError" in rows[0]["reason"] and "positive integer" in rows[0]["reason"]
    assert "unknown model class 'Nope'" in rows[1]["reason"]
    assert rows[2]["ndcg@10"] > 0


def test_a_model_past_the_timeout_is_failed(small_split, tmp_path) -> None:
    rows = run_models(
        [ModelSpec("EASE", "EASE", {"backend": "numpy"})],
        *small_split,
        tmp_path,
        timeout=0.01,
        show_progress=False,
    )
    assert rows[0]["status"] == "failed" and rows[0]["reason"] == "timed out after 0.01 s"


def test_too_big_ease_is_does_not_fit_without_trying(small_split, tmp_path) -> None:
    specs = [ModelSpec("EASE", "EASE", {"backend": "numpy"}), ModelSpec("TopPopular", "TopPopular", {})]
    rows = run_models(specs, *small_split, tmp_path, memory_limit=50_000, show_progress=False)
    assert rows[0]["status"] == "does not fit"
    assert "available" in rows[0]["reason"] and "fit_s" not in rows[0]
    assert rows[1]["status"] == "ok"


def test_sweep_stops_a_model_once_it_does_not_fit(tmp_path) -> None:
    limit = EASE.memory_required(150, "float32", "numpy") + 60_000
    specs = [ModelSpec("EASE", "EASE", {"backend": "numpy"}), ModelSpec("TopPopular", "TopPopular", {})]
    rows = run_sweep(
        [100, 200, 300], tmp_path, n_users=300, specs=specs, memory_limit=limit, show_progress=False
    )
    status = {(r["catalogue_items"], r["model"]): r["status"] for r in rows}
    assert status == {
        (100, "EASE"): "ok",
        (200, "EASE"): "does not fit",
        (300, "EASE"): "skipped",
        (100, "TopPopular"): "ok",
        (200, "TopPopular"): "ok",
        (300, "TopPopular"): "ok",
    }
    skipped = next(r for r in rows if r["status"] == "skipped")
    assert skipped["reason"] == "does not fit at 200 items"


def test_cli_bench_writes_report_with_sweep_plots(tmp_path, capsys) -> None:
    out = tmp_path / "out"
    code = main(
        [*TINY_BENCH, "--similarities", "cosine", "--sweep-items", "100,150", "--out", str(out), "--quiet"]
    )
    assert code == 0, capsys.readouterr().err
    payload = json.loads((out / "results.json").read_text())
    assert {r["model"] for r in payload["results"]} >= {"EASE (numpy)", "TopPopular", "ItemKNN cosine"}
    dask_row = next(r for r in payload["results"] if r["model"] == "EASE (Dask-scored)")
    ease_row = next(r for r in payload["results"] if r["model"] == "EASE (numpy)")
    assert dask_row["status"] == "ok" and dask_row["ndcg@10"] == pytest.approx(ease_row["ndcg@10"])
    assert {r["catalogue_items"] for r in payload["sweep"]} == {100, 150}
    for name in ("results.md", "sweep_time.png", "sweep_memory.png", "accuracy_vs_fit_time.png"):
        assert (out / name).stat().st_size > 0
    assert "Scaling sweep" in (out / "results.md").read_text()


def test_cli_bench_rejects_bad_options(tmp_path, capsys) -> None:
    assert main(["bench", "--similarities", "cosine,nope", "--out", str(tmp_path)]) == 2
    assert "unknown similarity 'nope'" in capsys.readouterr().err
    assert main(["bench", "--movielens", str(tmp_path), "--out", str(tmp_path)]) == 2
    assert "no u.data" in capsys.readouterr().err


def test_tuned_params_feed_the_specs(tmp_path) -> None:
    path = tmp_path / "tuned.json"
    path.write_text(
        json.dumps({"best": {"EASE": {"l2": 42.0}, "ItemKNN": {"rp3beta": {"k": 30, "beta": 0.2}}}})
    )
    specs = {s.name: s for s in default_specs(load_tuned_params(path), ("rp3beta", "cosine"), dask=False)}
    assert specs["EASE (numpy)"].params["l2"] == 42.0
    assert specs["ItemKNN rp3beta"].params == {
        "similarity": "rp3beta",
        "k": 30,
        "beta": 0.2,
        "backend": "numpy",
    }
    assert specs["ItemKNN cosine"].params["shrink"] == 10.0
    path.write_text(json.dumps({"ItemKNN": {"cosine": {"alpha": 0.5}}}))
    with pytest.raises(InputError, match="'cosine' does not take parameter 'alpha'"):
        load_tuned_params(path)
    path.write_text("{not json")
    with pytest.raises(InputError, match="not valid JSON"):
        load_tuned_params(path)


def test_size_and_list_parsing() -> None:
    assert parse_size("8G") == 8 << 30 and parse_size("512MiB") == 512 << 20 and parse_size("1000") == 1000
    assert parse_int_list("2k, 4000,8k") == [2000, 4000, 8000]
    with pytest.raises(InputError):
        parse_size("lots")
    with pytest.raises(InputError):
        parse_int_list("2k,x")


def test_worker_crash_reasons() -> None:
    from subprocess import CompletedProcess

    from accel.bench.runner import _failure_reason

    killed = CompletedProcess(["python"], -9, "", "")
    assert _failure_reason(killed) == "worker killed by signal 9 (probably out of memory)"
    crashed = CompletedProcess(["python"], 1, "", "Traceback...\nSystemError: boom\n")
    assert _failure_reason(crashed) == "worker exited with code 1: SystemError: boom"


def test_cli_bench_talks_a_line_per_run_and_names_every_file(tmp_path, capsys) -> None:
    out = tmp_path / "talk"
    code = main([*TINY_BENCH, "--similarities", "cosine,rp3beta", "--sweep-items", "100", "--out", str(out)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    payload = json.loads((out / "results.json").read_text())
    lines = [line for line in captured.err.splitlines() if " on synthetic " in line]
    rows = [(r, "300 users × 120 items") for r in payload["results"]]
    rows += [(r, "200 users × 100 items") for r in payload["sweep"]]
    for row, data in rows:
        line = next(line for line in lines if line.startswith(f"{row['model']} on synthetic {data}:"))
        if row["status"] == "ok":
            assert f"fit {row['fit_s']:.2f} s" in line and f"P@10 {row['precision@10']:.4f}" in line
    assert len(lines) == len(payload["results"]) + len(payload["sweep"])
    listed = [line.strip() for line in captured.out.splitlines() if line.startswith("  ")]
    expected = {
        "results.json",
        "results.md",
        "accuracy_vs_fit_time.png",
        "sweep_time.png",
        "sweep_memory.png",
    }
    assert {Path(p).name for p in listed} == expected and all(Path(p).is_file() for p in listed)
    assert "|#" not in captured.out  # no Dask text bar when stdout is not a terminal
    for row in payload["results"]:
        assert 0 < row["baseline_rss_bytes"] <= row["peak_rss_bytes"]


def test_quiet_bench_prints_no_run_lines(small_split, tmp_path, capsys) -> None:
    run_models([ModelSpec("TopPopular", "TopPopular", {})], *small_split, tmp_path, show_progress=False)
    assert capsys.readouterr().err == ""
    run_models([ModelSpec("TopPopular", "TopPopular", {})], *small_split, tmp_path, data="tiny")
    assert "TopPopular on tiny: fit " in capsys.readouterr().err


def test_quick_run_scores_the_dask_row_on_threads(monkeypatch, tmp_path):
    """--quick starts no worker processes for the Dask row (their start-up dominated the quick run)."""
    import numpy as np

    import accel.bench
    from accel import distributed
    from accel.bench import worker
    from accel.data import synthetic_interactions

    seen: dict[str, object] = {}
    monkeypatch.setattr(
        accel.bench, "run_benchmark", lambda *a, **kw: seen.update(kw) or {"wall_s": 0, "files": []}
    )
    assert main(["bench", "--quick", "--out", str(tmp_path / "q"), "-q"]) == 0
    assert seen["dask_threads"] is True
    assert main(["bench", "--quick", "--workers", "2", "--out", str(tmp_path / "q"), "-q"]) == 0
    assert seen["dask_threads"] is False

    from accel.data import Interactions

    X = Interactions.from_frame(synthetic_interactions(60, 20, seed=1)).matrix()
    model = EASE(l2=10.0, backend="numpy").fit(X)
    spec = ModelSpec("EASE (Dask-scored)", "EASE", {"l2": 10.0, "backend": "numpy"}, scorer="dask")
    real = distributed.connect
    calls = []
    monkeypatch.setattr(distributed, "connect", lambda *a, **kw: calls.append(kw) or real(*a, **kw))
    ids = worker._recommend(model, spec, X, {"dask_threads": True})
    assert calls == [{"processes": False}]
    np.testing.assert_array_equal(ids, model.recommend(X, k=worker.RECOMMEND_K)[0])
