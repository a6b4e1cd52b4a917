"""The semantic-duplicate step shared by ``dedup+hard`` and ``dedup+easy``.

SemDeDup itself (Abbas et al. 2023: inside each k-means cluster, examples
closer than cosine similarity ``1 - eps`` are duplicates; one of each group
is kept) lives in :mod:`backend.dedup`; this module only asks it which
examples it would remove, and turns that into a priority: every example the
dedup step keeps comes before every duplicate, and inside each part the
difficulty order decides.  One budget: when the budget is larger than what
dedup keeps, the duplicates are added back in difficulty order (and the
report says so).
"""

from __future__ import annotations

import numpy as np

from ...errors import CurateError
from ..base import StrategyInput

DEFAULT_EPS = 0.05
OPTIONS = {"dedup_eps": DEFAULT_EPS}


def duplicate_mask(inp: StrategyInput) -> np.ndarray:
    """True for every example of ``inp.table`` that semantic deduplication removes (cached per eps)."""
    eps_key = ("dedup_removed", float(inp.options.get("dedup_eps", DEFAULT_EPS)))
    if eps_key in inp.cache:
        return inp.cache[eps_key]
    if "dedup_removed" in inp.table.columns:  # a precomputed flag (tests, or a table written by curate dedup)
        return inp.table["dedup_removed"].to_numpy(bool)
    try:
        from ...dedup import semdedup
    except ImportError:
        raise CurateError(
            "dedup+hard / dedup+easy need semantic deduplication (backend.dedup), "
            "which this installation does not have: use --strategy hard or easy"
        ) from None
    if inp.run is None:
        raise CurateError("dedup strategies need the run's embeddings: pass the run to Ranking(run=...)")
    eps = float(inp.options.get("dedup_eps", DEFAULT_EPS))
    if not 0.0 < eps < 1.0:
        raise CurateError(f"--dedup-eps {eps} must be in (0, 1): duplicates have cosine similarity above 1 - eps")
    mask = np.asarray(semdedup(inp.run, eps=eps).removed, bool)
    if mask.shape != (len(inp.table),):
        raise CurateError(f"semantic deduplication returned {mask.shape} flags for {len(inp.table)} examples")
    inp.cache[eps_key] = mask
    return mask


def dedup_then(inp: StrategyInput, difficulty_priority: np.ndarray) -> np.ndarray:
    """Priority: dedup's keepers first (by difficulty), then the duplicates (by difficulty)."""
    dup = duplicate_mask(inp)
    inp.report["dedup_removed_total"] = int(dup.sum())
    # rank the difficulty (ties by example_id, as everywhere) so that "duplicate" dominates any score range
    rank = np.empty(len(dup), np.float64)
    rank[np.lexsort((inp.ids, difficulty_priority))] = np.arange(len(dup))
    return rank + dup.astype(np.float64) * len(rank)
