"""Atomic file output, free-space checks and locks.

Every artifact is written to a temporary name in the destination folder and
moved into place with :func:`os.replace`, so an interrupted run never leaves a
half-written file behind (the habit of Hugging Face ``datasets``).  Temporary
names carry the writer's process id (``.NAME.<pid>-XXXX.tmp...``), so the next
run can remove the ones a killed process left (:func:`clean_stale_tmp`) without
touching those of a writer that is still alive.

A full disk is a user problem, not a bug: writes that fail with ENOSPC/EDQUOT
raise :class:`DiskFull` (a :class:`CurateError`: one line naming the folder and
the space needed) after removing their temporary file.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import re
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .errors import CurateError


def _read_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK = _read_umask()
_SPACE_ERRNOS = {errno.ENOSPC, errno.EDQUOT}
# ".NAME.<pid>-<random>.tmp<suffix>" files and ".NAME.tmp-<pid>" folders (export trees)
_TMP_RE = re.compile(r"^\..+\.(\d+)-[A-Za-z0-9_]+\.tmp.*$|^\..+\.tmp-(\d+)$")


class DiskFull(CurateError):
    """No space left where an output had to go."""


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"  # pragma: no cover


def disk_full(folder: str | os.PathLike, need: int | None, what: str = "the output") -> DiskFull:
    """The one-line error for a full disk under ``folder``."""
    folder = Path(folder)
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        free = None
    need_txt = f"about {human_bytes(need)} for {what}" if need else f"more space for {what}"
    free_txt = f", {human_bytes(free)} free" if free is not None else ""
    return DiskFull(
        f"no space left in {folder}: it needs {need_txt}{free_txt}; free some space "
        "(or choose another folder) and run the same command again"
    )


def ensure_free(folder: str | os.PathLike, need: int, what: str = "the output") -> None:
    """Raise :class:`DiskFull` unless ``folder``'s file system has ``need`` bytes free."""
    folder = Path(folder)
    probe = folder
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        free = shutil.disk_usage(probe).free
    except OSError:
        return  # cannot tell: let the write itself report
    if free < need:
        raise disk_full(folder, need, what)


def is_space_error(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in _SPACE_ERRNOS


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_stale_tmp(folder: str | os.PathLike) -> list[Path]:
    """Remove temporary files/folders in ``folder`` whose writer process is gone; return them.

    Only names made by :func:`atomic_path` (and export-tree's ``.NAME.tmp-<pid>``
    folders) are touched, and only when their process id is not alive, so a
    concurrent writer keeps its temporary file.
    """
    removed: list[Path] = []
    try:
        entries = list(os.scandir(os.fspath(folder)))
    except OSError:
        return removed
    for entry in entries:
        m = _TMP_RE.match(entry.name)
        if not m:
            continue
        pid = int(m.group(1) or m.group(2))
        if _pid_alive(pid):
            continue
        path = Path(entry.path)
        try:
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(path)
            else:
                path.unlink()
            removed.append(path)
        except FileNotFoundError:
            pass
        except OSError:
            continue
    return removed


def _make_tmp(dest: Path, suffix: str | None) -> Path:
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(
            prefix=f".{dest.name}.{os.getpid()}-",
            suffix=suffix if suffix is not None else ".tmp" + dest.suffix,
            dir=dest.parent,
        )
    except OSError as exc:
        if is_space_error(exc):
            raise disk_full(dest.parent, None, dest.name) from None
        raise
    try:  # mkstemp makes 0600 files; give outputs the usual permissions (0666 minus the umask)
        os.fchmod(fd, 0o666 & ~_UMASK)
    finally:
        os.close(fd)
    return Path(tmp)


def _tmp_size(tmp: Path) -> int:
    try:
        return tmp.stat().st_size
    except OSError:
        return 0


@contextlib.contextmanager
def atomic_path(dest: str | os.PathLike, *, suffix: str | None = None, need: int | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``dest``; move it onto ``dest`` on success.

    ``need`` (bytes, when known) is checked against the free space first.  A
    full disk raises :class:`DiskFull` and leaves nothing behind.
    """
    dest = Path(dest)
    if need:
        ensure_free(dest.parent, need, dest.name)
    tmp = _make_tmp(dest, suffix)
    try:
        yield tmp
        os.replace(tmp, dest)
    except BaseException as exc:
        written = _tmp_size(tmp)
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        if is_space_error(exc) or _caused_by_space(exc):
            raise disk_full(dest.parent, max(need or 0, written + (1 << 20)), dest.name) from None
        raise


def _caused_by_space(exc: BaseException) -> bool:
    """pandas/pyarrow wrap the ENOSPC of a write in their own exception types."""
    cur: BaseException | None = exc
    seen = 0
    while cur is not None and seen < 5:
        if is_space_error(cur) or "No space left on device" in str(cur) or "Disk quota exceeded" in str(cur):
            return True
        cur = cur.__cause__ or cur.__context__
        seen += 1
    return False


@contextlib.contextmanager
def atomic_files(*destinations: str | os.PathLike, need: int | None = None) -> Iterator[list[Path]]:
    """Yield one temporary path per destination; when every one is written, move them all into place.

    The moves happen while holding :func:`dir_lock` on each destination's
    folder, so two writers of the same set of files (a list and its manifest)
    never interleave: the files always come from the same writer.  Nothing is
    moved if writing any of them fails.
    """
    dests = [Path(d) for d in destinations]
    if need:
        ensure_free(dests[0].parent, need, dests[0].name)
    tmps: list[Path] = []
    try:
        for d in dests:
            tmps.append(_make_tmp(d, None))
        yield tmps
        folders = sorted({str(d.parent) for d in dests})
        with contextlib.ExitStack() as stack:
            for f in folders:
                stack.enter_context(dir_lock(f))
            for tmp, d in zip(tmps, dests):
                os.replace(tmp, d)
    except BaseException as exc:
        written = sum(_tmp_size(t) for t in tmps)
        for t in tmps:
            with contextlib.suppress(FileNotFoundError):
                t.unlink()
        if is_space_error(exc) or _caused_by_space(exc):
            raise disk_full(dests[0].parent, max(need or 0, written + (1 << 20)), dests[0].name) from None
        raise


# ---------------------------------------------------------------------------
# locks: fcntl.flock, one open file description per holder, re-entrant per thread

_held = threading.local()


@contextlib.contextmanager
def lock_file(path: str | os.PathLike, *, on_wait: Callable[[], None] | None = None) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (created if missing; a folder is locked as itself).

    Another process (or thread) blocks until it is released; ``on_wait`` is
    called once when it has to wait.  Re-entrant in the same thread.  The lock
    goes away with the process, so a killed run never leaves a stale lock.
    """
    path = Path(path)
    key = os.path.realpath(path)
    counts = getattr(_held, "counts", None)
    if counts is None:
        counts = _held.counts = {}
    if counts.get(key):
        counts[key] += 1
        try:
            yield
        finally:
            counts[key] -= 1
        return
    if path.is_dir():
        fd = os.open(path, os.O_RDONLY)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666 & ~_UMASK)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if on_wait is not None:
                on_wait()
            fcntl.flock(fd, fcntl.LOCK_EX)
        counts[key] = 1
        try:
            yield
        finally:
            counts.pop(key, None)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def dir_lock(folder: str | os.PathLike, *, on_wait: Callable[[], None] | None = None):
    """:func:`lock_file` on the folder itself (no lock file left beside the user's outputs)."""
    return lock_file(folder, on_wait=on_wait)


# ---------------------------------------------------------------------------
# writers


def write_json(dest, obj: Any) -> None:
    with atomic_path(dest) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def read_json(path) -> Any:
    return json.loads(Path(path).read_text())


def write_npy(dest, array: np.ndarray) -> None:
    array = np.ascontiguousarray(array)
    with atomic_path(dest, need=int(array.nbytes) + 4096) as tmp, open(tmp, "wb") as fh:
        np.save(fh, array)


def write_table(dest, df: pd.DataFrame) -> None:
    """Write ``df`` to Parquet or CSV according to the file ending."""
    dest = Path(dest)
    with atomic_path(dest) as tmp:
        if dest.suffix == ".parquet":
            df.to_parquet(tmp, index=False)
        elif dest.suffix == ".csv":
            df.to_csv(tmp, index=False)
        else:  # pragma: no cover - internal misuse
            raise ValueError(f"unsupported table format: {dest}")


def _json_default(obj):
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
