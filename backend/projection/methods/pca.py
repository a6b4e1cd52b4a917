"""PCA: the first two principal components of the L2-normalised embeddings (fast, linear, no extra package)."""

from ..registry import register_map_method

register_map_method(
    "pca",
    priority=1,
    description="the first two principal components of the normalised embeddings: fast and "
    "linear, but clusters overlap more than in UMAP",
)
