"""Coverage-centric coreset selection (CCS; Zheng, Liu, Li, Prakash, ICLR 2023).

At high pruning rates keep-hard loses to random because the hardest examples
cover the data badly.  CCS:

1. drops the hardest ``beta`` share of the candidates (likely mislabelled or
   unlearnable);
2. splits the rest into ``strata`` equal-width bins of the score (default 50,
   as the authors' code);
3. shares the budget between the bins from the smallest bin up: each bin in
   turn gets ``min(its size, what is left / bins left)``, so small bins are
   kept whole and the large ones share the rest evenly;
4. samples uniformly (seeded) inside every bin.

The default ``beta`` follows the authors' table for CIFAR-10 by pruning rate
``r = 1 - keep``: 0 up to 50% pruned, 0.1 from 70% and 0.3 from 90% (the 90%
value, ``--mis-ratio 0.3``, is the one the released code's README uses; the
others are read from the paper's hyper-parameter table).  Between tabulated
rates the value of the next lower tabulated rate is used.  ``beta`` is capped
so that the budget always fits in what is left.

The kept set at ``n`` is not a prefix of one order, so this strategy
registers ``choose``; its priority (a seeded hash, the hardest ``beta`` last)
only breaks ties and orders the "removed at the margin" display.
"""

from __future__ import annotations

import hashlib

import numpy as np

from ...errors import CurateError
from ...scores import random_score
from ..base import StrategyInput, register_strategy

DEFAULT_STRATA = 50
# (pruning rate from which it applies, beta): CIFAR-10 row of the CCS paper's table
BETA_BY_PRUNING_RATE = ((0.0, 0.0), (0.7, 0.1), (0.9, 0.3))


def default_beta(keep_fraction: float) -> float:
    """The hard cut-off share for a keep fraction (see the module docstring)."""
    rate = 1.0 - float(keep_fraction)
    beta = 0.0
    for start, b in BETA_BY_PRUNING_RATE:
        if rate >= start - 1e-9:
            beta = b
    return beta


def resolve_options(options: dict, keep_fraction: float) -> tuple[float, int]:
    """(beta, strata) for this keep fraction; validated."""
    beta = options.get("ccs_beta")
    beta = default_beta(keep_fraction) if beta is None else float(beta)
    if not 0.0 <= beta < 1.0 or np.isnan(beta):
        raise CurateError(f"--ccs-beta {beta} must be a share in [0, 1): 0.1 drops the hardest 10% first")
    strata = int(options.get("ccs_strata") or DEFAULT_STRATA)
    if strata < 1:
        raise CurateError(f"--ccs-strata {strata} must be at least 1")
    return beta, strata


def strata_of(scores: np.ndarray, strata: int) -> np.ndarray:
    """Equal-width bin (0..strata-1) of every score over [min, max]; the maximum falls in the last bin."""
    s = np.asarray(scores, np.float64)
    lo, hi = float(s.min()), float(s.max())
    if hi <= lo:
        return np.zeros(len(s), np.int64)
    width = (hi - lo) / strata
    return np.minimum(np.floor((s - lo) / width).astype(np.int64), strata - 1)


def allocate(counts: np.ndarray, budget: int) -> np.ndarray:
    """Budget per stratum, from the smallest stratum up (CCS): each takes min(size, left / strata left).

    Integer division can leave a few examples unallocated when the largest
    strata are full; those go, one each, to the strata with room in size order,
    so the total is exactly ``min(budget, counts.sum())``.
    """
    counts = np.asarray(counts, np.int64)
    budget = int(min(budget, counts.sum()))
    order = np.lexsort((np.arange(len(counts)), counts))  # smallest first, ties by index
    out = np.zeros(len(counts), np.int64)
    left = budget
    for i, b in enumerate(order):
        take = min(int(counts[b]), left // (len(order) - i))
        out[b] = take
        left -= take
    while left > 0:  # rarely: hand out what the divisions left, smallest stratum with room first
        for b in order:
            if left and out[b] < counts[b]:
                out[b] += 1
                left -= 1
    return out


def _orders(inp: StrategyInput, positions: np.ndarray):
    """(scores, hardest-first order, draw order) of the candidates, local indices; cached per candidate set."""
    key = ("ccs", len(positions), hashlib.blake2b(positions.tobytes(), digest_size=16).digest())
    if key not in inp.cache:
        if len(inp.cache) > 64:
            inp.cache.clear()
        s = np.asarray(inp.scores, np.float64)[positions]
        assert inp.priority_rank is not None  # Ranking fills it before any choose()
        tie = inp.priority_rank[positions]  # unique ranks of the seeded draw: ties and sampling order
        inp.cache[key] = (s, np.lexsort((tie, -s)), np.argsort(tie, kind="stable"))
    return inp.cache[key]


def ccs_choose(inp: StrategyInput, positions: np.ndarray, n: int, *, keep_fraction: float) -> np.ndarray:
    """``n`` of the candidate ``positions`` by CCS (O(N) per call once the candidates' orders are cached)."""
    positions = np.asarray(positions, np.int64)
    if n >= len(positions):
        return positions
    if n <= 0:
        return positions[:0]
    beta, strata = resolve_options(inp.options, keep_fraction)
    s, hardest_first, by_draw = _orders(inp, positions)
    # drop the hardest beta first (ties by the draw), but never so many that n no longer fits
    n_drop = min(round(beta * len(positions)), len(positions) - n)
    left = np.ones(len(positions), bool)
    left[hardest_first[:n_drop]] = False
    bins = np.zeros(len(positions), np.int64)
    bins[left] = strata_of(s[left], strata)
    budget = allocate(np.bincount(bins[left], minlength=strata), n)
    # uniform inside every stratum: the earliest draws of each bin (a stable radix sort of small integers)
    d = by_draw[left[by_draw]]
    b = bins[d].astype(np.int16 if strata < 2**15 else np.int64)
    order = np.argsort(b, kind="stable")
    b_sorted = b[order]
    starts = np.searchsorted(b_sorted, np.arange(strata))
    take = (np.arange(len(d)) - starts[b_sorted]) < budget[b_sorted]
    out = np.zeros(len(positions), bool)
    out[d[order][take]] = True
    inp.report["ccs_beta"] = beta
    inp.report["ccs_strata"] = strata
    return positions[out]


def ccs_priority(inp: StrategyInput) -> np.ndarray:
    # a seeded uniform draw: CCS samples at random inside strata; used for ties and the margin display
    return random_score(inp.ids, inp.seed)


register_strategy(
    "ccs",
    priority=40,
    choose=ccs_choose,
    options={"ccs_beta": None, "ccs_strata": DEFAULT_STRATA},
    description="coverage-centric (Zheng et al. 2023): drop the hardest beta, then sample evenly "
    "across equal-width score strata",
)(ccs_priority)
