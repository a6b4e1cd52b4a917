"""Background jobs: a ``curate`` command in a process of its own, followed through files.

Headless (no Streamlit): the app's job panel, a script or a test use the same
calls::

    from backend.jobs import start_job, wait_job, cancel_job

    job = start_job(["run", "--source", "demo", "--workdir", "work"], "work", label="demo run", key="data.run")
    job.progress().current          # the stage running now: name, done / total, rate, ETA
    cancel_job(job)                 # SIGINT (as Ctrl-C: finished work is kept), SIGTERM after a grace period
    wait_job(job).state             # "cancelled"; start the same command again to resume

State, log and progress live in ``<workdir>/jobs/<id>/`` (see :mod:`backend.jobs.core`);
the progress events are :mod:`backend.jobs.events`.
"""

from .core import (
    ACTIVE,
    FINAL,
    Job,
    cancel_job,
    forget_old_jobs,
    jobs_root,
    latest_job,
    list_jobs,
    load_job,
    load_job_dir,
    start_job,
    wait_job,
)
from .events import PROGRESS_ENV, Progress, ProgressFile, StageProgress, read_progress
from .workdir import current_run_key, set_current_run

__all__ = [
    "ACTIVE",
    "FINAL",
    "Job",
    "PROGRESS_ENV",
    "Progress",
    "ProgressFile",
    "StageProgress",
    "cancel_job",
    "current_run_key",
    "forget_old_jobs",
    "jobs_root",
    "latest_job",
    "list_jobs",
    "load_job",
    "load_job_dir",
    "read_progress",
    "set_current_run",
    "start_job",
    "wait_job",
]
