"""Image folders: ImageFolder layout (labels from sub-folders) or unlabelled."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from ..errors import CurateError
from .base import HOLDOUT_SPLITS, Source, make_index
from .confine import OUTSIDE, allowed_roots, check_allowed, is_allowed
from .images import is_image_name
from .registry import register_source

SPLIT_NAMES = HOLDOUT_SPLITS | {"train"}


def _walk(root: Path, roots: list[str] | None = None):
    """(files, refused): files as (relative posix path, size, mtime_ns) below root, sorted; with ``roots``
    (confinement), links that resolve outside them are not followed and come back in ``refused``."""
    out, refused, seen = [], [], set()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in seen:  # a symlinked folder seen before (a link back up would loop forever)
            dirnames[:] = []
            continue
        seen.add(real)
        if roots is not None and not is_allowed(real, roots):
            # never list what is inside: the names of files elsewhere are not the app's to show
            refused.append((os.path.relpath(dirpath, root).replace(os.sep, "/") + "/", f"link to a folder {OUTSIDE}"))
            dirnames[:] = []
            continue
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, root).replace(os.sep, "/")
            if roots is not None and os.path.islink(full) and not is_allowed(full, roots):
                refused.append((rel, f"link {OUTSIDE}"))
                continue
            try:
                st = os.stat(full)
                out.append((rel, st.st_size, st.st_mtime_ns))
            except OSError:
                out.append((rel, -1, 0))
    out.sort()
    refused.sort()
    return out, refused


@register_source(
    "folder",
    spec="PATH/TO/FOLDER",
    path_kind=True,
    priority=10,
    claims=lambda p: p.is_dir(),
    description="images; one sub-folder per class gives labels (torchvision ImageFolder); train/, "
    "val/, test/ at the top give splits; otherwise read recursively, unlabelled",
)
def _folder_kind(target, *, labels: str = "auto", **_):
    return load_folder(target, labels=labels)


def load_folder(root: str | Path, *, labels: str = "auto") -> Source:
    """Scan ``root``.

    ``labels="auto"``: if the root holds only sub-folders (no images), the first
    level names the class (torchvision ImageFolder); if those sub-folders are
    split names (train/val/test) the second level names the class.  Otherwise
    the folder is read recursively without labels.  ``labels="none"`` forces
    unlabelled.
    """
    root = Path(root).expanduser().resolve()
    if not root.is_dir():
        raise CurateError(f"source folder {root} does not exist: check the path passed to --source")
    check_allowed(root, "source folder")
    files, refused = _walk(root, allowed_roots())
    h = hashlib.sha256()
    for rel, size, mtime in files:
        h.update(f"{rel}\0{size}\0{mtime}\n".encode())

    top_dirs = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    root_images = [rel for rel, _, _ in files if "/" not in rel and is_image_name(rel)]
    layout = "unlabelled"
    if labels == "auto" and top_dirs and not root_images:
        if {d.lower() for d in top_dirs} <= SPLIT_NAMES:
            layout = "split/class"
        else:
            layout = "class"

    ids, paths, labs, splits, skipped = [], [], [], [], list(refused)
    for rel, size, _ in files:
        name = rel.rsplit("/", 1)[-1]
        if name.startswith("."):
            continue
        if not is_image_name(name):
            skipped.append((rel, "not an image file (unsupported extension)"))
            continue
        if size == 0:
            skipped.append((rel, "empty file (0 bytes)"))
            continue
        if size < 0:
            skipped.append((rel, "unreadable: cannot stat file"))
            continue
        parts = rel.split("/")
        label, split = None, "train"
        if layout == "class":
            if len(parts) < 2:
                continue
            label = parts[0]
        elif layout == "split/class":
            if len(parts) < 3:
                skipped.append((rel, "image outside a class folder (expected split/class/image)"))
                continue
            split, label = parts[0], parts[1]
        ids.append(rel)
        paths.append(str(root / rel))
        labs.append(label)
        splits.append(split)
    if not ids:
        raise CurateError(f"no images found in {root}: put .jpg/.png files there (one sub-folder per class for labels)")
    index = make_index(ids, paths, labs, splits)
    classes = sorted(index["label"].dropna().unique().tolist()) or None
    desc = {
        "class": "image folder, labels from sub-folders",
        "split/class": "image folder, split/class/image layout",
        "unlabelled": "image folder, no labels",
    }[layout]
    return Source(
        spec=str(root),
        kind="folder",
        index=index,
        fingerprint=h.hexdigest()[:16],
        description=f"{desc}: {root}",
        classes=classes,
        skipped=skipped,
    )
