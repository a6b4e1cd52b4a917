"""Where examples come from.  :func:`resolve_source` turns a user spec into a Source.

Specs: ``demo``; ``torchvision:NAME`` (with ``data_root``); a folder; a
``.csv``/``.parquet`` manifest with a ``path`` column; a ``.npy`` or Parquet
file of embeddings (optionally with ``manifest=``).  A prefix (``folder:``,
``manifest:``, ``embeddings:``) forces the kind.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import CurateError
from .arrays import TORCHVISION_SETS
from .base import HOLDOUT_SPLITS, Source
from .images import BadImage, open_rgb
from .registry import SOURCE_KINDS, register_source

# the kinds register themselves when their modules are imported (SOURCE_KINDS.entries() imports them all)

__all__ = [
    "HOLDOUT_SPLITS",
    "SOURCE_KINDS",
    "TORCHVISION_SETS",
    "BadImage",
    "Source",
    "open_rgb",
    "register_source",
    "resolve_source",
]


def resolve_source(spec: str, *, data_root=None, download: bool = False, manifest=None, labels: str = "auto") -> Source:
    """The :class:`Source` a user's ``--source`` means (see :data:`SOURCE_KINDS`)."""
    spec = str(spec).strip()
    if not spec:
        raise CurateError("empty --source: pass a folder, a manifest, torchvision:NAME, embeddings or demo")
    options = {"data_root": data_root, "download": download, "manifest": manifest, "labels": labels}
    kinds = SOURCE_KINDS.entries()
    for e in kinds:
        if e.info["exact"] and spec == e.name:
            return e.obj(None, **options)
    prefix, _, rest = spec.partition(":")
    forced = None
    for e in kinds:
        if e.name == prefix and rest and not e.info["exact"]:
            if not e.info["path_kind"]:
                return e.obj(rest, **options)
            forced = e
    path = Path(rest if forced else spec).expanduser()
    if not path.exists():
        raise CurateError(f"source {spec!r} does not exist: pass an existing folder or file, torchvision:NAME or demo")
    if forced is not None:
        return forced.obj(path, **options)
    for e in sorted((e for e in kinds if e.info["path_kind"]), key=lambda e: e.info["priority"]):
        if e.info["claims"] is not None and e.info["claims"](path):
            return e.obj(path, **options)
    forcing = "/".join(f"{e.name}:" for e in kinds if e.info["path_kind"])
    raise CurateError(
        f"cannot tell what {path.name} is: pass a folder, a .csv/.parquet manifest, "
        f"a .npy of embeddings, or prefix it with {forcing}"
    )
