"""Writing a selection out: list files with their manifest, and ImageFolder symlink trees.

Rules every writer here keeps:

- the user's images are only ever read; nothing is written inside a folder
  source (the next run would count it as data) nor onto a workdir's own cache
  files (:func:`backend.store.store_owner`);
- ``--out`` is where the file goes: a symbolic link as ``--out`` is refused,
  never written through;
- the output and its ``.manifest.json`` are written to temporary files first
  and moved into place together under a lock on their folder, so a full disk
  leaves nothing half-written and two writers never mix one's list with the
  other's manifest;
- ``force`` replaces only what an earlier export wrote: an existing manifest
  needs ``force`` too, and export-tree's ``force`` removes only the links and
  PNG files its previous manifest recorded, refusing (and naming) anything else.
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
from ..io import atomic_files, clean_stale_tmp, dir_lock, disk_full, is_space_error
from ..store import holds_store, sha256_file, store_owner
from .subset import Selection

FORMATS = (".csv", ".parquet", ".json", ".txt")
TREE_FORMAT = "imagefolder"


def _out_path(out: str | os.PathLike) -> Path:
    """Absolute ``out`` with its folder resolved but the last component not followed (it may be a link)."""
    p = Path(os.path.abspath(Path(out).expanduser()))
    try:
        return p.parent.resolve() / p.name
    except (OSError, RuntimeError):
        return p


def _manifest_path(out: Path) -> Path:
    return out.with_name(out.name + ".manifest.json")


def _source_root(run_info_source: str | None, kind: str | None = None) -> Path | None:
    if not run_info_source or (kind is not None and kind != "folder"):
        return None
    p = Path(run_info_source)
    try:
        return p.resolve() if p.is_dir() else None
    except OSError:
        return None


def _source_kind(run_info: dict) -> str | None:
    """The run's source kind from its run.json (a Selection records the spec, not the kind)."""
    try:
        return json.loads((Path(run_info["dir"]) / "run.json").read_text())["source"]["kind"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _refuse_protected(out: Path, source_root: Path | None, what: str) -> None:
    """Outputs never go onto a workdir's cache nor inside the folder the run reads its images from."""
    owner = store_owner(out)
    if owner:
        raise CurateError(
            f"refusing to write {what} {out}: {owner} (its files are the cache, an export there "
            "would corrupt it); choose a path outside, e.g. <workdir>/selections/"
        )
    if source_root is not None:
        real = out.parent.resolve() / out.name
        if real == source_root or real.is_relative_to(source_root):
            raise CurateError(
                f"refusing to write {what} {out} inside the source folder {source_root}: the next "
                "run would read it as data; choose a folder outside the source"
            )


def _check_out(out: Path, force: bool) -> None:
    man = _manifest_path(out)
    for p, name in ((out, "--out"), (man, "its manifest")):
        if p.is_symlink():
            raise CurateError(
                f"{p} ({name}) is a symbolic link: refusing to write through it; remove the link "
                "or choose another --out"
            )
    if out.is_dir():
        raise CurateError(f"{out} is a folder: pass a file name ending in {', '.join(FORMATS)} as --out")
    for p in (out, man):
        if p.exists() and not force:
            raise CurateError(f"{p} already exists: pass --force to overwrite it or choose another --out")
    if man.is_dir():
        raise CurateError(f"{man} is a folder: the manifest cannot be written; choose another --out")
    parent = out.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        if is_space_error(exc):
            raise disk_full(parent, None, "the output folder") from None
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


def _manifest_bytes(man: dict) -> bytes:
    from ..io import _json_default

    return (json.dumps(man, indent=2, default=_json_default) + "\n").encode()


def write_selection(sel: Selection, out: str | Path, *, force: bool = False) -> Path:
    """Write the kept list (format from the file ending) and ``OUT.manifest.json`` beside it.

    Both files appear together or not at all; see the module docstring for what is refused.
    """
    out = _out_path(out)
    fmt = out.suffix.lower()
    if fmt not in FORMATS:
        raise CurateError(f"cannot tell the format of {out.name}: end --out with {', '.join(FORMATS)}")
    _refuse_protected(out, _source_root(sel.run_info.get("source"), _source_kind(sel.run_info)), "the list")
    _check_out(out, force)
    clean_stale_tmp(out.parent)
    data = render_selection(sel, fmt)
    man = sel.manifest()
    man["output"] = {
        "path": str(out),
        "format": fmt.lstrip("."),
        "rows": sel.n_kept,
        "sha256": hashlib.sha256(data).hexdigest(),
    }
    man_bytes = _manifest_bytes(man)
    with dir_lock(out.parent):  # checked again under the lock: another writer may have been quicker
        _check_out(out, force)
        with atomic_files(out, _manifest_path(out), need=len(data) + len(man_bytes)) as (tmp, tmp_man):
            tmp.write_bytes(data)
            tmp_man.write_bytes(man_bytes)
    return out


# ---------------------------------------------------------------------------
# ImageFolder trees


def _label_dir(label) -> str:
    name = str(label).replace("/", "_").replace(os.sep, "_").strip() if isinstance(label, str) else ""
    if not name:
        return "unlabelled"
    if name.startswith("."):  # never ".." (outside the tree) nor a hidden folder
        name = "_" + name
    return name


def _previous_files(out_dir: Path) -> dict[str, str] | None:
    """What the previous export recorded: ``{"label/name": "link:<target>" | "png:<sha256>"}``.

    None when ``out_dir`` has no manifest of an export-tree written to it.
    """
    try:
        man = json.loads(_manifest_path(out_dir).read_text())
        output = man["output"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not isinstance(output, dict) or output.get("format") != TREE_FORMAT or output.get("path") != str(out_dir):
        return None
    files = output.get("files")
    if files is None:  # an export of an older version: it wrote only symlinks and PNGs, recorded nothing
        return {}
    return dict(files)


def _unexpected_entry(out_dir: Path, recorded: dict[str, str], *, legacy: bool) -> str | None:
    """The first entry of ``out_dir`` that the previous export did not write (or that changed), or None."""
    for entry in sorted(out_dir.iterdir()):
        if entry.is_symlink() or not entry.is_dir():
            return f"{entry} was not written by export-tree"
        for item in sorted(entry.iterdir()):
            rel = f"{entry.name}/{item.name}"
            want = recorded.get(rel)
            if legacy:
                if not item.is_symlink():
                    return f"{item} is not a symbolic link export-tree made (a real file)"
                continue
            if want is None:
                return f"{item} was not written by export-tree"
            kind, _, value = want.partition(":")
            if kind == "link":
                if not item.is_symlink():
                    return f"{item} is no longer the link export-tree made (now a real file)"
                if os.readlink(item) != value:
                    return f"{item} now links to {os.readlink(item)}, not to what export-tree linked"
            else:
                if item.is_symlink() or not item.is_file() or sha256_file(item) != value:
                    return f"{item} is not the PNG export-tree wrote (changed since)"
    return None


def _remove_recorded(folder: Path, recorded: dict[str, str], *, legacy: bool) -> list[Path]:
    """Remove what an export wrote (never ``rmtree``); return what is left (something added meanwhile)."""
    for entry in sorted(folder.iterdir()):
        if entry.is_dir() and not entry.is_symlink():
            for item in sorted(entry.iterdir()):
                if (legacy and item.is_symlink()) or (not legacy and f"{entry.name}/{item.name}" in recorded):
                    item.unlink()
            try:
                entry.rmdir()
            except OSError:
                pass
    try:
        folder.rmdir()
        return []
    except OSError:
        return sorted(folder.rglob("*"))


def export_tree(run, sel: Selection, out_dir: str | Path, *, force: bool = False) -> dict:
    """ImageFolder tree ``out_dir/<label>/<file>`` of symlinks to the kept images.

    Sources are never copied, moved or modified.  For array data sets (no image
    files, e.g. torchvision MNIST) the images are written as PNG instead.  The
    manifest beside the tree (``OUT.manifest.json``) records every entry, and
    ``force`` removes exactly those entries of an earlier export, nothing else.
    """
    from ..run import Run

    if not isinstance(run, Run):
        from ..pipeline import find_run_dir

        run = Run(find_run_dir(run))
    out_dir = _out_path(out_dir)
    if out_dir.is_symlink():
        raise CurateError(
            f"{out_dir} is a symbolic link: refusing to write through it; remove the link or choose another --out"
        )
    if out_dir.exists() and not out_dir.is_dir():
        raise CurateError(f"{out_dir} is a file: export-tree writes a folder, choose another --out")
    src = run.config.get("source", {})
    _refuse_protected(out_dir, _source_root(src.get("spec"), src.get("kind")), "the tree")
    man_path = _manifest_path(out_dir)
    if man_path.is_symlink() or man_path.is_dir():
        raise CurateError(
            f"{man_path} is a symbolic link or a folder: refusing to write the manifest there; "
            "remove it or choose another --out"
        )
    if not run.has_images:
        raise CurateError(
            "this run has no images (precomputed embeddings without paths): use `curate select --out kept.csv` instead"
        )
    if out_dir.exists() and any(out_dir.iterdir()):
        _check_replaceable(out_dir, force)
    if man_path.exists() and not force:
        raise CurateError(f"{man_path} already exists: pass --force to replace that export or choose another --out")
    try:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CurateError(f"cannot create {out_dir} ({exc.strerror}): choose a writable --out") from None
    clean_stale_tmp(out_dir.parent)
    tmp = out_dir.with_name(f".{out_dir.name}.tmp-{os.getpid()}")
    try:
        if tmp.exists():
            shutil.rmtree(tmp)  # our own process's leftover: the name carries our pid
        tmp.mkdir()
    except OSError as exc:
        if is_space_error(exc):
            raise disk_full(out_dir.parent, None, "the tree") from None
        raise CurateError(f"cannot create {out_dir} ({exc.strerror}): choose a writable --out") from None
    try:
        files, n_links, n_written = _build_tree(run, sel, tmp)
        man = sel.manifest()
        man["output"] = {
            "path": str(out_dir),
            "format": TREE_FORMAT,
            "symlinks": n_links,
            "png_written": n_written,
            "files": files,
        }
        left: list[Path] = []
        old = None
        with dir_lock(out_dir.parent):  # one writer at a time swaps this folder and its manifest
            recorded: dict[str, str] = {}
            if out_dir.exists() and any(out_dir.iterdir()):
                recorded = _check_replaceable(out_dir, force)  # again: the folder may have changed meanwhile
            with atomic_files(man_path) as (tmp_man,):
                tmp_man.write_bytes(_manifest_bytes(man))  # a full disk stops here, before any swap
                if out_dir.exists():
                    old = out_dir.with_name(f".{out_dir.name}.old.tmp-{os.getpid()}")
                    os.replace(out_dir, old)
                os.replace(tmp, out_dir)
            if old is not None:
                left = _remove_recorded(old, recorded, legacy=recorded == {})
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if is_space_error(exc):
            raise disk_full(out_dir.parent, None, "the tree") from None
        raise
    res = {"symlinks": n_links, "png_written": n_written, "out": str(out_dir)}
    if left:  # something was added to the old tree while we swapped: kept, never deleted
        res["left_behind"] = str(old)
    return res


def _check_replaceable(out_dir: Path, force: bool) -> dict[str, str]:
    """The previous export's record when ``force`` may replace ``out_dir``; else a refusal naming the file."""
    if not force:
        raise CurateError(f"{out_dir} exists and is not empty: pass --force to replace it or choose another --out")
    if holds_store(out_dir):
        raise CurateError(
            f"{out_dir} holds a workdir: refusing to delete it even with --force; choose an empty or new --out"
        )
    recorded = _previous_files(out_dir)
    if recorded is None:
        # --force replaces an earlier export, never a folder of real files (it could be the source)
        raise CurateError(
            f"{out_dir} holds files that export-tree did not write: refusing to delete it "
            "even with --force; choose an empty or new --out"
        )
    bad = _unexpected_entry(out_dir, recorded, legacy=recorded == {})
    if bad:
        raise CurateError(
            f"{bad}: refusing to replace {out_dir} even with --force (it only removes what the "
            "previous export wrote); move that file away or choose another --out"
        )
    return recorded


def _build_tree(run, sel: Selection, tmp: Path) -> tuple[dict[str, str], int, int]:
    pos_of = pd.Series(np.arange(run.n_examples), index=run.table["example_id"].astype(str))
    files: dict[str, str] = {}
    n_links = n_written = 0
    for _, r in sel.kept.iterrows():
        label_dir = _label_dir(r["label"])
        path = r["path"] if isinstance(r["path"], str) and r["path"] else None
        base = os.path.basename(path) if path else str(r["example_id"]).replace("/", "_") + ".png"
        name = base
        if f"{label_dir}/{name}" in files:  # same file name from different folders
            name = hashlib.sha1(str(r["example_id"]).encode()).hexdigest()[:8] + "_" + base
        (tmp / label_dir).mkdir(exist_ok=True)
        dest = tmp / label_dir / name
        if path:
            os.symlink(path, dest)
            files[f"{label_dir}/{name}"] = f"link:{path}"
            n_links += 1
        else:
            img = run.load_image(int(pos_of[str(r["example_id"])]))
            if img is None:
                raise CurateError(f"cannot load the image of {r['example_id']}: is the source still there?")
            img.save(dest, format="PNG")
            files[f"{label_dir}/{name}"] = f"png:{sha256_file(dest)}"
            n_written += 1
    return files, n_links, n_written
