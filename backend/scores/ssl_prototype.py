"""Self-supervised prototypes (SSP, Sorscher et al. 2022): distance to the nearest k-means centroid."""

from __future__ import annotations

import numpy as np

from .base import ScoreContext, register_metric


def ssl_prototype_from_sim(sim_to_nearest_centroid: np.ndarray) -> np.ndarray:
    """SSP difficulty in [0, 2] from the cosine similarity to the nearest centroid."""
    return (1.0 - np.asarray(sim_to_nearest_centroid, dtype=np.float32)).astype(np.float32)


@register_metric(
    "ssl_prototype",
    priority=0,
    needs_labels=False,
    recompute_in_subset=True,
    cost="k-means",
    uses_clusters=True,
    range="[0, 2]",
    description="self-supervised prototypes: 1 - cosine similarity to the nearest k-means "
    "centroid (no labels). Higher = harder.",
)
def ssl_prototype(ctx: ScoreContext) -> np.ndarray:
    """1 - cosine similarity to the nearest of ``ctx.k`` spherical k-means centroids of ``ctx.rows``."""
    sim = ctx.centroid_sim
    if sim is None:  # no clustering of exactly these rows yet (the scaling grid's subsets): cluster them
        from ..cluster import SphericalKMeans

        km = SphericalKMeans(ctx.k, n_iter=ctx.kmeans_iters, random_state=ctx.seed, device=ctx.device)
        _, sim = km.fit_predict(ctx.embeddings, ctx.rows)  # the training rows' answer comes with the fit
    return ssl_prototype_from_sim(sim)
