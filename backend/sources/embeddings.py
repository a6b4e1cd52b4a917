"""Precomputed embeddings: ``.npy`` (N x D) or Parquet, with an optional manifest."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd

from ..arrays import release_pages
from ..errors import CurateError
from .base import Source, make_index
from .confine import check_allowed
from .manifest import read_table, short
from .registry import register_source

META_COLUMNS = ("example_id", "path", "label", "split")


def _vector(v) -> np.ndarray:
    arr = np.asarray(v)
    if np.iscomplexobj(arr):
        raise ValueError("complex numbers: embeddings must be real")
    return arr.astype(np.float32)


def _rows_per_chunk(x: np.ndarray, budget: int = 64 << 20) -> int:
    """Rows per chunk so that one chunk stays near ``budget`` bytes, whatever the dimension."""
    row_bytes = max(1, int(x.shape[1]) * max(4, x.dtype.itemsize))
    return max(1, min(65536, budget // row_bytes))


def _scan_rows(x: np.ndarray, name: str) -> int:
    """Refuse NaN/inf rows; return the number of all-zero rows.  Streams the (memory-mapped) array."""
    bad_rows, zero_rows = [], 0
    step = _rows_per_chunk(x)
    for start in range(0, len(x), step):
        chunk = np.asarray(x[start : start + step])
        ok = np.isfinite(chunk).all(axis=1)
        if not ok.all():
            bad_rows.extend((start + np.flatnonzero(~ok)).tolist())
        zero_rows += int((~chunk.any(axis=1)).sum())
        release_pages(x, start, start + len(chunk))  # a full scan must not keep the whole file resident
    if bad_rows:
        raise CurateError(
            f"{name} has NaN or inf in {len(bad_rows)} row(s) (first: row {bad_rows[0]}): "
            "fix or drop those rows and run again"
        )
    return zero_rows


def _looks_like_embeddings(path: Path) -> bool:
    if path.suffix.lower() == ".npy":
        return True
    if path.suffix.lower() != ".parquet":
        return False
    cols = parquet_columns(path)
    return "embedding" in cols or ("path" not in cols and len(cols) > 2)


def parquet_columns(path: Path) -> list[str]:
    """Column names of a Parquet file, or a one-line CurateError."""
    try:
        import pyarrow.parquet as pq

        return list(pq.read_schema(path).names)
    except Exception as exc:  # noqa: BLE001 - pyarrow raises several kinds
        raise CurateError(
            f"cannot read {path.name} as Parquet ({short(exc)}): "
            "pass a Parquet or CSV manifest, or a .npy of embeddings"
        ) from None


@register_source(
    "embeddings",
    spec="emb.npy | emb.parquet",
    path_kind=True,
    priority=20,
    claims=_looks_like_embeddings,
    description="precomputed embeddings (N x D), with --manifest for ids, paths, labels",
)
def _embeddings_kind(target, *, manifest=None, **_):
    return load_embeddings(target, manifest)


def load_embeddings(path: str | Path, manifest: str | Path | None = None) -> Source:
    path = Path(path).expanduser().resolve()
    if not path.exists():
        raise CurateError(f"embeddings file {path} does not exist: check the path")
    check_allowed(path, "embeddings file")
    if manifest is not None:
        check_allowed(Path(manifest).expanduser(), "manifest")
    meta = None
    if path.suffix == ".npy":
        try:
            x = np.load(path, mmap_mode="r")
        except Exception as exc:  # noqa: BLE001
            raise CurateError(
                f"cannot read {path.name} as a .npy array ({short(exc)}): save it with numpy.save"
            ) from None
    elif path.suffix == ".parquet":
        try:
            df = pd.read_parquet(path)
        except Exception as exc:  # noqa: BLE001 - pyarrow raises several kinds
            raise CurateError(
                f"cannot read {path.name} as Parquet ({type(exc).__name__}: {short(exc)}): "
                "save the embeddings with DataFrame.to_parquet or numpy.save"
            ) from None
        if "embedding" in df.columns:
            col = df["embedding"]
            first = next((v for v in col if v is not None), None)
            if isinstance(first, (str, bytes)):
                raise CurateError(
                    f"the 'embedding' column of {path.name} holds text (e.g. {short(first, 40)!r}), "
                    "not lists of numbers: store each row as a list/array of D floats"
                )
            try:
                x = np.stack([_vector(v) for v in col])
            except (ValueError, TypeError) as exc:
                raise CurateError(
                    f"the 'embedding' column of {path.name} cannot form an N x D array "
                    f"({short(exc, 80)}): every row needs a list of D numbers"
                ) from None
            meta = df.drop(columns=["embedding"])
        else:
            # one numeric column per dimension; id/path/label/split columns are metadata even when numeric
            other = [c for c in df.columns if c in META_COLUMNS or not pd.api.types.is_numeric_dtype(df[c])]
            x = df.drop(columns=other).to_numpy(np.float32)
            meta = df[other] if other else None
    else:
        raise CurateError(f"embeddings must be .npy or .parquet, got {path.name}")
    if x.ndim != 2 or x.shape[0] < 1 or x.shape[1] < 2:
        raise CurateError(
            f"{path.name} has shape {tuple(x.shape)}: embeddings must be a 2-D array "
            "N x D with N >= 1 rows and D >= 2 columns"
        )
    if np.issubdtype(x.dtype, np.complexfloating):
        raise CurateError(
            f"{path.name} holds complex numbers ({x.dtype}): embeddings must be real; pass "
            "np.abs(x), x.real or np.concatenate([x.real, x.imag], axis=1) as you intend"
        )
    if not np.issubdtype(x.dtype, np.number) or x.dtype == np.bool_:
        raise CurateError(f"{path.name} holds {x.dtype} values: embeddings must be numbers")
    zero_rows = _scan_rows(x, path.name)
    if manifest is not None:
        meta = read_table(Path(manifest).expanduser().resolve())
    n = x.shape[0]
    if meta is not None and len(meta) != n:
        raise CurateError(f"the manifest has {len(meta)} rows but {path.name} has {n}: they must match row for row")
    if meta is None:
        meta = pd.DataFrame(index=range(n))
    ids = (
        meta["example_id"].astype(str)
        if "example_id" in meta
        else (meta["path"].astype(str) if "path" in meta else pd.Series([str(i) for i in range(n)]))
    )
    if ids.duplicated().any():
        dup = ids[ids.duplicated()].iloc[0]
        raise CurateError(f"example ids repeat in the manifest (e.g. {dup!r}): make them unique")
    paths = meta["path"].astype(str) if "path" in meta else None
    if paths is not None:  # relative paths resolve against the folder of the file that lists them
        base = (Path(manifest).expanduser().resolve() if manifest is not None else path).parent
        paths = [p if Path(p).is_absolute() else str(base / p) for p in paths]
    labels = meta.get("label")
    split = meta.get("split")
    index = make_index(ids, paths, labels, split)
    notes = list(index.attrs.get("warnings", []))
    if zero_rows:
        notes.append(
            f"{path.name}: {zero_rows} of {n} row(s) are all zero: a zero vector has no direction, so "
            "its cosine scores are all 0 and it lands in an arbitrary cluster; drop those rows or "
            "fix the embedding"
        )
    h = hashlib.sha256()
    st = path.stat()
    h.update(f"{path}\0{st.st_size}\0{st.st_mtime_ns}".encode())
    h.update(pd.util.hash_pandas_object(index.astype(str), index=False).values.tobytes())
    classes = sorted(index["label"].dropna().unique().tolist()) or None
    return Source(
        spec=str(path),
        kind="embeddings",
        index=index,
        fingerprint=h.hexdigest()[:16],
        description=f"precomputed embeddings {path} ({n} x {x.shape[1]})",
        classes=classes,
        embeddings=x,
        image_size="n/a",
        warnings=notes,
    )
