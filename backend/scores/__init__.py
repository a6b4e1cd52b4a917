"""Difficulty metrics, registered by name.  Higher = harder, for every metric.

=====================  =====================================================  ======  =========
name                   definition                                             labels  range
=====================  =====================================================  ======  =========
ssl_prototype          1 - cosine similarity to the nearest k-means centroid  no      [0, 2]
supervised_prototype   1 - cosine similarity to the own class's prototype     yes     [0, 2]
random                 seeded uniform score (the baseline)                    no      [0, 1)
=====================  =====================================================  ======  =========
"""

from .metrics import METRICS, class_prototypes, random_score, ssl_prototype, supervised_prototype

__all__ = ["METRICS", "ssl_prototype", "supervised_prototype", "random_score", "class_prototypes"]
