"""The Prune page's per-move numbers (kept per class / cluster / score bin, the margin, the cut) from the
precomputed index equal what the O(N) mask gives, for every strategy and balance, at many keep counts."""

from __future__ import annotations

import numpy as np
import pytest

import backend
from curation_app.components import summaries
from curation_app.components.kept_counts import KeptIndex, kept_index, score_bins


@pytest.fixture(scope="module")
def table(app_run):
    return app_run.table


COUNTS = (0, 1, 2, 7, 33, 120, 199, 200, 201, 333, 399, 400)


@pytest.mark.parametrize(
    "strategy,balance",
    [
        ("hard", "none"),
        ("easy", "none"),
        ("random", "none"),
        ("hard", "class"),
        ("easy", "cluster"),
        ("hard", "class-floor"),
        ("hard", "cluster-floor"),
        ("ccs", "none"),
    ],
)
def test_counts_margin_and_cut_match_the_mask(app_run, table, strategy, balance):
    rk = backend.Ranking(app_run, strategy=strategy, metric="ssl_prototype", balance=balance, seed=3)
    idx = KeptIndex(rk)
    n = len(table)
    clusters = table["cluster"].to_numpy().astype(np.int64)
    n_cl = int(clusters.max()) + 1
    labels, names = summaries.codes(table["label"])
    scores = table["ssl_prototype"].to_numpy(np.float64)
    edges = summaries.score_edges(scores)
    bins = score_bins(scores, edges)
    assert (bins >= 0).all()
    for k in COUNTS:
        mask = rk.mask(k)
        assert mask.sum() == k
        q = idx.quota(k)
        assert (idx.counts("cluster", clusters, n_cl, k, quota=q) == np.bincount(clusters[mask], minlength=n_cl)).all()
        got = idx.counts("label", labels, len(names), k)
        assert (got == np.bincount(labels[mask], minlength=len(names))).all()
        assert (idx.counts("bins", bins, len(edges) - 1, k) == summaries.histogram(scores, edges, mask)).all()
        want_margin = summaries.margin_positions(rk, k, n, mask, count=12)
        assert idx.margin(k, 12).tolist() == want_margin.tolist()
        want_cut = summaries.cut_value(scores, mask, strategy, balance) if strategy in ("hard", "easy") else None
        assert idx.cut(scores, k, strategy, balance) == want_cut


def test_fast_path_is_taken_for_prefix_strategies_and_the_index_is_shared(app_run):
    rk = backend.Ranking(app_run, strategy="hard", metric="ssl_prototype", balance="class")
    assert KeptIndex(rk).fast and KeptIndex(rk).quota(100).sum() == 100
    assert not KeptIndex(backend.Ranking(app_run, strategy="ccs", metric="ssl_prototype")).fast
    assert kept_index(rk) is kept_index(rk)


def test_score_bins_match_numpy_histogram():
    s = np.array([0.0, 0.1, 0.5, 0.99999, 1.0, np.nan, -1.0, 2.0])
    edges = np.linspace(0.0, 1.0, 11)
    b = score_bins(s, edges)
    assert np.bincount(b[b >= 0], minlength=10).tolist() == np.histogram(s[np.isfinite(s)], bins=edges)[0].tolist()
    assert b[5] == b[6] == b[7] == -1
