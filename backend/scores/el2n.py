"""EL2N (Paul et al. 2021): the error L2 norm of linear probes early in training, averaged over seeds.

Follows the reference implementation of Paul et al. (``mansheej/data_diet``,
``get_lord_error_fn``): ``||softmax(f(x)) - onehot(y)||_2`` with the model of
one epoch, evaluated on the training examples themselves, averaged over
independent trainings.  Here f is a linear probe on the frozen embeddings
trained by mini-batch SGD on the whole pool (:mod:`backend.scores._dynamics`;
one set of trainings serves el2n, grand, forgetting, aum and margin).
Options: ``seeds`` (default 5), ``epoch`` (default 2 of 20: early, as Paul et
al. read it at epoch 20 of 200).
"""

from __future__ import annotations

import numpy as np

from ._dynamics import dynamics_options, probe_dynamics
from .base import ScoreContext, register_metric

COST = "linear-probe trainings on the embeddings (5 seeds x 20 epochs; shared with grand, forgetting, aum, margin)"


@register_metric(
    "el2n",
    priority=10,
    needs_labels=True,
    default=False,
    cost=COST,
    range="[0, sqrt(2)]",
    options=("seeds", "epochs", "epoch", "batch", "lr", "momentum", "weight_decay"),
    description="EL2N (Paul et al. 2021): ||softmax - onehot(label)|| of linear probes early in "
    "training (--epoch, default 2), mean over --seeds. Higher = harder.",
)
def el2n(ctx: ScoreContext) -> np.ndarray:
    """Mean over seeds of ||softmax - onehot(y)||_2 at epoch ``ctx.options['epoch']``; in [0, sqrt(2)]."""
    return probe_dynamics(ctx).el2n(dynamics_options(ctx)["epoch"])
