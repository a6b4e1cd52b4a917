"""The scaling grid: parameters, the held-out split, and the loop that trains every probe (method.md section 4).

1. **Held-out data, never pruned**: the run's hold-out split (e.g. the 10,000
   Fashion-MNIST test images) when it has one with labels; otherwise a
   stratified hold-out carved from the pool (20%, at most 10,000), which is
   then left out of the pool.
2. **Grid**: for every seed, one random permutation of the pool; the initial
   subset of fraction ``q`` is its first ``round(q * N)`` examples (so the
   subsets of one seed are nested).  Inside each initial subset a metric
   whose registration says ``recompute_in_subset`` (``ssl_prototype``:
   spherical k-means with the run's ``k`` and the grid seed;
   ``supervised_prototype``: class prototypes of the subset; ``random``: a
   fresh seeded hash) is recomputed by :func:`backend.scores.compute_metric`
   on the subset's :class:`~backend.scores.ScoreContext`; any other score
   column (and a ``scores=`` array) is used as is.  Each strategy keeps
   ``keep_count_for(n, f)`` examples in the order of
   :class:`backend.select.Ranking` (the order ``curate select`` uses): hard =
   highest scores, easy = lowest, random = the seeded ``random`` hash.
3. **Probes, many at once** (:mod:`backend.probes`): all probes of one
   (initial size, seed) are trained together on the prefixes of the three
   strategies' orderings.  The linear probe is a batched L-BFGS with at most
   ``max_iter`` full-batch iterations (default 30): one iteration is one
   epoch over the kept set, so this is the *fixed epochs* convention (compute
   grows with the kept size); 30 epochs are not full convergence (on the
   Fashion-MNIST demo the errors are within 0.3 pp on average, 1.1 pp at
   worst, of the converged probes), but every probe gets the same budget.  On
   a CPU with fast bfloat16 GEMMs the two matrix products run in bfloat16
   (errors move by 0.1 pp on average), see :func:`backend.probes.gemm_dtype`.
   At ``keep_fraction == 1`` the three strategies keep the same set: one probe
   is trained and its error is recorded under each strategy.

Features: :func:`backend.probes.probe_features` (L2-normalised, whitened
with the pool's statistics, plus a bias column).
"""

from __future__ import annotations

import math
import time

import numpy as np
import pandas as pd

from ..errors import CurateError
from ..probes import (
    LINEAR_DEFAULTS,
    MLP_DEFAULTS,
    LinearProbes,
    MLPProbes,
    cpu_threads,
    probe_features,
)
from ..progress import Reporter
from ..scores import METRICS, ScoreContext, compute_metric
from ..store import fingerprint

DEFAULT_FRACTIONS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
DEFAULT_INITIAL_SIZES = (0.125, 0.25, 0.5, 1.0)
PROBES = ("linear", "mlp")
STRATEGY_ORDER = ("hard", "easy", "random")

HOLDOUT_SHARE = 0.2     # carved hold-out: this share of the pool ...
HOLDOUT_MAX = 10_000    # ... at most this many examples
HOLDOUT_SEED = 0

# The grid's probe budgets (part of the cache key through ``probe_settings``).
LINEAR = dict(LINEAR_DEFAULTS)  # batched L-BFGS, at most 30 full-batch iterations
MLP = dict(MLP_DEFAULTS)        # batched Adam on mini-batches, fixed iterations

# A recomputed metric is scored with the grid seed, except ``random``: its hash is offset so that "keep the
# highest random scores" is not the random strategy's own ordering (which hashes with the grid seed).
SUBSET_SEED_OFFSET = {"random": 7919}


# ---------------------------------------------------------------------------
# parameters
# ---------------------------------------------------------------------------

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


def grid_params(run, metric, fractions, initial_sizes, seeds, probe, scores) -> dict:
    """The validated grid parameters (they key the cache): metric id, fractions, sizes, seeds, probe settings."""
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


# ---------------------------------------------------------------------------
# hold-out and per-subset scores
# ---------------------------------------------------------------------------

def holdout_split(run, pool_labels: np.ndarray, rep: Reporter):
    """(pool positions used for the grid, holdout embedding rows, holdout labels, info)."""
    hold = run.holdout
    if len(hold):
        hold = hold[hold["label"].notna()]
    n_pool = run.n_examples
    if len(hold):
        info = {"kind": "test split", "size": len(hold)}
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


def pool_context(run, *, device: str = "cpu") -> ScoreContext:
    """The :class:`ScoreContext` of the run's whole pool (the grid scores subsets of it)."""
    table = run.table
    labels = table["label"].astype(str).to_numpy() if run.has_labels else None
    return ScoreContext(embeddings=run.embeddings, rows=table["row"].to_numpy(np.int64),
                        example_ids=table["example_id"].astype(str).to_numpy(), labels=labels, k=run.k,
                        seed=0, device=device, kmeans_iters=int(run.config["params"].get("kmeans_iters", 20)),
                        workdir=run.dir.parent.parent)


def recomputed_in_subset(metric: str) -> bool:
    """Whether the grid recomputes ``metric`` inside every initial subset (its registration says so)."""
    return metric in METRICS and bool(METRICS.entry(metric).info["recompute_in_subset"])


def _subset_scores(run, metric: str, scores, sub_pos: np.ndarray, seed: int, dev: str,
                   ctx: ScoreContext | None = None) -> np.ndarray:
    """Difficulty (higher = harder) of the pool positions ``sub_pos``: recomputed in the subset, or the column."""
    if scores is not None:
        return scores[sub_pos]
    if recomputed_in_subset(metric):
        ctx = ctx if ctx is not None else pool_context(run, device=dev)
        return compute_metric(metric, ctx.subset(sub_pos, seed=SUBSET_SEED_OFFSET.get(metric, 0) + seed))
    return run.table[metric].to_numpy(np.float64)[sub_pos]


def _orders(ids: np.ndarray, s: np.ndarray, seed: int) -> dict[str, np.ndarray]:
    """Keep orders (positions into the subset) of the three strategies, as :class:`Ranking` builds them."""
    from ..select.subset import Ranking

    t = pd.DataFrame({"example_id": ids, "score": s})
    return {st: Ranking(t, strategy=st, metric="score", seed=seed).order for st in STRATEGY_ORDER}


# ---------------------------------------------------------------------------
# the loop
# ---------------------------------------------------------------------------

def run_grid(run, params: dict, *, scores=None, device: str = "cpu",
             reporter: Reporter | None = None) -> tuple[pd.DataFrame, dict]:
    """Train every probe of the grid; return (points, info).  No caching: see :func:`estimate_scaling`."""
    with cpu_threads(device) as n_threads:
        points, info = _run_grid(run, params, scores=scores, device=device, reporter=reporter)
    info["params"]["cpu_threads"] = n_threads
    return points, info


def _run_grid(run, params: dict, *, scores=None, device: str = "cpu",
              reporter: Reporter | None = None) -> tuple[pd.DataFrame, dict]:
    from ..select.subset import keep_count_for

    rep = reporter or Reporter()
    table = run.table
    pool_labels = table["label"].astype(str).to_numpy()
    grid_pos, hold_rows, hold_labels, hold_info = holdout_split(run, pool_labels, rep)
    classes = np.unique(pool_labels[grid_pos])
    y_pool = np.searchsorted(classes, pool_labels).astype(np.int64)
    pos = np.minimum(np.searchsorted(classes, hold_labels), len(classes) - 1)
    y_hold = np.where(classes[pos] == hold_labels, pos, -1).astype(np.int64)  # unseen class: always wrong
    emb = run.embeddings
    pool_rows = table["row"].to_numpy(np.int64)
    timings = {"features": 0.0, "scores": 0.0, "probes": 0.0}
    t = time.perf_counter()
    x_grid, tf = probe_features(emb, pool_rows[grid_pos])
    x_hold, _ = probe_features(emb, hold_rows, tf)
    ids_all = table["example_id"].astype(str).to_numpy()
    metric = params["metric"]
    ctx = pool_context(run, device=device) if scores is None and recomputed_in_subset(metric) else None
    n_grid = len(grid_pos)
    fr = params["fractions"]
    groups = []
    for seed in params["seeds"]:
        perm = np.random.default_rng([seed, 20220630]).permutation(n_grid)
        for q in params["initial_sizes"]:
            groups.append((seed, q, perm[:max(1, round(q * n_grid))]))
    n_probes_group = [1 + 3 * sum(f < 1 for f in fr)] * len(groups)
    total = int(sum(n_probes_group))
    done = 0
    rows_out = []
    iters, conv = [], []
    trainer = LinearProbes if params["probe"] == "linear" else MLPProbes
    settings = params["probe_settings"]
    import torch

    x_grid_t = torch.from_numpy(x_grid).to(device)
    x_hold_t = torch.from_numpy(x_hold).to(device)
    y_grid_t = torch.from_numpy(y_pool[grid_pos]).to(device)
    y_hold_t = torch.from_numpy(y_hold).to(device)
    timings["features"] = time.perf_counter() - t
    kept_rows = 0
    gemm = "float32"
    rep.update(0, total)
    for (seed, q, local), n_gp in zip(groups, n_probes_group):
        t = time.perf_counter()
        local = np.sort(local)
        sub_pos = grid_pos[local]
        n0 = len(sub_pos)
        s = _subset_scores(run, metric, scores, sub_pos, seed, device, ctx)
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
        "metric_recomputed": scores is None and recomputed_in_subset(metric),
        "n_pool": int(run.n_examples), "n_grid_pool": int(n_grid), "n_classes": len(classes),
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
