"""Atomic writes: a failure leaves the old content and no temporary files."""

from __future__ import annotations

import os

import pytest

from accel.atomic import atomic_dir, atomic_file, current_version
from accel.errors import InputError


def test_atomic_file_replaces_on_success(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with atomic_file(target) as tmp:
        tmp.write_text("new")
        assert target.read_text() == "old"
    assert target.read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_atomic_file_failure_keeps_old_and_cleans_up(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_file(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("crash")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_atomic_dir_replaces_what_it_wrote_and_keeps_other_files(tmp_path):
    target = tmp_path / "model"
    with atomic_dir(target) as tmp:
        (tmp / "old.npy").write_text("x")
        (tmp / "kept.npy").write_text("old")
    (target / "notes.txt").write_text("mine")
    with atomic_dir(target) as tmp:
        (tmp / "fresh.npy").write_text("y")
        (tmp / "kept.npy").write_text("new")
        assert (target / "kept.npy").read_text() == "old"
    visible = sorted(p.name for p in target.iterdir() if not p.name.startswith("."))
    assert visible == ["fresh.npy", "kept.npy", "notes.txt"]
    assert (target / "kept.npy").read_text() == "new" and current_version(target) == tmp
    assert [p.name for p in tmp_path.iterdir()] == ["model"]
    assert sorted(p.name for p in target.iterdir() if p.name.startswith(".v-")) == [tmp.name]


def test_atomic_dir_refuses_a_folder_it_did_not_write(tmp_path):
    target = tmp_path / "data"
    target.mkdir()
    (target / "thesis.txt").write_text("x")
    with pytest.raises(InputError, match="did not write"), atomic_dir(target):
        pass
    assert [p.name for p in target.iterdir()] == ["thesis.txt"]


def test_a_failed_write_leaves_the_folder_as_it_was(tmp_path):
    target = tmp_path / "model"
    with atomic_dir(target) as tmp:
        (tmp / "a.npy").write_text("old")
    before = sorted(p.name for p in target.iterdir())
    with pytest.raises(RuntimeError), atomic_dir(target) as tmp:
        (tmp / "a.npy").write_text("half")
        raise RuntimeError("crash")
    assert sorted(p.name for p in target.iterdir()) == before and (target / "a.npy").read_text() == "old"


def test_missing_or_unwritable_parent_is_named(tmp_path):
    with pytest.raises(InputError, match="does not exist"), atomic_file(tmp_path / "nope" / "f"):
        pass
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.access(locked, os.W_OK):
            pytest.skip("running as a user who can write anywhere (root)")
        with pytest.raises(InputError, match="not writable"), atomic_file(locked / "f"):
            pass
    finally:
        locked.chmod(0o700)


def test_file_in_the_way_of_a_folder(tmp_path):
    (tmp_path / "m").write_text("x")
    with pytest.raises(InputError, match="a file of that name exists"), atomic_dir(tmp_path / "m"):
        pass


def test_results_get_normal_permissions_not_private_ones(tmp_path):
    mask = os.umask(0o022)
    try:
        with atomic_file(tmp_path / "recs.csv") as tmp:
            tmp.write_text("x")
        with atomic_dir(tmp_path / "model") as tmp:
            (tmp / "B.npy").write_text("y")
    finally:
        os.umask(mask)
    assert (tmp_path / "recs.csv").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "model").stat().st_mode & 0o777 == 0o755


def test_a_folder_is_created_with_its_missing_parents(tmp_path):
    """``model.save("models/x")`` works when ``models/`` does not exist yet (as ``mkdir -p``)."""
    with atomic_dir(tmp_path / "models" / "x") as version:
        (version / "a.txt").write_text("1")
    assert (tmp_path / "models" / "x" / "a.txt").read_text() == "1"
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError, match="is a file, not a folder"), atomic_dir(tmp_path / "file" / "x"):
        pass
