"""The CuPy backend's memory plans in plain NumPy (no GPU): Gram block retries, SpMM and batch row caps."""

from __future__ import annotations

import numpy as np
import pytest

from accel.backends.cupy import planning


class OutOfMemory(MemoryError):
    """Stands in for ``cupy.cuda.memory.OutOfMemoryError`` (a MemoryError)."""


def test_a_block_out_of_memory_is_halved_and_retried() -> None:
    done: list[tuple[int, int]] = []
    freed: list[int] = []

    def run(start: int, stop: int) -> None:
        if stop - start > 3:
            raise OutOfMemory(f"Out of memory allocating {(stop - start) << 30:,} bytes")
        done.append((start, stop))

    retries = planning.run_blocks(
        [(0, 10), (10, 12)], run, planning.is_out_of_memory, lambda: freed.append(1)
    )
    assert done == [(0, 2), (2, 5), (5, 7), (7, 10), (10, 12)]  # every row once, in order
    assert retries == len(freed) == 3


def test_a_one_row_block_or_another_error_reraises() -> None:
    def always_oom(start: int, stop: int) -> None:
        raise OutOfMemory("out of memory")

    with pytest.raises(OutOfMemory):
        planning.run_blocks([(0, 4)], always_oom, planning.is_out_of_memory, lambda: None)

    def broken(start: int, stop: int) -> None:
        raise ValueError("wrong shape")

    with pytest.raises(ValueError, match="wrong shape"):
        planning.run_blocks([(0, 4)], broken, planning.is_out_of_memory, lambda: None)


def test_out_of_memory_errors_are_recognised() -> None:
    assert planning.is_out_of_memory(OutOfMemory("Out of memory allocating 1 bytes"))
    assert planning.is_out_of_memory(RuntimeError("CUSPARSE_STATUS_ALLOC_FAILED"))
    assert planning.is_out_of_memory(RuntimeError("cudaErrorMemoryAllocation: out of memory"))
    assert not planning.is_out_of_memory(RuntimeError("CUSPARSE_STATUS_INVALID_VALUE"))


def test_gram_blocks_are_capped_at_2_to_the_28_products() -> None:
    # 1M users × 100k items on a 139 GiB device: the budget alone would allow 4e9 products a block.
    products = np.full(100_000, 25_000.0)
    blocks = planning.plan_gram_blocks(products, free_bytes=100 << 30)
    assert all(products[a:b].sum() <= 1 << 28 for a, b in blocks)
    assert (
        blocks[0][0] == 0 and blocks[-1][1] == 100_000 and len(blocks) == -(-int(products.sum()) // (1 << 28))
    )


@pytest.mark.parametrize("n_items", [1, 20_000, 100_000, 190_000, 1 << 31])
def test_spmm_rows_keep_the_output_under_2_to_the_31(n_items: int) -> None:
    rows = planning.spmm_max_rows(n_items)
    assert rows >= 1
    assert rows * n_items <= 2**31 - 1 or rows == 1
    assert (rows + 1) * n_items > 2**31 - 1


def test_scoring_batches_on_a_139_gib_device_stay_under_2_to_the_31_elements() -> None:
    """Free memory alone would give 155k × 20k and 31k × 100k batches (> 2³¹ elements) on an H200."""
    from accel.backends.base import Backend
    from accel.backends.cupy.backend import CupyBackend

    backend = object.__new__(CupyBackend)  # the plan only; no device is touched
    backend.free_memory = lambda: 139 << 30  # type: ignore[method-assign]
    for n_items in (20_000, 100_000):
        uncapped = Backend.dense_batch_rows(backend, n_items, 4)
        assert uncapped * n_items > 2**31  # what the cap is for
        rows = backend.dense_batch_rows(n_items, 4)
        assert rows == (2**31 - 1) // n_items
    assert backend.dense_batch_rows(20_000, 4) == 107_374
    backend.free_memory = lambda: 1 << 30  # type: ignore[method-assign]
    assert backend.dense_batch_rows(20_000, 4) == Backend.dense_batch_rows(backend, 20_000, 4) < 107_374
