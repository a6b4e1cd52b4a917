"""Issue 12, item 5: runs sharing a workdir.  Both succeed, the embeddings are computed once, the other waits."""

from __future__ import annotations

import multiprocessing as mp
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from backend.io import lock_file
from backend.store import Stage

ROOT = Path(__file__).resolve().parents[2]


def _hold(path, ready, release):
    with lock_file(path):
        ready.set()
        release.wait(30)


def test_stage_lock_makes_a_second_process_wait_and_says_why(tmp_path):
    st = Stage(tmp_path, "embeddings", 1, {"x": 1})
    ctx = mp.get_context("fork")
    ready, release = ctx.Event(), ctx.Event()
    holder = ctx.Process(target=_hold, args=(st.dir / ".lock", ready, release))
    st.dir.mkdir(parents=True)
    holder.start()
    try:
        assert ready.wait(30)
        said = []
        t0 = time.perf_counter()
        ctx_timer = ctx.Process(target=lambda: (time.sleep(1.0), release.set()))
        ctx_timer.start()
        with st.lock(on_wait=said.append):
            waited = time.perf_counter() - t0
        ctx_timer.join()
    finally:
        release.set()
        holder.join(30)
    assert waited >= 0.9
    assert said == [f"waiting for another run computing embeddings in {st.dir}"]
    # free now: no message, and the lock is re-entrant in one thread
    said.clear()
    with st.lock(on_wait=said.append), st.lock(on_wait=said.append):
        pass
    assert said == []


def _curate_run(folder: Path, work: Path) -> subprocess.Popen:
    code = "import sys; from backend.cli import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.Popen(
        [
            sys.executable,
            "-c",
            code,
            "run",
            "--source",
            str(folder),
            "--workdir",
            str(work),
            "--map",
            "pca",
            "--device",
            "cpu",
            "--workers",
            "0",
            "--batch-size",
            "32",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.slow
@pytest.mark.parametrize("delay", [0.0, 6.0])  # started together, and 6 s apart (the issue)
def test_two_curate_runs_on_one_workdir_both_succeed(image_folder_copy, tmp_path, delay):
    work = tmp_path / "work"
    first = _curate_run(image_folder_copy, work)
    time.sleep(delay)
    second = _curate_run(image_folder_copy, work)
    outs = [p.communicate(timeout=600) for p in (first, second)]
    for p, (_out, err) in zip((first, second), outs):
        assert p.returncode == 0, err[-2000:]
        assert "Traceback" not in err
    dirs = [
        next(line.split(": ", 1)[1] for line in out.splitlines() if line.startswith("run directory")) for out, _ in outs
    ]
    assert dirs[0] == dirs[1]
    table = pd.read_parquet(Path(dirs[0]) / "examples.parquet")
    assert len(table) == 200
    assert len(list((work / "embeddings").iterdir())) == 1
