"""k-means on wide embeddings in bounded memory: training rows streamed from the memory-mapped input when
they would not fit the byte budget, with the same answer as the in-memory fit (issue 12 item 8, issue 14)."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from backend.cluster import SphericalKMeans, l2_normalize
from backend.cluster import kmeans as kmeans_mod
from backend.cluster.lloyd import spherical_lloyd, streamed_lloyd


def _wide_memmap(path, n: int, d: int, k: int, seed: int = 0) -> np.memmap:
    """``n`` rows around ``k`` random unit centres in ``d`` dimensions, as a read-only memory map."""
    rng = np.random.default_rng(seed)
    centres = l2_normalize(rng.standard_normal((k, d)).astype(np.float32))
    lab = rng.integers(0, k, n)
    x = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n, d))
    for s in range(0, n, 256):
        m = min(256, n - s)
        x[s : s + m] = centres[lab[s : s + m]] + 1.5 / np.sqrt(d) * rng.standard_normal((m, d)).astype(np.float32)
    x.flush()
    del x
    return np.load(path, mmap_mode="r")


def _objective(x: np.ndarray, assign: np.ndarray) -> float:
    """Mean cosine of each unit row to its cluster's normalised mean (float64)."""
    x = x.astype(np.float64)
    sums = np.zeros((assign.max() + 1, x.shape[1]))
    np.add.at(sums, assign, x)
    return float(np.linalg.norm(sums, axis=1).sum() / len(x))


def test_streamed_lloyd_equals_the_in_memory_lloyd(tmp_path):
    """Same seeds, same iterations: the streamed pass over 1 MB chunks gives the in-memory Lloyd's centroids."""
    x = _wide_memmap(tmp_path / "wide.npy", 1200, 3000, 8)
    xt = l2_normalize(x)
    init = xt[np.random.default_rng(0).choice(len(xt), 8, replace=False)]
    rows = np.arange(len(x))
    ref, it_ref, obj_ref = spherical_lloyd(xt, init, n_iter=12, tol=0.0, early_stop=False, rng=np.random.default_rng(0))

    def chunks():
        step = 80  # 80 x 3000 float32 = 0.96 MB
        for s in range(0, len(x), step):
            yield s, l2_normalize(x[s : s + step])

    cent, it, obj = streamed_lloyd(
        chunks,
        len(x),
        x.shape[1],
        init,
        n_iter=12,
        tol=0.0,
        early_stop=False,
        rng=np.random.default_rng(0),
        read_row=lambda i: xt[rows[i]],
    )
    assert it == it_ref
    np.testing.assert_allclose(cent, ref, atol=2e-5)
    assert obj == pytest.approx(obj_ref, abs=1e-6)
    assert obj == pytest.approx(_objective(xt, (xt @ cent.T).argmax(axis=1)), abs=1e-4)


def test_wide_training_rows_stream_instead_of_being_copied(tmp_path, monkeypatch):
    x = _wide_memmap(tmp_path / "wide.npy", 1200, 3000, 8)
    monkeypatch.setattr(kmeans_mod, "_TRAIN_BYTES", 1 << 20)  # 1 MB: these 14 MB of rows must stream
    monkeypatch.setattr(kmeans_mod, "_CHUNK_BYTES", 1 << 20)
    km = SphericalKMeans(8, n_iter=30, n_init=3, random_state=0).fit(x)
    assert km.backend_ == "fp32-streamed" and km.n_init_ == 3
    a, sim = km.predict(x)
    assert km.objective_ == pytest.approx(_objective(l2_normalize(x), a), abs=1e-4)
    monkeypatch.undo()
    mem = SphericalKMeans(8, n_iter=30, n_init=3, random_state=0).fit(x)
    assert mem.backend_ in ("fp32", "bf16")
    assert km.objective_ >= mem.objective_ - 2e-3  # as good as the in-memory fit (other seeds: not identical)


def test_streamed_fit_allocates_a_bounded_amount(tmp_path, monkeypatch):
    """fit + predict of a 19 MB input with 1 MB budgets allocate a few MB, not a copy of the input."""
    x = _wide_memmap(tmp_path / "wide.npy", 1600, 3000, 6, seed=1)
    monkeypatch.setattr(kmeans_mod, "_TRAIN_BYTES", 1 << 20)
    monkeypatch.setattr(kmeans_mod, "_CHUNK_BYTES", 1 << 20)
    tracemalloc.start()
    try:
        km = SphericalKMeans(6, n_iter=10, n_init=1, random_state=0).fit(x)
        assign, sim = km.predict(x)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert km.backend_ == "fp32-streamed"
    assert len(np.unique(assign)) == 6 and float(sim.mean()) > 0.3
    assert peak < 8 << 20, f"peak {peak / 2**20:.1f} MB for a {x.nbytes / 2**20:.0f} MB input"
