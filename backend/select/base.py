"""What a selection strategy and a balance are, and the registries that find them by name.

A **strategy** decides which examples to keep inside a set of candidates.  Most
strategies are *prefix* strategies: they give every example a priority (lower
= kept first) and keep the first ``n`` (``hard``, ``easy``, ``random``,
``dedup+hard``).  One module each in :mod:`backend.select.strategies`::

    @register_strategy("hard", description="...", needs_metric=True)
    def hard(inp: StrategyInput) -> np.ndarray:      # priority, lower = kept first
        return -inp.scores

A strategy whose kept set at ``n`` is not a prefix of one order (``ccs``)
also registers ``choose=fn(inp, positions, n) -> kept positions``; its
priority is then only used for tie-breaking, coverage floors and the
"removed at the margin" display.

A **balance** says how the budget is shared between groups (classes or
clusters), one module each in :mod:`backend.select.balances`::

    @register_balance("class", group="label", description="...")
    def same_share(sizes, n_keep, options) -> BalancePlan: ...

``BalancePlan.quota`` (exact counts per group, summing to ``n_keep``) or
``BalancePlan.floor`` (minimum counts per group; the rest of the budget goes
by the strategy over all groups at once).

Options a plug-in reads (``ccs_beta``, ``floor_share``, ...) are declared in
its registration (``options={"ccs_beta": None}``: name -> default), so the
CLI, the app and :class:`backend.select.Ranking` can check and show them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..registry import Registry

STRATEGIES: Registry = Registry("strategy", packages=("backend.select.strategies",), option="--strategy")
BALANCES: Registry = Registry("balance", packages=("backend.select.balances",), option="--balance")


@dataclass
class StrategyInput:
    """What a strategy may read: the run's table, the metric's scores (higher = harder), ids, seed, options.

    ``scores`` is None for strategies that need no metric.  ``run`` is the
    :class:`backend.Run` when the caller has one (dedup strategies need its
    embeddings), else None.
    """

    table: pd.DataFrame
    scores: np.ndarray | None
    ids: np.ndarray
    seed: int = 0
    options: dict[str, Any] = field(default_factory=dict)
    run: Any = None
    # filled by Ranking: position of every example in the strategy's priority order (0 = first)
    priority_rank: np.ndarray | None = None
    # a strategy may leave notes for the manifest (e.g. how many duplicates the dedup step removed)
    report: dict[str, Any] = field(default_factory=dict)
    # work a strategy can reuse between calls with the same candidates (orders that do not depend on n)
    cache: dict[Any, Any] = field(default_factory=dict)


@dataclass
class BalancePlan:
    """How a budget is shared between groups: exact ``quota`` per group, or a minimum ``floor`` per group."""

    quota: np.ndarray | None = None
    floor: np.ndarray | None = None


def register_strategy(
    name: str,
    *,
    description: str,
    needs_metric: bool = True,
    choose: Callable | None = None,
    options: dict[str, Any] | None = None,
    priority: int = 50,
    **extra: Any,
):
    """Decorator: register ``fn(inp: StrategyInput) -> priority`` (lower = kept first) as strategy ``name``.

    ``choose`` (optional) makes it a non-prefix strategy: ``choose(inp,
    positions, n) -> positions`` picks ``n`` of the candidate ``positions``.
    """
    return STRATEGIES.register(
        name,
        description=description,
        needs_metric=needs_metric,
        choose=choose,
        prefix=choose is None,
        options=dict(options or {}),
        priority=priority,
        **extra,
    )


def register_balance(
    name: str,
    *,
    description: str,
    group: str | None,
    options: dict[str, Any] | None = None,
    priority: int = 50,
    **extra: Any,
):
    """Decorator: register ``fn(sizes, n_keep, options) -> BalancePlan`` as balance ``name``.

    ``group`` is the table column the groups come from (``"label"``,
    ``"cluster"``) or None (one group: no balance).
    """
    return BALANCES.register(
        name, description=description, group=group, options=dict(options or {}), priority=priority, **extra
    )


def proportional_quotas(sizes: np.ndarray, n_keep: int) -> np.ndarray:
    """Largest-remainder apportionment of ``n_keep`` over groups proportional to ``sizes`` (exact total).

    Ties in the remainders go to the lower group index, so the result is deterministic.
    """
    sizes = np.asarray(sizes, np.int64)
    total = int(sizes.sum())
    if total == 0:
        return np.zeros_like(sizes)
    exact = sizes * (n_keep / total)
    q = np.minimum(np.floor(exact).astype(np.int64), sizes)
    short = int(n_keep - q.sum())
    if short > 0:
        rem = exact - q
        rem[q >= sizes] = -1
        order = np.lexsort((np.arange(len(sizes)), -rem))
        q[order[:short]] += 1
    return q
