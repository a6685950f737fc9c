"""Memory readings that benchmarks and the fit's pre-allocation check rely on."""

from __future__ import annotations

import subprocess
import sys

import numpy as np

from accel.memory import available_host_memory, peak_rss


def test_peak_rss_of_a_fresh_process_is_its_own():
    big = np.ones(400 << 20, dtype=np.uint8)  # 400 MiB touched in this process
    assert peak_rss() >= big.nbytes
    child = subprocess.run(
        [sys.executable, "-c", "from accel.memory import peak_rss; print(peak_rss())"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert int(child.stdout) < big.nbytes / 2


def test_peak_rss_grows_with_an_allocation():
    before = peak_rss()
    block = np.ones(max(before, 64 << 20) + (64 << 20), dtype=np.uint8)
    assert peak_rss() >= block.nbytes


def test_available_memory_is_plausible():
    assert available_host_memory() > 0
