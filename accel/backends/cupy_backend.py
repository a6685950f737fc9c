"""GPU backend: CuPy dense arrays, cupyx CSR matrices, cuSPARSE, cuBLAS and cuSOLVER.

CuPy is imported lazily, so this module imports (and :func:`cupy_usable` answers)
on machines without it. What each kernel relies on, and where its signature was
confirmed (CuPy sources on GitHub, ``cupy/cupy``):

* Gram ``XᵀX``: ``cupyx.cusparse.spgemm(a, b)`` (cuSPARSE SpGEMM, ``cupyx/cusparse.py``)
  on blocks of item rows of ``Xᵀ``; each block product is scattered into its rows of
  the preallocated output by a small ``RawKernel``. Blocks are sized from the number
  of scalar products they make, because a one-shot product at 1M × 20k silently came
  back empty on an H100 (SpGEMM 32-bit overflow); ``diag(G)`` is checked afterwards.
* Inverse: the algorithm of :mod:`accel.backends._blocked_inverse`, run on
  ``cupy_backends.cuda.libs.cublas`` ``strsm/dtrsm(handle, side, uplo, trans, diag, m, n,
  alpha, A, lda, B, ldb)``, ``sgemm/dgemm(handle, transa, transb, m, n, k, alpha, A, lda,
  B, ldb, beta, C, ldc)``, ``ssyrk/dsyrk(handle, uplo, trans, n, k, alpha, A, lda, beta, C,
  ldc)``, ``setMathMode/getMathMode``, ``setPointerMode/getPointerMode``
  (``cupy_backends/cuda/libs/cublas.pxd``; host scalars passed as ``numpy.ndarray.ctypes.data``
  as ``cupyx/scipy/linalg/_solve_triangular.py`` does). CuPy wraps only the 32-bit legacy
  ``cusolverDn<t>potrf`` (``spotrf_bufferSize(handle, uplo, n, A, lda)``, ``spotrf(handle,
  uplo, n, A, lda, work, lwork, devInfo)`` in ``cupy_backends/cuda/libs/cusolver.pxd``) and
  no ``trmm``; the 64-bit ``cusolverDnXpotrf`` is therefore called through ``ctypes`` on the
  ``libcusolver`` CuPy has loaded, with its C signature from NVIDIA's ``cusolverDn.h``. If
  that library cannot be found, a blocked Cholesky built from legacy ``potrf`` on diagonal
  blocks plus ``trsm``/``syrk`` is used instead (same prototype-tested code).
* Scoring: ``cusparseSpMM`` with row-major dense operands through CuPy's generic-API
  wrappers ``createCsr(rows, cols, nnz, indptr, indices, values, indptr_type, index_type,
  base, value_type)``, ``createDnMat(rows, cols, ld, values, value_type, order)``,
  ``spMM_bufferSize``/``spMM(handle, opA, opB, alpha, matA, matB, beta, matC, compute_type,
  alg[, buffer])`` (``cupy_backends/cuda/libs/cusparse.pxd``), so ``W`` is never copied
  (``cupyx``'s ``csr @ dense`` converts it to Fortran order first).
* Top-k: ``cupy.ndarray.partition`` (a selection kernel for small k; ``argpartition`` is a
  full sort in CuPy) on 64-bit keys that pack the score's order bits with the column index,
  so the selection is exact and ties go to the lower column.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
import os
from collections.abc import Iterator
from typing import Any, ClassVar, Literal

import numpy as np
import scipy.sparse as sp

from accel.backends import _blocked_inverse as blocked
from accel.backends.base import Array, Backend, SparseMatrix
from accel.errors import BackendUnavailableError

MathMode = Literal["exact", "tf32"]
CholeskyMode = Literal["auto", "cusolver", "blocked"]

#: cublasMath_t values (cublas_api.h): CUBLAS_DEFAULT_MATH and CUBLAS_TF32_TENSOR_OP_MATH.
_CUBLAS_MATH = {"exact": 0, "tf32": 3}
#: cudaDataType values (library_types.h).
_CUDA_DTYPE = {np.dtype(np.float32): 0, np.dtype(np.float64): 1}
#: cusolverStatus_t names (cusolver_common.h), for error messages.
_CUSOLVER_STATUS = {
    1: "NOT_INITIALIZED",
    2: "ALLOC_FAILED",
    3: "INVALID_VALUE",
    4: "ARCH_MISMATCH",
    5: "MAPPING_ERROR",
    6: "EXECUTION_FAILED",
    7: "INTERNAL_ERROR",
    8: "MATRIX_TYPE_NOT_SUPPORTED",
    9: "NOT_SUPPORTED",
}

#: Gram temporaries (one block's sparse product and SpGEMM buffers) stay within this share of n²...
_GRAM_WORKSPACE_FRACTION = 1 / 8
#: ...and between these bounds.
_GRAM_WORKSPACE_MIN = 64 << 20
_GRAM_WORKSPACE_MAX = 2 << 30
#: Bytes per stored entry of a block product (value, column index, SpGEMM scratch).
_BYTES_PER_OUTPUT = 16
#: Bytes of SpGEMM work per scalar product of a block.
_BYTES_PER_PRODUCT = 16
#: Products per SpGEMM call stay well under 2³¹: past that cuSPARSE's 32-bit counters overflow.
_MAX_PRODUCTS_PER_BLOCK = 1 << 30
#: Slack for cuSOLVER's potrf workspace and small per-block temporaries.
_INVERSE_SLACK = 64 << 20
#: Most bytes of top-k keys (8 per score) made at a time.
_TOPK_KEY_BYTES = 512 << 20
#: Threads per block of the CSR row kernels.
_ROW_THREADS = 128


# ---------------------------------------------------------------------------------------------
# availability
# ---------------------------------------------------------------------------------------------
def cupy_usable(device: int | None = None) -> tuple[bool, str]:
    """Whether CuPy imports and a CUDA device answers; the reason when not (or the device when so)."""
    try:
        import cupy
    except Exception as exc:  # ImportError, or a broken CUDA library load inside CuPy
        return False, f"CuPy is not importable: {type(exc).__name__}: {exc}"
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:
        return False, f"the CUDA driver/runtime did not answer: {exc}"
    if count == 0:
        return False, "no CUDA device is visible"
    index = cupy.cuda.runtime.getDevice() if device is None else device
    if not 0 <= index < count:
        return False, f"CUDA device {index} does not exist ({count} visible)"
    try:
        with cupy.cuda.Device(index):
            cupy.cuda.runtime.memGetInfo()
            name = _device_name(cupy, index)
    except Exception as exc:
        return False, f"CUDA device {index} is not usable: {exc}"
    return True, f"CUDA device {index} ({name})"


def _device_name(cupy: Any, index: int) -> str:
    name = cupy.cuda.runtime.getDeviceProperties(index)["name"]
    return name.decode() if isinstance(name, bytes) else str(name)


# ---------------------------------------------------------------------------------------------
# pure helpers (no CuPy)
# ---------------------------------------------------------------------------------------------
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


def gram_workspace_bytes(n_items: int, itemsize: int) -> int:
    """Budget for one Gram block's temporaries: a fraction of the n² buffer, within fixed bounds."""
    share = int(n_items * n_items * itemsize * _GRAM_WORKSPACE_FRACTION)
    return int(min(_GRAM_WORKSPACE_MAX, max(_GRAM_WORKSPACE_MIN, share)))


def _mapped_library(prefix: str) -> str | None:
    """Path of an already loaded shared library whose file name starts with ``prefix + ".so"``."""
    try:
        with open("/proc/self/maps") as maps:
            for line in maps:
                fields = line.split(maxsplit=5)
                if len(fields) == 6 and os.path.basename(fields[5].strip()).startswith(prefix + ".so"):
                    return fields[5].strip()
    except OSError:
        return None
    return None


# ---------------------------------------------------------------------------------------------
# cuSOLVER 64-bit Cholesky through ctypes
# ---------------------------------------------------------------------------------------------
class _Xpotrf:
    """``cusolverDnXpotrf`` (64-bit API) on its own cuSOLVER handle for one device.

    C signatures (cusolverDn.h)::

        cusolverDnXpotrf_bufferSize(handle, params, uplo, int64 n, cudaDataType dataTypeA, const void *A,
                                    int64 lda, cudaDataType computeType, size_t *wsDevice, size_t *wsHost)
        cusolverDnXpotrf(handle, params, uplo, int64 n, cudaDataType dataTypeA, void *A, int64 lda,
                         cudaDataType computeType, void *bufDevice, size_t wsDevice, void *bufHost,
                         size_t wsHost, int *info)
    """

    _SIGNATURES: ClassVar[dict[str, list[Any]]] = {
        "cusolverDnCreate": [ctypes.POINTER(ctypes.c_void_p)],
        "cusolverDnSetStream": [ctypes.c_void_p, ctypes.c_void_p],
        "cusolverDnCreateParams": [ctypes.POINTER(ctypes.c_void_p)],
        "cusolverDnXpotrf_bufferSize": [
            ctypes.c_void_p,
            ctypes.c_void_p,
            ctypes.c_int,
            ctypes.c_int64,
            ctypes.c_int,
            ctypes.c_void_p,
            ctypes.c_int64,
            ctypes.c_int,
            ctypes.POINTER(ctypes.c_size_t),
            ctypes.POINTER(ctypes.c_size_t),
        ],
        "cusolverDnXpotrf": [
            ctypes.c_void_p,
            ctypes.c_void_p,
            ctypes.c_int,
            ctypes.c_int64,
            ctypes.c_int,
            ctypes.c_void_p,
            ctypes.c_int64,
            ctypes.c_int,
            ctypes.c_void_p,
            ctypes.c_size_t,
            ctypes.c_void_p,
            ctypes.c_size_t,
            ctypes.c_void_p,
        ],
    }

    def __init__(self, library: str) -> None:
        lib = ctypes.CDLL(library)
        for name, argtypes in self._SIGNATURES.items():
            function = getattr(lib, name)
            function.argtypes = argtypes
            function.restype = ctypes.c_int
        self._lib = lib
        self.library = library
        self._handle = ctypes.c_void_p()
        self._check(lib.cusolverDnCreate(ctypes.byref(self._handle)), "cusolverDnCreate")
        self._params = ctypes.c_void_p()
        self._check(lib.cusolverDnCreateParams(ctypes.byref(self._params)), "cusolverDnCreateParams")

    @staticmethod
    def _check(status: int, what: str) -> None:
        if status != 0:
            raise RuntimeError(f"{what} failed: CUSOLVER_STATUS_{_CUSOLVER_STATUS.get(status, status)}")

    def __call__(self, cupy: Any, n: int, pointer: int, lda: int, dtype: np.dtype) -> int:
        """Lower Cholesky of the column-major n × n matrix at device ``pointer``; returns devInfo."""
        lib = self._lib
        stream = cupy.cuda.get_current_stream().ptr
        self._check(lib.cusolverDnSetStream(self._handle, ctypes.c_void_p(stream)), "cusolverDnSetStream")
        cuda_dtype = _CUDA_DTYPE[np.dtype(dtype)]
        device_bytes, host_bytes = ctypes.c_size_t(), ctypes.c_size_t()
        lower = 0  # CUBLAS_FILL_MODE_LOWER
        self._check(
            lib.cusolverDnXpotrf_bufferSize(
                self._handle,
                self._params,
                lower,
                n,
                cuda_dtype,
                ctypes.c_void_p(pointer),
                lda,
                cuda_dtype,
                ctypes.byref(device_bytes),
                ctypes.byref(host_bytes),
            ),
            "cusolverDnXpotrf_bufferSize",
        )
        device_work = cupy.empty(max(1, device_bytes.value), dtype=cupy.uint8)
        host_work = np.empty(max(1, host_bytes.value), dtype=np.uint8)
        info = cupy.zeros((), dtype=cupy.int32)
        self._check(
            lib.cusolverDnXpotrf(
                self._handle,
                self._params,
                lower,
                n,
                cuda_dtype,
                ctypes.c_void_p(pointer),
                lda,
                cuda_dtype,
                ctypes.c_void_p(device_work.data.ptr),
                device_bytes.value,
                ctypes.c_void_p(host_work.ctypes.data) if host_bytes.value else None,
                host_bytes.value,
                ctypes.c_void_p(info.data.ptr),
            ),
            "cusolverDnXpotrf",
        )
        return int(info.get())


_XPOTRF: dict[int, _Xpotrf | str] = {}


def _load_xpotrf(cupy: Any, device_id: int) -> _Xpotrf | str:
    """The device's :class:`_Xpotrf`, or the reason it cannot be had (cached per device)."""
    if device_id in _XPOTRF:
        return _XPOTRF[device_id]
    from cupy_backends.cuda.libs import cusolver  # noqa: F401  (loads CuPy's libcusolver)

    cupy.cuda.device.get_cusolver_handle()
    library = _mapped_library("libcusolver") or ctypes.util.find_library("cusolver")
    result: _Xpotrf | str
    if library is None:
        result = "libcusolver was not found among the loaded libraries"
    else:
        try:
            result = _Xpotrf(library)
        except (OSError, AttributeError, RuntimeError) as exc:
            result = f"cusolverDnXpotrf could not be loaded from {library}: {exc}"
    _XPOTRF[device_id] = result
    return result


# ---------------------------------------------------------------------------------------------
# the blocked inverse on cuBLAS / cuSOLVER
# ---------------------------------------------------------------------------------------------
class _CupyExecutor:
    """:class:`accel.backends._blocked_inverse.BlasExecutor` on cuBLAS / cuSOLVER for one dtype."""

    _SIDE: ClassVar[dict[str, int]] = {"L": 0, "R": 1}  # CUBLAS_SIDE_LEFT / RIGHT
    _UPLO: ClassVar[dict[str, int]] = {"L": 0, "U": 1}  # CUBLAS_FILL_MODE_LOWER / UPPER
    _TRANS: ClassVar[dict[str, int]] = {"N": 0, "T": 1}  # CUBLAS_OP_N / T
    _NON_UNIT = 0  # CUBLAS_DIAG_NON_UNIT

    def __init__(self, cupy: Any, dtype: np.dtype, xpotrf: _Xpotrf | None) -> None:
        from cupy_backends.cuda.libs import cublas, cusolver

        self.xp = cupy
        self.dtype = np.dtype(dtype)
        self._itemsize = self.dtype.itemsize
        self._xpotrf = xpotrf
        self._blas_handle = cupy.cuda.device.get_cublas_handle()
        prefix = "s" if self.dtype == np.float32 else "d"
        self._trsm = getattr(cublas, f"{prefix}trsm")
        self._gemm = getattr(cublas, f"{prefix}gemm")
        self._syrk = getattr(cublas, f"{prefix}syrk")
        self._potrf = getattr(cusolver, f"{prefix}potrf")
        self._potrf_buffer_size = getattr(cusolver, f"{prefix}potrf_bufferSize")

    def _scalar(self, value: float) -> np.ndarray:
        return np.array(value, dtype=self.dtype)

    def _ptr(self, ref: blocked.Ref) -> int:
        return int(ref.buf.data.ptr) + ref.off * self._itemsize

    def empty(self, size: int) -> Any:
        return self.xp.empty(size, dtype=self.dtype)

    def view(self, ref: blocked.Ref, rows: int, cols: int) -> Any:
        item = self._itemsize
        return self.xp.ndarray(
            (rows, cols),
            dtype=self.dtype,
            memptr=ref.buf.data + ref.off * item,
            strides=(item, item * ref.ld),
        )

    def potrf(self, n: int, a: blocked.Ref) -> int:
        if self._xpotrf is not None:
            return self._xpotrf(self.xp, n, self._ptr(a), a.ld, self.dtype)
        handle = self.xp.cuda.device.get_cusolver_handle()
        lwork = self._potrf_buffer_size(handle, self._UPLO["L"], n, self._ptr(a), a.ld)
        work = self.xp.empty(max(1, lwork), dtype=self.dtype)
        info = self.xp.zeros((), dtype=self.xp.int32)
        self._potrf(handle, self._UPLO["L"], n, self._ptr(a), a.ld, work.data.ptr, lwork, info.data.ptr)
        return int(info.get())

    def trsm(
        self, side: str, uplo: str, trans: str, m: int, n: int, alpha: float, a: blocked.Ref, b: blocked.Ref
    ) -> None:
        alpha_host = self._scalar(alpha)
        self._trsm(
            self._blas_handle,
            self._SIDE[side],
            self._UPLO[uplo],
            self._TRANS[trans],
            self._NON_UNIT,
            m,
            n,
            alpha_host.ctypes.data,
            self._ptr(a),
            a.ld,
            self._ptr(b),
            b.ld,
        )

    def gemm(
        self,
        transa: str,
        transb: str,
        m: int,
        n: int,
        k: int,
        alpha: float,
        a: blocked.Ref,
        b: blocked.Ref,
        beta: float,
        c: blocked.Ref,
    ) -> None:
        alpha_host, beta_host = self._scalar(alpha), self._scalar(beta)
        self._gemm(
            self._blas_handle,
            self._TRANS[transa],
            self._TRANS[transb],
            m,
            n,
            k,
            alpha_host.ctypes.data,
            self._ptr(a),
            a.ld,
            self._ptr(b),
            b.ld,
            beta_host.ctypes.data,
            self._ptr(c),
            c.ld,
        )

    def syrk(
        self, uplo: str, trans: str, n: int, k: int, alpha: float, a: blocked.Ref, beta: float, c: blocked.Ref
    ) -> None:
        alpha_host, beta_host = self._scalar(alpha), self._scalar(beta)
        self._syrk(
            self._blas_handle,
            self._UPLO[uplo],
            self._TRANS[trans],
            n,
            k,
            alpha_host.ctypes.data,
            self._ptr(a),
            a.ld,
            beta_host.ctypes.data,
            self._ptr(c),
            c.ld,
        )

    @contextlib.contextmanager
    def cublas_modes(self, math_mode: MathMode) -> Iterator[None]:
        """Host pointer mode and the requested math mode on CuPy's cuBLAS handle, restored afterwards."""
        from cupy_backends.cuda.libs import cublas

        handle = self._blas_handle
        pointer_mode, math = cublas.getPointerMode(handle), cublas.getMathMode(handle)
        cublas.setPointerMode(handle, cublas.CUBLAS_POINTER_MODE_HOST)
        cublas.setMathMode(handle, _CUBLAS_MATH[math_mode])
        try:
            yield
        finally:
            cublas.setMathMode(handle, math)
            cublas.setPointerMode(handle, pointer_mode)


# ---------------------------------------------------------------------------------------------
# CSR row kernels
# ---------------------------------------------------------------------------------------------
_ROW_KERNELS = r"""
extern "C" __global__ void csr_rows_scatter(const IDX* indptr, const IDX* indices, const T* data,
                                            T* out, long long ld, long long n_rows) {
    const long long row = blockIdx.x;
    if (row >= n_rows) return;
    const long long end = indptr[row + 1];
    T* out_row = out + row * ld;
    for (long long p = indptr[row] + threadIdx.x; p < end; p += blockDim.x) {
        out_row[indices[p]] = data[p];
    }
}

extern "C" __global__ void csr_rows_fill(const IDX* indptr, const IDX* indices, const T value,
                                         T* out, long long ld, long long n_rows) {
    const long long row = blockIdx.x;
    if (row >= n_rows) return;
    const long long end = indptr[row + 1];
    T* out_row = out + row * ld;
    for (long long p = indptr[row] + threadIdx.x; p < end; p += blockDim.x) {
        out_row[indices[p]] = value;
    }
}
"""

_C_TYPES = {np.dtype(np.float32): "float", np.dtype(np.float64): "double"}
_C_INDEX_TYPES = {np.dtype(np.int32): "int", np.dtype(np.int64): "long long"}


@functools.cache
def _row_kernel(name: str, dtype: np.dtype, index_dtype: np.dtype, device_id: int) -> Any:
    """A CSR row kernel (``csr_rows_scatter`` / ``csr_rows_fill``) for one value and index dtype."""
    import cupy

    header = f"typedef {_C_TYPES[dtype]} T;\ntypedef {_C_INDEX_TYPES[index_dtype]} IDX;\n"
    return cupy.RawModule(code=header + _ROW_KERNELS).get_function(name)


# ---------------------------------------------------------------------------------------------
# the backend
# ---------------------------------------------------------------------------------------------
class CupyBackend(Backend):
    """CuPy arrays on one CUDA device.

    Parameters
    ----------
    device:
        CUDA device index (default: CuPy's current device).
    block_size:
        Panel width of the blocked inverse; its workspace is ``block_size × n`` elements.
    math_mode:
        ``"exact"`` (float32/float64 as stored) or ``"tf32"``: TF32 tensor cores in the
        cuBLAS steps of the inverse (≈2× faster on an H100, relative error ~1e-4).
    cholesky:
        ``"auto"`` (cuSOLVER's 64-bit ``Xpotrf`` when it loads, else blocked), ``"cusolver"``
        (require ``Xpotrf``) or ``"blocked"`` (small potrf + trsm + syrk; TF32 applies).
    gram_block_size:
        Most item rows per Gram block (default: sized from the workspace budget).
    """

    name = "cupy"

    def __init__(
        self,
        device: int | None = None,
        block_size: int = blocked.DEFAULT_BLOCK_SIZE,
        math_mode: MathMode = "exact",
        cholesky: CholeskyMode = "auto",
        gram_block_size: int | None = None,
    ) -> None:
        usable, reason = cupy_usable(device)
        if not usable:
            raise BackendUnavailableError(f"the CuPy backend cannot be used: {reason}")
        if math_mode not in _CUBLAS_MATH:
            raise ValueError(f"math_mode must be 'exact' or 'tf32', got {math_mode!r}")
        if cholesky not in ("auto", "cusolver", "blocked"):
            raise ValueError(f"cholesky must be 'auto', 'cusolver' or 'blocked', got {cholesky!r}")
        if int(block_size) < 1 or (gram_block_size is not None and int(gram_block_size) < 1):
            raise ValueError("block sizes must be positive")
        import cupy
        import cupyx.scipy.sparse

        self._cp = cupy
        self._cpx_sparse = cupyx.scipy.sparse
        self._device = cupy.cuda.Device(cupy.cuda.runtime.getDevice() if device is None else device)
        self.block_size = int(block_size)
        self.math_mode: MathMode = math_mode
        self.cholesky: CholeskyMode = cholesky
        self.gram_block_size = None if gram_block_size is None else int(gram_block_size)

    @property
    def device_id(self) -> int:
        return int(self._device.id)

    # ---- data movement -------------------------------------------------
    def to_device(self, array: np.ndarray) -> Array:
        with self._device:
            return self._cp.asarray(array)

    def to_host(self, array: Array) -> np.ndarray:
        if isinstance(array, np.ndarray):
            return array
        return self._cp.asnumpy(array)

    def sparse_to_device(self, X: sp.spmatrix | sp.sparray, dtype: np.dtype) -> SparseMatrix:
        X = sp.csr_matrix(X)
        if X.dtype != dtype:
            X = X.astype(dtype)
        if not X.has_canonical_format:
            X = X.copy()
            X.sum_duplicates()
        with self._device:
            return self._cpx_sparse.csr_matrix(X)

    def empty(self, shape: tuple[int, ...], dtype: np.dtype) -> Array:
        with self._device:
            return self._cp.empty(shape, dtype=dtype)

    # ---- memory ----------------------------------------------------------
    def free_memory(self) -> int:
        with self._device:
            free, _total = self._cp.cuda.runtime.memGetInfo()
            return int(free + self._cp.get_default_memory_pool().free_bytes())

    def memory_kind(self) -> str:
        return f"GPU memory ({_device_name(self._cp, self.device_id)})"

    def workspace_bytes(self, n_items: int, itemsize: int) -> int:
        """Peak device bytes a fit needs beyond the n² buffer and the input (gram or inverse step).

        The Gram step also holds a transposed copy of the input matrix (as many bytes as
        the input itself), which this does not count.
        """
        inverse = blocked.workspace_elements(n_items, self.block_size) * itemsize + _INVERSE_SLACK
        return int(max(gram_workspace_bytes(n_items, itemsize), inverse))

    def synchronize(self) -> None:
        self._device.synchronize()

    # ---- EASE kernels ----------------------------------------------------
    def gram(self, X: SparseMatrix, out: Array) -> Array:
        n = X.shape[1]
        if out.shape != (n, n) or not out.flags.c_contiguous:
            raise ValueError(f"out must be a C-contiguous {n} × {n} array, got shape {out.shape}")
        from cupyx import cusparse

        with self._device:
            X = self._canonical(X, out.dtype)
            XT = X.T.tocsr()
            XT.sum_duplicates()
            for start, stop in self._gram_blocks(X, out.itemsize):
                target = out[start:stop]
                target.fill(0)
                rows = XT[start:stop]
                if rows.nnz == 0:
                    continue
                rows.sum_duplicates()
                product = cusparse.spgemm(rows, X)
                self._scatter_rows(product, target)
                del rows, product
            self._check_gram_diagonal(X, out)
        return out

    def _gram_blocks(self, X: Any, itemsize: int) -> list[tuple[int, int]]:
        """Item row blocks whose SpGEMM work (Σ over an item's users of their row lengths) fits the budget."""
        cp = self._cp
        n = X.shape[1]
        budget = gram_workspace_bytes(n, itemsize)
        max_rows = self.gram_block_size or max(1, budget // (n * _BYTES_PER_OUTPUT))
        max_products = max(1, min(_MAX_PRODUCTS_PER_BLOCK, budget // _BYTES_PER_PRODUCT))
        # Weight of item j = Σ over its users of their row lengths: the scalar products of row j of XᵀX.
        row_lengths = cp.diff(X.indptr).astype(cp.float64)
        entry_rows = cp.searchsorted(X.indptr, cp.arange(X.nnz), side="right") - 1
        item_weights = cp.bincount(X.indices, weights=row_lengths[entry_rows], minlength=n).get()
        return plan_row_blocks(item_weights, max_rows, max_products)

    def _check_gram_diagonal(self, X: Any, out: Array) -> None:
        """Check ``diag(XᵀX) = Σ_u X[u, j]²`` (item counts for binary X): catches silent SpGEMM failures."""
        cp = self._cp
        n = X.shape[1]
        values = X.data.astype(cp.float64)
        expected = cp.bincount(X.indices, weights=values * values, minlength=n)
        got = out.diagonal().astype(cp.float64)
        rtol = 1e-4 if out.dtype == np.float32 else 1e-10
        bad = cp.abs(got - expected) > rtol * cp.abs(expected)
        n_bad = int(bad.sum())
        if n_bad:
            first = int(cp.argmax(bad))
            raise RuntimeError(
                f"Gram check failed: diag(XᵀX) differs from the item interaction counts for {n_bad:,} of "
                f"{n:,} items (first: item {first}, got {float(got[first])}, "
                f"expected {float(expected[first])}). "
                "cuSPARSE SpGEMM returned an incomplete product; retry with a smaller gram_block_size."
            )

    def spd_inverse_inplace(self, A: Array) -> Array:
        if A.ndim != 2 or A.shape[0] != A.shape[1] or not A.flags.c_contiguous:
            raise ValueError("spd_inverse_inplace needs a square C-contiguous array")
        if np.dtype(A.dtype) not in _CUDA_DTYPE:
            raise ValueError(f"spd_inverse_inplace supports float32 and float64, got {A.dtype}")
        n = A.shape[0]
        with self._device:
            xpotrf = self._xpotrf()
            executor = _CupyExecutor(self._cp, A.dtype, xpotrf)
            with executor.cublas_modes(self.math_mode):
                blocked.spd_inverse_flat(
                    executor, A.reshape(-1), n, self.block_size, blocked_cholesky=xpotrf is None
                )
        return A

    def _xpotrf(self) -> _Xpotrf | None:
        """cuSOLVER's 64-bit potrf for the whole matrix, or ``None`` for the blocked Cholesky."""
        if self.cholesky == "blocked":
            return None
        loaded = _load_xpotrf(self._cp, self.device_id)
        if isinstance(loaded, str):
            if self.cholesky == "cusolver":
                raise RuntimeError(f"cholesky='cusolver' was requested but {loaded}")
            return None
        return loaded

    @property
    def cholesky_impl(self) -> str:
        """Which Cholesky :meth:`spd_inverse_inplace` will run, and why when it is the fallback."""
        if self.cholesky == "blocked":
            return "blocked (requested)"
        with self._device:
            loaded = _load_xpotrf(self._cp, self.device_id)
        return (
            f"cusolverDnXpotrf ({loaded.library})" if isinstance(loaded, _Xpotrf) else f"blocked ({loaded})"
        )

    def ease_weights_inplace(self, P: Array) -> Array:
        cp = self._cp
        with self._device:
            diagonal = P.diagonal().copy()
            cp.divide(P, -diagonal[None, :], out=P)
            P.reshape(-1)[:: P.shape[0] + 1] = 0
        return P

    def add_to_diagonal(self, A: Array, value: float | Array) -> Array:
        with self._device:
            diagonal = A.reshape(-1)[:: A.shape[0] + 1]
            diagonal += value if np.isscalar(value) else self._cp.asarray(value, dtype=A.dtype)
        return A

    def diagonal(self, A: Array) -> np.ndarray:
        with self._device:
            return self._cp.asnumpy(A.diagonal())

    # ---- scoring -----------------------------------------------------------
    def sparse_dense_matmul(self, X: SparseMatrix, W: Array) -> Array:
        cp = self._cp
        from cupy_backends.cuda.libs import cusparse

        m, k = X.shape
        if W.ndim != 2 or W.shape[0] != k:
            raise ValueError(f"shapes {X.shape} and {W.shape} do not multiply")
        dtype = np.dtype(W.dtype)
        if dtype not in _CUDA_DTYPE:
            raise ValueError(f"sparse_dense_matmul supports float32 and float64, got {dtype}")
        n = W.shape[1]
        with self._device:
            out = cp.empty((m, n), dtype=dtype)
            if X.nnz == 0 or n == 0:
                out.fill(0)
                return out
            if W.flags.c_contiguous:
                order, ld_w = cusparse.CUSPARSE_ORDER_ROW, n
            elif W.flags.f_contiguous:
                order, ld_w = cusparse.CUSPARSE_ORDER_COL, k
            else:
                raise ValueError("W must be C- or F-contiguous (it is never copied)")
            X = self._canonical(X, dtype)
            index_type = (
                cusparse.CUSPARSE_INDEX_32I if X.indices.dtype == np.int32 else cusparse.CUSPARSE_INDEX_64I
            )
            cuda_dtype = _CUDA_DTYPE[dtype]
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
                alg = cusparse.CUSPARSE_SPMM_ALG_DEFAULT
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
                    alg,
                )
                buffer = cp.empty(max(1, cusparse.spMM_bufferSize(*args)), dtype=cp.uint8)
                cusparse.spMM(*args, buffer.data.ptr)
            finally:
                cusparse.destroySpMat(mat_x)
                cusparse.destroyDnMat(mat_w)
                cusparse.destroyDnMat(mat_out)
        return out

    def mask_seen(self, scores: Array, X: SparseMatrix) -> Array:
        if scores.shape != X.shape:
            raise ValueError(f"scores {scores.shape} and X {X.shape} differ in shape")
        with self._device:
            if scores.strides[1] == scores.itemsize and scores.strides[0] % scores.itemsize == 0:
                self._fill_rows(X, scores, -np.inf)
            else:
                rows = self._cp.searchsorted(X.indptr, self._cp.arange(X.nnz), side="right") - 1
                scores[rows, X.indices] = -np.inf
        return scores

    def topk(self, scores: Array, k: int) -> tuple[np.ndarray, np.ndarray]:
        cp = self._cp
        n_rows, n_cols = scores.shape
        k = max(0, min(int(k), n_cols))
        ids = np.empty((n_rows, k), dtype=np.int64)
        values = np.empty((n_rows, k), dtype=scores.dtype)
        if k == 0 or n_rows == 0:
            return ids, values
        chunk = max(1, _TOPK_KEY_BYTES // (8 * n_cols))
        with self._device:
            for start in range(0, n_rows, chunk):
                part = scores[start : start + chunk]
                if part.dtype == np.float32:
                    part_ids = self._topk_keys(part, k)
                else:
                    # CuPy's argsort is stable, so tied scores keep their column order
                    # (adding 0.0 first turns -0.0 into 0.0, which ties with it as in NumPy).
                    part_ids = cp.argsort(-(part + 0.0), axis=1)[:, :k]
                part_values = cp.take_along_axis(part, part_ids, axis=1)
                ids[start : start + chunk] = cp.asnumpy(part_ids)
                values[start : start + chunk] = cp.asnumpy(part_values)
        return ids, values

    def _topk_keys(self, scores: Array, k: int) -> Array:
        """Column ids of each row's top ``k`` (float32 scores), best first, ties to the lower column.

        Each score becomes a unique uint64 key: the high 32 bits order scores descending
        (NaN last, -0.0 equal to 0.0), the low 32 bits are the column. The k smallest keys
        per row are exactly the wanted entries, selected by CuPy's partition kernel.
        """
        cp = self._cp
        keys = _topk_key_kernel(cp)(scores, np.int64(scores.shape[1]))
        keys.partition(k - 1, axis=1)
        head = cp.sort(keys[:, :k], axis=1)
        return (head & np.uint64(0xFFFFFFFF)).astype(cp.int64)

    # ---- helpers -------------------------------------------------------------
    def _canonical(self, X: Any, dtype: np.dtype) -> Any:
        """``X`` as a canonical (sorted, no duplicates) cupyx CSR matrix of ``dtype`` on this device."""
        if not isinstance(X, self._cpx_sparse.csr_matrix):
            X = self._cpx_sparse.csr_matrix(X)
        if X.dtype != dtype:
            X = X.astype(dtype)
        X.sum_duplicates()
        return X

    def _row_launch(self, X: Any, out: Array) -> tuple[tuple[int], tuple[int], int]:
        if out.ndim != 2 or out.strides[1] != out.itemsize or out.strides[0] % out.itemsize:
            raise ValueError("the dense operand must have unit column stride")
        return (X.shape[0],), (_ROW_THREADS,), out.strides[0] // out.itemsize

    def _scatter_rows(self, X: Any, out: Array) -> None:
        """``out[u, j] = X[u, j]`` for every stored entry of the CSR ``X``."""
        if X.shape[0] == 0 or X.nnz == 0:
            return
        grid, block, ld = self._row_launch(X, out)
        kernel = _row_kernel(
            "csr_rows_scatter", np.dtype(out.dtype), np.dtype(X.indices.dtype), self.device_id
        )
        data = X.data.astype(out.dtype, copy=False)
        indptr = X.indptr.astype(X.indices.dtype, copy=False)
        kernel(grid, block, (indptr, X.indices, data, out, np.int64(ld), np.int64(X.shape[0])))

    def _fill_rows(self, X: Any, out: Array, value: float) -> None:
        """``out[u, j] = value`` for every stored entry of the CSR ``X``."""
        if X.shape[0] == 0 or X.nnz == 0:
            return
        grid, block, ld = self._row_launch(X, out)
        kernel = _row_kernel("csr_rows_fill", np.dtype(out.dtype), np.dtype(X.indices.dtype), self.device_id)
        indptr = X.indptr.astype(X.indices.dtype, copy=False)
        fill = np.dtype(out.dtype).type(value)
        kernel(grid, block, (indptr, X.indices, fill, out, np.int64(ld), np.int64(X.shape[0])))


@functools.cache
def _topk_key_kernel(cupy: Any) -> Any:
    """ElementwiseKernel: float32 score and its flat index → uint64 key ordering (score desc, column asc)."""
    return cupy.ElementwiseKernel(
        "float32 score, int64 n_cols",
        "uint64 key",
        """
        unsigned int bits = (score == 0.0f) ? 0u : __float_as_uint(score);
        unsigned int ascending = (bits & 0x80000000u) ? ~bits : (bits | 0x80000000u);
        if (isnan(score)) ascending = 0u;
        key = ((unsigned long long)(~ascending) << 32) | (unsigned long long)(i % n_cols);
        """,
        "accel_topk_keys",
    )
