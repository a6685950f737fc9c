"""User and item ids kept exactly as the data has them: checked, matched and stored."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from accel.errors import InputError
from accel.validation import storable_ids  # noqa: F401 - part of this module's id helpers

#: What ``pandas.api.types.infer_dtype`` may say of an id column: integers or text, nothing else.
_ID_KINDS = {"integer": "integers", "string": "strings", "empty": "strings"}


def check_id_column(values: pd.Series, column: str) -> pd.Series:
    """``values`` if they are usable ids (integers or strings, none missing), else :class:`InputError`.

    Floats (``42.0`` vs ``42``), booleans, dates and nested values (lists, dicts)
    are refused by name rather than turned into ids that later cannot be looked up.
    """
    if isinstance(values.dtype, pd.CategoricalDtype):
        values = values.astype(values.cat.categories.dtype)
    if values.isna().any():
        raise InputError(f"column {column!r} has {int(values.isna().sum()):,} missing ids")
    kind = pd.api.types.infer_dtype(values, skipna=True)
    if kind not in _ID_KINDS:
        described = {
            "floating": f"floats ({values.dtype})",
            "mixed-integer-float": f"floats ({values.dtype})",
            "boolean": "booleans",
            "mixed": "mixed or nested values (lists, dicts, arrays)",
            "mixed-integer": "a mix of integers and other values",
        }.get(kind, f"{kind} values ({values.dtype})")
        raise InputError(
            f"id column {column!r} holds {described}; ids must be integers or strings "
            "(cast the column, e.g. to str, before loading)"
        )
    if kind == "integer" and (values.dtype == object or not isinstance(values.dtype, np.dtype)):
        values = values.astype(np.int64)
    return values


def id_array(ids: Iterable[object] | object) -> np.ndarray:
    """One id or many as a flat array (one string stays one id)."""
    return np.atleast_1d(np.asarray(ids, dtype=object if isinstance(ids, str) else None)).ravel()


def plain_id(value: object) -> object:
    """An id as a plain Python value (a NumPy scalar becomes its ``int``/``str``), for messages and JSON."""
    return value.item() if isinstance(value, np.generic) else value


def _coerce_ids(ids: Iterable[object] | object, known: np.ndarray) -> np.ndarray:
    """``ids`` as an array comparable with ``known`` (e.g. ``"42"`` typed on a command line → 42).

    Text that is not an integer cannot be an integer id: it becomes ``None`` (no match).
    """
    array = id_array(ids)
    if known.dtype.kind in "iu" and array.dtype.kind not in "iu":
        converted = pd.to_numeric(pd.Series(array, dtype=object), errors="coerce")
        whole = converted.notna() & (converted == converted.round())
        out = array.astype(object)
        out[whole.to_numpy()] = converted[whole].astype(np.int64).to_numpy()
        out[~whole.to_numpy()] = None
        return out
    if known.dtype.kind in "OUS" and array.dtype.kind not in "OUS":
        return array.astype(str).astype(object)
    return array


def match_ids(ids: object, known: np.ndarray) -> np.ndarray:
    """Positions of ``ids`` in ``known`` (``-1`` where unknown), matching text to integer ids and back."""
    known = np.asarray(known)
    return pd.Index(known).get_indexer(_coerce_ids(ids, known)).astype(np.int64)


def lookup_ids(ids: object, known: np.ndarray, what: str) -> np.ndarray:
    """Positions of ``ids`` in ``known``; :class:`InputError` naming the first unknown id."""
    positions = match_ids(ids, known)
    if (positions < 0).any():
        unknown = plain_id(id_array(ids)[np.flatnonzero(positions < 0)[0]])
        raise InputError(f"unknown {what} id {unknown!r}: not in the {len(known):,} {what}s of this log")
    return positions
