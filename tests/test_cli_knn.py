"""``accel fit --model itemknn|userknn``: saved, then served by recommend, similar and evaluate."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from accel import ItemKNN, UserKNN, load_model
from accel.cli import main
from accel.data import synthetic_interactions
from accel.data.interactions import Interactions


@pytest.fixture(scope="module")
def tiny_log(tmp_path_factory):
    path = tmp_path_factory.mktemp("knn") / "log.csv"
    synthetic_interactions(200, 60, mean_per_user=12, popularity_exponent=0.7, seed=5).to_csv(
        path, index=False
    )
    return path


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize(
    ("model", "cls", "options", "params"),
    [
        (
            "itemknn",
            ItemKNN,
            ["--similarity", "rp3beta", "--neighbours", "15", "--alpha", "0.7", "--beta", "0.3"],
            {"similarity": "rp3beta", "k": 15, "alpha": 0.7, "beta": 0.3},
        ),
        (
            "userknn",
            UserKNN,
            ["--similarity", "cosine", "--neighbours", "20", "--shrink", "5"],
            {"similarity": "cosine", "k": 20, "shrink": 5.0},
        ),
        (
            "itemknn",
            ItemKNN,
            ["--similarity", "s_plus", "--l1", "0.4", "--s-plus-l2", "0.6", "--pop1", "sum"],
            {"similarity": "s_plus", "l1": 0.4, "l2": 0.6, "pop1": "sum"},
        ),
    ],
)
def test_fit_knn_then_recommend_matches_the_python_model(
    capsys, tiny_log, tmp_path, model, cls, options, params
):
    out = tmp_path / "model"
    code, _, err = run_cli(capsys, "fit", str(tiny_log), "--model", model, *options, "--out", str(out), "-q")
    assert code == 0, err
    saved = load_model(out)
    assert type(saved) is cls and all(getattr(saved, k) == v for k, v in params.items())

    inter = Interactions.from_csv(tiny_log, "user_id", "item_id", "timestamp")  # ids as text, as the CLI
    reference = cls(backend="numpy", **params).fit(inter.matrix(), show_progress=False)
    users = inter.user_ids[:5]
    recs = tmp_path / "recs.csv"
    code, _, err = run_cli(capsys, "recommend", str(out), str(tiny_log), "--k", "5", "--out", str(recs), "-q")
    assert code == 0, err
    table = pd.read_csv(recs)
    _, scores = reference.recommend(inter.matrix()[:5], k=5)
    for row, user in enumerate(users):
        got = table[table["user"].astype(str) == str(user)].sort_values("rank")
        np.testing.assert_allclose(got["score"].to_numpy(), scores[row], rtol=1e-5)
        assert set(got["item"].astype(str)) <= set(map(str, inter.item_ids))


def test_similar_with_itemknn_and_clean_error_for_userknn(capsys, tiny_log, tmp_path):
    item_dir, user_dir = tmp_path / "item", tmp_path / "user"
    for model, out in (("itemknn", item_dir), ("userknn", user_dir)):
        assert (
            main(["fit", str(tiny_log), "--model", model, "--neighbours", "10", "--out", str(out), "-q"]) == 0
        )
    item = str(pd.read_csv(tiny_log)["item_id"].iloc[0])
    code, out, err = run_cli(capsys, "similar", str(item_dir), item, "--k", "4", "--json")
    assert code == 0, err
    rows = json.loads(out)
    assert [r["rank"] for r in rows] == [1, 2, 3, 4] and item not in [str(r["item"]) for r in rows]
    code, _, err = run_cli(capsys, "similar", str(user_dir), item)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "use ItemKNN" in err


@pytest.mark.parametrize("model", ["itemknn", "userknn"])
def test_evaluate_knn_against_toppopular(capsys, tiny_log, model):
    code, out, err = run_cli(
        capsys,
        "evaluate",
        str(tiny_log),
        "--time-col",
        "timestamp",
        "--split",
        "fraction",
        "--model",
        model,
        "--similarity",
        "cosine",
        "--neighbours",
        "20",
        "--json",
        "--quiet",
    )
    assert code == 0, err
    rows = json.loads(out)["results"]["test"]
    label = f"{'ItemKNN' if model == 'itemknn' else 'UserKNN'}(cosine)"
    assert set(rows) == {label, "TopPopular"}
    assert 0 <= rows[label]["precision@10"] <= 1 and rows[label]["coverage@10"] > 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--model", "itemknn", "--similarity", "cosine", "--alpha", "0.5"],
            "does not take parameter 'alpha'",
        ),
        (["--similarity", "cosine"], "apply to --model itemknn or userknn, not ease"),
        (["--model", "itemknn", "--neighbours", "0"], "must be a positive integer"),
        (["--model", "itemknn", "--l2", "5"], "pass --s-plus-l2"),
        (["--model", "toppop", "--l2", "5"], "--l2 applies to --model ease"),
        (["--model", "itemknn", "--prune", "0.05"], "--prune applies to EASE only"),
    ],
)
def test_bad_knn_options_fail_in_one_line(capsys, tiny_log, tmp_path, args, message):
    code, _, err = run_cli(capsys, "fit", str(tiny_log), *args, "--out", str(tmp_path / "m"), "-q")
    assert code == 2 and len(err.strip().splitlines()) == 1 and message in err, err
    assert not (tmp_path / "m").exists()
