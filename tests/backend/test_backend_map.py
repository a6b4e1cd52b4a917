"""The 2-D map: PCA (fast) and UMAP (one test, compiles numba once)."""

from __future__ import annotations

import numpy as np
import pytest

from backend import CurateError, run_pipeline
from backend.projection import Projector2D


def _knn_purity(xy, labels, k=5):
    d = ((xy[:, None, :] - xy[None, :, :]) ** 2).sum(-1)
    np.fill_diagonal(d, np.inf)
    nn = np.argsort(d, axis=1)[:, :k]
    return float((labels[nn] == labels[:, None]).mean())


def test_pca_map_is_the_top_two_components(base_run):
    t = base_run.table
    xy = t[["map_x", "map_y"]].to_numpy()
    assert np.isfinite(xy).all()
    assert xy[:, 0].var() >= xy[:, 1].var() > 0
    assert abs(np.corrcoef(xy[:, 0], xy[:, 1])[0, 1]) < 0.05  # principal axes are uncorrelated
    x = np.asarray(base_run.embeddings)[t["row"].to_numpy()]
    again = Projector2D("pca").fit_transform(x)
    np.testing.assert_allclose(np.abs(again), np.abs(xy), atol=1e-3)  # up to the sign of each axis
    with pytest.raises(CurateError, match="unknown map method"):
        Projector2D("tsne").fit_transform(x)


@pytest.mark.slow
def test_umap_map_on_a_small_set(image_folder, tmp_path, fast_kwargs):
    """UMAP separates classes in 2-D; above fit_sample the rest is placed by nearest neighbours."""
    run = run_pipeline(str(image_folder), tmp_path / "w", **{**fast_kwargs, "map_method": "umap"})
    t = run.table
    xy = t[["map_x", "map_y"]].to_numpy()
    assert run.config["params"]["map_method"] == "umap"
    assert np.isfinite(xy).all() and xy.std(axis=0).min() > 0
    labels = t["label"].to_numpy()
    chance = (t["label"].value_counts(normalize=True) ** 2).sum()
    assert _knn_purity(xy, labels) > chance + 0.25  # neighbours on the map share a class far above chance

    # the sampled path: fit on 100 rows, place the other 200 by their neighbours
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, 20)) * 4
    x = np.concatenate([c + rng.normal(size=(100, 20)) for c in centres]).astype(np.float32)
    truth = np.repeat(np.arange(3), 100)
    xy = Projector2D("umap", fit_sample=100, random_state=0).fit_transform(x)
    assert xy.shape == (300, 2) and np.isfinite(xy).all()
    assert _knn_purity(xy, truth) > 0.95
    again = Projector2D("umap", fit_sample=100, random_state=0).fit_transform(x)
    np.testing.assert_allclose(again, xy, atol=1e-4)  # seeded
