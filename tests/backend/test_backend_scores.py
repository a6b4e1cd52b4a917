"""Difficulty scores against independent numpy references; spherical k-means recovers clusters."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import adjusted_rand_score

from backend.cluster import SphericalKMeans, default_k, nearest_centroid
from backend.scores import METRICS, random_score, ssl_prototype, supervised_prototype


def _unit(x):
    x = np.asarray(x, np.float64)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_ssl_prototype_is_one_minus_max_cosine_to_the_centroids(base_run):
    t = base_run.table
    x = _unit(np.asarray(base_run.embeddings)[t["row"].to_numpy()])
    c = _unit(base_run.centroids)
    assert c.shape == (base_run.k, x.shape[1])
    cos = x @ c.T
    np.testing.assert_allclose(t["ssl_prototype"], 1.0 - cos.max(axis=1), atol=2e-5)
    np.testing.assert_allclose(t["centroid_sim"], cos.max(axis=1), atol=2e-5)
    assert (t["cluster"].to_numpy() == cos.argmax(axis=1)).mean() > 0.99  # up to exact float ties
    assert t["ssl_prototype"].between(0, 2).all()


def _supervised_reference(x, labels):
    x = _unit(x)
    out = np.empty(len(x))
    for lab in np.unique(labels):
        m = labels == lab
        proto = x[m].mean(axis=0)
        proto /= np.linalg.norm(proto)
        out[m] = 1.0 - x[m] @ proto
    return out


def test_supervised_prototype_against_numpy(base_run):
    t = base_run.table
    x = np.asarray(base_run.embeddings)[t["row"].to_numpy()]
    ref = _supervised_reference(x, t["label"].to_numpy())
    np.testing.assert_allclose(t["supervised_prototype"], ref, atol=2e-5)

    rng = np.random.default_rng(1)
    x = rng.normal(size=(300, 7)).astype(np.float32) + 0.5
    labels = np.array(["dog", "cat", "bird"], dtype=object)[rng.integers(0, 3, 300)]
    rows = np.sort(rng.choice(300, 200, replace=False))
    got = supervised_prototype(x, labels[rows], rows)
    np.testing.assert_allclose(got, _supervised_reference(x[rows], labels[rows]), atol=1e-5)
    assert got.dtype == np.float32 and (got >= 0).all() and (got <= 2).all()


def test_ssl_prototype_from_similarity_and_metric_registry():
    sim = np.array([1.0, 0.5, 0.0, -1.0], np.float32)
    np.testing.assert_array_equal(ssl_prototype(sim), [0.0, 0.5, 1.0, 2.0])
    assert list(METRICS)[:3] == ["ssl_prototype", "supervised_prototype", "random"]
    assert all("harder" in METRICS[m].lower() or "baseline" in METRICS[m] for m in METRICS)


def test_random_score_is_seeded_stable_and_uniform():
    ids = [f"img/{i}.png" for i in range(5000)]
    a, b = random_score(ids, 0), random_score(ids, 0)
    np.testing.assert_array_equal(a, b)
    assert ((a >= 0) & (a < 1)).all() and abs(a.mean() - 0.5) < 0.02
    for seed in (1, 2, 12345):
        other = random_score(ids, seed)
        assert abs(np.corrcoef(a, other)[0, 1]) < 0.05  # a new seed is a new draw
    # stable per example: a subset (or another order) keeps each id's score
    np.testing.assert_array_equal(random_score(ids[::-7], 0), a[::-7])


def _separated(k=6, per=80, d=32, seed=0):
    rng = np.random.default_rng(seed)
    centres = _unit(rng.normal(size=(k, d)))
    x = np.concatenate([c + 0.05 * rng.normal(size=(per, d)) for c in centres]) * rng.uniform(0.5, 3, (k * per, 1))
    return x.astype(np.float32), np.repeat(np.arange(k), per), centres


def test_kmeans_outputs_on_separated_clusters():
    x, truth, centres = _separated(k=2, per=100)
    km = SphericalKMeans(2, n_iter=20, random_state=0).fit(x)
    assign, sim = km.predict(x)
    assert adjusted_rand_score(truth, assign) > 0.99
    assert km.centroids_.shape == (2, 32) and km.n_train_ == 200
    np.testing.assert_allclose(np.linalg.norm(km.centroids_, axis=1), 1.0, atol=1e-5)
    assert (_unit(km.centroids_) @ centres.T).max(axis=1).min() > 0.99  # each centroid on a true centre
    assert assign.dtype == np.int32 and sim.dtype == np.float32
    assert (sim > 0.9).all() and (sim <= 1.0).all()
    # a subset of rows: fit and assign only those
    rows = np.arange(0, len(x), 3)
    km2 = SphericalKMeans(2, random_state=0).fit(x, rows)
    a2, _ = km2.predict(x, rows)
    assert len(a2) == len(rows) and km2.n_train_ == len(rows)
    assert adjusted_rand_score(truth[rows], a2) > 0.99


@pytest.mark.parametrize("data_seed", [0, 2])
def test_kmeans_recovers_well_separated_clusters(data_seed):
    x, truth, centres = _separated(k=6, per=80, seed=data_seed)
    for random_state in (0, 1, 2):
        assign, _ = SphericalKMeans(6, n_iter=20, random_state=random_state).fit(x).predict(x)
        assert adjusted_rand_score(truth, assign) > 0.99


def test_kmeans_is_seeded_and_deterministic():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(600, 16)).astype(np.float32)  # no structure: the seed decides
    a = SphericalKMeans(8, n_iter=10, random_state=7).fit(x)
    b = SphericalKMeans(8, n_iter=10, random_state=7).fit(x)
    np.testing.assert_array_equal(a.centroids_, b.centroids_)
    np.testing.assert_array_equal(a.predict(x)[0], b.predict(x)[0])
    c = SphericalKMeans(8, n_iter=10, random_state=8).fit(x)
    assert not np.allclose(a.centroids_, c.centroids_)


def test_nearest_centroid_matches_numpy():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(500, 12)).astype(np.float32)
    c = rng.normal(size=(5, 12)).astype(np.float32)
    rows = rng.choice(500, 123, replace=False)
    assign, sim = nearest_centroid(x, c, rows)
    cos = _unit(x[rows]) @ _unit(c).T
    np.testing.assert_array_equal(assign, cos.argmax(axis=1))
    np.testing.assert_allclose(sim, cos.max(axis=1), atol=1e-5)


def test_default_k():
    assert default_k(1000, 10) == 10
    assert default_k(5, 10) == 5
    assert default_k(20000, None) == 100  # round(sqrt(N / 2))
    assert default_k(10, None) == 2
    assert default_k(10**9, None) == 1000
    assert default_k(50, 1) == 5  # a single class is no class structure


def test_pipeline_scores_match_a_fresh_computation(base_run):
    """The run table's scores are what the score functions give for the stored embeddings."""
    t = base_run.table
    emb = np.asarray(base_run.embeddings)
    rows = t["row"].to_numpy()
    _, sim = nearest_centroid(emb, base_run.centroids, rows)
    np.testing.assert_allclose(t["ssl_prototype"], ssl_prototype(sim), atol=1e-6)
    np.testing.assert_allclose(t["random"], random_score(t["example_id"], base_run.config["params"]["seed"]))
    assert pd.Series(base_run.score_columns).tolist() == ["ssl_prototype", "supervised_prototype", "random"]
