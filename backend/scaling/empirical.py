"""Empirical scaling curves of a finished run (method.md section 4).

"If I keep 60% of my data, keeping the hardest examples by this metric, what
held-out error should I expect, against a random 60% or the easiest 60%?"

The estimate trains many small *probes* (multinomial logistic regression, or
optionally a one-hidden-layer MLP) on the run's frozen embeddings:

1. **Held-out data, never pruned**: the run's hold-out split (e.g. the 10,000
   Fashion-MNIST test images) when it has one with labels; otherwise a
   stratified hold-out carved from the pool (20%, at most 10,000), which is
   then left out of the pool.
2. **Grid**: for every seed, one random permutation of the pool; the initial
   subset of fraction ``q`` is its first ``round(q * N)`` examples (so the
   subsets of one seed are nested).  Inside each initial subset the metric is
   *recomputed* when it depends on the set (``ssl_prototype``: spherical
   k-means with the run's ``k`` and the grid seed; ``supervised_prototype``:
   class prototypes of the subset; ``random``: a fresh seeded hash); any other
   score column (and a ``scores=`` array) is used as is.  Each strategy keeps
   ``keep_count_for(n, f)`` examples in the order of
   :class:`backend.select.Ranking` (the order ``curate select`` uses): hard =
   highest scores, easy = lowest, random = the seeded ``random`` hash.
3. **Probes, many at once**: all probes of one (initial size, seed) are
   trained together.  A strategy's kept sets are prefixes of one ordering of
   the subset, so the rows are sorted once per ordering and split into blocks
   at the prefix lengths; each block is multiplied by the weights of every
   probe that contains it in one matrix product.  The work is exactly the sum
   of the kept sizes (no masked rows), in a few large GEMMs.  The linear
   probe minimises the mean cross-entropy over its kept examples plus
   ``1 / (2 C n_kept) * |W|^2`` (scikit-learn's ``C = 1`` convention; the
   bias is not penalised) with a batched L-BFGS: per-probe two-loop
   recursion, per-probe Armijo backtracking, at most ``max_iter`` full-batch
   iterations (default 30), each probe stopping earlier when its largest
   gradient entry is below ``gtol``.  One full-batch iteration is one epoch
   over the kept set, so this is the *fixed epochs* convention (compute grows
   with the kept size); 30 epochs are not full convergence (on the
   Fashion-MNIST demo the errors are within 0.3 pp on average, 1.1 pp at
   worst, of the converged probes), but every probe gets the same budget.
   On a CPU with fast bfloat16 GEMMs the two matrix products run in bfloat16
   (all else float32; errors move by 0.1 pp on average), see
   :func:`_gemm_dtype`.
   At ``keep_fraction == 1`` the three strategies keep the same set: one probe
   is trained and its error is recorded under each strategy.
4. **Analysis** (:mod:`backend.scaling.powerlaw`): errors averaged over seeds;
   a power law ``a n^-nu + c`` fitted to the random subsets (see
   :func:`analyse`); the Pareto frontier; whether the frontier beats the power
   law; a recommendation.

Features: the embeddings are L2-normalised (as for k-means), then
standardised with the pool's per-dimension mean and standard deviation, and a
constant 1 is appended for the bias.

Everything is cached as a :class:`backend.store.Stage` under
``<workdir>/scaling/<key>/`` (``points.parquet``, ``points.csv``,
``result.json``), keyed by the run and every grid parameter.  The tolerance of
the recommendation is *not* part of the key: it only changes the analysis,
which is recomputed from the cached points in milliseconds.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from ..errors import CurateError
from ..io import read_json, write_json, write_table
from ..progress import Reporter
from ..store import Stage, fingerprint
from . import powerlaw as pl

VERSION = 1
STAGE = "scaling"
DEFAULT_FRACTIONS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
DEFAULT_INITIAL_SIZES = (0.125, 0.25, 0.5, 1.0)
PROBES = ("linear", "mlp")
STRATEGY_ORDER = ("hard", "easy", "random")
RECOMPUTED_METRICS = ("ssl_prototype", "supervised_prototype", "random")

HOLDOUT_SHARE = 0.2     # carved hold-out: this share of the pool ...
HOLDOUT_MAX = 10_000    # ... at most this many examples
HOLDOUT_SEED = 0

# Linear probe (batched L-BFGS).
LINEAR = {"C": 1.0, "max_iter": 30, "gtol": 1e-5, "history": 10, "precision": "auto"}
MAX_BACKTRACK = 8  # line-search trials per iteration; a probe with no acceptable step stops (converged to float32)
# MLP probe (batched Adam on mini-batches; fixed iterations).
MLP = {"hidden": 256, "steps": 400, "batch": 256, "lr": 2e-3, "weight_decay": 1e-4}


# ---------------------------------------------------------------------------
# the result
# ---------------------------------------------------------------------------

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

    def curve(self, strategy: str, initial_fraction: float | None = None) -> pd.DataFrame:
        """The curve of one strategy at one initial size (default: the largest)."""
        c = self.curves
        q = c["initial_fraction"].max() if initial_fraction is None else initial_fraction
        return c[(c["strategy"] == strategy) & np.isclose(c["initial_fraction"], q)].sort_values("keep_fraction")

    def table(self, initial_fraction: float | None = None) -> pd.DataFrame:
        """Mean held-out error, strategy x keep fraction, at one initial size (default: the largest)."""
        c = self.curves
        q = c["initial_fraction"].max() if initial_fraction is None else initial_fraction
        sub = c[np.isclose(c["initial_fraction"], q)]
        t = sub.pivot(index="strategy", columns="keep_fraction", values="error_mean")
        return t.reindex([s for s in STRATEGY_ORDER if s in t.index])


# ---------------------------------------------------------------------------
# parameters and the cache
# ---------------------------------------------------------------------------

def _as_run(run):
    from .. import load_run
    from ..run import Run

    return run if isinstance(run, Run) else load_run(run)


def _fractions(values, name: str, default) -> list[float]:
    if values is None:
        values = default
    if isinstance(values, (int, float)):
        values = [values]
    try:
        out = sorted({round(float(v), 6) for v in values})
    except (TypeError, ValueError):
        raise CurateError(f"{name} must be numbers in (0, 1], e.g. 0.1,0.5,1 (got {values!r})") from None
    bad = [v for v in out if not (0.0 < v <= 1.0) or math.isnan(v)]
    if bad or not out:
        raise CurateError(f"{name} must be numbers in (0, 1], e.g. 0.1,0.5,1 (got {values!r})")
    return out


def _params(run, metric, fractions, initial_sizes, seeds, probe, scores) -> dict:
    if probe not in PROBES:
        raise CurateError(f"unknown probe {probe!r}: use linear or mlp")
    fr = _fractions(fractions, "keep fractions", DEFAULT_FRACTIONS)
    if 1.0 not in fr:
        fr.append(1.0)  # the unpruned point anchors every curve and the power law
    sizes = _fractions(initial_sizes, "initial sizes", DEFAULT_INITIAL_SIZES)
    if isinstance(seeds, (list, tuple, np.ndarray)):
        seed_list = sorted({int(s) for s in seeds})
    else:
        if int(seeds) < 1:
            raise CurateError(f"--seeds must be at least 1 (got {seeds})")
        seed_list = list(range(int(seeds)))
    if scores is not None:
        scores = np.asarray(scores, dtype=np.float64).ravel()
        if len(scores) != run.n_examples:
            raise CurateError(f"scores has {len(scores)} values but the run has {run.n_examples} pool examples")
        if not np.isfinite(scores).all():
            raise CurateError("scores contains NaN or inf")
        metric_id = "custom:" + fingerprint(scores.round(12).tobytes().hex())
    else:
        metric_id = metric
    return {"metric": metric_id, "fractions": fr, "initial_sizes": sizes, "seeds": seed_list, "probe": probe,
            "probe_settings": dict(LINEAR if probe == "linear" else MLP)}


def _stage(run, params: dict) -> Stage:
    workdir = run.dir.parent.parent
    return Stage(workdir, STAGE, VERSION, {"run": run.key, **params})


def load_scaling(run, *, metric: str = "ssl_prototype", fractions=None, initial_sizes=None, seeds=3,
                 probe: str = "linear", tolerance: float = 0.005, scores=None) -> "ScalingResult | None":
    """The cached estimate for these parameters, or None when it has not been computed (no compute)."""
    run = _as_run(run)
    params = _params(run, metric, fractions, initial_sizes, seeds, probe, scores)
    st = _stage(run, params)
    if not st.done:
        return None
    return _load(st, tolerance)


def estimate_scaling(run, *, metric: str = "ssl_prototype", fractions=None, initial_sizes=None, seeds=3,
                     probe: str = "linear", tolerance: float = 0.005, device: str = "auto",
                     reporter: Reporter | None = None, scores=None, force: bool = False) -> ScalingResult:
    """Train the probe grid (or load it from the cache) and analyse it.

    ``run``: a :class:`backend.Run` or a run/work folder.  ``fractions``:
    keep fractions (1.0 is always added); ``initial_sizes``: fractions of the
    pool; ``seeds``: a number N (seeds 0..N-1) or a list; ``tolerance``: the
    error increase (0.005 = 0.5 pp) the recommendation accepts.  ``scores``: an
    optional fixed difficulty per pool example (higher = harder, the run's
    table order), used instead of ``metric`` and never recomputed.
    ``force``: recompute even when cached.
    """
    from ..embed import resolve_device

    rep = reporter or Reporter()
    run = _as_run(run)
    _check_tolerance(tolerance)
    if not run.has_labels:
        raise CurateError("the empirical scaling estimate needs labels to measure held-out error and this run "
                          "has none; the theory view (backend.scaling.theory) still applies")
    params = _params(run, metric, fractions, initial_sizes, seeds, probe, scores)
    if scores is None and metric not in run.table.columns:
        raise CurateError(f"metric {metric!r} is not in this run (available: {', '.join(run.score_columns)}): "
                          "pass --metric")
    st = _stage(run, params)
    if st.done and not force:
        rep.stage("scaling", cached=True, detail=str(st.dir))
        return _load(st, tolerance)
    dev = resolve_device(device)
    t0 = time.perf_counter()
    rep.stage("scaling", detail=f"{params['probe']} probes on {dev}: metric {params['metric']}, "
                                f"{len(params['initial_sizes'])} initial sizes x {len(params['fractions'])} "
                                f"keep fractions x 3 strategies x {len(params['seeds'])} seeds")
    points, info = run_grid(run, params, scores=None if scores is None else np.asarray(scores, np.float64),
                            device=dev, reporter=rep)
    elapsed = time.perf_counter() - t0
    d = st.prepare()
    write_table(d / "points.parquet", points)
    write_table(d / "points.csv", points)
    meta = {"params": {**params, **info["params"]}, "holdout": info["holdout"], "elapsed_s": round(elapsed, 3),
            "device": dev, "run_dir": str(run.dir), "tolerance": tolerance}
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
    meta = {"params": saved["params"], "holdout": saved["holdout"], "elapsed_s": saved["elapsed_s"],
            "device": saved["params"].get("device"), "run_dir": saved["params"].get("run_dir"),
            "tolerance": tolerance}
    return _assemble(points, meta, st.dir, tolerance, cached=True)


def _assemble(points: pd.DataFrame, meta: dict, d: Path, tolerance: float, *, cached: bool) -> ScalingResult:
    params = dict(meta["params"])
    params.update({"tolerance": float(tolerance), "device": meta.get("device"), "run_dir": meta.get("run_dir")})
    an = analyse(points, tolerance=tolerance, metric=params.get("metric_name", params["metric"]),
                 holdout_size=meta["holdout"]["size"], probe=params["probe"],
                 encoder=params.get("encoder", "embedding"))
    files = {"points.parquet": str(d / "points.parquet"), "points.csv": str(d / "points.csv"),
             "result.json": str(d / "result.json")}
    return ScalingResult(points=points, curves=an["curves"], powerlaw=an["powerlaw"], frontier=an["frontier"],
                         beats_powerlaw=an["beats_powerlaw"], recommendation=an["recommendation"],
                         holdout=dict(meta["holdout"]), params=params, dir=Path(d),
                         elapsed_s=float(meta["elapsed_s"]), cached=cached, files=files)


def _result_json(res: ScalingResult) -> dict:
    return {"params": {k: v for k, v in res.params.items() if k != "tolerance"}, "tolerance": res.params["tolerance"],
            "holdout": res.holdout, "elapsed_s": res.elapsed_s, "powerlaw": res.powerlaw,
            "beats_powerlaw": res.beats_powerlaw, "recommendation": res.recommendation,
            "frontier": res.frontier.to_dict(orient="records"), "curves": res.curves.to_dict(orient="records")}


# ---------------------------------------------------------------------------
# the grid
# ---------------------------------------------------------------------------

def _holdout(run, pool_labels: np.ndarray, rep: Reporter):
    """(pool positions used for the grid, holdout embedding rows, holdout labels, info)."""
    hold = run.holdout
    if len(hold):
        hold = hold[hold["label"].notna()]
    n_pool = run.n_examples
    if len(hold):
        info = {"kind": "test split", "size": int(len(hold))}
        rep.info(f"held-out: the run's test split, {len(hold)} examples (never pruned)")
        return np.arange(n_pool), hold["row"].to_numpy(np.int64), hold["label"].astype(str).to_numpy(), info
    size = int(min(HOLDOUT_MAX, round(HOLDOUT_SHARE * n_pool)))
    if size < 1 or n_pool - size < 2:
        raise CurateError(f"the run has {n_pool} examples and no test split: too few to carve a hold-out "
                          "(need at least 5)")
    from sklearn.model_selection import train_test_split

    pos = np.arange(n_pool)
    try:
        keep, held = train_test_split(pos, test_size=size, random_state=HOLDOUT_SEED, stratify=pool_labels)
    except ValueError:  # a class with a single example: fall back to a plain random split
        keep, held = train_test_split(pos, test_size=size, random_state=HOLDOUT_SEED)
    keep, held = np.sort(keep), np.sort(held)
    info = {"kind": "stratified hold-out", "size": int(size)}
    rep.info(f"held-out: no test split in this run, so {size} pool examples ({size / n_pool:.0%}, stratified by "
             f"class) are held out and never pruned; the grid uses the other {len(keep)}")
    rows = run.table["row"].to_numpy(np.int64)
    return keep, rows[held], pool_labels[held], info


def _features(emb, rows: np.ndarray, transform=None):
    """Probe features of embedding ``rows``: L2-normalised, whitened with the pool's statistics, plus a 1.

    ``transform`` = (mean, matrix) from the pool; None computes it from ``rows``.
    Whitening (PCA, eigenvalues floored at 1e-4 of the largest, so no
    direction is amplified more than 100x relative to the strongest) barely
    changes the nearly unregularised logistic regression's solution (it is
    invariant to invertible linear maps of the features) and keeps L-BFGS
    well conditioned when the embedding's dimensions are correlated.
    """
    from ..cluster import l2_normalize

    d = emb.shape[1]
    x = np.empty((len(rows), d), np.float32)
    for s in range(0, len(rows), 65536):
        x[s:s + 65536] = l2_normalize(emb[rows[s:s + 65536]])
    if transform is None:
        mean = x.mean(0, dtype=np.float64)
        xc = x - mean.astype(np.float32)
        cov = (xc.T @ xc).astype(np.float64) / max(len(x) - 1, 1)
        del xc
        ev, vec = np.linalg.eigh(cov)
        ev = np.maximum(ev, 1e-4 * max(float(ev.max()), 1e-30))
        mat = (vec / np.sqrt(ev)).astype(np.float32)
        transform = (mean.astype(np.float32), mat)
    mean, mat = transform
    out = np.empty((len(rows), mat.shape[1] + 1), np.float32)
    for s in range(0, len(rows), 65536):
        out[s:s + 65536, :-1] = (x[s:s + 65536] - mean) @ mat
    out[:, -1] = 1.0
    return out, transform


def _subset_scores(run, metric: str, scores, sub_pos: np.ndarray, seed: int, dev: str) -> np.ndarray:
    """Difficulty (higher = harder) of the pool positions ``sub_pos``, recomputed inside the subset."""
    from ..cluster import SphericalKMeans
    from ..scores import random_score, ssl_prototype, supervised_prototype

    table = run.table
    if scores is not None:
        return scores[sub_pos]
    rows = table["row"].to_numpy(np.int64)[sub_pos]
    if metric == "ssl_prototype":
        k = max(1, min(run.k, len(sub_pos)))
        iters = int(run.config["params"].get("kmeans_iters", 20))
        km = SphericalKMeans(k, n_iter=iters, random_state=seed, device=dev).fit(run.embeddings, rows)
        _, sim = km.predict(run.embeddings, rows)
        return ssl_prototype(sim).astype(np.float64)
    if metric == "supervised_prototype":
        labels = table["label"].astype(str).to_numpy()[sub_pos]
        return supervised_prototype(run.embeddings, labels, rows).astype(np.float64)
    if metric == "random":
        return random_score(table["example_id"].astype(str).to_numpy()[sub_pos], 7919 + seed)
    return table[metric].to_numpy(np.float64)[sub_pos]


def _orders(ids: np.ndarray, s: np.ndarray, seed: int) -> dict[str, np.ndarray]:
    """Keep orders (positions into the subset) of the three strategies, as :class:`Ranking` builds them."""
    from ..select.subset import Ranking

    t = pd.DataFrame({"example_id": ids, "score": s})
    return {st: Ranking(t, strategy=st, metric="score", seed=seed).order for st in STRATEGY_ORDER}


@contextlib.contextmanager
def _cpu_threads(device: str):
    """Torch CPU threads for the grid: all of them, or 1 when the machine is already oversubscribed.

    Small GEMMs with several OpenMP threads on busy cores spend most of their
    time waiting at barriers (10x slower or worse); one thread degrades
    gracefully.  ``CURATE_SCALING_THREADS=N`` overrides the choice.
    """
    import torch

    before = torch.get_num_threads()
    n = before
    env = os.environ.get("CURATE_SCALING_THREADS")
    if env:
        n = max(1, int(env))
    elif not str(device).startswith("cuda"):
        try:
            cores = len(os.sched_getaffinity(0))
            load = os.getloadavg()[0]
        except (AttributeError, OSError):
            cores, load = before, 0.0
        if load > cores + 0.5:
            n = 1
    torch.set_num_threads(n)
    try:
        import faiss

        faiss_before = faiss.omp_get_max_threads()
        faiss.omp_set_num_threads(n)
    except (ImportError, AttributeError):
        faiss = None
    try:
        yield n
    finally:
        torch.set_num_threads(before)
        if faiss is not None:
            faiss.omp_set_num_threads(faiss_before)


def run_grid(run, params: dict, *, scores=None, device: str = "cpu",
             reporter: Reporter | None = None) -> tuple[pd.DataFrame, dict]:
    """Train every probe of the grid; return (points, info).  No caching: see :func:`estimate_scaling`."""
    with _cpu_threads(device) as n_threads:
        points, info = _run_grid(run, params, scores=scores, device=device, reporter=reporter)
    info["params"]["cpu_threads"] = n_threads
    return points, info


def _run_grid(run, params: dict, *, scores=None, device: str = "cpu",
             reporter: Reporter | None = None) -> tuple[pd.DataFrame, dict]:
    """Train every probe of the grid; return (points, info).  No caching: see :func:`estimate_scaling`."""
    from ..select.subset import keep_count_for

    rep = reporter or Reporter()
    table = run.table
    pool_labels = table["label"].astype(str).to_numpy()
    grid_pos, hold_rows, hold_labels, hold_info = _holdout(run, pool_labels, rep)
    classes = np.unique(pool_labels[grid_pos])
    y_pool = np.searchsorted(classes, pool_labels).astype(np.int64)
    pos = np.minimum(np.searchsorted(classes, hold_labels), len(classes) - 1)
    y_hold = np.where(classes[pos] == hold_labels, pos, -1).astype(np.int64)  # unseen class: always wrong
    emb = run.embeddings
    pool_rows = table["row"].to_numpy(np.int64)
    timings = {"features": 0.0, "scores": 0.0, "probes": 0.0}
    t = time.perf_counter()
    x_grid, tf = _features(emb, pool_rows[grid_pos])
    x_hold, _ = _features(emb, hold_rows, tf)
    ids_all = table["example_id"].astype(str).to_numpy()
    metric = params["metric"]
    n_grid = len(grid_pos)
    fr = params["fractions"]
    groups = []
    for seed in params["seeds"]:
        perm = np.random.default_rng([seed, 20220630]).permutation(n_grid)
        for q in params["initial_sizes"]:
            groups.append((seed, q, perm[:max(1, int(round(q * n_grid)))]))
    n_probes_group = [1 + 3 * sum(f < 1 for f in fr)] * len(groups)
    total = int(sum(n_probes_group))
    done = 0
    rows_out = []
    iters, conv = [], []
    trainer = _LinearProbes if params["probe"] == "linear" else _MLPProbes
    settings = params["probe_settings"]
    import torch

    x_grid_t = torch.from_numpy(x_grid).to(device)
    x_hold_t = torch.from_numpy(x_hold).to(device)
    y_grid_t = torch.from_numpy(y_pool[grid_pos]).to(device)
    y_hold_t = torch.from_numpy(y_hold).to(device)
    timings["features"] = time.perf_counter() - t
    kept_rows = 0
    rep.update(0, total)
    for (seed, q, local), n_gp in zip(groups, n_probes_group):
        t = time.perf_counter()
        local = np.sort(local)
        sub_pos = grid_pos[local]
        n0 = len(sub_pos)
        s = _subset_scores(run, metric, scores, sub_pos, seed, device)
        orders = _orders(ids_all[sub_pos], s, seed)
        timings["scores"] += time.perf_counter() - t
        t = time.perf_counter()
        probes = []  # (ordering name, n_keep, [(strategy, f)])
        for st in STRATEGY_ORDER:
            for f in fr:
                if f < 1.0:
                    probes.append((st, keep_count_for(n0, f), [(st, f)]))
        probes.append(("random", n0, [(st, 1.0) for st in STRATEGY_ORDER]))
        local_t = torch.from_numpy(local).to(device)
        orderings = {st: local_t[torch.from_numpy(orders[st]).to(device)] for st in STRATEGY_ORDER}
        tr = trainer(x_grid_t, y_grid_t, len(classes), orderings, [(p[0], p[1]) for p in probes], settings,
                     seed=seed)
        err, it, ok = tr.fit_evaluate(x_hold_t, y_hold_t,
                                      progress=lambda frac, d=done, n=n_gp: rep.update(d + int(frac * (n - 1)), total))
        timings["probes"] += time.perf_counter() - t
        gemm = str(getattr(tr, "gemm_dtype", "float32")).replace("torch.", "")
        kept_rows += sum(p[1] for p in probes)
        iters.append(it)
        conv.append(ok)
        for (_, n_keep, labels), e in zip(probes, err):
            for st, f in labels:
                rows_out.append({"initial_fraction": q, "initial_size": n0, "strategy": st, "keep_fraction": f,
                                 "n_kept": int(n_keep), "seed": int(seed), "error": float(e)})
        done += n_gp
        rep.update(done, total)
    points = pd.DataFrame(rows_out)
    points["strategy"] = pd.Categorical(points["strategy"], categories=list(STRATEGY_ORDER))
    points = points.sort_values(["initial_fraction", "strategy", "keep_fraction", "seed"]).reset_index(drop=True)
    points["strategy"] = points["strategy"].astype(str)
    info_params = {
        "metric_name": "custom scores" if scores is not None else metric,
        "metric_recomputed": scores is None and metric in RECOMPUTED_METRICS,
        "n_pool": int(run.n_examples), "n_grid_pool": int(n_grid), "n_classes": int(len(classes)),
        "embedding_dim": int(emb.shape[1]), "encoder": run.config["params"].get("encoder", "embedding"),
        "n_probes_trained": total, "kept_rows_total": int(kept_rows), "gemm_dtype": gemm,
        "timings_s": {k: round(v, 3) for k, v in timings.items()},
        "probe_iterations_mean": float(np.mean(np.concatenate(iters))),
        "probe_converged_share": float(np.mean(np.concatenate(conv))),
        "convention": ("fixed epochs: full-batch L-BFGS, one iteration = one epoch over the kept set, "
                       f"at most {settings.get('max_iter')} iterations" if params["probe"] == "linear" else
                       f"fixed iterations: {settings['steps']} Adam steps of {settings['batch']} examples per probe"),
        "run_key": run.key,
    }
    return points, {"params": info_params, "holdout": hold_info}


# ---------------------------------------------------------------------------
# probes, many at once
# ---------------------------------------------------------------------------

_GEMM_CHOICE: dict = {}


def _gemm_dtype(precision: str, device):
    """The dtype of the probes' two matrix products: float32, or bfloat16 where it is much faster.

    Everything else (soft-max, loss, gradients' accumulation, L-BFGS, the
    held-out evaluation) stays float32.  ``"auto"`` picks bfloat16 on a CPU
    whose bfloat16 GEMM is at least 1.5x faster than float32 (a 20 ms probe,
    once per process; e.g. AVX512-BF16 or AMX), else float32.
    """
    import torch

    if precision in ("fp32", "float32") or getattr(device, "type", str(device)) != "cpu":
        return torch.float32
    if precision in ("bf16", "bfloat16"):
        return torch.bfloat16
    key = torch.get_num_threads()
    if key not in _GEMM_CHOICE:
        a, b = torch.randn(270, 256), torch.randn(256, 2048)

        def best(x, y):
            x @ y
            ts = []
            for _ in range(3):
                t = time.perf_counter()
                x @ y
                ts.append(time.perf_counter() - t)
            return min(ts)

        try:
            fast = best(a.bfloat16(), b.bfloat16()) * 1.5 < best(a, b)
        except RuntimeError:
            fast = False
        _GEMM_CHOICE[key] = torch.bfloat16 if fast else torch.float32
    return _GEMM_CHOICE[key]


class _Blocks:
    """Prefix structure of the probes: per ordering, row blocks and the probes that use each block."""

    def __init__(self, x, y, orderings: dict, probes: list[tuple[str, int]], gemm_dtype=None):
        import torch

        self.n_probes = len(probes)
        dev = x.device
        self.n_kept = torch.tensor([n for _, n in probes], dtype=x.dtype, device=dev)
        self.parts = []  # (x_sorted, y_sorted, [(r0, r1, probe index tensor)])
        self.max_block = 1  # largest rows x users of a block
        for name, perm in orderings.items():
            mine = [(i, n) for i, (o, n) in enumerate(probes) if o == name]
            if not mine:
                continue
            n_max = max(n for _, n in mine)
            rows = perm[:n_max]
            xs, ys = x[rows].to(gemm_dtype or x.dtype).contiguous(), y[rows].contiguous()
            bounds = sorted({n for _, n in mine})
            blocks, r0 = [], 0
            for r1 in bounds:
                users = [i for i, n in mine if n >= r1]
                blocks.append((r0, r1, torch.tensor(users, dtype=torch.long, device=dev)))
                self.max_block = max(self.max_block, (r1 - r0) * len(users))
                r0 = r1
            self.parts.append((xs, ys, blocks))


class _LinearProbes:
    """Multinomial logistic regression probes trained together by a batched L-BFGS."""

    def __init__(self, x, y, n_classes: int, orderings: dict, probes: list[tuple[str, int]], settings: dict,
                 seed: int = 0):
        import torch

        self.torch = torch
        self.gemm_dtype = _gemm_dtype(settings.get("precision", "auto"), x.device)
        self.b = _Blocks(x, y, orderings, probes, self.gemm_dtype)
        self.C = max(int(n_classes), 2)
        self.D = x.shape[1]
        self.s = settings
        self.lam = 1.0 / (float(settings["C"]) * self.b.n_kept)  # per probe, mean-loss units
        self.pen = torch.ones(1, self.D, dtype=x.dtype, device=x.device)
        self.pen[0, -1] = 0.0  # the bias is not penalised
        self.dtype, self.device = x.dtype, x.device
        self._m1 = None
        self._buf32 = self._buf16 = None

    def _minus_one(self, U, m):
        t = self._m1
        if t is None or t.shape[1] < U or t.shape[2] < m:
            t = self._m1 = self.torch.full((1, max(U, 1), max(m, 1)), -1.0, dtype=self.dtype, device=self.device)
        return t[:, :U, :m]

    def loss_grad(self, w, active):
        """Mean loss + penalty and its gradient for the ``active`` probes (others: 0).

        ``w`` is [P, C, D].  Logits are computed transposed, [C, U, m] for U
        probes on m rows, so the soft-max over classes is a handful of
        element-wise passes over contiguous memory.
        """
        torch = self.torch
        P, C, D = w.shape
        loss = torch.zeros(P, dtype=w.dtype, device=w.device)
        grad = torch.zeros_like(w)
        mixed = self.gemm_dtype != w.dtype
        if self._buf32 is None:
            size = C * self.b.max_block
            self._buf32 = torch.empty(size, dtype=w.dtype, device=w.device)
            self._buf16 = torch.empty(size, dtype=self.gemm_dtype, device=w.device) if mixed else None
        for xs, ys, blocks in self.b.parts:
            for r0, r1, users in blocks:
                u = users[active[users]]
                U = len(u)
                if U == 0:
                    continue
                xb, yb = xs[r0:r1], ys[r0:r1]
                m = r1 - r0
                wt = w[u].transpose(0, 1).reshape(C * U, D).to(xb.dtype)
                # preallocated buffers: fresh multi-MB tensors every call cost page faults
                z = self._buf32[:C * U * m].view(C, U * m)
                if mixed:
                    zl = self._buf16[:C * U * m].view(C * U, m)
                    torch.matmul(wt, xb.T, out=zl)
                    z.copy_(zl.view(C, U * m))
                else:
                    torch.matmul(wt, xb.T, out=z.view(C * U, m))
                z.sub_(z.amax(0))
                idx = yb.view(1, 1, m).expand(1, U, m)
                zy = z.view(C, U, m).gather(0, idx)
                z.exp_()
                tot = z.sum(0)
                z.div_(tot)  # soft-max
                loss.index_add_(0, u, (tot.log_() - zy.view(U * m)).view(U, m).sum(1))
                z.view(C, U, m).scatter_add_(0, idx, self._minus_one(U, m))
                if mixed:
                    zl.view(C, U * m).copy_(z)
                    g = (zl @ xb).to(w.dtype)
                else:
                    g = z.view(C * U, m) @ xb
                g = g.view(C, U, D).transpose(0, 1)
                grad.index_add_(0, u, g)
        n = self.b.n_kept
        loss = loss / n
        grad = grad / n.view(-1, 1, 1)
        wp = w * self.pen
        loss = loss + 0.5 * self.lam * (wp * wp).sum((1, 2))
        grad = grad + self.lam.view(-1, 1, 1) * wp
        a = active.to(w.dtype)
        return loss * a, grad * a.view(-1, 1, 1)

    def fit(self, progress=None):
        torch = self.torch
        P, D, C = self.b.n_probes, self.D, self.C
        m_hist = int(self.s["history"])
        w = torch.zeros(P, C, D, dtype=self.dtype, device=self.device)
        active = torch.ones(P, dtype=torch.bool, device=self.device)
        f, g = self.loss_grad(w, active)
        S = torch.zeros(m_hist, P, C, D, dtype=self.dtype, device=self.device)
        Y = torch.zeros_like(S)
        rho = torch.zeros(m_hist, P, dtype=self.dtype, device=self.device)
        gamma = torch.ones(P, dtype=self.dtype, device=self.device)
        iters = torch.zeros(P, dtype=torch.long, device=self.device)
        n_hist = 0
        head = 0
        gtol = float(self.s["gtol"])
        active = g.abs().amax((1, 2)) > gtol

        def dot(a, b):
            return (a * b).sum((-2, -1))

        for it in range(int(self.s["max_iter"])):
            if not bool(active.any()):
                break
            # two-loop recursion, per probe
            q = g.clone()
            alphas = []
            for j in range(n_hist):
                i = (head - 1 - j) % m_hist
                a_i = rho[i] * dot(S[i], q)
                q -= a_i.view(-1, 1, 1) * Y[i]
                alphas.append((i, a_i))
            r = q * gamma.view(-1, 1, 1)
            for i, a_i in reversed(alphas):
                b_i = rho[i] * dot(Y[i], r)
                r += S[i] * (a_i - b_i).view(-1, 1, 1)
            d = -r
            gd = dot(g, d)
            bad = gd >= 0  # not a descent direction: fall back to steepest descent
            if bool(bad.any()):
                d[bad] = -g[bad]
                gd = torch.where(bad, dot(g, d), gd)
            t = torch.ones(P, dtype=self.dtype, device=self.device)
            if it == 0:
                t = torch.clamp(1.0 / g.abs().sum((1, 2)).clamp_min(1e-12), max=1.0)
            # per-probe Armijo backtracking
            f_new = f.clone()
            g_new = g.clone()
            todo = active.clone()
            for _ in range(MAX_BACKTRACK):
                fn, gn = self.loss_grad(w + t.view(-1, 1, 1) * d, todo)
                f_new = torch.where(todo, fn, f_new)
                g_new = torch.where(todo.view(-1, 1, 1), gn, g_new)
                ok = f_new <= f + 1e-4 * t * gd
                todo = todo & ~ok
                if not bool(todo.any()):
                    break
                # quadratic interpolation, kept within [0.1 t, 0.5 t]
                denom = 2.0 * (f_new - f - gd * t)
                t_q = torch.where(denom > 0, -gd * t * t / denom.clamp_min(1e-30), 0.5 * t)
                t = torch.where(todo, torch.minimum(torch.maximum(t_q, 0.1 * t), 0.5 * t), t)
            step_ok = active & ~todo
            s = t.view(-1, 1, 1) * d * step_ok.view(-1, 1, 1).to(d.dtype)
            yv = (g_new - g) * step_ok.view(-1, 1, 1).to(d.dtype)
            w = w + s
            f = torch.where(step_ok, f_new, f)
            g = torch.where(step_ok.view(-1, 1, 1), g_new, g)
            sy = dot(s, yv)
            good = step_ok & (sy > 1e-10)
            S[head] = s
            Y[head] = yv
            rho[head] = torch.where(good, 1.0 / sy.clamp_min(1e-30), torch.zeros_like(sy))
            yy = dot(yv, yv)
            gamma = torch.where(good, sy / yy.clamp_min(1e-30), gamma)
            head = (head + 1) % m_hist
            n_hist = min(n_hist + 1, m_hist)
            iters += active.long()
            if progress is not None and it % 5 == 4:
                progress((it + 1) / int(self.s["max_iter"]))
            # converged, or stuck (no acceptable step even after backtracking)
            active = active & step_ok & (g.abs().amax((1, 2)) > gtol)
        self.w = w
        converged = g.abs().amax((1, 2)) <= gtol
        return iters.cpu().numpy(), converged.cpu().numpy()

    def predict(self, x):
        z = self.torch.einsum("nd,pcd->pnc", x, self.w)
        return z.argmax(2)

    def fit_evaluate(self, x_hold, y_hold, progress=None):
        iters, conv = self.fit(progress)
        err = []
        for p0 in range(0, self.b.n_probes, 16):
            z = self.torch.einsum("nd,pcd->pnc", x_hold, self.w[p0:p0 + 16])
            err.append((z.argmax(2) != y_hold.view(1, -1)).float().mean(1))
        return self.torch.cat(err).cpu().numpy().astype(np.float64), iters, conv


class _MLPProbes:
    """One-hidden-layer MLP probes (ReLU), trained together by Adam on per-probe mini-batches.

    Fixed iterations: every probe takes ``steps`` steps of ``batch`` examples
    drawn (with replacement) from its own kept set.
    """

    def __init__(self, x, y, n_classes: int, orderings: dict, probes: list[tuple[str, int]], settings: dict,
                 seed: int = 0):
        import torch

        self.torch = torch
        self.x, self.y = x, y
        self.C = max(int(n_classes), 2)
        self.s = settings
        names = list(orderings)
        n0 = max(len(p) for p in orderings.values())
        self.perm = torch.stack([orderings[k][:n0] for k in names])  # [O, n0]
        self.which = torch.tensor([names.index(o) for o, _ in probes], device=x.device)
        self.n_keep = torch.tensor([n for _, n in probes], device=x.device)
        self.P = len(probes)
        self.gen = torch.Generator(device=x.device).manual_seed(int(seed) + 1)

    def fit_evaluate(self, x_hold, y_hold, progress=None):
        torch = self.torch
        P, D, H, C = self.P, self.x.shape[1], int(self.s["hidden"]), self.C
        dev, dt = self.x.device, self.x.dtype
        w1 = (torch.randn(P, D, H, generator=self.gen, device=dev, dtype=dt) / math.sqrt(D)).requires_grad_()
        b1 = torch.zeros(P, 1, H, device=dev, dtype=dt, requires_grad=True)
        w2 = (torch.randn(P, H, C, generator=self.gen, device=dev, dtype=dt) / math.sqrt(H)).requires_grad_()
        b2 = torch.zeros(P, 1, C, device=dev, dtype=dt, requires_grad=True)
        opt = torch.optim.AdamW([w1, b1, w2, b2], lr=float(self.s["lr"]), weight_decay=float(self.s["weight_decay"]))
        B = int(self.s["batch"])
        for step in range(int(self.s["steps"])):
            if progress is not None and step % 20 == 19:
                progress(step / int(self.s["steps"]))
            r = (torch.rand(P, B, generator=self.gen, device=dev) * self.n_keep.view(-1, 1)).long()
            rows = self.perm[self.which.view(-1, 1), r]
            xb, yb = self.x[rows], self.y[rows]
            h = torch.relu(torch.baddbmm(b1, xb, w1))
            z = torch.baddbmm(b2, h, w2)
            loss = torch.nn.functional.cross_entropy(z.reshape(P * B, C), yb.reshape(-1), reduction="sum") / B
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        err = []
        with torch.no_grad():
            for p0 in range(0, P, 8):
                h = torch.relu(torch.einsum("nd,pdh->pnh", x_hold, w1[p0:p0 + 8]) + b1[p0:p0 + 8])
                z = torch.baddbmm(b2[p0:p0 + 8], h, w2[p0:p0 + 8])
                err.append((z.argmax(2) != y_hold.view(1, -1)).float().mean(1))
        steps = np.full(P, int(self.s["steps"]))
        return torch.cat(err).cpu().numpy().astype(np.float64), steps, np.ones(P, bool)


# ---------------------------------------------------------------------------
# analysis
# ---------------------------------------------------------------------------

def aggregate(points: pd.DataFrame) -> pd.DataFrame:
    """Mean and standard deviation over seeds of every grid point."""
    keys = ["initial_fraction", "initial_size", "strategy", "keep_fraction"]
    g = points.groupby(keys, sort=False)
    out = g.agg(n_kept=("n_kept", "mean"), error_mean=("error", "mean"), error_std=("error", "std"),
                n_seeds=("seed", "nunique")).reset_index()
    out["n_kept"] = out["n_kept"].round().astype(np.int64)
    out["error_std"] = out["error_std"].fillna(0.0)
    out["_o"] = out["strategy"].map({s: i for i, s in enumerate(STRATEGY_ORDER)})
    out = out.sort_values(["initial_fraction", "_o", "keep_fraction"]).drop(columns="_o").reset_index(drop=True)
    return out[["initial_fraction", "initial_size", "strategy", "keep_fraction", "n_kept", "error_mean",
                "error_std", "n_seeds"]]


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def _frac(f: float) -> str:
    return f"{100 * f:.0f}%" if abs(100 * f - round(100 * f)) < 1e-6 else f"{100 * f:.1f}%"


def _min_fraction(curve: pd.DataFrame, fractions, full_error: float, tolerance: float) -> float | None:
    """Smallest f such that every grid fraction from f up stays within ``tolerance`` of the full-data error."""
    out = None
    for f in sorted(fractions, reverse=True):
        if float(curve.loc[f, "error_mean"]) <= full_error + tolerance + 1e-12:
            out = float(f)
        else:
            break
    return out


def _loses_to_random(curve: pd.DataFrame, rnd: pd.DataFrame, fractions) -> float | None:
    """Largest f at which ``curve`` is worse than random by more than their combined standard deviation."""
    for f in sorted(fractions, reverse=True):
        if f not in rnd.index:
            continue
        gap = float(curve.loc[f, "error_mean"] - rnd.loc[f, "error_mean"])
        comb = math.hypot(float(curve.loc[f, "error_std"]), float(rnd.loc[f, "error_std"]))
        if gap > comb:
            return float(f)
    return None


def recommend(curves: pd.DataFrame, *, tolerance: float, metric: str, probe: str = "linear",
              encoder: str = "embedding", holdout_size: int | None = None) -> dict:
    """Direction (hard or easy), the smallest harmless keep fraction, where pruning loses to random.

    At the largest initial size: ``direction`` is the strategy with the lower
    mean error over the keep fractions below 1; ``clear`` says whether the
    difference exceeds twice its standard error (seed spread, floored by the
    hold-out's binomial noise) *and* the same strategy wins at most keep
    fractions.  ``min_fraction`` is the smallest f such that the chosen
    strategy's error at every grid fraction from f up is within
    ``tolerance`` of the full-data error (None if not even the largest
    pruned fraction is).  ``loses_to_random_below`` is the largest f at which
    the chosen strategy is worse than random by more than their combined
    standard deviation.  ``alternative`` gives the other strategy's
    ``min_fraction``; the sentence mentions it when it is better.
    """
    full_q = curves["initial_fraction"].max()
    c = curves[np.isclose(curves["initial_fraction"], full_q)]
    n_full = int(c["initial_size"].iloc[0])

    def curve(st):
        return c[c["strategy"] == st].set_index("keep_fraction").sort_index()

    hard, easy, rnd = curve("hard"), curve("easy"), curve("random")
    full_error = float(rnd.loc[1.0, "error_mean"]) if 1.0 in rnd.index else float(c["error_mean"].min())
    pruned = sorted(f for f in hard.index if f < 1.0)
    kind = "linear probe (multinomial logistic regression)" if probe == "linear" else "small MLP probe"
    proxy_note = (f"These numbers come from a {kind} "
                  f"trained on the frozen {encoder} embeddings, not from your final model: trust the direction and "
                  "the rough size of the effect, not the exact error of a network trained end to end.")
    if not pruned:
        sentence = (f"With all {n_full} examples the probe's held-out error is {_pct(full_error)}; "
                    "the grid has no keep fraction below 100%, so there is nothing to compare.")
        return {"direction": "hard", "evidence": "no keep fraction below 1 in the grid", "min_fraction": None,
                "tolerance": float(tolerance), "full_error": full_error, "loses_to_random_below": None,
                "sentence": sentence, "proxy_note": proxy_note, "initial_size": n_full, "clear": False,
                "alternative": None}
    eh, ee = hard.loc[pruned, "error_mean"], easy.loc[pruned, "error_mean"]
    mh, me = float(eh.mean()), float(ee.mean())
    mr = float(rnd.loc[pruned, "error_mean"].mean()) if set(pruned) <= set(rnd.index) else float("nan")
    direction = "hard" if mh <= me else "easy"
    chosen, other_curve = (hard, easy) if direction == "hard" else (easy, hard)
    # standard error of the mean difference over the fractions: seed spread, floored by hold-out noise
    se = np.sqrt(hard.loc[pruned, "error_std"] ** 2 / hard.loc[pruned, "n_seeds"]
                 + easy.loc[pruned, "error_std"] ** 2 / easy.loc[pruned, "n_seeds"]).to_numpy()
    if holdout_size:
        se = np.maximum(se, np.sqrt((eh * (1 - eh) + ee * (1 - ee)).to_numpy() / holdout_size))
    se_mean = float(np.sqrt((se ** 2).sum()) / len(pruned))
    hard_wins = [f for f in pruned if eh[f] < ee[f]]
    wins = len(hard_wins) if direction == "hard" else len(pruned) - len(hard_wins)
    clear = abs(mh - me) > 2 * se_mean and wins > len(pruned) / 2
    rng_txt = f"{_frac(pruned[0])}-{_frac(pruned[-1])}" if len(pruned) > 1 else _frac(pruned[0])
    evidence = (f"at the full initial size ({n_full} examples), averaged over keep fractions {rng_txt}: "
                f"keep hard {_pct(mh)}, keep easy {_pct(me)}, random {_pct(mr)} mean held-out error "
                f"(difference {100 * abs(mh - me):.1f} pp, standard error {100 * se_mean:.1f} pp); keep hard is "
                f"lower at {len(hard_wins)} of {len(pruned)} keep fractions"
                + (f" ({', '.join(_frac(f) for f in hard_wins)})" if 0 < len(hard_wins) < len(pruned) else ""))
    min_fraction = _min_fraction(chosen, pruned, full_error, tolerance)
    alt_min = _min_fraction(other_curve, pruned, full_error, tolerance)
    loses = _loses_to_random(chosen, rnd, pruned)
    word, other = ("hardest", "easiest") if direction == "hard" else ("easiest", "hardest")
    if clear:
        parts = [f"At your full data size ({n_full} examples) keeping the {word} examples ({metric}) is better "
                 f"than keeping the {other}"]
    else:
        first = (f"At your full data size ({n_full} examples) keeping the {word} examples ({metric}) is only "
                 f"marginally better on average than keeping the {other} ({_pct(min(mh, me))} vs "
                 f"{_pct(max(mh, me))})")
        if wins <= len(pruned) / 2:
            first += (f", and keeping the {other} is lower at {len(pruned) - wins} of {len(pruned)} keep "
                      "fractions")
        parts = [first]
    tol = f"{100 * tolerance:.1f} pp"
    if min_fraction is not None:
        est = float(chosen.loc[min_fraction, "error_mean"])
        parts.append(f"keeping {_frac(min_fraction)} costs at most {tol} held-out error "
                     f"(estimated {_pct(est)} vs {_pct(full_error)} with all data)")
    else:
        parts.append(f"every keep-{word} fraction tested costs more than {tol} held-out error "
                     f"({_pct(full_error)} with all data)")
    if alt_min is not None and (min_fraction is None or alt_min < min_fraction):
        parts[-1] += (f", while keeping the {other} {_frac(alt_min)} costs at most {tol} "
                      f"(estimated {_pct(float(other_curve.loc[alt_min, 'error_mean']))})")
    if loses is not None:
        tail = ""
        if min_fraction is not None and loses >= min_fraction and min_fraction in rnd.index:
            tail = (f" (a random {_frac(min_fraction)} is estimated at "
                    f"{_pct(float(rnd.loc[min_fraction, 'error_mean']))})")
        parts.append(f"at {_frac(loses)} or less keeping the {word} loses to random{tail}")
    else:
        parts.append(f"keeping the {word} does not lose to random anywhere on the grid (down to "
                     f"{_frac(pruned[0])})")
    sentence = "; ".join(parts) + "."
    return {"direction": direction, "evidence": evidence, "min_fraction": min_fraction, "tolerance": float(tolerance),
            "full_error": full_error, "loses_to_random_below": loses, "sentence": sentence,
            "proxy_note": proxy_note, "initial_size": n_full, "clear": bool(clear),
            "alternative": {"direction": "easy" if direction == "hard" else "hard", "min_fraction": alt_min},
            "mean_error": {"hard": mh, "easy": me, "random": mr}}


def analyse(points: pd.DataFrame, *, tolerance: float = 0.005, metric: str = "ssl_prototype",
            holdout_size: int | None = None, probe: str = "linear", encoder: str = "embedding") -> dict:
    """Curves, power-law fit, frontier, beats-the-power-law verdict and recommendation from the points.

    The power law is fitted to the *random* subsets: the unpruned points
    (``keep_fraction == 1`` at every initial size) and the random-pruning
    points, which are random subsets of the pool just the same, so the fit
    covers every size the frontier reaches instead of only the few initial
    sizes.  Each size is weighted by its standard error over seeds, floored at
    the binomial standard error of the hold-out.
    """
    curves = aggregate(points)
    rnd = curves[curves["strategy"] == "random"]
    e = rnd["error_mean"].to_numpy(np.float64)
    sem = rnd["error_std"].to_numpy(np.float64) / np.sqrt(np.maximum(rnd["n_seeds"].to_numpy(), 1))
    floor = np.sqrt(np.clip(e * (1 - e), 1e-6, None) / max(holdout_size or 1, 1))
    fit = pl.fit_powerlaw(rnd["n_kept"].to_numpy(np.float64), e, np.maximum(sem, np.maximum(floor, 1e-4)))
    fit["fitted_to"] = "random subsets: keep_fraction 1 at every initial size and random pruning"
    cand = curves[~((curves["keep_fraction"] >= 1.0) & (curves["strategy"] != "random"))]
    frontier = pl.lower_envelope(cand)
    frontier = frontier[["n_kept", "error_mean", "strategy", "keep_fraction", "initial_size", "initial_fraction",
                         "error_std", "n_seeds"]].reset_index(drop=True)
    beats = pl.beats_powerlaw(frontier, fit)
    rec = recommend(curves, tolerance=tolerance, metric=metric, probe=probe, encoder=encoder,
                    holdout_size=holdout_size)
    return {"curves": curves, "powerlaw": fit, "frontier": frontier, "beats_powerlaw": beats, "recommendation": rec}
