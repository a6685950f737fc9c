"""Memory planning of the CuPy backend, in plain NumPy so it is tested without a GPU.

What one Gram block costs: cuSPARSE SpGEMM keeps work buffers of about
:data:`BYTES_PER_PRODUCT` bytes per scalar product of the block, and the block's
sparse result (value, column index) is at most one entry per product. A block's
products are Σ over its items of Σ over their users of the users' row lengths,
which :func:`plan_row_blocks` packs greedily. That per-product figure is an estimate,
so blocks are also capped at :data:`MAX_PRODUCTS_PER_BLOCK` and a block that runs out of
memory is split in two and retried (:func:`run_blocks`).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from accel.backends import _blocked_inverse as blocked

#: Device bytes per scalar product of a Gram block: SpGEMM buffers (~16) plus the block's result (~16).
#: An estimate (never measured on a device): the Gram step records the pool's figure per block.
BYTES_PER_PRODUCT = 32
#: Products per SpGEMM call stay far under 2³¹: past that cuSPARSE's 32-bit counters overflow
#: (a one-shot product at 1M users × 20k items silently came back empty on an H100), and a block
#: of 2²⁸ products needs about 8 GiB at :data:`BYTES_PER_PRODUCT`.
MAX_PRODUCTS_PER_BLOCK = 1 << 28
#: Most elements of one dense SpMM output: cuSPARSE's dense descriptors take 32-bit sizes
#: with 32-bit CSR indices, and failures near 2³¹ elements have been reported.
SPMM_MAX_ELEMENTS = (1 << 31) - 1
#: Share of the memory free when the Gram step starts that its blocks may use (the rest is slack
#: for the allocator's rounding and cuSPARSE's own small allocations).
GRAM_FREE_SHARE = 0.8
#: The least block workspace a fit plans for; blocks grow to what is free when the Gram runs.
GRAM_WORKSPACE_MIN = 256 << 20
#: Bytes per stored entry of the csr2cscEx2 buffer that transposing X takes (an upper estimate).
TRANSPOSE_BUFFER_PER_NNZ = 8
#: Per-item Gram statistics (products uint64, squares float64) and the float64 diagonal check.
GRAM_BYTES_PER_ITEM = 32
#: Slack for cuSOLVER's potrf workspace and small per-block temporaries of the inverse.
INVERSE_SLACK = 64 << 20
#: Share of the free memory one top-k chunk's temporaries may use.
TOPK_FREE_SHARE = 0.5
#: Top-k temporaries per score: packed uint64 keys (float32); keys, a partitioned copy,
#: two masks and an int32 rank (float64).
TOPK_BYTES_PER_SCORE = {np.dtype(np.float32): 8, np.dtype(np.float64): 30}


def plan_row_blocks(weights: np.ndarray, max_rows: int, max_weight: float) -> list[tuple[int, int]]:
    """Consecutive ``(start, stop)`` row blocks of at most ``max_rows`` rows and ``max_weight`` total weight.

    A single row heavier than ``max_weight`` gets a block of its own.
    """
    n = len(weights)
    cumulative = np.concatenate([[0.0], np.cumsum(np.asarray(weights, dtype=np.float64))])
    blocks = []
    start = 0
    while start < n:
        stop = int(np.searchsorted(cumulative, cumulative[start] + max_weight, side="right")) - 1
        stop = min(max(stop, start + 1), start + max(1, max_rows), n)
        blocks.append((start, stop))
        start = stop
    return blocks


def plan_gram_blocks(
    item_products: np.ndarray, free_bytes: int, max_rows: int | None = None
) -> list[tuple[int, int]]:
    """Item blocks for the Gram step, as large as ``free_bytes`` (free once G and Xᵀ exist) allows."""
    budget = max(GRAM_WORKSPACE_MIN, int(free_bytes * GRAM_FREE_SHARE))
    max_products = max(1, min(MAX_PRODUCTS_PER_BLOCK, budget // BYTES_PER_PRODUCT))
    n = len(item_products)
    return plan_row_blocks(item_products, max_rows or max(1, n), max_products)


def run_blocks(
    blocks: list[tuple[int, int]],
    run: Callable[[int, int], None],
    out_of_memory: Callable[[BaseException], bool],
    free_pool: Callable[[], None],
) -> int:
    """``run(start, stop)`` for each block in order; one that runs out of memory is halved and retried.

    A one-row block that runs out of memory re-raises. Returns the number of retries.
    """
    pending = list(reversed(blocks))
    retries = 0
    while pending:
        start, stop = pending.pop()
        try:
            run(start, stop)
        except Exception as exc:
            if stop - start < 2 or not out_of_memory(exc):
                raise
            free_pool()
            retries += 1
            middle = (start + stop) // 2
            pending += [(middle, stop), (start, middle)]
    return retries


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` is a device allocation failure (CuPy's pool, the runtime, or a CUDA library's)."""
    text = str(exc)
    return isinstance(exc, MemoryError) or "ALLOC_FAILED" in text or "out of memory" in text.lower()


def spmm_max_rows(n_cols: int) -> int:
    """Rows of one SpMM whose dense output stays within :data:`SPMM_MAX_ELEMENTS` elements."""
    return max(1, SPMM_MAX_ELEMENTS // max(1, int(n_cols)))


def gram_workspace_bytes(n_items: int, nnz: int) -> int:
    """Device bytes the Gram step needs beyond G, X and Xᵀ: transpose buffer, statistics, least blocks."""
    return int(nnz * TRANSPOSE_BUFFER_PER_NNZ + n_items * GRAM_BYTES_PER_ITEM + GRAM_WORKSPACE_MIN)


def inverse_workspace_bytes(n_items: int, itemsize: int, block_size: int) -> int:
    """Device bytes the blocked inverse needs beyond its n² buffer."""
    return int(blocked.workspace_elements(n_items, block_size) * itemsize + INVERSE_SLACK)


def topk_chunk_rows(free_bytes: int, n_cols: int, dtype: np.dtype) -> int:
    """Rows of scores whose top-k temporaries fit in a share of ``free_bytes``."""
    per_row = TOPK_BYTES_PER_SCORE[np.dtype(dtype)] * max(1, n_cols)
    return int(max(1, free_bytes * TOPK_FREE_SHARE // per_row))
