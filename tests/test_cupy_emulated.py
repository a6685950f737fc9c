"""The CuPy backend's GPU wiring, checked on the CPU against emulated CUDA libraries.

:class:`accel.backends.cupy.inverse.CupyExecutor` is run with a NumPy stand-in for CuPy
(arrays with device-style pointers into host memory) and emulations of the cuBLAS and
cuSOLVER calls it makes, written from the libraries' documented semantics: column-major
operands given as (pointer, leading dimension), enum values from ``cublas_api.h``,
``alpha``/``beta`` read from host memory, triangles and ``beta = 0`` honoured as BLAS does.
A wrong enum, pointer offset, leading dimension, precision or scalar gives a wrong inverse
or an out-of-bounds operand here, on every commit, without a GPU.
"""

from __future__ import annotations

import ctypes
import sys
import types
from typing import Any

import numpy as np
import pytest
import scipy.linalg

from accel.backends.cupy.inverse import CupyExecutor, spd_inverse
from accel.backends.cupy.libs import CUDA_DTYPE, Xpotrf

# cublas_api.h
SIDE_LEFT, SIDE_RIGHT = 0, 1
FILL_LOWER, FILL_UPPER = 0, 1
OP_N, OP_T = 0, 1
DIAG_NON_UNIT = 0
POINTER_HOST, POINTER_DEVICE = 0, 1
DEFAULT_MATH, TF32_MATH = 0, 3


class DeviceArray(np.ndarray):
    """A NumPy array that, like a CuPy array, exposes ``.data.ptr`` and ``.get()``."""

    @property
    def data(self) -> Any:  # type: ignore[override]
        return Pointer(self.ctypes.data)

    def get(self) -> np.ndarray:
        return np.asarray(self)


class Pointer:
    def __init__(self, ptr: int) -> None:
        self.ptr = ptr

    def __add__(self, offset: int) -> Pointer:
        return Pointer(self.ptr + int(offset))


class Device:
    """Emulated device memory: every allocation is registered so pointers can be checked and read."""

    def __init__(self) -> None:
        self.buffers: list[np.ndarray] = []
        self.cuda = types.SimpleNamespace(
            device=types.SimpleNamespace(get_cublas_handle=lambda: 11, get_cusolver_handle=lambda: 22),
            get_current_stream=lambda: types.SimpleNamespace(ptr=77),
        )
        self.int32, self.uint8 = np.int32, np.uint8

    def register(self, array: np.ndarray) -> DeviceArray:
        array = np.array(array, order="C").view(DeviceArray)
        self.buffers.append(array)
        return array

    def empty(self, size: Any, dtype: Any) -> DeviceArray:
        return self.register(
            np.full(size, np.nan, dtype=dtype) if np.dtype(dtype).kind == "f" else np.zeros(size, dtype=dtype)
        )

    def zeros(self, shape: Any, dtype: Any) -> DeviceArray:
        return self.register(np.zeros(shape, dtype=dtype))

    eye = staticmethod(np.eye)
    tril = staticmethod(np.tril)

    def ndarray(self, shape: tuple[int, int], dtype: Any, memptr: Pointer, strides: tuple[int, int]) -> Any:
        return self.matrix(memptr.ptr, shape[0], shape[1], strides[1] // np.dtype(dtype).itemsize, dtype)

    def matrix(self, ptr: int, rows: int, cols: int, ld: int, dtype: Any) -> np.ndarray:
        """The column-major ``rows × cols`` matrix at ``ptr``, leading dimension ``ld``, bounds-checked."""
        dtype = np.dtype(dtype)
        assert ld >= max(1, rows), f"leading dimension {ld} < rows {rows}"
        extent = 0 if rows == 0 or cols == 0 else ((cols - 1) * ld + rows) * dtype.itemsize
        for buf in self.buffers:
            start = buf.ctypes.data
            if start <= ptr and ptr + extent <= start + buf.nbytes:
                assert buf.dtype == dtype, f"{dtype} call on a {buf.dtype} buffer"
                assert (ptr - start) % dtype.itemsize == 0, "misaligned pointer"
                raw = np.asarray(buf).reshape(-1).view(np.uint8)
                return np.ndarray(
                    (rows, cols), dtype, raw, ptr - start, (dtype.itemsize, dtype.itemsize * ld)
                )
        raise AssertionError(f"operand at {ptr:#x} ({rows}×{cols}, ld {ld}) is outside every allocation")


def host_scalar(ptr: int, dtype: np.dtype) -> float:
    return (ctypes.c_float if dtype == np.float32 else ctypes.c_double).from_address(ptr).value


def make_libraries(device: Device) -> tuple[Any, Any, dict]:
    """Emulated ``cupy_backends.cuda.libs.cublas`` and ``cusolver`` modules over ``device``."""
    state = {"pointer_mode": POINTER_DEVICE, "math_mode": DEFAULT_MATH, "calls": [], "math_seen": set()}

    def call(name: str) -> None:
        assert state["pointer_mode"] == POINTER_HOST, f"{name} called with device pointer mode"
        state["calls"].append(name)
        state["math_seen"].add(state["math_mode"])

    def op(matrix: np.ndarray, trans: int) -> np.ndarray:
        assert trans in (OP_N, OP_T)
        return matrix.T if trans == OP_T else matrix

    def triangular(side, uplo, trans, m, n, a, lda, b, ldb, dtype):
        """``op(A)`` (its triangle, in float64) and the m × n ``B`` of a TRSM or TRMM call."""
        assert side in (SIDE_LEFT, SIDE_RIGHT)
        k = m if side == SIDE_LEFT else n
        A = device.matrix(a, k, k, lda, dtype)
        tri = np.tril(A) if uplo == FILL_LOWER else np.triu(A)
        return op(tri, trans).astype(np.float64), device.matrix(b, m, n, ldb, dtype)

    def trsm(dtype: Any):
        def run(handle, side, uplo, trans, diag, m, n, alpha, a, lda, b, ldb):
            assert handle == 11 and diag == DIAG_NON_UNIT
            call("trsm")
            opA, B = triangular(side, uplo, trans, m, n, a, lda, b, ldb, dtype)
            solved = np.linalg.solve(opA, B) if side == SIDE_LEFT else np.linalg.solve(opA.T, B.T).T
            B[...] = host_scalar(alpha, np.dtype(dtype)) * solved

        return run

    def trmm(dtype: Any):
        def run(handle, side, uplo, trans, diag, m, n, alpha, a, lda, b, ldb, c, ldc):
            assert handle == 11 and diag == DIAG_NON_UNIT
            call("trmm")
            opA, B = triangular(side, uplo, trans, m, n, a, lda, b, ldb, dtype)
            product = opA @ B if side == SIDE_LEFT else B @ opA
            device.matrix(c, m, n, ldc, dtype)[...] = host_scalar(alpha, np.dtype(dtype)) * product

        return run

    def gemm(dtype: Any):
        def run(handle, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc):
            assert handle == 11
            call("gemm")
            A = op(device.matrix(a, *((m, k) if ta == OP_N else (k, m)), lda, dtype), ta)
            B = op(device.matrix(b, *((k, n) if tb == OP_N else (n, k)), ldb, dtype), tb)
            C = device.matrix(c, m, n, ldc, dtype)
            beta_value = host_scalar(beta, np.dtype(dtype))
            result = host_scalar(alpha, np.dtype(dtype)) * (A.astype(np.float64) @ B)
            C[...] = result if beta_value == 0 else result + beta_value * C  # beta = 0: C is not read

        return run

    def syrk(dtype: Any):
        def run(handle, uplo, trans, n, k, alpha, a, lda, beta, c, ldc):
            assert handle == 11
            call("syrk")
            A = op(device.matrix(a, *((n, k) if trans == OP_N else (k, n)), lda, dtype), trans)
            C = device.matrix(c, n, n, ldc, dtype)
            beta_value = host_scalar(beta, np.dtype(dtype))
            full = host_scalar(alpha, np.dtype(dtype)) * (A.astype(np.float64) @ A.T)
            if beta_value != 0:
                full = full + beta_value * C
            mask = np.tri(n, dtype=bool) if uplo == FILL_LOWER else np.tri(n, dtype=bool).T
            C[mask] = full[mask]

        return run

    def potrf(dtype: Any):
        def buffer_size(handle, uplo, n, a, lda):
            assert handle == 22 and uplo == FILL_LOWER
            device.matrix(a, n, n, lda, dtype)
            return 3 * n

        def run(handle, uplo, n, a, lda, work, lwork, info):
            assert handle == 22 and uplo == FILL_LOWER and lwork == 3 * n
            device.matrix(work, lwork, 1, lwork, dtype)
            state["calls"].append("potrf")
            device.matrix(info, 1, 1, 1, np.int32)[0, 0] = cholesky_lower(device.matrix(a, n, n, lda, dtype))

        return buffer_size, run

    def set_pointer_mode(handle, mode):
        state["pointer_mode"] = mode

    def set_math_mode(handle, mode):
        state["math_mode"] = mode

    spotrf_buffer, spotrf = potrf(np.float32)
    dpotrf_buffer, dpotrf = potrf(np.float64)
    cublas = types.SimpleNamespace(
        CUBLAS_SIDE_LEFT=SIDE_LEFT,
        CUBLAS_SIDE_RIGHT=SIDE_RIGHT,
        CUBLAS_FILL_MODE_LOWER=FILL_LOWER,
        CUBLAS_FILL_MODE_UPPER=FILL_UPPER,
        CUBLAS_OP_N=OP_N,
        CUBLAS_OP_T=OP_T,
        CUBLAS_DIAG_NON_UNIT=DIAG_NON_UNIT,
        CUBLAS_POINTER_MODE_HOST=POINTER_HOST,
        CUBLAS_DEFAULT_MATH=DEFAULT_MATH,
        strsm=trsm(np.float32),
        dtrsm=trsm(np.float64),
        strmm=trmm(np.float32),
        dtrmm=trmm(np.float64),
        sgemm=gemm(np.float32),
        dgemm=gemm(np.float64),
        ssyrk=syrk(np.float32),
        dsyrk=syrk(np.float64),
        getPointerMode=lambda handle: state["pointer_mode"],
        setPointerMode=set_pointer_mode,
        getMathMode=lambda handle: state["math_mode"],
        setMathMode=set_math_mode,
    )
    cusolver = types.SimpleNamespace(
        spotrf_bufferSize=spotrf_buffer, spotrf=spotrf, dpotrf_bufferSize=dpotrf_buffer, dpotrf=dpotrf
    )
    return cublas, cusolver, state


def emulated_libcusolver(device: Device, state: dict) -> types.SimpleNamespace:
    """``libcusolver``'s 64-bit potrf functions as C callbacks with the signatures :class:`Xpotrf` declares.

    Every call goes through ctypes' C calling convention, so a wrong argument count or type
    fails as it would against the real library; the matrix is read from its pointer and
    leading dimension in emulated device memory, column-major, and factorised there.
    """
    handle, params, stream = 33, 44, 77
    dtypes = {code: dtype for dtype, code in CUDA_DTYPE.items()}

    def create(out: Any) -> int:
        out[0] = handle
        return 0

    def create_params(out: Any) -> int:
        out[0] = params
        return 0

    def set_stream(h: int, s: int) -> int:
        assert (h, s) == (handle, stream)
        return 0

    def check_head(h: int, p: int, uplo: int, n: int, dtype_a: int, a: int, lda: int, compute: int) -> Any:
        assert (h, p, uplo) == (handle, params, FILL_LOWER) and dtype_a == compute
        return device.matrix(a, n, n, lda, dtypes[dtype_a])

    def buffer_size(h, p, uplo, n, dtype_a, a, lda, compute, device_bytes, host_bytes) -> int:
        check_head(h, p, uplo, n, dtype_a, a, lda, compute)
        device_bytes[0], host_bytes[0] = 8 * n + 3, 5
        return 0

    def potrf(h, p, uplo, n, dtype_a, a, lda, compute, work, work_bytes, host, host_bytes, info) -> int:
        matrix = check_head(h, p, uplo, n, dtype_a, a, lda, compute)
        assert (work_bytes, host_bytes) == (8 * n + 3, 5) and host is not None
        device.matrix(work, work_bytes, 1, work_bytes, np.uint8)  # the workspace is device memory
        state["calls"].append("xpotrf")
        device.matrix(info, 1, 1, 1, np.int32)[0, 0] = cholesky_lower(matrix)
        return 0

    python = {
        "cusolverDnCreate": create,
        "cusolverDnSetStream": set_stream,
        "cusolverDnCreateParams": create_params,
        "cusolverDnXpotrf_bufferSize": buffer_size,
        "cusolverDnXpotrf": potrf,
    }
    functions = {
        name: ctypes.CFUNCTYPE(ctypes.c_int, *Xpotrf.SIGNATURES[name])(fn) for name, fn in python.items()
    }
    return types.SimpleNamespace(**functions)


def cholesky_lower(view: np.ndarray) -> int:
    """LAPACK potrf (lower) on a column-major view in place; returns info."""
    factor, info = scipy.linalg.lapack.get_lapack_funcs("potrf", (view,))(
        np.array(view, order="F"), lower=1, clean=0
    )
    if info == 0:
        view[...] = factor
    return int(info)


def spd_matrix(n: int, seed: int, l2: float = 50.0) -> np.ndarray:
    """EASE-like ``XᵀX + λI``: the Gram of a sparse binary log with skewed item popularity (float64)."""
    rng = np.random.default_rng(seed)
    users = 4 * n + 5
    popularity = 1.0 / np.arange(1, n + 1) ** 0.8
    cols = rng.choice(n, size=users * 6, p=popularity / popularity.sum())
    rows = np.repeat(np.arange(users), 6)
    X = np.zeros((users, n))
    X[rows, cols] = 1.0
    return X.T @ X + l2 * np.eye(n)


def run_inverse(n: int, block: int, dtype: Any, whole_potrf: bool, math_mode: str = "exact") -> tuple:
    device = Device()
    cublas, cusolver, state = make_libraries(device)
    A = spd_matrix(n, seed=n)
    dev = device.register(A.astype(dtype))
    xpotrf = (
        Xpotrf("libcusolver (emulated)", lib=emulated_libcusolver(device, state)) if whole_potrf else None
    )
    spd_inverse(device, dev, block, math_mode, xpotrf, cublas=cublas, cusolver=cusolver)
    return A, np.asarray(dev), state


@pytest.mark.parametrize("whole_potrf", [True, False])
@pytest.mark.parametrize(("n", "block"), [(1, 4), (7, 3), (50, 16), (97, 32), (203, 64), (331, 48)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_inverse_through_emulated_libraries(n: int, block: int, dtype: Any, whole_potrf: bool) -> None:
    A, got, state = run_inverse(n, block, dtype, whole_potrf)
    want = np.linalg.inv(A)
    tol = 1e-4 if dtype == np.float32 else 1e-10
    assert np.abs(got - want).max() <= tol * np.abs(want).max()
    np.testing.assert_array_equal(got, got.T)
    assert ("xpotrf" in state["calls"]) == whole_potrf
    assert ("potrf" in state["calls"]) == (not whole_potrf)
    assert state["pointer_mode"] == POINTER_DEVICE and state["math_mode"] == DEFAULT_MATH  # restored


def test_tf32_mode_is_set_during_the_calls_only() -> None:
    _A, _got, state = run_inverse(40, 8, np.float32, whole_potrf=False, math_mode="tf32")
    assert state["math_seen"] == {TF32_MATH}
    assert state["math_mode"] == DEFAULT_MATH


@pytest.mark.parametrize("whole_potrf", [True, False])
@pytest.mark.parametrize("panel", [4096, 37])
def test_tf32_rank_updates_run_as_gemms(
    monkeypatch: pytest.MonkeyPatch, panel: int, whole_potrf: bool
) -> None:
    """Every lower SYRK (the blocked Cholesky's trailing updates, ``LᵀL``'s rank-b updates of
    both transposes) as GEMMs on column panels (odd widths): still the inverse."""
    from accel.backends.cupy import inverse

    monkeypatch.setattr(inverse, "TF32_SYRK_PANEL", panel)
    A, got, state = run_inverse(203, 48, np.float32, whole_potrf=whole_potrf, math_mode="tf32")
    want = np.linalg.inv(A)
    assert np.abs(got - want).max() <= 1e-4 * np.abs(want).max()
    assert "syrk" not in state["calls"] and "gemm" in state["calls"]
    assert ("potrf" in state["calls"]) == (not whole_potrf)
    _A, _got, exact = run_inverse(203, 48, np.float32, whole_potrf=whole_potrf)
    assert "syrk" in exact["calls"]  # exact mode keeps cuBLAS's SYRK


def test_not_positive_definite_through_emulated_libraries() -> None:
    device = Device()
    cublas, cusolver, _state = make_libraries(device)
    A = spd_matrix(20, seed=1)
    A[13, 13] = -5.0
    with pytest.raises(np.linalg.LinAlgError, match="not positive definite"):
        spd_inverse(
            device, device.register(A.astype(np.float32)), 8, "exact", None, cublas=cublas, cusolver=cusolver
        )


def test_not_positive_definite_through_the_emulated_xpotrf() -> None:
    device = Device()
    cublas, cusolver, state = make_libraries(device)
    A = spd_matrix(120, seed=2)
    A[77, 77] = -5.0
    xpotrf = Xpotrf("libcusolver (emulated)", lib=emulated_libcusolver(device, state))
    with pytest.raises(np.linalg.LinAlgError, match="leading minor 78 of 120"):
        spd_inverse(device, device.register(A), 32, "exact", xpotrf, cublas=cublas, cusolver=cusolver)
    assert state["calls"] == ["xpotrf"]


def test_a_wrong_leading_dimension_is_caught() -> None:
    device = Device()
    cublas, cusolver, _state = make_libraries(device)
    executor = CupyExecutor(device, np.dtype(np.float64), None, cublas=cublas, cusolver=cusolver)
    from accel.backends._blocked_inverse import Ref

    flat = device.register(np.eye(4).reshape(-1))
    with executor.cublas_modes("exact"), pytest.raises(AssertionError, match="outside every allocation"):
        executor.trsm("L", "L", "N", 4, 4, 1.0, Ref(flat, 0, 4), Ref(flat, 0, 5))


# ---- availability: CuPy present but a CUDA library missing ---------------------------------------
def test_missing_cuda_library_falls_back_to_numpy(monkeypatch: pytest.MonkeyPatch) -> None:
    from accel.backends import available_backends, get_backend
    from accel.backends.cupy.libs import cupy_usable

    fake_cupy = types.ModuleType("cupy")
    libs = types.ModuleType("cupy_backends.cuda.libs")

    def missing(name: str) -> Any:
        if name == "cusolver":
            raise ImportError("libcusolver.so.12: cannot open shared object file")
        return types.ModuleType(name)

    libs.__getattr__ = missing  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "cupy", fake_cupy)
    monkeypatch.setitem(sys.modules, "cupy_backends", types.ModuleType("cupy_backends"))
    monkeypatch.setitem(sys.modules, "cupy_backends.cuda", types.ModuleType("cupy_backends.cuda"))
    monkeypatch.setitem(sys.modules, "cupy_backends.cuda.libs", libs)
    usable, reason = cupy_usable()
    assert not usable
    assert "cuSOLVER: libcusolver.so.12" in reason and "cuBLAS" not in reason
    assert get_backend("auto").name == "numpy"
    assert "cuSOLVER" in available_backends()["cupy"]
