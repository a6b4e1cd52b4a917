"""Area under the margin of a small CNN trained on the pixels (Pleiss et al. 2020's setting), negated.

Minus the mean over epochs of (assigned logit - largest other logit) of every
training image, read after each epoch in evaluation mode (Pleiss et al.'s
``AUMCalculator`` reads the training forward pass), mean over seeds.  Shares
the trainings of :mod:`backend.scores._cnn_dynamics`.
"""

from __future__ import annotations

import numpy as np

from ._cnn_dynamics import CNN_OPTIONS, COST, cnn_dynamics
from .base import ScoreContext, register_metric


@register_metric(
    "aum_cnn",
    priority=22,
    needs_labels=True,
    default=False,
    needs_images=True,
    cost=COST,
    range="(-inf, inf)",
    options=CNN_OPTIONS,
    description="area under the margin of a small CNN trained on the pixels, negated: minus the "
    "mean over epochs of (assigned logit - largest other logit), mean over --seeds. "
    "Higher = harder (mislabelled examples highest).",
)
def aum_cnn(ctx: ScoreContext) -> np.ndarray:
    """Minus the mean over seeds and epochs of the end-of-epoch margin; in (-inf, inf)."""
    return cnn_dynamics(ctx).aum()
