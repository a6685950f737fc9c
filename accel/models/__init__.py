"""Recommender models sharing one fit / recommend / save interface."""

from accel.models.base import Recommender, load_model
from accel.models.ease import EASE

__all__ = ["EASE", "Recommender", "load_model"]
