"""The blocked one-buffer inverse (:mod:`accel.backends._blocked_inverse`) on cuBLAS and cuSOLVER.

Calls, as CuPy binds them (``cupy_backends/cuda/libs/cublas.pxd``, ``cusolver.pxd``):
``strsm/dtrsm(handle, side, uplo, trans, diag, m, n, alpha, A, lda, B, ldb)``,
``sgemm/dgemm(handle, transa, transb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc)``,
``ssyrk/dsyrk(handle, uplo, trans, n, k, alpha, A, lda, beta, C, ldc)`` with host scalars
(``numpy.ndarray.ctypes.data``, as ``cupyx/scipy/linalg/_solve_triangular.py`` passes them),
and the legacy ``spotrf_bufferSize(handle, uplo, n, A, lda)`` /
``spotrf(handle, uplo, n, A, lda, work, lwork, devInfo)`` for the blocked Cholesky.
Every operand is column-major: a pointer plus a leading dimension.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any, Literal

import numpy as np

from accel.backends import _blocked_inverse as blocked
from accel.backends.cupy.libs import Xpotrf

MathMode = Literal["exact", "tf32"]
MATH_MODES: tuple[MathMode, ...] = ("exact", "tf32")
#: CUBLAS_TF32_TENSOR_OP_MATH (cublas_api.h); CuPy binds only the older CUBLAS_TENSOR_OP_MATH.
_CUBLAS_TF32_TENSOR_OP_MATH = 3
#: Columns per GEMM when a TF32 trailing update (lower SYRK) runs as GEMMs on column panels.
TF32_SYRK_PANEL = 4096


class CupyExecutor:
    """:class:`accel.backends._blocked_inverse.BlasExecutor` on cuBLAS / cuSOLVER for one dtype.

    ``xp`` is CuPy; ``cublas``/``cusolver`` default to CuPy's bindings (tests pass emulations).
    ``xpotrf`` factorises the whole matrix when given; otherwise the legacy 32-bit
    ``potrf`` runs on the diagonal blocks of the blocked Cholesky. In TF32 mode the blocked
    Cholesky's trailing updates run as GEMMs (TF32 tensor cores are documented for GEMM),
    one per column panel of the lower triangle; each also writes the strict upper part of
    its panel's diagonal block, which no later step reads.
    """

    def __init__(
        self, xp: Any, dtype: np.dtype, xpotrf: Xpotrf | None, cublas: Any = None, cusolver: Any = None
    ) -> None:
        if cublas is None or cusolver is None:
            from cupy_backends.cuda.libs import cublas as cupy_cublas
            from cupy_backends.cuda.libs import cusolver as cupy_cusolver

            cublas, cusolver = cupy_cublas, cupy_cusolver

        self.xp = xp
        self.dtype = np.dtype(dtype)
        self._itemsize = self.dtype.itemsize
        self._xpotrf = xpotrf
        self._cublas = cublas
        self._cusolver = cusolver
        self._blas_handle = xp.cuda.device.get_cublas_handle()
        double = self.dtype == np.float64
        self._trsm = cublas.dtrsm if double else cublas.strsm
        self._trmm = cublas.dtrmm if double else cublas.strmm
        self._gemm = cublas.dgemm if double else cublas.sgemm
        self._syrk = cublas.dsyrk if double else cublas.ssyrk
        self._potrf = cusolver.dpotrf if double else cusolver.spotrf
        self._potrf_buffer_size = cusolver.dpotrf_bufferSize if double else cusolver.spotrf_bufferSize
        self._side = {"L": cublas.CUBLAS_SIDE_LEFT, "R": cublas.CUBLAS_SIDE_RIGHT}
        self._uplo = {"L": cublas.CUBLAS_FILL_MODE_LOWER, "U": cublas.CUBLAS_FILL_MODE_UPPER}
        self._trans = {"N": cublas.CUBLAS_OP_N, "T": cublas.CUBLAS_OP_T}
        self._math = {"exact": cublas.CUBLAS_DEFAULT_MATH, "tf32": _CUBLAS_TF32_TENSOR_OP_MATH}
        self._math_mode: MathMode = "exact"

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
        lower = self._uplo["L"]
        lwork = self._potrf_buffer_size(handle, lower, n, self._ptr(a), a.ld)
        work = self.xp.empty(max(1, lwork), dtype=self.dtype)
        info = self.xp.zeros((), dtype=self.xp.int32)
        self._potrf(handle, lower, n, self._ptr(a), a.ld, work.data.ptr, lwork, info.data.ptr)
        return int(info.get())

    def trsm(
        self, side: str, uplo: str, trans: str, m: int, n: int, alpha: float, a: blocked.Ref, b: blocked.Ref
    ) -> None:
        self._triangular(self._trsm, side, uplo, trans, m, n, alpha, a, b)

    def trmm(
        self, side: str, uplo: str, trans: str, m: int, n: int, alpha: float, a: blocked.Ref, b: blocked.Ref
    ) -> None:
        """cuBLAS's TRMM writes to a separate C; passing B as C makes it in place, as BLAS's is."""
        self._triangular(self._trmm, side, uplo, trans, m, n, alpha, a, b, self._ptr(b), b.ld)

    def _triangular(
        self,
        routine: Any,
        side: str,
        uplo: str,
        trans: str,
        m: int,
        n: int,
        alpha: float,
        a: blocked.Ref,
        b: blocked.Ref,
        *out: int,
    ) -> None:
        """cuBLAS's ``trsm`` or ``trmm`` (which takes ``out``, its C and ldc), non-unit diagonal."""
        alpha_host = self._scalar(alpha)
        routine(
            self._blas_handle,
            self._side[side],
            self._uplo[uplo],
            self._trans[trans],
            self._cublas.CUBLAS_DIAG_NON_UNIT,
            m,
            n,
            alpha_host.ctypes.data,
            self._ptr(a),
            a.ld,
            self._ptr(b),
            b.ld,
            *out,
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
            self._trans[transa],
            self._trans[transb],
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
        if self._math_mode == "tf32" and uplo == "L":
            self._lower_syrk_by_gemm(trans, n, k, alpha, a, beta, c)
            return
        alpha_host, beta_host = self._scalar(alpha), self._scalar(beta)
        self._syrk(
            self._blas_handle,
            self._uplo[uplo],
            self._trans[trans],
            n,
            k,
            alpha_host.ctypes.data,
            self._ptr(a),
            a.ld,
            beta_host.ctypes.data,
            self._ptr(c),
            c.ld,
        )

    def _lower_syrk_by_gemm(
        self, trans: str, n: int, k: int, alpha: float, a: blocked.Ref, beta: float, c: blocked.Ref
    ) -> None:
        """``C[j:, j:j+w] ← alpha · S[j:] · S[j:j+w]ᵀ + beta · C[j:, j:j+w]`` for each panel of columns j.

        ``S`` is ``op(A)`` (n × k): rows j: of A when ``trans`` is "N", its columns j: when "T".
        """
        for j in range(0, n, TF32_SYRK_PANEL):
            w = min(TF32_SYRK_PANEL, n - j)
            target = blocked.Ref(c.buf, c.off + j + j * c.ld, c.ld)
            if trans == "N":
                rows = blocked.Ref(a.buf, a.off + j, a.ld)
                self.gemm("N", "T", n - j, w, k, alpha, rows, rows, beta, target)
            else:
                cols = blocked.Ref(a.buf, a.off + j * a.ld, a.ld)
                self.gemm("T", "N", n - j, w, k, alpha, cols, cols, beta, target)

    @contextlib.contextmanager
    def cublas_modes(self, math_mode: MathMode) -> Iterator[None]:
        """Host pointer mode and the requested math mode on CuPy's cuBLAS handle, restored afterwards."""
        cublas, handle = self._cublas, self._blas_handle
        pointer_mode, math = cublas.getPointerMode(handle), cublas.getMathMode(handle)
        cublas.setPointerMode(handle, cublas.CUBLAS_POINTER_MODE_HOST)
        cublas.setMathMode(handle, self._math[math_mode])
        self._math_mode = math_mode
        try:
            yield
        finally:
            self._math_mode = "exact"
            cublas.setMathMode(handle, math)
            cublas.setPointerMode(handle, pointer_mode)


def spd_inverse(
    xp: Any,
    A: Any,
    block_size: int,
    math_mode: MathMode,
    xpotrf: Xpotrf | None,
    on_block: blocked.OnBlock | None = None,
    **libraries: Any,
) -> Any:
    """Overwrite the C-ordered SPD ``A`` with its inverse; ``xpotrf=None`` selects the blocked Cholesky.

    ``on_block`` runs as each block is queued (the device may still be working on earlier ones).
    """
    executor = CupyExecutor(xp, A.dtype, xpotrf, **libraries)
    with executor.cublas_modes(math_mode):
        blocked.spd_inverse_flat(executor, A.reshape(-1), A.shape[0], block_size, xpotrf is None, on_block)
    return A
