"""class: every class keeps the same fraction of its examples."""

from __future__ import annotations

import numpy as np

from ..base import BalancePlan, register_balance
from ._shares import same_share


@register_balance("class", group="label", priority=20, description="the same fraction of every class")
def class_share(sizes: np.ndarray, n_keep: int, options: dict) -> BalancePlan:
    return same_share(sizes, n_keep)
