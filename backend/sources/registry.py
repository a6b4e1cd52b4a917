"""The registry of source kinds: how ``--source SPEC`` becomes a :class:`Source`.

A kind registers a loader ``load(target, *, data_root, download, manifest, labels) -> Source``
and says how it is recognised:

``prefix``   the spec starts with ``"<prefix>:"`` (``torchvision:CIFAR10``, or ``folder:PATH`` to force a
             path kind); ``exact=True`` for a spec that is the name itself (``demo``)
``claims``   for path kinds: ``claims(path) -> bool`` recognises an existing file or folder;
             kinds are asked in priority order (lower first)
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..registry import Registry

SOURCE_KINDS: Registry = Registry("source kind", packages=("backend.sources",), option="--source")


def register_source(
    name: str,
    *,
    description: str,
    spec: str,
    exact: bool = False,
    path_kind: bool = False,
    claims: Callable[[Path], bool] | None = None,
    priority: int = 50,
    **info: Any,
):
    """Decorator: register ``load(target, **options) -> Source`` as the source kind ``name``.

    ``spec`` is how a user writes it (shown in ``--help``).  A path kind gets the path as its target and
    may be forced with ``name:PATH``; another kind gets the text after ``name:`` (or nothing when exact).
    """
    return SOURCE_KINDS.register(
        name,
        description=description,
        spec=spec,
        exact=exact,
        path_kind=path_kind,
        claims=claims,
        priority=priority,
        **info,
    )
