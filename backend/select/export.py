"""Writing a selection out: list files with their manifest, and ImageFolder symlink trees.

Every file is written atomically; the user's images are only ever read.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import CurateError
from ..io import atomic_path, write_json
from .subset import Selection

FORMATS = (".csv", ".parquet", ".json", ".txt")


def _check_out(out: Path, force: bool) -> None:
    if out.is_dir():
        raise CurateError(f"{out} is a folder: pass a file name ending in {', '.join(FORMATS)} as --out")
    if out.exists() and not force:
        raise CurateError(f"{out} already exists: pass --force to overwrite it or choose another --out")
    parent = out.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CurateError(f"cannot create {parent} ({exc.strerror}): choose a writable --out") from None
    if not os.access(parent, os.W_OK):
        raise CurateError(f"{parent} is not writable: choose another --out")


def render_selection(sel: Selection, fmt: str) -> bytes:
    """The file contents for ``fmt`` (".csv", ".parquet", ".json", ".txt")."""
    df = sel.kept
    if fmt == ".csv":
        return df.to_csv(index=False).encode()
    if fmt == ".json":
        return (df.to_json(orient="records", indent=1, force_ascii=False) + "\n").encode()
    if fmt == ".txt":
        lines = [p if isinstance(p, str) and p else i for p, i in zip(df["path"], df["example_id"])]
        return ("\n".join(lines) + "\n").encode()
    if fmt == ".parquet":
        import io

        buf = io.BytesIO()
        df.to_parquet(buf, index=False)
        return buf.getvalue()
    raise CurateError(f"unknown output format {fmt!r}: end --out with {', '.join(FORMATS)}")


def write_selection(sel: Selection, out: str | Path, *, force: bool = False) -> Path:
    """Write the kept list (format from the file ending) and ``OUT.manifest.json`` beside it."""
    out = Path(out).expanduser().resolve()
    fmt = out.suffix.lower()
    if fmt not in FORMATS:
        raise CurateError(f"cannot tell the format of {out.name}: end --out with {', '.join(FORMATS)}")
    _check_out(out, force)
    manifest_path = out.with_name(out.name + ".manifest.json")
    data = render_selection(sel, fmt)
    with atomic_path(out) as tmp:
        tmp.write_bytes(data)
    man = sel.manifest()
    man["output"] = {"path": str(out), "format": fmt.lstrip("."), "rows": sel.n_kept,
                     "sha256": hashlib.sha256(data).hexdigest()}
    write_json(manifest_path, man)
    return out


def export_tree(run, sel: Selection, out_dir: str | Path, *, force: bool = False) -> dict:
    """ImageFolder tree ``out_dir/<label>/<file>`` of symlinks to the kept images.

    Sources are never copied, moved or modified.  For array data sets (no image
    files, e.g. torchvision MNIST) the images are written as PNG instead.
    """
    from ..run import Run

    if not isinstance(run, Run):
        from ..pipeline import find_run_dir

        run = Run(find_run_dir(run))
    out_dir = Path(out_dir).expanduser().resolve()
    if out_dir.exists() and not out_dir.is_dir():
        raise CurateError(f"{out_dir} is a file: export-tree writes a folder, choose another --out")
    if out_dir.exists() and any(out_dir.iterdir()):
        if not force:
            raise CurateError(f"{out_dir} exists and is not empty: pass --force to replace it or choose another --out")
        if not _is_export_tree(out_dir):
            # --force replaces an earlier export, never a folder of real files (it could be the source)
            raise CurateError(f"{out_dir} holds files that export-tree did not write: refusing to delete it "
                              "even with --force; choose an empty or new --out")
    if not run.has_images:
        raise CurateError("this run has no images (precomputed embeddings without paths): "
                          "use `curate select --out kept.csv` instead")
    tmp = out_dir.with_name(f".{out_dir.name}.tmp-{os.getpid()}")
    try:
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir(parents=True)
    except OSError as exc:
        raise CurateError(f"cannot create {out_dir} ({exc.strerror}): choose a writable --out") from None
    pos_of = pd.Series(np.arange(run.n_examples), index=run.table["example_id"].astype(str))
    n_links = n_written = 0
    used: set[str] = set()
    try:
        for _, r in sel.kept.iterrows():
            label = str(r["label"]) if isinstance(r["label"], str) else "unlabelled"
            label_dir = label.replace("/", "_").replace(os.sep, "_").strip() or "unlabelled"
            if label_dir.startswith("."):  # never ".." (outside the tree) nor a hidden folder
                label_dir = "_" + label_dir
            path = r["path"] if isinstance(r["path"], str) and r["path"] else None
            base = os.path.basename(path) if path else str(r["example_id"]).replace("/", "_") + ".png"
            name = base
            if f"{label_dir}/{name}" in used:  # same file name from different folders
                name = hashlib.sha1(str(r["example_id"]).encode()).hexdigest()[:8] + "_" + base
            used.add(f"{label_dir}/{name}")
            (tmp / label_dir).mkdir(exist_ok=True)
            dest = tmp / label_dir / name
            if path:
                os.symlink(path, dest)
                n_links += 1
            else:
                img = run.load_image(int(pos_of[str(r["example_id"])]))
                if img is None:
                    raise CurateError(f"cannot load the image of {r['example_id']}: is the source still there?")
                img.save(dest)
                n_written += 1
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    man = sel.manifest()
    man["output"] = {"path": str(out_dir), "format": "imagefolder", "symlinks": n_links, "png_written": n_written}
    write_json(out_dir.with_name(out_dir.name + ".manifest.json"), man)
    return {"symlinks": n_links, "png_written": n_written, "out": str(out_dir)}


def _is_export_tree(folder: Path) -> bool:
    """True when ``folder`` is export-tree output: its manifest beside it, label folders of symlinks/PNGs."""
    try:
        out = json.loads(folder.with_name(folder.name + ".manifest.json").read_text()).get("output", {})
    except (OSError, ValueError, AttributeError):
        return False
    if out.get("format") != "imagefolder" or out.get("path") != str(folder):
        return False
    for entry in folder.iterdir():
        if entry.is_symlink() or not entry.is_dir():
            return False
        for item in entry.iterdir():
            if not (item.is_symlink() or (item.is_file() and item.suffix == ".png")):
                return False
    return True
