"""The probes' input features: L2-normalised embeddings, whitened with the pool's statistics, plus a 1."""

from __future__ import annotations

import numpy as np

from ..arrays import CHUNK, l2_normalize


def probe_features(emb: np.ndarray, rows: np.ndarray, transform: tuple[np.ndarray, np.ndarray] | None = None):
    """``(features [len(rows), D + 1] float32, transform)`` of embedding ``rows``; the last column is 1 (the bias).

    ``transform`` = (mean, matrix) from the pool; None computes it from ``rows``
    (pass the pool's transform when featurising a hold-out).  Whitening (PCA,
    eigenvalues floored at 1e-4 of the largest, so no direction is amplified
    more than 100x relative to the strongest) barely changes the nearly
    unregularised logistic regression's solution (it is invariant to
    invertible linear maps of the features) and keeps L-BFGS well conditioned
    when the embedding's dimensions are correlated.
    """
    d = emb.shape[1]
    x = np.empty((len(rows), d), np.float32)
    for s in range(0, len(rows), CHUNK):
        x[s : s + CHUNK] = l2_normalize(emb[rows[s : s + CHUNK]])
    if transform is None:
        mean = x.mean(0, dtype=np.float64)
        xc = x - mean.astype(np.float32)
        cov = (xc.T @ xc).astype(np.float64) / max(len(x) - 1, 1)
        del xc
        ev, vec = np.linalg.eigh(cov)
        ev = np.maximum(ev, 1e-4 * max(float(ev.max()), 1e-30))
        mat = (vec / np.sqrt(ev)).astype(np.float32)
        transform = (mean.astype(np.float32), mat)
    mean, mat = transform
    out = np.empty((len(rows), mat.shape[1] + 1), np.float32)
    for s in range(0, len(rows), CHUNK):
        out[s : s + CHUNK, :-1] = (x[s : s + CHUNK] - mean) @ mat
    out[:, -1] = 1.0
    return out, transform
