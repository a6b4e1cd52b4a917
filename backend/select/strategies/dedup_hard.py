"""dedup+hard: remove semantic duplicates first, then keep the hardest of the rest, under one budget."""

from __future__ import annotations

import numpy as np

from ..base import StrategyInput, register_strategy
from ._dedup import OPTIONS, dedup_then


@register_strategy(
    "dedup+hard",
    priority=45,
    options=OPTIONS,
    description="semantic duplicates (SemDeDup) removed first, then keep hard",
)
def dedup_hard(inp: StrategyInput) -> np.ndarray:
    return dedup_then(inp, -np.asarray(inp.scores, np.float64))
