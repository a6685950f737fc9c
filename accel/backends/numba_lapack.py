"""LAPACK's Cholesky called from numba kernels, in place on a buffer the kernel owns.

``np.linalg.cholesky`` inside a numba kernel allocates a new matrix for every call,
copies the input into it and zeroes its upper half before LAPACK runs; for the
many small systems of the sparse EASE fit that took as long as the factorisation
itself. :data:`potrf_lower` calls SciPy's exported ``dpotrf`` or ``spotrf`` on the
kernel's own buffer instead. The routine's address is an argument (not a constant baked into the
machine code), so the kernels that call it stay cacheable on disk, and its integer
arguments take the width of the ``ints`` array given (:data:`LAPACK_INT`: 32-bit, or
64-bit where SciPy's Cython LAPACK is built for ILP64).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import scipy
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.core.errors import TypingError
from numba.extending import get_cython_function_address, intrinsic


def _lapack_int() -> type[np.signedinteger]:
    """The integer type of ``scipy.linalg.cython_lapack``'s arguments."""
    try:
        blas = scipy.show_config(mode="dicts")["Build Dependencies"]["blas"]
    except (KeyError, TypeError):
        return np.int32
    return np.int64 if blas.get("cython blas ilp64") is True else np.int32


#: The dtype of the ``ints`` array :data:`potrf_lower` takes: LAPACK's integer.
LAPACK_INT = _lapack_int()
#: ``dpotrf``'s and ``spotrf``'s addresses, for :data:`potrf_lower` on float64 and float32.
DPOTRF = get_cython_function_address("scipy.linalg.cython_lapack", "dpotrf")
SPOTRF = get_cython_function_address("scipy.linalg.cython_lapack", "spotrf")
_REAL = {types.float64: ir.DoubleType, types.float32: ir.FloatType}


def _potrf_lower(typingctx: Any, address: Any, a: Any, ints: Any) -> Any:
    """The numba intrinsic :data:`potrf_lower`: Cholesky ``A = L·Lᵀ`` in place in the lower
    triangle of the leading ``ints[0] × ints[0]`` block of C-ordered float32 or float64 ``a``
    (``spotrf`` or ``dpotrf`` at ``address``); returns LAPACK's ``info`` (0, or the first
    order whose minor is not positive definite).

    ``ints`` is a :data:`LAPACK_INT` array of at least 2 (``ints[1]`` is overwritten by the
    call). Nothing is checked at run time: the caller guarantees ``ints[0] <= min(a.shape)``
    and an address of ``a``'s precision. The upper triangle is neither read nor written.
    (A C-ordered lower triangle is a Fortran-ordered upper one: ``uplo='U'``.)
    """
    if not (isinstance(a, types.Array) and a.ndim == 2 and a.layout == "C" and a.dtype in _REAL):
        raise TypingError("potrf_lower needs a C-contiguous 2-D float32 or float64 array")
    integer = np.dtype(LAPACK_INT).name
    if not (isinstance(ints, types.Array) and ints.ndim == 1 and str(ints.dtype) == integer):
        raise TypingError(f"potrf_lower needs a 1-D array of LAPACK's integers ({integer})")
    width = np.dtype(LAPACK_INT).itemsize * 8
    signature = types.intp(types.intp, a, ints)

    def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
        address_value, a_value, ints_value = args
        matrix = context.make_array(sig.args[1])(context, builder, a_value)
        integers = context.make_array(sig.args[2])(context, builder, ints_value)
        int_type = ir.IntType(width)
        real_ptr = _REAL[sig.args[1].dtype]().as_pointer()
        int_ptr = int_type.as_pointer()
        function_type = ir.FunctionType(
            ir.VoidType(), [ir.IntType(8).as_pointer(), int_ptr, real_ptr, int_ptr, int_ptr]
        )
        function = builder.inttoptr(address_value, function_type.as_pointer())
        uplo = cgutils.alloca_once_value(builder, ir.Constant(ir.IntType(8), ord("U")))
        row_length = cgutils.unpack_tuple(builder, matrix.shape, 2)[1]  # C order: Fortran's leading dimension
        lda = cgutils.alloca_once_value(builder, context.cast(builder, row_length, types.intp, ints.dtype))
        n_ptr = builder.bitcast(integers.data, int_ptr)
        info_ptr = builder.gep(n_ptr, [ir.Constant(ir.IntType(32), 1)])
        builder.store(ir.Constant(int_type, 0), info_ptr)
        builder.call(function, [uplo, n_ptr, builder.bitcast(matrix.data, real_ptr), lda, info_ptr])
        return context.cast(builder, builder.load(info_ptr), ints.dtype, types.intp)

    return signature, codegen


#: See :func:`_potrf_lower`: callable from numba kernels only.
potrf_lower: Callable[..., int] = intrinsic(_potrf_lower)
