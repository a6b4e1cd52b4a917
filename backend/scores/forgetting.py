"""Forgetting events (Toneva et al. 2019) of linear probes trained by mini-batch SGD, averaged over seeds.

Follows the reference implementation (``mtoneva/example_forgetting``:
``run_mnist.py`` records the accuracy of every example at each presentation,
from the mini-batch's forward pass before the update;
``order_examples_by_forgetting.py`` counts transitions from correct to
incorrect between consecutive presentations and gives an example that was
never classified correctly the number of presentations, "most forgotten").
Toneva et al. sum over runs; we average (the same order, a range that does
not grow with the seeds).  Shares the trainings of
:mod:`backend.scores._dynamics` (one presentation per epoch).
"""

from __future__ import annotations

import numpy as np

from ._dynamics import probe_dynamics
from .base import ScoreContext, register_metric
from .el2n import COST


@register_metric(
    "forgetting",
    priority=12,
    needs_labels=True,
    default=False,
    cost=COST,
    range="[0, epochs]",
    options=("seeds", "epochs", "batch", "lr", "momentum", "weight_decay"),
    description="forgetting events (Toneva et al. 2019): correct-to-incorrect transitions of linear "
    "probes over SGD epochs, never-learned examples count as most forgotten, mean over "
    "--seeds. Higher = harder.",
)
def forgetting(ctx: ScoreContext) -> np.ndarray:
    """Mean over seeds of the forgetting events (never learned: the number of epochs); in [0, epochs]."""
    return probe_dynamics(ctx).forgetting()
