"""Every CuPy / CUDA-library name the CuPy backend uses exists in the installed CuPy; no GPU needed.

Runs wherever CuPy and its CUDA libraries import (the ``gpu`` extras bring both); skips with
the reason elsewhere. It reads the backend's source, follows each attribute chain rooted at a
CuPy module (``cusparse.CUSPARSE_MM_ALG_DEFAULT``, ``cp.cuda.runtime.memGetInfo``,
``self._cp.ElementwiseKernel`` ...) and resolves it against the installed modules; it
loads every ``cusolverDn*`` symbol the backend binds through ``ctypes``; and it compiles
the backend's CUDA kernel sources with NVRTC (which needs no device).
"""

from __future__ import annotations

import ast
import ctypes
import importlib
import inspect
from pathlib import Path
from typing import Any

import pytest

import accel.backends.cupy as cupy_package

PACKAGE_DIR = Path(cupy_package.__file__).parent
#: Attribute roots that stand for a module inside the backend's classes.
ATTRIBUTE_ROOTS = {
    "self._cp": "cupy",
    "self.xp": "cupy",
    "self._cpx_sparse": "cupyx.scipy.sparse",
    "self._cublas": "cupy_backends.cuda.libs.cublas",
    "self._cusolver": "cupy_backends.cuda.libs.cusolver",
}
#: What plain names stand for when no import binds them (parameters, local aliases).
NAME_ROOTS = {
    "cp": "cupy",
    "cupy": "cupy",
    "cublas": "cupy_backends.cuda.libs.cublas",
    "cusolver": "cupy_backends.cuda.libs.cusolver",
    "cusparse": "cupy_backends.cuda.libs.cusparse",
}
CUPY_PACKAGES = ("cupy", "cupyx", "cupy_backends")


def _scope_nodes(scope: ast.AST) -> list[ast.AST]:
    """The nodes of one scope (a module or a function), not descending into nested functions."""
    nodes, stack = [], list(ast.iter_child_nodes(scope))
    while stack:
        node = stack.pop()
        nodes.append(node)
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            stack.extend(ast.iter_child_nodes(node))
    return nodes


def _import_bindings(nodes: list[ast.AST]) -> dict[str, str]:
    """Local name → dotted module path (or module.attribute) for the imports among ``nodes``."""
    bindings = {}
    for sub in nodes:
        if isinstance(sub, ast.ImportFrom) and sub.module:
            for alias in sub.names:
                bindings[alias.asname or alias.name] = f"{sub.module}.{alias.name}"
        elif isinstance(sub, ast.Import):
            for alias in sub.names:
                bindings[alias.asname or alias.name.split(".")[0]] = (
                    alias.name if alias.asname else alias.name.split(".")[0]
                )
    return bindings


def _chain(node: ast.Attribute) -> tuple[str, list[str]] | None:
    """``(root, [attr, ...])`` for ``root.a.b``, with ``self.x`` roots kept together."""
    attrs = []
    while isinstance(node, ast.Attribute):
        attrs.append(node.attr)
        node = node.value  # type: ignore[assignment]
    if not isinstance(node, ast.Name):
        return None
    attrs.reverse()
    if node.id == "self" and attrs:
        return f"self.{attrs[0]}", attrs[1:]
    return node.id, attrs


def _resolve_path(path: str) -> Any:
    """The object at a dotted path: a module, or an attribute of one."""
    try:
        return importlib.import_module(path)
    except ImportError:
        parent, _, name = path.rpartition(".")
        return getattr(importlib.import_module(parent), name)


def used_names(source: str) -> tuple[set[str], set[str]]:
    """``(checked, missing)`` dotted names of CuPy modules that ``source`` uses."""
    tree = ast.parse(source)
    module_bindings = _import_bindings(_scope_nodes(tree))
    checked: set[str] = set()
    missing: set[str] = set()
    scopes = [tree, *(n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)))]
    for scope in scopes:
        nodes = _scope_nodes(scope)
        bindings = module_bindings if scope is tree else {**module_bindings, **_import_bindings(nodes)}
        for node in nodes:
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(CUPY_PACKAGES):
                for alias in node.names:
                    name = f"{node.module}.{alias.name}"
                    checked.add(name)
                    try:
                        _resolve_path(name)
                    except (ImportError, AttributeError):
                        missing.add(name)
            if not isinstance(node, ast.Attribute):
                continue
            found = _chain(node)
            if found is None:
                continue
            root, attrs = found
            base = ATTRIBUTE_ROOTS.get(root) or bindings.get(root) or NAME_ROOTS.get(root)
            if base is None or not base.startswith(CUPY_PACKAGES):
                continue
            try:
                obj = _resolve_path(base)
            except (ImportError, AttributeError):
                missing.add(base)
                continue
            path = base
            for attr in attrs:
                if not (inspect.ismodule(obj) or inspect.isclass(obj)):
                    break
                path = f"{path}.{attr}"
                checked.add(path)
                if not hasattr(obj, attr):
                    missing.add(path)
                    break
                obj = getattr(obj, attr)
    return checked, missing


@pytest.fixture(scope="module")
def cupy_libraries() -> None:
    pytest.importorskip("cupy", reason="CuPy is not installed (pip install -e '.[gpu-cuda13]')")
    from accel.backends.cupy.libs import missing_libraries

    missing = missing_libraries()
    if missing:
        pytest.skip("CuPy cannot load CUDA libraries: " + "; ".join(missing))


def backend_sources() -> dict[str, str]:
    return {path.name: path.read_text() for path in sorted(PACKAGE_DIR.glob("*.py"))}


def test_every_cupy_name_resolves(cupy_libraries: None) -> None:
    checked: set[str] = set()
    problems = []
    for name, source in backend_sources().items():
        found, missing = used_names(source)
        checked |= found
        problems += [f"{name}: {m}" for m in sorted(missing)]
    assert not problems, "names the CuPy backend uses that this CuPy lacks:\n" + "\n".join(problems)
    # The scan reaches the bindings that matter (so an empty scan cannot pass).
    for name in (
        "cupy_backends.cuda.libs.cusparse.CUSPARSE_MM_ALG_DEFAULT",
        "cupy_backends.cuda.libs.cusparse.spMM_bufferSize",
        "cupy_backends.cuda.libs.cublas.strsm",
        "cupy_backends.cuda.libs.cublas.dtrmm",
        "cupy_backends.cuda.libs.cublas.dsyrk",
        "cupy_backends.cuda.libs.cublas.CUBLAS_POINTER_MODE_HOST",
        "cupy_backends.cuda.libs.cusolver.spotrf_bufferSize",
        "cupyx.cusparse.spgemm",
        "cupy.cuda.runtime.memGetInfo",
        "cupy.ElementwiseKernel",
    ):
        assert name in checked, name


def test_the_check_catches_a_missing_name(cupy_libraries: None) -> None:
    source = (
        "def f():\n"
        "    from cupy_backends.cuda.libs import cusparse\n"
        "    return cusparse.CUSPARSE_SPMM_ALG_DEFAULT, cusparse.CUSPARSE_MM_ALG_DEFAULT\n"
        "def g(cp):\n"
        "    return cp.cuda.runtime.noSuchCall, cp.float32\n"
    )
    _checked, missing = used_names(source)
    assert missing == {
        "cupy_backends.cuda.libs.cusparse.CUSPARSE_SPMM_ALG_DEFAULT",
        "cupy.cuda.runtime.noSuchCall",
    }


def test_ctypes_symbols_load(cupy_libraries: None) -> None:
    from accel.backends.cupy.libs import Xpotrf, cusolver_library

    library = cusolver_library()
    assert library is not None, "libcusolver is neither loaded by CuPy nor on the library path"
    lib = ctypes.CDLL(library)
    absent = [name for name in Xpotrf.SIGNATURES if not hasattr(lib, name)]
    assert not absent, f"{library} lacks {absent}"


def _nvrtc_compile(source: str) -> None:
    from cupy_backends.cuda.libs import nvrtc

    program = nvrtc.createProgram(source, "accel.cu", [], [])
    try:
        nvrtc.compileProgram(program, ["-arch=compute_80"])
    except nvrtc.NVRTCError as exc:
        raise AssertionError(f"{exc}\n{nvrtc.getProgramLog(program)}") from exc
    finally:
        nvrtc.destroyProgram(program)


@pytest.mark.parametrize("value_type", ["float32", "float64"])
@pytest.mark.parametrize("index_type", ["int32", "int64"])
def test_row_kernels_compile(cupy_libraries: None, value_type: str, index_type: str) -> None:
    import numpy as np

    from accel.backends.cupy import kernels

    header = kernels.kernel_header(np.dtype(value_type), np.dtype(index_type))
    _nvrtc_compile(header + kernels._ROW_KERNELS)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_topk_key_bodies_compile(cupy_libraries: None, dtype: str) -> None:
    """The ElementwiseKernel bodies, in a kernel shaped as CuPy generates one (``i`` is the flat index)."""
    from accel.backends.cupy import topk

    c_type = {"float32": "float", "float64": "double"}[dtype]
    body = topk._ORDER_BITS[dtype] + (
        "key = ((unsigned long long)(~ascending) << 32) | (unsigned long long)(i % n_cols);"
        if dtype == "float32"
        else "key = ~ascending;"
    )
    _nvrtc_compile(
        f'extern "C" __global__ void keys(const {c_type}* scores, unsigned long long* keys, '
        "long long n_cols, long long n) {\n"
        "  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; "
        "i += (long long)blockDim.x * gridDim.x) {\n"
        f"    const {c_type} score = scores[i];\n    unsigned long long key;\n"
        f"{body}\n    keys[i] = key;\n  }}\n}}\n"
    )
