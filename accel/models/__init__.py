"""Recommender models sharing one fit / recommend / save interface; importing this registers them all."""

from accel.models.base import Recommender, load_model
from accel.models.ease import EASE, PrunedEASE
from accel.models.knn import ItemKNN, UserKNN
from accel.models.popular import TopPopular
from accel.models.sparse_ease import SparseEASE

__all__ = [
    "EASE",
    "ItemKNN",
    "PrunedEASE",
    "Recommender",
    "SparseEASE",
    "TopPopular",
    "UserKNN",
    "load_model",
]
