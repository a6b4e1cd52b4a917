"""The supervisor of one background job: ``python supervise.py JOB_DIR`` (started by :func:`backend.jobs.start_job`).

It detaches (a second fork, so no parent has to wait for it and it outlives
the app's server process), starts the job's command in its own process group
with its output in ``log.txt`` and ``$CURATE_PROGRESS_FILE`` pointing at
``progress.jsonl``, and is the only writer of ``status.json``: ``running``
with both process ids, then ``succeeded`` / ``failed`` / ``cancelled`` with
the exit code and the end time.

Cancelling is a file (``cancel.json``, written by :func:`backend.jobs.cancel_job`):
the supervisor then sends SIGINT to the command's process group (what Ctrl-C
in a terminal does: the pipeline keeps its finished chunks and the same
command resumes), SIGTERM after ``grace_s`` seconds, SIGKILL after as many
again.  A SIGTERM to the supervisor itself cancels the same way.

Standard library only (it is run as a script, not imported with the backend):
it starts in milliseconds and holds almost no memory while the job runs.  Its
writes are atomic like :mod:`backend.io`'s (a temporary file named
``.NAME.<pid>-XXXX.tmp.json`` beside the target, then ``os.replace``, so
``backend.io.clean_stale_tmp`` recognises a leftover).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

POLL_S = 0.2


def write_json_atomic(dest: Path, obj: dict) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.{os.getpid()}-", suffix=".tmp.json", dir=dest.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(json.dumps(obj, indent=2) + "\n")
        os.replace(tmp, dest)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def process_start_ticks(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (Linux), to tell it from a later one with its pid."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    try:
        return int(stat.rsplit(")", 1)[1].split()[19])
    except (IndexError, ValueError):
        return None


def _child_setup() -> None:
    """In the command's process before exec: its own process group (a cancel reaches its DataLoader workers
    too), and SIGINT back to the default (an ignored signal stays ignored across exec, and Python then
    installs no KeyboardInterrupt handler: the supervisor ignores SIGINT itself)."""
    os.setpgrp()
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class Supervisor:
    def __init__(self, job_dir: Path):
        self.dir = job_dir
        self.job = json.loads((job_dir / "job.json").read_text())
        self.status: dict = {"state": "starting"}
        self.cancel_sent: float | None = None
        self.term_sent: float | None = None
        self.kill_sent = False
        self.child: subprocess.Popen | None = None
        self._sigterm = False

    def save(self, **changes) -> None:
        self.status.update(changes)
        write_json_atomic(self.dir / "status.json", self.status)

    def cancel_requested(self) -> bool:
        return self._sigterm or (self.dir / "cancel.json").exists()

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._on_sigterm)
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a stray Ctrl-C must not orphan the job without a status
        me = os.getpid()
        self.save(state="running", pid=me, pid_start=process_start_ticks(me), started=time.time())
        env = dict(os.environ, **self.job.get("env", {}))
        env["CURATE_PROGRESS_FILE"] = str(self.dir / "progress.jsonl")
        env["CURATE_JOB_ID"] = self.dir.name
        env["PYTHONUNBUFFERED"] = "1"
        with open(self.dir / "log.txt", "ab", buffering=0) as log:
            try:
                self.child = subprocess.Popen(
                    self.job["command"],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    cwd=self.job.get("cwd") or None,
                    env=env,
                    preexec_fn=_child_setup,
                )
            except OSError as exc:
                log.write(f"cannot start {self.job['command'][0]}: {exc}\n".encode())
                self.save(state="failed", exit_code=None, ended=time.time(), error=f"cannot start: {exc}")
                return 1
            self.save(child_pid=self.child.pid, child_start=process_start_ticks(self.child.pid))
            rc = self._wait()
        cancelled = self.cancel_sent is not None
        state = "succeeded" if rc == 0 else "cancelled" if cancelled else "failed"
        extra = {"signal": signal.Signals(-rc).name} if rc < 0 and -rc in signal.valid_signals() else {}
        self.save(state=state, exit_code=rc, ended=time.time(), **extra)
        return 0

    def _wait(self) -> int:
        assert self.child is not None
        grace = float(self.job.get("grace_s", 20.0))
        while True:
            try:
                return self.child.wait(timeout=POLL_S)
            except subprocess.TimeoutExpired:
                pass
            now = time.time()
            if self.cancel_sent is None and self.cancel_requested():
                self._signal(signal.SIGINT)
                self.cancel_sent = now
                self.save(state="cancelling", cancel_sent=now)
            elif self.cancel_sent is not None and self.term_sent is None and now - self.cancel_sent > grace:
                self._signal(signal.SIGTERM)
                self.term_sent = now
            elif self.term_sent is not None and not self.kill_sent and now - self.term_sent > grace:
                self._signal(signal.SIGKILL)
                self.kill_sent = True

    def _signal(self, sig: int) -> None:
        assert self.child is not None
        try:
            os.killpg(self.child.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def _on_sigterm(self, signum, frame) -> None:
        self._sigterm = True


def main(argv: list[str]) -> int:
    job_dir = Path(argv[1]).resolve()
    # detach: the first process returns at once (its parent reaps it); the second is adopted by init
    if os.fork() > 0:
        os._exit(0)
    try:
        return Supervisor(job_dir).run()
    except Exception as exc:  # noqa: BLE001 - whatever happens, leave a final status behind
        try:
            status = json.loads((job_dir / "status.json").read_text())
        except (OSError, ValueError):
            status = {}
        status.update(state="failed", ended=time.time(), error=f"supervisor: {type(exc).__name__}: {exc}")
        write_json_atomic(job_dir / "status.json", status)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
