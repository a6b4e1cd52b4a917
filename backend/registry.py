"""One small registry type for every kind of plug-in (metrics, encoders, strategies, sources, maps).

A plug-in is one object (a function or a class) in its own module plus one
registration::

    from backend.scores.base import register_metric

    @register_metric("my_score", needs_labels=False, cost="free", description="...")
    def my_score(ctx): ...

A registry knows the package its plug-ins live in and imports every module of
it the first time it is asked for its names, so a new file is found without
editing any list (the habit of timm's ``@register_model``).  Everything that
offers a choice (the CLI's ``choices`` and ``--help``, the app's menus, the
scaling grid) asks the registry; nothing keeps a copy of a list.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from .errors import CurateError

T = TypeVar("T")


@dataclass(frozen=True)
class Entry(Generic[T]):
    """One registered plug-in: its name, the object and what its registration says about it."""

    name: str
    obj: T
    info: dict[str, Any] = field(default_factory=dict)
    order: int = 0

    def __getattr__(self, item: str) -> Any:  # entry.description, entry.needs_labels, ...
        try:
            return self.info[item]
        except KeyError:
            raise AttributeError(item) from None


class Registry(Generic[T]):
    """Plug-ins of one kind, found by name.

    ``kind`` names the kind in messages ("metric", "encoder", ...);
    ``packages`` are imported (every module in them) before the first lookup.
    """

    def __init__(self, kind: str, *, packages: tuple[str, ...] = (), option: str | None = None):
        self.kind = kind
        self.packages = packages
        self.option = option or f"--{kind}"
        self._entries: dict[str, Entry[T]] = {}
        self._loaded = False

    # -- registration -----------------------------------------------------
    def register(self, name: str, obj: T | None = None, **info: Any) -> Any:
        """Register ``obj`` under ``name`` (or use as a decorator)."""

        def add(o: T) -> T:
            if name in self._entries and self._entries[name].obj is not o:
                existing = self._entries[name].obj
                # re-importing the same module (e.g. reload in tests) re-registers the same definition
                if getattr(existing, "__qualname__", None) != getattr(o, "__qualname__", None) or getattr(
                    existing, "__module__", None
                ) != getattr(o, "__module__", None):
                    raise ValueError(f"{self.kind} {name!r} is registered twice")
            order = self._entries[name].order if name in self._entries else len(self._entries)
            self._entries[name] = Entry(name, o, dict(info), order)
            return o

        return add if obj is None else add(obj)

    def unregister(self, name: str) -> None:
        """Remove ``name`` (tests that register a toy plug-in clean up with this)."""
        self._entries.pop(name, None)

    # -- lookup -----------------------------------------------------------
    def _load(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        for pkg_name in self.packages:
            pkg = importlib.import_module(pkg_name)
            for mod in pkgutil.iter_modules(pkg.__path__):
                if not mod.name.startswith("_"):
                    importlib.import_module(f"{pkg_name}.{mod.name}")

    def names(self, **where: Any) -> list[str]:
        """Registered names in registration order; ``where`` filters on the registration info."""
        self._load()
        out = []
        # ``priority`` (lower first) puts the flagship plug-in first in menus; then registration order
        for e in sorted(self._entries.values(), key=lambda e: (e.info.get("priority", 50), e.order)):
            if all(e.info.get(k) == v for k, v in where.items()):
                out.append(e.name)
        return out

    def entries(self, **where: Any) -> list[Entry[T]]:
        return [self._entries[n] for n in self.names(**where)]

    def entry(self, name: str) -> Entry[T]:
        self._load()
        try:
            return self._entries[name]
        except KeyError:
            raise CurateError(
                f"unknown {self.kind} {name!r}: use one of {', '.join(self.names())} ({self.option})"
            ) from None

    def get(self, name: str) -> T:
        return self.entry(name).obj

    def __contains__(self, name: object) -> bool:
        self._load()
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self.names())

    def help(self, default: str | None = None, *, describe: Callable[[Entry[T]], str] | None = None) -> str:
        """``--help`` text: every name with its one-line description."""
        parts = []
        for e in self.entries():
            text = describe(e) if describe else e.info.get("description", "")
            parts.append(f"{e.name}: {text}" if text else e.name)
        out = "; ".join(parts)
        return out + (f" (default: {default})" if default else "")
