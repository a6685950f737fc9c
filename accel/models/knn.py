"""Item-item and user-user nearest-neighbour recommenders over similaripy 0.7 similarities.

Orientation. similaripy computes ``S = f(M1, M2)`` row by row and keeps each
row's top ``k`` columns. :class:`ItemKNN` passes ``M1 = Xᵀ`` (items × users), so
row ``i`` of ``S`` holds item ``i``'s ``k`` nearest items, and scores ``X · S``:
``score(u, j) = Σ_{i seen by u} S[i, j]``, each seen item voting for its own
neighbours. RP3β divides by the popularity of ``S``'s *column* item, so here it
penalises the candidate being recommended. (similaripy's tutorial multiplies by
``Sᵀ`` instead, which lets each candidate pick its neighbours among the seen
items; the two agree only for a symmetric, un-truncated ``S``.) Like similaripy,
``S`` keeps its diagonal (an item is its own nearest neighbour); that only ever
adds score to seen items, which recommendations exclude.

:class:`UserKNN` keeps the training matrix and, for each row it scores, asks
similaripy for that row's ``k`` nearest *training* users (``M1`` = the query
rows, ``M2 = X_trainᵀ``), then scores ``W · X_train``. Rows need not be training
users, so new users work without refitting; a training user passed again finds
itself as its own nearest neighbour, exactly as ``similaripy.f(X_train)`` does.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal, get_args

import numpy as np
import scipy.sparse as sp

from accel.backends import Backend
from accel.errors import AccelError, InputError
from accel.models.base import DType, Recommender
from accel.models.item_item import SparseItemItem
from accel.models.registry import Entry, Range
from accel.progress import terminal_progress
from accel.validation import check_nonnegative, check_positive_int

#: Each similaripy similarity and the parameters of its own that it takes
#: (besides ``k``, ``shrink``, ``shrink_type`` and ``threshold``, which all take).
SIMILARITY_PARAMS: dict[str, tuple[str, ...]] = {
    "dot_product": (),
    "cosine": (),
    "asymmetric_cosine": ("alpha",),
    "jaccard": (),
    "dice": (),
    "tversky": ("alpha", "beta"),
    "p3alpha": ("alpha",),
    "rp3beta": ("alpha", "beta"),
    "s_plus": ("l1", "l2", "l3", "t1", "t2", "c1", "c2", "pop1", "pop2", "alpha", "beta1", "beta2"),
}
Similarity = Literal[
    "dot_product", "cosine", "asymmetric_cosine", "jaccard", "dice", "tversky", "p3alpha", "rp3beta", "s_plus"
]
ShrinkType = Literal["stabilized", "bayesian", "additive"]
Pop = Literal["none", "sum"]
SIMILARITIES: tuple[str, ...] = tuple(SIMILARITY_PARAMS)
SHRINK_TYPES: tuple[str, ...] = get_args(ShrinkType)
COMMON_PARAMS: tuple[str, ...] = ("k", "shrink", "shrink_type", "threshold")
METHOD_PARAMS: tuple[str, ...] = tuple(dict.fromkeys(p for ps in SIMILARITY_PARAMS.values() for p in ps))
POP_CHOICES: tuple[str, ...] = get_args(Pop)

#: Reasonable untuned settings for each similarity (the benchmark's defaults): a hundred
#: neighbours with a little shrinkage; the random-walk methods use their published defaults.
KNN_DEFAULTS: dict[str, dict[str, Any]] = {
    "dot_product": {"k": 100},
    "cosine": {"k": 100, "shrink": 10.0},
    "asymmetric_cosine": {"k": 100, "shrink": 10.0, "alpha": 0.7},
    "jaccard": {"k": 100, "shrink": 10.0},
    "dice": {"k": 100, "shrink": 10.0},
    "tversky": {"k": 100, "shrink": 10.0, "alpha": 0.8, "beta": 0.2},
    "p3alpha": {"k": 100, "alpha": 1.0},
    "rp3beta": {"k": 100, "alpha": 1.0, "beta": 0.5},
    "s_plus": {"k": 100, "shrink": 10.0, "l1": 0.5, "l2": 0.5, "t1": 1.0, "t2": 1.0, "c1": 0.5, "c2": 0.5},
}
#: Tuning space shared by every similarity.
KNN_COMMON_SPACE: dict[str, Range] = {"k": Range(10, 1000, log=True, integer=True), "shrink": Range(0, 200)}
_UNIT = Range(0.0, 1.0)
#: Each similarity's own parameters, searched on top of the common ones.
KNN_SPACE: dict[str, dict[str, Range]] = {
    "dot_product": {},
    "cosine": {},
    "asymmetric_cosine": {"alpha": _UNIT},
    "jaccard": {},
    "dice": {},
    "tversky": {"alpha": _UNIT, "beta": _UNIT},
    "p3alpha": {"alpha": Range(0.2, 2.0)},
    "rp3beta": {"alpha": Range(0.2, 2.0), "beta": _UNIT},
    "s_plus": {name: _UNIT for name in ("l1", "l2", "t1", "t2", "c1", "c2")},
}


def check_knn_params(similarity: str, params: dict[str, Any]) -> None:
    """Raise :class:`InputError` for an unknown similarity or a parameter it does not take."""
    if similarity not in SIMILARITY_PARAMS:
        raise InputError(f"unknown similarity {similarity!r}; choose one of {', '.join(SIMILARITIES)}")
    allowed = set(COMMON_PARAMS) | set(SIMILARITY_PARAMS[similarity])
    for name in params:
        if name not in allowed:
            raise InputError(
                f"similarity {similarity!r} does not take parameter {name!r}; "
                f"it takes {', '.join(sorted(allowed))}"
            )


class MissingPackageError(AccelError, ImportError):
    """An optional package a model needs is not installed (the message names it)."""


def _similaripy() -> Any:
    """similaripy, imported where a similarity is computed, so accel imports without it."""
    try:
        import similaripy
    except ImportError:
        raise MissingPackageError(
            "KNN models need the similaripy package, which is not installed: "
            "pip install 'similaripy>=0.7,<0.8'"
        ) from None
    return similaripy


class _KNN(Recommender):
    """Shared parameters, checks and the call into similaripy."""

    _kind: ClassVar[str] = ""

    def __init__(
        self,
        similarity: Similarity = "cosine",
        k: int = 100,
        shrink: float = 0.0,
        shrink_type: ShrinkType = "stabilized",
        threshold: float = 0.0,
        alpha: float | None = None,
        beta: float | None = None,
        l1: float | None = None,
        l2: float | None = None,
        l3: float | None = None,
        t1: float | None = None,
        t2: float | None = None,
        c1: float | None = None,
        c2: float | None = None,
        pop1: Pop | None = None,
        pop2: Pop | None = None,
        beta1: float | None = None,
        beta2: float | None = None,
        backend: str | Backend = "auto",
        dtype: DType = "float32",
    ) -> None:
        super().__init__(backend=backend, dtype=dtype)
        self.similarity = similarity
        self.k = k
        self.shrink = shrink
        self.shrink_type = shrink_type
        self.threshold = threshold
        self.alpha = alpha
        self.beta = beta
        self.l1 = l1
        self.l2 = l2
        self.l3 = l3
        self.t1 = t1
        self.t2 = t2
        self.c1 = c1
        self.c2 = c2
        self.pop1 = pop1
        self.pop2 = pop2
        self.beta1 = beta1
        self.beta2 = beta2

    def method_params(self) -> dict[str, Any]:
        """The similarity's own parameters that were set (the rest keep similaripy's defaults)."""
        return {name: getattr(self, name) for name in METHOD_PARAMS if getattr(self, name) is not None}

    def _check_params(self) -> None:
        check_knn_params(self.similarity, self.method_params())
        check_positive_int("k (neighbours kept)", self.k)
        check_nonnegative("shrink", self.shrink)
        if self.shrink_type not in SHRINK_TYPES:
            raise InputError(
                f"unknown shrink_type {self.shrink_type!r}; choose one of {', '.join(SHRINK_TYPES)}"
            )
        check_nonnegative("threshold", self.threshold)
        for name, value in self.method_params().items():
            if name in ("pop1", "pop2"):
                if value not in POP_CHOICES:
                    raise InputError(f"{name} must be one of {', '.join(POP_CHOICES)}, got {value!r}")
            elif isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
                raise InputError(f"{name} must be a number, got {value!r}")
            elif not np.isfinite(value):
                raise InputError(f"{name} must be finite, got {value}")

    def _similarity(
        self, matrix1: sp.csr_matrix, matrix2: sp.csr_matrix, show_progress: bool
    ) -> sp.csr_matrix:
        """``similaripy.<similarity>(matrix1, matrix2, ...)`` as a CSR matrix of ``dtype_``.

        Only the non-empty rows of ``matrix1`` and columns of ``matrix2`` go to similaripy
        (an empty one has no similarity to anything): similaripy 0.7 sums rows with
        ``np.add.reduceat`` over the row pointers, which raises on trailing empty rows
        (an item of the catalogue that no training user has) and misreads inner ones.
        """
        lengths = np.diff(matrix1.indptr)
        rows = np.flatnonzero(lengths)
        counts = np.bincount(matrix2.indices, minlength=matrix2.shape[1])
        columns = np.flatnonzero(counts)
        shape = (matrix1.shape[0], matrix2.shape[1])
        if rows.size == 0 or columns.size == 0:
            return sp.csr_matrix(shape, dtype=self.dtype_)
        whole = rows.size == shape[0] and columns.size == shape[1]
        if not whole:  # drop the empty rows by their pointers and renumber the columns: no copy of values
            indptr = np.concatenate(([0], np.cumsum(lengths[rows])))
            matrix1 = sp.csr_matrix(
                (matrix1.data, matrix1.indices, indptr), shape=(rows.size, matrix1.shape[1])
            )
            renumber = np.cumsum(counts > 0) - 1
            matrix2 = sp.csr_matrix(
                (matrix2.data, renumber[matrix2.indices], matrix2.indptr),
                shape=(matrix2.shape[0], columns.size),
            )
        function = getattr(_similaripy(), self.similarity)
        result = function(
            sp.csr_array(matrix1),
            sp.csr_array(matrix2),
            k=int(self.k),
            shrink=float(self.shrink),
            shrink_type=self.shrink_type,
            threshold=float(self.threshold),
            verbose=terminal_progress(show_progress),
            format_output="csr",
            **self.method_params(),
        )
        found = sp.csr_matrix(result, dtype=self.dtype_)
        if whole:
            return found
        indptr = np.zeros(shape[0] + 1, dtype=np.int64)
        indptr[rows + 1] = np.diff(found.indptr)
        return sp.csr_matrix((found.data, columns[found.indices], np.cumsum(indptr)), shape=shape)


class ItemKNN(SparseItemItem, _KNN):
    """Item-based KNN: ``S = similarity(Xᵀ)`` keeps each item's ``k`` nearest items; scores are ``X · S``.

    Parameters
    ----------
    similarity:
        One of ``dot_product``, ``cosine``, ``asymmetric_cosine``, ``jaccard``, ``dice``,
        ``tversky``, ``p3alpha``, ``rp3beta``, ``s_plus`` (similaripy's functions).
    k, shrink, shrink_type, threshold:
        Passed to similaripy: neighbours kept per item, shrinkage and its kind, and the
        smallest similarity kept.
    alpha, beta, l1, l2, l3, t1, t2, c1, c2, pop1, pop2, beta1, beta2:
        The similarity's own parameters, under similaripy's names (``None`` keeps
        similaripy's default). Setting one the similarity does not take is an error.
    backend, dtype:
        Where ``similar_items`` runs (serving is the sparse top-k) and the precision.
    """

    entry = Entry(
        "itemknn",
        variants={sim: {"similarity": sim, **KNN_DEFAULTS[sim], "backend": "numpy"} for sim in SIMILARITIES},
        spaces={sim: {**KNN_COMMON_SPACE, **KNN_SPACE[sim]} for sim in SIMILARITIES},
        bench_order=2,
    )

    def _fit(self, X: sp.csr_matrix, show_progress: bool) -> None:
        self._set_weights(self._similarity(X.T.tocsr(), X, show_progress))

    def _item_vectors(self, items: np.ndarray, top: int | None = None) -> sp.csr_matrix:
        return sp.csr_matrix(self.S_[items])  # each item's k nearest items


class UserKNN(_KNN):
    """User-based KNN: each scored row's ``k`` nearest training users vote with their items.

    ``recommend(X_rows)`` computes ``W = similarity(X_rows, X_trainᵀ)`` (rows ×
    training users, top ``k`` per row) with similaripy and scores ``W · X_train``.
    ``X_rows`` may be the training matrix itself or new users' interactions.
    Parameters are those of :class:`ItemKNN`.
    """

    entry = Entry("userknn", variants={"": {"backend": "numpy"}}, benched=False)
    scoring = "sparse"

    def _fit(self, X: sp.csr_matrix, show_progress: bool) -> None:
        self._set_training(X)

    def _set_training(self, X: sp.csr_matrix) -> None:
        self.X_train_ = X
        self.X_train_T_ = X.T.tocsr()
        self.n_users_ = X.shape[0]

    def _neighbours(self, X: sp.csr_matrix) -> sp.csr_matrix:
        """Rows × training users similarities, the top ``k`` per row (host CSR)."""
        return self._similarity(X, self.X_train_T_, show_progress=False)

    def _sparse_factors(
        self, X: sp.csr_matrix, columns: np.ndarray | None, candidates: int | None
    ) -> tuple[sp.csr_matrix, sp.csr_matrix]:
        return self._neighbours(X), self.X_train_

    def _item_scores(self, item: int) -> Any:
        raise InputError(
            "UserKNN learns user-user similarities, not item-item ones: use ItemKNN for similar_items"
        )

    def _state(self) -> dict[str, Any]:
        X = self.X_train_
        return {"X_data": X.data, "X_indices": X.indices, "X_indptr": X.indptr}

    def _set_state(self, arrays: dict[str, np.ndarray]) -> None:
        indptr = arrays["X_indptr"]
        self._set_training(
            sp.csr_matrix(
                (arrays["X_data"], arrays["X_indices"], indptr), shape=(len(indptr) - 1, self.n_items_)
            )
        )
