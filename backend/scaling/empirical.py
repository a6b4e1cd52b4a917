"""Empirical scaling curves of a finished run (method.md section 4): the public entry points and the cache.

"If I keep 60% of my data, keeping the hardest examples by this metric, what
held-out error should I expect, against a random 60% or the easiest 60%?"

The estimate trains many small *probes* (multinomial logistic regression, or
optionally a one-hidden-layer MLP, :mod:`backend.probes`) on the run's frozen
embeddings, for several initial sizes, keep fractions and strategies, and
measures their error on held-out data that is never pruned.  The work is
split by job:

- :mod:`backend.scaling.grid`: parameters, the hold-out, per-subset scores (metric registry), the probe loop;
- :mod:`backend.scaling.analysis`: errors averaged over seeds, the power law ``a n^-nu + c`` fitted to the
  random subsets, the Pareto frontier, whether the frontier beats the power law;
- :mod:`backend.scaling.recommend`: the recommendation (direction, smallest harmless keep fraction, where
  pruning loses to random) and its sentence;
- this module: :func:`estimate_scaling`, :func:`load_scaling`, :class:`ScalingResult`.

Everything is cached as a :class:`backend.store.Stage` under
``<workdir>/scaling/<key>/`` (``points.parquet``, ``points.csv``,
``result.json``), keyed by the run and every grid parameter.  The tolerance of
the recommendation is *not* part of the key: it only changes the analysis,
which is recomputed from the cached points in milliseconds.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import CurateError
from ..io import read_json, write_json, write_npy, write_table
from ..probes import LinearProbes as _LinearProbes  # noqa: F401  (the name tests and benchmarks use)
from ..probes import MLPProbes as _MLPProbes  # noqa: F401
from ..probes import probe_features as _features  # noqa: F401
from ..progress import Reporter
from ..store import Stage
from .analysis import aggregate, analyse
from .grid import (
    DEFAULT_FRACTIONS,
    DEFAULT_INITIAL_SIZES,
    DEFAULT_SETTINGS,
    LINEAR,
    MLP,
    PROBES,
    STRATEGY_ORDER,
    _orders,
    _subset_scores,
    grid_params,
    run_grid,
    setting_label,
)
from .recommend import recommend

_params = grid_params  # the name the benchmark uses

VERSION = 2  # 2: per-probe held-out mistakes (holdout_wrong.npy) for paired comparisons
STAGE = "scaling"

__all__ = [
    "DEFAULT_FRACTIONS",
    "DEFAULT_INITIAL_SIZES",
    "DEFAULT_SETTINGS",
    "LINEAR",
    "MLP",
    "PROBES",
    "STRATEGY_ORDER",
    "ScalingResult",
    "_orders",
    "_subset_scores",
    "aggregate",
    "analyse",
    "estimate_scaling",
    "grid_params",
    "load_scaling",
    "recommend",
    "run_grid",
]


@dataclass
class ScalingResult:
    """Everything the estimate found; see the module docstring."""

    points: pd.DataFrame
    curves: pd.DataFrame
    powerlaw: dict
    frontier: pd.DataFrame
    beats_powerlaw: dict
    recommendation: dict
    holdout: dict
    params: dict
    dir: Path
    elapsed_s: float
    cached: bool = False
    files: dict = field(default_factory=dict)

    def curve(self, strategy: str, initial_fraction: float | None = None, balance: str = "none") -> pd.DataFrame:
        """The curve of one setting (strategy, balance) at one initial size (default: the largest)."""
        c = self.curves
        q = c["initial_fraction"].max() if initial_fraction is None else initial_fraction
        return c[
            (c["strategy"] == strategy) & (c["balance"] == balance) & np.isclose(c["initial_fraction"], q)
        ].sort_values("keep_fraction")

    @property
    def settings(self) -> list[tuple[str, str]]:
        """The (strategy, balance) pairs the grid estimated."""
        return list(dict.fromkeys(zip(self.curves["strategy"], self.curves["balance"])))

    def table(self, initial_fraction: float | None = None) -> pd.DataFrame:
        """Mean held-out error, setting x keep fraction, at one initial size (default: the largest).

        Rows are named by :func:`backend.scaling.grid.setting_label` (the strategy, with its balance when
        there is one), in the grid's display order.
        """
        c = self.curves
        q = c["initial_fraction"].max() if initial_fraction is None else initial_fraction
        sub = c[np.isclose(c["initial_fraction"], q)]
        sub = sub.assign(setting=[setting_label(st, b) for st, b in zip(sub["strategy"], sub["balance"])])
        t = sub.pivot(index="setting", columns="keep_fraction", values="error_mean")
        return t.reindex(list(dict.fromkeys(sub["setting"])))


def _as_run(run):
    from .. import load_run
    from ..run import Run

    return run if isinstance(run, Run) else load_run(run)


def _stage(run, params: dict) -> Stage:
    workdir = run.dir.parent.parent
    return Stage(workdir, STAGE, VERSION, {"run": run.key, **params})


def load_scaling(
    run,
    *,
    metric: str = "ssl_prototype",
    fractions=None,
    initial_sizes=None,
    seeds=3,
    probe: str = "linear",
    tolerance: float = 0.005,
    scores=None,
    settings=None,
) -> ScalingResult | None:
    """The cached estimate for these parameters, or None when it has not been computed (no compute)."""
    run = _as_run(run)
    params = grid_params(run, metric, fractions, initial_sizes, seeds, probe, scores, settings)
    st = _stage(run, params)
    if not st.done:
        return None
    return _load(st, tolerance)


def estimate_scaling(
    run,
    *,
    metric: str = "ssl_prototype",
    fractions=None,
    initial_sizes=None,
    seeds=3,
    probe: str = "linear",
    tolerance: float = 0.005,
    device: str = "auto",
    reporter: Reporter | None = None,
    scores=None,
    force: bool = False,
    settings=None,
) -> ScalingResult:
    """Train the probe grid (or load it from the cache) and analyse it.

    ``run``: a :class:`backend.Run` or a run/work folder.  ``fractions``:
    keep fractions (1.0 is always added); ``initial_sizes``: fractions of the
    pool; ``seeds``: a number N (seeds 0..N-1) or a list; ``tolerance``: the
    error increase (0.005 = 0.5 pp) the recommendation accepts.  ``scores``: an
    optional fixed difficulty per pool example (higher = harder, the run's
    table order), used instead of ``metric`` and never recomputed.
    ``settings``: the (strategy, balance) pairs to estimate (default: hard,
    easy and random without balance; random without balance is always
    added, it is the baseline of the recommendation).  ``force``: recompute
    even when cached.
    """
    from ..embed import resolve_device

    rep = reporter or Reporter()
    run = _as_run(run)
    _check_tolerance(tolerance)
    if not run.has_labels:
        raise CurateError(
            "the empirical scaling estimate needs labels to measure held-out error and this run "
            "has none; the theory view (backend.scaling.theory) still applies"
        )
    params = grid_params(run, metric, fractions, initial_sizes, seeds, probe, scores, settings)
    if scores is None and metric not in run.table.columns:
        raise CurateError(
            f"metric {metric!r} is not in this run (available: {', '.join(run.score_columns)}): pass --metric"
        )
    st = _stage(run, params)
    if st.done and not force:
        rep.stage("scaling", cached=True, detail=str(st.dir))
        return _load(st, tolerance)
    dev = resolve_device(device)
    t0 = time.perf_counter()
    rep.stage(
        "scaling",
        detail=f"{params['probe']} probes on {dev}: metric {params['metric']}, "
        f"{len(params['initial_sizes'])} initial sizes x {len(params['fractions'])} "
        f"keep fractions x {len(params.get('settings', DEFAULT_SETTINGS))} settings x "
        f"{len(params['seeds'])} seeds",
    )
    points, info = run_grid(
        run, params, scores=None if scores is None else np.asarray(scores, np.float64), device=dev, reporter=rep
    )
    elapsed = time.perf_counter() - t0
    d = st.prepare()
    write_table(d / "points.parquet", points)
    write_table(d / "points.csv", points)
    for name, arr in info.pop("arrays", {}).items():
        write_npy(d / f"{name}.npy", arr)
    meta = {
        "params": {**params, **info["params"]},
        "holdout": info["holdout"],
        "elapsed_s": round(elapsed, 3),
        "device": dev,
        "run_dir": str(run.dir),
        "tolerance": tolerance,
    }
    res = _assemble(points, meta, st.dir, tolerance, cached=False)
    write_json(d / "result.json", _result_json(res))
    st.finish(elapsed_s=round(elapsed, 3), holdout=info["holdout"], device=dev)
    rep.end_stage()
    return res


def _check_tolerance(tolerance: float) -> None:
    if not (0.0 <= float(tolerance) < 1.0):
        raise CurateError(f"tolerance {tolerance} must be an error-rate difference in [0, 1): 0.005 = 0.5 pp")


def _load(st: Stage, tolerance: float) -> ScalingResult:
    _check_tolerance(tolerance)
    points = pd.read_parquet(st.dir / "points.parquet")
    saved = read_json(st.dir / "result.json")
    meta = {
        "params": saved["params"],
        "holdout": saved["holdout"],
        "elapsed_s": saved["elapsed_s"],
        "device": saved["params"].get("device"),
        "run_dir": saved["params"].get("run_dir"),
        "tolerance": tolerance,
    }
    return _assemble(points, meta, st.dir, tolerance, cached=True)


def _assemble(points: pd.DataFrame, meta: dict, d: Path, tolerance: float, *, cached: bool) -> ScalingResult:
    params = dict(meta["params"])
    params.update({"tolerance": float(tolerance), "device": meta.get("device"), "run_dir": meta.get("run_dir")})
    wrong_path = Path(d) / "holdout_wrong.npy"
    holdout_wrong = np.load(wrong_path, mmap_mode="r") if wrong_path.exists() else None
    an = analyse(
        points,
        tolerance=tolerance,
        metric=str(params.get("metric_name", params["metric"])),
        holdout_size=meta["holdout"]["size"],
        probe=params["probe"],
        encoder=params.get("encoder", "embedding"),
        holdout_wrong=holdout_wrong,
    )
    files = {
        "points.parquet": str(d / "points.parquet"),
        "points.csv": str(d / "points.csv"),
        "result.json": str(d / "result.json"),
    }
    return ScalingResult(
        points=points,
        curves=an["curves"],
        powerlaw=an["powerlaw"],
        frontier=an["frontier"],
        beats_powerlaw=an["beats_powerlaw"],
        recommendation=an["recommendation"],
        holdout=dict(meta["holdout"]),
        params=params,
        dir=Path(d),
        elapsed_s=float(meta["elapsed_s"]),
        cached=cached,
        files=files,
    )


def _result_json(res: ScalingResult) -> dict:
    return {
        "params": {k: v for k, v in res.params.items() if k != "tolerance"},
        "tolerance": res.params["tolerance"],
        "holdout": res.holdout,
        "elapsed_s": res.elapsed_s,
        "powerlaw": res.powerlaw,
        "beats_powerlaw": res.beats_powerlaw,
        "recommendation": res.recommendation,
        "frontier": res.frontier.to_dict(orient="records"),
        "curves": res.curves.to_dict(orient="records"),
    }
