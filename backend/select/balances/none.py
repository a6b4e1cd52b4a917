"""No balance: the strategy's order over the whole pool decides."""

from __future__ import annotations

import numpy as np

from ..base import BalancePlan, register_balance


@register_balance("none", group=None, priority=10, description="the strategy's order over the whole pool")
def no_balance(sizes: np.ndarray, n_keep: int, options: dict) -> BalancePlan:
    return BalancePlan(quota=np.array([n_keep], np.int64))
