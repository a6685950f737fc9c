"""How much host memory a process may still take, cgroup limits included."""

from __future__ import annotations

from pathlib import Path

import psutil


def _cgroup_headroom() -> int | None:
    """Bytes left under a cgroup v2/v1 memory limit, or ``None`` when unlimited."""
    candidates = [
        (Path("/sys/fs/cgroup/memory.max"), Path("/sys/fs/cgroup/memory.current")),
        (
            Path("/sys/fs/cgroup/memory/memory.limit_in_bytes"),
            Path("/sys/fs/cgroup/memory/memory.usage_in_bytes"),
        ),
    ]
    for limit_file, usage_file in candidates:
        try:
            limit_text = limit_file.read_text().strip()
            usage = int(usage_file.read_text().strip())
        except (OSError, ValueError):
            continue
        if limit_text == "max":
            return None
        limit = int(limit_text)
        if limit >= 1 << 60:  # cgroup v1 spells "no limit" as a huge number
            return None
        return max(limit - usage, 0)
    return None


def available_host_memory() -> int:
    """Bytes of RAM this process can still allocate without swapping or being killed."""
    available = psutil.virtual_memory().available
    headroom = _cgroup_headroom()
    return available if headroom is None else min(available, headroom)


def peak_rss() -> int:
    """Peak resident set size of this process so far, in bytes.

    On Linux this is ``VmHWM`` from ``/proc/self/status``: ``ru_maxrss`` there
    survives fork and exec, so a fresh worker would report its parent's peak.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    import resource
    import sys

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)
