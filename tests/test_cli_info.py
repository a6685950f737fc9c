"""``accel info`` reports backends and the largest catalogue that fits."""

from __future__ import annotations

import json
import subprocess
import sys

import accel
from accel.cli import main
from accel.cli.info import largest_fit


def test_info_json(capsys):
    assert main(["info", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["backends"]["numpy"] == "available"
    n = info["numpy_max_ease_items_float32"]
    free = info["numpy_memory"]["free"]
    assert accel.EASE.memory_required(n) <= free < accel.EASE.memory_required(n + 1)


def test_largest_fit_is_tight():
    backend = accel.get_backend("numpy")
    n = largest_fit(10**9, backend)
    assert accel.EASE.memory_required(n, "float32", backend) <= 10**9
    assert accel.EASE.memory_required(n + 1, "float32", backend) > 10**9


def test_console_entry_point_runs():
    result = subprocess.run(
        [sys.executable, "-m", "accel", "info"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "backend numpy: available" in result.stdout
