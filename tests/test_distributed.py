"""Dask scoring and Gram matrix on a local cluster of 2 worker processes (started once for the module)."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from conftest import random_interactions

from accel import EASE, InputError
from accel.distributed import (
    SchedulerUnreachableError,
    connect,
    gram_from_parquet,
    recommend,
    recommend_to_parquet,
)
from accel.distributed.model_transfer import worker_stats
from accel.distributed.run_output import MANIFEST

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")

K = 5


@pytest.fixture(scope="module")
def client():
    with connect(n_workers=2) as dask_client:
        dask_client.wait_for_workers(2, timeout=60)
        yield dask_client


@pytest.fixture(scope="module")
def X() -> sp.csr_matrix:
    return random_interactions(300, 80, 0.06, seed=3)


@pytest.fixture(scope="module")
def model(X: sp.csr_matrix) -> EASE:
    return EASE(l2=50.0, backend="numpy").fit(X, show_progress=False)


def read_output(folder: Path) -> pd.DataFrame:
    return pd.read_parquet(folder).sort_values(["user", "rank"]).reset_index(drop=True)


# ---- recommend --------------------------------------------------------------------
@pytest.mark.parametrize("transfer", ["auto", "mmap", "scatter"])
def test_recommend_equals_in_process_and_ships_model_once(client, model, X, transfer):
    client.run(worker_stats, True)
    ids, scores = recommend(model, X, k=K, client=client, chunk_users=23, model_transfer=transfer)
    expected_ids, expected_scores = model.recommend(X, k=K)
    np.testing.assert_array_equal(ids, expected_ids)
    np.testing.assert_array_equal(scores, expected_scores)
    # 14 chunks, but each worker received (scatter) and built the model at most once.
    stats = client.run(worker_stats).values()
    assert all(s["model_builds"] <= 1 for s in stats)
    assert sum(s["model_builds"] for s in stats) >= 1
    unpickles = [s["payload_unpickles"] for s in stats]
    assert unpickles == ([1, 1] if transfer == "scatter" else [0, 0])


def test_recommend_from_saved_folder_without_exclusion(client, model, X, tmp_path):
    model.save(tmp_path / "model")
    ids, scores = recommend(
        tmp_path / "model", X[:50], k=K, client=client, chunk_users=16, exclude_seen=False
    )
    expected_ids, expected_scores = model.recommend(X[:50], k=K, exclude_seen=False)
    np.testing.assert_array_equal(ids, expected_ids)
    np.testing.assert_array_equal(scores, expected_scores)


def test_recommend_rejects_item_count_mismatch(client, model):
    with pytest.raises(InputError, match="item columns"):
        recommend(model, sp.csr_matrix((5, 79), dtype=np.float32), client=client)


def test_recommend_rejects_bad_chunk_size(client, model, X):
    with pytest.raises(InputError, match="chunk_users"):
        recommend(model, X, client=client, chunk_users=0)


# ---- Parquet output -----------------------------------------------------------------
def test_parquet_holds_every_user_once_with_original_ids(client, model, X, tmp_path):
    user_ids = np.array([f"u{i}" for i in range(X.shape[0])], dtype=object)
    item_ids = np.arange(X.shape[1]) * 10 + 7
    out = tmp_path / "recs"
    manifest = recommend_to_parquet(
        model, X, out, k=K, client=client, chunk_users=40, user_ids=user_ids, item_ids=item_ids
    )
    assert sorted(p.name for p in out.iterdir()) == [MANIFEST] + [f"part-{i:05d}.parquet" for i in range(8)]
    assert manifest["complete"] and manifest["rows_written"] == X.shape[0] * K
    frame = read_output(out)
    assert list(frame.columns) == ["user", "item", "rank", "score", "source"]
    assert (frame.groupby("user").size() == K).all() and frame["user"].nunique() == X.shape[0]
    assert not frame.duplicated(["user", "rank"]).any()
    ids, scores = model.recommend(X, k=K)
    by_user = frame.set_index("user")
    for row in (0, 137, 299):
        got = by_user.loc[f"u{row}"]
        np.testing.assert_array_equal(got["item"].to_numpy(), item_ids[ids[row]])
        np.testing.assert_array_equal(got["score"].to_numpy(), scores[row])
        np.testing.assert_array_equal(got["rank"].to_numpy(), np.arange(1, K + 1))


class FakeInteractions:
    """The duck type ``recommend_to_parquet`` accepts in place of ``accel.data.Interactions``."""

    def __init__(self, X: sp.csr_matrix) -> None:
        self._X = X
        self.user_ids = np.arange(X.shape[0]) + 1000
        self.item_ids = np.array([f"item-{i}" for i in range(X.shape[1])], dtype=object)

    def matrix(self) -> sp.csr_matrix:
        return self._X


def test_parquet_takes_interactions_and_shows_progress_only_when_asked(
    client, model, X, tmp_path, capsys, monkeypatch
):
    log = FakeInteractions(X[:60])
    recommend_to_parquet(model, log, tmp_path / "quiet", k=2, client=client, chunk_users=30)
    assert "100%" not in capsys.readouterr().out
    options = {"k": 2, "client": client, "chunk_users": 30, "show_progress": True}
    recommend_to_parquet(model, log, tmp_path / "not-a-terminal", **options)
    assert "100%" not in capsys.readouterr().out  # Dask's bar would litter a log file
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    recommend_to_parquet(model, log, tmp_path / "loud", **options)
    assert "100%" in capsys.readouterr().out
    frame = read_output(tmp_path / "loud")
    assert set(frame["user"]) == set(log.user_ids)
    assert frame["item"].str.startswith("item-").all()


def test_parquet_refuses_a_different_run_unless_overwrite_and_resumes_the_same(client, model, X, tmp_path):
    out = tmp_path / "recs"
    recommend_to_parquet(model, X, out, k=K, client=client, chunk_users=100)
    with pytest.raises(InputError, match=r"different run \(differs in: k\)"):
        recommend_to_parquet(model, X, out, k=3, client=client, chunk_users=100)
    (out / "part-00001.parquet").unlink()
    resumed = recommend_to_parquet(model, X, out, k=K, client=client, chunk_users=100)
    assert (resumed["chunks_written"], resumed["chunks_resumed"]) == (1, 2)
    assert len(read_output(out)) == X.shape[0] * K
    manifest = recommend_to_parquet(model, X[:120], out, k=3, client=client, chunk_users=100, overwrite=True)
    assert manifest["run"]["n_chunks"] == 2
    assert sorted(p.name for p in out.glob("part-*")) == ["part-00000.parquet", "part-00001.parquet"]
    frame = read_output(out)
    assert len(frame) == 120 * 3 and frame["user"].nunique() == 120


def test_parquet_refuses_a_foreign_folder_and_bad_ids(client, model, X, tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match="holds no accel run"):
        recommend_to_parquet(model, X, tmp_path, client=client)
    with pytest.raises(InputError, match="item_ids must be a 1-D array of 80"):
        recommend_to_parquet(model, X, tmp_path / "a", client=client, item_ids=np.arange(79))
    with pytest.raises(InputError, match="item columns"):
        recommend_to_parquet(model, X[:, :70], tmp_path / "b", client=client)


def _die_on_first_chunk() -> None:
    """Replace this worker's chunk writer by one that dies mid-write, as a killed process would."""
    import accel.distributed.scoring as scoring

    def die(*args):
        path = Path(args[-1])
        (path.parent / f".{path.name}.{os.getpid()}-killed.tmp").write_bytes(b"PAR1 half a file")
        os._exit(1)

    scoring._write_chunk = die


def test_worker_killed_mid_run_still_gives_complete_duplicate_free_output(client, model, X, tmp_path):
    victim = sorted(client.scheduler_info()["workers"])[0]
    client.run(_die_on_first_chunk, workers=[victim])
    out = tmp_path / "recs"
    manifest = recommend_to_parquet(model, X, out, k=K, client=client, chunk_users=10)
    assert victim not in client.scheduler_info()["workers"], "the patched worker never ran a chunk"
    frame = read_output(out)
    assert manifest["chunks_written"] == 30 and len(frame) == X.shape[0] * K
    assert (frame.groupby("user").size() == K).all() and frame["user"].nunique() == X.shape[0]
    assert not list(out.glob(".*.tmp"))
    client.wait_for_workers(2, timeout=60)


# ---- Gram matrix ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def log_dir(tmp_path_factory, X) -> Path:
    """X as a log of string item ids in 3 files, each user's rows spread over them, one row repeated."""
    coo = X.tocoo()
    frame = pd.DataFrame({"user": coo.row.astype(np.int64), "item": [f"i{c:03d}" for c in coo.col]})
    frame = pd.concat([frame, frame.iloc[:5]]).sample(frac=1.0, random_state=1)
    folder = tmp_path_factory.mktemp("log")
    for j in range(3):
        frame.iloc[j::3].to_parquet(folder / f"part{j}.parquet", index=False)
    assert frame.iloc[0::3]["user"].nunique() > 100
    return folder


def test_gram_from_parquet_equals_in_memory_gram(client, X, log_dir):
    G, item_ids = gram_from_parquet(log_dir, "user", "item", client=client)
    np.testing.assert_array_equal(item_ids, [f"i{c:03d}" for c in range(X.shape[1])])
    assert G.dtype == np.float32
    np.testing.assert_array_equal(G, (X.T @ X).toarray())


def test_gram_from_parquet_follows_item_index_and_feeds_fit_gram(client, X, log_dir):
    order = np.random.default_rng(0).permutation(X.shape[1])
    G, _ = gram_from_parquet(
        log_dir, "user", "item", client=client, item_index=[f"i{c:03d}" for c in order], dtype="float64"
    )
    Xp = X[:, order]
    np.testing.assert_array_equal(G, (Xp.T @ Xp).toarray())
    buffer = G
    fitted = EASE(l2=50.0, backend="numpy", dtype="float64").fit_gram(G, show_progress=False)
    assert fitted.B_ is buffer and set(fitted.fit_timings_) == {"inverse", "weights"}
    expected = EASE(l2=50.0, backend="numpy", dtype="float64").fit(Xp, show_progress=False)
    np.testing.assert_array_equal(fitted.B_, expected.B_)


def test_gram_from_parquet_rejects_unknown_items(client, log_dir):
    with pytest.raises(InputError, match="not in item_index"):
        gram_from_parquet(log_dir, "user", "item", client=client, item_index=["i000", "i001"])


def test_gram_from_parquet_with_integer_indices(client, X, tmp_path):
    coo = X.tocoo()
    pd.DataFrame({"u": coo.row, "i": coo.col}).to_parquet(tmp_path / "log.parquet")
    G, item_ids = gram_from_parquet(tmp_path / "log.parquet", "u", "i", client=client, n_items=X.shape[1] + 2)
    np.testing.assert_array_equal(item_ids, np.arange(X.shape[1] + 2))
    np.testing.assert_array_equal(G[: X.shape[1], : X.shape[1]], (X.T @ X).toarray())
    assert not G[X.shape[1] :].any()


def test_fit_gram_rejects_what_it_cannot_work_on_in_place():
    with pytest.raises(InputError, match="square"):
        EASE(backend="numpy").fit_gram(np.zeros((3, 4), dtype=np.float32))
    with pytest.raises(InputError, match=r"C-contiguous float32 array .* but its dtype is float64"):
        EASE(backend="numpy").fit_gram(np.eye(3))
    with pytest.raises(InputError, match="but it is not C-contiguous"):
        EASE(backend="numpy").fit_gram(np.eye(3, dtype=np.float32).T[:, ::-1])
    frozen = np.eye(3, dtype=np.float32)
    frozen.flags.writeable = False
    with pytest.raises(InputError, match="but it is read-only"):
        EASE(backend="numpy").fit_gram(frozen)


# ---- connecting -------------------------------------------------------------------------
def test_unreachable_scheduler_fails_fast_with_a_clear_error():
    start = time.perf_counter()
    with pytest.raises(
        SchedulerUnreachableError, match=r"no Dask scheduler answered at tcp://127.0.0.1:9 within 1 s"
    ):
        connect("tcp://127.0.0.1:9", timeout=1)
    assert time.perf_counter() - start < 10


@pytest.fixture
def http_port():
    """A plain HTTP server on a loopback port: it accepts connections but does not speak Dask."""
    import http.server
    import threading

    class Quiet(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def _within(seconds: float, function, *args):
    """``function(*args)``'s result or exception, or fail when it is still running after ``seconds``."""
    import threading

    outcome: dict[str, object] = {}

    def call():
        try:
            outcome["value"] = function(*args)
        except BaseException as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=call, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"still waiting after {seconds} s"
    return outcome


def test_a_server_that_is_not_a_scheduler_fails_within_the_timeout(http_port):
    start = time.perf_counter()
    outcome = _within(30, lambda: connect(f"tcp://127.0.0.1:{http_port}", timeout=1))
    assert isinstance(outcome.get("error"), SchedulerUnreachableError), outcome
    assert "not identify itself as a Dask scheduler within 1 s" in str(outcome["error"])
    assert time.perf_counter() - start < 10


def test_cli_recommend_on_a_server_that_is_not_a_scheduler_exits_2(http_port, cli_model, tmp_path, capsys):
    from accel.cli import main

    log, model_dir = cli_model
    args = ["recommend", str(model_dir), str(log), "--out", str(tmp_path / "recs"), "-q"]
    outcome = _within(30, main, [*args, "--scheduler", f"tcp://127.0.0.1:{http_port}", "--timeout", "1"])
    err = capsys.readouterr().err
    assert outcome.get("value") == 2 and len(err.strip().splitlines()) == 1, (outcome, err)
    assert "not identify itself as a Dask scheduler" in err and not (tmp_path / "recs").exists()


def test_connect_rejects_bad_arguments():
    with pytest.raises(InputError, match="bad scheduler address"):
        connect("no port here", timeout=1)
    with pytest.raises(InputError, match="not both"):
        connect("tcp://127.0.0.1:9", n_workers=2)
    with pytest.raises(InputError, match="positive integer"):
        connect(n_workers=0)


# ---- command line -----------------------------------------------------------------------
@pytest.fixture(scope="module")
def cli_model(tmp_path_factory) -> tuple[Path, Path]:
    from accel.cli import main
    from accel.data import synthetic_interactions

    folder = tmp_path_factory.mktemp("cli")
    log = folder / "log.parquet"
    synthetic_interactions(250, 60, mean_per_user=8, seed=5).to_parquet(log)
    assert (
        main(["fit", str(log), "--l2", "50", "--backend", "numpy", "--out", str(folder / "model"), "-q"]) == 0
    )
    return log, folder / "model"


def test_cli_recommend_on_a_scheduler_matches_the_in_process_command(
    client, cli_model, tmp_path, capsys, monkeypatch
):
    from accel.cli import main

    log, model_dir = cli_model
    assert (
        main(
            ["recommend", str(model_dir), str(log), "--k", "4", "--out", str(tmp_path / "ref.parquet"), "-q"]
        )
        == 0
    )
    args = ["recommend", str(model_dir), str(log), "--k", "4", "--out", str(tmp_path / "recs")]
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)  # Dask's bar is drawn on a terminal only
    assert main([*args, "--scheduler", client.scheduler.address, "--chunk-users", "60"]) == 0
    captured = capsys.readouterr()
    assert "100%" in captured.out and "in 5 parts" in captured.err
    expected = pd.read_parquet(tmp_path / "ref.parquet").sort_values(["user", "rank"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(read_output(tmp_path / "recs"), expected, check_dtype=False)
    assert main([*args, "--workers", "1", "--k", "3", "-q"]) == 2
    assert "different run (differs in: k)" in capsys.readouterr().err  # before the log is read
    assert main([*args, "--workers", "1", "--k", "3", "--overwrite", "--quiet"]) == 0
    assert capsys.readouterr().out == ""
    assert len(read_output(tmp_path / "recs")) == len(expected) // 4 * 3


def test_cli_recommend_refuses_another_models_run_before_reading_the_log(client, cli_model, tmp_path, capsys):
    from accel.cli import main

    log, model_dir = cli_model
    out = tmp_path / "recs"
    scheduler = ["--scheduler", client.scheduler.address, "-q"]
    assert main(["recommend", str(model_dir), str(log), "--k", "3", "--out", str(out), *scheduler]) == 0
    other = tmp_path / "other"
    assert main(["fit", str(log), "--l2", "7", "--backend", "numpy", "--out", str(other), "-q"]) == 0
    capsys.readouterr()
    missing = str(tmp_path / "no-such-log.parquet")  # read only after the folder check
    assert main(["recommend", str(other), missing, "--k", "3", "--out", str(out), *scheduler]) == 2
    err = capsys.readouterr().err
    assert "different run (differs in: model)" in err and "pass --overwrite" in err and err.count("\n") == 1


def test_cli_recommend_reports_an_unreachable_scheduler(cli_model, tmp_path, capsys):
    from accel.cli import main

    log, model_dir = cli_model
    args = ["recommend", str(model_dir), str(log), "--out", str(tmp_path / "recs"), "-q"]
    assert main([*args, "--scheduler", "tcp://127.0.0.1:9", "--timeout", "1"]) == 2
    assert "no Dask scheduler answered at tcp://127.0.0.1:9 within 1 s" in capsys.readouterr().err
    assert main([*args[:3], "--workers", "2"]) == 2
    assert "--out must name an output folder" in capsys.readouterr().err


def test_parquet_checks_log_items_against_a_saved_models_items(client, model, X, tmp_path):
    log = FakeInteractions(X[:40])
    model.save(tmp_path / "model", extras={"item_ids": log.item_ids.astype(str)[::-1]})
    with pytest.raises(InputError, match="not the model's items in the model's order"):
        recommend_to_parquet(tmp_path / "model", log, tmp_path / "a", client=client)
    recommend_to_parquet(tmp_path / "model", X[:40], tmp_path / "b", k=2, client=client)
    assert read_output(tmp_path / "b")["item"].isin(log.item_ids).all()


def test_filters_and_pruned_model_on_workers(client, X, model, tmp_path):
    """Candidate filters reach the workers chunk by chunk; a pruned EASE serves the same there."""
    pruned = model.prune(0.2)
    allowed = np.arange(0, X.shape[1], 2)
    forbidden = sp.random(X.shape[0], X.shape[1], density=0.1, format="csr", random_state=2)
    expected = pruned.recommend(X, k=5, allowed_items=allowed, forbidden_items=forbidden)
    got = recommend(
        pruned, X, k=5, client=client, chunk_users=70, allowed_items=allowed, forbidden_items=forbidden
    )
    assert np.array_equal(got[0], expected[0]) and np.allclose(got[1], expected[1])
    assert set(got[0][got[0] >= 0].ravel()) <= set(allowed)
    manifest = recommend_to_parquet(
        pruned, X, tmp_path / "recs", k=5, client=client, chunk_users=70, forbidden_items=forbidden
    )
    frame = read_output(tmp_path / "recs")
    assert manifest["run"]["filters"] and len(frame) == manifest["rows_written"]
    assert not forbidden[frame["user"].to_numpy(), frame["item"].to_numpy()].any()


def test_unknown_users_on_workers(client, model, X, tmp_path):
    """Rows with no items get popular items, are skipped, or are refused before any work is sent."""
    empty = sp.csr_matrix((1, X.shape[1]), dtype=X.dtype)
    rows = sp.vstack([X[:5], empty, X[5:30], empty, X[30:50]]).tocsr()  # rows 5 and 31 have no items
    for mode in ("popular", "skip"):
        got = recommend(model, rows, k=K, client=client, chunk_users=16, unknown_users=mode)
        expected = model.recommend(rows, k=K, unknown_users=mode)
        np.testing.assert_array_equal(got[0], expected[0])
        np.testing.assert_array_equal(got[1], expected[1])
    assert (got[0][[5, 31]] == -1).all() and (got[0][[4, 6, 30, 32]] >= 0).all()
    untouchable = object()  # any use of the client would fail on it
    with pytest.raises(InputError, match=r"2 of 52 rows .*first is row 5.* have no items"):
        recommend(model, rows, k=K, client=untouchable, unknown_users="error")
    with pytest.raises(InputError, match="2 of 52 rows"):
        recommend_to_parquet(model, rows, tmp_path / "refused", client=untouchable, unknown_users="error")
    assert not (tmp_path / "refused").exists()
    with pytest.raises(InputError, match="unknown_users must be one of 'popular', 'skip', 'error'"):
        recommend(model, rows, client=untouchable, unknown_users="drop")
    assert recommend(model, X[:20], k=K, client=client, unknown_users="error")[0].shape == (20, K)

    out = tmp_path / "skip"
    options = {"k": K, "client": client, "chunk_users": 16}
    manifest = recommend_to_parquet(model, rows, out, unknown_users="skip", **options)
    frame = read_output(out)
    assert manifest["run"]["unknown_users"] == "skip" and len(frame) == manifest["rows_written"] == 50 * K
    assert set(frame["user"]) == set(range(52)) - {5, 31} and (frame["source"] == "model").all()
    ids, scores = model.recommend(rows, k=K, unknown_users="skip")
    np.testing.assert_array_equal(frame["item"].to_numpy(), ids[ids >= 0])
    np.testing.assert_array_equal(frame["score"].to_numpy(), scores[ids >= 0])
    with pytest.raises(InputError, match=r"different run \(differs in: unknown_users\)"):
        recommend_to_parquet(model, rows, out, **options)
    resumed = recommend_to_parquet(model, rows, out, unknown_users="skip", **options)
    assert (resumed["chunks_written"], resumed["chunks_resumed"]) == (0, 4)
    popular = recommend_to_parquet(model, rows, tmp_path / "popular", **options)
    assert "unknown_users" not in popular["run"] and popular["rows_written"] == 52 * K
    cold = read_output(tmp_path / "popular").query("user in (5, 31)")
    assert len(cold) == 2 * K and (cold["source"] == "popular").all()


def test_cli_recommend_on_a_scheduler_skips_unknown_users(client, cli_model, tmp_path):
    from accel.cli import main

    log, model_dir = cli_model
    frame = pd.read_parquet(log)
    cold = frame.head(2).assign(user_id=[10_001, 10_002], item_id=[99_998, 99_999])  # items never seen
    pd.concat([frame, cold]).to_parquet(tmp_path / "log.parquet")
    args = ["recommend", str(model_dir), str(tmp_path / "log.parquet"), "--k", "4", "-q"]
    args += ["--unknown-users", "skip"]
    assert main([*args, "--out", str(tmp_path / "ref.parquet")]) == 0
    assert main([*args, "--out", str(tmp_path / "recs"), "--scheduler", client.scheduler.address]) == 0
    expected = pd.read_parquet(tmp_path / "ref.parquet").sort_values(["user", "rank"]).reset_index(drop=True)
    got = read_output(tmp_path / "recs")
    pd.testing.assert_frame_equal(got, expected, check_dtype=False)
    assert (
        not got["user"].isin([10_001, 10_002]).any() and got["user"].nunique() == frame["user_id"].nunique()
    )


def _sigint_ignored() -> bool:
    import signal

    return signal.getsignal(signal.SIGINT) is signal.SIG_IGN


def test_local_workers_leave_ctrl_c_to_this_process():
    """Workers ignore the terminal's Ctrl-C (sent to the whole group); this process keeps its handler."""
    import signal

    before = signal.getsignal(signal.SIGINT)
    local = connect(n_workers=1)
    try:
        assert set(local.run(_sigint_ignored).values()) == {True}
        assert signal.getsignal(signal.SIGINT) is before
    finally:
        local.close()


def test_ctrl_c_during_a_dask_write_is_one_line_and_130(cli_model, tmp_path, capsys, monkeypatch):
    import logging

    import accel.distributed.scoring
    from accel.cli import main

    def interrupted(*args, **kwargs):
        logging.getLogger("distributed.scheduler").warning("lost computed tasks")
        raise KeyboardInterrupt

    monkeypatch.setattr(accel.distributed.scoring, "recommend_to_parquet", interrupted)
    for name in ("distributed", "tornado", "asyncio"):
        monkeypatch.setattr(logging.getLogger(name), "level", logging.getLogger(name).level)
    log, model_dir = cli_model
    code = main(["recommend", str(model_dir), str(log), "--workers", "1", "--out", str(tmp_path / "r")])
    assert code == 130 and capsys.readouterr().err == "accel recommend: interrupted\n"
    assert logging.getLogger("distributed").level > logging.CRITICAL


def _worker_model_threads(path: str, token: str) -> tuple[int, int | None]:
    """On a worker: the backend threads of the model built from ``path``, and the worker's own count."""
    from accel.distributed.model_transfer import PathRef, forget_model, worker_model, worker_threads

    threads = worker_model(PathRef(path, token)).backend_.n_threads
    forget_model(token)
    return threads, worker_threads()


@pytest.mark.parametrize("n_threads", [None, 3])
def test_workers_score_on_their_own_thread_count_unless_told(client, X, tmp_path, n_threads):
    EASE(l2=50.0, backend="numpy", n_threads=n_threads).fit(X, show_progress=False).save(tmp_path / "m")
    got, worker = client.submit(_worker_model_threads, str(tmp_path / "m"), f"threads-{n_threads}").result()
    assert worker == next(iter(client.nthreads().values()))
    assert got == (worker if n_threads is None else 3)
