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
   ``keep_count_for(n, f)`` examples as :class:`backend.select.Ranking`
   keeps them (what ``curate select`` keeps): hard = highest scores, easy =
   lowest, random = the seeded ``random`` hash, and any other registered
   strategy under any registered balance.  The grid's *settings* are
   (strategy, balance) pairs (default: hard, easy and random without
   balance); a setting whose kept sets are prefixes of one order (a prefix
   strategy without balance) shares one ordering across keep fractions, any
   other gets one ordering per keep fraction (its kept set first).  Balances
   use the pool's labels and k-means clusters restricted to the subset;
   dedup strategies use the pool's SemDeDup flags restricted to the subset.
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

import hashlib
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
STRATEGY_ORDER = ("hard", "easy", "random", "ccs", "dedup+hard", "dedup+easy")  # display order; others after
DEFAULT_SETTINGS = (("hard", "none"), ("easy", "none"), ("random", "none"))
BASELINE = ("random", "none")  # every recommendation is judged against it

HOLDOUT_SHARE = 0.2  # carved hold-out: this share of the pool ...
HOLDOUT_MAX = 10_000  # ... at most this many examples
HOLDOUT_SEED = 0

# The grid's probe budgets (part of the cache key through ``probe_settings``).
LINEAR = dict(LINEAR_DEFAULTS)  # batched L-BFGS, at most 30 full-batch iterations
MLP = dict(MLP_DEFAULTS)  # batched Adam on mini-batches, fixed iterations

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


def grid_settings(settings=None, *, has_labels: bool = True) -> list[list[str]]:
    """Validated (strategy, balance) pairs of the grid: the default ones, or ``settings``; random-none always in."""
    from ..select import BALANCES, STRATEGIES

    pairs = [tuple(p) for p in (settings or DEFAULT_SETTINGS)]
    out: list[list[str]] = []
    for pair in [*pairs, BASELINE]:
        if len(pair) != 2:
            raise CurateError(f"a grid setting is a (strategy, balance) pair, got {pair!r}")
        st, bal = str(pair[0]), str(pair[1])
        STRATEGIES.entry(st)  # unknown names raise with the choices
        if BALANCES.entry(bal).group == "label" and not has_labels:
            raise CurateError(f"balance {bal!r} needs labels and this run has none")
        if [st, bal] not in out:
            out.append([st, bal])
    order = {s: i for i, s in enumerate(STRATEGY_ORDER)}
    return sorted(out, key=lambda p: (order.get(p[0], len(order)), p[0], list(BALANCES).index(p[1])))


def setting_label(strategy: str, balance: str) -> str:
    """How a setting is named in tables: the strategy, with its balance when there is one."""
    return strategy if balance == "none" else f"{strategy} ({balance})"


def grid_params(run, metric, fractions, initial_sizes, seeds, probe, scores, settings=None) -> dict:
    """The validated grid parameters (they key the cache): metric id, fractions, sizes, seeds, probe, settings."""
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
    out = {
        "metric": metric_id,
        # the column's values, not only its name: `curate scores --force` or a re-imported column changes
        # them under the same run key, and a cache keyed by the name alone would answer for the old ones
        **_column_fingerprint(run, metric_id),
        "fractions": fr,
        "initial_sizes": sizes,
        "seeds": seed_list,
        "probe": probe,
        "probe_settings": dict(LINEAR if probe == "linear" else MLP),
    }
    grid = grid_settings(settings, has_labels=run.has_labels)
    if grid != grid_settings(None):  # the default grid keeps the cache keys it always had
        out["settings"] = grid
    return out


def _column_fingerprint(run, metric_id: str) -> dict:
    """{"metric_column": hash} when the run's table has this metric's column, else {}."""
    table = run.table
    if metric_id not in table.columns:
        return {}
    values = np.ascontiguousarray(table[metric_id].to_numpy(np.float64))
    return {"metric_column": hashlib.sha256(values.round(12).tobytes()).hexdigest()[:16]}


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
        raise CurateError(
            f"the run has {n_pool} examples and no test split: too few to carve a hold-out (need at least 5)"
        )
    from sklearn.model_selection import train_test_split

    pos = np.arange(n_pool)
    try:
        keep, held = train_test_split(pos, test_size=size, random_state=HOLDOUT_SEED, stratify=pool_labels)
    except ValueError:  # a class with a single example: fall back to a plain random split
        keep, held = train_test_split(pos, test_size=size, random_state=HOLDOUT_SEED)
    keep, held = np.sort(keep), np.sort(held)
    info = {"kind": "stratified hold-out", "size": int(size)}
    rep.info(
        f"held-out: no test split in this run, so {size} pool examples ({size / n_pool:.0%}, stratified by "
        f"class) are held out and never pruned; the grid uses the other {len(keep)}"
    )
    rows = run.table["row"].to_numpy(np.int64)
    return keep, rows[held], pool_labels[held], info


def pool_context(run, *, device: str = "cpu") -> ScoreContext:
    """The :class:`ScoreContext` of the run's whole pool (the grid scores subsets of it)."""
    table = run.table
    labels = table["label"].astype(str).to_numpy() if run.has_labels else None
    return ScoreContext(
        embeddings=run.embeddings,
        rows=table["row"].to_numpy(np.int64),
        example_ids=table["example_id"].astype(str).to_numpy(),
        labels=labels,
        k=run.k,
        seed=0,
        device=device,
        kmeans_iters=int(run.config["params"].get("kmeans_iters", 20)),
        workdir=run.dir.parent.parent,
    )


def recomputed_in_subset(metric: str) -> bool:
    """Whether the grid recomputes ``metric`` inside every initial subset (its registration says so)."""
    return metric in METRICS and bool(METRICS.entry(metric).info["recompute_in_subset"])


def _subset_scores(
    run, metric: str, scores, sub_pos: np.ndarray, seed: int, dev: str, ctx: ScoreContext | None = None
) -> np.ndarray:
    """Difficulty (higher = harder) of the pool positions ``sub_pos``: recomputed in the subset, or the column."""
    if scores is not None:
        return scores[sub_pos]
    if recomputed_in_subset(metric):
        ctx = ctx if ctx is not None else pool_context(run, device=dev)
        return compute_metric(metric, ctx.subset(sub_pos, seed=SUBSET_SEED_OFFSET.get(metric, 0) + seed))
    return run.table[metric].to_numpy(np.float64)[sub_pos]


def _orders(ids: np.ndarray, s: np.ndarray, seed: int) -> dict[str, np.ndarray]:
    """Keep orders (positions into the subset) of hard, easy and random, as :class:`Ranking` builds them."""
    from ..select.subset import Ranking

    t = pd.DataFrame({"example_id": ids, "score": s})
    return {st: Ranking(t, strategy=st, metric="score", seed=seed).order for st in ("hard", "easy", "random")}


def _setting_orderings(settings, table: pd.DataFrame, fractions, n0: int, seed: int):
    """Orderings (positions into the subset) and the probes that use them, for every setting.

    Returns (orderings {name: positions}, probes [(ordering name, n_keep, [(strategy, balance, f)])]).  A
    prefix strategy without balance keeps prefixes of one ordering (shared by every f); any other setting
    gets one ordering per f whose first ``n_keep`` positions are exactly what :class:`Ranking` keeps.
    """
    from ..select import STRATEGIES
    from ..select.subset import Ranking, keep_count_for

    orderings: dict[str, np.ndarray] = {}
    probes = []
    for st, bal in settings:
        rk = Ranking(table, strategy=st, metric="score", balance=bal, seed=seed)
        shared = bool(STRATEGIES.entry(st).prefix) and bal == "none"
        for f in fractions:
            if f >= 1.0:
                continue
            n_keep = keep_count_for(n0, f)
            if shared:
                name = setting_label(st, bal)
                orderings.setdefault(name, rk.order)
            else:
                name = f"{setting_label(st, bal)}@{f:g}"
                m = rk.mask(n_keep)
                orderings[name] = np.concatenate([np.flatnonzero(m), np.flatnonzero(~m)])
            probes.append((name, n_keep, [(st, bal, f)]))
    name = setting_label(*BASELINE)
    orderings.setdefault(name, Ranking(table, strategy="random", metric="score", seed=seed).order)
    probes.append((name, n0, [(st, bal, 1.0) for st, bal in settings]))
    return orderings, probes


def _dedup_flags(run, settings) -> np.ndarray | None:
    """The pool's SemDeDup flags when a dedup strategy is in the grid (restricted to each subset)."""
    if not any(st.startswith("dedup") for st, _ in settings):
        return None
    from ..dedup import semdedup
    from ..select.strategies._dedup import DEFAULT_EPS

    return np.asarray(semdedup(run, eps=DEFAULT_EPS).removed, bool)


# ---------------------------------------------------------------------------
# the loop
# ---------------------------------------------------------------------------


def sort_points(points: pd.DataFrame) -> pd.DataFrame:
    """Grid points in display order: initial size, strategy (STRATEGY_ORDER first), balance, keep fraction, seed."""
    from ..select import BALANCES

    order = {s: i for i, s in enumerate(STRATEGY_ORDER)}
    bal = {b: i for i, b in enumerate(BALANCES)}
    if "balance" not in points.columns:
        points = points.assign(balance="none")
    key = pd.DataFrame(
        {
            "q": points["initial_fraction"].to_numpy(),
            "s": points["strategy"].map(order).fillna(len(order)).to_numpy(),
            "sn": points["strategy"].astype(str).to_numpy(),
            "b": points["balance"].map(bal).fillna(len(bal)).to_numpy(),
            "f": points["keep_fraction"].to_numpy(),
            "seed": points["seed"].to_numpy() if "seed" in points else 0,
        }
    )
    idx = key.sort_values(["q", "s", "sn", "b", "f", "seed"], kind="stable").index.to_numpy()
    return points.iloc[idx].reset_index(drop=True)


def run_grid(
    run, params: dict, *, scores=None, device: str = "cpu", reporter: Reporter | None = None
) -> tuple[pd.DataFrame, dict]:
    """Train every probe of the grid; return (points, info).  No caching: see :func:`estimate_scaling`."""
    with cpu_threads(device) as n_threads:
        points, info = _run_grid(run, params, scores=scores, device=device, reporter=reporter)
    info["params"]["cpu_threads"] = n_threads
    return points, info


def _run_grid(
    run, params: dict, *, scores=None, device: str = "cpu", reporter: Reporter | None = None
) -> tuple[pd.DataFrame, dict]:

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
            groups.append((seed, q, perm[: max(1, round(q * n_grid))]))
    settings = [tuple(p) for p in params.get("settings", grid_settings(None))]
    n_probes_group = [1 + len(settings) * sum(f < 1 for f in fr)] * len(groups)
    dedup = _dedup_flags(run, settings)
    labels_all = table["label"].astype(str).to_numpy()
    clusters_all = table["cluster"].to_numpy() if "cluster" in table.columns else np.zeros(len(table), np.int64)
    total = int(sum(n_probes_group))
    done = 0
    rows_out = []
    wrong_rows: list[np.ndarray] = []  # per trained probe: which held-out examples it got wrong (packed bits)
    iters, conv = [], []
    trainer = LinearProbes if params["probe"] == "linear" else MLPProbes
    probe_settings = params["probe_settings"]
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
        sub_table = pd.DataFrame(
            {"example_id": ids_all[sub_pos], "score": s, "label": labels_all[sub_pos], "cluster": clusters_all[sub_pos]}
        )
        if dedup is not None:
            sub_table["dedup_removed"] = dedup[sub_pos]
        orders, probes = _setting_orderings(settings, sub_table, fr, n0, seed)
        timings["scores"] += time.perf_counter() - t
        t = time.perf_counter()
        local_t = torch.from_numpy(local).to(device)
        orderings = {name: local_t[torch.from_numpy(o).to(device)] for name, o in orders.items()}
        tr = trainer(
            x_grid_t, y_grid_t, len(classes), orderings, [(p[0], p[1]) for p in probes], probe_settings, seed=seed
        )
        err, it, ok = tr.fit_evaluate(
            x_hold_t, y_hold_t, progress=lambda frac, d=done, n=n_gp: rep.update(d + int(frac * (n - 1)), total)
        )
        timings["probes"] += time.perf_counter() - t
        gemm = str(getattr(tr, "gemm_dtype", "float32")).replace("torch.", "")
        kept_rows += sum(p[1] for p in probes)
        iters.append(it)
        conv.append(ok)
        held = getattr(tr, "holdout_wrong", None)
        for i, ((_, n_keep, labels), e) in enumerate(zip(probes, err)):
            for st, bal, f in labels:
                rows_out.append(
                    {
                        "initial_fraction": q,
                        "initial_size": n0,
                        "strategy": st,
                        "keep_fraction": f,
                        "n_kept": int(n_keep),
                        "seed": int(seed),
                        "error": float(e),
                        "balance": bal,
                        "holdout_index": len(wrong_rows) if held is not None else -1,
                    }
                )
            if held is not None:
                wrong_rows.append(np.packbits(held[i]))
        done += n_gp
        rep.update(done, total)
    points = sort_points(pd.DataFrame(rows_out))
    info_params = {
        "metric_name": "custom scores" if scores is not None else metric,
        "metric_recomputed": scores is None and recomputed_in_subset(metric),
        "n_pool": int(run.n_examples),
        "n_grid_pool": int(n_grid),
        "n_classes": len(classes),
        "embedding_dim": int(emb.shape[1]),
        "encoder": run.config["params"].get("encoder", "embedding"),
        "n_probes_trained": total,
        "kept_rows_total": int(kept_rows),
        "gemm_dtype": gemm,
        "timings_s": {k: round(v, 3) for k, v in timings.items()},
        "probe_iterations_mean": float(np.mean(np.concatenate(iters))),
        "probe_converged_share": float(np.mean(np.concatenate(conv))),
        "convention": (
            "fixed epochs: full-batch L-BFGS, one iteration = one epoch over the kept set, "
            f"at most {probe_settings.get('max_iter')} iterations"
            if params["probe"] == "linear"
            else f"fixed iterations: {probe_settings['steps']} Adam steps of {probe_settings['batch']} "
            "examples per probe"
        ),
        "settings": [list(p) for p in settings],
        "run_key": run.key,
    }
    arrays = {"holdout_wrong": np.stack(wrong_rows)} if wrong_rows else {}
    return points, {"params": info_params, "holdout": hold_info, "arrays": arrays}
