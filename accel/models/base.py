"""One interface for every recommender: fit, recommend, similar items, save and load.

Subclasses say how to learn (``_fit``), how to score a batch of users
(``_score_batch``), how similar items are to one item (``_item_scores``) and
which arrays make up the learned state (``_state`` / ``_set_state``). Batching,
masking of seen items, top-k, input checks and the on-disk format live here once.
"""

from __future__ import annotations

import inspect
import json
import os
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import numpy as np
import scipy.sparse as sp
from tqdm.auto import tqdm

from accel.atomic import atomic_dir
from accel.backends import Backend, get_backend
from accel.errors import InputError, NotFittedError
from accel.models.filters import CandidateFilters
from accel.validation import as_interactions, binary_matrix, check_dtype, check_item_indices, check_k

FORMAT = "accel-model"
FORMAT_VERSION = 1
META_FILE = "model.json"
#: At most this share of free memory goes to one scoring batch (and at most ``backend.batch_bytes``).
_BATCH_MEMORY_SHARE = 0.25
#: Dense n_items-wide arrays alive per scored row (scores, a filter's copy, top-k scratch).
_ROW_COPIES = 3
#: Rows per batch of models scored by a sparse product (no dense row, so batches can be large).
_SPARSE_BATCH_ROWS = 65_536

M = TypeVar("M", bound="Recommender")


class Recommender(ABC):
    """Base class: parameters in ``__init__``, learned state in attributes ending in ``_``."""

    _registry: ClassVar[dict[str, type[Recommender]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if not inspect.isabstract(cls):
            Recommender._registry[cls.__name__] = cls

    def __init__(self, backend: str | Backend = "auto", dtype: str = "float32") -> None:
        self.backend = backend
        self.dtype = dtype

    # ---- parameters ----------------------------------------------------------
    def get_params(self) -> dict[str, Any]:
        """The constructor's parameters and their current values (as in scikit-learn)."""
        names = [p for p in inspect.signature(type(self).__init__).parameters if p != "self"]
        return {name: getattr(self, name) for name in names}

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({params})"

    # ---- what subclasses provide -----------------------------------------------
    @abstractmethod
    def _fit(self, X: sp.csr_matrix, show_progress: bool) -> None:
        """Learn from binary CSR ``X`` (users × items, host, values of ``self.dtype_``)."""

    @abstractmethod
    def _score_batch(self, X: Any, rows: np.ndarray) -> Any:
        """Dense backend scores (len(rows) × n_items) for the backend CSR rows ``X``.

        ``rows`` are the positions of these rows in the matrix given to ``recommend``.
        """

    def _sparse_factors(
        self, X: sp.csr_matrix, rows: np.ndarray, columns: np.ndarray | None, candidates: int | None
    ) -> tuple[sp.csr_matrix, sp.csr_matrix] | None:
        """Host CSR ``(A, W)`` whose product ``A · W`` scores the rows ``X``, or ``None`` to score densely.

        Sparse models return their factors so that serving never forms a dense
        row per user (see :meth:`accel.backends.Backend.sparse_topk`). ``columns``
        is the global mask of allowed items (apply it with :func:`restrict_columns`);
        ``candidates``, when given, is a number of best columns per row that is
        enough to fill every row's top-k.
        """
        return None

    @abstractmethod
    def _item_scores(self, item: int) -> Any:
        """Backend vector of how similar every item is to ``item``."""

    @abstractmethod
    def _state(self) -> dict[str, Any]:
        """Learned arrays to save, by name (backend or NumPy arrays)."""

    @abstractmethod
    def _set_state(self, arrays: dict[str, np.ndarray]) -> None:
        """Restore learned arrays loaded from disk (NumPy, possibly memory-mapped)."""

    # ---- fitting ----------------------------------------------------------------
    def fit(self: M, X: object, show_progress: bool = True) -> M:
        """Learn from interactions ``X`` (users × items; any non-zero counts as 1). Returns self."""
        self.dtype_ = check_dtype(self.dtype)
        self._check_params()
        X = as_interactions(X, dtype=self.dtype_, allow_empty_rows=False)
        self.backend_ = get_backend(self.backend)
        self.n_items_ = X.shape[1]
        self._fit(X, show_progress)
        return self

    def _check_params(self) -> None:
        """Raise :class:`InputError` for invalid parameters (subclasses extend)."""

    def _check_fitted(self) -> None:
        if not hasattr(self, "n_items_"):
            raise NotFittedError(f"this {type(self).__name__} is not fitted yet: call fit(X) first")

    # ---- recommending ------------------------------------------------------------
    def recommend(
        self,
        X_rows: object,
        k: int = 10,
        exclude_seen: bool = True,
        batch_size: int | None = None,
        show_progress: bool = False,
        *,
        allowed_items: object = None,
        forbidden_items: object = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` items for each row of ``X_rows`` (users × items), best first.

        Returns NumPy ``(ids, scores)`` of shape (n_rows, k). With ``exclude_seen``
        an item a row has interacted with is never returned; a row with fewer than
        ``k`` unseen items is padded with id ``-1`` and score ``-inf``. Batches are
        sized from free memory unless ``batch_size`` is given; results do not
        depend on the batch size.

        ``allowed_items`` / ``forbidden_items`` restrict the candidates: item
        indices for every row, or a sparse rows × items matrix of each row's own
        items (see :mod:`accel.models.filters`). Sparse models (KNN, TopPopular,
        pruned EASE) return only positive scores and pad the rest of a row.
        """
        self._check_fitted()
        X = as_interactions(X_rows, dtype=self.dtype_, n_items=self.n_items_, name="X_rows")
        k = check_k(k, self.n_items_)
        n_rows = X.shape[0]
        filters = CandidateFilters.resolve(allowed_items, forbidden_items, n_rows, self.n_items_)
        if batch_size is None:
            batch_size = self.default_batch_size()
        elif isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise InputError(f"batch_size must be a positive integer, got {batch_size!r}")
        ids = np.empty((n_rows, k), dtype=np.int64)
        scores = np.empty((n_rows, k), dtype=self.dtype_)
        starts = range(0, n_rows, batch_size)
        for start in tqdm(starts, desc="recommend", unit="batch", disable=None if show_progress else True):
            stop = min(start + batch_size, n_rows)
            ids[start:stop], scores[start:stop] = self._recommend_batch(
                X[start:stop], np.arange(start, stop), k, exclude_seen, filters.rows(start, stop)
            )
        return ids, scores

    def _recommend_batch(
        self,
        X_host: sp.csr_matrix,
        rows: np.ndarray,
        k: int,
        exclude_seen: bool,
        filters: CandidateFilters = CandidateFilters(),  # noqa: B008 - immutable
    ) -> tuple[np.ndarray, np.ndarray]:
        backend = self.backend_
        exclude = filters.exclusions(X_host if exclude_seen else None)
        candidates = None
        if filters.allowed is None:
            most_excluded = 0 if exclude is None else int(np.diff(exclude.indptr).max(initial=0))
            candidates = k + 1 + most_excluded
        factors = self._sparse_factors(X_host, rows, filters.columns, candidates)
        if factors is not None:
            ids, scores = backend.sparse_topk(*factors, k, exclude=exclude, include=filters.allowed)
            return ids, scores.astype(self.dtype_, copy=False)
        X_dev = backend.sparse_to_device(X_host, self.dtype_)
        batch_scores = self._score_batch(X_dev, rows)
        if exclude is not None:
            seen = X_dev if exclude is X_host else backend.sparse_to_device(exclude, self.dtype_)
            backend.mask_seen(batch_scores, seen)
        if filters.columns is not None:
            backend.mask_columns(batch_scores, np.flatnonzero(~filters.columns))
        if filters.allowed is not None:
            backend.keep_only(batch_scores, backend.sparse_to_device(filters.allowed, self.dtype_))
        ids, scores = backend.topk(batch_scores, k)
        if exclude_seen or filters.active:
            ids[np.isneginf(scores)] = -1
        return ids, scores

    def default_batch_size(self) -> int:
        """Rows per scoring batch that fit comfortably in the backend's free memory."""
        self._check_fitted()
        if type(self)._sparse_factors is not Recommender._sparse_factors:
            return _SPARSE_BATCH_ROWS
        budget = min(self.backend_.free_memory() * _BATCH_MEMORY_SHARE, self.backend_.batch_bytes)
        per_row = _ROW_COPIES * self.n_items_ * self.dtype_.itemsize
        return int(max(1, budget // per_row))

    def recommend_from_items(
        self,
        items: list[int] | np.ndarray,
        k: int = 10,
        exclude_seen: bool = True,
        *,
        allowed_items: object = None,
        forbidden_items: object = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` for a new user who interacted with ``items`` (indices), without refitting.

        ``allowed_items`` / ``forbidden_items`` are item indices, as in :meth:`recommend`.
        """
        self._check_fitted()
        items = check_item_indices(items, self.n_items_)
        k = check_k(k, self.n_items_)
        filters = CandidateFilters.resolve(allowed_items, forbidden_items, 1, self.n_items_)
        row = binary_matrix(np.zeros(items.size, dtype=np.int64), items, (1, self.n_items_), self.dtype_)
        ids, scores = self._recommend_batch(row, np.array([-1]), k, exclude_seen, filters)
        return ids[0], scores[0]

    def similar_items(self, item: int, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` items most similar to ``item`` (the item itself excluded), best first."""
        self._check_fitted()
        if np.ndim(item) != 0:
            raise InputError(f"similar_items takes one item index, got {item!r}")
        (item,) = check_item_indices(item, self.n_items_)
        k = check_k(k, self.n_items_ - 1)
        backend = self.backend_
        scores = self._item_scores(int(item)).reshape(1, -1).astype(self.dtype_, copy=True)
        seen = binary_matrix(np.array([0]), np.array([item]), (1, self.n_items_), self.dtype_)
        backend.mask_seen(scores, backend.sparse_to_device(seen, self.dtype_))
        ids, values = backend.topk(scores, k)
        return ids[0], values[0]

    # ---- persistence ----------------------------------------------------------------
    def save(self, path: str | os.PathLike[str], extras: dict[str, np.ndarray] | None = None) -> Path:
        """Write the model to folder ``path`` atomically (a temporary folder, then a rename).

        ``extras`` are further named arrays kept with the model (e.g. the item ids
        of the interaction log); they come back as ``model.extras_``.
        """
        self._check_fitted()
        backend = self.backend_
        arrays = {name: backend.to_host(a) for name, a in self._state().items()}
        extras = dict(extras or getattr(self, "extras_", {}) or {})
        meta = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "class": type(self).__name__,
            "params": {k: v if not isinstance(v, Backend) else v.name for k, v in self.get_params().items()},
            "n_items": int(self.n_items_),
            "arrays": sorted(arrays),
            "extras": sorted(extras),
        }
        with atomic_dir(path) as tmp:
            for name, array in arrays.items():
                np.save(tmp / f"{name}.npy", np.asarray(array), allow_pickle=False)
            for name, array in extras.items():
                np.save(tmp / f"extra.{name}.npy", np.asarray(array), allow_pickle=False)
            (tmp / META_FILE).write_text(json.dumps(meta, indent=2))
        return Path(path)

    @classmethod
    def load(
        cls: type[M], path: str | os.PathLike[str], mmap: bool = True, backend: str | Backend | None = None
    ) -> M:
        """Read a model saved by :meth:`save`; ``mmap`` maps its arrays instead of reading them.

        ``backend`` overrides the saved backend choice (e.g. load a GPU-trained model on CPU).
        """
        path = Path(path)
        meta_path = path / META_FILE
        if not meta_path.is_file():
            raise InputError(f"{path} is not a saved accel model (no {META_FILE})")
        meta = json.loads(meta_path.read_text())
        if meta.get("format") != FORMAT or meta.get("format_version") != FORMAT_VERSION:
            raise InputError(
                f"{path}: unsupported model format {meta.get('format')!r} v{meta.get('format_version')}"
            )
        saved_cls = Recommender._registry.get(meta["class"])
        if saved_cls is None:
            raise InputError(f"{path}: unknown model class {meta['class']!r}")
        if cls is not Recommender and not issubclass(saved_cls, cls):
            raise InputError(f"{path} holds a {meta['class']}, not a {cls.__name__}")
        params = dict(meta["params"])
        if backend is not None:
            params["backend"] = backend
        model = saved_cls(**params)
        mode = "r" if mmap else None
        arrays = {name: np.load(path / f"{name}.npy", mmap_mode=mode) for name in meta["arrays"]}
        model.extras_ = {name: np.load(path / f"extra.{name}.npy", mmap_mode=mode) for name in meta["extras"]}
        model.dtype_ = check_dtype(model.dtype)
        model.backend_ = get_backend(model.backend)
        model.n_items_ = int(meta["n_items"])
        model._set_state(arrays)
        return model


def restrict_columns(W: sp.csr_matrix, columns: np.ndarray | None) -> sp.csr_matrix:
    """``W`` without the entries of columns that ``columns`` (a boolean mask) does not allow."""
    if columns is None:
        return W
    W = sp.csr_matrix(W)
    keep = columns[W.indices]
    if keep.all():
        return W
    indptr = np.concatenate(([0], np.cumsum(keep)))[W.indptr]
    return sp.csr_matrix((W.data[keep], W.indices[keep], indptr), shape=W.shape)


def load_model(
    path: str | os.PathLike[str], mmap: bool = True, backend: str | Backend | None = None
) -> Recommender:
    """Load any saved accel model, whatever its class."""
    return Recommender.load(path, mmap=mmap, backend=backend)
