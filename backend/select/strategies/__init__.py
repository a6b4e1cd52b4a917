"""Selection strategies, one module each, registered with :func:`backend.select.base.register_strategy`.

Scores are "higher = harder" for every metric; a strategy returns a priority
(lower = kept first) and, when its kept set is not a prefix of one order, a
``choose`` function.  Add a strategy by adding one module here.
"""
