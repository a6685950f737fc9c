"""The README's two commands stay true: CI runs exactly its test commands."""

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
    """The README's install, check and test lines are CI's, in order, one after another."""
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    commands = readme_commands()["tests"].splitlines()
    assert commands[0] in ci, "CI does not install as the README says"
    start = ci.index(commands[0])
    assert ci[start : start + len(commands)] == commands


def test_ci_checks_lint_format_and_types_before_the_tests():
    commands = readme_commands()["tests"].splitlines()
    assert commands[1:] == ["ruff check .", "ruff format --check .", "mypy", "python -m pytest"]
    assert ".[test,lint]" in commands[0]


def test_main_job_is_the_quick_benchmark():
    command = readme_commands()["main-job"]
    assert command.startswith("python3 -m venv .venv")
    assert command.endswith("accel bench --quick")


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
