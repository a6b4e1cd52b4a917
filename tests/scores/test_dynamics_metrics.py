"""The training-dynamics metrics (el2n, grand, forgetting, aum, margin) against from-scratch references."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

import backend
from backend.errors import CurateError
from backend.probes import EpochLinearProbes, probe_features
from backend.scores import METRICS, ScoreContext, compute_metric
from backend.scores._dynamics import DEFAULTS

DYNAMICS = ("el2n", "grand", "forgetting", "aum", "margin")
OPTS = {"seeds": 2, "epochs": 8, "epoch": 2, "batch": 64}


def _blobs(n=900, d=16, c=3, n_flip=30, seed=0, sep=4.0):
    """Gaussian classes with ``n_flip`` labels moved to another class (the planted mislabelled examples).

    The class means are ``sep * sqrt(2)`` apart: about 0.2% of the clean examples lie past the midpoint, so
    nearly every example a probe cannot fit is a planted one.
    """
    rng = np.random.default_rng(seed)
    y = rng.integers(0, c, n)
    x = rng.normal(size=(n, d)).astype(np.float32) + sep * np.eye(d, dtype=np.float32)[y]
    flipped = rng.choice(n, n_flip, replace=False)
    noisy = y.copy()
    noisy[flipped] = (y[flipped] + rng.integers(1, c, n_flip)) % c
    return x, np.array([f"c{v}" for v in noisy]), flipped


def _ctx(x, labels, **options):
    n = len(x)
    return ScoreContext(
        embeddings=x,
        rows=np.arange(n),
        example_ids=np.array([f"e{i}" for i in range(n)]),
        labels=labels,
        options={**OPTS, **options},
    )


def test_registered_off_by_default_with_labels():
    for name in DYNAMICS:
        e = METRICS.entry(name)
        assert e.needs_labels and not e.default and not e.recompute_in_subset and e.range
        assert "Higher = harder" in e.description
    assert not set(DYNAMICS) & set(METRICS.names(default=True))


def test_sgd_step_is_the_cross_entropy_gradient():
    """One full-batch step without momentum or decay moves the weights by -lr * autograd's gradient."""
    rng = np.random.default_rng(1)
    x = torch.from_numpy(rng.normal(size=(50, 6)).astype(np.float32))
    y = torch.from_numpy(rng.integers(0, 4, 50))
    pr = EpochLinearProbes(
        x, y, 4, seeds=[3, 4], settings={"epochs": 1, "batch": 50, "lr": 0.5, "momentum": 0.0, "weight_decay": 0.0}
    )
    seen = {}
    pr.fit(on_epoch=lambda e, w: seen.__setitem__(e, w.clone()))
    w0 = seen[0].clone().requires_grad_()
    loss = sum(torch.nn.functional.cross_entropy(x @ w0[s].T, y) for s in range(2))
    loss.backward()
    torch.testing.assert_close(seen[1], (w0 - 0.5 * w0.grad).detach(), rtol=1e-5, atol=1e-6)
    assert not torch.equal(seen[0][0], seen[0][1])  # each seed has its own initialisation


def _reference(x, labels, opts):
    """The same trainings replayed, every logit kept, and the five metrics computed from them in numpy."""
    feats, _ = probe_features(x, np.arange(len(x)))
    classes, y = np.unique(labels, return_inverse=True)
    seeds = list(range(opts["seeds"]))
    settings = {k: opts[k] for k in ("epochs", "batch") if k in opts}
    pr = EpochLinearProbes(torch.from_numpy(feats), torch.from_numpy(y), len(classes), seeds=seeds, settings=settings)
    S, N, E = len(seeds), len(x), opts["epochs"]
    acc = np.zeros((S, N, E), bool)  # per-presentation accuracy (one presentation per epoch)
    mar = np.zeros((S, N, E))

    def on_batch(epoch, rows, z):
        z, rows = z.numpy().astype(np.float64), rows.numpy()
        for s in range(S):
            zy = z[s, np.arange(len(rows[s])), y[rows[s]]]
            other = z[s].copy()
            other[np.arange(len(rows[s])), y[rows[s]]] = -np.inf
            mar[s, rows[s], epoch - 1] = zy - other.max(1)
            acc[s, rows[s], epoch - 1] = z[s].argmax(1) == y[rows[s]]

    w_at = {}
    kept = pr.fit(on_batch=on_batch, on_epoch=lambda e, w: w_at.__setitem__(e, w.clone()), record_epochs=range(E + 1))
    ref = {}
    # forgetting: Toneva et al.'s transitions 1 -> 0; never learned = number of presentations
    forg = np.where(acc.any(2), (np.diff(acc.astype(int), axis=2) == -1).sum(2), E)
    ref["forgetting"] = forg.mean(0)
    ref["aum"] = -mar.mean(2).mean(0)
    onehot = np.eye(len(classes))[y]

    def el2n_at(e):
        z = kept[e].numpy().astype(np.float64)
        p = np.exp(z - z.max(2, keepdims=True))
        p /= p.sum(2, keepdims=True)
        return np.linalg.norm(p - onehot[None], axis=2)

    ref["el2n"] = el2n_at(opts["epoch"]).mean(0)
    zf = kept[E].numpy().astype(np.float64)
    zy = np.take_along_axis(zf, y[None, :, None], 2)[..., 0]
    np.put_along_axis(zf, y[None, :, None], -np.inf, 2)
    ref["margin"] = -(zy - zf.max(2)).mean(0)
    # GraNd: per-example gradient norm of the loss by autograd at initialisation, for a few examples
    idx = np.arange(0, N, 97)
    g = np.zeros((S, len(idx)))
    for s in range(S):
        for j, i in enumerate(idx):
            w = w_at[0][s].clone().requires_grad_()
            torch.nn.functional.cross_entropy((torch.from_numpy(feats[i]) @ w.T)[None], torch.tensor([y[i]])).backward()
            g[s, j] = float(w.grad.norm())
    ref["grand_idx"], ref["grand"] = idx, g.mean(0)
    return ref


def test_metrics_match_a_from_scratch_reference():
    x, labels, _ = _blobs(n=400, n_flip=12, seed=2)
    ref = _reference(x, labels, OPTS)
    ctx = _ctx(x, labels)
    got = {name: compute_metric(name, ctx) for name in DYNAMICS}
    assert len(ctx.shared["probe_dynamics"]) == 1  # one set of trainings served all five
    np.testing.assert_array_equal(got["forgetting"], ref["forgetting"])
    for name in ("el2n", "aum", "margin"):
        np.testing.assert_allclose(got[name], ref[name], rtol=1e-4, atol=1e-4, err_msg=name)
    np.testing.assert_allclose(got["grand"][ref["grand_idx"]], ref["grand"], rtol=1e-4)


def test_planted_mislabels_score_highest_and_the_probe_matches_sklearn():
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    x, labels, flipped = _blobs()
    ctx = _ctx(x, labels)
    planted = np.zeros(len(x), bool)
    planted[flipped] = True
    for name in ("el2n", "forgetting", "aum", "margin"):
        s = compute_metric(name, ctx)
        # the planted examples are (nearly) the top of the ranking: at most a few clean ones score as high
        kth = np.sort(s)[::-1][len(flipped) - 1]
        assert (s[~planted] >= kth).sum() <= 0.15 * len(flipped), name
        assert roc_auc_score(planted, s) > 0.97, name
    # never learned in most trainings: "most forgotten" (one seed that learns it once and forgets it gives 4.5)
    assert (ctx.shared["probe_dynamics"].popitem()[1].forgetting()[flipped] >= OPTS["epochs"] / 2).mean() > 0.9
    # the SGD probe at the end agrees with scikit-learn's logistic regression on the same features
    feats, _ = probe_features(x, np.arange(len(x)))
    sk_correct = LogisticRegression(C=1.0, max_iter=1000).fit(feats, labels).predict(feats) == labels
    ours_correct = compute_metric("margin", ctx) < 0
    assert (sk_correct == ours_correct).mean() > 0.97


def test_options_and_labels_are_checked():
    x, labels, _ = _blobs(n=120, n_flip=0)
    with pytest.raises(CurateError, match="epoch"):
        compute_metric("el2n", _ctx(x, labels, epoch=99))
    with pytest.raises(CurateError, match="seeds"):
        compute_metric("aum", _ctx(x, labels, seeds=0))
    with pytest.raises(CurateError, match="needs labels"):
        compute_metric("forgetting", _ctx(x, None))
    assert DEFAULTS["seeds"] == 5


def _embedding_run(tmp, x, labels, name):
    d = tmp / name
    d.mkdir(parents=True, exist_ok=True)
    np.save(d / "emb.npy", np.asarray(x, np.float32))
    cols = {"example_id": [f"{name}-{i}" for i in range(len(x))], "split": "train"}
    if labels is not None:
        cols["label"] = labels
    pd.DataFrame(cols).to_csv(d / "manifest.csv", index=False)
    return backend.run_pipeline(str(d / "emb.npy"), d / "work", manifest=str(d / "manifest.csv"), map_method="pca")


def test_compute_scores_caches_and_adds_columns(tmp_path):
    from backend.scaling import estimate_scaling
    from backend.scores.compute import compute_scores

    x, labels, flipped = _blobs(n=600, n_flip=20)
    run = _embedding_run(tmp_path, x, labels, "dyn")
    opts = {"epochs": 8, "batch": 64}
    res = compute_scores(run, "el2n,forgetting", seeds=2, options=opts)
    assert not any(res.cached.values()) and set(res.scores) == {"el2n", "forgetting"}
    for d in res.dirs.values():
        assert (d / "scores.npy").exists() and (d / "meta.json").exists() and d.parent.name == "scores"
    again = backend.load_run(run.dir)
    assert {"el2n", "forgetting"} <= set(again.score_columns)
    assert {"el2n", "forgetting"} <= set(again.config.get("score_columns", ["el2n", "forgetting"]))
    # the run folder is a finished stage: its record was updated, so the change is not taken for damage
    from backend.io import read_json
    from backend.store import verify_files

    assert verify_files(run.dir, read_json(run.dir / "meta.json").get("files", {})) is None
    pos = {eid: i for i, eid in enumerate(again.table["example_id"])}
    planted = [pos[f"dyn-{i}"] for i in flipped]
    assert again.table["el2n"].to_numpy()[planted].mean() > again.table["el2n"].mean()
    # asked again: cached, same values; another option: another cache entry
    res2 = compute_scores(again, ["el2n", "aum"], seeds=2, options=opts)
    assert res2.cached == {"el2n": True, "aum": False}
    np.testing.assert_array_equal(res2.scores["el2n"], res.scores["el2n"])
    res3 = compute_scores(again, ["el2n"], seeds=2, epoch=4, options=opts)
    assert res3.cached == {"el2n": False} and res3.dirs["el2n"] != res.dirs["el2n"]
    final = backend.load_run(run.dir)
    np.testing.assert_array_equal(final.table["el2n"].to_numpy(), res3.scores["el2n"])
    assert {"aum", "forgetting", "ssl_prototype"} <= set(final.table.columns)
    # the scaling grid uses the new column as it is
    est = estimate_scaling(final, metric="el2n", fractions=[0.5, 1.0], initial_sizes=[1.0], seeds=1)
    assert not est.params["metric_recomputed"] and len(est.points) == 6
    with pytest.raises(CurateError, match="unknown metric"):
        compute_scores(final, "el2m")


def test_compute_scores_skips_label_metrics_without_labels(tmp_path):
    from backend.scores.compute import compute_scores

    x, _, _ = _blobs(n=200, n_flip=0)
    run = _embedding_run(tmp_path, x, None, "nolab")
    res = compute_scores(run, ["el2n", "random"], seeds=1)
    assert res.skipped == {"el2n": "needs labels and this run has none"} and set(res.scores) == {"random"}
