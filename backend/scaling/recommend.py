"""The recommendation: which setting to prune with, how far, and how sure we are.

Read from the grid at its largest initial size (the user's data):

1. **Full data**: the error with every example, with its standard error.
2. **Every estimated setting** (metric x strategy x balance) at every keep
   fraction: its error, the change against the full data, and a *paired*
   comparison with a random subset of the same size (same seeds, hence the
   same initial subsets): the mean over seeds of (setting - random) and its
   standard error.  Every standard error of an error is floored by the
   hold-out's binomial noise (``sqrt(e (1 - e) / H)``), so a small hold-out
   never makes a number look certain.  A difference with random adds the
   hold-out noise of the *pair*: both are measured on the same H examples, so
   it comes from the examples on which they disagree (McNemar's reasoning,
   from the grid's per-example mistakes, ``holdout_wrong.npy``); runs cached
   before that record fall back to the conservative independent bound.
   A setting *beats* random where it is lower by more than two standard
   errors, *loses* where it is higher by more than two.
3. **The pick**: the smallest keep fraction at which some setting is within
   ``tolerance`` of the full data and not worse than random; there, a
   setting that beats random, else random itself.  When nothing beats random
   anywhere the sentence says so first ("a random N% is as good as any
   metric here") and what might change it.
4. **The regime** (method.md section 3): keep easy should win with scarce
   data, keep hard with abundant data; the grid's hard-vs-easy comparison at
   the full size (and at the smallest initial size) says which regime the
   data are in, and breaks ties between equally good settings in the
   theory's direction.

Every number in the sentence comes from ``comparisons`` (the table the app
and the CLI show beside it) and carries its uncertainty; an error below the
full-data error is never called a cost.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

SIGMAS = 2.0  # "beats" / "loses to" random: more than this many standard errors
SMALL_HOLDOUT = 1000  # below this many held-out examples the sentence warns about the noise
HARD_LIKE = ("hard", "dedup+hard")
EASY_LIKE = ("easy", "dedup+easy")
WHAT_MIGHT_CHANGE = (
    "a better encoder (a self-supervised one such as SwAV or DINO: --encoder resnet50 "
    "--weights FILE), more data (the gains grow with the initial size), or another metric "
    "(`curate scores`, e.g. a training-dynamics metric)"
)


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def _pp(x: float) -> str:
    return f"{100 * x:.1f} pp"


def _frac(f: float) -> str:
    return f"{100 * f:.0f}%" if abs(100 * f - round(100 * f)) < 1e-6 else f"{100 * f:.1f}%"


def _binom(e: float, holdout_size: int | None) -> float:
    return math.sqrt(max(e * (1 - e), 1e-6) / holdout_size) if holdout_size else 0.0


def _paired_holdout_se(
    holdout_wrong: np.ndarray, mine: pd.DataFrame, rnd_idx: dict, f: float, holdout_size: int | None
) -> float | None:
    """Standard error, over the held-out examples, of (setting's error - random's error), seeds averaged.

    Both probes of a pair are scored on the same H examples, so the hold-out's
    sampling noise of their *difference* comes only from the examples on which
    they disagree: with delta_i = mean over seeds of (wrong_setting - wrong_random)
    on example i, it is std(delta) / sqrt(H) (McNemar's reasoning), usually far
    below the independent-samples bound sqrt(2 e (1 - e) / H).
    """
    pairs = [
        (int(i), rnd_idx[(f, int(sd))]) for i, sd in zip(mine["holdout_index"], mine["seed"]) if (f, int(sd)) in rnd_idx
    ]
    if not pairs:
        return None
    n = int(holdout_size or 0)
    if n < 2:
        return None
    delta = np.zeros(n, np.float64)
    for a, b in pairs:
        delta += np.unpackbits(np.asarray(holdout_wrong[a]))[:n].astype(np.float64)
        delta -= np.unpackbits(np.asarray(holdout_wrong[b]))[:n].astype(np.float64)
    delta /= len(pairs)
    return float(delta.std(ddof=1) / math.sqrt(n))


def setting_name(strategy: str, balance: str, metric: str) -> str:
    """A setting in words: 'keep hard by ssl_prototype, class-floor balance'."""
    words = {
        "hard": "keep the hardest",
        "easy": "keep the easiest",
        "random": "a random subset",
        "ccs": "coverage-centric (CCS)",
        "dedup+hard": "deduplicate, then keep the hardest",
        "dedup+easy": "deduplicate, then keep the easiest",
    }
    out = words.get(strategy, strategy)
    if strategy != "random":
        out += f" by {metric}"
    if balance != "none":
        out += f", {balance} balance"
    return out


# ---------------------------------------------------------------------------
# the comparison table
# ---------------------------------------------------------------------------


def comparisons(
    curves: pd.DataFrame,
    points: pd.DataFrame | None,
    *,
    holdout_size: int | None,
    tolerance: float,
    holdout_wrong: np.ndarray | None = None,
) -> tuple[pd.DataFrame, float, float, int]:
    """(table, full_error, its standard error, initial size) at the largest initial size.

    One row per (strategy, balance, keep_fraction < 1): ``error``, ``error_se``, ``vs_full``,
    ``vs_random`` (paired mean difference), ``vs_random_se``, ``n_pairs``, ``within_tolerance``,
    ``verdict`` ("beats random" / "loses to random" / "as random").
    """
    c = curves.assign(balance=curves["balance"]) if "balance" in curves else curves.assign(balance="none")
    q = c["initial_fraction"].max()
    c = c[np.isclose(c["initial_fraction"], q)]
    n_full = int(c["initial_size"].iloc[0])
    base = c[(c["strategy"] == "random") & (c["balance"] == "none")].set_index("keep_fraction")
    full = c[c["keep_fraction"] >= 1.0]
    full_error = float(full["error_mean"].iloc[0]) if len(full) else float(c["error_mean"].min())
    full_sem = float(full["error_std"].iloc[0] / math.sqrt(max(int(full["n_seeds"].iloc[0]), 1))) if len(full) else 0.0
    full_se = max(full_sem, _binom(full_error, holdout_size))
    pts = None
    if points is not None and len(points):
        pts = points.assign(balance=points["balance"]) if "balance" in points else points.assign(balance="none")
        pts = pts[np.isclose(pts["initial_fraction"], q)]
        rnd_pts = pts[(pts["strategy"] == "random") & (pts["balance"] == "none")]
        rnd_by = {
            (float(f), int(sd)): float(e)
            for f, sd, e in zip(rnd_pts["keep_fraction"], rnd_pts["seed"], rnd_pts["error"])
        }
        paired = holdout_wrong is not None and "holdout_index" in pts and bool((pts["holdout_index"] >= 0).all())
        rnd_idx = (
            {
                (float(f), int(sd)): int(i)
                for f, sd, i in zip(rnd_pts["keep_fraction"], rnd_pts["seed"], rnd_pts["holdout_index"])
            }
            if paired
            else {}
        )
    rows = []
    for r in c[c["keep_fraction"] < 1.0].itertuples():
        f = float(r.keep_fraction)
        e = float(r.error_mean)
        se = max(float(r.error_std) / math.sqrt(max(int(r.n_seeds), 1)), _binom(e, holdout_size))
        if f in base.index:
            er = float(base.loc[f, "error_mean"])
            diffs = None
            if pts is not None:
                mine = pts[
                    (pts["strategy"] == r.strategy)
                    & (pts["balance"] == r.balance)
                    & np.isclose(pts["keep_fraction"], f)
                ]
                diffs = np.array(
                    [
                        float(x) - rnd_by[(f, int(sd))]
                        for x, sd in zip(mine["error"], mine["seed"])
                        if (f, int(sd)) in rnd_by
                    ]
                )
            held_se = None
            if diffs is not None and len(diffs):
                d = float(diffs.mean())
                d_sem = float(diffs.std(ddof=1) / math.sqrt(len(diffs))) if len(diffs) > 1 else 0.0
                n_pairs = len(diffs)
                if rnd_idx:
                    assert holdout_wrong is not None
                    held_se = _paired_holdout_se(holdout_wrong, mine, rnd_idx, f, holdout_size)
            else:  # no per-seed points: an unpaired difference of the means
                d = e - er
                d_sem = math.hypot(se, float(base.loc[f, "error_std"]) / math.sqrt(max(int(base.loc[f, "n_seeds"]), 1)))
                n_pairs = 0
            is_random = r.strategy == "random" and r.balance == "none"
            if is_random:
                d_se = 0.0
            elif held_se is not None:  # both measured on the same held-out examples: their paired noise
                d_se = math.hypot(d_sem, held_se)
            else:  # conservative: as if the two errors came from independent hold-outs
                d_se = max(d_sem, math.hypot(_binom(e, holdout_size), _binom(er, holdout_size)))
        else:
            d, d_se, n_pairs, is_random = float("nan"), float("nan"), 0, False
        if is_random or not np.isfinite(d):
            verdict = "as random"
        elif d < -SIGMAS * d_se:
            verdict = "beats random"
        elif d > SIGMAS * d_se:
            verdict = "loses to random"
        else:
            verdict = "as random"
        rows.append(
            {
                "strategy": r.strategy,
                "balance": r.balance,
                "keep_fraction": f,
                "n_kept": int(r.n_kept),
                "error": e,
                "error_se": se,
                "vs_full": e - full_error,
                "vs_random": d,
                "vs_random_se": d_se,
                "n_pairs": n_pairs,
                "within_tolerance": bool(e <= full_error + tolerance + 1e-12),
                "verdict": verdict,
            }
        )
    table = pd.DataFrame(
        rows,
        columns=[
            "strategy",
            "balance",
            "keep_fraction",
            "n_kept",
            "error",
            "error_se",
            "vs_full",
            "vs_random",
            "vs_random_se",
            "n_pairs",
            "within_tolerance",
            "verdict",
        ],
    )
    return table, full_error, full_se, n_full


def confirm_beats_powerlaw(beats: dict, frontier: pd.DataFrame, curves: pd.DataFrame, holdout_size: int | None) -> dict:
    """Keep a "beats the power law" point only where it also beats the random subset of its own size.

    A power law fitted to a few noisy random points can lie far above them; a frontier point below the fit
    but not below the measured random subset of the same size (initial size and keep fraction) by more
    than two standard errors (hold-out noise included) is no evidence of better-than-power-law scaling.
    """
    if not beats or not beats.get("beats"):
        return beats
    c = curves.assign(balance=curves["balance"]) if "balance" in curves else curves.assign(balance="none")
    rnd = c[(c["strategy"] == "random") & (c["balance"] == "none")]
    kept = []
    for r in frontier.itertuples():
        if int(r.n_kept) not in beats["where"]:
            continue
        same = rnd[
            np.isclose(rnd["initial_fraction"], r.initial_fraction) & np.isclose(rnd["keep_fraction"], r.keep_fraction)
        ]
        if same.empty:
            continue
        er = float(same["error_mean"].iloc[0])
        se_r = max(
            float(same["error_std"].iloc[0]) / math.sqrt(max(int(same["n_seeds"].iloc[0]), 1)), _binom(er, holdout_size)
        )
        se_f = max(float(r.error_std) / math.sqrt(max(int(r.n_seeds), 1)), _binom(float(r.error_mean), holdout_size))
        if er - float(r.error_mean) > SIGMAS * math.hypot(se_r, se_f):
            kept.append(int(r.n_kept))
    out = dict(beats)
    out["where"] = kept
    out["beats"] = bool(kept)
    if not kept:
        out["note"] = (
            "below the power-law fit, but not below the random subsets of the same size by more than "
            f"{SIGMAS:g} standard errors: no evidence of better-than-power-law scaling"
        )
    return out


# ---------------------------------------------------------------------------
# the regime
# ---------------------------------------------------------------------------


def _hard_vs_easy(curves: pd.DataFrame, q: float, holdout_size: int | None) -> dict | None:
    """Keep hard vs keep easy at initial fraction ``q`` (balance none), per pruned keep fraction and on average.

    ``hard_clear`` / ``easy_clear`` are the keep fractions where that side is lower by more than
    ``SIGMAS`` standard errors (seed spread and hold-out noise).
    """
    c = curves[np.isclose(curves["initial_fraction"], q) & (curves["keep_fraction"] < 1.0)]
    if "balance" in c:
        c = c[c["balance"] == "none"]
    h = c[c["strategy"] == "hard"].set_index("keep_fraction")
    e = c[c["strategy"] == "easy"].set_index("keep_fraction")
    fs = sorted(set(h.index) & set(e.index))
    if not fs:
        return None
    diff = (h.loc[fs, "error_mean"] - e.loc[fs, "error_mean"]).to_numpy()
    se_each = []
    for f in fs:
        a = max(
            h.loc[f, "error_std"] / math.sqrt(max(h.loc[f, "n_seeds"], 1)), _binom(h.loc[f, "error_mean"], holdout_size)
        )
        b = max(
            e.loc[f, "error_std"] / math.sqrt(max(e.loc[f, "n_seeds"], 1)), _binom(e.loc[f, "error_mean"], holdout_size)
        )
        se_each.append(math.hypot(a, b))
    se = float(np.sqrt(np.sum(np.square(se_each))) / len(fs))
    hard_wins = [f for f, d in zip(fs, diff) if d < 0]
    return {
        "mean_diff": float(diff.mean()),
        "se": se,
        "fractions": fs,
        "hard_wins": hard_wins,
        "hard_clear": [f for f, d, s in zip(fs, diff, se_each) if d < -SIGMAS * s],
        "easy_clear": [f for f, d, s in zip(fs, diff, se_each) if d > SIGMAS * s],
        "hard": float(h.loc[fs, "error_mean"].mean()),
        "easy": float(e.loc[fs, "error_mean"].mean()),
        "n": int(c["initial_size"].iloc[0]),
    }


def _fracs(fs: list[float], grid: list[float]) -> str:
    """Keep fractions as runs of consecutive grid points: [0.3, 0.5, 0.7, 0.9] of that grid -> "30%-90%"."""
    pos = [grid.index(f) for f in fs]
    runs: list[list[float]] = []
    for i, f in zip(pos, fs):
        if runs and grid.index(runs[-1][-1]) == i - 1:
            runs[-1].append(f)
        else:
            runs.append([f])
    return ", ".join(_frac(r[0]) if len(r) == 1 else f"{_frac(r[0])}-{_frac(r[-1])}" for r in runs)


def _where(he: dict) -> str:
    """Where each side wins: "keep hard is lower at 30%-90% kept; keep easy is lower at 20% kept"."""
    hard, easy = he["hard_clear"], he["easy_clear"]
    where = []
    if hard:
        where.append(f"keep hard is lower at {_fracs(hard, he['fractions'])} kept")
    if easy:
        where.append(f"keep easy is lower at {_fracs(easy, he['fractions'])} kept")
    n_tied = len(he["fractions"]) - len(hard) - len(easy)
    if n_tied:
        verb = "is" if n_tied == 1 else "are"
        where.append(f"{n_tied} of {len(he['fractions'])} keep fractions {verb} within the noise")
    return "; ".join(where)


def _regime_name(he: dict) -> str:
    """abundant / scarce / unclear, judged fraction by fraction, never by an average over them.

    The theory (method.md section 3) says the better side depends on how many examples are *kept*:
    keep easy wins when the pruned set is small, keep hard when it is large.  So at the full initial
    size keep hard clearly winning at the larger keep fractions, with keep easy winning only at the
    smaller ones (the crossover), is the abundant regime; an average over fractions would let one
    collapse at 20% hide four clear wins at 50%-90%.
    """
    hard, easy = he["hard_clear"], he["easy_clear"]
    if hard and (not easy or max(easy) < min(hard)):
        return "abundant"
    if easy and not hard:
        return "scarce"
    return "unclear"


def regime(curves: pd.DataFrame, holdout_size: int | None) -> dict:
    """Which regime of the theory the data are in, from keep hard vs keep easy at the full and smallest sizes."""
    qs = sorted(curves["initial_fraction"].unique())
    big = _hard_vs_easy(curves, qs[-1], holdout_size)
    small = _hard_vs_easy(curves, qs[0], holdout_size) if len(qs) > 1 else None
    if big is None:
        return {"regime": "unknown", "sentence": "", "prefer": None}
    name = _regime_name(big)
    easy = big["easy_clear"]
    vs = _where(big) + f" ({SIGMAS:g} standard errors, seed spread and hold-out noise)"
    if name == "abundant":
        text = (
            f"Regime: abundant data. At your full size ({big['n']:,} examples) {vs}. As the theory predicts "
            "when data are plentiful, the easy examples are already learned from a few of them and the hard "
            "ones still carry information"
            + ("; only when the kept set becomes small do the easy ones win again (the crossover)." if easy else ".")
        )
    elif name == "scarce":
        text = (
            f"Regime: scarce data. At your full size ({big['n']:,} examples) {vs}. As the theory predicts "
            "when data are few, the prototypical examples teach the basic rule and the hard ones look like "
            "noise to a model that has seen little."
        )
    else:
        text = (
            f"Regime: unclear. At your full size ({big['n']:,} examples) {vs}; the theory says keep easy "
            "wins with scarce data and keep hard with abundant data, and this grid cannot tell which side "
            "of the crossover you are on."
        )
    if small is not None and small["n"] < big["n"]:
        text += f" At the smallest initial size ({small['n']:,} examples) {_where(small)}."
    prefer = "hard" if name == "abundant" else "easy" if name == "scarce" else None
    return {"regime": name, "sentence": text, "prefer": prefer, "full": big, "smallest": small}


# ---------------------------------------------------------------------------
# the recommendation
# ---------------------------------------------------------------------------


def _direction(curves: pd.DataFrame, holdout_size: int | None) -> tuple[str, bool, str, dict]:
    """The better of keep hard / keep easy at the full size: (direction, clear, evidence, mean errors)."""
    q = curves["initial_fraction"].max()
    he = _hard_vs_easy(curves, q, holdout_size)
    if he is None:
        return "hard", False, "keep hard and keep easy were not both estimated", {}
    # judged fraction by fraction, as the regime is (an average lets one collapse hide the rest)
    name = _regime_name(he)
    if name == "unclear":
        direction = "hard" if len(he["hard_wins"]) * 2 >= len(he["fractions"]) else "easy"
    else:
        direction = "hard" if name == "abundant" else "easy"
    clear = name != "unclear"
    c = curves[np.isclose(curves["initial_fraction"], q) & (curves["keep_fraction"] < 1.0)]
    rnd = c[(c["strategy"] == "random") & (c.get("balance", "none") == "none")]
    mr = float(rnd[rnd["keep_fraction"].isin(he["fractions"])]["error_mean"].mean()) if len(rnd) else float("nan")
    fs = he["fractions"]
    evidence = (
        f"at the full initial size ({he['n']} examples), averaged over keep fractions "
        f"{_frac(fs[0])}-{_frac(fs[-1])}: keep hard {_pct(he['hard'])}, keep easy {_pct(he['easy'])}, "
        f"random {_pct(mr)} mean held-out error (difference {_pp(abs(he['mean_diff']))}, standard error "
        f"{_pp(he['se'])}); keep hard is lower at {len(he['hard_wins'])} of {len(fs)} keep fractions, clearly at "
        f"{len(he['hard_clear'])}, keep easy clearly at {len(he['easy_clear'])}"
    )
    return direction, bool(clear), evidence, {"hard": he["hard"], "easy": he["easy"], "random": mr}


def _pick(table: pd.DataFrame, prefer: str | None) -> tuple[pd.Series | None, pd.Series | None]:
    """(the recommended row, the random row at the same fraction) from the comparison table."""
    ok = table[table["within_tolerance"] & (table["verdict"] != "loses to random")]
    if ok.empty:
        return None, None
    beats_anywhere = (table["verdict"] == "beats random").any()
    rnd = table[(table["strategy"] == "random") & (table["balance"] == "none")]
    if not beats_anywhere:
        rnd_ok = rnd[rnd["within_tolerance"]]
        if rnd_ok.empty:
            return None, None
        row = rnd_ok.sort_values("keep_fraction").iloc[0]
        return row, row
    f = ok["keep_fraction"].min()
    at = ok[np.isclose(ok["keep_fraction"], f)]
    winners = at[at["verdict"] == "beats random"]
    rnd_at = rnd[np.isclose(rnd["keep_fraction"], f)]
    if winners.empty:
        if len(rnd_at) and bool(rnd_at.iloc[0]["within_tolerance"]):
            return rnd_at.iloc[0], rnd_at.iloc[0]
        # nothing beats random at the smallest feasible fraction and random itself is not within tolerance
        # there: the next fraction where a setting beats random and stays within tolerance
        better = ok[ok["verdict"] == "beats random"]
        f = better["keep_fraction"].min()
        winners = better[np.isclose(better["keep_fraction"], f)]
        rnd_at = rnd[np.isclose(rnd["keep_fraction"], f)]
    best = winners.sort_values(["error", "strategy"]).iloc[0]
    if prefer is not None:  # among settings tied with the best, follow the theory's direction
        like = HARD_LIKE if prefer == "hard" else EASY_LIKE
        tied = winners[(winners["error"] - best["error"]) <= SIGMAS * np.hypot(winners["error_se"], best["error_se"])]
        tied = tied[tied["strategy"].isin(like)]
        if len(tied) and best["strategy"] not in like:
            best = tied.sort_values("error").iloc[0]
    return best, (rnd_at.iloc[0] if len(rnd_at) else None)


def _versus_full(e: float, se: float, full: float, full_se: float) -> str:
    """'16.4% ± 0.4 pp against 15.9% ± 0.4 pp with all data (0.5 pp higher)': a gain is never called a cost."""
    d = e - full
    if d <= 0:
        rel = f"{_pp(-d)} lower" + (", within noise" if -d <= SIGMAS * max(se, full_se) else "")
    else:
        rel = f"{_pp(d)} higher"
    return f"{_pct(e)} ± {_pp(se)} against {_pct(full)} ± {_pp(full_se)} with all data ({rel})"


def recommend(
    curves: pd.DataFrame,
    *,
    tolerance: float,
    metric: str,
    probe: str = "linear",
    encoder: str = "embedding",
    holdout_size: int | None = None,
    points: pd.DataFrame | None = None,
    beats_powerlaw: dict | None = None,
    holdout_wrong: np.ndarray | None = None,
) -> dict:
    """The recommended setting and its sentence; see the module docstring.

    ``curves``: :func:`backend.scaling.analysis.aggregate` of the grid;
    ``points``: the per-seed points (for the paired comparison with random;
    without them the comparison is unpaired).  Returns ``setting`` (strategy,
    balance, metric, keep_fraction; None when no fraction is within the
    tolerance), ``beats_random``, ``sentence``, ``comparisons`` (the table
    the sentence rests on), ``regime``, and the older keys ``direction``
    (the recommended setting's strategy; without one, the better of keep
    hard / keep easy), ``min_fraction`` (the recommended
    keep fraction), ``full_error``, ``loses_to_random_below``, ``evidence``,
    ``proxy_note``, ``alternative``.
    """
    table, full_error, full_se, n_full = comparisons(
        curves, points, holdout_size=holdout_size, tolerance=tolerance, holdout_wrong=holdout_wrong
    )
    kind = "linear probe (multinomial logistic regression)" if probe == "linear" else "small MLP probe"
    proxy_note = (
        f"These numbers come from a {kind} trained on the frozen {encoder} embeddings, not from your "
        "final model: trust the direction and the rough size of the effect, not the exact error of a "
        "network trained end to end (`curate verify` trains one from scratch to check)."
    )
    direction, clear, evidence, mean_error = _direction(curves, holdout_size)
    reg = regime(curves, holdout_size)
    tol = _pp(tolerance)
    out = {
        "direction": direction,
        "clear": clear,
        "evidence": evidence,
        "tolerance": float(tolerance),
        "full_error": full_error,
        "full_error_se": full_se,
        "initial_size": n_full,
        "proxy_note": proxy_note,
        "regime": {k: v for k, v in reg.items() if k in ("regime", "sentence", "prefer")},
        "comparisons": table.to_dict(orient="records"),
        "holdout_size": holdout_size,
        "mean_error": mean_error,
        "metric": metric,
    }
    if table.empty:
        sentence = (
            f"With all {n_full:,} examples the probe's held-out error is {_pct(full_error)} "
            f"± {_pp(full_se)}; the grid has no keep fraction below 100%, so there is nothing to compare."
        )
        return {
            **out,
            "setting": None,
            "beats_random": False,
            "min_fraction": None,
            "loses_to_random_below": None,
            "sentence": sentence,
            "alternative": None,
        }
    row, rnd_row = _pick(table, reg["prefer"])
    beats_anywhere = bool((table["verdict"] == "beats random").any())
    parts = []
    if not beats_anywhere:
        best = table[table["strategy"] != "random"].sort_values("vs_random")
        best_txt = ""
        if len(best):
            b = best.iloc[0]
            best_txt = (
                f" (the closest: {setting_name(b.strategy, b.balance, metric)} at {_frac(b.keep_fraction)}, "
                f"{100 * b.vs_random:+.1f} ± {_pp(b.vs_random_se)} against random)"
            )
        if row is not None:
            parts.append(
                f"A random {_frac(row.keep_fraction)} is as good as any metric here: no setting estimated "
                f"beats a random subset of the same size by more than {SIGMAS:g} standard errors at any "
                f"keep fraction{best_txt}. What might change that: {WHAT_MIGHT_CHANGE}."
            )
            parts.append(
                f"A random {_frac(row.keep_fraction)} ({row.n_kept:,} examples) is estimated at "
                f"{_versus_full(row.error, row.error_se, full_error, full_se)}, within the {tol} tolerance."
            )
        else:
            parts.append(
                f"No setting beats a random subset of the same size, and no keep fraction tested stays "
                f"within {tol} of the full data's {_pct(full_error)} ± {_pp(full_se)}: keep all the data"
                f"{best_txt}. What might change that: {WHAT_MIGHT_CHANGE}."
            )
    elif row is None:
        parts.append(
            f"No keep fraction tested stays within {tol} of the full data's {_pct(full_error)} "
            f"± {_pp(full_se)} without losing to random: keep all the data, or accept a larger tolerance."
        )
    else:
        name = setting_name(row.strategy, row.balance, metric)
        if row.strategy == "random":
            parts.append(
                f"A random {_frac(row.keep_fraction)} is as good as any metric at that size: nothing "
                "estimated beats random there. It is estimated at "
                f"{_versus_full(row.error, row.error_se, full_error, full_se)}."
            )
        else:
            vs = f"{_pp(-row.vs_random)} ± {_pp(row.vs_random_se)} lower than a random {_frac(row.keep_fraction)}" + (
                f" (paired over {row.n_pairs} seeds)" if row.n_pairs else ""
            )
            parts.append(
                f"Recommended: {name}, keeping {_frac(row.keep_fraction)} ({row.n_kept:,} examples). "
                f"Estimated held-out error {_versus_full(row.error, row.error_se, full_error, full_se)}, "
                f"within the {tol} tolerance, and {vs}."
            )
    loses = None
    if row is not None and row.strategy != "random":
        mine = table[(table["strategy"] == row.strategy) & (table["balance"] == row.balance)]
        worse = mine[mine["verdict"] == "loses to random"]
        if len(worse):
            loses = float(worse["keep_fraction"].max())
            parts.append(f"At {_frac(loses)} or less this setting loses to random.")
    else:
        said = []
        for st_, word in (("hard", "the hardest"), ("easy", "the easiest")):
            mine = table[(table["strategy"] == st_) & (table["balance"] == "none")]
            worse = mine[mine["verdict"] == "loses to random"]
            if len(worse):
                f_lose = float(worse["keep_fraction"].max())
                said.append(f"keeping {word} at {_frac(f_lose)} or less")
                if st_ == direction:
                    loses = f_lose
        if said:
            parts.append("Pruning by the metric loses to random when " + " and ".join(said) + ".")
    if reg["sentence"]:
        parts.append(reg["sentence"])
    if holdout_size and holdout_size < SMALL_HOLDOUT:
        parts.append(
            f"The hold-out has only {holdout_size:,} examples: every error here is uncertain by about "
            f"± {_pp(_binom(full_error, holdout_size))}; treat differences smaller than that as noise."
        )
    if beats_powerlaw and beats_powerlaw.get("beats"):
        parts.append(
            "The Pareto frontier lies below the power law of random subsets by more than "
            f"{beats_powerlaw.get('sigmas', 2):g} standard errors (hold-out noise included) at "
            f"n = {', '.join(f'{n:,}' for n in beats_powerlaw['where'])}."
        )
    setting = None
    if row is not None:
        setting = {
            "strategy": str(row.strategy),
            "balance": str(row.balance),
            "metric": None if row.strategy == "random" else metric,
            "keep_fraction": float(row.keep_fraction),
        }
    alternative = None
    if row is not None:
        others = table[
            table["within_tolerance"]
            & (table["verdict"] == "beats random")
            & ~((table["strategy"] == row.strategy) & (table["balance"] == row.balance))
        ]
        if len(others):
            a = others.sort_values(["keep_fraction", "error"]).iloc[0]
            alternative = {
                "direction": str(a.strategy),
                "strategy": str(a.strategy),
                "balance": str(a.balance),
                "min_fraction": float(a.keep_fraction),
            }
    if setting is not None:  # the direction the user is told to take is the recommended setting's
        out["direction"] = setting["strategy"]
        out["better_of_hard_easy"] = direction
    return {
        **out,
        "setting": setting,
        "beats_random": beats_anywhere and row is not None and row.strategy != "random",
        "min_fraction": None if row is None else float(row.keep_fraction),
        "loses_to_random_below": loses,
        "sentence": " ".join(parts),
        "alternative": alternative,
    }
