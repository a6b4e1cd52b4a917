"""class-floor: each class keeps at least a share of its random-pruning count; the rest by global order."""

from __future__ import annotations

import numpy as np

from ..base import BalancePlan, register_balance
from ._shares import DEFAULT_FLOOR_SHARE, share_floor


@register_balance(
    "class-floor",
    group="label",
    priority=25,
    options={"floor_share": DEFAULT_FLOOR_SHARE},
    description="each class keeps at least --floor-share (default 50%) of what random pruning "
    "would give it, the rest by global order (the paper's rule)",
)
def class_floor(sizes: np.ndarray, n_keep: int, options: dict) -> BalancePlan:
    return share_floor(sizes, n_keep, options)
