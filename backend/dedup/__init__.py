"""Semantic duplicates (SemDeDup, Abbas et al. 2023) inside the run's k-means clusters.

Stable API (other modules build on it: keep these signatures)::

    from backend.dedup import semdedup, run_index, dedup_index

    res = semdedup(run, eps=0.05)               # or target_fraction=0.8 (the share to KEEP)
    res.kept            # bool mask over run.table rows (True = kept)
    res.kept_ids        # example_id of the kept examples (table order)
    res.removed         # bool mask, = ~res.kept
    res.group           # int per row: duplicate group 0..n_groups-1 (its kept member included), -1 = none
    res.representative  # int per row: table position of the kept member that stands for it (itself if kept)
    res.eps, res.threshold (= 1 - eps), res.n_kept, res.n_removed, res.n_groups
    res.removed_frame(run.table), res.kept_frame(run.table)   # DataFrames for export / display
    res.groups_frame(), res.members(g)          # groups (largest first) and one group's members, kept first

    idx = run_index(run)                        # the cached per-example index (one exact search)
    idx.at(eps=...) / idx.at(target_fraction=...)   # any threshold in O(N), no new search
    idx.redundancy_curve(thresholds, by=codes)  # share removed vs threshold (per group too)
    idx.max_sim                                 # max cosine similarity to another cluster member

    # exact near-copies (the same picture re-saved / resized / re-encoded): a perceptual hash, not embeddings
    cp = near_copies(run)                       # CopyGroups: .group, .kept, .distance, .groups_frame()

    # on arrays (e.g. inside a scaling-grid subset): the same index without a run
    idx = dedup_index(embeddings, rows, cluster, centroid_sim, example_ids)

The rule, as SemDeDup's reference implementation applies it: inside every
cluster, sort the members by cosine similarity to their centroid, *least
similar first* (ties by example_id); a member is removed when its cosine
similarity to any member earlier in that order exceeds ``1 - eps``.  So the
member of a duplicate group that is kept is the one least similar to the
centroid, and a removed member's ``duplicate_of`` is its most similar earlier
member; following ``duplicate_of`` ends at the kept ``representative``.  The
search is exact inside each cluster and bounded in memory
(:mod:`backend.dedup.search`); pairs in different clusters are never
compared (SemDeDup's approximation: k-means puts near-duplicates together).

``target_fraction`` is the share of examples to *keep* (the product's "keep
fraction"); the threshold is the one that removes exactly the others (ties
may keep a few more).  The ``dup_distance`` metric (backend/scores/
dup_similarity.py) is ``1 - max_sim``: higher = harder, as every score here.
"""

from .copies import CopyGroups, copy_groups, hashes_cached, near_copies
from .core import (
    DedupIndex,
    DedupResult,
    dedup_index,
    index_cached,
    pairwise_similarity,
    representatives,
    run_index,
    semdedup,
)
from .export import write_dedup

__all__ = [
    "CopyGroups",
    "copy_groups",
    "hashes_cached",
    "near_copies",
    "DedupIndex",
    "DedupResult",
    "dedup_index",
    "index_cached",
    "pairwise_similarity",
    "representatives",
    "run_index",
    "semdedup",
    "write_dedup",
]
