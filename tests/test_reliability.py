"""Fault injection: kills during saves and output writes, concurrent saves and loads, damaged models.

Kills use real subprocesses (SIGKILL and SIGTERM) stopped at a known point in a
write, on small models, so each test takes a few seconds at most.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import random_interactions

from accel.atomic import CURRENT, VERSION_PREFIX, atomic_file
from accel.cli import main
from accel.distributed.run_output import check_run_folder
from accel.errors import InputError
from accel.models.base import load_model
from accel.models.ease import EASE
from accel.models.popular import TopPopular

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def X():
    return random_interactions(120, 30, 0.15, seed=1)


def ease(X, l2: float = 10.0) -> EASE:
    return EASE(l2=l2, backend="numpy").fit(X, show_progress=False)


def versions(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(VERSION_PREFIX))


def python(code: str, *args: str) -> subprocess.Popen:
    """Start ``code`` in a fresh interpreter (stdout piped, one line per event)."""
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )


def wait_for(proc: subprocess.Popen, word: str) -> None:
    line = proc.stdout.readline()
    assert line.strip() == word, f"child said {line!r}; stderr: {proc.stderr.read() if proc.poll() else ''}"


# A child that starts saving a model to argv[1] and stops after the first array file is written.
SAVE_AND_HANG = """
    import sys, time
    from accel import model_folder
    from accel.models.ease import EASE
    sys.path.insert(0, "tests")
    from conftest import random_interactions

    model = EASE(l2=1.0, backend="numpy").fit(random_interactions(120, 30, 0.15, seed=2), show_progress=False)
    real_write = model_folder.write_array

    def write_then_hang(path, array):
        real_write(path, array)
        print("writing", flush=True)
        time.sleep(600)

    model_folder.write_array = write_then_hang
    model.save(sys.argv[1])
"""


# ---- kills during a save ----------------------------------------------------------------
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_or_ctrl_c_during_save_keeps_the_old_model_and_leaves_nothing(X, tmp_path, sig):
    path = tmp_path / "m"
    old = ease(X).save(path)
    proc = python(SAVE_AND_HANG, str(path))
    wait_for(proc, "writing")
    assert len(versions(path)) == 2
    proc.send_signal(sig)
    assert proc.wait(timeout=30) != 0
    assert versions(path) == [os.readlink(path / CURRENT)], "the interrupted save left its version behind"
    assert np.allclose(load_model(old).B_, ease(X).B_)


def test_kill_9_during_save_keeps_the_old_model_and_the_next_save_cleans_up(X, tmp_path):
    path = tmp_path / "m"
    ease(X).save(path)
    proc = python(SAVE_AND_HANG, str(path))
    wait_for(proc, "writing")
    proc.kill()
    proc.wait(timeout=30)
    assert len(versions(path)) == 2, "a killed writer's version is left until the next save"
    assert np.allclose(load_model(path).B_, ease(X).B_)
    ease(X, l2=3.0).save(path)
    assert versions(path) == [os.readlink(path / CURRENT)]
    assert np.allclose(load_model(path).B_, ease(X, l2=3.0).B_)


def test_a_save_never_removes_the_version_a_live_writer_is_writing(X, tmp_path):
    path = tmp_path / "m"
    proc = python(SAVE_AND_HANG, str(path))
    try:
        wait_for(proc, "writing")
        (live,) = versions(path)
        ease(X).save(path)
        assert live in versions(path)
        assert np.allclose(load_model(path).B_, ease(X).B_)
    finally:
        proc.kill()
        proc.wait(timeout=30)
    ease(X).save(path)
    assert live not in versions(path) and len(versions(path)) == 1


# ---- kills during Parquet / CSV output ---------------------------------------------------------
WRITE_AND_HANG = """
    import sys, time
    from accel.atomic import atomic_file

    with atomic_file(sys.argv[1]) as tmp:
        tmp.write_bytes(b"PAR1 half a file")
        print("writing", flush=True)
        time.sleep(600)
"""


def temporaries(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def test_output_killed_mid_write_keeps_the_old_file_and_no_temporary(tmp_path):
    out = tmp_path / "recs.parquet"
    pd.DataFrame({"user": [1], "item": [2], "rank": [1], "score": [0.5]}).to_parquet(out)
    before = out.read_bytes()
    term = python(WRITE_AND_HANG, str(out))
    wait_for(term, "writing")
    term.terminate()
    assert term.wait(timeout=30) == 128 + signal.SIGTERM
    assert temporaries(tmp_path) == [] and out.read_bytes() == before

    killed = python(WRITE_AND_HANG, str(out))
    wait_for(killed, "writing")
    live = python(WRITE_AND_HANG, str(out))
    wait_for(live, "writing")
    killed.kill()
    killed.wait(timeout=30)
    try:
        assert len(temporaries(tmp_path)) == 2 and out.read_bytes() == before
        with atomic_file(out) as tmp:
            tmp.write_bytes(b"new")
        (left,) = temporaries(tmp_path)
        assert f".{live.pid}-" in left, "the next write removed the live writer's temporary"
        assert out.read_bytes() == b"new"
    finally:
        live.kill()
        live.wait(timeout=30)
    with atomic_file(out) as tmp:
        tmp.write_bytes(b"newer")
    assert temporaries(tmp_path) == []


def test_recommend_killed_mid_parquet_keeps_earlier_recommendations(X, tmp_path, capsys):
    log = tmp_path / "log.csv"
    rows, cols = X.nonzero()
    pd.DataFrame({"user_id": rows, "item_id": cols}).to_csv(log, index=False)
    assert main(["fit", str(log), "--backend", "numpy", "--out", str(tmp_path / "m"), "-q"]) == 0
    capsys.readouterr()
    out = tmp_path / "recs.parquet"
    assert main(["recommend", str(tmp_path / "m"), str(log), "--out", str(out), "-q"]) == 0
    before = pd.read_parquet(out)
    code = f"""
        import sys, time
        import pandas as pd
        from accel.cli import main

        def half(self, path, **kwargs):
            open(path, "wb").write(b"PAR1 half")
            print("writing", flush=True)
            time.sleep(600)

        pd.DataFrame.to_parquet = half
        main(["recommend", {str(tmp_path / "m")!r}, {str(log)!r}, "--k", "3", "--out", {str(out)!r}, "-q"])
    """
    proc = python(code)
    wait_for(proc, "writing")
    proc.kill()
    proc.wait(timeout=30)
    pd.testing.assert_frame_equal(pd.read_parquet(out), before)
    for target in (out, tmp_path / "fresh.parquet"):
        assert main(["recommend", str(tmp_path / "m"), str(log), "--k", "3", "--out", str(target), "-q"]) == 0
    assert temporaries(tmp_path) == []
    pd.testing.assert_frame_equal(pd.read_parquet(out), pd.read_parquet(tmp_path / "fresh.parquet"))


# ---- concurrent saves and loads ---------------------------------------------------------------------
STRESS = """
    import json, sys, time
    import numpy as np
    sys.path.insert(0, "tests")
    from conftest import random_interactions
    from accel.models.base import load_model
    from accel.models.ease import EASE

    role, path, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    X = random_interactions(120, 30, 0.15, seed=1)
    if role == "save":
        failures = []
        for i in range(count):
            # Two catalogue sizes, so a reader mixing two saves would fail the checks.
            model = EASE(l2=1.0 + i, backend="numpy").fit(X[:, : 20 + 10 * (i % 2)], show_progress=False)
            try:
                model.save(path, extras={"total": np.array(float(model.B_.sum()))})
            except Exception as exc:
                failures.append(repr(exc))
        print(json.dumps({"saves": count, "failed": failures}), flush=True)
    else:
        loads, failures, deadline = 0, [], time.time() + count
        while time.time() < deadline:
            loads += 1
            try:
                model = load_model(path)
                if not np.isclose(float(np.asarray(model.B_).sum()), float(model.extras_["total"])):
                    failures.append("B does not match its model.json")
            except Exception as exc:
                failures.append(repr(exc))
        print(json.dumps({"loads": loads, "failed": failures}), flush=True)
"""


def test_concurrent_saves_and_loads_always_see_a_whole_model(X, tmp_path):
    path = tmp_path / "m"
    first = ease(X[:, :20])
    first.save(path, extras={"total": np.array(float(first.B_.sum()))})
    readers = [python(STRESS, "load", str(path), "4") for _ in range(2)]
    writers = [python(STRESS, "save", str(path), "25") for _ in range(2)]
    results = [json.loads(p.communicate(timeout=120)[0]) for p in writers + readers]
    assert all(p.returncode == 0 for p in writers + readers)
    saves, loads = results[:2], results[2:]
    assert [r["failed"] for r in saves] == [[], []]
    assert sum(r["loads"] for r in loads) > 50
    assert [r["failed"][:3] for r in loads] == [[], []]
    assert len(versions(path)) == 1 and (path / "B.npy").is_symlink()


# ---- what --out may replace -------------------------------------------------------------------------
def run_cli(capsys, *args: str) -> tuple[int, str]:
    code = main(list(args))
    return code, capsys.readouterr().err


def assert_refused(code: int, err: str, *words: str) -> None:
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    for word in words:
        assert word in err, err


@pytest.fixture
def log(X, tmp_path) -> Path:
    rows, cols = X.nonzero()
    path = tmp_path / "log.csv"
    pd.DataFrame({"user_id": rows, "item_id": cols}).to_csv(path, index=False)
    return path


def test_fit_refuses_a_folder_that_is_not_a_model_and_leaves_it_untouched(capsys, log, tmp_path):
    d = tmp_path / "d"
    d.mkdir()
    (d / "thesis.txt").write_text("x")
    (d / "log.csv").write_bytes(log.read_bytes())
    code, err = run_cli(capsys, "fit", str(d / "log.csv"), "--backend", "numpy", "--out", str(d), "-q")
    assert_refused(code, err, "did not write", str(d))
    assert sorted(p.name for p in d.iterdir()) == ["log.csv", "thesis.txt"]
    with pytest.raises(InputError, match="did not write"):
        TopPopular(backend="numpy").fit(np.eye(3)).save(d)
    assert sorted(p.name for p in d.iterdir()) == ["log.csv", "thesis.txt"]


def test_every_out_is_checked_before_any_work(capsys, log, tmp_path, monkeypatch):
    (tmp_path / "notes.txt").write_text("mine")
    monkeypatch.chdir(tmp_path)
    missing = str(tmp_path / "no-such-log.csv")  # read only after the output check
    code, err = run_cli(capsys, "fit", missing, "--out", ".")
    assert_refused(code, err, "did not write", "log.csv")
    assert main(["fit", str(log), "--backend", "numpy", "--out", "m", "-q"]) == 0
    capsys.readouterr()
    for out in (".", "notes.txt", "log.csv"):
        code, err = run_cli(capsys, "recommend", "m", missing, "--out", out)
        assert_refused(code, err, out)
    code, err = run_cli(capsys, "recommend", "m", missing, "--workers", "1", "--out", ".")
    assert_refused(code, err, "pass --overwrite")
    assert "overwrite=True" not in err and "Python" not in err
    with pytest.raises(InputError, match="pass overwrite=True") as refused:
        check_run_folder(tmp_path, overwrite=False)
    assert "--overwrite" not in str(refused.value)
    code, err = run_cli(capsys, "tune", "--out", "notes.txt")
    assert_refused(code, err, "notes.txt")
    (tmp_path / "results.md").write_text("my results")
    code, err = run_cli(capsys, "bench", "--out", ".")
    assert_refused(code, err, "results.md")
    assert (tmp_path / "notes.txt").read_text() == "mine" and (
        tmp_path / "results.md"
    ).read_text() == "my results"
    (tmp_path / "results.md").unlink()
    (tmp_path / "sweep_time.png").write_bytes(b"my picture")
    code, err = run_cli(capsys, "bench", "--out", ".")
    assert_refused(code, err, "sweep_time.png")
    assert (tmp_path / "sweep_time.png").read_bytes() == b"my picture"


def test_a_folder_nobody_can_write_is_refused_before_any_work(capsys, log, tmp_path):
    """Permission bits say root may write anywhere; a probe file tells the truth (here /proc)."""
    if not Path("/proc").is_dir():
        pytest.skip("needs /proc (Linux), a folder that takes no files even from root")
    missing = str(tmp_path / "no-such-log.csv")  # read only after the output check
    assert main(["fit", str(log), "--backend", "numpy", "--out", str(tmp_path / "m"), "-q"]) == 0
    capsys.readouterr()
    for args in (
        ["fit", missing, "--out", "/proc/accel-model"],
        ["recommend", str(tmp_path / "m"), missing, "--out", "/proc/recs.csv"],
        ["bench", "--quick", "--out", "/proc/accel-bench"],
        ["recommend", str(tmp_path / "m"), missing, "--workers", "2", "--out", "/proc/accel-run"],
    ):
        code, err = run_cli(capsys, *args)
        assert_refused(code, err, "/proc is not writable")
    assert [p.name for p in (tmp_path / "m").iterdir() if p.name.startswith(".accel-probe")] == []


def test_accel_output_is_replaced_and_a_model_folder_keeps_other_files(capsys, log, tmp_path):
    out = tmp_path / "m"
    assert main(["fit", str(log), "--backend", "numpy", "--out", str(out), "-q"]) == 0
    capsys.readouterr()
    (out / "README").write_text("notes about this model")
    assert main(["fit", str(log), "--model", "toppop", "--backend", "numpy", "--out", str(out), "-q"]) == 0
    capsys.readouterr()
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith("."))[:3] == [
        "README",
        "counts.npy",
        "extra.input_format.npy",
    ]
    assert not (out / "B.npy").exists() and (out / "README").read_text() == "notes about this model"
    assert isinstance(load_model(out), TopPopular)
    for name in ("recs.csv", "recs.parquet"):
        for _ in range(2):
            assert main(["recommend", str(out), str(log), "--out", str(tmp_path / name), "-q"]) == 0


def test_an_unversioned_folder_of_model_files_is_refused_and_left_untouched(X, tmp_path):
    """Only folders accel wrote (versioned) are replaced: loose model files are someone else's."""
    path = tmp_path / "m"
    path.mkdir()
    np.save(path / "B.npy", ease(X).B_)
    (path / "model.json").write_text(json.dumps({"format": "accel-model", "format_version": 1}))
    before = {p.name: p.read_bytes() for p in path.iterdir()}
    with pytest.raises(InputError, match="did not write"):
        TopPopular(backend="numpy").fit(X).save(path)
    assert {p.name: p.read_bytes() for p in path.iterdir()} == before


# ---- damaged model folders ----------------------------------------------------------------------------
def damage_json(path: Path, **changes) -> None:
    meta_file = path / "model.json"
    meta = json.loads(meta_file.read_text())
    for key, value in changes.items():
        if key == "dtype":
            meta["params"]["dtype"] = value
        elif key == "B_dtype":
            meta["files"]["B.npy"]["dtype"] = value
        else:
            meta[key] = value
    text = json.dumps(meta)
    meta_file.unlink()  # a symlink into the current version: edit the file it names
    (path / ".current" / "model.json").write_text(text)
    meta_file.symlink_to(".current/model.json")


def truncate(path: Path) -> None:
    target = path / ".current" / "B.npy"
    data = target.read_bytes()
    target.write_bytes(data[: len(data) // 2])


def bad_json(path: Path) -> None:
    (path / ".current" / "model.json").write_text('{"format": "accel-model", ')


def missing_array(path: Path) -> None:
    (path / ".current" / "B.npy").unlink()


def other_shape(path: Path) -> None:
    np.save(path / ".current" / "B.npy", np.zeros((30, 29), dtype=np.float32))


def not_npy(path: Path) -> None:
    (path / ".current" / "B.npy").write_text("hello")


DAMAGES = {
    "truncated B.npy": (truncate, "B.npy is"),
    "bad JSON": (bad_json, "model.json is not valid JSON"),
    "missing B.npy": (missing_array, "B.npy is missing"),
    "B of another shape": (other_shape, "B.npy has shape [30, 29] but model.json records [30, 30]"),
    "not a .npy": (not_npy, "B.npy is not a NumPy array file"),
    "unknown class": (lambda p: damage_json(p, **{"class": "Nope"}), "unknown model class 'Nope'"),
    "other class": (lambda p: damage_json(p, **{"class": "TopPopular"}), "do not fit TopPopular"),
    "n_items edited": (lambda p: damage_json(p, n_items=31), "but the model has 31 items"),
    "n_items not a number": (
        lambda p: damage_json(p, n_items="30"),
        "'n_items' is missing or not an integer",
    ),
    "dtype edited": (lambda p: damage_json(p, dtype="float64"), "holds float32 but model.json says dtype"),
    "recorded dtype edited": (lambda p: damage_json(p, B_dtype="<f8"), "B.npy has dtype <f4"),
    "array name escapes": (lambda p: damage_json(p, arrays=["../B"]), "'../B' is not an array name"),
    "unknown parameter": (lambda p: damage_json(p, params={"nope": 1}), "parameters in model.json"),
}


@pytest.mark.parametrize("damage", DAMAGES)
def test_a_damaged_model_is_named_with_its_problem(X, tmp_path, capsys, log, damage):
    path = tmp_path / "m"
    assert main(["fit", str(log), "--backend", "numpy", "--out", str(path), "-q"]) == 0
    capsys.readouterr()
    apply, message = DAMAGES[damage]
    apply(path)
    with pytest.raises(InputError) as info:
        load_model(path)
    assert message in str(info.value)
    code, err = run_cli(capsys, "similar", str(path), "3")
    assert_refused(code, err, message)


def test_checked_loading_still_maps_the_arrays(X, tmp_path):
    """The checks read each array's header and score one row; the arrays stay memory-mapped."""
    model = ease(X)
    model.save(tmp_path / "m")
    loaded = load_model(tmp_path / "m")
    assert not loaded.B_.flags.owndata and np.array_equal(loaded.B_, model.B_)


# ---- Dask output: a run killed mid-way is resumed exactly once ------------------------------------------
def test_a_dask_run_killed_mid_write_resumes_with_every_user_exactly_once(X, tmp_path):
    from accel.distributed.client import connect
    from accel.distributed.run_output import MANIFEST
    from accel.distributed.scoring import recommend_to_parquet

    out = tmp_path / "recs"
    model = ease(X)
    with connect(n_workers=1) as client:
        first = recommend_to_parquet(model, X, out, k=3, client=client, chunk_users=40)
        # As if the run had been killed while a worker wrote chunk 1: no part, a half temporary.
        (out / "part-00001.parquet").unlink()
        manifest = json.loads((out / MANIFEST).read_text())
        (out / MANIFEST).write_text(json.dumps({"run": manifest["run"], "complete": False}))
        killed = python(WRITE_AND_HANG, str(out / "part-00001.parquet"))
        wait_for(killed, "writing")
        killed.kill()
        killed.wait(timeout=30)
        assert len(temporaries(out)) == 1
        resumed = recommend_to_parquet(model, X, out, k=3, client=client, chunk_users=40)
    assert (resumed["chunks_written"], resumed["chunks_resumed"]) == (1, 2)
    assert temporaries(out) == [], "the killed writer's temporary was left behind"
    frame = pd.read_parquet(out)
    assert len(frame) == first["rows_written"] and not frame.duplicated(["user", "rank"]).any()
    assert frame["user"].nunique() == X.shape[0]


@pytest.mark.parametrize("name", ["S_data.npy", "S_indices.npy", "S_indptr.npy"])
def test_every_array_a_model_declares_is_checked(X, tmp_path, name):
    """A sparse learned state saved as several arrays: each one is checked on its own."""
    from accel.models.knn import ItemKNN

    ItemKNN("cosine", k=5, backend="numpy").fit(X, show_progress=False).save(tmp_path / "m")
    target = tmp_path / "m" / ".current" / name
    array = np.load(target)
    np.save(target, array[:-1])
    with pytest.raises(InputError, match=rf"{name} has shape \[{array.size - 1}\] but model.json records"):
        load_model(tmp_path / "m")


def test_a_truncated_array_in_the_older_layout_is_named(X, tmp_path):
    """Folders saved before shapes were recorded still get the header-against-size check."""
    path = tmp_path / "m"
    path.mkdir()
    model = ease(X)
    np.save(path / "B.npy", model.B_)
    meta = {"format": "accel-model", "format_version": 1, "class": "EASE", "n_items": 30}
    meta.update(params=model.get_params(), arrays=["B"], extras=[])
    (path / "model.json").write_text(json.dumps(meta))
    (path / "B.npy").write_bytes((path / "B.npy").read_bytes()[:-7])
    with pytest.raises(InputError, match=r"B\.npy is 3,721 bytes but its header needs 3,728"):
        load_model(path)
