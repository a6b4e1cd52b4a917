"""The two balance rules, shared by the class and cluster balances."""

from __future__ import annotations

import numpy as np

from ...errors import CurateError
from ..base import BalancePlan, proportional_quotas

DEFAULT_FLOOR_SHARE = 0.5


def same_share(sizes: np.ndarray, n_keep: int) -> BalancePlan:
    """Every group keeps the same fraction (largest remainder, so the total is exact)."""
    return BalancePlan(quota=proportional_quotas(sizes, n_keep))


def share_floor(sizes: np.ndarray, n_keep: int, options: dict) -> BalancePlan:
    """Every group keeps at least ``floor_share`` of what uniform random pruning would give it.

    Random pruning to ``n_keep`` gives group g about ``size_g * n_keep / N``;
    the floor is ``floor(floor_share * that)``; the rest of the budget goes
    by the strategy's global order (the rule the paper's authors describe:
    metrics amplify class imbalance, so each class is protected down to half
    its random share by default).
    """
    share = options.get("floor_share", DEFAULT_FLOOR_SHARE)
    share = DEFAULT_FLOOR_SHARE if share is None else float(share)
    if not 0.0 <= share <= 1.0 or np.isnan(share):
        raise CurateError(
            f"--floor-share {share} must be in [0, 1]: 0.5 keeps at least half of each group's random share"
        )
    sizes = np.asarray(sizes, np.int64)
    random_share = sizes * (n_keep / max(int(sizes.sum()), 1))
    return BalancePlan(floor=np.minimum(np.floor(share * random_share + 1e-9).astype(np.int64), sizes))
