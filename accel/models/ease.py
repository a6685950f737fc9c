"""EASE (Steck 2019): a closed-form item-item model, fitted exactly in one n² buffer."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import scipy.sparse as sp
from tqdm.auto import tqdm

from accel.backends import Backend, get_backend
from accel.errors import InputError, InsufficientMemoryError
from accel.models.base import Recommender
from accel.validation import check_dtype, check_nonnegative


class _FitSteps:
    """A progress bar over the fit's steps that also records each step's seconds."""

    def __init__(self, backend: Backend, total: int, show_progress: bool) -> None:
        self.backend = backend
        self.timings: dict[str, float] = {}
        self.bar = tqdm(total=total, desc="EASE fit", unit="step", disable=None if show_progress else True)
        self.start = time.perf_counter()

    def __enter__(self) -> _FitSteps:
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.close()

    def done(self, name: str) -> None:
        """Mark step ``name`` finished (after the device catches up)."""
        self.backend.synchronize()
        now = time.perf_counter()
        self.timings[name] = now - self.start
        self.start = now
        self.bar.set_postfix_str(name)
        self.bar.update()


class EASE(Recommender):
    """Embarrassingly Shallow Autoencoder: ``B = I − P·diag(1/diag(P))``, ``P = (XᵀX + λI)⁻¹``.

    The fit allocates one n_items × n_items array and works in it throughout:
    the Gram matrix is written into it block by block, λ is added to its
    diagonal, it is Cholesky-factorised and inverted in place, and finally
    scaled into ``B`` (``diag(B) = 0``). Scores are ``X·B``.

    Parameters
    ----------
    l2:
        The L2 penalty λ (≥ 0); Steck's experiments use hundreds to thousands.
    backend:
        ``"auto"`` (CuPy when a GPU is usable, else NumPy), ``"numpy"`` or ``"cupy"``.
    dtype:
        ``"float32"`` (default; half the memory) or ``"float64"``.
    """

    def __init__(self, l2: float = 500.0, backend: str | Backend = "auto", dtype: str = "float32") -> None:
        super().__init__(backend=backend, dtype=dtype)
        self.l2 = l2

    def _check_params(self) -> None:
        check_nonnegative("l2", self.l2)

    @staticmethod
    def memory_required(
        n_items: int, dtype: str = "float32", backend: str | Backend = "numpy", n_interactions: int = 0
    ) -> int:
        """Peak bytes an ``n_items`` fit of ``n_interactions`` needs beyond the input matrix (and its
        transpose): one n² buffer plus the backend's workspace."""
        itemsize = check_dtype(dtype).itemsize
        workspace = get_backend(backend).workspace_bytes(int(n_items), itemsize, int(n_interactions))
        return int(n_items) ** 2 * itemsize + workspace

    def _check_memory(self, X: sp.csr_matrix) -> None:
        backend = self.backend_
        # The Gram step holds X on the device and its transpose (items × users) beside it.
        x_bytes = 2 * (X.data.nbytes + X.indices.nbytes + X.indptr.nbytes)
        needed = self.memory_required(self.n_items_, self.dtype_.name, backend, X.nnz) + x_bytes
        available = backend.free_memory()
        if needed > available:
            raise InsufficientMemoryError(
                f"an EASE fit of {self.n_items_:,} items in {self.dtype_.name}",
                needed,
                available,
                backend.memory_kind(),
            )

    def _fit(self, X: sp.csr_matrix, show_progress: bool) -> None:
        backend = self.backend_
        self._check_memory(X)
        with _FitSteps(backend, 3, show_progress) as steps:
            X_dev = backend.sparse_to_device(X, self.dtype_)
            G = backend.empty((self.n_items_, self.n_items_), self.dtype_)
            backend.gram(X_dev, out=G)
            del X_dev
            steps.done("gram")
            self._weights_from_gram(G, steps)

    def fit_gram(self, G: Any, show_progress: bool = True) -> EASE:
        """Learn from a precomputed Gram matrix ``G = XᵀX`` (n_items × n_items), e.g. from
        :func:`accel.distributed.gram_from_parquet`, without the interaction log. Returns self.

        ``G`` is worked on in place and becomes ``B_``: pass a C-contiguous array of
        the model's dtype (a NumPy array for the CPU backend; on the GPU it is copied
        to the device once) and do not use it afterwards. Only the solver's workspace
        is allocated besides it.
        """
        self.dtype_ = check_dtype(self.dtype)
        self._check_params()
        self.backend_ = get_backend(self.backend)
        shape = getattr(G, "shape", None)
        if shape is None or len(shape) != 2 or shape[0] != shape[1] or shape[0] == 0:
            raise InputError(f"G must be a non-empty square matrix (items × items), got shape {shape}")
        problem = None
        if getattr(G, "dtype", None) != self.dtype_:
            problem = f"its dtype is {getattr(G, 'dtype', type(G).__name__)}"
        elif not G.flags.c_contiguous:
            problem = "it is not C-contiguous"
        elif not G.flags.writeable:
            problem = "it is read-only"
        if problem:
            raise InputError(
                f"G is overwritten in place, so it must be a writable C-contiguous {self.dtype_.name} array "
                f"(the model's dtype), but {problem}: pass a copy, "
                f"np.array(G, dtype='{self.dtype_.name}', order='C')"
            )
        backend = self.backend_
        self.n_items_ = int(shape[0])
        G_dev = backend.to_device(G)
        needed = backend.workspace_bytes(self.n_items_, self.dtype_.itemsize)
        if needed > backend.free_memory():
            raise InsufficientMemoryError(
                f"the EASE solve of {self.n_items_:,} items",
                needed,
                backend.free_memory(),
                backend.memory_kind(),
            )
        with _FitSteps(backend, 2, show_progress) as steps:
            self._weights_from_gram(G_dev, steps)
        return self

    def _weights_from_gram(self, G: Any, steps: _FitSteps) -> None:
        """``G + λI`` → its inverse → ``B``, all in ``G``'s buffer, which becomes ``B_``."""
        backend = self.backend_
        backend.add_to_diagonal(G, float(self.l2))
        backend.spd_inverse_inplace(G)
        steps.done("inverse")
        backend.ease_weights_inplace(G)
        steps.done("weights")
        self.B_ = G
        self.fit_timings_ = steps.timings

    def _score_batch(self, X: Any, rows: np.ndarray) -> Any:
        return self.backend_.sparse_dense_matmul(X, self.B_)

    def _item_scores(self, item: int) -> Any:
        return self.B_[item]

    def _state(self) -> dict[str, Any]:
        return {"B": self.B_}

    def _set_state(self, arrays: dict[str, np.ndarray]) -> None:
        self.B_ = self.backend_.to_device(arrays["B"])
