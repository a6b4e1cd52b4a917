"""Issue 12, fault injection: ``kill -9`` at 20 points spread over a ``curate run``, then run again: the
results are those of an uninterrupted run, no temporary file is left, and no source file changed.

Real images (the session's Fashion-MNIST PNG/JPEG folder), the pixels encoder and the PCA map; each kill
point uses a fresh workdir so that the kills land in every stage, not only in cache checks.
"""

from __future__ import annotations

import hashlib
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[2]
KILLS = 20


def _cmd(folder: Path, work: Path) -> list[str]:
    return [
        sys.executable,
        "-c",
        "import sys; from backend.cli import main; sys.exit(main(sys.argv[1:]))",
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
    ]


def _sources(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _run_dir(stdout: str) -> Path:
    return Path(next(line.split(": ", 1)[1] for line in stdout.splitlines() if line.startswith("run directory")))


def _results(run_dir: Path, work: Path) -> tuple[pd.DataFrame, bytes]:
    emb = next((work / "embeddings").glob("*/embeddings.npy"))
    return pd.read_parquet(run_dir / "examples.parquet"), emb.read_bytes()


@pytest.mark.slow
def test_kill_9_anywhere_then_rerun_gives_the_uninterrupted_results(image_folder, tmp_path):
    before = _sources(image_folder)
    t0 = time.perf_counter()
    ref = subprocess.run(_cmd(image_folder, tmp_path / "ref"), cwd=ROOT, capture_output=True, text=True, timeout=600)
    duration = time.perf_counter() - t0
    assert ref.returncode == 0, ref.stderr[-3000:]
    ref_table, ref_emb = _results(_run_dir(ref.stdout), tmp_path / "ref")

    rng = np.random.default_rng(12)
    killed_at = []
    for i in range(KILLS):
        work = tmp_path / f"w{i}"
        delay = duration * (i + rng.uniform()) / KILLS  # stratified over the whole run
        proc = subprocess.Popen(
            _cmd(image_folder, work), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        killed_at.append(proc.returncode)
        again = subprocess.run(_cmd(image_folder, work), cwd=ROOT, capture_output=True, text=True, timeout=600)
        assert again.returncode == 0, (i, delay, again.stderr[-3000:])
        assert "Traceback" not in again.stderr
        table, emb = _results(_run_dir(again.stdout), work)
        pd.testing.assert_frame_equal(table, ref_table)
        assert emb == ref_emb, (i, delay)
        leftovers = [p for p in work.rglob(".*") if ".tmp" in p.name]
        assert leftovers == [], (i, delay, leftovers)
        assert _sources(image_folder) == before
    assert killed_at.count(-signal.SIGKILL) >= KILLS // 2  # most were really killed mid-run, not after it ended
