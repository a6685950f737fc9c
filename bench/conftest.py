"""Fixtures for the micro benchmarks.

Run with ``pytest bench --benchmark-only``; set ``ACCEL_BENCH_SLOW=1`` to add the
6,000-item fit comparison (about 20 s per round for the seed recipe on 2 cores).
"""

from __future__ import annotations

import pytest
from micro_data import measure_sgemm_rate


@pytest.fixture(scope="session")
def sgemm_rate() -> float:
    """This machine's float32 matmul rate in flop/s."""
    return measure_sgemm_rate()
