"""The array-backend contract: everything that differs between NumPy and CuPy.

Models, scoring and the Dask code call these methods and never import NumPy or
CuPy themselves for device work. Host-side results (what users get back) are
always NumPy arrays, produced by :meth:`Backend.to_host`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import numpy as np
import scipy.sparse as sp

from accel.backends._blocked_inverse import OnBlock

Array = Any
"""A dense array of the backend (``numpy.ndarray`` or ``cupy.ndarray``)."""

SparseMatrix = Any
"""A CSR matrix of the backend (``scipy.sparse`` or ``cupyx.scipy.sparse``)."""

#: At most this share of free memory goes to one dense scoring batch (and at most ``batch_bytes``).
_BATCH_MEMORY_SHARE = 0.25
#: Dense n_items-wide arrays alive per scored row (scores, a filter's copy, top-k scratch).
_ROW_COPIES = 3


class Backend(ABC):
    """One array library (NumPy or CuPy) and the dense/sparse kernels EASE needs."""

    #: Short name, as accepted by :func:`accel.backends.get_backend`.
    name: str = ""

    #: Most bytes of dense scores (and their top-k scratch) one scoring batch may use.
    batch_bytes: int = 1 << 30

    # ---- data movement -------------------------------------------------
    @abstractmethod
    def to_device(self, array: np.ndarray) -> Array:
        """Copy (or view, on the CPU) a host array onto the device."""

    @abstractmethod
    def to_host(self, array: Array) -> np.ndarray:
        """Return a NumPy array with the contents of a backend array."""

    @abstractmethod
    def sparse_to_device(self, X: sp.spmatrix | sp.sparray, dtype: np.dtype) -> SparseMatrix:
        """Copy a SciPy sparse matrix onto the device as CSR with ``dtype`` values."""

    @abstractmethod
    def empty(self, shape: tuple[int, ...], dtype: np.dtype) -> Array:
        """Allocate an uninitialised dense array (callers check memory first)."""

    # ---- memory ----------------------------------------------------------
    @abstractmethod
    def free_memory(self) -> int:
        """Bytes that can still be allocated on the device (host RAM for NumPy)."""

    @abstractmethod
    def memory_kind(self) -> str:
        """Human words for where arrays live, e.g. ``"host RAM"`` or ``"GPU memory (H100)"``."""

    def workspace_bytes(self, n_items: int, itemsize: int, nnz: int = 0) -> int:
        """Bytes beyond the one n² buffer (and X, Xᵀ) that a fit of ``n_items`` items and ``nnz``
        interactions may take at peak."""
        return 0

    # ---- EASE kernels ----------------------------------------------------
    @abstractmethod
    def gram(self, X: SparseMatrix, out: Array) -> Array:
        """Write ``XᵀX`` (n_items × n_items) into the preallocated ``out`` and return it.

        ``X`` is a backend CSR matrix (users × items). No n² temporary is made:
        the product is formed a block of items at a time straight into ``out``.
        """

    @abstractmethod
    def spd_inverse_inplace(self, A: Array, on_block: OnBlock | None = None) -> Array:
        """Overwrite the symmetric positive definite ``A`` with ``A⁻¹`` (both triangles).

        Cholesky factorisation, then the inverse from the factor, in the one
        buffer. ``on_block(done, total)`` is called as parts of the work finish
        (progress bars; a KeyboardInterrupt stops the inverse there). Raises
        :class:`numpy.linalg.LinAlgError` when ``A`` is not positive definite.
        """

    def with_threads(self, n_threads: int | None) -> Backend:
        """This backend with its host work (thread pool and BLAS) capped at ``n_threads`` threads.

        ``None``: the cores this process may use. A backend whose heavy work runs on a
        device (CuPy) returns itself.
        """
        return self

    def with_math_mode(self, math_mode: str) -> Backend:
        """This backend with :meth:`spd_inverse_inplace`'s matrix products in ``math_mode``.

        ``"tf32"`` asks for TF32 tensor cores where the device has them; a backend without
        them (the NumPy one) computes exactly and returns itself.
        """
        return self

    @abstractmethod
    def ease_weights_inplace(self, P: Array) -> Array:
        """Turn ``P = (G + λI)⁻¹`` into ``B = I − P·diag(1/diag(P))`` in place (``diag(B) = 0``)."""

    @abstractmethod
    def add_to_diagonal(self, A: Array, value: float | Array) -> Array:
        """``A[i, i] += value`` in place (``value`` a scalar or a length-n vector)."""

    @abstractmethod
    def diagonal(self, A: Array) -> np.ndarray:
        """A host copy of ``A``'s diagonal."""

    # ---- scoring -----------------------------------------------------------
    @abstractmethod
    def sparse_dense_matmul(self, X: SparseMatrix, W: Array) -> Array:
        """Dense ``X · W`` for a backend CSR ``X`` and a dense (C-ordered) ``W``, without copying ``W``."""

    @abstractmethod
    def mask_seen(self, scores: Array, X: SparseMatrix) -> Array:
        """Set ``scores[u, i] = -inf`` wherever ``X[u, i]`` is stored, in place."""

    @abstractmethod
    def topk(self, scores: Array, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Per row, the ``k`` largest columns sorted by descending score, as host arrays.

        Ties are broken by the lower column index so results are reproducible.
        """

    def mask_columns(self, scores: Array, columns: np.ndarray) -> Array:
        """Set ``scores[:, columns] = -inf`` in place for host column indices ``columns``."""
        scores[:, self.to_device(np.asarray(columns, dtype=np.int64))] = -np.inf
        return scores

    def keep_only(self, scores: Array, allowed: SparseMatrix) -> Array:
        """Set every score to ``-inf`` except where ``allowed`` (backend CSR) stores an entry, in place."""
        marked = scores.copy()
        self.mask_seen(marked, allowed)
        scores[marked > -np.inf] = -np.inf
        return scores

    def sparse_to_host(self, X: SparseMatrix) -> sp.csr_matrix:
        """A SciPy CSR copy of a backend CSR matrix (a no-op on the CPU)."""
        return X if sp.issparse(X) else X.get()

    def dense_topk(
        self,
        X: sp.csr_matrix,
        W: Array,
        k: int,
        exclude: sp.csr_matrix | None = None,
        include: sp.csr_matrix | np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Per row of ``X · W`` (host CSR ``X``, dense backend ``W``), the ``k`` best scores, as host arrays.

        Columns stored in row ``u`` of ``exclude`` are never returned; with ``include``
        (CSR per row, or an index array for every row) only its columns are
        candidates. Ties go to the lower column; a row with fewer than ``k``
        candidates is padded with id ``-1`` and score ``-inf``. This default scores
        a dense batch, masks it and ranks it with :meth:`topk`.
        """
        X_dev = self.sparse_to_device(X, W.dtype)
        scores = self.sparse_dense_matmul(X_dev, W)
        if exclude is not None:
            self.mask_seen(scores, X_dev if exclude is X else self.sparse_to_device(exclude, W.dtype))
        if isinstance(include, np.ndarray):
            outside = np.ones(scores.shape[1], dtype=bool)
            outside[include] = False
            self.mask_columns(scores, np.flatnonzero(outside))
        elif include is not None:
            self.keep_only(scores, self.sparse_to_device(include, W.dtype))
        ids, values = self.topk(scores, k)
        ids[np.isneginf(values)] = -1
        return ids, values

    def dense_batch_rows(self, n_items: int, itemsize: int) -> int:
        """Rows per :meth:`dense_topk` call that fit comfortably in free memory."""
        budget = min(self.free_memory() * _BATCH_MEMORY_SHARE, self.batch_bytes)
        return int(max(1, budget // (_ROW_COPIES * n_items * itemsize)))

    def sparse_topk(
        self,
        A: SparseMatrix,
        W: SparseMatrix,
        k: int,
        exclude: SparseMatrix | None = None,
        include: SparseMatrix | np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Per row of the sparse product ``A · W``, the ``k`` best positive scores, as host arrays.

        Never forms a dense batch: columns stored in row ``u`` of ``exclude`` are skipped
        and, with ``include`` (CSR per row, or an index array for every row), only its
        columns are candidates. Ties go to the lower column; a row with fewer than
        ``k`` positive candidates is padded with id ``-1`` and score ``-inf``. This
        default runs on the host's cores (:mod:`accel.backends.fused_topk`).
        """
        from accel.backends.fused_topk import sparse_topk

        host = [
            None if M is None or isinstance(M, np.ndarray) else self.sparse_to_host(M)
            for M in (A, W, exclude, include)
        ]
        return sparse_topk(
            host[0],
            host[1],
            k,
            exclude=host[2],
            include=include if isinstance(include, np.ndarray) else host[3],
            n_threads=self._host_threads(),
        )

    def _host_threads(self) -> int:
        """Threads for the host top-k kernels (0: one per core)."""
        return 0

    def synchronize(self) -> None:
        """Wait for queued device work (a no-op on the CPU); used by timers."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"
