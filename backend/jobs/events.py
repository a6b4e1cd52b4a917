"""Machine-readable progress: the events a :class:`backend.progress.Reporter` receives, as JSON lines.

When ``$CURATE_PROGRESS_FILE`` names a file, every ``curate`` command appends
one JSON object per line to it, besides the terminal's progress bars (which do
not change)::

    {"t": 1764633600.1, "event": "stage", "name": "embeddings", "kind": "stage", "cached": false, "detail": "..."}
    {"t": 1764633601.2, "event": "update", "done": 512, "total": 60000, "rate": 3800.0, "eta_s": 15.7}
    {"t": 1764633617.0, "event": "end_stage"}
    {"t": 1764633617.0, "event": "info", "message": "source: ...; 60000 examples"}

``done``/``total`` count the current stage's work units (examples, steps, ...);
``rate`` (units per second) and ``eta_s`` (seconds left in this stage) are
measured from the stage's first update.  Updates are thinned to about two per
second per stage (the first and the last of a stage are always written).  Each
line is one ``write`` on a file opened for appending, so a reader sees whole
lines; a reader skips a last line that is still being written.

Standard library only: the job supervisor and the reporters import it cheaply.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TextIO

PROGRESS_ENV = "CURATE_PROGRESS_FILE"
MIN_INTERVAL_S = 0.5


class ProgressFile:
    """Appends progress events to a JSON-lines file.  Never raises: progress must not stop the work."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._lock = threading.Lock()
        self._fh: TextIO | None = None
        self._broken = False
        self._stage_t0: float | None = None
        self._stage_done0 = 0
        self._last_write = 0.0

    def _write(self, obj: dict) -> None:
        if self._broken:
            return
        try:
            if self._fh is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._fh = open(self.path, "a", buffering=1, encoding="utf-8")
            self._fh.write(json.dumps(obj, default=str) + "\n")
        except (OSError, ValueError, TypeError):
            self._broken = True  # a full disk or a closed file: the work goes on without progress events

    def stage(self, name: str, *, kind: str = "stage", cached: bool = False, detail: str = "") -> None:
        with self._lock:
            self._stage_t0 = None
            self._stage_done0 = 0
            self._last_write = 0.0
            self._write(
                {"t": time.time(), "event": "stage", "name": name, "kind": kind, "cached": cached, "detail": detail}
            )

    def update(self, done: int, total: int) -> None:
        with self._lock:
            now = time.time()
            done, total = int(done), int(total)
            if self._stage_t0 is None:
                self._stage_t0, self._stage_done0 = now, done
            last = total > 0 and done >= total
            if not last and self._last_write and now - self._last_write < MIN_INTERVAL_S:
                return
            self._last_write = now
            rate = eta = None
            dt, dn = now - self._stage_t0, done - self._stage_done0
            if dt > 0 and dn > 0:
                rate = dn / dt
                eta = max(0.0, (total - done) / rate) if total else None
            self._write(
                {
                    "t": now,
                    "event": "update",
                    "done": done,
                    "total": total,
                    "rate": None if rate is None else round(rate, 3),
                    "eta_s": None if eta is None else round(eta, 1),
                }
            )

    def end_stage(self) -> None:
        with self._lock:
            self._write({"t": time.time(), "event": "end_stage"})

    def info(self, message: str) -> None:
        with self._lock:
            self._write({"t": time.time(), "event": "info", "message": str(message)})

    def close(self) -> None:
        with self._lock:
            if self._fh is not None:
                try:
                    self._fh.close()
                except OSError:
                    pass
                self._fh = None


def progress_file_from_env(environ=None) -> ProgressFile | None:
    """The :class:`ProgressFile` that ``$CURATE_PROGRESS_FILE`` names, or None."""
    env = os.environ if environ is None else environ
    path = env.get(PROGRESS_ENV)
    return ProgressFile(path) if path else None


# ---------------------------------------------------------------------------
# reading


@dataclass
class StageProgress:
    """One stage (or step inside a stage) as a job's progress file tells it."""

    name: str
    kind: str = "stage"  # "stage" or "substage"
    cached: bool = False
    detail: str = ""
    started: float = 0.0
    updated: float = 0.0
    ended: float | None = None
    done: int = 0
    total: int = 0
    rate: float | None = None
    eta_s: float | None = None  # seconds left when ``updated`` was written

    @property
    def finished(self) -> bool:
        return self.cached or self.ended is not None

    @property
    def fraction(self) -> float | None:
        if self.finished:
            return 1.0
        return min(1.0, self.done / self.total) if self.total > 0 else None

    def eta_now(self, now: float | None = None) -> float | None:
        """Seconds left now (the last estimate minus the time since it was written), or None."""
        if self.eta_s is None or self.finished:
            return None
        return max(0.0, self.eta_s - ((now or time.time()) - self.updated))


@dataclass
class Progress:
    stages: list[StageProgress] = field(default_factory=list)
    messages: list[tuple[float, str]] = field(default_factory=list)

    @property
    def current(self) -> StageProgress | None:
        """The stage running now (the last one not finished), or None."""
        for s in reversed(self.stages):
            if not s.finished:
                return s
        return None

    def epochs_eta(self, now: float | None = None) -> tuple[int, int, float | None] | None:
        """(epoch, epochs, seconds left overall) when the stages are "epoch i/N" (train-encoder), else None."""
        epochs = [(s, m) for s in self.stages if (m := _EPOCH.match(s.name))]
        if not epochs:
            return None
        last, m = epochs[-1]
        i, n = int(m.group(1)), int(m.group(2))
        full = [s.ended - s.started for s, _ in epochs if s.ended is not None and not s.cached]
        left_now = last.eta_now(now)
        rest: float | None
        if full:
            per_epoch = sum(full) / len(full)
            rest = (n - i) * per_epoch + (left_now if left_now is not None else 0.0 if last.finished else per_epoch)
        else:
            frac = last.fraction
            rest = None if left_now is None or not frac else left_now + (n - i) * (left_now / max(1e-9, 1 - frac))
        return i, n, rest


_EPOCH = re.compile(r"^epoch (\d+)/(\d+)$")


class _Fold:
    """The events of one file folded so far, and how far it was read (files only grow while a job runs)."""

    def __init__(self, inode: int):
        self.inode = inode
        self.offset = 0
        self.progress = Progress()
        self.cur: StageProgress | None = None

    def feed(self, line: str) -> None:
        try:
            ev = json.loads(line)
        except ValueError:
            return  # a damaged line: skipped
        if not isinstance(ev, dict):
            return
        out, cur = self.progress, self.cur
        t = float(ev.get("t") or 0.0)
        kind = ev.get("event")
        if kind == "stage":
            if cur is not None and cur.ended is None:
                cur.ended = t  # a new stage ends the one before, as the terminal's bars do
            cur = StageProgress(
                name=str(ev.get("name", "")),
                kind=str(ev.get("kind", "stage")),
                cached=bool(ev.get("cached")),
                detail=str(ev.get("detail", "")),
                started=t,
                updated=t,
            )
            out.stages.append(cur)
        elif kind == "update":
            if cur is None or cur.ended is not None:  # updates outside a stage (or after it): an unnamed step
                cur = StageProgress(name=cur.name if cur else "working", started=t, updated=t)
                out.stages.append(cur)
            cur.done, cur.total = int(ev.get("done") or 0), int(ev.get("total") or 0)
            cur.rate, cur.eta_s, cur.updated = ev.get("rate"), ev.get("eta_s"), t
        elif kind == "end_stage":
            if cur is not None and cur.ended is None:
                cur.ended = t
        elif kind == "info":
            out.messages.append((t, str(ev.get("message", ""))))
            del out.messages[:-200]
        self.cur = cur


_FOLDS: dict[str, _Fold] = {}
_FOLDS_LOCK = threading.Lock()
_MAX_FOLDS = 64


def read_progress(path: str | os.PathLike, *, max_messages: int = 50) -> Progress:
    """Fold a progress file's events into stages (in order) and the last ``max_messages`` messages.

    Incremental: a page that asks every second reads only the lines written since it last asked.
    A last line still being written is left for the next call.
    """
    key = os.path.abspath(path)
    try:
        st = os.stat(key)
    except OSError:
        return Progress()
    with _FOLDS_LOCK:
        fold = _FOLDS.get(key)
        if fold is None or fold.inode != st.st_ino or st.st_size < fold.offset:
            fold = _FOLDS[key] = _Fold(st.st_ino)
            while len(_FOLDS) > _MAX_FOLDS:
                del _FOLDS[next(iter(_FOLDS))]
        if st.st_size > fold.offset:
            try:
                with open(key, "rb") as fh:
                    fh.seek(fold.offset)
                    data = fh.read(st.st_size - fold.offset)
            except OSError:
                data = b""
            end = data.rfind(b"\n")
            if end >= 0:
                for line in data[:end].decode("utf-8", errors="replace").split("\n"):
                    fold.feed(line)
                fold.offset += end + 1
        return Progress(
            stages=[replace(s) for s in fold.progress.stages], messages=fold.progress.messages[-max_messages:]
        )
