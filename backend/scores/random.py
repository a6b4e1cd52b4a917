"""The random baseline: a seeded uniform score per example."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd

from .base import ScoreContext, register_metric


def random_score(example_ids, seed: int = 0) -> np.ndarray:
    """Uniform [0, 1) from a keyed hash of each example_id: stable when the set changes."""
    # pandas wants a 16-character key; hash the seed into it so that every seed gives its own scores
    key = hashlib.sha256(f"curate-random-{int(seed)}".encode()).hexdigest()[:16]
    h = pd.util.hash_pandas_object(pd.Series(example_ids, dtype="string"), index=False, hash_key=key)
    return (h.to_numpy(np.uint64) >> np.uint64(11)).astype(np.float64) / float(1 << 53)


@register_metric(
    "random",
    priority=2,
    needs_labels=False,
    recompute_in_subset=True,
    cost="free",
    range="[0, 1)",
    description="seeded uniform score in [0, 1): the baseline every strategy is compared with.",
)
def random(ctx: ScoreContext) -> np.ndarray:
    return random_score(ctx.example_ids, ctx.seed)
