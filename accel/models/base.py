"""The model contract: what one file in ``accel/models/`` provides, and the registry that lists it.

A model is a :class:`Recommender` subclass with its parameters in ``__init__``
(stored under the same names) and, as class attributes and methods:

* ``entry`` — its :class:`~accel.models.registry.Entry` in the registry: the command-line name, the
  benchmark's default parameters and the tuning search space. The command line,
  the benchmarks, tuning and :func:`load_model` all learn models from the registry;
  a class without an ``entry`` is still loadable but not offered by name.
* ``scoring`` — its scoring form: ``"dense"`` (``_dense_weights()`` gives a dense
  backend ``W``, n_items × n_items, and scores are ``X · W``) or ``"sparse"``
  (``_sparse_factors(X, columns, candidates)`` gives host CSR ``(A, W)`` with
  scores ``A · W``).
* ``_fit(X, show_progress)`` — learn from binary CSR ``X`` into attributes ending
  in ``_``. It runs on a fresh copy of the model that replaces the learned state
  only when the fit succeeds, so it may fail at any point.
* ``_item_scores(item)`` — how similar every item is to ``item`` (for
  ``similar_items``), or :class:`InputError` saying why the model has none;
  ``_item_vectors(items, top)`` — one row per item of what was learned about it
  (for the item map; the default refuses).
* ``_state()`` / ``_set_state(arrays)`` — the learned arrays by name, for the model
  folder (:mod:`accel.model_folder`) and the Dask workers.

Serving (batching, rows without items, filters, the popular fallback) is
:mod:`accel.serving`; the public calls here only delegate to it.
"""

from __future__ import annotations

import inspect
import os
from abc import ABC, abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, TypeVar, cast

import numpy as np
import scipy.sparse as sp

from accel import model_folder
from accel.backends import Backend, get_backend
from accel.errors import InputError, NotFittedError
from accel.model_folder import SavedModel
from accel.models.registry import CLASSES, Entry
from accel.serving import popular_fallback, topk
from accel.serving.filters import CandidateFilters
from accel.serving.popular_fallback import UnknownItems, UnknownUsers
from accel.validation import as_binary_csr, binary_matrix, check_dtype, storable_ids

if TYPE_CHECKING:
    from accel.data.interactions import Interactions
    from accel.serving.answers import LogAnswers

M = TypeVar("M", bound="Recommender")
DType = Literal["float32", "float64"]


class Recommender(ABC):
    """Base class: parameters in ``__init__``, learned state in attributes ending in ``_``."""

    #: Every concrete model class by class name (what :func:`load_model` reads).
    _registry: ClassVar[dict[str, type[Recommender]]] = CLASSES
    entry: ClassVar[Entry | None] = None
    scoring: ClassVar[topk.Scoring] = "dense"
    n_items_: int  # learned state: set by a successful fit or load only
    dtype_: np.dtype
    backend_: Backend
    popularity_: np.ndarray
    extras_: dict[str, np.ndarray]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if not inspect.isabstract(cls):
            Recommender._registry[cls.__name__] = cls

    def __init__(self, backend: str | Backend = "auto", dtype: DType = "float32") -> None:
        self.backend = backend
        self.dtype = dtype

    # ---- parameters ----------------------------------------------------------
    @classmethod
    def param_names(cls) -> list[str]:
        """The constructor's parameter names."""
        return [p for p in inspect.signature(cls.__init__).parameters if p != "self"]

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The constructor's parameters and their current values (as in scikit-learn)."""
        return {name: getattr(self, name) for name in self.param_names()}

    def set_params(self: M, **params: Any) -> M:
        """Set constructor parameters by name (as in scikit-learn); learned state is kept. Returns self."""
        names = self.param_names()
        for name, value in params.items():
            if name not in names:
                raise InputError(
                    f"{type(self).__name__} has no parameter {name!r}; it takes {', '.join(names)}"
                )
            setattr(self, name, value)
        return self

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({params})"

    # ---- what subclasses provide -----------------------------------------------
    @abstractmethod
    def _fit(self, X: sp.csr_matrix, show_progress: bool) -> None:
        """Learn from binary CSR ``X`` (users × items, host, values of ``self.dtype_``)."""

    def _dense_weights(self) -> Any:
        """Dense backend ``W`` (n_items × n_items) whose product ``X · W`` scores rows (dense scoring)."""
        raise NotImplementedError(f"{type(self).__name__} scores through sparse factors")

    def _sparse_factors(
        self, X: sp.csr_matrix, columns: np.ndarray | None, candidates: int | None
    ) -> tuple[sp.csr_matrix, sp.csr_matrix]:
        """Host CSR ``(A, W)`` whose product ``A · W`` scores the rows ``X`` (``scoring = "sparse"``).

        The top-k applies the filters itself; ``columns`` (the mask of allowed items) and ``candidates``
        (a number of best columns per row that surely fills every row's top-k) let a model shrink its factors.
        """
        raise NotImplementedError(f"{type(self).__name__} scores through dense weights")

    @abstractmethod
    def _item_scores(self, item: int) -> Any:
        """Vector (backend or host) of how similar every item is to ``item``."""

    def _item_vectors(self, items: np.ndarray, top: int | None = None) -> np.ndarray | sp.csr_matrix:
        """One host row per item of ``items``: what the model learned about it (the item map's input).

        ``top`` keeps only each row's ``top`` strongest entries, as a CSR. Models that
        learn nothing per item raise :class:`InputError`.
        """
        raise InputError(
            f"a {type(self).__name__} has no item-item weights to map: use EASE or ItemKNN "
            "(UserKNN and TopPopular learn nothing per item)"
        )

    @abstractmethod
    def _state(self) -> dict[str, Any]:
        """Learned arrays to save, by name (backend or NumPy arrays)."""

    @abstractmethod
    def _set_state(self, arrays: dict[str, np.ndarray]) -> None:
        """Restore learned arrays loaded from disk (NumPy, possibly memory-mapped)."""

    def _check_params(self) -> None:
        """Raise :class:`InputError` for invalid parameters (subclasses extend)."""

    # ---- fitting ----------------------------------------------------------------
    def fit(self: M, X: object, show_progress: bool = True) -> M:
        """Learn from interactions ``X`` (users × items; any non-zero counts as 1). Returns self.

        ``X`` may be an :class:`accel.data.Interactions`: the model then keeps its item ids
        (``extras_["item_ids"]``, saved with the model), so the log's ``recommend`` / ``similar_items``
        helpers can answer in those ids. A fit that fails leaves the model as it was (unfitted, or serving
        its old weights).
        """
        fitted, data = self._fresh(), cast(Any, X)
        item_ids = getattr(data, "item_ids", None)
        if item_ids is not None and callable(getattr(data, "matrix", None)):
            data = data.matrix()
        matrix = as_binary_csr(data, dtype=fitted.dtype_, allow_empty_rows=False)
        fitted.n_items_ = matrix.shape[1]
        fitted.popularity_ = np.bincount(matrix.indices, minlength=fitted.n_items_).astype(np.int64)
        fitted.extras_ = {} if item_ids is None else {"item_ids": storable_ids(item_ids)}
        fitted._fit(matrix, show_progress)
        return self._adopt(fitted)

    def _fresh(self: M) -> M:
        """A copy of this model's parameters with nothing learned but its dtype and backend."""
        fresh = clone(self)
        fresh.dtype_ = check_dtype(fresh.dtype)
        fresh._check_params()
        fresh.backend_ = get_backend(fresh.backend)
        return fresh

    def _adopt(self: M, fitted: M) -> M:
        """Replace all learned state by ``fitted``'s, at once (after its fit succeeded). Returns self."""
        fitted._check_scoring()
        params = set(self.param_names())
        for name in [n for n in vars(self) if n not in params]:
            delattr(self, name)
        for name, value in vars(fitted).items():
            if name not in params:
                setattr(self, name, value)
        return self

    def _check_fitted(self) -> None:  # n_items_ is set with every other learned attribute, or none
        if not hasattr(self, "n_items_"):
            raise NotFittedError(f"this {type(self).__name__} is not fitted yet: call fit(X) first")

    def _check_scoring(self) -> None:
        """Raise ``ValueError`` unless the scoring form has the shapes ``n_items_`` needs."""
        n = self.n_items_
        if self.scoring == "dense":
            shape = tuple(self._dense_weights().shape)
            if shape != (n, n):
                raise ValueError(f"the weights have shape {shape}, expected ({n}, {n})")
            return
        row = binary_matrix(np.zeros(1, dtype=np.int64), np.zeros(1, dtype=np.int64), (1, n), self.dtype_)
        A, W = self._sparse_factors(row, None, None)
        if A.shape[0] != 1 or A.shape[1] != W.shape[0] or W.shape[1] != n:
            raise ValueError(
                f"one user's factors have shapes {A.shape} and {W.shape}, expected (1, m) and (m, {n})"
            )

    def _popularity_ranking(self) -> np.ndarray:
        """The popular fallback's ranking of ``popularity_``, sorted once per fitted or loaded popularity."""
        cached = getattr(self, "_ranking_cache", None)
        if cached is None or cached[0] is not self.popularity_:
            ranking = popular_fallback.popularity_ranking(self.popularity_)
            cached = self._ranking_cache = (self.popularity_, ranking)
        return cached[1]

    # ---- serving (see accel.serving) ----------------------------------------------
    def recommend(
        self,
        X_rows: object,
        k: int = 10,
        *,
        exclude_seen: bool = True,
        batch_size: int | None = None,
        show_progress: bool = False,
        unknown_users: UnknownUsers = "popular",
        allowed_items: object = None,
        forbidden_items: object = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` items for each row of ``X_rows`` (users × items), best first.

        Returns NumPy ``(ids, scores)`` of shape (n_rows, k). With ``exclude_seen`` an item a row has
        interacted with is never returned; a row with fewer than ``k`` unseen items is padded with id ``-1``
        and score ``-inf``. Batches are sized from free memory unless ``batch_size`` is given; results do
        not depend on the batch size. A row with no interactions (a user the model knows nothing about) is
        handled as :meth:`fill_rows_without_items` says.

        ``allowed_items`` / ``forbidden_items`` restrict the candidates: item indices for every row, or a
        sparse rows × items matrix of each row's own items (see :mod:`accel.serving.filters`). Sparse models
        (KNN, TopPopular, pruned EASE) return only positive scores and pad the rest of a row.
        """
        self._check_fitted()
        return topk.recommend_rows(
            self,
            X_rows,
            k,
            exclude_seen,
            batch_size,
            show_progress,
            unknown_users,
            allowed_items,
            forbidden_items,
        )

    def fill_rows_without_items(
        self,
        empty: np.ndarray,
        ids: np.ndarray,
        scores: np.ndarray,
        unknown_users: UnknownUsers = "popular",
        filters: CandidateFilters = CandidateFilters(),  # noqa: B008 - immutable
    ) -> None:
        """Replace, in place, the results of the rows where ``empty`` is true (rows with no items),
        as :func:`accel.serving.popular_fallback.fill_rows_without_items` says."""
        popular_fallback.fill_rows_without_items(self, empty, ids, scores, unknown_users, filters)

    def recommend_from_items(
        self,
        items: list[int] | np.ndarray,
        k: int = 10,
        *,
        exclude_seen: bool = True,
        unknown_users: UnknownUsers = "popular",
        allowed_items: object = None,
        forbidden_items: object = None,
        unknown_items: UnknownItems = "drop",
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` for a new user who interacted with ``items`` (indices), without refitting.

        Indices outside the model are dropped with a warning (``unknown_items="error"``: refused);
        no items (left) as :meth:`fill_rows_without_items` says; filters as in :meth:`recommend`.
        """
        self._check_fitted()
        return topk.recommend_from_items(
            self, items, k, exclude_seen, unknown_users, allowed_items, forbidden_items, unknown_items
        )

    def similar_items(self, item: int, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` items most similar to ``item`` (the item itself excluded), best first."""
        self._check_fitted()
        return topk.similar_items(self, item, k)

    def in_log(self, inter: Interactions) -> LogAnswers:
        """This model's answers in the ids of interaction log ``inter`` (``Interactions.recommend`` etc.)."""
        from accel.serving.answers import LogAnswers  # pandas only when answers in ids are asked for

        self._check_fitted()
        return LogAnswers(self, inter)

    # ---- persistence (see accel.model_folder) ------------------------------------------
    def save(self, path: str | os.PathLike[str], extras: dict[str, np.ndarray] | None = None) -> Path:
        """Write the model to folder ``path``; readers see the old or the new model, never a mix.

        ``extras`` are further named arrays kept with the model (e.g. the item ids of the interaction log);
        they come back as ``model.extras_``. An existing ``path`` must be empty or hold a saved model: other
        folders are refused (:class:`InputError`) and left untouched. See :func:`accel.atomic.atomic_dir`.
        """
        self._check_fitted()
        return model_folder.save_folder(path, self._saved(extras))

    def _saved(self, extras: dict[str, np.ndarray] | None = None) -> SavedModel:
        """The learned state as host arrays, with the parameters and ``extras`` (default ``extras_``)."""
        backend = self.backend_
        arrays = {name: backend.to_host(a) for name, a in self._saved_state().items()}
        extras = dict(extras or getattr(self, "extras_", {}) or {})
        if "item_ids" in extras and np.shape(extras["item_ids"]) != (self.n_items_,):
            raise InputError(
                f"extras['item_ids'] has shape {np.shape(extras['item_ids'])} but the model has "
                f"{self.n_items_:,} items"
            )
        params = {k: v if not isinstance(v, Backend) else v.name for k, v in self.get_params().items()}
        return SavedModel(type(self).__name__, params, int(self.n_items_), arrays, extras)

    @classmethod
    def load(
        cls: type[M],
        path: str | os.PathLike[str],
        mmap: bool = True,
        backend: str | Backend | None = None,
        verify: bool | None = None,
    ) -> M:
        """Read a model saved by :meth:`save`; ``mmap`` maps its arrays instead of reading them.

        ``backend`` overrides the saved backend (e.g. a GPU-trained model on CPU); ``verify`` checks
        every array's checksum (default: unless memory-mapped and over 1 GiB). A save over ``path``
        meanwhile gives the old or the new model; a damaged folder raises :class:`InputError`.
        """
        return cls._from_saved(model_folder.read_folder(path, mmap, verify), backend, str(path))

    @classmethod
    def _from_saved(cls: type[M], saved: SavedModel, backend: str | Backend | None, where: str) -> M:
        """A fitted model from ``saved`` (read from ``where``, named in errors)."""
        saved_cls = Recommender._registry.get(saved.cls)
        if saved_cls is None:
            raise InputError(f"{where}: unknown model class {saved.cls!r} in {model_folder.META_FILE}")
        if cls is not Recommender and not issubclass(saved_cls, cls):
            raise InputError(f"{where} holds a {saved.cls}, not a {cls.__name__}")
        params = dict(saved.params)
        if backend is not None:
            params["backend"] = backend
        try:
            model = saved_cls(**params)
        except TypeError as exc:
            raise InputError(
                f"{where}: the parameters in {model_folder.META_FILE} do not fit {saved.cls}: {exc}"
            ) from None
        dtype = check_dtype(model.dtype)
        for name, array in saved.arrays.items():
            if array.dtype.kind == "f" and array.dtype != dtype:
                raise InputError(
                    f"{where}: {name}.npy holds {array.dtype} but {model_folder.META_FILE} says "
                    f"dtype {model.dtype}"
                )
        restored = clone(model)
        restored.dtype_ = dtype
        restored.backend_ = get_backend(model.backend)
        restored.n_items_ = saved.n_items
        restored.extras_ = dict(saved.extras)
        try:
            restored._restore_state(saved.arrays)
            return cast(M, model._adopt(restored))
        except (KeyError, ValueError, TypeError, IndexError) as exc:
            raise InputError(
                f"{where}: the saved arrays do not make a {saved.cls} of {saved.n_items:,} items "
                f"({type(exc).__name__}: {exc})"
            ) from None

    def _saved_state(self) -> dict[str, Any]:
        """The subclass's learned arrays plus the item popularity every model keeps."""
        popularity = getattr(self, "popularity_", None)
        return {**self._state(), **({} if popularity is None else {"popularity": popularity})}

    def _restore_state(self, arrays: dict[str, np.ndarray]) -> None:
        """Inverse of :meth:`_saved_state` (models saved before popularity was kept have none)."""
        self._set_state(arrays)
        if "popularity" in arrays:
            self.popularity_ = np.asarray(arrays["popularity"])


def clone(model: M) -> M:
    """A new, unfitted model with the same parameters (as scikit-learn's ``clone``)."""
    return type(model)(**model.get_params())


def load_model(
    path: str | os.PathLike[str],
    mmap: bool = True,
    backend: str | Backend | None = None,
    verify: bool | None = None,
) -> Recommender:
    """Load any saved accel model, whatever its class (as :meth:`Recommender.load`)."""
    return Recommender.load(path, mmap=mmap, backend=backend, verify=verify)
