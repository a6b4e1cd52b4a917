"""Analysis of the grid's points: curves over seeds, the power-law fit, the frontier, the recommendation.

The power law and the frontier come from :mod:`backend.scaling.powerlaw`;
the sentence from :mod:`backend.scaling.recommend`.  Milliseconds: a cached
grid is re-analysed (e.g. at another tolerance) without retraining.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from . import powerlaw as pl
from .grid import sort_points
from .recommend import confirm_beats_powerlaw, recommend


def aggregate(points: pd.DataFrame) -> pd.DataFrame:
    """Mean and standard deviation over seeds of every grid point (one row per setting and keep fraction)."""
    if "balance" not in points.columns:  # grids cached before settings had a balance
        points = points.assign(balance="none")
    keys = ["initial_fraction", "initial_size", "strategy", "balance", "keep_fraction"]
    g = points.groupby(keys, sort=False)
    out = g.agg(
        n_kept=("n_kept", "mean"), error_mean=("error", "mean"), error_std=("error", "std"), n_seeds=("seed", "nunique")
    ).reset_index()
    out["n_kept"] = out["n_kept"].round().astype(np.int64)
    out["error_std"] = out["error_std"].fillna(0.0)
    out = sort_points(out.assign(seed=0)).drop(columns="seed")
    return out[
        [
            "initial_fraction",
            "initial_size",
            "strategy",
            "keep_fraction",
            "n_kept",
            "error_mean",
            "error_std",
            "n_seeds",
            "balance",
        ]
    ]


def analyse(
    points: pd.DataFrame,
    *,
    tolerance: float = 0.005,
    metric: str = "ssl_prototype",
    holdout_size: int | None = None,
    probe: str = "linear",
    encoder: str = "embedding",
    holdout_wrong: np.ndarray | None = None,
) -> dict:
    """Curves, power-law fit, frontier, beats-the-power-law verdict and recommendation from the points.

    The power law is fitted to the *random* subsets: the unpruned points
    (``keep_fraction == 1`` at every initial size) and the random-pruning
    points, which are random subsets of the pool just the same, so the fit
    covers every size the frontier reaches instead of only the few initial
    sizes.  Each size is weighted by its standard error over seeds, floored at
    the binomial standard error of the hold-out.  ``holdout_wrong`` (packed bits,
    one row per trained probe, indexed by ``points.holdout_index``) lets the
    recommendation compare a setting with random on the *same* held-out examples.
    """
    curves = aggregate(points)
    rnd = curves[(curves["strategy"] == "random") & (curves["balance"] == "none")]
    e = rnd["error_mean"].to_numpy(np.float64)
    sem = rnd["error_std"].to_numpy(np.float64) / np.sqrt(np.maximum(rnd["n_seeds"].to_numpy(), 1))
    floor = np.sqrt(np.clip(e * (1 - e), 1e-6, None) / max(holdout_size or 1, 1))
    fit = pl.fit_powerlaw(rnd["n_kept"].to_numpy(np.float64), e, np.maximum(sem, np.maximum(floor, 1e-4)))
    fit["fitted_to"] = "random subsets: keep_fraction 1 at every initial size and random pruning"
    cand = curves[
        ~((curves["keep_fraction"] >= 1.0) & ((curves["strategy"] != "random") | (curves["balance"] != "none")))
    ]
    frontier = pl.lower_envelope(cand)
    frontier = frontier[
        [
            "n_kept",
            "error_mean",
            "strategy",
            "keep_fraction",
            "initial_size",
            "initial_fraction",
            "error_std",
            "n_seeds",
            "balance",
        ]
    ].reset_index(drop=True)
    # a small hold-out is noisy whatever the seeds say: floor every point's standard error by its binomial one
    e_fr = frontier["error_mean"].to_numpy(np.float64)
    floor_fr = np.sqrt(np.clip(e_fr * (1 - e_fr), 1e-6, None) / max(holdout_size or 1, 1))
    sem_fr = frontier["error_std"].to_numpy(np.float64) / np.sqrt(np.maximum(frontier["n_seeds"].to_numpy(), 1))
    tested = frontier.assign(error_std=np.maximum(sem_fr, floor_fr) * np.sqrt(np.maximum(frontier["n_seeds"], 1)))
    beats = confirm_beats_powerlaw(pl.beats_powerlaw(tested, fit), frontier, curves, holdout_size)
    rec = recommend(
        curves,
        tolerance=tolerance,
        metric=metric,
        probe=probe,
        encoder=encoder,
        holdout_size=holdout_size,
        points=points,
        beats_powerlaw=beats,
        holdout_wrong=holdout_wrong,
    )
    return {"curves": curves, "powerlaw": fit, "frontier": frontier, "beats_powerlaw": beats, "recommendation": rec}
