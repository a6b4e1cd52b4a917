"""Writing a deduplication out: the kept list, the removed examples with their groups, a manifest.

``OUT`` (format from its ending: .csv, .parquet, .json, .txt) lists the kept
examples; ``OUT``'s stem + ``.removed`` + the same ending (``.csv`` when OUT
is ``.txt``, which cannot hold the group columns) lists the removed ones with
their group, kept representative, the member they duplicate and that
similarity; ``OUT.manifest.json`` records the parameters, counts, the run and
both files' sha256.  Every file is written atomically.
"""

from __future__ import annotations

import hashlib
import io
import os
import platform
from pathlib import Path

import pandas as pd

from ..errors import CurateError
from ..io import atomic_path, write_json
from .core import DedupResult

FORMATS = (".csv", ".parquet", ".json", ".txt")


def removed_path(out: str | Path) -> Path:
    out = Path(out)
    suffix = ".csv" if out.suffix.lower() == ".txt" else out.suffix
    return out.with_name(out.stem + ".removed" + suffix)


def render(df: pd.DataFrame, fmt: str) -> bytes:
    """File contents of ``df`` as ``fmt`` (".txt": one path per line, or the id when there is no path)."""
    if fmt == ".csv":
        return df.to_csv(index=False).encode()
    if fmt == ".json":
        return (df.to_json(orient="records", indent=1, force_ascii=False) + "\n").encode()
    if fmt == ".txt":
        paths = df["path"] if "path" in df.columns else [None] * len(df)
        lines = [p if isinstance(p, str) and p else i for p, i in zip(paths, df["example_id"])]
        return ("\n".join(lines) + "\n").encode()
    if fmt == ".parquet":
        buf = io.BytesIO()
        df.to_parquet(buf, index=False)
        return buf.getvalue()
    raise CurateError(f"unknown output format {fmt!r}: end --out with {', '.join(FORMATS)}")


def _check_out(paths: list[Path], force: bool) -> None:
    for out in paths:
        if out.is_dir():
            raise CurateError(f"{out} is a folder: pass a file name ending in {', '.join(FORMATS)} as --out")
        if out.exists() and not force:
            raise CurateError(f"{out} already exists: pass --force to overwrite it or choose another --out")
    parent = paths[0].parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CurateError(f"cannot create {parent} ({exc.strerror}): choose a writable --out") from None
    if not os.access(parent, os.W_OK):
        raise CurateError(f"{parent} is not writable: choose another --out")


def write_dedup(run, res: DedupResult, out: str | Path, *, force: bool = False) -> dict:
    """Write the kept list, the removed list and the manifest; return their paths and counts."""
    out = Path(out).expanduser().resolve()
    fmt = out.suffix.lower()
    if fmt not in FORMATS:
        raise CurateError(f"cannot tell the format of {out.name}: end --out with {', '.join(FORMATS)}")
    rem = removed_path(out)
    man_path = out.with_name(out.name + ".manifest.json")
    _check_out([out, rem], force)
    kept = render(res.kept_frame(run.table), fmt)
    removed = render(res.removed_frame(run.table), rem.suffix.lower())
    with atomic_path(out) as tmp:
        tmp.write_bytes(kept)
    with atomic_path(rem) as tmp:
        tmp.write_bytes(removed)
    per_class = {}
    if run.has_labels:
        lab = run.table["label"].astype(str)
        tot = lab.value_counts()
        kc = lab[res.kept].value_counts()
        per_class = {str(c): {"total": int(tot[c]), "kept": int(kc.get(c, 0))} for c in sorted(tot.index)}
    how = (
        f"--target-fraction {res.target_fraction}" if res.target_fraction is not None else f"--eps {res.eps_requested}"
    )
    man = {
        "tool": "curation-studio",
        "dedup": {
            "method": "semdedup",
            "eps": res.eps,
            "threshold": res.threshold,
            "eps_requested": res.eps_requested,
            "target_fraction": res.target_fraction,
            "rule": "inside each k-means cluster, members sorted by cosine similarity to the centroid "
            "(least similar first, ties by example_id); a member is removed when its similarity "
            "to an earlier member exceeds the threshold",
        },
        "counts": {
            "total": len(res.removed),
            "kept": res.n_kept,
            "removed": res.n_removed,
            "groups": res.n_groups,
            "per_class": per_class,
        },
        "run": {
            "dir": str(run.dir),
            "key": run.key,
            "source": run.config["source"]["spec"],
            "source_fingerprint": run.config["source"]["fingerprint"],
            "k": run.k,
            "stages": run.config["stages"],
        },
        "versions": _versions(),
        "output": {
            "kept": {
                "path": str(out),
                "format": fmt.lstrip("."),
                "rows": res.n_kept,
                "sha256": hashlib.sha256(kept).hexdigest(),
            },
            "removed": {
                "path": str(rem),
                "format": rem.suffix.lstrip("."),
                "rows": res.n_removed,
                "sha256": hashlib.sha256(removed).hexdigest(),
            },
        },
        "reproduce": f"curate dedup --workdir {str(run.dir)!r} {how} --out FILE",
    }
    write_json(man_path, man)
    return {"kept": out, "removed": rem, "manifest": man_path}


def _versions() -> dict:
    from importlib import metadata

    out = {"python": platform.python_version()}
    for pkg in ("curation-studio", "numpy", "pandas", "torch", "pyarrow"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    return out
