"""Power-law fits and Pareto frontiers of empirical scaling curves (method.md section 4).

Vocabulary: ``n`` is the number of training examples (kept after pruning),
``error`` the held-out error rate in [0, 1] (lower = better).

* :func:`fit_powerlaw` fits ``error = a * n**(-nu) + c`` with
  :func:`scipy.optimize.curve_fit` (bounds ``a > 0``, ``0 < nu < 3``,
  ``0 <= c < 1``) and returns the parameters with their standard errors
  (square roots of the diagonal of ``pcov``).  With fewer than
  :data:`MIN_POINTS_FLOOR` distinct sizes the floor ``c`` is fixed at 0
  (two-parameter fit); with fewer than 2 there is no fit (``ok`` False).
* :func:`predict` evaluates a fit with its standard error (delta method).
* :func:`lower_envelope` is the Pareto frontier: the lowest error reached
  with at most ``n`` examples, monotone non-increasing in ``n``.
* :func:`beats_powerlaw` says where the frontier lies below the fitted power
  law by more than :data:`BEATS_SIGMAS` combined standard errors.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd

MIN_POINTS_FLOOR = 4  # distinct sizes needed to fit the floor c as well (one degree of freedom left)
BEATS_SIGMAS = 2.0  # the frontier "beats" the fit where it is lower by more than this many standard errors
_NU_MAX = 3.0


def powerlaw(n, a: float, nu: float, c: float = 0.0):
    """``a * n**(-nu) + c``."""
    return a * np.power(np.asarray(n, dtype=np.float64), -nu) + c


def _empty_fit(n_points: int, note: str) -> dict:
    return {
        "a": None,
        "nu": None,
        "c": None,
        "a_std": None,
        "nu_std": None,
        "c_std": None,
        "n_points": int(n_points),
        "ok": False,
        "with_floor": False,
        "n_min": None,
        "n_max": None,
        "note": note,
    }


def _std(pcov: np.ndarray, i: int) -> float | None:
    v = float(pcov[i, i]) if pcov is not None and np.ndim(pcov) == 2 else float("nan")
    return math.sqrt(v) if np.isfinite(v) and v >= 0 else None


def fit_powerlaw(n, error, sigma=None) -> dict:
    """Fit ``error = a * n**(-nu) + c``; returns ``{a, nu, c, a_std, nu_std, c_std, n_points, ok, ...}``.

    ``sigma`` (optional, same length) is the standard error of each point; the
    covariance is rescaled by the residual variance (``absolute_sigma=False``),
    so only relative weights matter.  Points with a non-finite value or
    ``n <= 0`` are ignored.
    """
    from scipy.optimize import OptimizeWarning, curve_fit

    n = np.asarray(n, dtype=np.float64).ravel()
    e = np.asarray(error, dtype=np.float64).ravel()
    s = None if sigma is None else np.asarray(sigma, dtype=np.float64).ravel()
    ok = np.isfinite(n) & np.isfinite(e) & (n > 0)
    if s is not None:
        ok &= np.isfinite(s) & (s > 0)
        s = s[ok]
    n, e = n[ok], e[ok]
    n_distinct = len(np.unique(n))
    if n_distinct < 2:
        return _empty_fit(len(n), f"not enough points to fit a power law: {n_distinct} distinct size(s), need 2+")

    # Starting point: the log-log slope of the error above half the best error.
    c0 = 0.5 * float(e.min()) if e.min() > 0 else 0.0
    y = np.log(np.maximum(e - c0, 1e-9))
    slope, icept = np.polyfit(np.log(n), y, 1)
    nu0 = float(np.clip(-slope, 0.05, _NU_MAX - 0.05))
    a0 = float(max(math.exp(icept), 1e-9))
    out = None
    if n_distinct >= MIN_POINTS_FLOOR:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", OptimizeWarning)
                p, pcov = curve_fit(
                    powerlaw,
                    n,
                    e,
                    p0=[a0, nu0, min(c0, 0.99)],
                    sigma=s,
                    absolute_sigma=False,
                    bounds=([1e-12, 1e-6, 0.0], [np.inf, _NU_MAX, 1.0 - 1e-9]),
                    maxfev=20000,
                )
            out = {
                "a": float(p[0]),
                "nu": float(p[1]),
                "c": float(p[2]),
                "a_std": _std(pcov, 0),
                "nu_std": _std(pcov, 1),
                "c_std": _std(pcov, 2),
                "with_floor": True,
                "note": "fit with a floor c",
                "_pcov": pcov,
            }
        except (RuntimeError, ValueError):
            out = None
    if out is None:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", OptimizeWarning)
                p, pcov = curve_fit(
                    lambda x, a, nu: powerlaw(x, a, nu),
                    n,
                    e,
                    p0=[a0, nu0],
                    sigma=s,
                    absolute_sigma=False,
                    bounds=([1e-12, 1e-6], [np.inf, _NU_MAX]),
                    maxfev=20000,
                )
        except (RuntimeError, ValueError) as exc:
            return _empty_fit(len(n), f"the power-law fit failed ({exc})")
        why = (
            f"only {n_distinct} distinct sizes: floor c fixed at 0"
            if n_distinct < MIN_POINTS_FLOOR
            else "the fit with a floor failed: floor c fixed at 0"
        )
        full = np.zeros((3, 3))
        full[:2, :2] = pcov
        out = {
            "a": float(p[0]),
            "nu": float(p[1]),
            "c": 0.0,
            "a_std": _std(pcov, 0),
            "nu_std": _std(pcov, 1),
            "c_std": 0.0,
            "with_floor": False,
            "note": why,
            "_pcov": full,
        }
    pcov = out.pop("_pcov")
    out.update(
        {
            "n_points": int(len(n)),
            "ok": True,
            "n_min": float(n.min()),
            "n_max": float(n.max()),
            "cov": np.where(np.isfinite(pcov), pcov, np.nan).tolist(),
        }
    )
    return out


def predict(fit: dict, n) -> tuple[np.ndarray, np.ndarray]:
    """(prediction, standard error) of a fit at sizes ``n`` (delta method on the covariance)."""
    n = np.asarray(n, dtype=np.float64)
    if not fit or not fit.get("ok"):
        nan = np.full(n.shape, np.nan)
        return nan, nan
    a, nu, c = fit["a"], fit["nu"], fit["c"]
    mean = powerlaw(n, a, nu, c)
    cov = np.asarray(fit.get("cov") or np.zeros((3, 3)), dtype=np.float64)
    cov = np.where(np.isfinite(cov), cov, 0.0)
    pw = np.power(n, -nu)
    jac = np.stack([pw, -a * np.log(n) * pw, np.ones_like(n)], axis=-1)  # d/da, d/dnu, d/dc
    var = np.einsum("...i,ij,...j->...", jac, cov, jac)
    return mean, np.sqrt(np.maximum(var, 0.0))


def lower_envelope(points: pd.DataFrame, n_col: str = "n_kept", err_col: str = "error_mean") -> pd.DataFrame:
    """Pareto frontier: the rows that set a new lowest error as ``n`` grows.

    The result is sorted by ``n`` with ``err_col`` strictly decreasing, so the
    frontier (the lowest error reachable with at most ``n`` examples) is
    monotone non-increasing.  Ties in ``n`` keep the lower error (then the
    first row).
    """
    if len(points) == 0:
        return points.iloc[0:0].copy()
    df = points.sort_values([n_col, err_col], kind="mergesort")
    best = np.inf
    keep = []
    for i, err in zip(df.index, df[err_col].to_numpy(np.float64)):
        if np.isfinite(err) and err < best:
            keep.append(i)
            best = err
    return df.loc[keep].reset_index(drop=True)


def beats_powerlaw(frontier: pd.DataFrame, fit: dict, *, sigmas: float = BEATS_SIGMAS) -> dict:
    """Where the frontier's pruned points lie below the power law by more than ``sigmas`` standard errors.

    Only frontier points pruned by a metric (``keep_fraction < 1`` and a
    strategy other than random) inside the fitted size range count; the
    uncertainty combines the fit's standard error at ``n`` with the frontier
    point's standard error over seeds.  ``max_gain`` is the
    largest (fit - frontier) error difference, as a fraction (0.01 = 1 pp).
    """
    base = {"beats": False, "where": [], "max_gain": None, "sigmas": float(sigmas)}
    if not fit or not fit.get("ok") or frontier is None or len(frontier) == 0:
        return {**base, "note": "no power-law fit to compare with"}
    fr = frontier
    if "keep_fraction" in fr:
        fr = fr[fr["keep_fraction"] < 1.0]
    if "strategy" in fr:
        fr = fr[fr["strategy"] != "random"]  # random pruning is a random subset: on the power law by design
    lo, hi = fit["n_min"], fit["n_max"]
    fr = fr[(fr["n_kept"] >= lo) & (fr["n_kept"] <= hi)]
    if len(fr) == 0:
        return {**base, "note": "no pruned frontier point inside the fitted size range"}
    n = fr["n_kept"].to_numpy(np.float64)
    pred, pred_std = predict(fit, n)
    err = fr["error_mean"].to_numpy(np.float64)
    if "error_std" in fr and "n_seeds" in fr:
        sem = fr["error_std"].fillna(0.0).to_numpy(np.float64) / np.sqrt(np.maximum(fr["n_seeds"].to_numpy(), 1))
    else:
        sem = np.zeros_like(err)
    gain = pred - err
    unc = np.sqrt(pred_std**2 + sem**2)
    hit = gain > sigmas * unc
    return {
        **base,
        "beats": bool(hit.any()),
        "where": [int(x) for x in n[hit]],
        "max_gain": float(gain.max()),
        "note": f"pruned frontier points below the fit by more than {sigmas:g} standard errors",
    }
