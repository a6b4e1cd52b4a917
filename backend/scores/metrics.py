"""The difficulty metrics (see method.md section 2).  Higher = harder."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd

from ..cluster.kmeans import CHUNK, l2_normalize

METRICS = {
    "ssl_prototype": "self-supervised prototypes: 1 - cosine similarity to the nearest "
                     "k-means centroid (no labels). Higher = harder.",
    "supervised_prototype": "supervised prototypes: 1 - cosine similarity to the normalised "
                            "mean embedding of the example's own class. Higher = harder.",
    "random": "seeded uniform score in [0, 1): the baseline every strategy is compared with.",
}


def ssl_prototype(sim_to_nearest_centroid: np.ndarray) -> np.ndarray:
    """SSP difficulty in [0, 2] from the cosine similarity to the nearest centroid."""
    return (1.0 - np.asarray(sim_to_nearest_centroid, dtype=np.float32)).astype(np.float32)


def class_prototypes(x: np.ndarray, labels: np.ndarray, rows: np.ndarray | None = None):
    """(classes, unit prototype per class): the normalised mean of normalised embeddings."""
    rows = np.arange(len(x)) if rows is None else np.asarray(rows)
    labels = np.asarray(labels)
    classes, codes = np.unique(labels, return_inverse=True)
    sums = np.zeros((len(classes), x.shape[1]), np.float64)
    for start in range(0, len(rows), CHUNK):
        xc = l2_normalize(x[rows[start:start + CHUNK]])
        np.add.at(sums, codes[start:start + CHUNK], xc)
    return classes, l2_normalize(sums)


def supervised_prototype(x: np.ndarray, labels: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
    """1 - cosine similarity to the example's own class prototype, in [0, 2]."""
    rows = np.arange(len(x)) if rows is None else np.asarray(rows)
    labels = np.asarray(labels)
    classes, protos = class_prototypes(x, labels, rows)
    codes = np.searchsorted(classes, labels)
    out = np.empty(len(rows), np.float32)
    for start in range(0, len(rows), CHUNK):
        xc = l2_normalize(x[rows[start:start + CHUNK]])
        out[start:start + len(xc)] = 1.0 - np.einsum("nd,nd->n", xc, protos[codes[start:start + CHUNK]])
    return np.clip(out, 0.0, 2.0)


def random_score(example_ids, seed: int = 0) -> np.ndarray:
    """Uniform [0, 1) from a keyed hash of each example_id: stable when the set changes."""
    # pandas wants a 16-character key; hash the seed into it so that every seed gives its own scores
    key = hashlib.sha256(f"curate-random-{int(seed)}".encode()).hexdigest()[:16]
    h = pd.util.hash_pandas_object(pd.Series(example_ids, dtype="string"), index=False, hash_key=key)
    return (h.to_numpy(np.uint64) >> np.uint64(11)).astype(np.float64) / float(1 << 53)
