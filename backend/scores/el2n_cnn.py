"""EL2N of a small CNN trained on the pixels (the paper's setting): :mod:`backend.scores.el2n` on a network
trained from scratch instead of a probe on frozen embeddings.

``||softmax - onehot(y)||_2`` of every training image after epoch ``epoch``
(default 2 of 15), mean over seeds, as Paul et al. (``mansheej/data_diet``).
Shares the trainings of :mod:`backend.scores._cnn_dynamics` with forgetting_cnn and aum_cnn.
"""

from __future__ import annotations

import numpy as np

from ._cnn_dynamics import CNN_OPTIONS, COST, cnn_dynamics, cnn_options
from .base import ScoreContext, register_metric


@register_metric(
    "el2n_cnn",
    priority=20,
    needs_labels=True,
    default=False,
    needs_images=True,
    cost=COST,
    range="[0, sqrt(2)]",
    options=CNN_OPTIONS,
    description="EL2N of a small CNN trained on the pixels: ||softmax - onehot(label)|| after "
    "--epoch epochs (default 2), mean over --seeds. Higher = harder.",
)
def el2n_cnn(ctx: ScoreContext) -> np.ndarray:
    """Mean over seeds of ||softmax - onehot(y)||_2 after epoch ``epoch``; in [0, sqrt(2)]."""
    return cnn_dynamics(ctx).el2n(cnn_options(ctx)["epoch"])
