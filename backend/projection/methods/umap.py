"""UMAP: PCA to ~50 dimensions, UMAP on every point up to 50,000, above on a stratified sample, the rest placed."""

from ..registry import register_map_method

register_map_method(
    "umap",
    priority=0,
    needs="umap-learn",
    description="UMAP of the PCA-reduced embeddings (every example up to 50,000; above, fitted on 50,000 "
    "drawn per cluster and the rest placed by nearest neighbours): neighbourhoods are kept, distances are not",
)
