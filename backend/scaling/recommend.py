"""The recommendation: which direction to prune, how far, and where pruning starts to lose to random.

Read from the aggregated curves (:func:`backend.scaling.analysis.aggregate`)
at the largest initial size; the sentence is what the CLI and the app show.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd


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
        parts = [(f"At your full data size ({n_full} examples) keeping the {word} examples ({metric}) is better "
                  f"than keeping the {other}")]
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
