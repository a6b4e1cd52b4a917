"""2-D maps of the embedding space for the app (UMAP, or PCA when asked)."""

from .map2d import MAP_METHODS, Projector2D

__all__ = ["MAP_METHODS", "Projector2D"]
