"""Area under the margin (AUM, Pleiss et al. 2020) of linear probes, negated so that higher = harder.

Follows the reference implementation (``asappresearch/aum``,
``AUMCalculator.update``): at every training step the margin of each
example in the mini-batch is its assigned-class logit minus the largest other
logit (from the forward pass of training), and AUM is the mean of these
margins over the epochs.  Low or negative AUM flags hard or mislabelled
examples; we return minus AUM, averaged over seeds.  Shares the trainings of
:mod:`backend.scores._dynamics`.
"""

from __future__ import annotations

import numpy as np

from ._dynamics import probe_dynamics
from .base import ScoreContext, register_metric
from .el2n import COST


@register_metric(
    "aum",
    priority=13,
    needs_labels=True,
    default=False,
    cost=COST,
    range="(-inf, inf)",
    options=("seeds", "epochs", "batch", "lr", "momentum", "weight_decay"),
    description="area under the margin (Pleiss et al. 2020), negated: minus the mean over training "
    "epochs of (assigned logit - largest other logit) of linear probes, mean over "
    "--seeds. Higher = harder (mislabelled examples highest).",
)
def aum(ctx: ScoreContext) -> np.ndarray:
    """Minus the mean over seeds and epochs of the in-training margin; in (-inf, inf), > 0 = mostly misclassified."""
    return probe_dynamics(ctx).aum()
