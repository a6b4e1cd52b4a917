"""UMAP: PCA to ~50 dimensions, UMAP fitted on a sample, the rest placed by nearest neighbours."""

from ..registry import register_map_method

register_map_method(
    "umap",
    priority=0,
    needs="umap-learn",
    description="UMAP of the PCA-reduced embeddings (fitted on at most 20,000 examples, the rest "
    "placed by nearest neighbours): neighbourhoods are kept, distances are not",
)
