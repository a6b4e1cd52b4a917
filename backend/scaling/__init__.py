"""Scaling curves: what error to expect after pruning, measured and in theory.

Empirical (a labelled run; :mod:`backend.scaling.empirical`)::

    from backend.scaling import estimate_scaling, load_scaling
    res = estimate_scaling(run, metric="ssl_prototype")   # cached under <workdir>/scaling/<key>/
    res.table()                      # mean held-out error, strategy x keep fraction, full size
    res.recommendation["sentence"]   # one plain sentence

Power laws and frontiers: :mod:`backend.scaling.powerlaw`.  Theory of the
teacher-student perceptron (method.md section 3): :mod:`backend.scaling.theory`
and :mod:`backend.scaling.simulate`, imported on first use.
"""

from __future__ import annotations

import importlib

from .empirical import (
    DEFAULT_FRACTIONS,
    DEFAULT_INITIAL_SIZES,
    ScalingResult,
    aggregate,
    analyse,
    estimate_scaling,
    load_scaling,
    recommend,
)
from .powerlaw import beats_powerlaw, fit_powerlaw, lower_envelope, predict

_LAZY_MODULES = ("theory", "simulate")
_THEORY_NAMES = ("solve", "error_curve", "pareto_frontier", "crossover_alpha_tot", "min_useful_fraction")

__all__ = [
    "estimate_scaling",
    "load_scaling",
    "ScalingResult",
    "DEFAULT_FRACTIONS",
    "DEFAULT_INITIAL_SIZES",
    "analyse",
    "aggregate",
    "recommend",
    "fit_powerlaw",
    "predict",
    "lower_envelope",
    "beats_powerlaw",
    *_LAZY_MODULES,
    *_THEORY_NAMES,
]


def __getattr__(name: str):
    """``backend.scaling.theory`` / ``.simulate`` and the theory functions, imported when first used."""
    if name in _LAZY_MODULES:
        return importlib.import_module(f"{__name__}.{name}")
    if name in _THEORY_NAMES:
        theory = importlib.import_module(f"{__name__}.theory")
        try:
            return getattr(theory, name)
        except AttributeError:
            raise AttributeError(f"backend.scaling.theory has no {name!r}") from None
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
