"""Supervised prototypes: distance to the normalised mean embedding of the example's own class."""

from __future__ import annotations

import numpy as np

from ..arrays import l2_normalize
from .base import ScoreContext, register_metric


def class_prototypes(x: np.ndarray, labels: np.ndarray, rows: np.ndarray | None = None):
    """(classes, unit prototype per class): the normalised mean of normalised embeddings."""
    from ..cluster.kmeans import iter_unit_chunks
    from ..cluster.lloyd import _cluster_sums

    rows = np.arange(len(x)) if rows is None else np.asarray(rows)
    labels = np.asarray(labels)
    classes, codes = np.unique(labels, return_inverse=True)
    sums = np.zeros((len(classes), x.shape[1]), np.float64)
    for start, xc in iter_unit_chunks(x, rows):  # byte-bounded chunks: wide embeddings are never copied whole
        sums += _cluster_sums(xc, codes[start : start + len(xc)], len(classes))
    return classes, l2_normalize(sums)


def supervised_prototype_scores(x: np.ndarray, labels: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
    """1 - cosine similarity to the example's own class prototype, in [0, 2]."""
    from ..cluster.kmeans import iter_unit_chunks

    rows = np.arange(len(x)) if rows is None else np.asarray(rows)
    labels = np.asarray(labels)
    classes, protos = class_prototypes(x, labels, rows)
    codes = np.searchsorted(classes, labels)
    out = np.empty(len(rows), np.float32)
    for start, xc in iter_unit_chunks(x, rows):
        own = codes[start : start + len(xc)]
        # one product per class present, not a gathered copy of the prototypes per row
        sim = np.empty(len(xc), np.float32)
        for c in np.unique(own):
            m = np.flatnonzero(own == c)
            sim[m] = xc[m] @ protos[c]
        out[start : start + len(xc)] = 1.0 - sim
    return np.clip(out, 0.0, 2.0)


@register_metric(
    "supervised_prototype",
    priority=1,
    needs_labels=True,
    recompute_in_subset=True,
    cost="class means",
    range="[0, 2]",
    description="supervised prototypes: 1 - cosine similarity to the normalised mean embedding "
    "of the example's own class. Higher = harder.",
)
def supervised_prototype(ctx: ScoreContext) -> np.ndarray:
    assert ctx.labels is not None
    return supervised_prototype_scores(ctx.embeddings, np.asarray(ctx.labels).astype(str), ctx.rows)
