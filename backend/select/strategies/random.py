"""Random: a seeded uniform sample, the baseline every other strategy is compared with."""

from __future__ import annotations

import numpy as np

from ...scores import random_score
from ..base import StrategyInput, register_strategy


@register_strategy("random", priority=30, needs_metric=False, description="seeded uniform sample (the baseline)")
def random(inp: StrategyInput) -> np.ndarray:
    # a keyed hash of example_id: the same example keeps its draw when the set changes
    return random_score(inp.ids, inp.seed)
