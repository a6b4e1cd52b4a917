"""Keep easy: the lowest difficulty scores first (best when data is scarce)."""

from __future__ import annotations

import numpy as np

from ..base import StrategyInput, register_strategy


@register_strategy("easy", priority=20, description="keep the lowest difficulty first (best with scarce data)")
def easy(inp: StrategyInput) -> np.ndarray:
    return np.asarray(inp.scores, np.float64)
