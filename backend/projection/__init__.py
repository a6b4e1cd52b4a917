"""2-D maps of the embeddings (UMAP, PCA), found by name in :data:`MAP_METHODS`."""

from .map2d import Projector2D
from .registry import MAP_METHODS

__all__ = ["MAP_METHODS", "Projector2D"]
