"""When to draw progress bars: only on a terminal, so redirected logs get no bar frames."""

from __future__ import annotations

import sys


def terminal_progress(show_progress: bool) -> bool:
    """Whether a third-party bar (similaripy's, Optuna's) is drawn: asked for, on a terminal.

    accel's own bars pass ``disable=None`` to tqdm, which decides the same way.
    """
    isatty = getattr(sys.stderr, "isatty", None)
    return bool(show_progress) and bool(isatty and isatty())
