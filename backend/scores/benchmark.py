"""Which metric to trust on *this* data: every metric's scaling estimate against random, agreement, stability.

``benchmark_metrics(run, metrics=None, ...)`` runs the public scaling
estimate (:func:`backend.scaling.estimate_scaling`) for every metric on the
same grid, seeds and hold-out, and compares each with random at the same
kept size:

``table``      one row per (metric, strategy hard|easy, keep fraction): held-out error (mean over
               seeds), random's error at the same size, ``diff`` = metric - random (negative =
               better than random), its standard error over seeds
               ``se = sqrt((sd_metric^2 + sd_random^2) / n_seeds)`` and a verdict: ``better`` /
               ``worse`` when ``|diff| > 2 se`` (and ``se > 0``), else ``tie``
``summary``    one row per metric: the better direction (hard or easy: lower mean diff over the
               reported fractions), that mean diff, how many fractions beat random, and a rank
               (1 = the largest mean improvement over random)
``curves``     every metric's curves at the largest initial size, with a ``metric`` column
``spearman``   Spearman rank correlation between every pair of score columns (on the pool, a seeded
               sample of at most 200,000 examples)
``overlap``    share of the kept set that two metrics have in common when each keeps the hardest
               ``overlap_fraction`` (random expectation: that fraction)
``stability``  ssl_prototype recomputed with other k-means seeds and with k = K/2, 2K, 10K: Spearman
               and kept-set overlap against the run's own scores

Metrics that are not recomputed inside subsets and are not registered (e.g.
imported columns) are passed to the estimate as fixed ``scores=`` so its
cache is keyed by their values.  A column with NaN (an import that did not
cover every example) is skipped with the reason.  The whole result is cached
under ``<workdir>/metric_benchmark/<key>/``; each metric's estimate is also
cached by the scaling stage, so an interrupted benchmark resumes.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import CurateError
from ..io import read_json, write_json, write_table
from ..progress import Reporter
from ..store import Stage, fingerprint

VERSION = 1
STAGE = "metric_benchmark"
REPORT_FRACTIONS = (0.3, 0.5, 0.7, 0.9)
MAX_CORR_ROWS = 200_000


@dataclass
class MetricBenchmark:
    table: pd.DataFrame
    summary: pd.DataFrame
    curves: pd.DataFrame
    spearman: pd.DataFrame
    overlap: pd.DataFrame
    stability: pd.DataFrame
    skipped: dict[str, str]
    params: dict
    dir: Path
    elapsed_s: float
    cached: bool = False
    timings: dict[str, float] = field(default_factory=dict)

    def lines(self) -> list[str]:
        """The table as text (what ``curate benchmark-metrics`` prints)."""
        out = []
        fr = self.params["report_fractions"]
        head = f"{'metric':24s} {'keep':>5s} " + " ".join(f"{_pct(f):>22s}" for f in fr)
        out.append(
            "held-out error, metric vs random at the same size; diff in pp (+- standard error over "
            f"{self.params['seeds']} seeds); * = beats random by more than 2 SE, ! = worse"
        )
        out.append(head)
        for m in self.summary["metric"]:
            for st in ("hard", "easy"):
                cells = []
                for f in fr:
                    r = self.table[
                        (self.table["metric"] == m)
                        & (self.table["strategy"] == st)
                        & np.isclose(self.table["keep_fraction"], f)
                    ]
                    if r.empty:
                        cells.append(f"{'-':>22s}")
                        continue
                    r = r.iloc[0]
                    mark = {"better": "*", "worse": "!"}.get(r["verdict"], " ")
                    cells.append(
                        f"{100 * r['error']:5.1f}% {100 * r['diff']:+5.2f}+-{100 * r['se']:4.2f}{mark}".rjust(22)
                    )
                out.append(f"{m:24s} {st:>5s} " + " ".join(cells))
        rnd = self.table.drop_duplicates("keep_fraction").set_index("keep_fraction")["random_error"]
        out.append(f"{'random':24s} {'':5s} " + " ".join(f"{100 * rnd.get(f, np.nan):21.1f}%" for f in fr))
        out.append("")
        out.append("rank  metric                    direction  mean diff vs random  fractions better/worse")
        for r in self.summary.itertuples():
            out.append(
                f"{r.rank:>4d}  {r.metric:24s}  {r.direction:9s}  {100 * r.mean_diff:+8.2f} pp"
                f"           {r.n_better}/{r.n_worse} of {len(fr)}"
            )
        for m, why in self.skipped.items():
            out.append(f"skipped {m}: {why}")
        return out


def _pct(f: float) -> str:
    return f"{100 * f:.0f}%"


def _as_run(run):
    from .. import load_run
    from ..run import Run

    return run if isinstance(run, Run) else load_run(run)


def _metric_list(run, metrics) -> tuple[list[str], dict[str, str]]:
    cols = run.score_columns
    if metrics is None:
        names = [c for c in cols if c != "random"]
    else:
        names = [m.strip() for m in (metrics.split(",") if isinstance(metrics, str) else metrics) if m.strip()]
        unknown = [m for m in names if m not in cols]
        if unknown:
            raise CurateError(
                f"not a score column of this run: {', '.join(unknown)} (available: {', '.join(cols)})"
                ": compute it first (curate scores) or pass --metrics"
            )
    skipped = {}
    out = []
    for m in dict.fromkeys(names):
        v = run.table[m].to_numpy(np.float64)
        if not np.isfinite(v).all():
            skipped[m] = f"{int((~np.isfinite(v)).sum())} examples have no score (NaN)"
        else:
            out.append(m)
    if not out:
        raise CurateError("no metric to benchmark: " + "; ".join(f"{k}: {v}" for k, v in skipped.items()))
    return out, skipped


def _estimate_kwargs(run, metric: str) -> dict:
    """``metric=`` for registered metrics (recomputed in subsets, or the pipeline's column); fixed ``scores=``
    (a value-keyed cache) for any other column."""
    from .base import METRICS

    if metric in METRICS:
        return {"metric": metric}
    return {"metric": metric, "scores": run.table[metric].to_numpy(np.float64)}


def _col_fingerprint(run, m: str) -> str:
    return fingerprint(np.ascontiguousarray(run.table[m].to_numpy(np.float64)).round(10).tobytes().hex())


def cost_estimate(
    run, metrics, *, sample: int = 3000, seed: int = 0, measure_all: bool = False, options: dict | None = None
) -> pd.DataFrame:
    """Per metric: its registered cost, and the measured time of one computation on a seeded sample of
    ``sample`` examples, extrapolated linearly to the pool (k-means and the within-cluster search grow
    faster than N, fixed start-up costs slower: an order of magnitude, not a promise).  Measured for the
    metrics recomputed inside every scaling subset, or for every registered one with ``measure_all``
    (what ``curate scores`` is about to compute)."""
    from .base import METRICS, compute_metric
    from .compute import run_context

    rows = []
    ctx = None
    n = run.n_examples
    for m in metrics:
        entry = METRICS.entry(m) if m in METRICS else None
        rec = bool(entry and entry.info["recompute_in_subset"])
        row = {
            "metric": m,
            "cost": entry.info["cost"] if entry else "imported column (free)",
            "recomputed_in_subsets": rec,
            "sample": 0,
            "sample_s": 0.0,
            "pool_s_estimate": 0.0,
        }
        if entry is not None and entry.info["needs_labels"] and not run.has_labels:
            continue
        if rec or (measure_all and entry is not None):
            if ctx is None:
                ctx = run_context(run, device="cpu", options=options)
            k = min(n, sample)
            pos = np.sort(np.random.default_rng(seed).choice(n, size=k, replace=False))
            sub = ctx.subset(pos)
            t = time.perf_counter()
            compute_metric(m, sub)
            dt = time.perf_counter() - t
            row.update(sample=k, sample_s=round(dt, 3), pool_s_estimate=round(dt * n / k, 1))
        rows.append(row)
    return pd.DataFrame(rows)


def benchmark_metrics(
    run,
    *,
    metrics=None,
    fractions=None,
    initial_sizes=(1.0,),
    seeds: int = 3,
    probe: str = "linear",
    report_fractions=REPORT_FRACTIONS,
    overlap_fraction: float = 0.7,
    stability: bool = True,
    device: str = "auto",
    force: bool = False,
    reporter: Reporter | None = None,
) -> MetricBenchmark:
    """Benchmark every metric of ``run`` against random (see the module docstring)."""
    from ..scaling import DEFAULT_FRACTIONS, estimate_scaling

    rep = reporter or Reporter()
    run = _as_run(run)
    if not run.has_labels:
        raise CurateError(
            "benchmark-metrics measures held-out error and needs labels; this run has none "
            "(the agreement between metrics still works: backend.scores.benchmark.agreement)"
        )
    names, skipped = _metric_list(run, metrics)
    fr = sorted({round(float(f), 6) for f in (fractions or DEFAULT_FRACTIONS)} | set(report_fractions) | {1.0})
    if not 0 < overlap_fraction <= 1:
        raise CurateError(f"--overlap-fraction {overlap_fraction} must be in (0, 1]")
    params = {
        "metrics": names,
        "columns": {m: _col_fingerprint(run, m) for m in names},
        "fractions": fr,
        "initial_sizes": sorted(float(q) for q in initial_sizes),
        "seeds": int(seeds),
        "probe": probe,
        "report_fractions": list(report_fractions),
        "overlap_fraction": float(overlap_fraction),
        "stability": bool(stability and "ssl_prototype" in run.score_columns),
    }
    st = Stage(run.dir.parent.parent, STAGE, VERSION, {"run": run.key, **params})
    if st.done and not force:
        rep.stage("benchmark-metrics", cached=True, detail=str(st.dir))
        return _load(st, skipped)
    t0 = time.perf_counter()
    timings: dict[str, float] = {}
    curves = []
    for i, m in enumerate(names):
        rep.info(f"[{i + 1}/{len(names)}] scaling estimate for {m}")
        t = time.perf_counter()
        res = estimate_scaling(
            run,
            fractions=fr,
            initial_sizes=params["initial_sizes"],
            seeds=int(seeds),
            probe=probe,
            device=device,
            reporter=rep,
            force=force,
            **_estimate_kwargs(run, m),
        )
        timings[m] = round(time.perf_counter() - t, 2)
        c = res.curves
        c = c[
            np.isclose(c["initial_fraction"], c["initial_fraction"].max())
            & c["strategy"].isin(["hard", "easy", "random"])
        ].copy()
        c.insert(0, "metric", m)
        curves.append(c)
        left = len(names) - i - 1
        if left and not res.cached:
            done_s = sum(timings.values())
            rep.info(f"    {m}: {timings[m]:.0f} s; about {done_s / (i + 1) * left:.0f} s left for {left} more")
    curves_df = pd.concat(curves, ignore_index=True)
    table = compare_with_random(curves_df, report_fractions)
    summary = summarise(table)
    t = time.perf_counter()
    spearman, overlap = agreement(run, run.score_columns, fraction=overlap_fraction)
    timings["agreement"] = round(time.perf_counter() - t, 2)
    stab = pd.DataFrame()
    if params["stability"]:
        t = time.perf_counter()
        stab = ssl_stability(run, fraction=overlap_fraction, device=device, reporter=rep)
        timings["stability"] = round(time.perf_counter() - t, 2)
    elapsed = time.perf_counter() - t0
    d = st.prepare()
    for fname, df in (("table", table), ("summary", summary), ("curves", curves_df), ("stability", stab)):
        write_table(d / f"{fname}.parquet", df)
    write_table(d / "spearman.parquet", spearman.reset_index(names="metric"))
    write_table(d / "overlap.parquet", overlap.reset_index(names="metric"))
    write_json(d / "result.json", {"params": params, "timings_s": timings, "elapsed_s": round(elapsed, 2)})
    st.finish(elapsed_s=round(elapsed, 2))
    rep.end_stage()
    return MetricBenchmark(
        table=table,
        summary=summary,
        curves=curves_df,
        spearman=spearman,
        overlap=overlap,
        stability=stab,
        skipped=skipped,
        params=params,
        dir=st.dir,
        elapsed_s=elapsed,
        timings=timings,
    )


def load_benchmark(run, **kwargs) -> MetricBenchmark | None:
    """The cached benchmark for these settings (``benchmark_metrics``' keywords), or None (no compute)."""
    run = _as_run(run)
    try:
        names, skipped = _metric_list(run, kwargs.get("metrics"))
    except CurateError:
        return None
    from ..scaling import DEFAULT_FRACTIONS

    report_fractions = kwargs.get("report_fractions", REPORT_FRACTIONS)
    fr = sorted(
        {round(float(f), 6) for f in (kwargs.get("fractions") or DEFAULT_FRACTIONS)} | set(report_fractions) | {1.0}
    )
    params = {
        "metrics": names,
        "columns": {m: _col_fingerprint(run, m) for m in names},
        "fractions": fr,
        "initial_sizes": sorted(float(q) for q in kwargs.get("initial_sizes", (1.0,))),
        "seeds": int(kwargs.get("seeds", 3)),
        "probe": kwargs.get("probe", "linear"),
        "report_fractions": list(report_fractions),
        "overlap_fraction": float(kwargs.get("overlap_fraction", 0.7)),
        "stability": bool(kwargs.get("stability", True) and "ssl_prototype" in run.score_columns),
    }
    st = Stage(run.dir.parent.parent, STAGE, VERSION, {"run": run.key, **params})
    return _load(st, skipped) if st.done else None


def _load(st: Stage, skipped: dict) -> MetricBenchmark:
    d = st.dir
    saved = read_json(d / "result.json")
    rd = {f: pd.read_parquet(d / f"{f}.parquet") for f in ("table", "summary", "curves", "stability")}
    sp = pd.read_parquet(d / "spearman.parquet").set_index("metric")
    ov = pd.read_parquet(d / "overlap.parquet").set_index("metric")
    return MetricBenchmark(
        table=rd["table"],
        summary=rd["summary"],
        curves=rd["curves"],
        spearman=sp,
        overlap=ov,
        stability=rd["stability"],
        skipped=skipped,
        params=saved["params"],
        dir=d,
        elapsed_s=float(saved["elapsed_s"]),
        cached=True,
        timings=saved.get("timings_s", {}),
    )


def compare_with_random(curves: pd.DataFrame, fractions=REPORT_FRACTIONS) -> pd.DataFrame:
    """One row per (metric, hard|easy, fraction): error, random's error, diff, its SE and the verdict."""
    rows = []
    for m, c in curves.groupby("metric", sort=False):
        rnd = c[c["strategy"] == "random"]
        for st in ("hard", "easy"):
            cs = c[c["strategy"] == st]
            for f in fractions:
                a = cs[np.isclose(cs["keep_fraction"], f)]
                r = rnd[np.isclose(rnd["keep_fraction"], f)]
                if a.empty or r.empty:
                    continue
                a, r = a.iloc[0], r.iloc[0]
                n = int(min(a["n_seeds"], r["n_seeds"]))
                diff = float(a["error_mean"] - r["error_mean"])
                se = math.sqrt((float(a["error_std"]) ** 2 + float(r["error_std"]) ** 2) / max(n, 1))
                verdict = "tie"
                if n > 1 and se > 0 and abs(diff) > 2 * se:
                    verdict = "better" if diff < 0 else "worse"
                rows.append(
                    {
                        "metric": m,
                        "strategy": st,
                        "balance": a.get("balance", "none"),
                        "keep_fraction": f,
                        "n_kept": int(a["n_kept"]),
                        "error": float(a["error_mean"]),
                        "error_std": float(a["error_std"]),
                        "random_error": float(r["error_mean"]),
                        "random_std": float(r["error_std"]),
                        "diff": diff,
                        "se": se,
                        "n_seeds": n,
                        "verdict": verdict,
                    }
                )
    return pd.DataFrame(rows)


def summarise(table: pd.DataFrame) -> pd.DataFrame:
    """Per metric: the better direction, its mean diff vs random, fractions better/worse, and the rank."""
    rows = []
    for m, t in table.groupby("metric", sort=False):
        by_dir = t.groupby("strategy")["diff"].mean()
        direction = str(by_dir.idxmin())
        td = t[t["strategy"] == direction]
        rows.append(
            {
                "metric": m,
                "direction": direction,
                "mean_diff": float(by_dir.min()),
                "n_better": int((td["verdict"] == "better").sum()),
                "n_worse": int((td["verdict"] == "worse").sum()),
            }
        )
    out = pd.DataFrame(rows).sort_values(["mean_diff", "metric"]).reset_index(drop=True)
    out.insert(0, "rank", np.arange(1, len(out) + 1))
    return out


def _kept_hardest(scores: np.ndarray, ids: np.ndarray, n_keep: int) -> np.ndarray:
    """Boolean mask of the ``n_keep`` highest scores, ties by example_id (the order of ``curate select``)."""
    order = np.lexsort((ids, -scores))
    mask = np.zeros(len(scores), bool)
    mask[order[:n_keep]] = True
    return mask


def agreement(run, metrics, *, fraction: float = 0.7, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(Spearman matrix, kept-set overlap matrix at ``fraction``, keep hard) between the score columns."""
    run = _as_run(run)
    t = run.table
    metrics = [m for m in metrics if np.isfinite(t[m].to_numpy(np.float64)).all()]
    pos = np.arange(len(t))
    if len(t) > MAX_CORR_ROWS:
        pos = np.sort(np.random.default_rng(seed).choice(len(t), MAX_CORR_ROWS, replace=False))
    ranks = t[metrics].iloc[pos].rank(method="average")
    spearman = ranks.corr(method="pearson")
    ids = t["example_id"].astype(str).to_numpy()
    n_keep = max(1, int(round(fraction * len(t))))
    masks = {m: _kept_hardest(t[m].to_numpy(np.float64), ids, n_keep) for m in metrics}
    ov = pd.DataFrame(index=metrics, columns=metrics, dtype=float)
    for a in metrics:
        for b in metrics:
            ov.loc[a, b] = float((masks[a] & masks[b]).sum() / n_keep)
    return spearman, ov


def ssl_stability(
    run, *, fraction: float = 0.7, seeds=(1, 2), device: str = "auto", reporter: Reporter | None = None
) -> pd.DataFrame:
    """ssl_prototype with other k-means seeds (same K) and other K (K/2, 2K, 10K): agreement with the run's."""
    from ..cluster import SphericalKMeans
    from ..embed import resolve_device
    from .ssl_prototype import ssl_prototype_from_sim

    rep = reporter or Reporter()
    run = _as_run(run)
    t = run.table
    rows = t["row"].to_numpy(np.int64)
    n = len(t)
    base = t["ssl_prototype"].to_numpy(np.float64)
    ids = t["example_id"].astype(str).to_numpy()
    n_keep = max(1, int(round(fraction * n)))
    base_mask = _kept_hardest(base, ids, n_keep)
    base_rank = pd.Series(base).rank().to_numpy()
    params = run.config.get("params", {})
    k0, seed0 = run.k, int(params.get("seed", 0))
    iters = int(params.get("kmeans_iters", 20))
    dev = resolve_device(device)
    variants = [("seed", k0, s) for s in seeds if s != seed0]
    variants += [("k", k, seed0) for k in sorted({max(2, k0 // 2), 2 * k0, 10 * k0}) if k != k0 and k <= n // 2]
    out = []
    for i, (kind, k, s) in enumerate(variants):
        rep.info(f"stability [{i + 1}/{len(variants)}]: ssl_prototype with k={k}, seed {s}")
        tt = time.perf_counter()
        km = SphericalKMeans(k, n_iter=iters, random_state=s, device=dev).fit(run.embeddings, rows)
        _, sim = km.predict(run.embeddings, rows)
        v = ssl_prototype_from_sim(sim).astype(np.float64)
        rho = float(np.corrcoef(base_rank, pd.Series(v).rank().to_numpy())[0, 1])
        ov = float((_kept_hardest(v, ids, n_keep) & base_mask).sum() / n_keep)
        out.append(
            {
                "variant": kind,
                "k": int(k),
                "seed": int(s),
                "spearman_vs_run": rho,
                "kept_overlap_vs_run": ov,
                "fraction": fraction,
                "seconds": round(time.perf_counter() - tt, 2),
            }
        )
    return pd.DataFrame(out)
