"""``out = X · W`` through ``cusparseSpMM`` with CuPy's generic-API bindings, ``W`` never copied.

Bindings ``createCsr``/``createDnMat``/``spMM_bufferSize``/``spMM``
(``cupy_backends/cuda/libs/cusparse.pxd``); ``cupyx``'s ``csr @ dense`` converts ``W`` to
Fortran order first. ``W`` is row- or column-major; the output is row-major and kept under 2³¹
elements, so 32-bit index descriptors never address past their range. The algorithm is
``CUSPARSE_MM_ALG_DEFAULT``, what ``cupyx/cusparse.py`` passes to SpMM.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from accel.backends.base import Array
from accel.backends.cupy import planning
from accel.backends.cupy.libs import CUDA_DTYPE


def spmm(X: Any, W: Array, order: int, ld_w: int, out: Array) -> None:
    """``out = X · W`` by ``cusparseSpMM`` (``out`` C-contiguous, under 2³¹ elements)."""
    import cupy as cp
    from cupy_backends.cuda.libs import cusparse

    (m, k), n = X.shape, W.shape[1]
    if out.shape != (m, n) or out.size > planning.SPMM_MAX_ELEMENTS or not out.flags.c_contiguous:
        raise ValueError(f"SpMM output {out.shape} must be C-contiguous and under 2³¹ elements")
    dtype = np.dtype(W.dtype)
    if X.nnz == 0:
        out.fill(0)
        return
    index_type = cusparse.CUSPARSE_INDEX_32I if X.indices.dtype == np.int32 else cusparse.CUSPARSE_INDEX_64I
    cuda_dtype = CUDA_DTYPE[dtype]
    handle = cp.cuda.device.get_cusparse_handle()
    alpha, beta = np.array(1, dtype=dtype), np.array(0, dtype=dtype)
    mat_x = cusparse.createCsr(
        m,
        k,
        X.nnz,
        X.indptr.data.ptr,
        X.indices.data.ptr,
        X.data.data.ptr,
        index_type,
        index_type,
        cusparse.CUSPARSE_INDEX_BASE_ZERO,
        cuda_dtype,
    )
    mat_w = cusparse.createDnMat(k, n, ld_w, W.data.ptr, cuda_dtype, order)
    mat_out = cusparse.createDnMat(m, n, n, out.data.ptr, cuda_dtype, cusparse.CUSPARSE_ORDER_ROW)
    try:
        op = cusparse.CUSPARSE_OPERATION_NON_TRANSPOSE
        # spMM takes exactly bufferSize's arguments plus the buffer.
        args = (
            handle,
            op,
            op,
            alpha.ctypes.data,
            mat_x,
            mat_w,
            beta.ctypes.data,
            mat_out,
            cuda_dtype,
            cusparse.CUSPARSE_MM_ALG_DEFAULT,
        )
        buffer = cp.empty(max(1, cusparse.spMM_bufferSize(*args)), dtype=cp.uint8)
        cusparse.spMM(*args, buffer.data.ptr)
    finally:
        cusparse.destroySpMat(mat_x)
        cusparse.destroyDnMat(mat_w)
        cusparse.destroyDnMat(mat_out)
