"""Checks on user input that turn bad data into errors naming the problem."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import TypeAlias, TypeGuard

import numpy as np
import scipy.sparse as sp
from numpy.typing import ArrayLike

from accel.errors import InputError

DTYPES: dict[str, np.dtype] = {"float32": np.dtype(np.float32), "float64": np.dtype(np.float64)}
FLOAT32 = DTYPES["float32"]

#: A users × items matrix as callers give it: SciPy sparse, or anything NumPy reads as a 2-D array.
MatrixLike: TypeAlias = "sp.spmatrix | sp.sparray | ArrayLike"


def is_sparse(value: object) -> TypeGuard[sp.spmatrix | sp.sparray]:
    """``scipy.sparse.issparse``, telling the type checker that ``value`` is then a sparse matrix."""
    return sp.issparse(value)


def check_dtype(dtype: str | np.dtype | type) -> np.dtype:
    """``"float32"``/``"float64"`` (or the NumPy types) as a ``np.dtype``."""
    try:
        name = np.dtype(dtype).name if not isinstance(dtype, str) else dtype
    except TypeError:
        name = None
    if name not in DTYPES:
        raise InputError(f"dtype must be float32 or float64, got {dtype!r}")
    return DTYPES[name]


def check_nonnegative(name: str, value: float) -> float:
    """A finite number ≥ 0, e.g. the L2 penalty."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a number, got {value!r}") from None
    if math.isnan(value) or math.isinf(value):
        raise InputError(f"{name} must be finite, got {value}")
    if value < 0:
        raise InputError(f"{name} must be >= 0, got {value}")
    return value


def as_binary_csr(
    X: MatrixLike,
    *,
    dtype: np.dtype = FLOAT32,
    n_items: int | None = None,
    allow_empty_rows: bool = True,
    name: str = "X",
) -> sp.csr_matrix:
    """Binary CSR (rows × items) from a SciPy sparse matrix or a dense 2-D array.

    Any stored non-zero becomes 1 (repeat interactions count once); explicit
    zeros are dropped. Raises :class:`InputError` for anything that is not a
    2-D matrix of finite numbers, for the wrong number of item columns, and, when
    ``allow_empty_rows`` is false, for a matrix with no interactions at all.
    """
    if is_sparse(X):
        if X.ndim != 2:
            raise InputError(f"{name} must be 2-D (users × items), got {X.ndim}-D")
        csr = X.tocsr()
        # A new matrix over copies of the arrays: the caller's matrix is never changed.
        csr = sp.csr_matrix((csr.data.copy(), csr.indices.copy(), csr.indptr.copy()), shape=csr.shape)
    else:
        try:
            array = np.asarray(X)
        except Exception as exc:
            raise InputError(f"{name} must be a sparse or dense 2-D matrix: {exc}") from None
        if array.ndim != 2:
            raise InputError(f"{name} must be 2-D (users × items), got shape {array.shape}")
        if not np.issubdtype(array.dtype, np.number) and array.dtype != np.bool_:
            raise InputError(f"{name} must hold numbers, got dtype {array.dtype}")
        csr = sp.csr_matrix(array)
    if csr.shape[0] == 0 or csr.shape[1] == 0:
        raise InputError(f"{name} is empty: shape {csr.shape}")
    if n_items is not None and csr.shape[1] != n_items:
        raise InputError(
            f"{name} has {csr.shape[1]} item columns but the model was fitted on {n_items} items"
        )
    if csr.nnz and not np.all(np.isfinite(csr.data)):
        raise InputError(f"{name} holds NaN or infinite values")
    csr.sum_duplicates()
    csr.eliminate_zeros()
    if not allow_empty_rows and csr.nnz == 0:
        raise InputError(f"{name} has no interactions (every entry is zero)")
    csr.data = np.ones(csr.nnz, dtype=dtype)
    csr.indices = csr.indices.astype(np.int32, copy=False)
    csr.indptr = csr.indptr.astype(np.int64 if csr.nnz >= 2**31 else np.int32, copy=False)
    return csr


def binary_matrix(
    rows: np.ndarray, cols: np.ndarray, shape: tuple[int, int], dtype: np.dtype | type = np.float32
) -> sp.csr_matrix:
    """CSR with a 1 at every ``(rows[i], cols[i])``; repeated pairs count once."""
    X = sp.csr_matrix((np.ones(len(rows), dtype=dtype), (rows, cols)), shape=shape)
    X.sum_duplicates()
    X.data[:] = 1
    return X


def check_choice(name: str, value: object, choices: tuple[str, ...]) -> str:
    """``value`` if it is one of ``choices``, else :class:`InputError` listing them."""
    if not isinstance(value, str) or value not in choices:
        raise InputError(f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}")
    return value


def check_k(k: object, n_items: int) -> int:
    """An integer list length with 1 ≤ k ≤ n_items."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise InputError(f"k must be an integer, got {k!r}")
    if not 1 <= k <= n_items:
        raise InputError(f"k must be between 1 and the number of items ({n_items}), got {k}")
    return int(k)


def item_index_array(items: Iterable[int] | int) -> np.ndarray:
    """Item indices as a flat int64 array (any values); :class:`InputError` for non-integers."""
    array = np.atleast_1d(np.asarray(items))
    if array.size and not np.issubdtype(array.dtype, np.integer):
        raise InputError(f"item indices must be integers, got {array.dtype}")
    return array.astype(np.int64, copy=False).ravel()


def check_item_indices(items: Iterable[int] | int, n_items: int) -> np.ndarray:
    """Item indices as an int64 array, each in ``[0, n_items)``."""
    array = item_index_array(items)
    bad = array[(array < 0) | (array >= n_items)]
    if bad.size:
        raise InputError(
            f"item index {int(bad[0])} is out of range: the model has {n_items} items (0..{n_items - 1})"
        )
    return array


def check_positive_int(name: str, value: object) -> int:
    """An integer ≥ 1 (booleans refused), e.g. a sample size."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise InputError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def check_threads(n_threads: object) -> None:
    """:class:`InputError` unless ``n_threads`` is ``None`` (every usable core) or an integer ≥ 1."""
    if n_threads is not None:
        check_positive_int("n_threads", n_threads)


def storable_ids(ids: object) -> np.ndarray:
    """Ids in a form ``np.save`` keeps without pickling (text becomes a NumPy string array)."""
    ids = np.asarray(ids)
    return ids.astype(str) if ids.dtype == object else ids
