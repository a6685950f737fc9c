"""Every code block of README.md and docs/ runs as written, on small data with the names it uses.

Python blocks of one page run in order in one namespace (as a reader's session would), given the
reader's own data the text speaks of (``X``, ``interactions``). Shell blocks run each ``accel``
command through :func:`accel.cli.main`. Paths the docs name (``/data/ml-100k``, a scheduler
address) are pointed at small local stand-ins; the benchmark commands run at toy sizes.
"""

from __future__ import annotations

import importlib.util
import re
import shlex
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = ["README.md", "docs/data-and-cli.md", "docs/benchmarks.md", "docs/distributed.md"]
LANGUAGES = {"python", "bash", "sh", "text"}
#: Shell commands the tests do not run, by how they start: installs, the test and benchmark suites
#: themselves, and services that run until stopped (the Dask tests start clusters in-process).
NOT_RUN = ("python3 -m venv", ". .venv/bin/activate", "pip install", "python -m pytest", "pytest bench",
           "ACCEL_BENCH_SLOW=1 pytest", "dask scheduler", "dask worker", "dask cuda worker",
           "ruff ", "mypy")  # fmt: skip
#: Extra arguments that make a benchmark command a toy-sized one.
TINY_BENCH = [
    "--users",
    "300",
    "--items",
    "80",
    "--sweep-users",
    "200",
    "--sweep-items",
    "80",
    "--similarities",
    "cosine",
    "-q",
]
ARTICLES = ["0108775015", "0706016001", *(f"{i:010d}" for i in range(1, 59))]


def code_blocks(page: str) -> list[tuple[str, str, int]]:
    """``(language, text, line)`` of each fenced block of ``page`` (indented blocks included)."""
    lines = (ROOT / page).read_text().splitlines()
    blocks, i = [], 0
    while i < len(lines):
        match = re.fullmatch(r"(\s*)```(\w*)", lines[i])
        if not match:
            i += 1
            continue
        indent, language, start = len(match.group(1)), match.group(2), i + 1
        i += 1
        body = []
        while not re.fullmatch(r"\s*```", lines[i]):
            body.append(lines[i][indent:])
            i += 1
        blocks.append((language, "\n".join(body), start))
        i += 1
    return blocks


def shell_commands(text: str) -> list[str]:
    """The commands of a shell block: continuations joined, comments dropped, ``&&`` chains split."""
    joined = re.sub(r"\\\n\s*", " ", text)
    commands = []
    for line in joined.splitlines():
        line = re.sub(r"(^|\s)#.*$", "", line).strip()
        commands += [part.strip() for part in line.split("&&") if part.strip()]
    return commands


def test_every_block_names_its_language():
    for page in PAGES:
        for language, _, line in code_blocks(page):
            assert language in LANGUAGES, f"{page}:{line}: a code block needs one of {sorted(LANGUAGES)}"


def _movielens(folder: Path, rng: np.random.Generator, n_users: int = 120, n_items: int = 70) -> None:
    folder.mkdir()
    users = np.repeat(np.arange(1, n_users + 1), 20)
    items = rng.integers(1, n_items + 1, users.size)
    times = 874_724_710 + rng.integers(0, 215 * 86_400, users.size)
    pd.DataFrame({"u": users, "i": items, "r": rng.integers(1, 6, users.size), "t": times}).to_csv(
        folder / "u.data", sep="\t", header=False, index=False
    )
    genres = ["0"] * 19
    rows = []
    for item in range(1, n_items + 1):
        flags = genres.copy()
        flags[1 + item % 3] = flags[8 + item % 2] = "1"
        rows.append(f"{item}|Film {item} (1995)|01-Jan-1995||http://x|" + "|".join(flags))
    (folder / "u.item").write_text("\n".join(rows) + "\n", encoding="latin-1")


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    """A folder holding every file the docs read, small."""
    ws = tmp_path_factory.mktemp("docs")
    rng = np.random.default_rng(0)
    users = ["u1", "u2", *(f"c{i}" for i in range(198))]
    log = pd.DataFrame(
        {
            "customer_id": np.repeat(users, 8),
            "article_id": rng.choice(ARTICLES, size=8 * len(users)),
            "t_dat": pd.Timestamp("2019-01-01") + pd.to_timedelta(rng.integers(0, 730, 8 * len(users)), "D"),
        }
    )
    log.to_parquet(ws / "log.parquet")
    log.to_parquet(ws / "transactions.parquet")
    pd.DataFrame({"article_id": ARTICLES[:40]}).to_csv(ws / "in_stock.csv", index=False)
    log.iloc[::7][["customer_id", "article_id"]].to_parquet(ws / "shipped.parquet")
    pd.DataFrame(
        {
            "article_id": ARTICLES,
            "prod_name": [f"product {i // 2}" for i in range(len(ARTICLES))],
            "index_group_name": ["Ladieswear", "Menswear", "Divided"] * (len(ARTICLES) // 3),
        }
    ).to_parquet(ws / "articles.parquet")
    (ws / "h-and-m").mkdir()
    hm = log.assign(price=0.05, sales_channel_id=2)[
        ["t_dat", "customer_id", "article_id", "price", "sales_channel_id"]
    ]
    hm.assign(t_dat=hm["t_dat"].dt.strftime("%Y-%m-%d")).to_csv(
        ws / "h-and-m" / "transactions_train.csv", index=False
    )
    pd.read_parquet(ws / "articles.parquet").to_csv(ws / "h-and-m" / "articles.csv", index=False)
    _movielens(ws / "ml-100k", rng)
    (ws / "data").mkdir()
    (ws / "data" / "ml-100k").symlink_to(ws / "ml-100k")
    (ws / "cache" / "ml-1m").mkdir(parents=True)
    ratings = pd.read_csv(ws / "ml-100k" / "u.data", sep="\t", header=None)
    (ws / "cache" / "ml-1m" / "ratings.dat").write_text(
        "\n".join("::".join(map(str, row)) for row in ratings.itertuples(index=False)) + "\n"
    )
    (ws / "log").mkdir()
    log.rename(columns={"customer_id": "user_id", "article_id": "item_id"}).to_parquet(
        ws / "log" / "part-0.parquet"
    )
    (ws / "shared-recs").mkdir()
    return ws


@pytest.fixture(scope="module")
def scheduler():
    from distributed import LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=":0") as cluster:
        yield cluster.scheduler_address


def _localise(text: str, scheduler: str) -> str:
    """The docs' example paths and addresses pointed at the workspace and a local scheduler."""
    for example, local in (
        ("/data/ml-100k", "ml-100k"),
        ("/data/h-and-m", "h-and-m"),
        ("/shared/recs/", "shared-recs/"),
        ("tcp://SCHEDULER:8786", scheduler),
    ):
        text = text.replace(example, local)
    return text


def _run_python(text: str, namespace: dict, where: str) -> bool:
    """Run one block; False for the multi-GPU block where dask-cuda is not installed."""
    if "dask_cuda" in text and importlib.util.find_spec("dask_cuda") is None:
        return False
    exec(compile(text, where, "exec"), namespace)
    return True


def _run_shell(text: str, where: str, monkeypatch, capsys) -> list[str]:
    """Run each ``accel`` command of a shell block; returns the commands that ran."""
    from accel.cli import bench as bench_cli
    from accel.cli import main

    monkeypatch.setitem(bench_cli.QUICK, "users", 300)
    monkeypatch.setitem(bench_cli.QUICK, "items", 80)
    monkeypatch.setitem(bench_cli.QUICK, "sweep_items", (60, 80))
    monkeypatch.setitem(bench_cli.QUICK, "sweep_users", 200)
    ran = []
    for command in shell_commands(text):
        if command.startswith(NOT_RUN):
            continue
        argv = shlex.split(command)
        assert argv[0] == "accel", f"{where}: {command!r} is neither an accel command nor known not to run"
        argv = argv[1:]
        if argv[0] == "bench":
            argv += TINY_BENCH
        if argv[0] == "tune":
            argv += ["--trials", "2"]
        code = main(argv)
        assert code == 0, f"{where}: {command!r} exited {code}: {capsys.readouterr().err[-2000:]}"
        ran.append(command)
    return ran


@pytest.mark.slow
@pytest.mark.parametrize("page", PAGES)
def test_page_blocks_run(page, workspace, scheduler, monkeypatch, capsys):
    from accel.data import Interactions

    monkeypatch.chdir(workspace)
    monkeypatch.setenv("ACCEL_CACHE", str(workspace / "cache"))
    interactions = Interactions.from_parquet(
        "log.parquet", user_col="customer_id", item_col="article_id", time_col="t_dat"
    )
    namespace: dict[str, object] = {"X": interactions.matrix(), "interactions": interactions}
    ran = 0
    try:
        for language, text, line in code_blocks(page):
            where = f"{page}:{line}"
            text = _localise(text, scheduler)
            if language == "python":
                ran += _run_python(text, namespace, where)
            elif language in ("bash", "sh"):
                ran += bool(_run_shell(text, where, monkeypatch, capsys))
    finally:
        client = namespace.get("client")
        if client is not None:
            client.close()
    assert ran > 0
    if page == "README.md":  # answers in the log's own ids
        recs = namespace["recs"]
        assert list(recs.columns) == ["user", "item", "rank", "score", "source"]
        assert set(recs["user"]) == {"u1", "u2"} and set(recs["item"]) <= set(ARTICLES)


def test_subpackages_load_on_attribute_access():
    """``import accel`` then ``accel.tuning.tune`` etc., in a fresh interpreter, as the docs call them."""
    import subprocess
    import sys

    code = (
        "import accel; accel.tuning.tune; accel.metrics.evaluate_split; accel.plots.item_map; "
        "accel.distributed.connect; accel.data.Interactions; assert 'tuning' in dir(accel)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
