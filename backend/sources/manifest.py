"""CSV / Parquet manifests with a ``path`` column and optional label, split, example_id."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import CurateError
from .base import Source, make_index
from .confine import OUTSIDE, allowed_roots, check_allowed, is_allowed
from .registry import register_source


def read_table(path: Path) -> pd.DataFrame:
    try:
        if path.suffix.lower() == ".parquet":
            return pd.read_parquet(path)
        return pd.read_csv(path)
    except FileNotFoundError:
        raise CurateError(f"manifest {path} does not exist: check the path") from None
    except Exception as exc:  # noqa: BLE001 - pandas/pyarrow raise many kinds
        raise CurateError(
            f"cannot read manifest {path} ({type(exc).__name__}: {short(exc)}): pass a CSV or Parquet file"
        ) from None


def short(exc: BaseException | str | bytes, limit: int = 160) -> str:
    """An exception's message (or any text) cut to one short line (pyarrow quotes whole rows of data)."""
    text = " ".join(str(exc).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


@register_source(
    "manifest",
    spec="manifest.csv | manifest.parquet",
    path_kind=True,
    priority=30,
    claims=lambda p: p.suffix.lower() in (".csv", ".parquet"),
    description="a table with a path column (relative paths resolve against its folder), optional "
    "label, split, example_id",
)
def _manifest_kind(target, **_):
    return load_manifest(target)


def _resolve_all(base: Path, rel: list[str]) -> list[str]:
    """Each relative path joined to ``base`` with links followed (``Path.resolve``), absolute ones kept as given.

    ``realpath`` checks every component of every path (one lstat each); here each folder is resolved
    once and only the file name is looked at per row (one lstat, to follow a linked file), which is
    the same answer at a fraction of the cost for a million files in a thousand folders.
    """
    folders: dict[str, str] = {}
    out = []
    for p in rel:
        if os.path.isabs(p):
            out.append(p)
            continue
        folder, name = os.path.split(os.path.join(base, p))
        if name in ("", ".", ".."):
            out.append(os.path.realpath(os.path.join(base, p)))
            continue
        real = folders.get(folder)
        if real is None:
            real = folders[folder] = os.path.realpath(folder)
        full = os.path.join(real, name)
        out.append(os.path.realpath(full) if os.path.islink(full) else full)
    return out


def load_manifest(path: str | Path) -> Source:
    path = Path(path).expanduser().resolve()
    check_allowed(path, "manifest")
    df = read_table(path)
    if "path" not in df.columns:
        raise CurateError(
            f"manifest {path.name} has no 'path' column (columns: "
            f"{', '.join(map(str, df.columns)) or 'none'}): add one with the image paths"
        )
    if len(df) == 0:
        raise CurateError(f"manifest {path.name} has no rows: add one row per image")
    base = path.parent
    rel = df["path"].astype(str)
    abs_paths = _resolve_all(base, rel.tolist())
    ids = df["example_id"].astype(str) if "example_id" in df.columns else rel
    if ids.duplicated().any():
        dup = ids[ids.duplicated()].iloc[0]
        raise CurateError(f"manifest {path.name} lists {dup!r} twice: make paths/example_ids unique")
    labels = df["label"] if "label" in df.columns else None
    splits = df["split"] if "split" in df.columns else None
    index = make_index(ids, abs_paths, labels, splits)
    notes = list(index.attrs.get("warnings", []))
    same = pd.Series([os.path.normpath(p) for p in abs_paths]).duplicated()
    if same.any():  # every copy gets the same embedding: cluster and scores of those rows say nothing
        notes.append(
            f"manifest {path.name}: {int(same.sum())} row(s) point to a file another row already lists "
            f"(e.g. {rel.iat[int(np.flatnonzero(same.to_numpy())[0])]}): identical images get identical "
            "embeddings, so their scores are meaningless (every prototype score 0 if they dominate); "
            "list each image once"
        )

    roots = allowed_roots()
    h = hashlib.sha256()
    keep, skipped = [], []
    # plain lists: a pandas .iat per row and column costs ~100 us, a minute per million rows
    id_list, label_list, split_list = ids.tolist(), index["label"].tolist(), index["split"].tolist()
    for i, p in enumerate(abs_paths):
        if roots is not None and not is_allowed(p, roots):  # checked before stat: no existence oracle
            skipped.append((id_list[i], OUTSIDE))
            continue
        try:
            st = os.stat(p)
        except OSError:
            skipped.append((id_list[i], "file not found"))
            continue
        if st.st_size == 0:
            skipped.append((id_list[i], "empty file (0 bytes)"))
            continue
        keep.append(i)
        h.update(f"{id_list[i]}\0{p}\0{label_list[i]}\0{split_list[i]}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    if not keep:
        if skipped and all(reason == OUTSIDE for _, reason in skipped):
            raise CurateError(
                f"every file in manifest {path.name} is outside the folders this app may read: "
                "restart with `curate app --allow-dir FOLDER`"
            )
        raise CurateError(
            f"none of the {len(df)} files in manifest {path.name} exist: "
            "relative paths resolve against the manifest's folder"
        )
    index = index.iloc[keep].reset_index(drop=True)
    classes = sorted(index["label"].dropna().unique().tolist()) or None
    return Source(
        spec=str(path),
        kind="manifest",
        index=index,
        fingerprint=h.hexdigest()[:16],
        description=f"manifest {path}",
        classes=classes,
        skipped=skipped,
        warnings=notes,
    )
