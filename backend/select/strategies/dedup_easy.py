"""dedup+easy: remove semantic duplicates first, then keep the easiest of the rest, under one budget."""

from __future__ import annotations

import numpy as np

from ..base import StrategyInput, register_strategy
from ._dedup import OPTIONS, dedup_then


@register_strategy(
    "dedup+easy",
    priority=46,
    options=OPTIONS,
    description="semantic duplicates (SemDeDup) removed first, then keep easy",
)
def dedup_easy(inp: StrategyInput) -> np.ndarray:
    return dedup_then(inp, np.asarray(inp.scores, np.float64))
