"""Write files and folders so that readers never see half of one and killed writers leave nothing behind.

A file is written under a temporary name beside it (``.NAME.PID-XXXX.tmp``), then
renamed over it in one step. A folder (a saved model, an unpacked data set) is
versioned: each write fills a new hidden version folder inside it
(``.v-PID-XXXX``), and publishing swaps the symlink ``.current`` to it with one
atomic rename; the folder's visible entries are symlinks through ``.current``, so
``ls``, ``cp -r`` and older readers see an ordinary folder. A reader that
resolves ``.current`` once (:func:`current_version`) reads one whole version.

Every temporary is locked (``flock``) by the process writing it, and SIGTERM or
Ctrl-C during a write removes it. What a ``kill -9`` leaves is removed by the next
write to the same path, never a temporary whose writer still runs.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
import signal
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

from accel.errors import InputError

#: The symlink inside a versioned folder that names its published version.
CURRENT = ".current"
#: Held (``flock``) while a version is created or published, so cleanup never races a writer.
LOCK = ".accel.lock"
VERSION_PREFIX = ".v-"
#: A file created and removed at once to learn whether a folder can be written.
PROBE_PREFIX = ".accel-probe-"
_VERSION = re.compile(rf"{re.escape(VERSION_PREFIX)}(\d+)-[A-Za-z0-9_]+")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _publish_mode(tmp: Path, default: int) -> None:
    """Give a temporary (created private by ``mkstemp``/``mkdtemp``) the mode a plain create would."""
    os.chmod(tmp, default & ~_umask())


def check_writable_folder(folder: Path, path: Path) -> None:
    """Raise :class:`InputError` unless ``path`` can be created in ``folder`` (checked before any work).

    The check creates and removes a probe file: permission bits do not tell a
    read-only mount, or a folder that even root cannot write to, from a writable one.
    """
    if not folder.is_dir():
        raise InputError(f"cannot write {path}: folder {folder} does not exist")
    try:
        fd, probe = tempfile.mkstemp(dir=folder, prefix=PROBE_PREFIX)
    except OSError as exc:
        raise InputError(f"cannot write {path}: folder {folder} is not writable ({exc.strerror})") from None
    os.close(fd)
    os.unlink(probe)


def _check_parent(path: Path) -> None:
    check_writable_folder(path.parent, path)


# ---- who owns a temporary ----------------------------------------------------------
def _try_lock(fd: int) -> bool:
    """Take an exclusive ``flock`` on ``fd`` without waiting; False when another process holds it.

    Where the file system has no ``flock`` this reports False, so such temporaries
    are never taken for abandoned.
    """
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    return True


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_if_abandoned(path: Path, pid: int | None) -> bool:
    """Delete temporary ``path`` when no process holds its lock (and its writer ``pid`` is gone)."""
    if pid is not None and pid != os.getpid() and _pid_alive(pid):
        return False
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return False
    try:
        if not _try_lock(fd):
            return False
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        return True
    finally:
        os.close(fd)


def remove_abandoned_files(folder: Path, name: str | re.Pattern[str]) -> list[Path]:
    """Remove the temporaries of ``folder/name`` whose writers died (killed mid-write); returns them.

    ``name`` is a file name, or a compiled pattern that file names match.
    """
    name = name.pattern if isinstance(name, re.Pattern) else re.escape(name)
    pattern = re.compile(rf"\.(?:{name})\.(\d+)-[A-Za-z0-9_]+\.tmp")
    removed = []
    with contextlib.suppress(OSError):
        for entry in os.scandir(folder):
            match = pattern.fullmatch(entry.name)
            if match and int(match.group(1)) != os.getpid():
                path = Path(entry.path)
                if _remove_if_abandoned(path, int(match.group(1))):
                    removed.append(path)
    return removed


# ---- signals -----------------------------------------------------------------------
def _raise_exit(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


@contextlib.contextmanager
def _exit_on_sigterm() -> Iterator[None]:
    """While writing, turn SIGTERM into ``SystemExit`` so ``finally`` blocks remove temporaries.

    Only where SIGTERM still has its default action (an application's own handler
    is left alone) and only in the main thread (where Python runs handlers).
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGTERM)
    if previous is not signal.SIG_DFL:
        yield
        return
    signal.signal(signal.SIGTERM, _raise_exit)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


# ---- files ---------------------------------------------------------------------------
@contextlib.contextmanager
def atomic_file(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path`` in one rename."""
    path = Path(path)
    _check_parent(path)
    remove_abandoned_files(path.parent, path.name)
    with _exit_on_sigterm():
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}-", suffix=".tmp", dir=path.parent)
        tmp_path = Path(tmp)
        try:
            _try_lock(fd)
            yield tmp_path
            _publish_mode(tmp_path, 0o666)
            os.replace(tmp_path, path)
        finally:
            tmp_path.unlink(missing_ok=True)
            os.close(fd)


# ---- versioned folders -----------------------------------------------------------------
@contextlib.contextmanager
def _folder_lock(folder: Path) -> Iterator[None]:
    """Hold ``folder``'s publish lock (briefly: while a version is created or published)."""
    fd = os.open(folder / LOCK, os.O_RDWR | os.O_CREAT, 0o666 & ~_umask())
    try:
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def current_version(folder: str | os.PathLike[str]) -> Path:
    """The folder holding ``folder``'s published content: its current version, or itself if unversioned.

    A version is never changed once published, only removed after a newer one
    replaces it; a reader that finds it gone resolves again.
    """
    folder = Path(folder)
    try:
        target = os.readlink(folder / CURRENT)
    except OSError:
        return folder
    if not _VERSION.fullmatch(target):
        raise InputError(f"{folder / CURRENT} points to {target!r}, not to a version of this folder")
    return folder / target


def is_versioned(folder: str | os.PathLike[str]) -> bool:
    """Whether ``folder`` was written by :func:`atomic_dir` (it has a ``.current`` link)."""
    return (Path(folder) / CURRENT).is_symlink()


def _bookkeeping(name: str) -> bool:
    return (
        name in (CURRENT, LOCK)
        or name.startswith((VERSION_PREFIX, PROBE_PREFIX))
        or name.startswith(f"{CURRENT}.")
    )


def _own_links(folder: Path) -> set[str]:
    """Visible entries of ``folder`` that are symlinks through ``.current`` (made by :func:`atomic_dir`)."""
    names = set()
    for entry in os.scandir(folder):
        if entry.is_symlink() and os.readlink(entry.path) == f"{CURRENT}/{entry.name}":
            names.add(entry.name)
    return names


def foreign_entries(folder: str | os.PathLike[str]) -> list[str]:
    """The visible entries of ``folder`` when they forbid writing there (else an empty list).

    A folder may be written when it is empty or versioned (written here before).
    Files that someone added to a versioned folder are kept by later writes.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    visible = [e for e in os.listdir(folder) if not _bookkeeping(e)]
    if is_versioned(folder):
        return []
    return sorted(visible)


def check_folder_destination(path: str | os.PathLike[str], what: str) -> Path:
    """Raise :class:`InputError` unless ``path`` can take a versioned write (checked before any work)."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise InputError(f"cannot write {what} {path}: a file of that name exists")
    if not path.exists():  # created with its missing parents, under the nearest existing folder
        ancestor = next(folder for folder in path.absolute().parents if folder.exists())
        if not ancestor.is_dir():
            raise InputError(f"cannot write {what} {path}: {ancestor} is a file, not a folder")
        check_writable_folder(ancestor, path)
        return path
    check_writable_folder(path, path)
    foreign = foreign_entries(path)
    if foreign:
        raise InputError(
            f"refusing to write {what} to {path}: the folder holds files accel did not write "
            f"({foreign[0]!r}{', ...' if len(foreign) > 1 else ''}); choose an empty or new folder"
        )
    return path


def _swap_link(link: Path, target: str) -> None:
    """Point symlink ``link`` at ``target`` in one rename (replacing a file or link there)."""
    tmp = link.with_name(f"{CURRENT}.{os.getpid()}-{threading.get_ident()}.tmp")
    tmp.unlink(missing_ok=True)
    os.symlink(target, tmp)
    try:
        os.replace(tmp, link)
    except OSError:
        tmp.unlink(missing_ok=True)
        raise


def _publish(folder: Path, version: Path) -> None:
    """Make ``version`` what ``folder`` shows; remove what earlier writes left that nothing uses."""
    old_links = _own_links(folder)
    _swap_link(folder / CURRENT, version.name)
    names = set(os.listdir(version))
    for name in sorted(names):
        link = folder / name
        if link.is_symlink() and os.readlink(link) == f"{CURRENT}/{name}":
            continue
        if link.is_dir() and not link.is_symlink():
            shutil.rmtree(link)
        _swap_link(link, f"{CURRENT}/{name}")
    for name in old_links - names:
        path = folder / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    for entry in os.scandir(folder):
        if entry.name != version.name and _VERSION.fullmatch(entry.name):
            _remove_if_abandoned(Path(entry.path), None)
        elif entry.name.startswith(f"{CURRENT}.") and entry.name.endswith(".tmp"):
            # Links are only swapped under the publish lock, which this call holds: any left is stale.
            Path(entry.path).unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield an empty version folder inside ``path``; on success ``path`` shows it, in one rename.

    Readers see the old or the new content, never a mix or nothing; concurrent
    writers never fail each other (the last to finish wins). ``path`` is created
    if missing; an existing folder must be empty or versioned (see
    :func:`foreign_entries`). Files accel did not write are kept.
    """
    path = check_folder_destination(path, "folder")
    with contextlib.suppress(FileExistsError):
        path.mkdir(parents=True)
    with _exit_on_sigterm():
        with _folder_lock(path):
            check_folder_destination(path, "folder")
            version = Path(tempfile.mkdtemp(prefix=f"{VERSION_PREFIX}{os.getpid()}-", dir=path))
            fd = os.open(version, os.O_RDONLY)
            _try_lock(fd)
        published = False
        try:
            yield version
            _publish_mode(version, 0o777)
            with _folder_lock(path):
                check_folder_destination(path, "folder")
                _publish(path, version)
            published = True
        finally:
            if not published:
                shutil.rmtree(version, ignore_errors=True)
            os.close(fd)
