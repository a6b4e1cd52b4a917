"""el2n_cnn, forgetting_cnn, aum_cnn: a small CNN trained on real images with planted mislabels, and resume."""

from __future__ import annotations

import numpy as np
import pytest

from backend.scores import METRICS, ScoreContext, compute_metric

NAMES = ("el2n_cnn", "forgetting_cnn", "aum_cnn")
OPTS = {"seeds": 1, "cnn_epochs": 6, "epoch": 5, "cnn_batch": 16, "cnn_lr": 0.02}


def _planted(fashion_arrays, n_flip=12, seed=0):
    """The shared 200 real images (20 per class) with ``n_flip`` labels moved to another class."""
    x, y, _ = fashion_arrays
    rng = np.random.default_rng(seed)
    flipped = rng.choice(len(y), n_flip, replace=False)
    noisy = y.copy()
    noisy[flipped] = (y[flipped] + rng.integers(1, 10, n_flip)) % 10
    return x, np.array([f"c{v}" for v in noisy]), flipped


def _ctx(x, labels, workdir=None, **opts):
    n = len(x)
    ctx = ScoreContext(
        embeddings=np.zeros((n, 2), np.float32),
        rows=np.arange(n),
        example_ids=np.array([f"i{j}" for j in range(n)]),
        labels=labels,
        options={**OPTS, **opts},
        workdir=workdir,
    )
    ctx.shared["pixels_loader"] = lambda: (x, np.ones(n, bool))
    return ctx


def test_registered_and_needs_images():
    for n in NAMES:
        e = METRICS.entry(n)
        assert e.needs_labels and not e.default and e.info.get("needs_images")


@pytest.mark.slow
def test_planted_mislabels_score_higher_and_training_resumes(tmp_path, fashion_arrays):
    from sklearn.metrics import roc_auc_score

    x, labels, flipped = _planted(fashion_arrays)
    planted = np.zeros(len(x), bool)
    planted[flipped] = True
    ctx = _ctx(x, labels, tmp_path)
    got = {n: compute_metric(n, ctx) for n in NAMES}
    assert len(ctx.shared["probe_dynamics"]) == 1  # one training served all three
    assert got["el2n_cnn"].min() >= 0 and got["el2n_cnn"].max() <= np.sqrt(2) + 1e-6
    assert got["forgetting_cnn"].min() >= 0 and got["forgetting_cnn"].max() <= OPTS["cnn_epochs"]
    for n in NAMES:
        assert roc_auc_score(planted, got[n]) > 0.7, n  # 0.83-0.9 measured: 200 images, 6 epochs
    # a second computation finds every epoch checkpointed: nothing is retrained, the scores are the same
    again = _ctx(x, labels, tmp_path)
    np.testing.assert_allclose(compute_metric("aum_cnn", again), got["aum_cnn"], rtol=1e-6)
    runs = next(iter(again.shared["probe_dynamics"].values())).info["runs"]
    assert [r["resumed_from_epoch"] for r in runs] == [OPTS["cnn_epochs"]]


def test_epoch_zero_is_refused(fashion_arrays):
    from backend.errors import CurateError

    x, labels, _ = _planted(fashion_arrays, n_flip=0)
    with pytest.raises(CurateError, match="epoch"):
        compute_metric("el2n_cnn", _ctx(x, labels, epoch=0))


@pytest.mark.slow
def test_compute_scores_trains_on_the_runs_own_images(tmp_path):
    import backend
    from backend.scores.compute import compute_scores

    run = backend.run_pipeline("demo", tmp_path / "work", limit=300, map_method="pca")
    res = compute_scores(run, "el2n_cnn,aum_cnn", seeds=1, epoch=1, options={"cnn_epochs": 2, "cnn_batch": 32})
    assert set(res.scores) == {"el2n_cnn", "aum_cnn"} and not any(res.cached.values())
    table = backend.load_run(run.dir).table
    assert {"el2n_cnn", "aum_cnn"} <= set(table.columns) and np.isfinite(table["aum_cnn"]).all()
    assert list((tmp_path / "work" / "probes-cnn").iterdir())  # checkpoints, for resume
