"""Recommender models sharing one fit / recommend / save interface."""

from accel.models.base import Recommender, load_model
from accel.models.ease import EASE, PrunedEASE

__all__ = ["EASE", "PrunedEASE", "Recommender", "load_model"]
