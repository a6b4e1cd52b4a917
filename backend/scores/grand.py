"""GraNd (Paul et al. 2021): the per-example gradient norm of the loss near initialisation, averaged over seeds.

Paul et al. (``mansheej/data_diet``, ``get_grad_norm_fn``) take the norm of
the per-example gradient of the cross-entropy with respect to all
parameters.  For a linear probe (logits ``W x``, the bias a column of ``x``)
that gradient is ``(softmax - onehot(y)) x^T``, so its norm has a closed form:
``||softmax - onehot(y)|| * ||x||`` (no per-example backward pass).  Read at
the seed's random initialisation (epoch 0, uniform +-1/sqrt(D) like
torch.nn.Linear) by default, as Paul et al.; ``grand_epoch`` reads it later.
Shares the trainings of :mod:`backend.scores._dynamics`.
"""

from __future__ import annotations

import numpy as np

from ._dynamics import dynamics_options, probe_dynamics
from .base import ScoreContext, register_metric
from .el2n import COST


@register_metric(
    "grand",
    priority=11,
    needs_labels=True,
    default=False,
    cost=COST,
    range="[0, inf)",
    options=("seeds", "epochs", "grand_epoch", "batch", "lr", "momentum", "weight_decay"),
    description="GraNd (Paul et al. 2021): per-example gradient norm of the loss of linear probes "
    "at initialisation (closed form ||softmax - onehot|| * ||x||), mean over --seeds. "
    "Higher = harder.",
)
def grand(ctx: ScoreContext) -> np.ndarray:
    """Mean over seeds of ||d loss / d W|| = ||softmax - onehot(y)|| * ||x||; in [0, inf)."""
    return probe_dynamics(ctx).grand(dynamics_options(ctx)["grand_epoch"])
