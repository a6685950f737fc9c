"""CUDA kernels of the CuPy backend over CSR rows: scatter, fill, and per-item Gram statistics.

The CSR row kernels run one thread block per row, so they need no ``nnz``-long
temporaries (no row index per stored entry); they are compiled once per value/index
dtype and device.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

#: Threads per block of the CSR row kernels.
ROW_THREADS = 128

_ROW_KERNELS = r"""
// out[u, j] = data[p] (or value, where use_data is 0) for every stored entry p = (u, j) of the CSR.
extern "C" __global__ void csr_rows_assign(const IDX* indptr, const IDX* indices, const T* data,
                                           const int use_data, const T value, T* out, long long ld,
                                           long long n_rows) {
    const long long row = blockIdx.x;
    if (row >= n_rows) return;
    const long long end = indptr[row + 1];
    T* out_row = out + row * ld;
    for (long long p = indptr[row] + threadIdx.x; p < end; p += blockDim.x) {
        out_row[indices[p]] = use_data ? data[p] : value;
    }
}

// Per column j of the CSR X: products[j] = sum over rows u holding j of len(u) (the scalar
// products row j of X^T X costs in SpGEMM), squares[j] = sum_u X[u, j]^2 (diag of X^T X) and
// sums[j] = sum_u X[u, j] * (sum_i X[u, i]) (row j's sum of X^T X). Launched with ROW_THREADS
// threads per block (a power of two): the row's sum is reduced in shared memory first.
extern "C" __global__ void csr_column_stats(const IDX* indptr, const IDX* indices, const T* data,
                                            unsigned long long* products, double* squares,
                                            double* sums, long long n_rows) {
    __shared__ double partial[ROW_THREADS];
    const long long row = blockIdx.x;
    if (row >= n_rows) return;  // uniform across the block: no thread skips the barriers below
    const long long start = indptr[row], end = indptr[row + 1];
    const unsigned long long length = (unsigned long long)(end - start);
    double own = 0.0;
    for (long long p = start + threadIdx.x; p < end; p += blockDim.x) own += (double)data[p];
    partial[threadIdx.x] = own;
    __syncthreads();
    for (unsigned int half = blockDim.x / 2; half > 0; half >>= 1) {
        if (threadIdx.x < half) partial[threadIdx.x] += partial[threadIdx.x + half];
        __syncthreads();
    }
    const double row_sum = partial[0];
    for (long long p = start + threadIdx.x; p < end; p += blockDim.x) {
        const double value = (double)data[p];
        atomicAdd(products + indices[p], length);
        atomicAdd(squares + indices[p], value * value);
        atomicAdd(sums + indices[p], value * row_sum);
    }
}
"""

_C_TYPES = {np.dtype(np.float32): "float", np.dtype(np.float64): "double"}
_C_INDEX_TYPES = {np.dtype(np.int32): "int", np.dtype(np.int64): "long long"}


def kernel_header(dtype: np.dtype, index_dtype: np.dtype) -> str:
    """The value and index types and the block size that :data:`_ROW_KERNELS` is compiled with."""
    return (
        f"typedef {_C_TYPES[np.dtype(dtype)]} T;\ntypedef {_C_INDEX_TYPES[np.dtype(index_dtype)]} IDX;\n"
        f"#define ROW_THREADS {ROW_THREADS}\n"
    )


@functools.cache
def row_kernel(name: str, dtype: np.dtype, index_dtype: np.dtype, device_id: int) -> Any:
    """A CSR row kernel of :data:`_ROW_KERNELS` by name, for one value and index dtype."""
    import cupy

    header = kernel_header(dtype, index_dtype)
    return cupy.RawModule(code=header + _ROW_KERNELS).get_function(name)
