"""Confinement: which folders the sources may read from.

Unconfined by default (the CLI reads what its user names).  ``curate app``
sets ``CURATE_ALLOWED_DIRS`` (folders separated by ``os.pathsep``) for its
server process; from then on every path a source reads (a folder walk, each
manifest row, an embeddings file, each image opened for a thumbnail) is
resolved, links followed, and refused when it lands outside those folders.
Refused entries are skipped with a reason that does not depend on whether the
file exists, so a manifest cannot be used to probe the disk.  Array data sets
(``demo``, ``torchvision:``) are not paths a user typed and are not affected.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import CurateError

ENV = "CURATE_ALLOWED_DIRS"
OUTSIDE = "outside the folders this app may read (not read)"


def allowed_roots(environ=None) -> list[str] | None:
    """Resolved allowed folders, or None when reads are not confined."""
    env = os.environ if environ is None else environ
    raw = env.get(ENV)
    if raw is None:
        return None
    roots = [os.path.realpath(os.path.expanduser(p)) for p in raw.split(os.pathsep) if p.strip()]
    return list(dict.fromkeys(roots))


def _inside_any(real: str, roots: list[str]) -> bool:
    for root in roots:
        if real == root or real.startswith(root.rstrip(os.sep) + os.sep):
            return True
    return False


def is_allowed(path: str | os.PathLike, roots: list[str] | None = None) -> bool:
    """True when reads are unconfined or ``path`` (links followed) lies inside an allowed folder."""
    roots = allowed_roots() if roots is None else roots
    if roots is None:
        return True
    return _inside_any(os.path.realpath(path), roots)


def check_allowed(path: str | os.PathLike, what: str) -> None:
    """Raise a one-line CurateError when ``path`` may not be read."""
    roots = allowed_roots()
    if roots is not None and not _inside_any(os.path.realpath(path), roots):
        raise CurateError(
            f"{what} {Path(path)} is outside the folders this app may read "
            f"({', '.join(roots) or 'none'}): restart with `curate app --allow-dir FOLDER`"
        )
