"""The 2-D map above ``fit_sample`` points: the stratified fit sample, placement from sampled neighbours, and the
map stage's record of which path ran."""

from __future__ import annotations

import numpy as np
import pytest

from backend.config import PipelineConfig
from backend.pipeline import map_stage
from backend.pipeline.embed_stage import Embeddings
from backend.progress import Reporter
from backend.projection import Projector2D
from backend.projection.map2d import FIT_SAMPLE, fit_sample_positions, place_by_neighbours


def test_small_data_is_fitted_whole():
    assert np.array_equal(fit_sample_positions(1000, 5000), np.arange(1000))
    assert np.array_equal(fit_sample_positions(FIT_SAMPLE, FIT_SAMPLE), np.arange(FIT_SAMPLE))


def test_stratified_sample_is_proportional_with_a_floor():
    rng = np.random.default_rng(0)
    sizes = np.array([50_000, 20_000, 9_000, 900, 60, 3])  # a tiny cluster and a very large one
    strata = rng.permutation(np.repeat(np.arange(len(sizes)), sizes))
    n, size = len(strata), 2_000
    pos = fit_sample_positions(n, size, strata=strata, min_per_stratum=5, random_state=1)
    assert len(pos) == size and np.all(np.diff(pos) > 0)  # sorted, no repeats
    got = np.bincount(strata[pos], minlength=len(sizes))
    assert got[5] == 3 and got[4] >= 5  # the floor: small clusters are on the map (all 3 of the tiniest)
    share = got[:4] / got[:4].sum()
    np.testing.assert_allclose(share, sizes[:4] / sizes[:4].sum(), atol=0.01)  # the rest in proportion
    # more strata than the floor allows: the floor shrinks, the size is still exact
    assert len(fit_sample_positions(500, 7, strata=np.arange(500) % 37)) == 7
    again = fit_sample_positions(n, size, strata=strata, min_per_stratum=5, random_state=1)
    assert np.array_equal(pos, again)  # seeded
    with pytest.raises(ValueError, match="one per row"):
        Projector2D("umap", fit_sample=10).fit_transform(np.zeros((20, 3), np.float32), strata=np.zeros(5))


def test_placement_is_the_weighted_mean_of_sampled_neighbours():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(4, 8)).astype(np.float32) * 10
    z = np.concatenate([c + rng.normal(size=(500, 8)).astype(np.float32) for c in centres])
    truth = np.repeat(np.arange(4), 500)
    sample = np.sort(rng.choice(len(z), 300, replace=False))
    fitted = (np.eye(4, 2, dtype=np.float32) * 100 + np.array([[0, 0], [0, 0], [100, 0], [0, 100]], np.float32))[
        truth[sample]
    ]  # each cluster's sampled points sit on one spot of the map
    rest = np.setdiff1d(np.arange(len(z)), sample)
    out = np.full((len(z), 2), np.nan, np.float32)
    how = place_by_neighbours(z, sample, fitted, rest, out, k=5, seed=0)
    assert "exact 5-NN" in how
    expected = {c: fitted[truth[sample] == c][0] for c in range(4)}
    placed = out[rest]
    assert np.isfinite(placed).all()
    for c in range(4):  # a point's neighbours are in its own cluster: it lands on that cluster's spot
        np.testing.assert_allclose(
            placed[truth[rest] == c], np.broadcast_to(expected[c], placed[truth[rest] == c].shape), rtol=1e-5, atol=1e-3
        )
    # a point equal to a sampled one lands on it (its distance-0 neighbour dominates the weights)
    out2 = np.zeros((len(z), 2), np.float32)
    z2 = z.copy()
    z2[rest[0]] = z2[sample[0]]
    fitted2 = rng.normal(size=fitted.shape).astype(np.float32)
    place_by_neighbours(z2, sample, fitted2, rest[:1], out2, k=5, seed=0)
    np.testing.assert_allclose(out2[rest[0]], fitted2[0], atol=1e-3)


def test_ivf_placement_above_20000_sampled_points():
    rng = np.random.default_rng(1)
    z = rng.normal(size=(24_000, 6)).astype(np.float32)
    sample = np.arange(0, 24_000, 1)[:21_000]
    fitted = z[sample, :2] * 3  # a map that is a linear function of the space: placement must follow it
    rest = np.arange(21_000, 24_000)
    out = np.zeros((24_000, 2), np.float32)
    how = place_by_neighbours(z, sample, fitted, rest, out, k=10, seed=0)
    assert "IVFFlat" in how
    err = np.abs(out[rest] - z[rest, :2] * 3).mean()
    assert err < 0.6 * np.abs(fitted).mean()  # near where a linear map would put them, not anywhere


def test_map_stage_records_the_path(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 16)).astype(np.float32)
    emb = Embeddings(key="test-emb", array=x, info={})
    cfg = PipelineConfig(source="x.npy", encoder="precomputed", map_method="pca")
    m = map_stage.run(tmp_path, emb, np.arange(400), cfg, Reporter(), clusters=np.arange(400) % 7)
    assert m.coords.shape == (400, 2) and m.info["path"] == "exact" and m.info["method"] == "pca"
    again = map_stage.run(tmp_path, emb, np.arange(400), cfg, Reporter(), clusters=np.arange(400) % 7)
    assert again.key == m.key and again.info == m.info  # read back from the cache


@pytest.mark.slow
def test_sampled_umap_records_fit_and_placement(tmp_path):
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, 20)) * 4
    x = np.concatenate([c + rng.normal(size=(150, 20)) for c in centres]).astype(np.float32)
    truth = np.repeat(np.arange(3), 150)
    p = Projector2D("umap", fit_sample=120, random_state=0)
    xy = p.fit_transform(x, strata=truth)
    info = p.info_
    assert info["path"] == "sampled" and info["fit_sample"] == 120 and info["placed"] == 330
    assert info["sample"] == "stratified" and "10-NN in PCA space" in info["placement"]
    centre_xy = np.stack([xy[truth == c].mean(0) for c in range(3)])
    nearest = np.argmin(((xy[:, None, :] - centre_xy[None]) ** 2).sum(-1), axis=1)
    assert (nearest == truth).mean() > 0.95  # placed points sit with their own cluster
    exact = Projector2D("umap", fit_sample=1000, random_state=0)
    exact.fit_transform(x)
    assert exact.info_["path"] == "exact" and "fit_sample" not in exact.info_
