"""Adding a model is one class with a registry entry: the CLI, the bench and tuning find it."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import scipy.sparse as sp

from accel.bench.specs import build_model, default_specs
from accel.cli import main
from accel.data import synthetic_interactions
from accel.models.base import Recommender, load_model
from accel.models.registry import CLASSES, Entry, Range, registered
from accel.serving.popular_fallback import popularity_factors, popularity_ranking
from accel.tuning import search_spaces


@pytest.fixture
def tiny_model():
    """A small model defined here: item popularity raised to ``power``, served sparsely."""

    class Tiny(Recommender):
        entry = Entry("tiny", variants={"": {"power": 2.0}}, spaces={"": {"power": Range(0.5, 3.0)}})
        scoring = "sparse"

        def __init__(self, power: float = 1.0, backend: str = "auto", dtype: str = "float32") -> None:
            super().__init__(backend=backend, dtype=dtype)
            self.power = power

        def _fit(self, X: sp.csr_matrix, show_progress: bool) -> None:
            self.weights_ = (self.popularity_.astype(self.dtype_) ** self.power).astype(self.dtype_)

        def _sparse_factors(self, X, columns, candidates):
            ranking = popularity_ranking(self.weights_)
            return popularity_factors(self.weights_, ranking, X.shape[0], columns, candidates, self.dtype_)

        def _item_scores(self, item: int) -> Any:
            return self.weights_

        def _state(self) -> dict[str, Any]:
            return {"weights": self.weights_}

        def _set_state(self, arrays: dict[str, np.ndarray]) -> None:
            self.weights_ = np.asarray(arrays["weights"])

    yield Tiny
    CLASSES.pop("Tiny")


def test_a_registered_model_is_offered_everywhere(tiny_model, tmp_path, capsys):
    assert registered()["tiny"] is tiny_model
    spec = next(s for s in default_specs(dask=False) if s.model == "Tiny")
    assert spec.params == {"power": 2.0} and build_model(spec).get_params()["power"] == 2.0
    assert [(v, dict(s)) for c, v, s in search_spaces() if c is tiny_model] == [
        ("", {"power": Range(0.5, 3.0)})
    ]
    log = tmp_path / "log.csv"
    synthetic_interactions(100, 30, mean_per_user=5, seed=1).to_csv(log, index=False)
    code = main(
        ["fit", str(log), "--model", "tiny", "--backend", "numpy", "--out", str(tmp_path / "m"), "-q"]
    )
    assert code == 0, capsys.readouterr().err
    model = load_model(tmp_path / "m")
    assert isinstance(model, tiny_model)
    ids, scores = model.recommend_from_items([], k=3)
    assert np.all(np.diff(scores) <= 0) and (ids >= 0).all()


def test_the_registry_lists_the_shipped_models():
    assert set(registered()) == {"ease", "sparse_ease", "toppop", "itemknn", "userknn"}
    assert "PrunedEASE" in CLASSES  # loadable, made by EASE.prune or `accel fit --prune`
