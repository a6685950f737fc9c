"""EASE (Steck 2019): a closed-form item-item model, fitted exactly in one n² buffer."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp
from tqdm.auto import tqdm

from accel.backends import Backend, get_backend
from accel.errors import InputError, InsufficientMemoryError
from accel.models.base import DType, Recommender
from accel.models.item_item import SparseItemItem
from accel.models.registry import Entry, Range
from accel.validation import check_dtype, check_nonnegative, check_threads, storable_ids

#: Columns of B pruned at a time (the block's |values| and ranking are temporaries).
_PRUNE_COLUMNS = 256
#: Bytes of B's columns brought to the host at a time for item vectors.
_VECTOR_BYTES = 1 << 28
#: The default L2 penalty λ (Steck's experiments use hundreds to thousands).
DEFAULT_L2 = 500.0
#: λ range searched by tuning (log scale).
L2_RANGE = Range(1.0, 1e5, log=True)


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

    def block(self, done: int, total: int) -> None:
        """One block of the inverse finished: the inverse step counts ``total`` more ticks of the bar."""
        if done == 1:
            self.bar.total += total
            self.bar.set_postfix_str("inverse")
        self.bar.update()

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
    tf32:
        Off by default. ``True`` runs the matrix products of the GPU inverse (cuBLAS trsm,
        syrk and GEMM) on TF32 tensor cores, trading precision for speed: a probe of the same
        algorithm on an H100 ran 2× faster at 100k items with a relative error of the inverse
        of 2e-4 to 5e-4, so near-tied items may swap places in a top-k. The CPU backend has
        no TF32 and computes exactly either way.
    n_threads:
        Threads of the CPU backend's fit and scoring, its own thread pool and the BLAS library's
        together (never stacked). ``None`` (default): the cores this process may use, or on a Dask
        worker the worker's thread count. The GPU backend ignores it.
    """

    entry = Entry(
        "ease",
        variants={"": {"l2": DEFAULT_L2}},
        spaces={"": {"l2": L2_RANGE}},
        per_backend=True,
        dask_row=True,
        bench_order=0,
    )

    def __init__(
        self,
        l2: float = DEFAULT_L2,
        backend: str | Backend = "auto",
        dtype: DType = "float32",
        tf32: bool = False,
        n_threads: int | None = None,
    ) -> None:
        super().__init__(backend=backend, dtype=dtype)
        self.l2 = l2
        self.tf32 = tf32
        self.n_threads = n_threads

    def _check_params(self) -> None:
        check_nonnegative("l2", self.l2)
        check_threads(self.n_threads)
        if not isinstance(self.tf32, (bool, np.bool_)):
            raise InputError(f"tf32 must be True or False, got {self.tf32!r}")

    @staticmethod
    def memory_required(
        n_items: int, dtype: str = "float32", backend: str | Backend = "numpy", n_interactions: int = 0
    ) -> int:
        """The least memory an ``n_items`` fit of ``n_interactions`` needs beyond the input matrix (and
        its transpose): one n² buffer plus the backend's smallest workspace, in bytes.

        A fit is refused when less than this (plus the input) is free. On a GPU the Gram step
        grows its blocks into whatever else is free, so its memory pool may hold more than
        this during the Gram; the inverse then needs only this.
        """
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

    def _fresh(self) -> EASE:
        fresh = super()._fresh()
        fresh.backend_ = fresh.backend_.with_threads(self.n_threads)
        if self.tf32:
            fresh.backend_ = fresh.backend_.with_math_mode("tf32")
        return fresh

    def _fit(self, X: sp.csr_matrix, show_progress: bool) -> None:
        backend = self.backend_
        self._check_memory(X)
        with _FitSteps(backend, 3, show_progress) as steps:
            X_dev = backend.sparse_to_device(X, self.dtype_)
            G = backend.empty((self.n_items_, self.n_items_), self.dtype_)
            backend.gram(X_dev, out=G)
            del X_dev
            steps.done("gram")
            self._weights_from_gram(G, steps, cooccurring=bool((np.diff(X.indptr) >= 2).any()))

    def fit_gram(
        self, G: Any, show_progress: bool = True, item_ids: Sequence[object] | np.ndarray | None = None
    ) -> EASE:
        """Learn from a precomputed Gram matrix ``G = XᵀX`` (n_items × n_items), e.g. from
        :func:`accel.distributed.gram_from_parquet`, without the interaction log. Returns self.

        ``G`` is worked on in place and becomes ``B_``: pass a C-contiguous array of
        the model's dtype (a NumPy array for the CPU backend; on the GPU it is copied
        to the device once) and do not use it afterwards. Only the solver's workspace
        is allocated besides it. ``item_ids`` (one per column of ``G``) are kept with
        the model as :meth:`fit` keeps an ``Interactions``' ids.
        """
        fitted = self._fresh()
        shape = getattr(G, "shape", None)
        if shape is None or len(shape) != 2 or shape[0] != shape[1] or shape[0] == 0:
            raise InputError(f"G must be a non-empty square matrix (items × items), got shape {shape}")
        problem = None
        if getattr(G, "dtype", None) != fitted.dtype_:
            problem = f"its dtype is {getattr(G, 'dtype', type(G).__name__)}"
        elif not G.flags.c_contiguous:
            problem = "it is not C-contiguous"
        elif not G.flags.writeable:
            problem = "it is read-only"
        if problem:
            raise InputError(
                f"G is overwritten in place, so it must be a writable C-contiguous {fitted.dtype_.name} "
                f"array (the model's dtype), but {problem}: pass a copy, "
                f"np.array(G, dtype='{fitted.dtype_.name}', order='C')"
            )
        if item_ids is not None and len(item_ids) != shape[0]:
            raise InputError(f"item_ids has {len(item_ids):,} ids but G has {shape[0]:,} columns")
        fitted.extras_ = {} if item_ids is None else {"item_ids": storable_ids(item_ids)}
        backend = fitted.backend_
        fitted.n_items_ = int(shape[0])
        G_dev = backend.to_device(G)
        needed = backend.workspace_bytes(fitted.n_items_, fitted.dtype_.itemsize)
        if needed > backend.free_memory():
            raise InsufficientMemoryError(
                f"the EASE solve of {fitted.n_items_:,} items",
                needed,
                backend.free_memory(),
                backend.memory_kind(),
            )
        # diag(XᵀX) is each item's number of users: the popularity kept for cold-start users.
        fitted.popularity_ = np.rint(backend.diagonal(G_dev)).astype(np.int64)
        cooccurring = float(G_dev.sum(dtype=np.float64)) > float(fitted.popularity_.sum())
        with _FitSteps(backend, 2, show_progress) as steps:
            fitted._weights_from_gram(G_dev, steps, cooccurring)
        return self._adopt(fitted)

    def _weights_from_gram(self, G: Any, steps: _FitSteps, cooccurring: bool) -> None:
        """``G + λI`` → its inverse → ``B``, all in ``G``'s buffer, which becomes ``B_``.

        Raises :class:`InputError` when λ is too small for ``G + λI`` to be invertible,
        or so large that every weight of ``B`` rounds to 0 (``cooccurring``: some user
        has two or more items, so a usable ``B`` is not all zero).
        """
        backend = self.backend_
        backend.add_to_diagonal(G, float(self.l2))
        try:
            backend.spd_inverse_inplace(G, on_block=steps.block)
        except np.linalg.LinAlgError:
            raise InputError(
                f"l2={self.l2:g} is too small: XᵀX + l2·I is singular in {self.dtype_.name} (items that "
                "always occur together, or more items than users, make XᵀX singular); use a larger l2, "
                "e.g. 1 or more (Steck uses hundreds)"
            ) from None
        steps.done("inverse")
        backend.ease_weights_inplace(G)
        steps.done("weights")
        if cooccurring and not bool(G.any()):
            raise InputError(
                f"l2={self.l2:g} is too large: every weight of B underflowed to 0 in {self.dtype_.name}, "
                "so the model would recommend arbitrary items; use a smaller l2 (Steck uses hundreds "
                "to thousands)"
            )
        self.B_ = G
        self.fit_timings_ = steps.timings

    def _dense_weights(self) -> Any:
        return self.B_

    def _item_scores(self, item: int) -> Any:
        return self.B_[item]

    def _item_vectors(self, items: np.ndarray, top: int | None = None) -> np.ndarray | sp.csr_matrix:
        # Column j of B: the weights of the items that lead to item j.
        if top is None:
            return np.asarray(self.backend_.to_host(self.B_[:, items])).T
        block = max(
            1, _VECTOR_BYTES // (self.B_.dtype.itemsize * self.n_items_)
        )  # columns on the host at once
        return strongest_in_columns(self.B_, top, self.backend_, items, block=block)

    def _state(self) -> dict[str, Any]:
        return {"B": self.B_}

    def _set_state(self, arrays: dict[str, np.ndarray]) -> None:
        check_threads(self.n_threads)
        self.backend_ = self.backend_.with_threads(self.n_threads)
        self.B_ = self.backend_.to_device(arrays["B"])

    def prune(self, density: float = 0.05) -> PrunedEASE:
        """A :class:`PrunedEASE` keeping, in each column of ``B``, its largest-magnitude entries.

        Column ``j`` of ``B`` holds the weights of the items that lead to item ``j``;
        ``ceil(density · n_items)`` of them are kept. The result has sparse weights,
        is saved sparse (about ``density`` of the dense size, plus indices) and is
        served by the sparse top-k, on CPUs or Dask workers without the n² matrix.
        """
        self._check_fitted()
        pruned = PrunedEASE(
            l2=self.l2,
            density=density,
            backend=self.backend,
            dtype=self.dtype,
            tf32=self.tf32,
            n_threads=self.n_threads,
        )
        fitted = pruned._fresh()
        fitted.backend_, fitted.n_items_ = self.backend_, self.n_items_
        fitted._set_weights(prune_columns(self.B_, density, self.backend_))
        fitted.extras_ = dict(getattr(self, "extras_", {}) or {})
        if hasattr(self, "popularity_"):
            fitted.popularity_ = self.popularity_
        return pruned._adopt(fitted)


def prune_columns(B: Any, density: float, backend: Backend) -> sp.csr_matrix:
    """CSR keeping the ``ceil(density · n)`` largest-magnitude entries of each column of ``B``."""
    n_rows = B.shape[0]
    keep = max(1, min(n_rows, int(np.ceil(density * n_rows))))
    S = strongest_in_columns(B, keep, backend).T.tocsr()
    S.eliminate_zeros()
    return S


def strongest_in_columns(
    B: Any, keep: int, backend: Backend, columns: np.ndarray | None = None, block: int = _PRUNE_COLUMNS
) -> sp.csr_matrix:
    """One row per column of ``B`` (``columns``, default all) holding its ``keep`` largest-magnitude entries.

    ``B`` is a backend array, brought to the host ``block`` columns at a time (a
    GPU-fitted model never needs n² of host memory). Ties at the cut go to the
    lower row (a stable order), so the result is reproducible.
    """
    n_rows = B.shape[0]
    columns = np.arange(B.shape[1]) if columns is None else np.asarray(columns)
    keep = min(keep, n_rows)
    rows, values = [], []
    for start in range(0, columns.size, block):
        part = np.asarray(backend.to_host(B[:, columns[start : start + block]]))
        magnitude = np.abs(part)
        if keep < n_rows:
            top = np.argpartition(-magnitude, keep - 1, axis=0)[:keep]
            kth = np.take_along_axis(magnitude, top, axis=0).min(axis=0)
            tied = np.nonzero((magnitude >= kth).sum(axis=0) > keep)[0]
            if tied.size:
                top[:, tied] = np.argsort(-magnitude[:, tied], axis=0, kind="stable")[:keep]
        else:
            top = np.broadcast_to(np.arange(n_rows)[:, None], part.shape)
        rows.append(top.T.ravel())
        values.append(np.take_along_axis(part, top, axis=0).T.ravel())
    indptr = np.arange(0, columns.size * keep + 1, keep)
    S = sp.csr_matrix((np.concatenate(values), np.concatenate(rows), indptr), shape=(columns.size, n_rows))
    S.sort_indices()
    return S


class PrunedEASE(SparseItemItem):
    """EASE with sparse weights: each column of ``B`` keeps its ``density`` largest-magnitude entries.

    ``fit`` fits a dense :class:`EASE` (same ``l2``, one n² buffer) and prunes it;
    :meth:`EASE.prune` does the same for a model already fitted (e.g. on a GPU).
    Scoring uses the sparse top-k, so only positive scores are returned (a row
    with fewer than ``k`` is padded with ``-1`` / ``-inf``).

    Parameters
    ----------
    l2, backend, dtype, tf32, n_threads:
        As for :class:`EASE`.
    density:
        The share of each column of ``B`` kept, in (0, 1]; 0.05 keeps 5%.
    """

    def __init__(
        self,
        l2: float = DEFAULT_L2,
        density: float = 0.05,
        backend: str | Backend = "auto",
        dtype: DType = "float32",
        tf32: bool = False,
        n_threads: int | None = None,
    ) -> None:
        super().__init__(backend=backend, dtype=dtype)
        self.l2 = l2
        self.density = density
        self.tf32 = tf32
        self.n_threads = n_threads

    def _check_params(self) -> None:
        check_nonnegative("l2", self.l2)
        check_density(self.density)
        check_threads(self.n_threads)

    def _fresh(self) -> PrunedEASE:
        fresh = super()._fresh()
        fresh.backend_ = fresh.backend_.with_threads(self.n_threads)
        return fresh

    def _item_vectors(self, items: np.ndarray, top: int | None = None) -> sp.csr_matrix:
        return sp.csr_matrix(self.S_[:, items].T)  # B's columns, pruned: the items that lead to each item

    def _fit(self, X: sp.csr_matrix, show_progress: bool) -> None:
        dense = EASE(
            l2=self.l2, backend=self.backend_, dtype=self.dtype, tf32=self.tf32, n_threads=self.n_threads
        )
        dense.fit(X, show_progress=show_progress)
        self._set_weights(prune_columns(dense.B_, self.density, self.backend_))
        self.fit_timings_ = dense.fit_timings_


def check_density(density: object) -> float:
    """``density`` as a float in (0, 1], or :class:`InputError`."""
    if (
        isinstance(density, bool)
        or not isinstance(density, (int, float, np.integer, np.floating))
        or not 0 < density <= 1
    ):
        raise InputError(f"density must be a number in (0, 1] (the share of B kept), got {density!r}")
    return float(density)
