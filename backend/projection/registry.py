"""The registry of 2-D map methods.  :class:`backend.projection.Projector2D` runs them."""

from __future__ import annotations

from typing import Any

from ..registry import Registry

MAP_METHODS: Registry = Registry("map method", packages=("backend.projection.methods",), option="--map")


def register_map_method(name: str, *, description: str, **info: Any) -> None:
    MAP_METHODS.register(name, name, description=description, **info)
