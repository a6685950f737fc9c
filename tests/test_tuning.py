"""Tuning: the best trial on the validation window is refitted and scored on the test window."""

from __future__ import annotations

import json

import pytest

from accel import InputError
from accel.bench import synthetic
from accel.bench.datasets import tuning_splits
from accel.cli import main
from accel.metrics import evaluate_split
from accel.models.ease import EASE
from accel.tuning import parse_metric, tune


@pytest.fixture(scope="module")
def splits():
    return tuning_splits(synthetic(600, 200, seed=5), window_fraction=0.15)


def test_grid_search_picks_the_best_validation_trial(splits) -> None:
    result = tune(
        splits, similarities=("rp3beta",), search="grid", grid_points=2, backend="numpy", show_progress=False
    )
    ease, knn, sparse = result["results"]
    assert len(ease["trials"]) == 7 and len(knn["trials"]) == 2**4 and len(sparse["trials"]) == 2**2
    for row in (ease, knn, sparse):
        best = max(row["trials"], key=lambda t: t["valid"])
        assert row["best_params"] == best["params"] and row["valid"] == best["valid"]
    lambdas = [t["params"]["l2"] for t in ease["trials"]]
    assert lambdas[0] == pytest.approx(1.0) and lambdas[-1] == pytest.approx(1e5)
    refit = evaluate_split(
        EASE(l2=ease["best_params"]["l2"], backend="numpy"), splits.test, metrics=("ndcg",)
    )
    assert ease["test"] == pytest.approx(refit["ndcg@10"])
    assert result["best"] == {
        "EASE": ease["best_params"],
        "ItemKNN": {"rp3beta": knn["best_params"]},
        "SparseEASE": sparse["best_params"],
    }


def test_random_search_is_seeded_and_respects_the_space(splits) -> None:
    runs = [
        tune(
            splits,
            ease=False,
            similarities=("tversky",),
            n_trials=3,
            seed=1,
            metric="map@12",
            show_progress=False,
        )
        for _ in range(2)
    ]
    assert runs[0]["results"][0]["trials"] == runs[1]["results"][0]["trials"]
    for trial in runs[0]["results"][0]["trials"]:
        params = trial["params"]
        assert set(params) == {"k", "shrink", "alpha", "beta"}
        assert 10 <= params["k"] <= 1000 and 0 <= params["alpha"] <= 1 and 0 <= params["beta"] <= 1


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"search": "bayes"}, "unknown search 'bayes'"),
        ({"metric": "ndcg"}, "metric must look like ndcg@10"),
        ({"metric": "coverage@10"}, "metric must look like"),
        ({"similarities": ("cosin",)}, "unknown similarity 'cosin'"),
        ({"n_trials": 0}, "n_trials must be a positive integer"),
    ],
)
def test_bad_tuning_options(splits, kwargs, match) -> None:
    with pytest.raises(InputError, match=match):
        tune(splits, show_progress=False, **kwargs)


def test_parse_metric() -> None:
    assert parse_metric("recall@20") == ("recall", 20)


def test_cli_tune_writes_params_that_bench_reads(tmp_path, capsys) -> None:
    out = tmp_path / "tuned.json"
    code = main(
        [
            "tune",
            "--users",
            "500",
            "--items",
            "150",
            "--similarities",
            "cosine",
            "--trials",
            "2",
            "--out",
            str(out),
            "--quiet",
        ]
    )
    assert code == 0, capsys.readouterr().err
    printed = capsys.readouterr().out
    assert "ItemKNN cosine" in printed and "EASE" in printed
    from accel.bench import default_specs, load_tuned_params

    tuned = load_tuned_params(out)
    specs = {s.name: s for s in default_specs(tuned, ("cosine",), dask=False)}
    assert specs["EASE (numpy)"].params["l2"] == json.loads(out.read_text())["best"]["EASE"]["l2"]
