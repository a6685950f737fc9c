"""The output folder of a distributed scoring run: part files, and a manifest naming the run.

Part files are named by chunk number (``part-00012.parquet``) so a retried
chunk replaces its own file instead of adding a duplicate. The manifest
(``_accel_run.json``) records what produced them: a folder that holds a
different run is refused unless the caller asks to overwrite it, and a folder
that holds the same, unfinished run is resumed (finished parts are kept).
Readers such as ``pandas.read_parquet(folder)`` skip names starting with ``_``
or ``.``, so the manifest and temporary files never show up as data.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from accel.atomic import atomic_file, check_writable_folder, remove_abandoned_files
from accel.errors import InputError

MANIFEST = "_accel_run.json"
PART_GLOB = "part-*.parquet"
_PART_NAME = re.compile(r"part-\d+\.parquet")
#: How to replace an earlier run, for the command line and for Python.
_OVERWRITE = "choose another folder, or pass overwrite=True to replace its run"
#: Rows of each learned array hashed into a model's fingerprint.
_SAMPLED_ROWS = 64
#: Elements of each 1-D array hashed into a fingerprint.
_SAMPLED_ELEMENTS = 1 << 16


def part_name(index: int) -> str:
    """The file name of chunk ``index``: fixed, so a retry overwrites rather than duplicates."""
    return f"part-{index:05d}.parquet"


def _hash_array(h: Any, array: np.ndarray) -> None:
    array = np.ascontiguousarray(array)
    h.update(f"{array.dtype.str}{array.shape}".encode())
    if array.dtype == object:
        h.update("\x1f".join(map(repr, array.ravel().tolist())).encode())
    else:
        h.update(array.tobytes())


def model_fingerprint(model: Any) -> str:
    """A short hash of a fitted model: class, parameters, size and a sample of its learned arrays.

    Sampling evenly spaced rows keeps this fast for an n² ``B`` while telling any
    two fits of different data or parameters apart.
    """
    h = hashlib.blake2b(digest_size=16)
    params = {k: getattr(v, "name", v) for k, v in model.get_params().items()}
    h.update(
        json.dumps([type(model).__name__, params, int(model.n_items_)], sort_keys=True, default=str).encode()
    )
    backend = model.backend_
    for name, array in sorted(model._state().items()):
        h.update(name.encode())
        rows = (
            np.unique(
                np.linspace(
                    0, array.shape[0] - 1, _SAMPLED_ROWS if array.ndim > 1 else _SAMPLED_ELEMENTS
                ).astype(np.int64)
            )
            if array.shape[0]
            else np.array([], dtype=np.int64)
        )
        _hash_array(h, backend.to_host(array[rows]))
        h.update(str(array.shape).encode())
    return h.hexdigest()


def data_fingerprint(X: sp.csr_matrix, *ids: np.ndarray | None) -> str:
    """A hash of the interaction pattern of ``X`` and of any id arrays given."""
    h = hashlib.blake2b(digest_size=16)
    h.update(str(X.shape).encode())
    _hash_array(h, X.indptr.astype(np.int64, copy=False))
    _hash_array(h, X.indices)
    for array in ids:
        h.update(b"none" if array is None else b"ids")
        if array is not None:
            _hash_array(h, np.asarray(array))
    return h.hexdigest()


def read_manifest(folder: Path) -> dict[str, Any] | None:
    """The manifest in ``folder``, or ``None`` when there is none."""
    path = folder / MANIFEST
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"{path} is unreadable ({exc}); remove it or {_OVERWRITE}") from None


def write_manifest(folder: Path, manifest: dict[str, Any]) -> None:
    """Write the manifest atomically."""
    with atomic_file(folder / MANIFEST) as tmp:
        tmp.write_text(json.dumps(manifest, indent=2))


def check_run_folder(folder: str | os.PathLike[str], overwrite: bool) -> Path:
    """Fail before any work when ``folder`` cannot take a run: not a folder, no parent, or others' files.

    A folder holding an accel run passes here (:func:`prepare_folder` then
    compares the runs); one holding anything else is refused unless ``overwrite``.
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise InputError(f"output path {folder} exists and is not a folder")
    if not folder.exists():
        check_writable_folder(folder.parent, folder)
        return folder
    check_writable_folder(folder, folder)
    if not overwrite and read_manifest(folder) is None:
        others = sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))
        if others:
            raise InputError(
                f"{folder} is not empty and holds no accel run ({others[0]!r}, ...); {_OVERWRITE}"
            )
    return folder


def check_same_run(folder: str | os.PathLike[str], known: dict[str, Any], overwrite: bool) -> None:
    """Refuse, before the data is read, a folder whose run differs in what is known already (model, k).

    :func:`prepare_folder` compares the whole run once the data is read.
    """
    previous = read_manifest(Path(folder)) if Path(folder).is_dir() else None
    if overwrite or previous is None:
        return
    run = previous.get("run", {})
    differ = sorted(key for key, value in known.items() if run.get(key) != value)
    if differ:
        raise InputError(
            f"{folder} already holds a different run (differs in: {', '.join(differ)}); {_OVERWRITE}"
        )


def prepare_folder(folder: str | os.PathLike[str], run: dict[str, Any], overwrite: bool) -> set[int]:
    """Create or check the output folder for ``run``; return the chunk numbers already written.

    A folder holding the same run keeps its finished parts (resuming); one holding
    a different run, or other files, is refused unless ``overwrite``, which removes
    the earlier run's parts and manifest (and nothing else).
    """
    folder = check_run_folder(folder, overwrite)
    folder.mkdir(exist_ok=True)
    previous = read_manifest(folder)
    existing = sorted(folder.glob(PART_GLOB))
    if previous is not None and previous.get("run") == run:
        return {int(p.stem.split("-")[1]) for p in existing if p.stem.split("-")[1].isdigit()}
    if not overwrite and previous is not None:
        differ = sorted(
            k for k in set(run) | set(previous.get("run", {})) if run.get(k) != previous.get("run", {}).get(k)
        )
        raise InputError(
            f"{folder} already holds a different run (differs in: {', '.join(differ)}); {_OVERWRITE}"
        )
    for path in [*existing, folder / MANIFEST]:
        path.unlink(missing_ok=True)
    remove_stale_temporaries(folder)
    return set()


def remove_stale_temporaries(folder: str | os.PathLike[str]) -> None:
    """Delete temporary part files left by workers killed mid-write (never those of a live worker)."""
    remove_abandoned_files(Path(folder), _PART_NAME)
