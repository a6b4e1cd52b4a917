"""The empirical scaling estimate end to end: real runs through backend.run_pipeline, offline."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest
import torch

import backend
from backend.errors import CurateError
from backend.progress import Reporter
from backend.scaling import DEFAULT_FRACTIONS, DEFAULT_INITIAL_SIZES, ScalingResult, estimate_scaling, load_scaling
from backend.scaling import empirical as E


class Recorder(Reporter):
    def __init__(self):
        self.stages, self.updates, self.infos = [], [], []

    def stage(self, name, *, cached=False, detail=""):
        self.stages.append((name, cached))

    def update(self, done, total):
        self.updates.append((done, total))

    def info(self, message):
        self.infos.append(message)


def _embedding_run(tmp, x, labels, split, name="emb"):
    d = tmp / name
    d.mkdir(parents=True, exist_ok=True)
    np.save(d / "emb.npy", np.asarray(x, np.float32))
    cols = {"example_id": [f"{name}-{i}" for i in range(len(x))], "split": split}
    if labels is not None:
        cols["label"] = labels
    pd.DataFrame(cols).to_csv(d / "manifest.csv", index=False)
    return backend.run_pipeline(str(d / "emb.npy"), d / "work", manifest=str(d / "manifest.csv"), map_method="pca")


# ---------------------------------------------------------------------------
# the probes themselves
# ---------------------------------------------------------------------------


def test_batched_probes_match_sklearn():
    """Many probes on prefixes of two orderings reach scikit-learn's optimum (same objective, C=1)."""
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    n, d, c = 1200, 12, 3
    x = rng.normal(size=(n, d)).astype(np.float32)
    y = (x @ rng.normal(size=(d, c)) + rng.gumbel(size=(n, c))).argmax(1)
    xb = np.hstack([x, np.ones((n, 1), np.float32)])
    orders = {"a": torch.from_numpy(rng.permutation(n)), "b": torch.arange(n)}
    probes = [("a", 100), ("a", 600), ("a", 1200), ("b", 300)]
    tr = E._LinearProbes(
        torch.from_numpy(xb),
        torch.from_numpy(y),
        c,
        orders,
        probes,
        {**E.LINEAR, "max_iter": 300, "gtol": 1e-5, "precision": "fp32"},
    )
    iters, conv = tr.fit()
    assert conv.all() and (iters < 300).all()
    # the default budget, with bfloat16 matrix products where the CPU makes them fast
    quick = E._LinearProbes(
        torch.from_numpy(xb), torch.from_numpy(y), c, orders, probes, {**E.LINEAR, "precision": "bf16"}
    )
    quick.fit()
    for p, (o, k) in enumerate(probes):
        rows = orders[o][:k].numpy()
        sk = LogisticRegression(C=1.0, max_iter=2000, tol=1e-10).fit(x[rows], y[rows])
        w = tr.w[p].numpy()  # [C, D+1]
        assert (np.argmax(xb @ w.T, 1) == sk.predict(x)).mean() > 0.995
        assert (np.argmax(xb @ quick.w[p].numpy().T, 1) == sk.predict(x)).mean() > 0.97


# ---------------------------------------------------------------------------
# teacher-student: the theory's prediction through the full estimator
# ---------------------------------------------------------------------------


def test_teacher_student_easy_wins_small_hard_wins_large(tmp_path):
    """Perceptron data, difficulty = -|teacher margin|: keep easy wins with little data, keep hard with a lot."""
    rng = np.random.default_rng(0)
    dim, n_pool, n_test = 50, 6000, 3000
    teacher = rng.normal(size=dim)
    teacher /= np.linalg.norm(teacher)
    x = rng.normal(size=(n_pool + n_test, dim)).astype(np.float32)
    labels = np.where(x @ teacher > 0, "1", "0")
    run = _embedding_run(tmp_path, x, labels, ["train"] * n_pool + ["test"] * n_test, "ts")
    difficulty = -np.abs(x[run.table["row"].to_numpy()] @ teacher)  # small margin = hard
    small, large = 0.02, 1.0  # 120 and 6000 examples: alpha_tot = 2.4 and 120
    res = estimate_scaling(
        run, scores=difficulty, fractions=[0.2, 0.4, 0.6, 1.0], initial_sizes=[small, large], seeds=2
    )
    assert res.holdout == {"kind": "test split", "size": n_test}
    assert res.params["metric_name"] == "custom scores" and not res.params["metric_recomputed"]

    def mean_err(q, strategy):
        c = res.curves
        sel = c[np.isclose(c["initial_fraction"], q) & (c["strategy"] == strategy) & (c["keep_fraction"] < 1)]
        return sel["error_mean"].mean()

    assert mean_err(small, "easy") < mean_err(small, "hard") - 0.05
    assert mean_err(large, "hard") < mean_err(large, "easy")
    # the most aggressive pruning at the large size: keep hard clearly ahead of keep easy and of random
    full = res.curves[np.isclose(res.curves["initial_fraction"], large) & (res.curves["keep_fraction"] == 0.2)]
    err = full.set_index("strategy")["error_mean"]
    assert err["hard"] < err["easy"] and err["hard"] < err["random"]
    assert res.recommendation["direction"] == "hard"
    assert res.beats_powerlaw["beats"] is True


# ---------------------------------------------------------------------------
# a Fashion-MNIST-like run (the demo source, small)
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    return backend.run_pipeline("demo", tmp_path_factory.mktemp("demo"), limit=1500, map_method="pca")


GRID = {"fractions": [0.25, 0.5, 1.0], "initial_sizes": [0.5, 1.0], "seeds": 2}


def test_demo_grid_cache_and_cli(demo_run, capsys):
    assert load_scaling(demo_run, **GRID) is None  # nothing computed yet: no compute
    rec = Recorder()
    res = estimate_scaling(demo_run, reporter=rec, **GRID)
    assert isinstance(res, ScalingResult) and not res.cached
    assert rec.stages == [("scaling", False)]
    assert rec.updates[-1][0] == rec.updates[-1][1] > 0
    assert any("held-out" in m for m in rec.infos)

    # every grid point, contract columns
    p = res.points
    assert list(p.columns[:7]) == [
        "initial_fraction",
        "initial_size",
        "strategy",
        "keep_fraction",
        "n_kept",
        "seed",
        "error",
    ]
    assert len(p) == 2 * 3 * 3 * 2
    got = set(zip(p["initial_fraction"], p["strategy"], p["keep_fraction"], p["seed"]))
    assert got == {
        (q, s, f, sd) for q in (0.5, 1.0) for s in ("hard", "easy", "random") for f in (0.25, 0.5, 1.0) for sd in (0, 1)
    }
    assert p["error"].between(0, 1).all()
    assert (p["n_kept"] <= p["initial_size"]).all()
    assert set(res.curves.columns) >= {
        "initial_fraction",
        "initial_size",
        "strategy",
        "keep_fraction",
        "n_kept",
        "error_mean",
        "error_std",
        "n_seeds",
    }
    assert len(res.curves) == 2 * 3 * 3 and (res.curves["n_seeds"] == 2).all()

    # a real probe: far better than chance on 10 classes
    rec_ = res.recommendation
    assert rec_["full_error"] < 0.5
    assert rec_["direction"] in ("hard", "easy") and rec_["tolerance"] == 0.005
    assert rec_["sentence"].count(".") >= 1 and "random" in rec_["sentence"]
    assert "linear probe" in rec_["proxy_note"] and "not from your final model" in rec_["proxy_note"]
    assert res.holdout == {"kind": "test split", "size": 1500}
    assert set(res.powerlaw) >= {"a", "nu", "c", "a_std", "nu_std", "c_std", "n_points"}
    assert set(res.beats_powerlaw) >= {"beats", "where", "max_gain"}
    fr = res.frontier
    assert list(fr.columns[:5]) == ["n_kept", "error_mean", "strategy", "keep_fraction", "initial_size"]
    assert (np.diff(fr["n_kept"]) > 0).all() and (np.diff(fr["error_mean"]) < 0).all()
    for name in ("points.parquet", "points.csv", "result.json", "meta.json"):
        assert (res.dir / name).exists()
    assert res.dir.parent.name == "scaling" and res.dir.parent.parent == demo_run.dir.parent.parent

    # the same parameters again: a cache hit, same folder, no recompute
    rec2 = Recorder()
    t = time.perf_counter()
    again = estimate_scaling(demo_run, reporter=rec2, **GRID)
    assert time.perf_counter() - t < 5
    assert again.cached and again.dir == res.dir and rec2.stages == [("scaling", True)] and not rec2.updates
    pd.testing.assert_frame_equal(again.points, res.points)
    loaded = load_scaling(demo_run.dir, **GRID)
    assert loaded is not None and loaded.dir == res.dir
    # another tolerance re-derives the recommendation from the cached points
    loose = load_scaling(demo_run, tolerance=0.5, **GRID)
    assert loose.recommendation["tolerance"] == 0.5 and loose.recommendation["min_fraction"] == 0.25
    assert load_scaling(demo_run, **{**GRID, "seeds": 3}) is None

    # the CLI prints the table, the fit, the sentence, the hold-out and the files (from the cache)
    from backend.cli import main

    assert (
        main(
            [
                "scaling",
                "--workdir",
                str(demo_run.dir.parent.parent),
                "--fractions",
                "0.25,0.5,1",
                "--initial-sizes",
                "0.5,1",
                "--seeds",
                "2",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    for text in (
        "hard",
        "easy",
        "random",
        "power law",
        rec_["sentence"],
        "linear probe",
        "held-out: test split",
        "1500 examples",
        "points.csv",
        "cached",
    ):
        assert text in out, text


def test_supervised_metric_and_errors(demo_run):
    res = estimate_scaling(demo_run, metric="supervised_prototype", fractions=[0.5, 1.0], initial_sizes=[1.0], seeds=1)
    assert res.params["metric_recomputed"] and len(res.points) == 3 * 2
    with pytest.raises(CurateError, match="not in this run"):
        estimate_scaling(demo_run, metric="nope", fractions=[0.5], initial_sizes=[1.0], seeds=1)
    with pytest.raises(CurateError, match="keep fractions"):
        estimate_scaling(demo_run, fractions=[0.0, 0.5], seeds=1)
    with pytest.raises(CurateError, match="initial sizes"):
        estimate_scaling(demo_run, initial_sizes=[1.5], seeds=1)
    with pytest.raises(CurateError, match="probe"):
        estimate_scaling(demo_run, probe="svm", seeds=1)
    assert DEFAULT_FRACTIONS[0] == 0.1 and DEFAULT_FRACTIONS[-1] == 1.0 and len(DEFAULT_FRACTIONS) == 10
    assert DEFAULT_INITIAL_SIZES == (0.125, 0.25, 0.5, 1.0)


def test_mlp_probe_runs(demo_run):
    old = dict(E.MLP)
    E.MLP.update(steps=60, hidden=32)
    try:
        res = estimate_scaling(demo_run, probe="mlp", fractions=[0.5, 1.0], initial_sizes=[1.0], seeds=1)
    finally:
        E.MLP.clear()
        E.MLP.update(old)
    assert len(res.points) == 6 and res.recommendation["full_error"] < 0.6


# ---------------------------------------------------------------------------
# hold-out carving and unlabelled runs
# ---------------------------------------------------------------------------


def test_stratified_holdout_is_carved_from_the_pool(tmp_path):
    rng = np.random.default_rng(3)
    n = 500
    y = rng.integers(0, 3, n)
    x = rng.normal(size=(n, 8)) + 2.0 * np.eye(8)[y]
    run = _embedding_run(tmp_path, x, [f"c{v}" for v in y], ["train"] * n, "nohold")
    rec = Recorder()
    res = estimate_scaling(
        run, fractions=[0.5, 1.0], initial_sizes=[1.0], seeds=1, reporter=rec, metric="supervised_prototype"
    )
    assert res.holdout == {"kind": "stratified hold-out", "size": 100}
    assert res.params["n_grid_pool"] == 400
    assert res.points["initial_size"].max() == 400
    assert any("100 pool examples" in m for m in rec.infos)
    assert res.recommendation["full_error"] < 0.3


def test_unlabelled_run_raises(tmp_path):
    x = np.random.default_rng(0).normal(size=(200, 6))
    run = _embedding_run(tmp_path, x, None, ["train"] * 200, "nolabels")
    assert not run.has_labels
    with pytest.raises(CurateError) as exc:
        estimate_scaling(run, seeds=1)
    msg = str(exc.value)
    assert "labels" in msg and "backend.scaling.theory" in msg and "\n" not in msg


def test_cache_key_follows_the_metric_columns_values(tmp_path):
    """A column recomputed or re-imported under the same name must not hit the old estimate's cache."""
    from backend.scaling.grid import grid_params

    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 8)).astype(np.float32)
    run = _embedding_run(tmp_path, x, [str(i % 3) for i in range(300)], ["train"] * 300)
    before = grid_params(run, "random", None, None, 1, "linear", None)
    assert "metric_column" in before and before == grid_params(run, "random", None, None, 1, "linear", None)
    run.table["random"] = run.table["random"].to_numpy()[::-1].copy()  # the same name, other values
    after = grid_params(run, "random", None, None, 1, "linear", None)
    assert after["metric_column"] != before["metric_column"]
    assert {k: v for k, v in after.items() if k != "metric_column"} == {
        k: v for k, v in before.items() if k != "metric_column"
    }
