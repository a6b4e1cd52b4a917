"""Forgetting events of a small CNN trained on the pixels (Toneva et al. 2019's setting).

Correct-to-incorrect transitions between consecutive epochs of the
evaluation-mode outputs of every training image (Toneva et al. record at
each mini-batch presentation; here the outputs come after each epoch); never
learned = as many as the epochs.  Mean over seeds.  Shares the trainings of
:mod:`backend.scores._cnn_dynamics`.
"""

from __future__ import annotations

import numpy as np

from ._cnn_dynamics import CNN_OPTIONS, COST, cnn_dynamics
from .base import ScoreContext, register_metric


@register_metric(
    "forgetting_cnn",
    priority=21,
    needs_labels=True,
    default=False,
    needs_images=True,
    cost=COST,
    range="[0, epochs]",
    options=CNN_OPTIONS,
    description="forgetting events of a small CNN trained on the pixels: correct-to-incorrect "
    "transitions between epochs, never learned = most forgotten, mean over --seeds. "
    "Higher = harder.",
)
def forgetting_cnn(ctx: ScoreContext) -> np.ndarray:
    """Mean over seeds of the forgetting events (never learned: the number of epochs); in [0, epochs]."""
    return cnn_dynamics(ctx).forgetting()
