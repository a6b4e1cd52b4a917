"""Balances: how the keep budget is shared between classes or clusters, one module each.

Registered with :func:`backend.select.base.register_balance`; each returns a
:class:`~backend.select.base.BalancePlan` (exact quotas, or minimum floors
with the rest of the budget going by global order).
"""
