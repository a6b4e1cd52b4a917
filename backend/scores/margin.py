"""Margin of linear probes at the end of training, negated so that higher = harder.

The margin of Pleiss et al. 2020 (assigned-class logit minus the largest
other logit) read once, after the last epoch, on every training example
(evaluation pass), averaged over seeds.  Shares the trainings of
:mod:`backend.scores._dynamics`.
"""

from __future__ import annotations

import numpy as np

from ._dynamics import probe_dynamics
from .base import ScoreContext, register_metric
from .el2n import COST


@register_metric(
    "margin",
    priority=14,
    needs_labels=True,
    default=False,
    cost=COST,
    range="(-inf, inf)",
    options=("seeds", "epochs", "batch", "lr", "momentum", "weight_decay"),
    description="margin at the end of training, negated: minus (assigned logit - largest other "
    "logit) of linear probes after the last epoch, mean over --seeds. Higher = harder.",
)
def margin(ctx: ScoreContext) -> np.ndarray:
    """Minus the final margin, mean over seeds; in (-inf, inf), > 0 = misclassified at the end."""
    return probe_dynamics(ctx).final_margin()
