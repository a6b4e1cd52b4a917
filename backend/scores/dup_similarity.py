"""Semantic-duplicate distance (SemDeDup, Abbas et al. 2023): how far an example is from its nearest cluster-mate.

Orientation.  The raw quantity is ``max_sim``, the largest cosine similarity
to another member of the example's k-means cluster (SemDeDup's duplicate
test is ``max_sim > 1 - eps``).  A near-duplicate is redundant: the easiest
kind of example to drop.  Every score in this product is "higher = harder"
(keep-hard keeps the highest), so the registered score is the *distance*
``dup_distance = 1 - max_sim`` in [0, 2]: 0 for an exact copy, larger for an
example with no close neighbour (2 for an example alone in its cluster).
Keep-hard by ``dup_distance`` drops the most duplicated examples first.  The
raw similarity is :attr:`backend.dedup.DedupIndex.max_sim`; the dedup step
itself (which member of a group to keep) is :func:`backend.dedup.semdedup`.

Cost: one exact search inside every cluster, about ``N^2 D / (2K)``
multiply-adds (2.6e11 for 1M x 512, K = 1000: 27 s on 2 busy cores, see
benchmarks/bench_dedup.py), plus a k-means fit when the context carries no
cluster assignment (the pipeline's ScoreContext does not yet).  On the
60,000-image demo it took 17 s on the shared 2-core machine, about as much as
the clusters stage itself, so it is not computed by default: ask for it
(``curate run --metrics ...,dup_distance``, ``compute_scores(run, ["dup_distance"])``).
The Redundancy page and ``curate dedup`` do not need the column.
"""

from __future__ import annotations

import numpy as np

from .base import ScoreContext, register_metric


@register_metric(
    "dup_distance",
    priority=100,
    needs_labels=False,
    recompute_in_subset=True,
    uses_clusters=True,
    cost="an exact nearest-neighbour search inside every k-means cluster (~N^2 D / K flops)",
    default=False,
    range="[0, 2]",
    description="semantic-duplicate distance: 1 - the largest cosine similarity to another member of "
    "the k-means cluster (0 = an exact copy exists; SemDeDup). Higher = harder "
    "(more unique); keep-hard drops near-duplicates first.",
)
def dup_distance(ctx: ScoreContext) -> np.ndarray:
    """1 - max cosine similarity to another member of the example's cluster, in [0, 2]."""
    from ..dedup.search import within_cluster_neighbours

    cluster, sim = _clusters(ctx)
    nb = within_cluster_neighbours(
        ctx.embeddings, ctx.rows, cluster, sim, ctx.example_ids, device=ctx.device, progress=ctx.reporter.update
    )
    return (1.0 - nb.max_sim.astype(np.float64)).clip(0.0, 2.0).astype(np.float32)


def _clusters(ctx: ScoreContext) -> tuple[np.ndarray, np.ndarray]:
    """(cluster id, similarity to the centroid) of ``ctx.rows``: the context's clustering, else k-means here."""
    cluster = getattr(ctx, "cluster", None)
    if cluster is None:
        cluster = ctx.shared.get("cluster")
    if cluster is not None and ctx.centroid_sim is not None:
        return np.asarray(cluster), np.asarray(ctx.centroid_sim)
    if "kmeans" not in ctx.shared:  # the same k-means as the pipeline's (k, seed, iterations), so the same clusters
        from ..cluster import SphericalKMeans

        km = SphericalKMeans(ctx.k, n_iter=ctx.kmeans_iters, random_state=ctx.seed, device=ctx.device)
        km.fit(ctx.embeddings, ctx.rows)
        ctx.shared["kmeans"] = km.predict(ctx.embeddings, ctx.rows)
    assign, sim = ctx.shared["kmeans"]
    return np.asarray(assign), np.asarray(sim)
