"""accel without similaripy (a CUDA image may lack it): EASE works end to end, KNN says what is missing."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

SCRIPT = textwrap.dedent(
    """
    import sys
    sys.modules["similaripy"] = None  # import similaripy now raises ImportError
    import numpy as np
    import scipy.sparse as sp
    import accel
    from accel import EASE, ItemKNN, load_model
    from accel.errors import AccelError

    rng = np.random.default_rng(0)
    X = sp.random(60, 25, density=0.2, format="csr", random_state=rng, dtype=np.float32)
    X.data[:] = 1.0
    model = EASE(l2=10.0, backend="numpy").fit(X, show_progress=False)
    model.save(sys.argv[1])
    loaded = load_model(sys.argv[1], backend="numpy")
    ids, _ = loaded.recommend(X[:5], k=3)
    want, _ = model.recommend(X[:5], k=3)
    assert (ids == want).all(), (ids, want)
    try:
        ItemKNN(k=5, backend="numpy").fit(X, show_progress=False)
    except AccelError as exc:
        print("KNN:", exc)
    else:
        raise SystemExit("ItemKNN fitted without similaripy")
    print("served", ids.shape)
    """
)


def test_ease_fits_saves_loads_and_serves_without_similaripy(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path / "model")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "served (5, 3)" in result.stdout
    (knn_line,) = [line for line in result.stdout.splitlines() if line.startswith("KNN:")]
    assert "similaripy" in knn_line and "not installed" in knn_line
