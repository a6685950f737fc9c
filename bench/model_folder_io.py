"""What checksums cost a model folder: writing B with its CRC-32 vs ``np.save``, and loading with and
without verification (memory-mapped and read).

B is a random float32 n × n matrix (default n = 10,000: 381 MiB, the size of the 100k × 10k benchmark's
EASE). Each measurement is the median of ``--repeats`` runs, alternating the two sides, in one process;
the files stay in the page cache, so the times are those of a warm load. Prints a table and writes
JSON to ``bench/results/model_folder_io.json``. Run from the repository root:
``python bench/model_folder_io.py`` (``--items`` for another size).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from accel import model_folder
from accel.bench.report import machine_info, write_json
from accel.model_folder import SavedModel, read_folder, save_folder


def median_seconds(run: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default="bench/results/model_folder_io.json")
    args = parser.parse_args()
    B = np.random.default_rng(0).standard_normal((args.items, args.items), dtype=np.float32)
    saved = SavedModel("EASE", {"l2": 500.0, "dtype": "float32"}, args.items, {"B": B}, {})
    with tempfile.TemporaryDirectory(dir=".") as tmp:
        folder = Path(tmp)
        writers = {
            "write B: np.save": lambda: np.save(folder / "plain.npy", B, allow_pickle=False),
            "write B: write_array (with its CRC-32)": lambda: model_folder.write_array(folder / "crc.npy", B),
        }
        writes: dict[str, list[float]] = {name: [] for name in writers}
        for _ in range(args.repeats):  # alternate the two writers, so disk and cache states even out
            for name, run in writers.items():
                writes[name].append(median_seconds(run, 1))
        results = {name: statistics.median(times) for name, times in writes.items()}
        results["finite check of B (refusing NaN at save)"] = median_seconds(
            lambda: model_folder.check_finite_weights({"B": B}), args.repeats
        )
        results["whole save_folder"] = median_seconds(lambda: save_folder(folder / "m", saved), args.repeats)
        for mmap in (True, False):
            for verify in (False, True):
                name = (
                    f"load, {'memory-mapped' if mmap else 'read'}, {'verified' if verify else 'not verified'}"
                )
                results[name] = median_seconds(partial(read_folder, folder / "m", mmap, verify), args.repeats)
    for name, seconds in results.items():
        print(f"{name:55s} {seconds:8.3f} s")
    write = results["write B: write_array (with its CRC-32)"] / results["write B: np.save"]
    print(f"write_array / np.save: {write:.2f}×")
    payload = {"items": args.items, "bytes": int(B.nbytes), "repeats": args.repeats, "seconds": results}
    write_json(args.out, {**payload, "machine": machine_info()})


if __name__ == "__main__":
    main()
