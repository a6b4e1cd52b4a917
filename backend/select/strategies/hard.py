"""Keep hard: the highest difficulty scores first (best when data is abundant)."""

from __future__ import annotations

import numpy as np

from ..base import StrategyInput, register_strategy


@register_strategy("hard", priority=10, description="keep the highest difficulty first (best with abundant data)")
def hard(inp: StrategyInput) -> np.ndarray:
    return -np.asarray(inp.scores, np.float64)
