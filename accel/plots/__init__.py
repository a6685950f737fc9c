"""Pictures of what a model learned: the item map (UMAP of item fingerprints) and its drawing."""

from accel.plots.draw import draw_item_map, save_figure
from accel.plots.map_layout import item_fingerprints, item_map, neighbourhood_purity, read_item_meta

__all__ = [
    "draw_item_map",
    "item_fingerprints",
    "item_map",
    "neighbourhood_purity",
    "read_item_meta",
    "save_figure",
]
