"""The README's two commands stay true: CI runs exactly its test command."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def readme_commands() -> dict[str, str]:
    text = (ROOT / "README.md").read_text()
    found = dict(re.findall(r"<!-- (main-job|tests) -->\s*```(?:bash|sh)\n(.+?)\n```", text, flags=re.S))
    assert set(found) == {"main-job", "tests"}, "README must mark its main-job and tests commands"
    return found


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text()
    assert readme_commands()["tests"] in ci.splitlines()


def test_main_job_is_the_quick_benchmark():
    command = readme_commands()["main-job"]
    assert command.startswith("python3 -m venv .venv")
    assert command.endswith("accel bench --quick")


def test_python_example_runs(tmp_path, monkeypatch):
    """The README's Python block, run as written on a small log with the ids it names."""
    import numpy as np
    import pandas as pd

    block = re.search(r"## Python\n\n```python\n(.+?)\n```", (ROOT / "README.md").read_text(), re.S).group(1)
    rng = np.random.default_rng(0)
    articles = ["0108775015", "0706016001", *(f"{i:010d}" for i in range(1, 59))]
    users = ["u1", "u2", *(f"c{i}" for i in range(198))]
    log = pd.DataFrame(
        {
            "customer_id": np.repeat(users, 6),
            "article_id": rng.choice(articles, size=6 * len(users)),
            "t_dat": pd.Timestamp("2020-01-01") + pd.to_timedelta(rng.integers(0, 90, 6 * len(users)), "D"),
        }
    )
    log.to_parquet(tmp_path / "log.parquet")
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {}
    exec(compile(block, "README.md", "exec"), namespace)
    recs = namespace["recs"]
    assert list(recs.columns) == ["user", "item", "rank", "score", "source"]
    assert set(recs["user"]) == {"u1", "u2"} and set(recs["item"]) <= set(articles)


def _documents() -> dict[str, str]:
    """README.md and every page under docs/, by path."""
    paths = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    return {str(p.relative_to(ROOT)): p.read_text() for p in paths}


def test_distribution_has_its_own_name():
    """`accel` on the package index is another project: the distribution is named otherwise."""
    tomllib = pytest.importorskip("tomllib", reason="tomllib needs Python 3.11")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["name"] not in ("accel", "Accel")
    assert all(project["name"] in extra for extra in project["optional-dependencies"]["dev"][:1])


def test_install_lines_name_the_checkout():
    """Every `pip install` of accel with extras installs from a path, never a name on the index."""
    for name, text in _documents().items():
        for target in re.findall(r"pip install (?:-e )?[\"']?([\w./-]*\[[\w,-]+\])", text):
            assert target.startswith((".", "/")), f"{name}: pip install {target} is not a local path"
