"""End to end: fit → recommend → similar → evaluate from the command line, and clean failures."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from accel.cli import main
from accel.data import synthetic_interactions

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def log_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("cli") / "log.parquet"
    df = synthetic_interactions(1500, 400, mean_per_user=30, popularity_exponent=0.7, seed=3)
    df.rename(columns={"user_id": "customer", "item_id": "article", "timestamp": "t_dat"}).to_parquet(path)
    return path


@pytest.fixture(scope="module")
def model_dir(log_file) -> Path:
    out = log_file.parent / "model"
    args = ["fit", str(log_file), "--user-col", "customer", "--item-col", "article", "--time-col", "t_dat"]
    assert main([*args, "--l2", "200", "--backend", "numpy", "--out", str(out), "--quiet"]) == 0
    return out


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_recommend_writes_original_ids_without_seen_items(capsys, log_file, model_dir, tmp_path):
    log = pd.read_parquet(log_file)
    some = log[log["customer"].isin([3, 7, 11])]
    some.to_csv(tmp_path / "users.csv", index=False)
    out = tmp_path / "recs.parquet"
    code, _, err = run_cli(
        capsys,
        "recommend",
        str(model_dir),
        str(tmp_path / "users.csv"),
        "--k",
        "5",
        "--out",
        str(out),
        "--quiet",
    )
    assert code == 0, err
    recs = pd.read_parquet(out)
    assert list(recs.columns) == ["user", "item", "rank", "score", "source"]
    # ids read from CSV stay text; the items are the model's (integer ids from Parquet)
    assert sorted(recs["user"].unique()) == ["11", "3", "7"] and len(recs) == 15
    assert recs["item"].dtype.kind == "i" and set(recs["source"]) == {"model"}
    assert recs.groupby("user")["rank"].apply(list).tolist() == [[1, 2, 3, 4, 5]] * 3
    seen = set(zip(some["customer"].astype(str), some["article"], strict=True))
    assert not any((u, i) in seen for u, i in zip(recs["user"], recs["item"], strict=True))
    assert set(recs["item"]) <= set(log["article"])
    assert (recs.groupby("user")["score"].apply(lambda s: s.is_monotonic_decreasing)).all()


def test_recommend_for_items_and_similar(capsys, model_dir):
    code, out, err = run_cli(capsys, "recommend", str(model_dir), "--items", "5", "17", "--k", "3")
    assert code == 0, err
    rows = [line.split("\t") for line in out.strip().splitlines()]
    assert rows[0] == ["user", "item", "rank", "score", "source"] and len(rows) == 4
    assert {"5", "17"}.isdisjoint(r[1] for r in rows[1:])
    repeated = run_cli(capsys, "recommend", str(model_dir), "--items", "5", "--items", "17", "--k", "3")
    assert repeated[:2] == (code, out)  # a repeated --items adds to the list
    code, out, err = run_cli(
        capsys, "recommend", str(model_dir), "--items", "5", "--workers", "1", "--out", "recs_dir"
    )
    assert code == 2 and "give INPUT, not --items" in err and "Traceback" not in err
    code, out, err = run_cli(capsys, "similar", str(model_dir), "17", "--k", "4", "--json")
    assert code == 0, err
    similar = json.loads(out)
    assert [r["rank"] for r in similar] == [1, 2, 3, 4] and 17 not in [r["item"] for r in similar]


def test_evaluate_ease_beats_toppopular(capsys, log_file):
    code, out, err = run_cli(
        capsys,
        "evaluate",
        str(log_file),
        "--user-col",
        "customer",
        "--item-col",
        "article",
        "--time-col",
        "t_dat",
        "--window",
        "180D",
        "--l2",
        "50",
        "300",
        "--k",
        "10",
        "20",
        "--backend",
        "numpy",
        "--json",
        "--quiet",
    )
    assert code == 0, err
    report = json.loads(out)
    assert set(report["results"]) == {"valid", "test"} and report["best_l2"] in (50, 300)
    test = report["results"]["test"]
    ease = test[f"EASE(l2={report['best_l2']:g})"]
    assert ease["precision@10"] > 1.5 * test["TopPopular"]["precision@10"]
    assert set(ease) >= {"recall@20", "ndcg@10", "map@10", "hit_rate@20", "coverage@10"}
    code, table, _ = run_cli(
        capsys,
        "evaluate",
        str(log_file),
        "--user-col",
        "customer",
        "--item-col",
        "article",
        "--time-col",
        "t_dat",
        "--backend",
        "numpy",
        "--quiet",
    )
    assert code == 0 and "TopPopular" in table and "precision@10" in table


def test_ml100k_subprocess_end_to_end(ml100k_dir, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO)}

    def accel(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "accel", *args],
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp_path,
            timeout=120,
        )

    data = str(ml100k_dir / "u.data")
    fit = accel("fit", data, "--input-format", "movielens", "--backend", "numpy", "--out", "model", "-q")
    assert fit.returncode == 0, fit.stderr
    rec = accel("recommend", "model", data, "--k", "10", "--out", "recs.csv", "-q")
    assert rec.returncode == 0, rec.stderr
    recs = pd.read_csv(tmp_path / "recs.csv")
    assert recs["user"].nunique() == 943 and len(recs) == 9430
    ratings = pd.read_csv(ml100k_dir / "u.data", sep="\t", header=None, names=["u", "i", "r", "t"])
    assert recs.merge(ratings, left_on=["user", "item"], right_on=["u", "i"]).empty
    sim = accel("similar", "model", "1", "--k", "5")
    assert sim.returncode == 0 and len(sim.stdout.strip().splitlines()) == 6
    ev = accel(
        "evaluate",
        data,
        "--input-format",
        "movielens",
        "--window",
        "30D",
        "--train-window",
        "all",
        "--backend",
        "numpy",
        "--json",
        "-q",
    )
    assert ev.returncode == 0, ev.stderr
    test = json.loads(ev.stdout)["results"]["test"]
    assert test["EASE(l2=500)"]["precision@10"] > test["TopPopular"]["precision@10"]


def test_evaluate_picks_l2_by_the_metric_it_names(capsys, log_file):
    """--metric chooses λ on valid (the l2 with the best valid value of it), and the report says so."""
    base = ["evaluate", str(log_file), "--user-col", "customer", "--item-col", "article", "--time-col",
            "t_dat", "--l2", "1", "50", "5000", "--k", "5", "20", "--backend", "numpy"]  # fmt: skip
    for metric in ("coverage@20", "precision@5"):
        code, out, err = run_cli(capsys, *base, "--metric", metric, "--json", "-q")
        assert code == 0, err
        report = json.loads(out)
        valid = report["results"]["valid"]
        best = max((1, 50, 5000), key=lambda l2: valid[f"EASE(l2={l2:g})"][metric])
        assert report["best_l2"] == best and report["selected_by"] == metric
    code, table, err = run_cli(capsys, *base)
    assert code == 0 and "(by ndcg@20)" in table and "fitting and scoring EASE(l2=50)" in err
    fitting = r"EASE\(l2=50\) on [\d,]+ items, [\d,]+ test users \(fit roughly [\d,]+ s on this CPU\)"
    assert re.search(fitting, err)
    code, _, err = run_cli(capsys, *base, "--metric", "ndcg@12")
    assert code == 2 and "must be one of" in err and err.count("\n") == 1


@pytest.mark.parametrize("command", ["fit", "recommend", "evaluate", "similar"])
def test_help(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    assert "Example: accel " + command in " ".join(capsys.readouterr().out.split())


def assert_clean_failure(code: int, out: str, err: str, message: str) -> None:
    assert code != 0
    assert len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err and message in err


def test_bad_input_fails_cleanly(capsys, log_file, model_dir, tmp_path):
    csv = tmp_path / "log.csv"
    pd.read_parquet(log_file).head(200).to_csv(csv, index=False)
    (tmp_path / "empty.csv").write_text("customer,article\n")
    (tmp_path / "blank.csv").write_text("")
    bad_dates = tmp_path / "dates.csv"
    bad_dates.write_text("customer,article,t_dat\n1,2,2024-01-01\n1,3,next tuesday\n")
    out = tmp_path / "m"
    cols = ["--user-col", "customer", "--item-col", "article"]
    cases = [
        (
            ["fit", str(csv), "--user-col", "customer_id", "--item-col", "article", "--out", str(out)],
            "column 'customer_id' not found",
        ),
        (["fit", str(tmp_path / "empty.csv"), *cols, "--out", str(out)], "empty"),
        (["fit", str(tmp_path / "blank.csv"), *cols, "--out", str(out)], "cannot read"),
        (["fit", str(csv), *cols, "--min-user", "1000", "--out", str(out)], "no interactions left"),
        (["fit", str(bad_dates), *cols, "--time-col", "t_dat", "--out", str(out)], "not a date"),
        (["fit", str(tmp_path / "nope.csv"), *cols, "--out", str(out)], "does not exist"),
        (["fit", str(csv), *cols, "--out", str(csv / "such" / "dir")], "is a file, not a folder"),
        (["evaluate", str(csv), *cols, "--time-col", "t_dat", "--window", "soon"], "duration"),
        (["similar", str(model_dir), "999999"], "unknown item id '999999'"),
        (["similar", str(model_dir), "abc"], "unknown item id 'abc'"),
        (["similar", str(tmp_path / "nomodel"), "1"], "does not exist"),
        (
            ["recommend", str(model_dir), "--items", "1", "424242", "--unknown-items", "error"],
            "1 of 2 items are not known to the model (e.g. item id '424242')",
        ),
        (
            ["recommend", str(model_dir), str(csv), "--out", str(tmp_path / "missing" / "r.parquet")],
            "does not exist",
        ),
        (["recommend", str(model_dir), str(csv), "--out", str(tmp_path / "recs.json")], "must end in"),
    ]
    for args, message in cases:
        code, out_text, err = run_cli(capsys, *args)
        assert_clean_failure(code, out_text, err, message)
    assert not out.exists()
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]
    assert leftovers == []


def test_version_and_a_file_given_as_model_dir(capsys, model_dir, tmp_path):
    import accel

    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0 and capsys.readouterr().out.strip() == f"accel {accel.__version__}"
    not_a_folder = tmp_path / "model.txt"
    not_a_folder.write_text("x")
    assert main(["similar", str(not_a_folder), "1"]) == 2
    err = capsys.readouterr().err
    assert "is a file; MODEL_DIR is the folder" in err and "does not exist" not in err


def test_quiet_keeps_the_one_result_line(capsys, log_file, tmp_path):
    cols = ["--user-col", "customer", "--item-col", "article"]
    assert main(["fit", str(log_file), *cols, "--backend", "numpy", "--out", str(tmp_path / "m"), "-q"]) == 0
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("fitted EASE") and "saved to" in err
    out = tmp_path / "recs.csv"
    assert main(["recommend", str(tmp_path / "m"), str(log_file), "--out", str(out), "-q"]) == 0
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("wrote ") and str(out) in err


def test_ctrl_c_while_loading_is_one_line_and_130(capsys, monkeypatch):
    """Ctrl-C while the subcommands (NumPy, SciPy, numba) are imported: no traceback."""
    import accel.cli

    def interrupted(name):
        raise KeyboardInterrupt

    monkeypatch.setattr(accel.cli.importlib, "import_module", interrupted)
    assert main(["info"]) == 130
    assert capsys.readouterr().err == "accel: interrupted\n"


def test_import_accel_cli_loads_no_numerics():
    """The entry point's own import is instant, so a Ctrl-C lands inside main's handler."""
    import subprocess
    import sys

    code = "import sys, accel.cli; assert 'numpy' not in sys.modules, sorted(sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-500:]


def test_recommend_only_the_users_asked_for(capsys, log_file, model_dir, tmp_path):
    users = pd.read_parquet(log_file)["customer"].drop_duplicates().to_numpy()[[3, 10, 42]]
    base = ["recommend", str(model_dir), str(log_file), "--k", "4"]
    code, everyone, _ = run_cli(capsys, *base)
    assert code == 0
    reference = pd.read_csv(io.StringIO(everyone), sep="\t")
    expected = reference[reference["user"].isin(users)].reset_index(drop=True)
    (tmp_path / "users.txt").write_text("\n".join(map(str, users)) + "\n")
    pd.DataFrame({"customer": users}).to_csv(tmp_path / "users.csv", index=False)
    for given in ([str(u) for u in users], [str(tmp_path / "users.txt")], [str(tmp_path / "users.csv")]):
        code, out, err = run_cli(capsys, *base, "--users", *given)
        assert code == 0, err
        got = pd.read_csv(io.StringIO(out), sep="\t").sort_values(["user", "rank"]).reset_index(drop=True)
        pd.testing.assert_frame_equal(got, expected.sort_values(["user", "rank"]).reset_index(drop=True))
    code, _, err = run_cli(capsys, *base, "--users", "no-such-user")
    assert code == 2 and "unknown user id 'no-such-user'" in err and err.count("\n") == 1


def test_recommend_and_similar_name_items_from_meta(capsys, log_file, model_dir, tmp_path):
    items = pd.read_parquet(log_file)["article"].drop_duplicates()
    meta = pd.DataFrame({"article": items, "prod_name": [f"name of {i}" for i in items]})
    meta.to_csv(tmp_path / "articles.csv", index=False)
    user = str(pd.read_parquet(log_file)["customer"].iloc[0])
    code, out, err = run_cli(
        capsys,
        "recommend",
        str(model_dir),
        str(log_file),
        "--users",
        user,
        "--meta",
        str(tmp_path / "articles.csv"),
    )
    assert code == 0, err
    recs = pd.read_csv(io.StringIO(out), sep="\t", dtype=str)
    assert list(recs.columns)[-1] == "prod_name" and (recs["prod_name"] == "name of " + recs["item"]).all()
    item = str(items.iloc[0])
    code, out, err = run_cli(
        capsys,
        "similar",
        str(model_dir),
        item,
        "--k",
        "3",
        "--json",
        "--meta",
        str(tmp_path / "articles.csv"),
    )
    assert code == 0, err
    rows = json.loads(out)
    assert len(rows) == 3 and all(row["prod_name"] == f"name of {row['item']}" for row in rows)


def test_reading_a_log_counts_the_repeats_it_drops(capsys, tmp_path):
    log = tmp_path / "dups.csv"
    log.write_text("user_id,item_id\na,1\na,1\na,2\nb,1\nb,2\nb,2\nb,2\nc,1\nc,2\n")
    assert main(["fit", str(log), "--model", "toppop", "--out", str(tmp_path / "m")]) == 0
    err = capsys.readouterr().err
    assert (
        err.count("\n") == 1 and "on 6 interactions (3 repeated (user, item) rows dropped) of 3 users" in err
    )
