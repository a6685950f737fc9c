"""SciPy's BLAS and LAPACK called on host buffers as (pointer, leading dimension), as cuBLAS is called.

SciPy's Python wrappers copy every operand that is not contiguous, so the blocked
inverse's sub-matrices (leading dimension n) would each cost a copy, up to n²
for a trailing triangle. ``scipy.linalg.cython_blas`` / ``cython_lapack`` export
the Fortran routines themselves, which take a pointer and a leading dimension and
work in place; they are called here through ctypes, which releases the GIL for
the call and returns to Python (where signal handlers run) after it.
"""

from __future__ import annotations

import ctypes
from functools import cache
from typing import Any

import numpy as np
import scipy.linalg.cython_blas as cython_blas
import scipy.linalg.cython_lapack as cython_lapack

from accel.backends._blocked_inverse import NumpyExecutor, Ref, Side, Trans, Uplo
from accel.backends.threads import blas_threads

_PREFIX = {np.dtype(np.float32): "s", np.dtype(np.float64): "d"}
_SCALAR = {np.dtype(np.float32): ctypes.c_float, np.dtype(np.float64): ctypes.c_double}


def _capsule_function(module: Any, name: str, n_args: int) -> Any:
    """The C function exported as ``name`` by a Cython module, as a ctypes function of pointers."""
    capsule = module.__pyx_capi__[name]
    get_name = ctypes.pythonapi.PyCapsule_GetName
    get_name.restype, get_name.argtypes = ctypes.c_char_p, [ctypes.py_object]
    get_pointer = ctypes.pythonapi.PyCapsule_GetPointer
    get_pointer.restype, get_pointer.argtypes = ctypes.c_void_p, [ctypes.py_object, ctypes.c_char_p]
    address = get_pointer(capsule, get_name(capsule))
    return ctypes.CFUNCTYPE(None, *[ctypes.c_void_p] * n_args)(address)


@cache
def _routines(dtype: np.dtype) -> dict[str, Any]:
    prefix = _PREFIX[dtype]
    return {
        "potrf": _capsule_function(cython_lapack, prefix + "potrf", 5),
        "trsm": _capsule_function(cython_blas, prefix + "trsm", 11),
        "trmm": _capsule_function(cython_blas, prefix + "trmm", 11),
        "gemm": _capsule_function(cython_blas, prefix + "gemm", 13),
        "syrk": _capsule_function(cython_blas, prefix + "syrk", 10),
    }


class _Args:
    """Keeps the ctypes objects of one call alive and hands out their addresses."""

    def __init__(self, scalar: type) -> None:
        self._scalar = scalar
        self._keep: list[Any] = []

    def _ref(self, value: Any) -> int:
        self._keep.append(value)
        return ctypes.addressof(value)

    def char(self, flag: str) -> int:
        return self._ref(ctypes.c_char(flag.encode()))

    def integer(self, value: int) -> int:
        return self._ref(ctypes.c_int(value))

    def scalar(self, value: float) -> int:
        return self._ref(self._scalar(value))


class HostBlasExecutor(NumpyExecutor):
    """:class:`~accel.backends._blocked_inverse.BlasExecutor` on host arrays with no copies.

    Every operand is read and written where it lies in the flat buffer; only
    float32 and float64 are supported (the dtypes of the fit). ``potrf`` (one
    diagonal block) runs on one thread: OpenBLAS's threaded Cholesky of a 1024
    block took 0.4-0.9 s beside a busy core against 0.02 s on one thread.
    """

    def __init__(self, dtype: np.dtype | type = np.float64) -> None:
        super().__init__(dtype)
        if self.dtype not in _PREFIX:
            raise ValueError(f"host BLAS supports float32 and float64, got {self.dtype}")
        self._fn = _routines(self.dtype)

    def _ptr(self, ref: Ref, rows: int, cols: int) -> int:
        """Address of ``ref`` after checking that the ``rows × cols`` operand lies inside its buffer."""
        buf = ref.buf
        if buf.dtype != self.dtype or not buf.flags.c_contiguous or buf.ndim != 1 or not buf.flags.writeable:
            raise ValueError("operands must be flat, contiguous, writable arrays of the executor's dtype")
        ref.check_inside(rows, cols)
        return int(buf.ctypes.data) + ref.off * self.dtype.itemsize

    def potrf(self, n: int, a: Ref) -> int:
        args, info = _Args(_SCALAR[self.dtype]), ctypes.c_int(0)
        with blas_threads(1):
            self._fn["potrf"](
                args.char("L"),
                args.integer(n),
                self._ptr(a, n, n),
                args.integer(a.ld),
                ctypes.addressof(info),
            )
        return int(info.value)

    def trsm(
        self, side: Side, uplo: Uplo, trans: Trans, m: int, n: int, alpha: float, a: Ref, b: Ref
    ) -> None:
        self._triangular("trsm", side, uplo, trans, m, n, alpha, a, b)

    def trmm(
        self, side: Side, uplo: Uplo, trans: Trans, m: int, n: int, alpha: float, a: Ref, b: Ref
    ) -> None:
        self._triangular("trmm", side, uplo, trans, m, n, alpha, a, b)

    def _triangular(
        self, routine: str, side: Side, uplo: Uplo, trans: Trans, m: int, n: int, alpha: float, a: Ref, b: Ref
    ) -> None:
        """``trsm`` or ``trmm`` (the same arguments), non-unit diagonal."""
        k = m if side == "L" else n
        args = _Args(_SCALAR[self.dtype])
        self._fn[routine](
            args.char(side),
            args.char(uplo),
            args.char(trans),
            args.char("N"),
            args.integer(m),
            args.integer(n),
            args.scalar(alpha),
            self._ptr(a, k, k),
            args.integer(a.ld),
            self._ptr(b, m, n),
            args.integer(b.ld),
        )

    def gemm(
        self,
        transa: Trans,
        transb: Trans,
        m: int,
        n: int,
        k: int,
        alpha: float,
        a: Ref,
        b: Ref,
        beta: float,
        c: Ref,
    ) -> None:
        args = _Args(_SCALAR[self.dtype])
        self._fn["gemm"](
            args.char(transa),
            args.char(transb),
            args.integer(m),
            args.integer(n),
            args.integer(k),
            args.scalar(alpha),
            self._ptr(a, *((m, k) if transa == "N" else (k, m))),
            args.integer(a.ld),
            self._ptr(b, *((k, n) if transb == "N" else (n, k))),
            args.integer(b.ld),
            args.scalar(beta),
            self._ptr(c, m, n),
            args.integer(c.ld),
        )

    def syrk(
        self, uplo: Uplo, trans: Trans, n: int, k: int, alpha: float, a: Ref, beta: float, c: Ref
    ) -> None:
        args = _Args(_SCALAR[self.dtype])
        self._fn["syrk"](
            args.char(uplo),
            args.char(trans),
            args.integer(n),
            args.integer(k),
            args.scalar(alpha),
            self._ptr(a, *((n, k) if trans == "N" else (k, n))),
            args.integer(a.ld),
            args.scalar(beta),
            self._ptr(c, n, n),
            args.integer(c.ld),
        )
