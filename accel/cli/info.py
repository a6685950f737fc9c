"""``accel info``: which backends work here, the GPU, and how much memory there is."""

from __future__ import annotations

import argparse
import json
import os
import platform

from accel.backends import available_backends, get_backend
from accel.errors import format_bytes
from accel.memory import available_host_memory


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "info",
        help="show available backends, GPU and memory",
        description="Show which array backends are usable here (and why not), the GPU, "
        "free host and device memory, and the largest EASE catalogue that fits.",
    )
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON")
    parser.set_defaults(func=run)


def collect() -> dict:
    """Facts about this machine that decide what accel can fit."""
    import numpy
    import scipy

    from accel import __version__

    backends = available_backends()
    info: dict = {
        "accel": __version__,
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "scipy": scipy.__version__,
        "cpu_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "host_memory_available": available_host_memory(),
        "backends": backends,
        "auto": get_backend("auto").name,
    }
    for name, status in backends.items():
        if status != "available":
            continue
        backend = get_backend(name)
        free = backend.free_memory()
        info[f"{name}_memory"] = {"where": backend.memory_kind(), "free": free}
        info[f"{name}_max_ease_items_float32"] = largest_fit(free, backend)
    info["max_ease_items_float32"] = info.get(f"{info['auto']}_max_ease_items_float32")
    return info


def largest_fit(free: int, backend) -> int:
    """The largest n_items whose float32 EASE fit fits in ``free`` bytes (bisection)."""
    from accel.models.ease import EASE

    lo, hi = 0, 1 << 22
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if EASE.memory_required(mid, "float32", backend) <= free:
            lo = mid
        else:
            hi = mid - 1
    return lo


def run(args: argparse.Namespace) -> int:
    info = collect()
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print(f"accel {info['accel']}  python {info['python']}  numpy {info['numpy']}  scipy {info['scipy']}")
    print(
        f"cpu cores: {info['cpu_cores']}  "
        f"host memory available: {format_bytes(info['host_memory_available'])}"
    )
    for name, status in info["backends"].items():
        print(f"backend {name}: {status}")
        if f"{name}_memory" in info:
            mem = info[f"{name}_memory"]
            print(
                f"  {mem['where']}: {format_bytes(mem['free'])} free; "
                f"largest float32 EASE fit ≈ {info[f'{name}_max_ease_items_float32']:,} items"
            )
    print(f"auto picks: {info['auto']}")
    return 0
