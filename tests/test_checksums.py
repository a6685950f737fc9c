"""Model folders record a checksum of every array.

Damage is found by load, ``verify=True`` and ``accel check``; weights that are not finite are never saved.
"""

from __future__ import annotations

import json
import os
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import random_interactions

from accel import model_folder
from accel.cli import main
from accel.errors import InputError
from accel.models.base import load_model
from accel.models.ease import EASE
from accel.models.knn import ItemKNN


@pytest.fixture(scope="module")
def X():
    return random_interactions(150, 40, 0.15, seed=3)


@pytest.fixture
def saved(X, tmp_path) -> Path:
    """A model saved by ``accel fit`` (with its item ids), as a user would serve it."""
    rows, cols = X.nonzero()
    log = tmp_path / "log.csv"
    pd.DataFrame({"user_id": rows, "item_id": cols}).to_csv(log, index=False)
    assert main(["fit", str(log), "--backend", "numpy", "--l2", "5", "--out", str(tmp_path / "m"), "-q"]) == 0
    return tmp_path / "m"


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def flip_bytes(file: Path, offset_from_end: int = 100) -> None:
    """Overwrite three bytes inside the array data of ``file`` in place (its size is unchanged)."""
    target = file.resolve()  # the version's file, not the folder's symlink
    with open(target, "r+b") as f:
        f.seek(target.stat().st_size - offset_from_end)
        old = f.read(3)
        f.seek(-3, 1)
        f.write(bytes(b ^ 0x5A for b in old))


def data_crc(file: Path) -> str:
    """CRC-32 of the bytes after a ``.npy`` file's header, computed from the file alone."""
    with open(file, "rb") as f:
        version = np.lib.format.read_magic(f)
        read_header = (
            np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        )
        read_header(f)
        return f"{zlib.crc32(f.read()):08x}"


def test_model_json_records_the_crc32_of_each_array_file(saved):
    meta = json.loads((saved / "model.json").read_text())
    assert set(meta["files"]) == {f"{n}.npy" for n in meta["arrays"]} | {
        f"extra.{n}.npy" for n in meta["extras"]
    }
    for name, entry in meta["files"].items():
        assert entry["crc32"] == data_crc(saved / name), name
    B = np.load(saved / "B.npy")  # still a plain .npy file
    np.testing.assert_array_equal(B, load_model(saved).B_)


@pytest.mark.parametrize(
    "array",
    [
        np.arange(12, dtype=np.float32).reshape(3, 4),
        np.asfortranarray(np.arange(12, dtype=np.float64).reshape(3, 4)),
        np.arange(40, dtype=np.int64).reshape(5, 8)[:, ::3],  # not contiguous
        np.array(["0108775015", "42"]),
        np.array("customer_id"),
        np.empty(0, dtype=np.int32),
    ],
)
def test_written_arrays_read_back_with_np_load_and_match_their_checksum(tmp_path, array):
    crc = model_folder.write_array(tmp_path / "a.npy", array)
    back = np.load(tmp_path / "a.npy")
    np.testing.assert_array_equal(back, array)
    assert back.dtype == array.dtype and crc == data_crc(tmp_path / "a.npy") == model_folder.checksum(back)


def test_flipped_bytes_are_found_by_load_and_by_accel_check(saved, capsys):
    code, out, err = run_cli(capsys, "check", str(saved))
    assert code == 0 and err == ""
    assert out == f"ok: {saved}: EASE of 40 items; all 7 arrays match their crc32 checksums\n"
    flip_bytes(saved / "B.npy")
    for kwargs in ({}, {"mmap": False}, {"verify": True}):
        with pytest.raises(InputError, match=r"B\.npy is damaged: its bytes do not match the checksum"):
            load_model(saved, **kwargs)
    assert load_model(saved, verify=False).n_items_ == 40  # asked not to verify: loads as before
    for command in (
        ["check", str(saved)],
        ["recommend", str(saved), "--items", "3"],
        ["similar", str(saved), "3"],
    ):
        code, out, err = run_cli(capsys, *command)
        assert code == 2 and out == "" and err.count("\n") == 1 and "Traceback" not in err, err
        assert f"{saved / 'B.npy'} is damaged" in err


def test_a_b_replaced_by_nan_is_refused_not_served(saved, capsys):
    """As if B.npy had been overwritten with an array of the same shape, all NaN."""
    B = np.load(saved / "B.npy")
    np.save(saved / "B.npy", np.full_like(B, np.nan))
    code, out, err = run_cli(capsys, "recommend", str(saved), "--items", "3")
    assert code == 2 and out == "" and "B.npy is damaged" in err


def test_damaged_item_ids_are_found_too(saved, capsys):
    flip_bytes(saved / "extra.item_ids.npy", offset_from_end=4)
    code, _, err = run_cli(capsys, "check", str(saved))
    assert code == 2 and "extra.item_ids.npy is damaged" in err


def test_large_memory_mapped_models_are_verified_when_asked(saved, capsys, monkeypatch):
    monkeypatch.setattr(model_folder, "VERIFY_MMAP_BYTES", 1000)  # "large": every model here
    flip_bytes(saved / "B.npy")
    loaded = load_model(saved)  # memory-mapped and large: not read through
    assert not loaded.B_.flags.owndata
    with pytest.raises(InputError, match=r"B\.npy is damaged"):
        load_model(saved, verify=True)
    with pytest.raises(InputError, match=r"B\.npy is damaged"):
        load_model(saved, mmap=False)  # read into memory anyway: verified
    code, _, err = run_cli(capsys, "check", str(saved))
    assert code == 2 and "B.npy is damaged" in err


def test_folders_saved_without_checksums_still_load_and_check_says_so(saved, capsys):
    meta_file = (saved / "model.json").resolve()
    meta = json.loads(meta_file.read_text())
    for entry in meta["files"].values():
        del entry["crc32"]
    meta_file.write_text(json.dumps(meta))
    flip_bytes(saved / "B.npy")  # cannot be told from a model without checksums
    assert load_model(saved).n_items_ == 40
    code, out, err = run_cli(capsys, "check", str(saved))
    assert code == 0 and "7 of its 7 arrays were saved without a checksum" in out
    B = np.load(saved / "B.npy")
    B[2, 7] = np.inf
    np.save(saved / ".current" / "B.npy", B)
    with pytest.raises(
        InputError, match=r"B\.npy holds NaN or infinite values \(the first at index \(2, 7\)\)"
    ):
        load_model(saved)
    code, _, err = run_cli(capsys, "check", str(saved))
    assert code == 2 and "holds NaN or infinite values" in err


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_weights_that_are_not_finite_are_refused_at_save_and_nothing_is_written(X, tmp_path, bad):
    good = EASE(l2=5, backend="numpy").fit(X, show_progress=False)
    good.save(tmp_path / "m")
    broken = EASE(l2=7, backend="numpy").fit(X, show_progress=False)
    broken.B_[4, 9] = bad
    for path in (tmp_path / "new", tmp_path / "m"):
        with pytest.raises(
            InputError, match=r"learned array B holds NaN or infinite values \(the first at index \(4, 9\)\)"
        ):
            broken.save(path)
    assert not (tmp_path / "new").exists()
    kept = load_model(tmp_path / "m")
    assert kept.l2 == 5 and np.array_equal(kept.B_, good.B_)
    versions = [p.name for p in (tmp_path / "m").iterdir() if p.name.startswith(".v-")]
    assert versions == [os.readlink(tmp_path / "m" / ".current")]  # no version of the refused save


def test_sparse_weights_that_are_not_finite_are_refused(X, tmp_path):
    model = ItemKNN("cosine", k=5, backend="numpy").fit(X, show_progress=False)
    model.S_.data[3] = np.nan
    with pytest.raises(InputError, match="learned array S_data holds NaN"):
        model.save(tmp_path / "knn")
    assert not (tmp_path / "knn").exists()
