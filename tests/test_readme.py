"""The README's two commands stay true: CI runs exactly its test command."""

from __future__ import annotations

import re
from pathlib import Path

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
