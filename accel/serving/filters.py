"""Candidate filters at serving time: items a user may or may never be recommended.

``allowed_items`` / ``forbidden_items`` are either item indices (one list for
every user: in stock, not adult) or a sparse users × items matrix whose stored
entries are each user's own list (already shipped). They are applied inside the
top-k: a filtered item never takes a slot, and a row with fewer than ``k``
candidates is padded with id ``-1`` and score ``-inf``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from accel.errors import InputError
from accel.validation import MatrixLike, as_binary_csr, check_item_indices


@dataclass(frozen=True)
class CandidateFilters:
    """Resolved filters of one ``recommend`` call (host arrays)."""

    #: Global allowed-column mask (``None``: every item allowed globally).
    columns: np.ndarray | None = None
    #: Per-user forbidden items, rows aligned with the scored rows.
    forbidden: sp.csr_matrix | None = None
    #: Per-user allowed items, rows aligned with the scored rows.
    allowed: sp.csr_matrix | None = None

    @classmethod
    def resolve(
        cls, allowed: MatrixLike | None, forbidden: MatrixLike | None, n_rows: int, n_items: int
    ) -> CandidateFilters:
        """Check the user's ``allowed_items`` / ``forbidden_items`` and turn them into masks."""
        columns = None
        per_user: dict[str, sp.csr_matrix | None] = {"allowed": None, "forbidden": None}
        for name, value in (("allowed", allowed), ("forbidden", forbidden)):
            if value is None:
                continue
            if sp.issparse(value):
                matrix = as_binary_csr(value, n_items=n_items, name=f"{name}_items")
                if matrix.shape[0] != n_rows:
                    raise InputError(
                        f"{name}_items as a matrix needs one row per scored user ({n_rows:,}), "
                        f"got {matrix.shape[0]:,} rows"
                    )
                matrix.sort_indices()
                per_user[name] = matrix
                continue
            items = check_item_indices(np.asarray(value), n_items)
            mask = np.zeros(n_items, dtype=bool)
            mask[items] = True
            if name == "forbidden":
                mask = ~mask
            columns = mask if columns is None else columns & mask
        return cls(columns, per_user["forbidden"], per_user["allowed"])

    @property
    def active(self) -> bool:
        return self.columns is not None or self.forbidden is not None or self.allowed is not None

    def take(self, rows: slice | np.ndarray) -> CandidateFilters:
        """The filters of scored rows ``rows`` (a slice or positions)."""
        return CandidateFilters(
            self.columns,
            None if self.forbidden is None else self.forbidden[rows],
            None if self.allowed is None else self.allowed[rows],
        )

    def include(self) -> sp.csr_matrix | np.ndarray | None:
        """What a top-k may return: each row's allowed items (within the global mask) as a CSR,
        else the globally allowed item indices, else ``None`` (every item)."""
        if self.allowed is None:
            return None if self.columns is None else np.flatnonzero(self.columns)
        return allowed_within(self.allowed, self.columns)

    def candidates(self, k: int, exclude: sp.csr_matrix | None) -> int | None:
        """How many best columns per row surely fill a top-``k`` after ``exclude`` (``None``: all)."""
        if self.allowed is not None:
            return None
        return k + 1 + (0 if exclude is None else int(np.diff(exclude.indptr).max(initial=0)))

    def exclusions(self, seen: sp.csr_matrix | None) -> sp.csr_matrix | None:
        """One CSR of what each row must not get: ``seen`` (if given) and its forbidden items."""
        if self.forbidden is None:
            return seen
        if seen is None:
            return self.forbidden
        both = (seen + self.forbidden).tocsr()
        both.data[:] = 1
        both.sort_indices()
        return both


def allowed_within(allowed: sp.csr_matrix, columns: np.ndarray | None) -> sp.csr_matrix:
    """Per-row allowed items that are also globally allowed (``columns``, a boolean mask), sorted."""
    if columns is None:
        return allowed
    both = sp.csr_matrix(allowed.multiply(columns[None, :].astype(allowed.dtype)))
    both.eliminate_zeros()
    both.sort_indices()
    return both
