"""Content-addressed artifact store.

Every stage writes its outputs into ``<workdir>/<stage>/<fingerprint>/``. The
fingerprint hashes the stage name, the stage version, the fingerprints of its
inputs and its parameters, so identical inputs hit the cache and any change
(including a new stage version) gets a new folder.  A folder counts as finished
only once its ``meta.json`` exists (it is written last, atomically) *and* every
file it recorded is still the file that was written: ``meta.json`` lists the
size, modification time and sha256 of each file, so a file overwritten or
truncated since is a cache miss, not a silent wrong answer.

Verification is cheap on the common path: size and ``mtime_ns`` unchanged means
trusted (hashing a multi-GB memory-mapped array on every cache check would cost
seconds); a changed mtime (a copied workdir, a touched file) falls back to the
sha256, which is computed once, when the stage finishes.

Two processes computing the same stage: :meth:`Stage.lock` holds an ``flock``
on ``<stage folder>/.lock`` so the second one waits (and is told why), then
finds the stage done.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from .io import clean_stale_tmp, lock_file, read_json, write_json

META = "meta.json"
LOCK = ".lock"
LATEST = "latest.json"
_HASH_BLOCK = 1 << 22


def fingerprint(*parts: Any) -> str:
    """Stable short hash of JSON-serialisable parts."""
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while True:
            block = fh.read(_HASH_BLOCK)
            if not block:
                break
            h.update(block)
    return h.hexdigest()


def _stage_files(folder: Path) -> list[Path]:
    """The files a stage produced: every regular file below it except meta.json, the lock and hidden files."""
    out = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if name.startswith(".") or (name == META and dirpath == str(folder)):
                continue
            out.append(Path(dirpath) / name)
    return out


def record_files(folder: str | os.PathLike) -> dict[str, dict]:
    """``{relative path: {size, mtime_ns, sha256}}`` of a stage folder's files."""
    folder = Path(folder)
    rec = {}
    for p in _stage_files(folder):
        st = p.stat()
        rec[p.relative_to(folder).as_posix()] = {
            "size": st.st_size,
            "mtime_ns": st.st_mtime_ns,
            "sha256": sha256_file(p),
        }
    return rec


def verify_files(folder: str | os.PathLike, recorded: dict[str, dict]) -> str | None:
    """None when every recorded file is unchanged, else a short reason naming the first that is not."""
    folder = Path(folder)
    for rel, want in recorded.items():
        p = folder / rel
        try:
            st = p.stat()
        except OSError:
            return f"{rel} is missing"
        if p.is_symlink() or not p.is_file():
            return f"{rel} is not the file that was written"
        if st.st_size != want["size"]:
            return f"{rel} has {st.st_size} bytes, {want['size']} were written"
        if st.st_mtime_ns == want["mtime_ns"]:
            continue
        if sha256_file(p) != want["sha256"]:
            return f"{rel} changed since it was written"
    return None


class Stage:
    """One cached stage output folder."""

    def __init__(self, workdir: str | Path, name: str, version: int, inputs: dict[str, Any]):
        self.name = name
        self.version = version
        self.inputs = inputs
        self.key = fingerprint(name, version, inputs)
        self.workdir = Path(workdir)
        self.dir = self.workdir / name / self.key

    @property
    def done(self) -> bool:
        """Finished, and every file it recorded is unchanged (see :meth:`problem`)."""
        return self.problem() is None

    def problem(self) -> str | None:
        """None when the stage is a valid cache hit, else why not (not finished, a file changed...).

        Also removes the workdir's temporary files left by a killed run (e.g. of latest.json), which
        no later stage would otherwise touch when everything is cached.
        """
        clean_stale_tmp(self.workdir)
        try:
            meta = read_json(self.dir / META)
        except FileNotFoundError:
            return "not computed yet"
        except (OSError, ValueError):
            return f"{META} is unreadable"
        files = meta.get("files") if isinstance(meta, dict) else None
        if files is None:  # written before files were recorded: trusted as before
            return None if isinstance(meta, dict) else f"{META} is damaged"
        return verify_files(self.dir, files)

    def meta(self) -> dict:
        return read_json(self.dir / META)

    def prepare(self) -> Path:
        """Create the folder; remove temporary files a killed run left in it and in the workdir."""
        self.dir.mkdir(parents=True, exist_ok=True)
        for folder in (self.dir, self.workdir):
            clean_stale_tmp(folder)
        return self.dir

    @contextlib.contextmanager
    def lock(self, on_wait: Callable[[str], None] | None = None) -> Iterator[Stage]:
        """Hold this stage for one process: a second run of the same stage waits here.

        ``on_wait`` gets one line ("waiting for another run computing <stage>
        ...") when the lock is busy.  Re-check :attr:`done` after entering:
        the other run may have finished the stage meanwhile.  A killed holder
        releases the lock with its process.
        """
        self.dir.mkdir(parents=True, exist_ok=True)
        msg = f"waiting for another run computing {self.name} in {self.dir}"
        with lock_file(self.dir / LOCK, on_wait=(lambda: on_wait(msg)) if on_wait else None):
            yield self

    def finish(self, **info: Any) -> None:
        """Record every file of the folder (size, mtime, sha256), then write meta.json."""
        write_json(
            self.dir / META,
            {
                "stage": self.name,
                "version": self.version,
                "key": self.key,
                "inputs": self.inputs,
                **info,
                "files": record_files(self.dir),
            },
        )


def stage_dir_problem(folder: str | os.PathLike) -> str | None:
    """Why a finished stage folder (e.g. a run folder) cannot be trusted, or None.

    For readers that open a stage folder directly (``Run``): a file that was
    overwritten since the stage finished is named, instead of a traceback from
    the Parquet reader.
    """
    folder = Path(folder)
    try:
        meta = read_json(folder / META)
    except (OSError, ValueError):
        return None  # older folders without meta.json: nothing recorded to check against
    files = meta.get("files") if isinstance(meta, dict) else None
    return verify_files(folder, files) if files else None


def rerecord(folder: str | os.PathLike) -> None:
    """Record a finished stage's files again after a deliberate in-place update.

    Whoever changes a finished stage's files on purpose (e.g. adding a score
    column to a run's ``examples.parquet``) calls this afterwards, under the
    stage's lock, or the next check sees a changed file and recomputes.
    """
    folder = Path(folder)
    meta = read_json(folder / META)
    if isinstance(meta, dict) and "files" in meta:
        meta["files"] = record_files(folder)
        write_json(folder / META, meta)


# ---------------------------------------------------------------------------
# which paths belong to a workdir's store (exports must never land there)


def _is_stage_meta(path: Path) -> bool:
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(meta, dict) and "stage" in meta and "key" in meta


def _is_stage_parent(folder: Path) -> bool:
    """A ``<workdir>/<stage>/`` folder: one of its sub-folders is a stage folder."""
    try:
        return any(_is_stage_meta(p) for p in folder.glob(f"*/{META}"))
    except OSError:
        return False


def store_owner(path: str | os.PathLike) -> str | None:
    """Why ``path`` belongs to a workdir's own store, or None when it does not.

    True for ``<workdir>/latest.json``, anything inside a stage folder (one with
    a stage ``meta.json``) and anything inside ``<workdir>/<stage>/``.  Used to
    refuse exports that would overwrite the cache.
    """
    p = Path(os.path.abspath(Path(path).expanduser()))
    p = p.parent.resolve() / p.name
    parts = [p] + list(p.parents)
    for i, folder in enumerate(parts[1:], start=1):
        child = parts[i - 1]
        if _is_stage_meta(folder / META):
            return f"{folder} is a cached stage of a workdir"
        if (folder / LATEST).exists() and (
            child.name == LATEST
            or (child.is_dir() and _is_stage_parent(child))
            or (child.name in ("embeddings", "clusters", "maps", "runs") and child.is_dir())
        ):
            return f"{child} belongs to the workdir {folder}"
        if _is_stage_parent(folder):
            return f"{folder} holds a workdir's cached stages"
    return None


def holds_store(folder: str | os.PathLike) -> bool:
    """True when ``folder`` is (or contains, one or two levels down) a workdir."""
    folder = Path(folder)
    if (folder / LATEST).exists() or _is_stage_parent(folder):
        return True
    try:
        return any((d / LATEST).exists() or _is_stage_parent(d) for d in folder.iterdir() if d.is_dir())
    except OSError:
        return False
