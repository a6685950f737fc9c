"""Scoring users chunk by chunk on Dask workers: top-k arrays back, or Parquet files on shared storage.

The model reaches each worker once per run (see :mod:`accel.distributed.model_transfer`);
each task carries one chunk of user rows (a small sparse matrix) and scores it
with the model's own ``recommend``, so the results are exactly those of
``model.recommend`` in one process. Tasks are retried, and Dask reruns the
tasks of a worker that dies on the remaining workers.
"""

from __future__ import annotations

import hashlib
import math
import os
import sys
from pathlib import Path
from typing import Any, Protocol, TypeGuard

import numpy as np
import scipy.sparse as sp
from numpy.typing import ArrayLike

from accel.atomic import atomic_file
from accel.distributed.client import using_client
from accel.distributed.model_transfer import ShippedModel, is_saved_model, ship_model, worker_model
from accel.distributed.run_output import (
    data_fingerprint,
    model_fingerprint,
    part_name,
    prepare_folder,
    remove_stale_temporaries,
    write_manifest,
)
from accel.errors import InputError
from accel.models.base import Recommender, load_model
from accel.serving.filters import CandidateFilters
from accel.serving.popular_fallback import UNKNOWN_USERS, UnknownUsers
from accel.serving.table import long_table
from accel.validation import MatrixLike, as_binary_csr, check_choice, check_k, check_positive_int, is_sparse

#: Times a failed chunk task is retried (worker deaths are rescheduled by Dask besides).
RETRIES = 3
#: The default chunk aims at this many chunks per run, within the bounds below.
_TARGET_CHUNKS = 64
_MIN_CHUNK, _MAX_CHUNK = 1_000, 50_000


def default_chunk_users(n_users: int) -> int:
    """Users per chunk: about 64 chunks, each of 1,000 to 50,000 users.

    It depends only on ``n_users`` so a rerun on a different cluster size names
    the same chunks (and can resume an unfinished output folder).
    """
    return int(min(max(n_users, 1), max(_MIN_CHUNK, min(_MAX_CHUNK, math.ceil(n_users / _TARGET_CHUNKS)))))


def _check_chunk(chunk_users: int | None, n_users: int) -> int:
    if chunk_users is None:
        return default_chunk_users(n_users)
    return check_positive_int("chunk_users", chunk_users)


def _client_model(model: Recommender | str | os.PathLike[str]) -> Recommender:
    """The model as seen on the client (a saved folder is memory-mapped, not read)."""
    if is_saved_model(model):
        return load_model(model, mmap=True)
    if isinstance(model, (str, os.PathLike)):
        raise InputError(f"{model} is not a saved accel model folder")
    if not isinstance(model, Recommender):
        raise InputError(
            f"model must be a fitted accel model or a saved model folder, got {type(model).__name__}"
        )
    model._check_fitted()
    return model


def _check_unknown_users(fitted: Recommender, X: sp.csr_matrix, unknown_users: UnknownUsers) -> UnknownUsers:
    """``unknown_users`` checked; ``"error"`` refuses rows with no items here, before any work is sent."""
    check_choice("unknown_users", unknown_users, UNKNOWN_USERS)
    if unknown_users == "error":
        untouched = np.empty((X.shape[0], 0))
        fitted.fill_rows_without_items(np.diff(X.indptr) == 0, untouched, untouched, unknown_users)
    return unknown_users


def _chunk_filters(filters: CandidateFilters, start: int, stop: int) -> dict[str, Any]:
    """``allowed_items`` / ``forbidden_items`` keywords for users ``start:stop`` (global ones as they are)."""
    rows = filters.take(slice(start, stop))
    return {"allowed_items": rows.include(), "forbidden_items": rows.forbidden}


def _filters_fingerprint(filters: CandidateFilters) -> str | None:
    """A short hash of the filters, so that a resumed output folder used the same ones."""
    if not filters.active:
        return None
    digest = hashlib.sha1()
    for part in (filters.columns, filters.allowed, filters.forbidden):
        if part is None:
            digest.update(b"-")
        elif is_sparse(part):
            for array in (part.indptr, part.indices):
                digest.update(np.ascontiguousarray(array, dtype=np.int64).tobytes())
        else:
            digest.update(np.packbits(part).tobytes())
    return digest.hexdigest()[:16]


def _wait(client: Any, futures: list[Any], show_progress: bool) -> list[Any]:
    """Gather ``futures``; Dask's text progress bar only on a terminal (it would litter a log)."""
    if show_progress and futures and sys.stdout.isatty():
        from distributed import progress

        progress(futures)
    return client.gather(futures)


# ---- in-memory results -----------------------------------------------------------
def _recommend_chunk(
    ref: Any,
    X: sp.csr_matrix,
    k: int,
    exclude_seen: bool,
    unknown_users: UnknownUsers,
    filters: dict[str, Any],
) -> tuple[np.ndarray, np.ndarray]:
    return worker_model(ref).recommend(
        X, k=k, exclude_seen=exclude_seen, unknown_users=unknown_users, **filters
    )


def recommend(
    model: Recommender | str | os.PathLike[str],
    X: MatrixLike,
    k: int = 10,
    client: Any = None,
    chunk_users: int | None = None,
    exclude_seen: bool = True,
    show_progress: bool = False,
    *,
    model_transfer: str = "auto",
    unknown_users: UnknownUsers = "popular",
    allowed_items: object = None,
    forbidden_items: object = None,
) -> tuple[np.ndarray, np.ndarray]:
    """``model.recommend(X, k)`` computed chunk by chunk on Dask workers; the same ``(ids, scores)``.

    ``allowed_items`` / ``forbidden_items`` are those of ``recommend`` (item indices,
    or a users × items matrix whose rows are split with the chunks). ``unknown_users``
    is that of ``recommend`` (rows with no items: ``"popular"``, ``"skip"`` or
    ``"error"``, which is raised before any work is sent).

    ``model`` is a fitted model or the folder of a saved one. ``client`` defaults
    to the current Dask client, else a temporary local cluster. ``model_transfer``
    chooses how the model reaches workers: ``"auto"`` (memory-map a folder every
    worker can read, else scatter), ``"mmap"`` or ``"scatter"``.
    """
    fitted = _client_model(model)
    X = as_binary_csr(X, dtype=fitted.dtype_, n_items=fitted.n_items_, name="X")
    k = check_k(k, fitted.n_items_)
    chunk = _check_chunk(chunk_users, X.shape[0])
    unknown_users = _check_unknown_users(fitted, X, unknown_users)
    filters = CandidateFilters.resolve(allowed_items, forbidden_items, X.shape[0], fitted.n_items_)
    with using_client(client) as dask_client:
        shipped = ship_model(dask_client, model, model_transfer)
        try:
            futures = [
                dask_client.submit(
                    _recommend_chunk,
                    shipped.ref,
                    X[start : start + chunk],
                    k,
                    bool(exclude_seen),
                    unknown_users,
                    _chunk_filters(filters, start, start + chunk),
                    pure=False,
                    retries=RETRIES,
                )
                for start in range(0, X.shape[0], chunk)
            ]
            parts = _wait(dask_client, futures, show_progress)
        finally:
            shipped.release(dask_client)
    ids = np.concatenate([p[0] for p in parts])
    scores = np.concatenate([p[1] for p in parts])
    return ids, scores


# ---- Parquet output ---------------------------------------------------------------
def _write_chunk(
    ref: Any,
    X: sp.csr_matrix,
    k: int,
    exclude_seen: bool,
    unknown_users: UnknownUsers,
    users: np.ndarray,
    item_ids: np.ndarray | None,
    filters: dict[str, Any],
    path: str,
) -> int:
    """Score one chunk and write its rows (user, item, rank, score, source) to ``path`` atomically."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    ids, scores = _recommend_chunk(ref, X, k, exclude_seen, unknown_users, filters)
    columns = long_table(ids, scores, X, users, item_ids)
    table = pa.table({name: pa.array(column) for name, column in columns.items()})
    with atomic_file(path) as tmp:
        pq.write_table(table, tmp)
    return table.num_rows


class LogLike(Protocol):
    """What the Parquet output takes of an ``accel.data.Interactions``: its matrix and ids."""

    user_ids: ArrayLike
    item_ids: ArrayLike

    def matrix(self) -> sp.csr_matrix: ...


def _is_log(data: object) -> TypeGuard[LogLike]:
    """Whether ``data`` has ``matrix()``, ``user_ids`` and ``item_ids`` (duck-typed, as documented)."""
    return callable(getattr(data, "matrix", None)) and hasattr(data, "user_ids") and hasattr(data, "item_ids")


def _interactions(data: object) -> tuple[MatrixLike, np.ndarray | None, np.ndarray | None]:
    """A matrix and the log's id arrays from an ``Interactions``-like object, or the input unchanged."""
    if _is_log(data):
        return data.matrix(), np.asarray(data.user_ids), np.asarray(data.item_ids)
    return data, None, None


def _check_ids(ids: object, n: int, what: str) -> np.ndarray | None:
    if ids is None:
        return None
    array = np.asarray(ids)
    if array.ndim != 1 or len(array) != n:
        raise InputError(
            f"{what}_ids must be a 1-D array of {n:,} ids (one per {what}), got shape {array.shape}"
        )
    return array


def recommend_to_parquet(
    model: Recommender | str | os.PathLike[str],
    X_or_interactions: object,
    path: str | os.PathLike[str],
    k: int = 10,
    client: Any = None,
    chunk_users: int | None = None,
    user_ids: object = None,
    item_ids: object = None,
    overwrite: bool = False,
    *,
    exclude_seen: bool = True,
    show_progress: bool = False,
    model_transfer: str = "auto",
    unknown_users: UnknownUsers = "popular",
    allowed_items: object = None,
    forbidden_items: object = None,
) -> dict[str, Any]:
    """Top-``k`` of every user written by the workers as one Parquet file per chunk under folder ``path``.

    ``X_or_interactions`` is a users × items matrix or an ``accel.data.Interactions``
    (anything with ``matrix()``, ``user_ids`` and ``item_ids``), whose ids are
    used unless ``user_ids`` / ``item_ids`` are given (item ids default to those a
    model saved by ``accel fit`` carries). Columns: ``user``,
    ``item`` (original ids when known, else indices), ``rank`` (1 = best),
    ``score`` and ``source`` (``model`` or ``popular``); slots a user has no unseen item for are left out, and
    so are all of a user's with ``unknown_users="skip"``. ``path`` must be
    on storage every worker can write. A folder holding a different run is
    refused unless ``overwrite``; the same unfinished run is resumed. Returns the
    manifest written to ``path/_accel_run.json``. ``allowed_items`` /
    ``forbidden_items`` and ``unknown_users`` are those of :func:`recommend`; like
    the filters, a ``unknown_users`` other than ``"popular"`` is part of the run,
    so a resumed run must use the same one.
    """
    fitted = _client_model(model)
    matrix, log_users, log_items = _interactions(X_or_interactions)
    X = as_binary_csr(matrix, dtype=fitted.dtype_, n_items=fitted.n_items_, name="X")
    n_users = X.shape[0]
    model_items = getattr(fitted, "extras_", {}).get("item_ids")
    if log_items is not None and model_items is not None and not np.array_equal(log_items, model_items):
        raise InputError(
            "the log's item ids are not the model's items in the model's order: build the matrix over "
            "the model's item ids (model.extras_['item_ids'])"
        )
    users = _check_ids(log_users if user_ids is None else user_ids, n_users, "user")
    default_items = log_items if log_items is not None else model_items
    items = _check_ids(default_items if item_ids is None else item_ids, fitted.n_items_, "item")
    k = check_k(k, fitted.n_items_)
    chunk = _check_chunk(chunk_users, n_users)
    n_chunks = math.ceil(n_users / chunk)
    unknown_users = _check_unknown_users(fitted, X, unknown_users)
    filters = CandidateFilters.resolve(allowed_items, forbidden_items, n_users, fitted.n_items_)
    run = {
        "format": "accel-recommendations",
        "model": model_fingerprint(fitted),
        "data": data_fingerprint(X, users, items),
        "n_users": n_users,
        "n_items": int(fitted.n_items_),
        "chunk_users": chunk,
        "n_chunks": n_chunks,
        "k": k,
        "exclude_seen": bool(exclude_seen),
        **({"filters": _filters_fingerprint(filters)} if filters.active else {}),
        **({"unknown_users": unknown_users} if unknown_users != "popular" else {}),
    }
    folder = Path(path).resolve()
    done = prepare_folder(folder, run, overwrite)
    write_manifest(folder, {"run": run, "complete": False})
    user_labels = np.arange(n_users, dtype=np.int64) if users is None else users
    with using_client(client) as dask_client:
        if not all(dask_client.run(os.path.isdir, str(folder)).values()):
            raise InputError(f"the Dask workers cannot see the output folder {folder}: use shared storage")
        shipped: ShippedModel = ship_model(dask_client, model, model_transfer)
        try:
            items_ref = None if items is None else dask_client.scatter(items, broadcast=True, hash=False)
            futures = [
                dask_client.submit(
                    _write_chunk,
                    shipped.ref,
                    X[i * chunk : (i + 1) * chunk],
                    k,
                    bool(exclude_seen),
                    unknown_users,
                    user_labels[i * chunk : (i + 1) * chunk],
                    items_ref,
                    _chunk_filters(filters, i * chunk, (i + 1) * chunk),
                    str(folder / part_name(i)),
                    pure=False,
                    retries=RETRIES,
                )
                for i in range(n_chunks)
                if i not in done
            ]
            rows = _wait(dask_client, futures, show_progress)
        finally:
            shipped.release(dask_client)
    remove_stale_temporaries(folder)
    manifest = {
        "run": run,
        "complete": True,
        "chunks_written": len(rows),
        "chunks_resumed": len(done),
        "rows_written": int(sum(rows)),
    }
    write_manifest(folder, manifest)
    return manifest
