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
import re
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import numpy as np
import scipy.sparse as sp
from tqdm.auto import tqdm

from accel.atomic import atomic_dir, check_folder_destination, current_version
from accel.backends import Backend, get_backend
from accel.data.ids import storable_ids
from accel.errors import InputError, NotFittedError
from accel.models.filters import CandidateFilters
from accel.models.popularity import popularity_factors, popularity_ranking
from accel.validation import (
    as_interactions,
    binary_matrix,
    check_choice,
    check_dtype,
    check_item_indices,
    check_k,
    check_positive_int,
)

FORMAT = "accel-model"
FORMAT_VERSION = 1
META_FILE = "model.json"
#: What ``recommend`` does for a row with no items the model knows (a cold-start user).
UNKNOWN_USERS = ("popular", "skip", "error")
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

    def _dense_weights(self) -> Any:
        """Dense backend ``W`` (n_items × n_items) whose product ``X · W`` scores rows, for models
        without sparse factors (see :meth:`accel.backends.Backend.dense_topk`)."""
        raise NotImplementedError(f"{type(self).__name__} scores through sparse factors")

    def _sparse_factors(
        self, X: sp.csr_matrix, rows: np.ndarray, columns: np.ndarray | None, candidates: int | None
    ) -> tuple[sp.csr_matrix, sp.csr_matrix] | None:
        """Host CSR ``(A, W)`` whose product ``A · W`` scores the rows ``X``, or ``None`` to score densely.

        Sparse models return their factors so that serving never forms a dense
        row per user (see :meth:`accel.backends.Backend.sparse_topk`). The top-k
        applies the filters itself; ``columns`` (the global mask of allowed items)
        and ``candidates`` (a number of best columns per row that surely fills every
        row's top-k) let a model shrink its factors further.
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
        """Learn from interactions ``X`` (users × items; any non-zero counts as 1). Returns self.

        ``X`` may be an :class:`accel.data.Interactions`: the model then keeps its
        item ids (``extras_["item_ids"]``, saved with the model), so the log's
        ``recommend`` / ``similar_items`` helpers can answer in those ids.
        """
        self.dtype_ = check_dtype(self.dtype)
        self._check_params()
        item_ids = getattr(X, "item_ids", None)
        if item_ids is not None and callable(getattr(X, "matrix", None)):
            X = X.matrix()
        X = as_interactions(X, dtype=self.dtype_, allow_empty_rows=False)
        self.backend_ = get_backend(self.backend)
        self.n_items_ = X.shape[1]
        self.popularity_ = np.bincount(X.indices, minlength=self.n_items_).astype(np.int64)
        self.extras_ = {} if item_ids is None else {"item_ids": storable_ids(item_ids)}
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
        unknown_users: str = "popular",
        *,
        allowed_items: object = None,
        forbidden_items: object = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` items for each row of ``X_rows`` (users × items), best first.

        Returns NumPy ``(ids, scores)`` of shape (n_rows, k). With ``exclude_seen``
        an item a row has interacted with is never returned; a row with fewer than
        ``k`` unseen items is padded with id ``-1`` and score ``-inf``. Batches are
        sized from free memory unless ``batch_size`` is given; results do not
        depend on the batch size. A row with no interactions (a user the model
        knows nothing about) is handled as :meth:`fill_rows_without_items` says.

        ``allowed_items`` / ``forbidden_items`` restrict the candidates: item
        indices for every row, or a sparse rows × items matrix of each row's own
        items (see :mod:`accel.models.filters`). Sparse models (KNN, TopPopular,
        pruned EASE) return only positive scores and pad the rest of a row.
        """
        self._check_fitted()
        X = as_interactions(X_rows, dtype=self.dtype_, n_items=self.n_items_, name="X_rows")
        k = check_k(k, self.n_items_)
        unknown_users = check_choice("unknown_users", unknown_users, UNKNOWN_USERS)
        n_rows = X.shape[0]
        filters = CandidateFilters.resolve(allowed_items, forbidden_items, n_rows, self.n_items_)
        if batch_size is None:
            batch_size = self.default_batch_size()
        else:
            batch_size = check_positive_int("batch_size", batch_size)
        ids = np.empty((n_rows, k), dtype=np.int64)
        scores = np.empty((n_rows, k), dtype=self.dtype_)
        empty = np.diff(X.indptr) == 0
        if unknown_users == "error":  # refuse before any scoring
            self.fill_rows_without_items(empty, ids, scores, unknown_users)
        # Rows without items get their results from fill_rows_without_items: only the others are scored.
        rows = np.flatnonzero(~empty)
        if rows.size < n_rows:
            X, filters_scored = X[rows], filters.take(rows)
        else:
            filters_scored = filters
        starts = range(0, rows.size, batch_size)
        if show_progress:
            starts = tqdm(starts, desc="recommend", unit="batch", disable=None)
        for start in starts:
            batch = slice(start, min(start + batch_size, rows.size))
            whole = batch.stop - batch.start == X.shape[0]
            ids[rows[batch]], scores[rows[batch]] = self._recommend_batch(
                X if whole else X[batch],
                rows[batch],
                k,
                exclude_seen,
                filters_scored if whole else filters_scored.take(batch),
            )
        self.fill_rows_without_items(empty, ids, scores, unknown_users, filters)
        return ids, scores

    def fill_rows_without_items(
        self,
        empty: np.ndarray,
        ids: np.ndarray,
        scores: np.ndarray,
        unknown_users: str = "popular",
        filters: CandidateFilters = CandidateFilters(),  # noqa: B008 - immutable
    ) -> None:
        """Replace, in place, the results of the rows where ``empty`` is true (rows with no items).

        A model scores such a row 0 everywhere, so its top k would be arbitrary.
        ``"popular"`` gives it the training log's most interacted-with items, scored
        by their number of interactions, within ``filters`` (the same candidate
        filters as the scored rows, never an item nobody interacted with);
        ``"skip"`` pads it (id ``-1``, score ``-inf``);
        ``"error"`` raises :class:`InputError`.
        """
        rows = np.flatnonzero(empty)
        if rows.size == 0:
            return
        unknown_users = check_choice("unknown_users", unknown_users, UNKNOWN_USERS)
        if unknown_users == "error":
            raise InputError(
                f"{rows.size:,} of {len(empty):,} rows (the first is row {rows[0]}) have no items the model "
                "knows: pass unknown_users='popular' or 'skip'"
            )
        if unknown_users == "skip":
            ids[rows], scores[rows] = -1, -np.inf
            return
        popularity = getattr(self, "popularity_", None)
        if popularity is None:
            raise InputError(
                "this model was saved without item popularity, so rows with no known items cannot get "
                "popular items: refit it, or pass unknown_users='skip'"
            )
        k, chosen = ids.shape[1], filters.take(rows)
        factors = popularity_factors(
            popularity,
            self._popularity_ranking(),
            rows.size,
            chosen.columns,
            chosen.candidates(k, chosen.forbidden),
            self.dtype_,
        )
        ids[rows], scores[rows] = self.backend_.sparse_topk(
            *factors, k, exclude=chosen.forbidden, include=chosen.include()
        )

    def _popularity_ranking(self) -> np.ndarray:
        """:func:`popularity_ranking` of ``popularity_``, sorted once per fitted or loaded popularity."""
        cached = getattr(self, "_ranking_cache", None)
        if cached is None or cached[0] is not self.popularity_:
            cached = self._ranking_cache = (self.popularity_, popularity_ranking(self.popularity_))
        return cached[1]

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
        include = filters.include()
        factors = self._sparse_factors(X_host, rows, filters.columns, filters.candidates(k, exclude))
        if factors is not None:
            ids, scores = backend.sparse_topk(*factors, k, exclude=exclude, include=include)
            return ids, scores.astype(self.dtype_, copy=False)
        return backend.dense_topk(X_host, self._dense_weights(), k, exclude=exclude, include=include)

    def default_batch_size(self) -> int:
        """Rows per scoring batch that fit comfortably in the backend's free memory."""
        self._check_fitted()
        if type(self)._sparse_factors is not Recommender._sparse_factors:
            return _SPARSE_BATCH_ROWS
        return self.backend_.dense_batch_rows(self.n_items_, self.dtype_.itemsize)

    def recommend_from_items(
        self,
        items: list[int] | np.ndarray,
        k: int = 10,
        exclude_seen: bool = True,
        unknown_users: str = "popular",
        *,
        allowed_items: object = None,
        forbidden_items: object = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` for a new user who interacted with ``items`` (indices), without refitting.

        No items at all is handled as :meth:`fill_rows_without_items` says;
        ``allowed_items`` / ``forbidden_items`` are item indices, as in :meth:`recommend`.
        """
        self._check_fitted()
        items = check_item_indices(items, self.n_items_)
        k = check_k(k, self.n_items_)
        unknown_users = check_choice("unknown_users", unknown_users, UNKNOWN_USERS)
        filters = CandidateFilters.resolve(allowed_items, forbidden_items, 1, self.n_items_)
        row = binary_matrix(np.zeros(items.size, dtype=np.int64), items, (1, self.n_items_), self.dtype_)
        ids, scores = self._recommend_batch(row, np.array([-1]), k, exclude_seen, filters)
        self.fill_rows_without_items(np.array([items.size == 0]), ids, scores, unknown_users, filters)
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
        """Write the model to folder ``path``; readers see the old or the new model, never a mix.

        ``extras`` are further named arrays kept with the model (e.g. the item ids
        of the interaction log); they come back as ``model.extras_``. An existing
        ``path`` must be empty or hold a saved model: other folders are refused
        (:class:`InputError`) and left untouched. See :func:`accel.atomic.atomic_dir`.
        """
        self._check_fitted()
        backend = self.backend_
        arrays = {name: backend.to_host(a) for name, a in self._saved_state().items()}
        extras = dict(extras or getattr(self, "extras_", {}) or {})
        if "item_ids" in extras and np.shape(extras["item_ids"]) != (self.n_items_,):
            raise InputError(
                f"extras['item_ids'] has shape {np.shape(extras['item_ids'])} but the model has "
                f"{self.n_items_:,} items"
            )
        files = {f"{name}.npy": a for name, a in arrays.items()}
        files.update({f"extra.{name}.npy": a for name, a in extras.items()})
        for name in files:
            _check_file_name(name)
        meta = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "class": type(self).__name__,
            "params": {k: v if not isinstance(v, Backend) else v.name for k, v in self.get_params().items()},
            "n_items": int(self.n_items_),
            "arrays": sorted(arrays),
            "extras": sorted(extras),
            "files": {},
        }
        with atomic_dir(check_model_destination(path), legacy=saved_model_files) as tmp:
            for name, array in files.items():
                array = np.asarray(array)
                np.save(tmp / name, array, allow_pickle=False)
                meta["files"][name] = {
                    "shape": list(array.shape),
                    "dtype": array.dtype.str,
                    "bytes": (tmp / name).stat().st_size,
                }
            (tmp / META_FILE).write_text(json.dumps(meta, indent=2))
        return Path(path)

    @classmethod
    def load(
        cls: type[M], path: str | os.PathLike[str], mmap: bool = True, backend: str | Backend | None = None
    ) -> M:
        """Read a model saved by :meth:`save`; ``mmap`` maps its arrays instead of reading them.

        ``backend`` overrides the saved backend choice (e.g. load a GPU-trained model on CPU).
        A save over ``path`` while this runs gives the old or the new model. A damaged
        folder raises :class:`InputError` naming the file and what is wrong with it.
        """
        path = Path(path)
        for _ in range(_LOAD_ATTEMPTS):
            version = current_version(path)
            try:
                model = cls._load_version(path, version, mmap, backend)
            except (InputError, OSError):
                if current_version(path) != version:
                    continue  # replaced while reading: read the new one
                raise
            if current_version(path) == version:
                return model
        raise InputError(f"{path} was replaced {_LOAD_ATTEMPTS} times while being read; try again")

    @classmethod
    def _load_version(cls: type[M], path: Path, folder: Path, mmap: bool, backend: str | Backend | None) -> M:
        meta = _read_meta(path, folder)
        saved_cls = Recommender._registry.get(meta["class"])
        if saved_cls is None:
            raise InputError(f"{path}: unknown model class {meta['class']!r} in {META_FILE}")
        if cls is not Recommender and not issubclass(saved_cls, cls):
            raise InputError(f"{path} holds a {meta['class']}, not a {cls.__name__}")
        params = dict(meta["params"])
        if backend is not None:
            params["backend"] = backend
        try:
            model = saved_cls(**params)
        except TypeError as exc:
            raise InputError(
                f"{path}: the parameters in {META_FILE} do not fit {meta['class']}: {exc}"
            ) from None
        model.dtype_ = check_dtype(model.dtype)
        arrays = {n: _load_array(path, folder, f"{n}.npy", meta, mmap) for n in meta["arrays"]}
        model.extras_ = {n: _load_array(path, folder, f"extra.{n}.npy", meta, mmap) for n in meta["extras"]}
        for name, array in arrays.items():
            if array.dtype.kind == "f" and array.dtype != model.dtype_:
                raise InputError(
                    f"{path / f'{name}.npy'} holds {array.dtype} but {META_FILE} says dtype {model.dtype}"
                )
        model.backend_ = get_backend(model.backend)
        model.n_items_ = meta["n_items"]
        try:
            model._restore_state(arrays)
            model._check_loaded()
        except (KeyError, ValueError, TypeError, IndexError) as exc:
            raise InputError(
                f"{path}: the saved arrays do not make a {meta['class']} of {meta['n_items']:,} items "
                f"({type(exc).__name__}: {exc})"
            ) from None
        item_ids = model.extras_.get("item_ids")
        if item_ids is not None and item_ids.shape != (meta["n_items"],):
            raise InputError(
                f"{path / 'extra.item_ids.npy'} has shape {item_ids.shape} but the model has "
                f"{meta['n_items']:,} items"
            )
        return model

    def _check_loaded(self) -> None:
        """Score one user with item 0: the learned arrays must give ``n_items_`` scores."""
        row = binary_matrix(
            np.zeros(1, dtype=np.int64), np.zeros(1, dtype=np.int64), (1, self.n_items_), self.dtype_
        )
        scores = self._score_batch(self.backend_.sparse_to_device(row, self.dtype_), np.array([-1]))
        if tuple(scores.shape) != (1, self.n_items_):
            raise ValueError(
                f"one user's scores have shape {tuple(scores.shape)}, expected (1, {self.n_items_})"
            )

    def _saved_state(self) -> dict[str, Any]:
        """The subclass's learned arrays plus the item popularity every model keeps."""
        popularity = getattr(self, "popularity_", None)
        return {**self._state(), **({} if popularity is None else {"popularity": popularity})}

    def _restore_state(self, arrays: dict[str, np.ndarray]) -> None:
        """Inverse of :meth:`_saved_state` (models saved before popularity was kept have none)."""
        self._set_state(arrays)
        if "popularity" in arrays:
            self.popularity_ = np.asarray(arrays["popularity"])


#: How often :meth:`Recommender.load` re-reads a folder that other processes keep replacing.
_LOAD_ATTEMPTS = 50
_FILE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*\.npy")


def _check_file_name(name: str) -> str:
    if not _FILE_NAME.fullmatch(name):
        raise InputError(f"cannot save an array as {name!r}: use letters, digits, '_', '-' and '.'")
    return name


def _read_meta(path: Path, folder: Path) -> dict[str, Any]:
    """``model.json`` of version ``folder`` of ``path``, checked for the keys and types loading needs."""
    if not (folder / META_FILE).is_file():
        raise InputError(f"{path} is not a saved accel model (no {META_FILE})")
    meta_path = path / META_FILE  # named as the user sees it
    try:
        meta = json.loads((folder / META_FILE).read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{meta_path} is not valid JSON ({exc})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise InputError(f"{meta_path} does not describe an accel model")
    if meta.get("format_version") != FORMAT_VERSION:
        raise InputError(f"{path}: unsupported model format {FORMAT!r} v{meta.get('format_version')}")
    expected = {"class": (str, "a string"), "params": (dict, "an object"), "n_items": (int, "an integer")}
    expected.update(arrays=(list, "a list"), extras=(list, "a list"))
    for key, (kind, words) in expected.items():
        if not isinstance(meta.get(key), kind) or isinstance(meta.get(key), bool):
            raise InputError(f"{meta_path}: {key!r} is missing or not {words}")
    if meta["n_items"] < 1:
        raise InputError(f"{meta_path}: n_items must be positive, got {meta['n_items']}")
    if not isinstance(meta.get("files", {}), dict):
        raise InputError(f"{meta_path}: 'files' is not an object")
    for name in meta["arrays"] + meta["extras"]:
        if not isinstance(name, str) or not _FILE_NAME.fullmatch(f"{name}.npy"):
            raise InputError(f"{meta_path}: {name!r} is not an array name")
    return meta


def _load_array(path: Path, folder: Path, name: str, meta: dict[str, Any], mmap: bool) -> np.ndarray:
    """Array file ``name`` of version ``folder`` of ``path``, checked against its header and model.json."""
    source, file = folder / name, path / name  # the file read, and its name as the user sees it
    try:
        with open(source, "rb") as f:
            version = np.lib.format.read_magic(f)
            read_header = (
                np.lib.format.read_array_header_1_0
                if version == (1, 0)
                else np.lib.format.read_array_header_2_0
            )
            shape, _, dtype = read_header(f)
            data_start = f.tell()
    except FileNotFoundError:
        raise InputError(f"{file} is missing") from None
    except (ValueError, EOFError) as exc:
        raise InputError(f"{file} is not a NumPy array file ({exc})") from None
    if dtype.hasobject:
        raise InputError(f"{file} holds Python objects, which accel never saves")
    size = source.stat().st_size
    expected_size = data_start + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if size != expected_size:
        raise InputError(
            f"{file} is {size:,} bytes but its header needs {expected_size:,}: it is truncated or damaged"
        )
    recorded = meta.get("files", {}).get(name)
    if recorded is not None and not isinstance(recorded, dict):
        raise InputError(f"{path / META_FILE}: the entry for {name} is not an object")
    if recorded is not None:
        found = {"shape": list(shape), "dtype": dtype.str, "bytes": size}
        for key, value in found.items():
            if recorded.get(key) != value:
                raise InputError(f"{file} has {key} {value} but {META_FILE} records {recorded.get(key)}")
    try:
        return np.load(source, mmap_mode="r" if mmap else None, allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise InputError(f"{file} cannot be read ({exc})") from None


def check_model_destination(path: str | os.PathLike[str]) -> Path:
    """Raise :class:`InputError` unless a model can be saved to ``path`` (run it before fitting).

    ``path`` may be missing, empty or a saved model; any other folder is refused.
    """
    return check_folder_destination(path, "the model", saved_model_files)


def saved_model_files(folder: Path) -> set[str] | None:
    """The files a model saved in unversioned ``folder`` consists of, or ``None`` if it holds none."""
    try:
        meta = json.loads((folder / META_FILE).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        return None
    names = {META_FILE}
    names.update(f"{n}.npy" for n in meta.get("arrays", []) if isinstance(n, str))
    names.update(f"extra.{n}.npy" for n in meta.get("extras", []) if isinstance(n, str))
    return names


def load_model(
    path: str | os.PathLike[str], mmap: bool = True, backend: str | Backend | None = None
) -> Recommender:
    """Load any saved accel model, whatever its class."""
    return Recommender.load(path, mmap=mmap, backend=backend)
