"""Scores on wide embeddings stream byte-bounded chunks and give the in-memory answer (issue 12 item 8)."""

from __future__ import annotations

import numpy as np

from backend.cluster import kmeans as kmeans_mod
from backend.scores.supervised_prototype import supervised_prototype_scores


def test_supervised_prototype_in_small_chunks_equals_the_direct_formula(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    n, d = 900, 2000
    x = np.lib.format.open_memmap(tmp_path / "e.npy", mode="w+", dtype=np.float32, shape=(n, d))
    x[:] = rng.standard_normal((n, d)).astype(np.float32) + 0.3
    x.flush()
    x = np.load(tmp_path / "e.npy", mmap_mode="r")
    labels = rng.choice(["a", "b", "c"], size=n)
    rows = np.sort(rng.choice(n, 700, replace=False))
    monkeypatch.setattr(kmeans_mod, "_CHUNK_BYTES", 100 * d * 4)  # 100 rows per chunk
    got = supervised_prototype_scores(x, labels[rows], rows)
    xu = x[rows].astype(np.float64)
    xu /= np.linalg.norm(xu, axis=1, keepdims=True)
    want = np.empty(len(rows))
    for c in "abc":
        m = labels[rows] == c
        proto = xu[m].sum(axis=0)
        want[m] = 1.0 - xu[m] @ (proto / np.linalg.norm(proto))
    np.testing.assert_allclose(got, want, atol=2e-5)
