"""Start, find, follow and cancel background ``curate`` commands; their state lives in ``<workdir>/jobs/<id>/``.

A job folder holds::

    job.json        what to run: argv (the words after ``curate``), label, key, cwd, created, grace_s
    status.json     written only by the supervisor: state, pids, started, ended, exit code
    progress.jsonl  the command's progress events (backend.jobs.events)
    log.txt         the command's stdout and stderr
    cancel.json     present once a cancel was asked for

The state a reader sees is ``starting``, ``running``, ``cancelling``,
``succeeded``, ``failed``, ``cancelled`` or ``died``: a job whose supervisor
and command are both gone without a final status (killed, machine restarted)
is ``died``, never "running" forever.  Process ids are checked together with
their start time, so a recycled pid does not look like the job.
"""

from __future__ import annotations

import json
import os
import secrets
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from ..errors import CurateError
from ..io import write_json
from .events import Progress, read_progress
from .supervise import process_start_ticks

JOBS_DIR = "jobs"
ACTIVE = ("starting", "running", "cancelling")
FINAL = ("succeeded", "failed", "cancelled", "died")
START_TIMEOUT_S = 30.0  # a job without a status after this long never started
KEEP_FINISHED = 10  # finished jobs kept per key (their logs); older ones are removed when a new one starts
# the child runs the CLI exactly as the `curate` entry point does
CLI_BOOT = "import sys; from backend.cli import main; sys.exit(main(sys.argv[1:]))"
SUPERVISOR = Path(__file__).with_name("supervise.py")


@dataclass(frozen=True)
class Job:
    """One background command, as its folder tells it now (call :meth:`refresh` for a newer view)."""

    id: str
    dir: Path
    argv: list[str]
    label: str
    key: str
    created: float
    state: str
    started: float | None = None
    ended: float | None = None
    exit_code: int | None = None
    error: str | None = None
    signal: str | None = None
    cancel_requested: bool = False

    @property
    def active(self) -> bool:
        return self.state in ACTIVE

    @property
    def finished(self) -> bool:
        return self.state in FINAL

    @property
    def command_line(self) -> str:
        return shlex.join(["curate", *self.argv])

    @property
    def elapsed_s(self) -> float:
        start = self.started or self.created
        return max(0.0, (self.ended or time.time()) - start)

    def refresh(self) -> Job:
        return load_job_dir(self.dir)

    def progress(self) -> Progress:
        return read_progress(self.dir / "progress.jsonl")

    def log_tail(self, lines: int = 30) -> str:
        """The last ``lines`` lines of the output; a progress bar's ``\\r`` redraws count as one line."""
        try:
            with open(self.dir / "log.txt", "rb") as fh:
                fh.seek(0, os.SEEK_END)
                size = fh.tell()
                fh.seek(max(0, size - 64 * 1024))
                raw = fh.read().decode("utf-8", errors="replace")
        except OSError:
            return ""
        out = [ln.rsplit("\r", 1)[-1] if "\r" in ln.rstrip("\r") else ln.rstrip("\r") for ln in raw.split("\n")]
        out = [ln for ln in out if ln.strip()]
        return "\n".join(out[-lines:])

    def describe_end(self) -> str:
        """One line saying how the job ended (or that it has not)."""
        took = _duration(self.elapsed_s)
        if self.state == "succeeded":
            return f"finished in {took}"
        if self.state == "cancelled":
            return f"cancelled after {took}; finished work is kept and the same command resumes"
        if self.state == "died":
            return (
                f"stopped without a result after {took} (its process is gone: killed, out of memory, or the "
                "machine restarted); finished work is kept: start it again to resume"
            )
        if self.state == "failed":
            why = self.error or (f"signal {self.signal}" if self.signal else f"exit code {self.exit_code}")
            return f"failed after {took} ({why})"
        return f"{self.state} for {took}"


def _duration(seconds: float) -> str:
    s = int(round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


def jobs_root(workdir: str | os.PathLike) -> Path:
    return Path(workdir).expanduser().resolve() / JOBS_DIR


def _alive(pid: int | None, start_ticks: int | None) -> bool:
    """Whether process ``pid`` runs and is the one started at ``start_ticks`` (zombies count as gone)."""
    if not pid:
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc (not Linux): the signal check is all there is
    after = stat.rsplit(")", 1)[-1].split()
    if after and after[0] in ("Z", "X"):
        return False
    return start_ticks is None or process_start_ticks(int(pid)) == start_ticks


def _read(path: Path) -> dict | None:
    try:
        obj = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return obj if isinstance(obj, dict) else None


def load_job_dir(job_dir: str | os.PathLike) -> Job:
    d = Path(job_dir)
    job = _read(d / "job.json")
    if job is None:
        raise CurateError(f"{d} is not a job folder (no readable job.json)")
    st = _read(d / "status.json") or {}
    state = st.get("state", "starting")
    if state in ACTIVE:
        if not st:  # the supervisor has not written yet
            if time.time() - float(job.get("created", 0)) > START_TIMEOUT_S:
                state = "died"
        elif not (_alive(st.get("pid"), st.get("pid_start")) or _alive(st.get("child_pid"), st.get("child_start"))):
            state = "died"
    return Job(
        id=d.name,
        dir=d,
        argv=list(job.get("argv", [])),
        label=str(job.get("label", "")),
        key=str(job.get("key", "")),
        created=float(job.get("created", 0.0)),
        state=state,
        started=st.get("started"),
        ended=st.get("ended"),
        exit_code=st.get("exit_code"),
        error=st.get("error"),
        signal=st.get("signal"),
        cancel_requested=(d / "cancel.json").exists(),
    )


def load_job(workdir: str | os.PathLike, job_id: str) -> Job:
    d = jobs_root(workdir) / job_id
    if not d.is_dir():
        raise CurateError(f"no job {job_id!r} in {jobs_root(workdir)}")
    return load_job_dir(d)


def list_jobs(workdir: str | os.PathLike, *, key: str | None = None) -> list[Job]:
    """The workdir's jobs, newest first (only those with ``key`` when given)."""
    root = jobs_root(workdir)
    out = []
    try:
        dirs = [d for d in root.iterdir() if d.is_dir() and (d / "job.json").is_file()]
    except OSError:
        return []
    for d in dirs:
        try:
            j = load_job_dir(d)
        except CurateError:
            continue
        if key is None or j.key == key:
            out.append(j)
    out.sort(key=lambda j: (j.created, j.id), reverse=True)
    return out


def latest_job(workdir: str | os.PathLike, key: str) -> Job | None:
    """The newest job started under ``key`` (e.g. "data.run"), or None.

    Cheap for a page that asks every second: folders are visited newest first (their names start with
    the start time) and only the first one with this key is read in full."""
    try:
        dirs = sorted((d for d in jobs_root(workdir).iterdir() if d.is_dir()), key=lambda d: d.name, reverse=True)
    except OSError:
        return None
    for d in dirs:
        job = _read(d / "job.json")
        if job is not None and job.get("key") == key:
            return load_job_dir(d)
    return None


def start_job(
    argv: list[str],
    workdir: str | os.PathLike,
    *,
    label: str = "",
    key: str = "",
    cwd: str | os.PathLike | None = None,
    env: dict[str, str] | None = None,
    grace_s: float = 20.0,
) -> Job:
    """Run ``curate ARGV...`` in the background; return its :class:`Job` (already ``running``).

    The command runs in a process of its own (under a small supervisor), so it
    survives the page, the browser tab and the app's server; its state is
    recorded under ``<workdir>/jobs/<id>/``.  ``key`` names what the job is for
    (the app finds the job again by it); ``grace_s`` is how long a cancel waits
    after SIGINT before SIGTERM (and again before SIGKILL).
    """
    if not argv or not all(isinstance(a, str) for a in argv):
        raise CurateError("a job needs the words of a curate command, e.g. ['run', '--source', 'demo', ...]")
    root = jobs_root(workdir)
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CurateError(f"cannot create {root} ({exc.strerror}): the workdir must be writable") from None
    while True:
        # the start time to the microsecond first: names sort in start order, so latest_job finds a job
        # started again within the same second (a "Start it again" click), not the one it replaces
        now = time.time()
        job_id = time.strftime("%Y%m%d-%H%M%S", time.localtime(now)) + f".{int(now % 1 * 1e6):06d}-"
        job_id += secrets.token_hex(3)
        d = root / job_id
        try:
            d.mkdir()
            break
        except FileExistsError:
            continue
    created = time.time()
    write_json(
        d / "job.json",
        {
            "argv": list(argv),
            "command": [sys.executable, "-c", CLI_BOOT, *argv],
            "label": label,
            "key": key,
            "cwd": str(Path(cwd or os.getcwd()).resolve()),
            "env": dict(env or {}),
            "grace_s": float(grace_s),
            "created": created,
        },
    )
    with open(d / "supervisor.log", "ab") as errors:
        proc = subprocess.Popen(
            [sys.executable, str(SUPERVISOR), str(d)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=errors,
            start_new_session=True,  # not in the app's process group: a Ctrl-C on the app does not stop the job
            close_fds=True,
        )
    proc.wait(timeout=30)  # the supervisor forks and this first process returns at once
    deadline = time.time() + 10.0
    while not (d / "status.json").exists() and time.time() < deadline:
        time.sleep(0.02)
    if key:
        forget_old_jobs(workdir, key=key)
    return load_job_dir(d)


def forget_old_jobs(workdir: str | os.PathLike, *, key: str, keep: int = KEEP_FINISHED) -> list[str]:
    """Remove the folders of finished jobs under ``key`` beyond the newest ``keep``; return their ids.

    A job that may still run (starting, running, cancelling) is never removed."""
    import shutil

    finished = [j for j in list_jobs(workdir, key=key) if j.finished]
    removed = []
    for j in finished[keep:]:
        shutil.rmtree(j.dir, ignore_errors=True)
        removed.append(j.id)
    return removed


def cancel_job(job: Job) -> Job:
    """Ask ``job`` to stop: SIGINT now (as Ctrl-C: finished work is kept), SIGTERM after its grace period."""
    job = job.refresh()
    if job.finished:
        return job
    write_json(job.dir / "cancel.json", {"requested": time.time()})
    st = _read(job.dir / "status.json") or {}
    if not _alive(st.get("pid"), st.get("pid_start")) and _alive(st.get("child_pid"), st.get("child_start")):
        try:  # the supervisor is gone but the command runs: signal it directly
            os.killpg(int(st["child_pid"]), signal.SIGINT)
        except (ProcessLookupError, PermissionError):
            pass
    return job.refresh()


def wait_job(job: Job, *, timeout: float = 600.0, poll_s: float = 0.2) -> Job:
    """Block until ``job`` has finished (or ``timeout`` seconds passed); return its latest view."""
    deadline = time.time() + timeout
    job = job.refresh()
    while job.active and time.time() < deadline:
        time.sleep(poll_s)
        job = job.refresh()
    return job
