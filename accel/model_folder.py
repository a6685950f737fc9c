"""The saved-model folder: ``model.json`` plus one ``.npy`` per array, written and read atomically.

Three parts, kept apart: :func:`save_folder` writes a version (see
:func:`accel.atomic.atomic_dir`), :func:`read_folder` reads one whole version
back, and the checks (:func:`check_meta`, :func:`check_array_file`) refuse a
damaged or foreign folder with an :class:`InputError` naming the file and what
is wrong. The folder knows arrays and metadata only, never a model class.
"""

from __future__ import annotations

import json
import os
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from accel.atomic import atomic_dir, check_folder_destination, current_version
from accel.errors import InputError

FORMAT = "accel-model"
FORMAT_VERSION = 1
META_FILE = "model.json"
#: How often :func:`read_folder` re-reads a folder that other processes keep replacing.
LOAD_ATTEMPTS = 50
_FILE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*\.npy")
#: The checksum ``model.json`` records for each array file (CRC-32 of the array's bytes, 8 hex digits).
CHECKSUM = "crc32"
#: Bytes per step when arrays are written, checksummed or checked for finite values.
CHUNK_BYTES = 1 << 24
#: Memory-mapped models larger than this are verified only when asked (``verify=True``,
#: ``accel check``): reading every byte would undo what mapping saves.
VERIFY_MMAP_BYTES = 1 << 30


@dataclass
class SavedModel:
    """One version of a model folder: its class name, parameters, size, learned arrays and extras."""

    cls: str
    params: dict[str, Any]
    n_items: int
    arrays: dict[str, np.ndarray]
    extras: dict[str, np.ndarray]
    #: How many array files were verified against a recorded checksum when read (0: not verified).
    checksums_verified: int = 0


# ---- array bytes ----------------------------------------------------------------------------------
def _contiguous(array: np.ndarray) -> np.ndarray:
    """``array`` itself when it is C- or Fortran-contiguous (as ``.npy`` files store them), else a C copy."""
    return array if array.flags.c_contiguous or array.flags.f_contiguous else np.ascontiguousarray(array)


def _flat(array: np.ndarray) -> np.ndarray:
    """The elements of a contiguous ``array`` in memory order (its file's order), as a 1-D view."""
    return np.ravel(array, order="K")


def array_chunks(array: np.ndarray) -> Iterator[memoryview]:
    """The bytes of ``array`` as its ``.npy`` file holds them, :data:`CHUNK_BYTES` at a time."""
    data = _flat(_contiguous(array)).view(np.uint8)
    for start in range(0, data.size, CHUNK_BYTES):
        yield data[start : start + CHUNK_BYTES].data


def checksum(array: np.ndarray) -> str:
    """The :data:`CHECKSUM` of ``array``'s bytes (what ``model.json`` records)."""
    value = 0
    for chunk in array_chunks(array):
        value = zlib.crc32(chunk, value)
    return f"{value:08x}"


def first_non_finite(array: np.ndarray) -> tuple[int, ...] | None:
    """The index of the first NaN or infinite value of a float ``array`` (``None``: all finite)."""
    if array.dtype.kind not in "fc":
        return None
    array = _contiguous(array)
    flat, step = _flat(array), max(1, CHUNK_BYTES // array.dtype.itemsize)
    for start in range(0, flat.size, step):
        bad = np.flatnonzero(~np.isfinite(flat[start : start + step]))
        if bad.size:
            order: Literal["C", "F"] = (
                "F" if array.flags.f_contiguous and not array.flags.c_contiguous else "C"
            )
            return tuple(int(i) for i in np.unravel_index(start + int(bad[0]), array.shape, order=order))
    return None


def write_array(path: Path, array: np.ndarray) -> str:
    """Write ``array`` as a ``.npy`` file and return its checksum, taken in the same pass."""
    array = _contiguous(array)
    header = np.lib.format.header_data_from_array_1_0(array)
    value = 0
    with open(path, "wb") as f:
        try:
            np.lib.format.write_array_header_1_0(f, header)
        except ValueError:  # a header too long for format 1.0, as np.save would handle it
            f.seek(0)
            f.truncate()
            np.lib.format.write_array_header_2_0(f, header)
        for chunk in array_chunks(array):
            value = zlib.crc32(chunk, value)
            f.write(chunk)
    return f"{value:08x}"


def check_finite_weights(arrays: dict[str, np.ndarray]) -> None:
    """Raise :class:`InputError` when a learned float array holds NaN or infinite values."""
    for name, array in arrays.items():
        where = first_non_finite(np.asarray(array))
        if where is not None:
            raise InputError(
                f"refusing to save: the learned array {name} holds NaN or infinite values (the first at "
                f"index {where}), so the model could not answer; nothing was written"
            )


# ---- save ---------------------------------------------------------------------------------------
def save_folder(path: str | os.PathLike[str], saved: SavedModel) -> Path:
    """Write ``saved`` to folder ``path``; readers see the old or the new model, never a mix."""
    files = {f"{name}.npy": a for name, a in saved.arrays.items()}
    files.update({f"extra.{name}.npy": a for name, a in saved.extras.items()})
    for name in files:
        check_file_name(name)
    check_finite_weights(saved.arrays)
    meta: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "class": saved.cls,
        "params": saved.params,
        "n_items": int(saved.n_items),
        "arrays": sorted(saved.arrays),
        "extras": sorted(saved.extras),
        "files": {},
    }
    with atomic_dir(check_model_destination(path)) as tmp:
        for name, array in files.items():
            array = np.asarray(array)
            if array.dtype.hasobject:
                raise InputError(f"cannot save {name}: it holds Python objects")
            crc = write_array(tmp / name, array)
            meta["files"][name] = {
                "shape": list(array.shape),
                "dtype": array.dtype.str,
                "bytes": (tmp / name).stat().st_size,
                CHECKSUM: crc,
            }
        (tmp / META_FILE).write_text(json.dumps(meta, indent=2))
    return Path(path)


def check_model_destination(path: str | os.PathLike[str]) -> Path:
    """Raise :class:`InputError` unless a model can be saved to ``path`` (run it before fitting).

    ``path`` may be missing, empty or a saved model; any other folder is refused.
    """
    return check_folder_destination(path, "the model")


# ---- load ---------------------------------------------------------------------------------------
def read_folder(path: str | os.PathLike[str], mmap: bool = True, verify: bool | None = None) -> SavedModel:
    """One whole version of the model folder ``path`` (``mmap``: arrays memory-mapped, not read).

    ``verify`` checks every array against the checksum ``model.json`` records
    (see :func:`verify_arrays`); ``None`` verifies unless the arrays are
    memory-mapped and over :data:`VERIFY_MMAP_BYTES`. A save over ``path`` while
    this runs gives the old or the new model.
    """
    path = Path(path)
    for _ in range(LOAD_ATTEMPTS):
        version = current_version(path)
        try:
            saved = _read_version(path, version, mmap, verify)
        except (InputError, OSError):
            if current_version(path) != version:
                continue  # replaced while reading: read the new one
            raise
        if current_version(path) == version:
            return saved
    raise InputError(f"{path} was replaced {LOAD_ATTEMPTS} times while being read; try again")


def _read_version(path: Path, folder: Path, mmap: bool, verify: bool | None) -> SavedModel:
    meta = check_meta(path, folder)
    arrays = {n: check_array_file(path, folder, f"{n}.npy", meta, mmap) for n in meta["arrays"]}
    extras = {n: check_array_file(path, folder, f"extra.{n}.npy", meta, mmap) for n in meta["extras"]}
    item_ids = extras.get("item_ids")
    if item_ids is not None and item_ids.shape != (meta["n_items"],):
        raise InputError(
            f"{path / 'extra.item_ids.npy'} has shape {item_ids.shape} but the model has "
            f"{meta['n_items']:,} items"
        )
    saved = SavedModel(meta["class"], dict(meta["params"]), meta["n_items"], arrays, extras)
    if verify is None:
        verify = not mmap or sum(a.nbytes for a in [*arrays.values(), *extras.values()]) <= VERIFY_MMAP_BYTES
    if verify:
        saved.checksums_verified = verify_arrays(path, meta, arrays, extras)
    return saved


def verify_arrays(
    path: Path, meta: dict[str, Any], arrays: dict[str, np.ndarray], extras: dict[str, np.ndarray]
) -> int:
    """Raise :class:`InputError` naming the first array file whose bytes differ from its checksum.

    A learned array saved without a checksum (by an older accel) is checked for
    NaN and infinite values instead. Returns how many files matched a checksum.
    """
    files = {**{f"{n}.npy": a for n, a in arrays.items()}, **{f"extra.{n}.npy": a for n, a in extras.items()}}
    learned = {f"{n}.npy" for n in arrays}
    verified = 0
    for name, array in files.items():
        recorded = meta.get("files", {}).get(name, {}).get(CHECKSUM)
        if recorded is None:
            where = first_non_finite(array) if name in learned else None
            if where is not None:
                raise InputError(
                    f"{path / name} holds NaN or infinite values (the first at index {where}): "
                    "the model cannot answer"
                )
            continue
        found = checksum(array)
        if found != recorded:
            raise InputError(
                f"{path / name} is damaged: its bytes do not match the checksum {META_FILE} records "
                f"({CHECKSUM} {found}, recorded {recorded!r})"
            )
        verified += 1
    return verified


# ---- checks -------------------------------------------------------------------------------------
def check_file_name(name: str) -> str:
    """``name`` if it is a safe array file name, else :class:`InputError`."""
    if not _FILE_NAME.fullmatch(name):
        raise InputError(f"cannot save an array as {name!r}: use letters, digits, '_', '-' and '.'")
    return name


def check_meta(path: Path, folder: Path) -> dict[str, Any]:
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


def check_array_file(path: Path, folder: Path, name: str, meta: dict[str, Any], mmap: bool) -> np.ndarray:
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
