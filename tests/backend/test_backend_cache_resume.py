"""Stage caching (same inputs = cache hit, changing k reuses embeddings) and resume after interruption."""

from __future__ import annotations

import functools
import os

import numpy as np
import pytest

import backend.pipeline as pipeline
from backend import Reporter, run_pipeline
from backend.cli import main
from backend.embed.encoders import PixelsEncoder

STAGES = ("embeddings", "clusters", "map", "run")


class Recorder(Reporter):
    """Records ``{stage: cached}`` for every stage the pipeline announces."""

    def __init__(self):
        self.stages: dict[str, bool] = {}
        self.updates = 0

    def stage(self, name, *, cached=False, detail=""):
        self.stages[name] = cached

    def update(self, done, total):
        self.updates += 1


def _run(folder, work, fast_kwargs, **kw):
    rec = Recorder()
    run = run_pipeline(str(folder), work, reporter=rec, **{**fast_kwargs, **kw})
    return run, rec.stages


def test_same_inputs_are_a_cache_hit_and_k_reuses_embeddings(image_folder, tmp_path, fast_kwargs):
    work = tmp_path / "work"
    first, stages = _run(image_folder, work, fast_kwargs)
    assert [stages[s] for s in STAGES] == [False] * 4
    again, stages = _run(image_folder, work, fast_kwargs)
    assert [stages[s] for s in STAGES] == [True] * 4
    assert again.dir == first.dir and again.table.equals(first.table)

    other_k, stages = _run(image_folder, work, fast_kwargs, k=4)
    assert stages == {"source": False, "embeddings": True, "clusters": False, "map": True, "run": False}
    assert other_k.dir != first.dir and other_k.k == 4 and other_k.table["cluster"].nunique() == 4
    assert other_k.config["stages"]["embeddings"] == first.config["stages"]["embeddings"]

    # the preprocessing is part of the embeddings' cache key
    _, stages = _run(image_folder, work, fast_kwargs, image_size=16)
    assert stages["embeddings"] is False

    # another seed re-clusters and re-maps but keeps the embeddings
    _, stages = _run(image_folder, work, fast_kwargs, seed=1)
    assert stages["embeddings"] and not stages["clusters"] and not stages["map"]
    # the latest run is what load_run(workdir) finds
    from backend import load_run

    assert load_run(work).dir == pipeline.find_run_dir(work)


def test_a_changed_file_invalidates_the_embeddings(image_folder_copy, tmp_path, fast_kwargs):
    work = tmp_path / "work"
    _run(image_folder_copy, work, fast_kwargs)
    victim = sorted(image_folder_copy.rglob("*.png"))[3]
    st = victim.stat()
    victim.write_bytes(victim.read_bytes())  # same bytes, new mtime
    os.utime(victim, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    _, stages = _run(image_folder_copy, work, fast_kwargs)
    assert stages["embeddings"] is False


def test_cli_says_cached(small_image_folder, tmp_path, capsys):
    args = ["run", "--source", str(small_image_folder), "--workdir", str(tmp_path / "w"), "--map", "pca"]
    assert main(args) == 0  # default DataLoader workers: the multi-process path
    first = capsys.readouterr()
    assert "] cached" not in first.err
    assert main(args) == 0
    second = capsys.readouterr()
    for stage in STAGES:
        assert f"[{stage}] cached" in second.err
    assert first.out == second.out  # the same run directory and summary


@pytest.fixture
def counted_forward(monkeypatch):
    """Count PixelsEncoder.forward calls; raise KeyboardInterrupt on call number ``state['fail_at']``."""
    state = {"calls": 0, "fail_at": None}
    real = PixelsEncoder.forward

    def forward(self, batch):
        state["calls"] += 1
        if state["fail_at"] is not None and state["calls"] == state["fail_at"]:
            raise KeyboardInterrupt
        return real(self, batch)

    monkeypatch.setattr(PixelsEncoder, "forward", forward)
    # small chunks: 200 images = 5 chunks of 40, one batch each
    monkeypatch.setattr(pipeline, "compute_embeddings", functools.partial(pipeline.compute_embeddings, chunk_size=40))
    return state


def test_resume_after_interruption(image_folder, tmp_path, fast_kwargs, counted_forward):
    kw = {**fast_kwargs, "batch_size": 40}
    work = tmp_path / "work"
    counted_forward["fail_at"] = 3  # chunks 0 and 1 finish, chunk 2 is interrupted
    with pytest.raises(KeyboardInterrupt):
        run_pipeline(str(image_folder), work, **kw)
    (emb_dir,) = (work / "embeddings").iterdir()
    assert sorted(p.name for p in (emb_dir / "chunks").iterdir()) == ["000000.json", "000001.json"]
    assert not (emb_dir / "meta.json").exists()  # the stage is not marked finished
    # no temp files left behind (a stage's .lock file is its lock, not a leftover)
    assert not [p for p in work.rglob(".*") if p.is_file() and p.name != ".lock"]
    assert not (work / "runs").exists()

    counted_forward.update(calls=0, fail_at=None)
    resumed = run_pipeline(str(image_folder), work, **kw)
    assert counted_forward["calls"] == 3  # only chunks 2, 3 and 4
    assert not (emb_dir / "raw.npy").exists()  # the raw pixels are dropped after the PCA

    counted_forward.update(calls=0)
    straight = run_pipeline(str(image_folder), tmp_path / "other", **kw)
    assert counted_forward["calls"] == 5
    np.testing.assert_array_equal(np.asarray(resumed.embeddings), np.asarray(straight.embeddings))
    assert resumed.table.drop(columns=["map_x", "map_y"]).equals(straight.table.drop(columns=["map_x", "map_y"]))


def test_cli_interrupt_exits_130_and_resumes(image_folder, tmp_path, capsys, counted_forward):
    args = [
        "run",
        "--source",
        str(image_folder),
        "--workdir",
        str(tmp_path / "w"),
        "--map",
        "pca",
        "--workers",
        "0",
        "--batch-size",
        "40",
    ]
    counted_forward["fail_at"] = 2
    assert main(args) == 130
    err = capsys.readouterr().err
    assert "interrupted" in err and "run the same command again to resume" in err and "Traceback" not in err
    counted_forward.update(calls=0, fail_at=None)
    assert main(args) == 0
    assert counted_forward["calls"] == 4
    assert "run directory:" in capsys.readouterr().out


def test_resume_with_another_chunking_keeps_the_finished_rows(
    image_folder, tmp_path, fast_kwargs, counted_forward, monkeypatch
):
    kw = {**fast_kwargs, "batch_size": 40}
    work = tmp_path / "work"
    counted_forward["fail_at"] = 3
    with pytest.raises(KeyboardInterrupt):
        run_pipeline(str(image_folder), work, **kw)
    # the next attempt chunks by 64 rows: chunk markers record their row ranges, so the 80 finished rows are kept
    # (before 0.2 a different chunking started over; now only rows 80..200 are embedded again)
    from backend.embed import runner

    monkeypatch.setattr(pipeline, "compute_embeddings", functools.partial(runner.compute_embeddings, chunk_size=64))
    counted_forward.update(calls=0, fail_at=None)
    resumed = run_pipeline(str(image_folder), work, **kw)
    assert counted_forward["calls"] == 4  # 120 rows left: chunks of 64 and 56 rows, in batches of 40
    monkeypatch.setattr(pipeline, "compute_embeddings", runner.compute_embeddings)
    straight = run_pipeline(str(image_folder), tmp_path / "other", **kw)
    np.testing.assert_array_equal(np.asarray(resumed.embeddings), np.asarray(straight.embeddings))
