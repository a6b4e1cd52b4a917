"""Long actions as background jobs (``backend.jobs``): start one, and a panel that follows it.

The page script only starts the job and draws its panel; the work runs in a
process of its own, so switching pages, reloading the browser or closing the
tab does not stop it, and the panel finds it again by its ``key``::

    from curation_app.components import jobs as jobs_panel

    if st.button("Estimate"):
        jobs_panel.start(["scaling", "--workdir", str(run.dir), "--metric", m], label="Scaling estimate", key=k)
    jobs_panel.show(k, on_finish=lambda job: services.scaling_grid.clear())

While the job runs the panel refreshes itself every second (``st.fragment(run_every=...)``): one
line per finished stage, a progress bar with counts and the stage's ETA for the running one, a
Cancel button.  When it ends the whole page reruns once (so it shows the new results) and the
panel says how it ended, with the log's last lines when it failed.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping

import streamlit as st

from backend.jobs import Job, StageProgress, cancel_job, latest_job, load_job_dir, start_job
from curation_app import services

REFRESH_S = 1.0
_WATCHING = "jobs._watching"  # {key: job id} of jobs this session saw running (on_finish fires once for them)
_DISMISSED = "jobs._dismissed"


def active(key: str) -> Job | None:
    """The job running under ``key`` now, or None."""
    job = latest_job(services.workdir(), key)
    return job if job is not None and job.active else None


def start(argv: list[str], *, label: str, key: str) -> Job:
    """Start ``curate ARGV`` in the background under ``key``; when one already runs under it, return that one."""
    running = active(key)
    if running is not None:
        return running
    job = start_job(argv, services.workdir(), label=label, key=key)
    st.session_state.setdefault(_WATCHING, {})[key] = job.id
    return job


def show(
    key: str,
    *,
    on_finish: Callable[[Job], None] | None = None,
    final: bool = True,
    fields: Mapping[str, str] | None = None,
    checkboxes: frozenset[str] = frozenset(),
) -> Job | None:
    """Draw the panel of the newest job under ``key`` (nothing when there is none); return the job.

    ``on_finish(job)`` is called once, on the page run after a job this session watched has ended
    (whatever the outcome: check ``job.state``).  ``final=False`` draws nothing for a finished job.
    ``fields``: {command flag: the label of the page's widget that set it}, so a failed job's message
    names the page's field instead of the flag (:func:`page_words`); ``checkboxes``: those flags of
    ``fields`` that are a checkbox on the page.
    """
    job = latest_job(services.workdir(), key)
    if job is None:
        return None
    watching = st.session_state.setdefault(_WATCHING, {})
    if job.active:
        watching[key] = job.id
        _live(str(job.dir))
        return job
    if watching.get(key) == job.id:
        del watching[key]
        if on_finish is not None:
            on_finish(job)
    if final and job.id not in st.session_state.get(_DISMISSED, set()):
        _final(job, fields or {}, checkboxes)
    return job


@st.fragment(run_every=REFRESH_S)
def _live(job_dir: str) -> None:
    job = load_job_dir(job_dir)
    if job.finished:
        st.rerun()  # the whole page: its results (a new run, a new estimate) exist now
    with st.container(border=True):
        _header(job)
        _stages(job)
        c1, c2 = st.columns([1, 4])
        c1.button(
            "Cancelling..." if job.cancel_requested else "Cancel",
            key=f"jobs.cancel.{job.id}",
            icon=":material/stop_circle:",
            disabled=job.cancel_requested,
            on_click=cancel_job,
            args=(job,),
        )
        c2.caption(
            "Runs in the background: switch pages or close the tab and come back. "
            "Cancel keeps the finished work; starting the same thing again resumes it."
        )


def _header(job: Job) -> None:
    verb = "Cancelling" if job.cancel_requested or job.state == "cancelling" else "Running"
    st.markdown(f"**{verb}: {job.label or job.command_line}** · {_duration(job.elapsed_s)}")


def _stages(job: Job) -> None:
    prog = job.progress()
    if not prog.stages:
        st.progress(0.0, text="starting...")
        return
    now = time.time()
    lines = []
    for s in prog.stages[:-1] if not prog.stages[-1].finished else prog.stages:
        lines.append(_finished_line(s))
    if lines:
        st.caption("  \n".join(lines[-12:]))
    cur = prog.stages[-1]
    if not cur.finished:
        st.progress(cur.fraction if cur.fraction is not None else 0.0, text=_running_text(cur, now))
        if cur.detail:
            st.caption(cur.detail)
    epochs = prog.epochs_eta(now)
    if epochs is not None and epochs[2] is not None:
        st.caption(f"Epoch {epochs[0]:,} of {epochs[1]:,}: about {_duration(epochs[2])} left in all")
    if prog.messages:
        st.caption(prog.messages[-1][1])


def _finished_line(s: StageProgress) -> str:
    indent = "\u2003" if s.kind == "substage" else ""
    if s.cached:
        return f"{indent}:material/check_circle: {s.name}: cached"
    took = (s.ended or s.updated) - s.started
    count = f", {s.total:,}" if s.total else ""
    return f"{indent}:material/check_circle: {s.name}{count} · {_duration(took)}"


def _running_text(s: StageProgress, now: float) -> str:
    if not s.total:
        return f"{s.name}: working... ({_duration(now - s.started)})"
    out = f"{s.name}: {s.done:,} / {s.total:,} ({s.done / s.total:.0%})"
    if s.rate:
        out += f" · {s.rate:,.0f}/s" if s.rate >= 10 else f" · {s.rate:.2g}/s"
    eta = s.eta_now(now)
    out += f" · about {_duration(eta)} left" if eta is not None else " · estimating time left..."
    return out


def _duration(seconds: float) -> str:
    s = int(round(max(0.0, seconds)))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


def _dismiss(job_id: str) -> None:
    st.session_state.setdefault(_DISMISSED, set()).add(job_id)


_PASS_FLAG = re.compile(r"\b(?:pass|use|add) (--[a-z][a-z0-9-]*)( to\b| with\b)?")
_FLAG = re.compile(r"(?<![\w-])(--[a-z][a-z0-9-]*)")


def page_words(message: str, fields: Mapping[str, str], checkboxes: frozenset[str] = frozenset()) -> str:
    """A command's one-line error in the words of the page that started it: the flags the page set through
    a widget become that widget's label (``pass --k 5 or less`` -> ``set “k (clusters)” to 5 or less``,
    ``pass --force to overwrite it`` -> ``tick “Overwrite” to overwrite it``); other flags stay as they are
    (the caption below the message still gives the whole command)."""

    def instruction(m: re.Match) -> str:
        flag, tail = m.group(1), m.group(2) or ""
        if flag not in fields:
            return m.group(0)
        if flag in checkboxes:
            return f"tick “{fields[flag]}”{tail}"
        return f"set “{fields[flag]}” to"  # "pass --k 5", "use --map pca", "pass --metrics with a, b"

    said = _PASS_FLAG.sub(instruction, message)
    return _FLAG.sub(lambda m: f"“{fields[m.group(1)]}”" if m.group(1) in fields else m.group(0), said)


def _final(job: Job, fields: Mapping[str, str], checkboxes: frozenset[str]) -> None:
    what = job.label or job.command_line
    text = f"**{what}**: {job.describe_end()}."
    if job.state == "succeeded":
        st.success(text, icon=":material/check_circle:")
    elif job.state == "cancelled":
        st.warning(text, icon=":material/stop_circle:")
    else:
        tail = job.log_tail(25)
        said = [ln[len("error: ") :] for ln in tail.splitlines() if ln.startswith("error: ")]
        if said:  # a CurateError: the command's own one-line message says what to do
            text = f"**{what}** stopped: {page_words(said[-1], fields, checkboxes)}"
        st.error(text, icon=":material/error:")
        if tail:
            st.code(tail, language=None, wrap_lines=True)
        st.caption(f"The whole log: `{job.dir / 'log.txt'}`; the command: `{job.command_line}`")
    c1, c2, _ = st.columns([1.6, 1, 4])
    if job.state in ("cancelled", "died", "failed") and job.key:
        c1.button(
            "Start it again" + (" (resumes)" if job.state != "failed" else ""),
            key=f"jobs.restart.{job.id}",
            icon=":material/replay:",
            on_click=_restart,
            args=(job,),
            help=f"runs `{job.command_line}` again; the finished work is reused",
        )
    c2.button("Dismiss", key=f"jobs.dismiss.{job.id}", on_click=_dismiss, args=(job.id,), type="tertiary")


def _restart(job: Job) -> None:
    if active(job.key) is None:
        new = start_job(job.argv, services.workdir(), label=job.label, key=job.key)
        st.session_state.setdefault(_WATCHING, {})[job.key] = new.id


_LOOKED = "jobs._looked"


def first_look(job: Job) -> bool:
    """True the first time this session asks about this finished job (to refresh a cached "not computed" once)."""
    seen = st.session_state.setdefault(_LOOKED, set())
    if not job.finished or job.id in seen:
        return False
    seen.add(job.id)
    return True


def json_output(job: Job) -> dict | None:
    """The JSON a ``curate ... --json`` job printed last (its log also holds the progress lines), or None."""
    import json

    try:
        text = (job.dir / "log.txt").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    at = text.rfind("\n{\n")
    start = at + 1 if at >= 0 else (0 if text.startswith("{\n") else -1)
    if start < 0:
        return None
    try:
        obj = json.loads(text[start:])
    except ValueError:
        return None
    return obj if isinstance(obj, dict) else None
