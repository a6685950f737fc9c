"""Getting a fitted model onto every Dask worker once per run, not once per chunk.

Two ways, measured in ``docs/distributed.md``:

* **mmap** - the model folder (``model.save``) sits on storage every worker can
  read; each worker maps it (``load_model(path, mmap=True)``) the first time a
  chunk needs it. Nothing is sent but the path, and workers on one machine
  share one copy of ``B`` through the page cache.
* **scatter** - the model's arrays are broadcast to every worker with
  ``client.scatter(..., broadcast=True)``; chunks name the resulting future, so
  the scheduler never copies ``B`` into a task. Needs no shared storage, but
  each worker holds a private copy.

Either way a worker builds the model with the model's own backend setting
(``"auto"`` scores on the worker's GPU when it has one) and caches it for the
rest of the run. A model whose ``n_threads`` is ``None`` scores on as many
threads as the worker has (its ``nthreads``), not on every core of its machine.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import tempfile
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeGuard

import numpy as np

from accel.atomic import current_version
from accel.errors import InputError
from accel.model_folder import META_FILE, SavedModel
from accel.models.base import Recommender, load_model

TRANSFERS = ("auto", "mmap", "scatter")


@dataclass(frozen=True)
class PathRef:
    """A saved model folder every worker can read; tasks carry only this."""

    path: str
    token: str


@dataclass
class ModelPayload:
    """A model's class, parameters and learned arrays on the host: what gets scattered."""

    token: str
    cls_name: str
    params: dict[str, Any]
    n_items: int
    arrays: dict[str, np.ndarray] = field(repr=False)

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        with _LOCK:
            _STATS["payload_unpickles"] += 1

    def build(self) -> Recommender:
        """The model, on the backend its parameters name, as ``Recommender.load`` would make it."""
        saved = SavedModel(self.cls_name, self.params, self.n_items, self.arrays, {})
        return Recommender._from_saved(saved, None, f"the shipped {self.cls_name}")


@dataclass
class ShippedModel:
    """What tasks receive (a :class:`PathRef`, or the future of a :class:`ModelPayload`); cleans up after."""

    ref: Any
    mode: str
    token: str
    temp_dir: str | None = None

    def release(self, client: Any) -> None:
        """Drop the workers' cached copies and any temporary model folder."""
        with contextlib.suppress(OSError):
            client.run(forget_model, self.token)
        if self.mode == "scatter":
            self.ref.release()
        if self.temp_dir is not None:
            shutil.rmtree(self.temp_dir, ignore_errors=True)


# ---- worker side -------------------------------------------------------------
_LOCK = threading.Lock()
_MODELS: dict[str, Recommender] = {}
_STATS = {"payload_unpickles": 0, "model_builds": 0}


def worker_model(ref: PathRef | ModelPayload) -> Recommender:
    """The model for ``ref`` on this worker, built on first use and cached for the run (one at a time)."""
    token = ref.token
    with _LOCK:
        model = _MODELS.get(token)
        if model is None:
            # The client loaded (and verified) this version; each worker only maps it.
            model = load_model(ref.path, mmap=True, verify=False) if isinstance(ref, PathRef) else ref.build()
            threads = worker_threads()
            if threads and "n_threads" in model.param_names() and model.get_params()["n_threads"] is None:
                model.backend_ = model.backend_.with_threads(threads)
            _MODELS.clear()
            _MODELS[token] = model
            _STATS["model_builds"] += 1
        return model


def worker_threads() -> int | None:
    """The thread count of the Dask worker running this task (``None`` outside a worker)."""
    try:
        from distributed import get_worker

        return int(get_worker().state.nthreads)
    except (ImportError, ValueError, AttributeError):
        return None


def forget_model(token: str) -> None:
    """Release this worker's cached copy of the run ``token`` (run on every worker when a run ends)."""
    with _LOCK:
        _MODELS.pop(token, None)


def worker_stats(reset: bool = False) -> dict[str, int]:
    """How often this worker deserialised a scattered model and built one (diagnostics, tests)."""
    with _LOCK:
        stats = dict(_STATS)
        if reset:
            _STATS.update(dict.fromkeys(_STATS, 0))
        return stats


# ---- client side -------------------------------------------------------------
def payload_of(model: Recommender) -> ModelPayload:
    """Host copies of a fitted model's arrays, ready to scatter."""
    backend = model.backend_
    params = {
        k: v if isinstance(v, (str, int, float, bool, type(None))) else getattr(v, "name", v)
        for k, v in model.get_params().items()
    }
    return ModelPayload(
        token=uuid.uuid4().hex,
        cls_name=type(model).__name__,
        params=params,
        n_items=int(model.n_items_),
        arrays={name: backend.to_host(a) for name, a in model._saved_state().items()},
    )


def is_saved_model(path: object) -> TypeGuard[str | os.PathLike[str]]:
    """Whether ``path`` names a folder written by ``Recommender.save``."""
    return isinstance(path, (str, os.PathLike)) and (Path(path) / META_FILE).is_file()


def workers_see(client: Any, path: str | os.PathLike[str]) -> bool:
    """Whether every worker can read ``path`` (a file or folder) at the same name."""
    seen = client.run(os.path.exists, str(path))
    return bool(seen) and all(seen.values())


def workers_are_local(client: Any) -> bool:
    """Whether every worker runs on this machine (so a temporary folder here is shared)."""
    names = client.run(socket.gethostname)
    return bool(names) and all(name == socket.gethostname() for name in names.values())


def ship_model(
    client: Any, model: Recommender | str | os.PathLike[str], transfer: str = "auto"
) -> ShippedModel:
    """Make ``model`` (a fitted model or a saved model folder) available on every worker once.

    ``"auto"`` memory-maps when every worker can read the model folder (a saved
    folder that is visible to them, or a temporary one written here when all
    workers are on this machine) and scatters otherwise.
    """
    if transfer not in TRANSFERS:
        raise InputError(f"model_transfer must be one of {', '.join(TRANSFERS)}, got {transfer!r}")
    token = uuid.uuid4().hex
    if is_saved_model(model):
        # Pin the version saved now: a save over the folder during the run must not mix models.
        path = str(current_version(Path(model).resolve()))
        if transfer != "scatter" and workers_see(client, Path(path) / META_FILE):
            return ShippedModel(PathRef(path, token), "mmap", token)
        if transfer == "mmap":
            raise InputError(
                f"the Dask workers cannot read the model folder {path}: put it on shared storage"
            )
        return _scatter(client, load_model(path, mmap=True))
    if not isinstance(model, Recommender):
        raise InputError(f"model must be a fitted accel model or a saved model folder, got {model!r}")
    model._check_fitted()
    if transfer == "scatter" or (transfer == "auto" and not workers_are_local(client)):
        return _scatter(client, model)
    temp_dir = tempfile.mkdtemp(prefix="accel-model-")
    folder = Path(temp_dir) / "model"
    model.save(folder)
    if workers_see(client, folder / META_FILE):
        return ShippedModel(PathRef(str(folder), token), "mmap", token, temp_dir)
    shutil.rmtree(temp_dir, ignore_errors=True)
    if transfer == "mmap":
        raise InputError(
            "the Dask workers cannot read this machine's temporary folder: save the model to "
            "shared storage and pass its folder instead"
        )
    return _scatter(client, model)


def _scatter(client: Any, model: Recommender) -> ShippedModel:
    payload = payload_of(model)
    future = client.scatter(payload, broadcast=True, hash=False)
    return ShippedModel(future, "scatter", payload.token)
