"""What removing the near-duplicates costs: the scaling estimate of the deduplicated set against random.

``dedup_cost(run, eps=...)`` trains the scaling estimate's probes
(:func:`backend.scaling.estimate_scaling`, the public API) on exactly the set
SemDeDup keeps at that threshold, and on random subsets of the same size
(same seeds and hold-out), and reports their held-out errors, the full data's,
and the difference with its standard error over seeds.  The kept set is
passed as a fixed score (1 = kept, 0 = removed) with keep-hard at the kept
share: the estimate keeps the highest scores, i.e. the deduplicated set (the
keep fraction is stored to 6 decimals, so on very large runs the kept count
can differ from SemDeDup's by an example).  When the run has no test split the
estimate carves its hold-out from the pool; the probes then see the same
*share* of the rest, deduplicated examples first (``exact`` is False and the
result says so).  Cached by the scaling stage.
"""

from __future__ import annotations

import math

import numpy as np

from ..progress import Reporter


def dedup_cost(
    run, *, eps: float, seeds: int = 3, device: str = "auto", reporter: Reporter | None = None, force: bool = False
) -> dict:
    """Held-out error after removing SemDeDup's duplicates at ``eps`` vs random removal of as many."""
    from ..scaling import estimate_scaling
    from .core import semdedup

    res = semdedup(run, eps=eps, reporter=reporter)
    n = len(res.removed)
    f = res.n_kept / n
    out = {
        "eps": res.eps,
        "threshold": res.threshold,
        "n": n,
        "n_kept": res.n_kept,
        "n_removed": res.n_removed,
        "keep_fraction": f,
    }
    if res.n_removed == 0:
        return {**out, "note": "nothing is removed at this threshold"}
    est = estimate_scaling(
        run,
        scores=res.kept.astype(np.float64),
        fractions=[f],
        initial_sizes=[1.0],
        seeds=seeds,
        device=device,
        reporter=reporter,
        force=force,
    )
    c = est.curves
    c = c[np.isclose(c["initial_fraction"], c["initial_fraction"].max())]

    def at(strategy, frac):
        r = c[(c["strategy"] == strategy) & (np.abs(c["keep_fraction"] - frac) < 1e-6)]
        return r.iloc[0] if len(r) else None

    kept = at("hard", round(f, 6))
    rnd = at("random", round(f, 6))
    full = at("random", 1.0)
    if kept is None or rnd is None:
        return {**out, "note": "the estimate has no point at this keep fraction"}
    k = int(min(kept["n_seeds"], rnd["n_seeds"]))
    diff = float(kept["error_mean"] - rnd["error_mean"])
    se = math.sqrt((float(kept["error_std"]) ** 2 + float(rnd["error_std"]) ** 2) / max(k, 1))
    verdict = "tie"
    if k > 1 and se > 0 and abs(diff) > 2 * se:
        verdict = "better than random" if diff < 0 else "worse than random"
    exact = est.holdout.get("kind") == "test split"
    note = (
        ""
        if exact
        else (
            f"the hold-out ({est.holdout.get('size')} examples) was carved from the pool: the probes "
            "saw the same share of the rest, deduplicated examples first"
        )
    )
    return {
        **out,
        "exact": exact,
        "note": note,
        "holdout": dict(est.holdout),
        "error_dedup": float(kept["error_mean"]),
        "error_random": float(rnd["error_mean"]),
        "error_full": None if full is None else float(full["error_mean"]),
        "diff": diff,
        "se": se,
        "n_seeds": k,
        "verdict": verdict,
        "n_kept_estimate": int(kept["n_kept"]),
        "scaling_dir": str(est.dir),
    }
