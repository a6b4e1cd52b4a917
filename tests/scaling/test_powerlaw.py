"""Power-law fits, predictions and Pareto frontiers (backend.scaling.powerlaw)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from backend.scaling import powerlaw as pl


def _noisy(a, nu, c, n, reps=3, rel=0.03, seed=0):
    rng = np.random.default_rng(seed)
    nn = np.repeat(n, reps)
    e = pl.powerlaw(nn, a, nu, c)
    return nn, e * (1 + rel * rng.standard_normal(len(nn)))


@pytest.mark.parametrize("a,nu,c", [(2.0, 0.5, 0.05), (5.0, 0.8, 0.0), (1.0, 0.35, 0.12)])
def test_fit_recovers_known_parameters(a, nu, c):
    n, e = _noisy(a, nu, c, np.geomspace(100, 100_000, 12))
    fit = pl.fit_powerlaw(n, e, sigma=0.03 * e)
    assert fit["ok"] and fit["with_floor"] and fit["n_points"] == len(n)
    for name, true in (("a", a), ("nu", nu), ("c", c)):
        std = fit[f"{name}_std"]
        assert std is not None and std >= 0
        # within 4 standard errors, and close in absolute terms
        assert abs(fit[name] - true) <= 4 * std + 1e-3, (name, fit[name], true, std)
    assert abs(fit["nu"] - nu) < 0.15


def test_fit_is_exact_without_noise():
    n = np.geomspace(50, 50_000, 8)
    fit = pl.fit_powerlaw(n, pl.powerlaw(n, 3.0, 0.6, 0.02))
    assert fit["a"] == pytest.approx(3.0, rel=1e-3)
    assert fit["nu"] == pytest.approx(0.6, rel=1e-3)
    assert fit["c"] == pytest.approx(0.02, abs=1e-4)
    mean, std = pl.predict(fit, np.array([100.0, 1e4]))
    assert mean == pytest.approx(pl.powerlaw(np.array([100.0, 1e4]), 3.0, 0.6, 0.02), rel=1e-4)
    assert (std >= 0).all()


def test_too_few_points_are_handled():
    # 3 distinct sizes: no floor
    n = np.array([100.0, 1000.0, 10000.0])
    fit = pl.fit_powerlaw(n, pl.powerlaw(n, 2.0, 0.5))
    assert fit["ok"] and not fit["with_floor"] and fit["c"] == 0.0
    assert fit["nu"] == pytest.approx(0.5, rel=1e-3)
    assert "floor" in fit["note"]
    # a single size: no fit, and nothing downstream breaks
    one = pl.fit_powerlaw([100.0, 100.0], [0.2, 0.21])
    assert not one["ok"] and "not enough points" in one["note"]
    mean, std = pl.predict(one, [10.0])
    assert np.isnan(mean).all()
    assert (
        pl.beats_powerlaw(pd.DataFrame({"n_kept": [10], "error_mean": [0.1], "keep_fraction": [0.5]}), one)["beats"]
        is False
    )
    assert not pl.fit_powerlaw([], [])["ok"]


def test_lower_envelope_is_monotone_and_minimal():
    rng = np.random.default_rng(1)
    df = pd.DataFrame({"n_kept": rng.integers(10, 10_000, 300), "error_mean": rng.uniform(0.05, 0.5, 300)})
    fr = pl.lower_envelope(df)
    assert len(fr) >= 1
    assert (np.diff(fr["n_kept"].to_numpy()) > 0).all()
    assert (np.diff(fr["error_mean"].to_numpy()) < 0).all()
    # every point is on or above the envelope at its size
    env_n, env_e = fr["n_kept"].to_numpy(), fr["error_mean"].to_numpy()
    for n, e in zip(df["n_kept"], df["error_mean"]):
        i = np.searchsorted(env_n, n, side="right") - 1
        assert i >= 0 and env_e[i] <= e + 1e-12
    # the global minimum is the last frontier point
    assert fr["error_mean"].iloc[-1] == df["error_mean"].min()


def test_beats_powerlaw_detects_a_frontier_below_the_fit():
    n, e = _noisy(2.0, 0.5, 0.05, np.geomspace(100, 100_000, 10), rel=0.01)
    fit = pl.fit_powerlaw(n, e, sigma=0.01 * e)
    sizes = np.array([1000.0, 5000.0, 20000.0])
    on = pd.DataFrame(
        {
            "n_kept": sizes,
            "error_mean": pl.powerlaw(sizes, 2.0, 0.5, 0.05),
            "keep_fraction": 0.5,
            "error_std": 0.001,
            "n_seeds": 3,
        }
    )
    res = pl.beats_powerlaw(on, fit)
    assert res["beats"] is False and res["where"] == []
    below = on.assign(error_mean=on["error_mean"] * 0.7)
    res = pl.beats_powerlaw(below, fit)
    assert res["beats"] is True and res["where"] == [1000, 5000, 20000]
    assert res["max_gain"] > 0.01
    # unpruned frontier points never count
    assert pl.beats_powerlaw(below.assign(keep_fraction=1.0), fit)["beats"] is False
