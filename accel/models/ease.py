"""EASE (Steck 2019): a closed-form item-item model, fitted exactly in one n² buffer."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import scipy.sparse as sp
from tqdm.auto import tqdm

from accel.backends import Backend, get_backend
from accel.errors import InsufficientMemoryError
from accel.models.base import Recommender
from accel.validation import check_dtype, check_nonnegative


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
    def memory_required(n_items: int, dtype: str = "float32", backend: str | Backend = "numpy") -> int:
        """Peak bytes an ``n_items`` fit needs beyond the input matrix: one n² buffer plus workspace."""
        itemsize = check_dtype(dtype).itemsize
        return int(n_items) ** 2 * itemsize + get_backend(backend).workspace_bytes(int(n_items), itemsize)

    def _check_memory(self, X: sp.csr_matrix) -> None:
        backend = self.backend_
        x_bytes = X.data.nbytes + X.indices.nbytes + X.indptr.nbytes
        needed = self.memory_required(self.n_items_, self.dtype_.name, backend) + x_bytes
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
        timings: dict[str, float] = {}
        steps = tqdm(total=3, desc="EASE fit", unit="step", disable=None if show_progress else True)

        def timed(name: str, start: float) -> float:
            backend.synchronize()
            now = time.perf_counter()
            timings[name] = now - start
            steps.set_postfix_str(name)
            steps.update()
            return now

        with steps:
            t = time.perf_counter()
            X_dev = backend.sparse_to_device(X, self.dtype_)
            G = backend.empty((self.n_items_, self.n_items_), self.dtype_)
            backend.gram(X_dev, out=G)
            del X_dev
            t = timed("gram", t)
            backend.add_to_diagonal(G, float(self.l2))
            backend.spd_inverse_inplace(G)
            t = timed("inverse", t)
            backend.ease_weights_inplace(G)
            timed("weights", t)
        self.B_ = G
        self.fit_timings_ = timings

    def _score_batch(self, X: Any, rows: np.ndarray) -> Any:
        return self.backend_.sparse_dense_matmul(X, self.B_)

    def _item_scores(self, item: int) -> Any:
        return self.B_[item]

    def _state(self) -> dict[str, Any]:
        return {"B": self.B_}

    def _set_state(self, arrays: dict[str, np.ndarray]) -> None:
        self.B_ = self.backend_.to_device(arrays["B"])
