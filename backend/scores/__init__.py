"""Difficulty metrics, one module each, registered by name.  Higher = harder, for every metric.

``METRICS`` is the registry (:mod:`backend.scores.base`); ``METRICS.names()``
lists every metric, ``METRICS.entry(name).info`` says whether it needs labels,
whether it is recomputed inside a subset, what it costs and its range.  Add a
metric by adding one module here with an ``@register_metric`` function.
"""

from .base import METRICS, ScoreContext, available_metrics, compute_metric, register_metric
from .random import random_score
from .ssl_prototype import ssl_prototype_from_sim
from .supervised_prototype import class_prototypes, supervised_prototype_scores

# the historical function names (the pipeline and tests call them directly)
ssl_prototype = ssl_prototype_from_sim
supervised_prototype = supervised_prototype_scores

__all__ = [
    "METRICS",
    "ScoreContext",
    "available_metrics",
    "compute_metric",
    "register_metric",
    "ssl_prototype",
    "supervised_prototype",
    "random_score",
    "class_prototypes",
]
