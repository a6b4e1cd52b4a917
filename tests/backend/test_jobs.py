"""Background jobs (backend.jobs): real ``curate`` commands in their own processes, their progress, cancel,
death and resume; the JSON-lines progress the CLI writes; ``curate run --keep-current``.

Real data: the session's Fashion-MNIST PNG/JPEG folder (tests/conftest.py) and a small precomputed
embeddings file; the pixels encoder and the PCA map keep each command to seconds.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from backend import CurateError
from backend.jobs import (
    Job,
    cancel_job,
    current_run_key,
    latest_job,
    list_jobs,
    load_job_dir,
    read_progress,
    set_current_run,
    start_job,
    wait_job,
)
from backend.jobs.events import ProgressFile

FAST = ["--map", "pca", "--device", "cpu", "--workers", "0"]


def _wait_for(job: Job, predicate, timeout: float = 120.0) -> Job:
    deadline = time.time() + timeout
    while time.time() < deadline:
        job = job.refresh()
        if predicate(job) or job.finished:
            return job
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting on {job.id}: {job.state}\n{job.log_tail()}")


def _run_dir(job: Job) -> Path:
    line = next(ln for ln in job.log_tail(200).splitlines() if ln.startswith("run directory: "))
    return Path(line.split(": ", 1)[1])


# ---------------------------------------------------------------------------
# the progress file


def test_progress_file_folds_into_stages_with_counts_rate_and_eta(tmp_path):
    pf = ProgressFile(tmp_path / "p.jsonl")
    pf.stage("embeddings", detail="pixels on cpu")
    pf.update(0, 100)
    time.sleep(0.6)
    pf.update(40, 100)
    pf.info("a message")
    pf.update(100, 100)  # the last update of a stage is always written
    pf.end_stage()
    pf.stage("clusters", cached=True)
    pf.stage("score el2n", kind="substage")
    pf.update(1, 4)
    with open(tmp_path / "p.jsonl", "a") as fh:
        fh.write('{"t": 1, "event": "upd')  # a line still being written is skipped
    prog = read_progress(tmp_path / "p.jsonl")
    emb, clu, sub = prog.stages
    assert (emb.name, emb.done, emb.total, emb.finished, emb.fraction) == ("embeddings", 100, 100, True, 1.0)
    assert emb.rate and emb.rate > 0 and emb.eta_s == 0.0
    assert clu.cached and clu.finished
    assert sub.kind == "substage" and (sub.done, sub.total) == (1, 4) and not sub.finished
    assert prog.current is sub and sub.fraction == 0.25
    assert prog.messages[-1][1] == "a message"


def test_progress_is_read_incrementally_and_a_half_written_line_waits(tmp_path):
    path = tmp_path / "p.jsonl"
    pf = ProgressFile(path)
    pf.stage("a")
    pf.update(1, 10)
    first = read_progress(path)
    first.stages[0].done = 999  # a caller's copy: the cache is not changed
    with open(path, "a") as fh:
        fh.write('{"t": 2, "event": "update", "done": 5, "total": 10}\n{"t": 3, "event": "upd')
    again = read_progress(path)
    assert [(s.name, s.done) for s in again.stages] == [("a", 5)]
    with open(path, "a") as fh:
        fh.write('ate", "done": 7, "total": 10}\n')
    assert read_progress(path).stages[0].done == 7
    path.unlink()
    ProgressFile(path).stage("b")  # a new file in its place: read from its start
    assert [s.name for s in read_progress(path).stages] == ["b"]


def test_eta_is_measured_from_the_stage_s_own_updates(tmp_path):
    pf = ProgressFile(tmp_path / "p.jsonl")
    pf.stage("work")
    pf.update(0, 1000)
    time.sleep(0.55)
    pf.update(100, 1000)  # 100 units in ~0.55 s: ~9 x 0.55 s left
    s = read_progress(tmp_path / "p.jsonl").stages[0]
    assert 3.0 < s.eta_s < 8.0, s.eta_s


def test_the_cli_writes_progress_without_changing_the_terminal(tmp_path, monkeypatch):
    """TqdmReporter tees its events to $CURATE_PROGRESS_FILE; its own output is the same with and without."""
    from backend.progress import TqdmReporter

    def drive(rep):
        rep.stage("source", detail="reading x")
        rep.info("source: 3 examples")
        rep.substage("score a")
        rep.update(1, 3)
        rep.update(3, 3)
        rep.end_stage()

    plain = io.StringIO()
    monkeypatch.delenv("CURATE_PROGRESS_FILE", raising=False)
    drive(TqdmReporter(plain))
    teed = io.StringIO()
    monkeypatch.setenv("CURATE_PROGRESS_FILE", str(tmp_path / "p.jsonl"))
    drive(TqdmReporter(teed))
    strip = lambda s: [ln.split("|")[0] for ln in s.replace("\r", "\n").splitlines() if ln.strip()]  # noqa: E731
    assert strip(plain.getvalue()) == strip(teed.getvalue())
    prog = read_progress(tmp_path / "p.jsonl")
    assert [s.name for s in prog.stages] == ["source", "score a"]
    assert prog.stages[0].ended is not None  # a new stage ends the one before; a message does not
    assert prog.stages[1].done == 3 and prog.stages[1].finished


# ---------------------------------------------------------------------------
# real jobs


def test_a_run_job_succeeds_with_progress_and_log(image_folder, tmp_path):
    work = tmp_path / "w"
    argv = ["run", "--source", str(image_folder), "--workdir", str(work), *FAST]
    job = start_job(argv, work, label="a run", key="data.run")
    assert job.state in ("starting", "running") and job.dir == work / "jobs" / job.id
    seen_running = _wait_for(job, lambda j: j.progress().current is not None)
    assert seen_running.active or seen_running.state == "succeeded"
    job = wait_job(job, timeout=300)
    assert job.state == "succeeded" and job.exit_code == 0, job.log_tail()
    stages = {s.name: s for s in job.progress().stages}
    assert {"source", "embeddings", "clusters", "run"} <= set(stages)
    assert stages["embeddings"].total == 200 and stages["embeddings"].done == 200
    assert all(s.finished for s in stages.values())
    run_dir = _run_dir(job)
    assert (run_dir / "examples.parquet").exists() and current_run_key(work) == run_dir.name
    assert job.started and job.ended and job.ended >= job.started
    assert job.describe_end().startswith("finished in")
    assert latest_job(work, "data.run").id == job.id and [j.id for j in list_jobs(work)] == [job.id]
    assert latest_job(work, "other") is None
    status = json.loads((job.dir / "status.json").read_text())
    assert status["state"] == "succeeded" and status["child_pid"] != status["pid"]


def test_a_failing_job_says_why_in_one_line(tmp_path):
    work = tmp_path / "w"
    job = wait_job(start_job(["run", "--source", str(tmp_path / "nothing"), "--workdir", str(work)], work))
    assert job.state == "failed" and job.exit_code == 2
    assert any(ln.startswith("error: ") for ln in job.log_tail().splitlines())
    assert "exit code 2" in job.describe_end()


def test_the_latest_job_is_the_one_started_last_even_within_one_second(tmp_path):
    work = tmp_path / "w"
    argv = ["run", "--source", str(tmp_path / "nothing"), "--workdir", str(work)]
    started = [start_job(argv, work, key="k") for _ in range(8)]  # well within a second, as a restart click is
    assert len({j.id for j in started}) == 8
    assert latest_job(work, "k").id == started[-1].id
    assert [j.id for j in started] == sorted(j.id for j in started)  # the names sort in start order
    for j in started:
        wait_job(j)


def test_a_job_whose_processes_died_is_reported_died(image_folder, tmp_path):
    work = tmp_path / "w"
    job = start_job(["run", "--source", str(image_folder), "--workdir", str(work), *FAST], work)
    child = _wait_child(job)
    st = json.loads((job.dir / "status.json").read_text())
    os.kill(st["pid"], signal.SIGKILL)  # the supervisor first, so nobody records an end
    os.killpg(child, signal.SIGKILL)
    deadline = time.time() + 10
    while job.refresh().state != "died" and time.time() < deadline:
        time.sleep(0.1)
    job = job.refresh()
    assert job.state == "died" and not job.active and "start it again to resume" in job.describe_end()


def _wait_child(job: Job) -> int:
    deadline = time.time() + 10
    while time.time() < deadline:
        st = json.loads((job.dir / "status.json").read_text())
        if st.get("child_pid"):
            return int(st["child_pid"])
        time.sleep(0.05)
    raise AssertionError("the supervisor never started the command")


def test_cancel_escalates_to_sigterm_when_sigint_is_ignored(tmp_path):
    """The supervisor itself, on a command that ignores SIGINT: SIGTERM follows after the grace period."""
    from backend.io import write_json
    from backend.jobs.core import SUPERVISOR

    d = tmp_path / "jobs" / "j1"
    d.mkdir(parents=True)
    stubborn = (
        "import signal, time; signal.signal(signal.SIGINT, signal.SIG_IGN); print('up', flush=True); time.sleep(60)"
    )
    write_json(
        d / "job.json",
        {"argv": ["x"], "command": [sys.executable, "-c", stubborn], "created": time.time(), "grace_s": 0.5},
    )
    subprocess.run([sys.executable, str(SUPERVISOR), str(d)], check=True, timeout=30)
    job = load_job_dir(d)
    _wait_for(job, lambda j: "up" in j.log_tail())
    t0 = time.time()
    cancel_job(job)
    job = wait_job(job, timeout=20)
    assert job.state == "cancelled" and job.signal == "SIGTERM" and job.exit_code == -signal.SIGTERM
    assert time.time() - t0 < 10


def test_old_finished_jobs_are_forgotten_running_ones_never(tmp_path):
    from backend.io import write_json
    from backend.jobs import forget_old_jobs

    root = tmp_path / "jobs"
    for i in range(5):
        d = root / f"2026010{i}-000000-aaaaaa"
        d.mkdir(parents=True)
        write_json(d / "job.json", {"argv": ["x"], "key": "k", "created": 1000.0 + i})
        state = "running" if i == 0 else "succeeded"  # the oldest claims to run: its pid is ours, alive
        write_json(d / "status.json", {"state": state, "pid": os.getpid(), "started": 1000.0 + i})
    removed = forget_old_jobs(tmp_path, key="k", keep=2)
    assert removed == ["20260102-000000-aaaaaa", "20260101-000000-aaaaaa"]
    assert sorted(p.name for p in root.iterdir()) == [
        "20260100-000000-aaaaaa",
        "20260103-000000-aaaaaa",
        "20260104-000000-aaaaaa",
    ]


def test_start_job_refuses_an_empty_command(tmp_path):
    with pytest.raises(CurateError, match="curate command"):
        start_job([], tmp_path)


@pytest.mark.slow
def test_cancel_mid_run_then_the_rerun_gives_the_uninterrupted_results(tmp_path):
    """SIGINT while the embeddings are computed (as Ctrl-C), then the same command again: identical results."""
    ref_work, work = tmp_path / "ref", tmp_path / "w"
    # resnet18 with untrained weights at 64 px: slow enough on a CPU to be cancelled in the middle
    args = ["--source", "demo", "--limit", "400", "--encoder", "resnet18", "--weights", "random"]
    args += ["--image-size", "64", "--batch-size", "16", *FAST]
    ref = wait_job(start_job(["run", *args, "--workdir", str(ref_work)], ref_work), timeout=600)
    assert ref.state == "succeeded", ref.log_tail()

    job = start_job(["run", *args, "--workdir", str(work)], work, key="data.run", grace_s=60)
    mid = _wait_for(job, lambda j: (c := j.progress().current) is not None and c.name == "embeddings" and c.done > 0)
    assert mid.active, mid.log_tail()
    cur = mid.progress().current
    assert 0 < cur.done < cur.total and cur.rate  # the bar moves: counts and a rate (so an ETA)
    assert cancel_job(job).cancel_requested
    job = wait_job(job, timeout=120)
    assert job.state == "cancelled" and job.exit_code == 130, job.log_tail()
    assert "interrupted: finished work is kept" in job.log_tail()
    assert not (work / "runs").exists() or not any((work / "runs").iterdir())

    again = wait_job(start_job(["run", *args, "--workdir", str(work)], work, key="data.run"), timeout=600)
    assert again.state == "succeeded", again.log_tail()
    a = pd.read_parquet(_run_dir(ref) / "examples.parquet")
    b = pd.read_parquet(_run_dir(again) / "examples.parquet")
    pd.testing.assert_frame_equal(a, b)
    ea = np.load(next((ref_work / "embeddings").glob("*/embeddings.npy")))
    eb = np.load(next((work / "embeddings").glob("*/embeddings.npy")))
    assert np.array_equal(ea, eb)


# ---------------------------------------------------------------------------
# the workdir's current run


@pytest.fixture
def emb_file(tmp_path) -> Path:
    p = tmp_path / "emb.npy"
    np.save(p, np.random.default_rng(0).normal(size=(90, 6)).astype(np.float32))
    return p


def _cli(capsys, *argv) -> subprocess.CompletedProcess:
    """``curate ARGV`` in this process (as the entry point calls it); its exit code and output."""
    from backend.cli import main

    capsys.readouterr()
    rc = main(list(argv))
    out = capsys.readouterr()
    return subprocess.CompletedProcess(list(argv), rc, out.out, out.err)


def test_keep_current_leaves_latest_json_and_the_cli_sees_the_run_under_its_key(emb_file, tmp_path, capsys):
    work = tmp_path / "w"
    first = _cli(
        capsys, "run", "--source", str(emb_file), "--workdir", str(work), "--map", "pca", "--k", "3", "--keep-current"
    )
    assert first.returncode == 0, first.stderr
    key1 = Path(first.stdout.splitlines()[0].split(": ", 1)[1]).name
    assert current_run_key(work) == key1  # a workdir without a current run gets this one
    second = _cli(
        capsys, "run", "--source", str(emb_file), "--workdir", str(work), "--map", "pca", "--k", "4", "--keep-current"
    )
    assert second.returncode == 0, second.stderr
    key2 = Path(second.stdout.splitlines()[0].split(": ", 1)[1]).name
    assert key2 != key1 and current_run_key(work) == key1
    info = _cli(capsys, "info", "--workdir", str(work), "--json")
    assert json.loads(info.stdout)["run_dir"].endswith(key1)
    info2 = _cli(capsys, "info", "--workdir", str(work / "runs" / key2), "--json")
    assert json.loads(info2.stdout)["k"] == 4
    third = _cli(capsys, "run", "--source", str(emb_file), "--workdir", str(work), "--map", "pca", "--k", "4")
    assert third.returncode == 0 and current_run_key(work) == key2  # without the flag: as before
    set_current_run(work, key1)
    assert json.loads(_cli(capsys, "info", "--workdir", str(work), "--json").stdout)["k"] == 3


def test_set_current_run_refuses_what_is_not_a_run(tmp_path):
    with pytest.raises(CurateError, match="no finished run"):
        set_current_run(tmp_path, "nope")
    with pytest.raises(CurateError, match="no finished run"):
        set_current_run(tmp_path, "../x")
    assert current_run_key(tmp_path) is None
