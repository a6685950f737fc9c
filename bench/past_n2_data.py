"""The ``.npz`` that bench/past_n2.py hands each fresh worker process: a binary training matrix and
the rows to score. NumPy and SciPy only, so every library's environment can read it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.sparse as sp


def save_matrix(path: Path, X: sp.csr_matrix, users: np.ndarray) -> Path:
    """Write the pattern of CSR ``X`` and the ``users`` (rows) to score."""
    np.savez(path, indptr=X.indptr, indices=X.indices, shape=np.array(X.shape), users=users)
    return path


def load_matrix(path: str | Path) -> tuple[sp.csr_matrix, np.ndarray]:
    """The float32 binary CSR matrix and the rows to score, as :func:`save_matrix` wrote them."""
    data = np.load(path)
    X = sp.csr_matrix(
        (np.ones(data["indices"].size, dtype=np.float32), data["indices"], data["indptr"]),
        shape=tuple(data["shape"]),
    )
    return X, data["users"]
