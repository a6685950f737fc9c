"""``accel check``: verify a saved model folder byte for byte before serving it."""

from __future__ import annotations

import argparse
import os

from accel.cli._common import check_model_dir
from accel.model_folder import CHECKSUM, META_FILE, read_folder
from accel.models.base import Recommender


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "check",
        help="verify a saved model against its checksums",
        description=f"Read every array of MODEL_DIR, compare it with the checksum {META_FILE} records "
        "and build the model from it, as loading does. Prints one 'ok' line (exit status 0), or one "
        "line naming the damaged file (exit status 2). Loading verifies a model by itself unless it "
        "is memory-mapped and over 1 GiB; this command verifies any size. Example: accel check model/",
    )
    parser.add_argument("model_dir", metavar="MODEL_DIR", help="folder written by `accel fit` or save()")
    parser.add_argument("--backend", default="numpy", help="backend to build the model on (default numpy)")
    parser.set_defaults(func=run)


def check_model_folder(path: str | os.PathLike[str], backend: str = "numpy") -> str:
    """Verify the model folder ``path`` in full; the ``ok`` line, or :class:`InputError` naming the damage."""
    check_model_dir(path)
    saved = read_folder(path, mmap=True, verify=True)
    model = Recommender._from_saved(saved, backend, str(path))
    files = len(saved.arrays) + len(saved.extras)
    what = f"ok: {path}: {type(model).__name__} of {model.n_items_:,} items"
    if saved.checksums_verified == files:
        return f"{what}; all {files} arrays match their {CHECKSUM} checksums"
    unverified = files - saved.checksums_verified
    return (
        f"{what}; {unverified} of its {files} arrays were saved without a checksum (by an older accel), "
        "so only their shapes, sizes and finite weights were checked: save it again to add checksums"
    )


def run(args: argparse.Namespace) -> int:
    print(check_model_folder(args.model_dir, args.backend))
    return 0
