"""Scores from elsewhere (a CSV or Parquet file) joined onto a run as a score column.

Memorization and influence scores (Feldman & Zhang 2020) cost thousands of
trainings, and the paper's released ImageNet scores exist as files: they
come in this way.  ``import_scores(run, FILE, column=C, higher=..., key=...)``:

``column``  the file's column with the scores (numbers; anything else is reported as unreadable)
``higher``  what a higher value in the file means: ``"harder"`` (stored as is) or ``"keep"``
            (the paper's released scores: higher = keep = more prototypical; stored negated, so the
            column is higher = harder like every score here and its range is ``[-max, -min]``)
``key``     how a file row finds its example: ``example_id`` (the file's ``example_id`` column),
            ``path`` (its ``path`` column; relative paths resolve against the file's folder) or
            ``filename`` (the base name of the file's ``filename``, ``path`` or ``example_id``
            column against the base name of each example's path, or of its id; names that occur
            twice in the run are never guessed)
``name``    the column name in the run (default: ``column``)

File rows that match no example are counted and reported (with a few
examples); run examples with no score in the file stop the import unless
``allow_missing=True``, which stores NaN for them (every strategy then ranks
them last).  The column is written with :func:`backend.scores.table.add_score_columns`.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import CurateError
from .table import add_score_columns, check_column_name

KEYS = ("example_id", "path", "filename")
ORIENTATIONS = ("harder", "keep")


@dataclass
class ImportReport:
    """What :func:`import_scores` did."""

    name: str
    file: str
    column: str
    key: str
    higher: str
    file_rows: int
    matched: int
    unmatched_rows: int
    unmatched_examples: list[str] = field(default_factory=list)
    unreadable_values: int = 0
    missing: int = 0
    ambiguous: int = 0
    replaced: bool = False
    stored_range: tuple[float, float] = (float("nan"), float("nan"))

    def lines(self) -> list[str]:
        out = [
            f"imported {self.matched:,} scores from {self.file} (column {self.column!r}, key {self.key}) "
            f"as score column {self.name!r}" + (" (replaced)" if self.replaced else "")
        ]
        out.append(
            "orientation: file says higher = keep, stored negated (higher = harder)"
            if self.higher == "keep"
            else "orientation: file says higher = harder, stored as is"
        )
        out.append(f"stored range: [{self.stored_range[0]:.6g}, {self.stored_range[1]:.6g}]")
        if self.unmatched_rows:
            eg = ", ".join(self.unmatched_examples[:5])
            out.append(
                f"{self.unmatched_rows:,} of {self.file_rows:,} file rows match no example of the run (e.g. {eg})"
            )
        else:
            out.append(f"every one of the {self.file_rows:,} file rows matched an example")
        if self.unreadable_values:
            out.append(f"{self.unreadable_values:,} matched rows had no number in {self.column!r} (left out)")
        if self.ambiguous:
            out.append(
                f"{self.ambiguous:,} run examples share a file name with another one and were not matched "
                "by name (use --key path or example_id)"
            )
        if self.missing:
            out.append(f"{self.missing:,} run examples have no score (stored as NaN: ranked last by every strategy)")
        return out


def read_score_file(path: str | Path) -> pd.DataFrame:
    """The file as a DataFrame of strings/numbers (.csv, .tsv, .parquet, .pq)."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise CurateError(f"score file {p} does not exist: pass the path of a .csv or .parquet file")
    suf = p.suffix.lower()
    try:
        if suf in (".parquet", ".pq"):
            return pd.read_parquet(p)
        if suf in (".csv", ".tsv", ".txt"):
            return pd.read_csv(p, sep="\t" if suf == ".tsv" else ",", dtype=str, keep_default_na=False)
    except (ValueError, OSError, pd.errors.ParserError) as exc:
        raise CurateError(
            f"cannot read {p.name} ({str(exc).splitlines()[0]}): check that it is a valid {suf.lstrip('.')} file"
        ) from None
    raise CurateError(f"cannot tell the format of {p.name}: use a .csv, .tsv or .parquet file")


def _file_keys(df: pd.DataFrame, key: str, file: Path) -> pd.Series:
    if key == "example_id":
        if "example_id" not in df.columns:
            raise CurateError(
                f"{file.name} has no 'example_id' column (columns: {', '.join(map(str, df.columns))}): "
                "add one or pass --key path or --key filename"
            )
        return df["example_id"].astype(str)
    if key == "path":
        if "path" not in df.columns:
            raise CurateError(
                f"{file.name} has no 'path' column (columns: {', '.join(map(str, df.columns))}): "
                "add one or pass --key example_id or --key filename"
            )
        base = file.resolve().parent
        return df["path"].astype(str).map(lambda s: os.path.normpath(s if os.path.isabs(s) else base / s))
    for col in ("filename", "path", "example_id"):
        if col in df.columns:
            return df[col].astype(str).map(lambda s: os.path.basename(s.replace("\\", "/")))
    raise CurateError(
        f"{file.name} has no 'filename', 'path' or 'example_id' column to match by file name "
        f"(columns: {', '.join(map(str, df.columns))})"
    )


def _run_keys(table: pd.DataFrame, key: str) -> tuple[pd.Series, np.ndarray]:
    """(key per example, mask of examples whose key is ambiguous)."""
    if key == "example_id":
        k = table["example_id"].astype(str)
    elif key == "path":
        if table["path"].isna().all():
            raise CurateError("this run has no image paths (array data set or embeddings): use --key example_id")
        k = table["path"].map(lambda s: os.path.normpath(s) if isinstance(s, str) and s else "")
    else:
        k = pd.Series(
            [
                os.path.basename(p) if isinstance(p, str) and p else os.path.basename(str(i))
                for p, i in zip(table["path"], table["example_id"])
            ],
            index=table.index,
        )
    dup = k.duplicated(keep=False).to_numpy() & (k != "").to_numpy()
    return k, dup


def import_scores(
    run,
    file: str | Path,
    *,
    column: str,
    higher: str = "harder",
    key: str = "example_id",
    name: str | None = None,
    allow_missing: bool = False,
    force: bool = False,
) -> ImportReport:
    """Join ``column`` of ``file`` onto ``run`` as a score column (see the module docstring)."""
    from .base import METRICS
    from .table import _as_run

    run = _as_run(run)
    if higher not in ORIENTATIONS:
        raise CurateError(
            f"--higher must be 'harder' or 'keep' (got {higher!r}): the paper's released scores are 'keep'"
        )
    if key not in KEYS:
        raise CurateError(f"--key must be one of {', '.join(KEYS)} (got {key!r})")
    file = Path(file).expanduser()
    df = read_score_file(file)
    if column not in df.columns:
        raise CurateError(
            f"{file.name} has no column {column!r} (columns: {', '.join(map(str, df.columns))}): pass --column"
        )
    name = check_column_name(name or column)
    if name in METRICS:
        raise CurateError(
            f"{name!r} is a built-in metric's name: pass --name for the imported column (e.g. --name imported_{name})"
        )
    table = run.table
    replaced = name in table.columns
    if replaced and not force:
        raise CurateError(
            f"the run already has a column {name!r}: pass --force to replace it or --name for another name"
        )
    fkeys = _file_keys(df, key, file)
    dup = fkeys[fkeys.duplicated(keep=False)]
    if len(dup):
        eg = ", ".join(pd.unique(dup)[:3])
        raise CurateError(
            f"{file.name}: {dup.nunique():,} keys occur more than once (e.g. {eg}): one score per "
            "example, please (or use another --key)"
        )
    values = pd.to_numeric(df[column].replace("", np.nan), errors="coerce").to_numpy(np.float64, copy=True)
    values[~np.isfinite(values)] = np.nan
    rkeys, ambiguous = _run_keys(table, key)
    pos_of = pd.Series(np.arange(len(table)), index=rkeys.to_numpy())[~ambiguous]
    pos = pos_of.reindex(fkeys.to_numpy()).to_numpy()
    hit = ~np.isnan(pos)
    out = np.full(len(table), np.nan)
    ok = hit & ~np.isnan(values)
    out[pos[ok].astype(np.int64)] = values[ok]
    if higher == "keep":
        out = -out
    missing = int(np.isnan(out).sum())
    report = ImportReport(
        name=name,
        file=str(file),
        column=column,
        key=key,
        higher=higher,
        file_rows=len(df),
        matched=int(ok.sum()),
        unmatched_rows=int((~hit).sum()),
        unmatched_examples=[str(v) for v in fkeys.to_numpy()[~hit][:5]],
        unreadable_values=int((hit & np.isnan(values)).sum()),
        missing=missing,
        ambiguous=int(ambiguous.sum()),
        replaced=replaced,
    )
    if report.matched == 0:
        eg = ", ".join(map(str, fkeys.head(3)))
        raise CurateError(
            f"no row of {file.name} matches an example of the run by {key} (file keys look like "
            f"{eg}; run keys like {', '.join(rkeys.head(3))}): pass another --key"
        )
    if missing and not allow_missing:
        raise CurateError(
            f"{missing:,} of the run's {len(table):,} examples have no score in {file.name} "
            f"({report.matched:,} matched): pass --allow-missing to import anyway (they are stored "
            "as NaN and ranked last by every strategy)"
        )
    prov = {
        "kind": "imported",
        "file": str(file.resolve()),
        "sha256": _sha256(file),
        "column": column,
        "key": key,
        "higher_in_file": higher,
        "stored": "negated" if higher == "keep" else "as is",
        "matched": report.matched,
        "missing": missing,
        "direction": "higher = harder",
    }
    add_score_columns(run, {name: out}, provenance={name: prov}, allow_nan=True)
    report.stored_range = (float(np.nanmin(out)), float(np.nanmax(out)))
    return report


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()
