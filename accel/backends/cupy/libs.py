"""CUDA libraries behind the CuPy backend: whether they load, and cuSOLVER's 64-bit Cholesky via ctypes.

CuPy is imported lazily, so this module imports (and :func:`cupy_usable` answers) on
machines without CuPy. CuPy wraps only the 32-bit legacy ``cusolverDn<t>potrf``; the
64-bit ``cusolverDnXpotrf`` is called through ``ctypes`` on the ``libcusolver`` CuPy
has loaded, with its C signature from NVIDIA's ``cusolverDn.h``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import importlib
import os
from typing import Any, ClassVar

import numpy as np

#: CuPy's binding modules (in ``cupy_backends.cuda.libs``) for the CUDA libraries the backend calls.
#: ``from cupy_backends.cuda.libs import cublas`` is what loads the library (CuPy 14 finds it then).
LIBRARY_MODULES = {"cuBLAS": "cublas", "cuSOLVER": "cusolver", "cuSPARSE": "cusparse"}
#: cudaDataType values (library_types.h).
CUDA_DTYPE = {np.dtype(np.float32): 0, np.dtype(np.float64): 1}
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


def missing_libraries() -> list[str]:
    """``"cuBLAS: <why>"`` for each CUDA library CuPy cannot load here (empty when all load)."""
    missing = []
    for label, module in LIBRARY_MODULES.items():
        try:
            getattr(importlib.import_module("cupy_backends.cuda.libs"), module)
        except Exception as exc:  # ImportError, or a loader error from CuPy's library finder
            missing.append(f"{label}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}")
    return missing


def cupy_usable(device: int | None = None) -> tuple[bool, str]:
    """Whether CuPy imports, its CUDA libraries load and a device answers; the reason when not."""
    try:
        import cupy
    except Exception as exc:  # ImportError, or a broken CUDA library load inside CuPy
        return False, f"CuPy is not importable: {type(exc).__name__}: {exc}"
    missing = missing_libraries()
    if missing:
        return False, "CuPy cannot load CUDA libraries the backend needs (" + "; ".join(missing) + ")"
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
            name = device_name(cupy, index)
    except Exception as exc:
        return False, f"CUDA device {index} is not usable: {exc}"
    return True, f"CUDA device {index} ({name})"


def device_name(cupy: Any, index: int) -> str:
    name = cupy.cuda.runtime.getDeviceProperties(index)["name"]
    return name.decode() if isinstance(name, bytes) else str(name)


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


def cusolver_library() -> str | None:
    """Path of the ``libcusolver`` CuPy loaded (importing its binding loads it), else one the system has."""
    from cupy_backends.cuda.libs import cusolver  # noqa: F401  (loads CuPy's libcusolver)

    return _mapped_library("libcusolver") or ctypes.util.find_library("cusolver")


# ---------------------------------------------------------------------------------------------
# cuSOLVER 64-bit Cholesky through ctypes
# ---------------------------------------------------------------------------------------------
class Xpotrf:
    """``cusolverDnXpotrf`` (64-bit API) on its own cuSOLVER handle for one device.

    C signatures (cusolverDn.h)::

        cusolverDnXpotrf_bufferSize(handle, params, uplo, int64 n, cudaDataType dataTypeA, const void *A,
                                    int64 lda, cudaDataType computeType, size_t *wsDevice, size_t *wsHost)
        cusolverDnXpotrf(handle, params, uplo, int64 n, cudaDataType dataTypeA, void *A, int64 lda,
                         cudaDataType computeType, void *bufDevice, size_t wsDevice, void *bufHost,
                         size_t wsHost, int *info)
    """

    #: (handle, params, uplo, n, dataTypeA, A, lda, computeType): what both calls start with.
    _HEAD: ClassVar[list[Any]] = [
        ctypes.c_void_p,
        ctypes.c_void_p,
        ctypes.c_int,
        ctypes.c_int64,
        ctypes.c_int,
        ctypes.c_void_p,
        ctypes.c_int64,
        ctypes.c_int,
    ]
    SIGNATURES: ClassVar[dict[str, list[Any]]] = {
        "cusolverDnCreate": [ctypes.POINTER(ctypes.c_void_p)],
        "cusolverDnSetStream": [ctypes.c_void_p, ctypes.c_void_p],
        "cusolverDnCreateParams": [ctypes.POINTER(ctypes.c_void_p)],
        "cusolverDnXpotrf_bufferSize": [
            *_HEAD,
            ctypes.POINTER(ctypes.c_size_t),
            ctypes.POINTER(ctypes.c_size_t),
        ],
        "cusolverDnXpotrf": [
            *_HEAD,
            ctypes.c_void_p,
            ctypes.c_size_t,
            ctypes.c_void_p,
            ctypes.c_size_t,
            ctypes.c_void_p,
        ],
    }
    _LOWER = 0  # CUBLAS_FILL_MODE_LOWER

    def __init__(self, library: str, lib: Any = None) -> None:
        """Bind the functions of ``library`` (or of ``lib``, an already loaded stand-in for it)."""
        lib = ctypes.CDLL(library) if lib is None else lib
        for name, argtypes in self.SIGNATURES.items():
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
        cuda_dtype = CUDA_DTYPE[np.dtype(dtype)]
        device_bytes, host_bytes = ctypes.c_size_t(), ctypes.c_size_t()
        # (handle, params, uplo, n, dataTypeA, A, lda, computeType): the head both calls share.
        head = (
            self._handle,
            self._params,
            self._LOWER,
            n,
            cuda_dtype,
            ctypes.c_void_p(pointer),
            lda,
            cuda_dtype,
        )
        self._check(
            lib.cusolverDnXpotrf_bufferSize(*head, ctypes.byref(device_bytes), ctypes.byref(host_bytes)),
            "cusolverDnXpotrf_bufferSize",
        )
        device_work = cupy.empty(max(1, device_bytes.value), dtype=cupy.uint8)
        host_work = np.empty(max(1, host_bytes.value), dtype=np.uint8)
        info = cupy.zeros((), dtype=cupy.int32)
        self._check(
            lib.cusolverDnXpotrf(
                *head,
                ctypes.c_void_p(device_work.data.ptr),
                device_bytes.value,
                ctypes.c_void_p(host_work.ctypes.data) if host_bytes.value else None,
                host_bytes.value,
                ctypes.c_void_p(info.data.ptr),
            ),
            "cusolverDnXpotrf",
        )
        return int(info.get())


_XPOTRF: dict[int, Xpotrf | str] = {}


def load_xpotrf(cupy: Any, device_id: int) -> Xpotrf | str:
    """The device's :class:`Xpotrf`, or the reason it cannot be had (cached per device)."""
    if device_id in _XPOTRF:
        return _XPOTRF[device_id]
    cupy.cuda.device.get_cusolver_handle()
    library = cusolver_library()
    result: Xpotrf | str
    if library is None:
        result = "libcusolver was not found among the loaded libraries"
    else:
        try:
            result = Xpotrf(library)
        except (OSError, AttributeError, RuntimeError) as exc:
            result = f"cusolverDnXpotrf could not be loaded from {library}: {exc}"
    _XPOTRF[device_id] = result
    return result
