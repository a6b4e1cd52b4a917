"""Where examples come from.  :func:`resolve_source` turns a user spec into a Source.

Specs: ``demo``; ``torchvision:NAME`` (with ``data_root``); a folder; a
``.csv``/``.parquet`` manifest with a ``path`` column; a ``.npy`` or Parquet
file of embeddings (optionally with ``manifest=``).  A prefix (``folder:``,
``manifest:``, ``embeddings:``) forces the kind.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import CurateError
from .arrays import TORCHVISION_SETS, load_demo, load_torchvision
from .base import HOLDOUT_SPLITS, Source
from .embeddings import load_embeddings
from .folder import load_folder
from .images import BadImage, open_rgb
from .manifest import load_manifest

__all__ = ["HOLDOUT_SPLITS", "TORCHVISION_SETS", "BadImage", "Source", "open_rgb", "resolve_source"]


def resolve_source(spec: str, *, data_root=None, download: bool = False, manifest=None,
                   labels: str = "auto") -> Source:
    spec = str(spec).strip()
    if not spec:
        raise CurateError("empty --source: pass a folder, a manifest, torchvision:NAME, embeddings or demo")
    if spec == "demo":
        return load_demo(data_root, allow_download=True)
    kind, _, rest = spec.partition(":")
    if kind == "torchvision":
        return load_torchvision(rest, data_root, download=download)
    forced: str | None = kind if kind in ("folder", "manifest", "embeddings") and rest else None
    path = Path(rest) if forced else Path(spec)
    path = path.expanduser()
    if not path.exists():
        raise CurateError(f"source {spec!r} does not exist: pass an existing folder or file, "
                          "torchvision:NAME or demo")
    if forced == "folder" or (forced is None and path.is_dir()):
        return load_folder(path, labels=labels)
    if forced == "embeddings" or (forced is None and path.suffix.lower() == ".npy"):
        return load_embeddings(path, manifest)
    if forced == "manifest" or (forced is None and path.suffix.lower() in (".csv", ".parquet")):
        if forced is None and path.suffix.lower() == ".parquet":
            cols = _parquet_columns(path)
            if "embedding" in cols or ("path" not in cols and len(cols) > 2):
                return load_embeddings(path, manifest)
        return load_manifest(path)
    raise CurateError(f"cannot tell what {path.name} is: pass a folder, a .csv/.parquet manifest, "
                      "a .npy of embeddings, or prefix it with folder:/manifest:/embeddings:")


def _parquet_columns(path: Path) -> list[str]:
    try:
        import pyarrow.parquet as pq

        return list(pq.read_schema(path).names)
    except Exception as exc:  # noqa: BLE001 - pyarrow raises several kinds
        raise CurateError(f"cannot read {path.name} as Parquet ({type(exc).__name__}: {exc}): "
                          "pass a Parquet or CSV manifest, or a .npy of embeddings") from None
