"""Issue 12, items 7 and 9: chunks are sized by time (an interruption loses about one chunk of work, whatever the
encoder's speed), and the temporary files of a killed run are removed by the next one."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import numpy as np
import pytest

from backend import run_pipeline
from backend.embed.encoders import PixelsEncoder
from backend.embed.runner import _ChunkSizer, compute_embeddings
from backend.io import clean_stale_tmp
from backend.sources import resolve_source

DEAD_PID = 99_999_999  # above Linux's pid_max: never a live process


class SlowPixels(PixelsEncoder):
    """The pixels encoder at the speed of a big CNN on a CPU (per batch), counting the rows it embeds."""

    def __init__(self, delay: float):
        super().__init__()
        self.delay, self.rows_seen = delay, 0

    def forward(self, batch):
        time.sleep(self.delay)
        self.rows_seen += len(batch)
        return super().forward(batch)


def _markers(out_dir):
    return sorted(json.loads(p.read_text())["rows"] for p in (out_dir / "chunks").glob("*.json"))


def test_chunk_size_follows_the_measured_speed():
    sizer = _ChunkSizer(batch_size=32, seconds=30.0, max_rows=16384)
    assert sizer.next() == 64  # the first chunk only measures
    sizer.observe(64, 4.0)  # 16 rows/s, e.g. resnet50 at 224 px on 2 cores
    assert sizer.next() == 480  # 30 s of work, whole batches
    fast = _ChunkSizer(batch_size=256, seconds=30.0, max_rows=16384)
    fast.observe(512, 0.1)  # pixels: thousands per second -> capped
    assert fast.next() == 16384


def test_an_interrupted_pass_resumes_from_its_last_chunk(small_image_folder, tmp_path):
    src = resolve_source(str(small_image_folder))  # 24 images
    out = tmp_path / "emb"
    enc = SlowPixels(delay=0.05)

    def stop_late(done, total):
        if done >= total * 3 // 4:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        compute_embeddings(src, enc, out, num_workers=0, batch_size=4, chunk_seconds=0.1, progress=stop_late)
    finished = _markers(out)
    assert len(finished) >= 2 and all(end - start <= 8 for start, end in finished)  # small chunks for a slow model
    covered = sum(end - start for start, end in finished)
    assert covered >= len(src) * 3 // 4 - 8  # at most one chunk (here 0.1 s of work) was lost

    enc2 = SlowPixels(delay=0.05)
    info = compute_embeddings(src, enc2, out, num_workers=0, batch_size=4, chunk_seconds=0.1)
    assert enc2.rows_seen == len(src) - covered  # only the rows not finished before
    full = compute_embeddings(src, PixelsEncoder(), tmp_path / "uninterrupted", num_workers=0, batch_size=4)
    assert info["dim"] == full["dim"]
    a = np.load(out / "embeddings.npy")
    b = np.load(tmp_path / "uninterrupted" / "embeddings.npy")
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def test_stale_temp_files_are_removed_and_live_ones_kept(small_image_folder, tmp_path, fast_kwargs):
    work = tmp_path / "work"
    run = run_pipeline(str(small_image_folder), work, **fast_kwargs)
    emb_dir = work / "embeddings" / run.config["stages"]["embeddings"]
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        stale = [
            work / f".latest.json.{DEAD_PID}-abc123.tmp.json",
            emb_dir / f".embeddings.npy.{DEAD_PID}-x_y.tmp.npy",
            emb_dir / "chunks" / f".0000000000.json.{DEAD_PID}-q1.tmp.json",
            run.dir / f".examples.parquet.{DEAD_PID}-zz.tmp.parquet",
        ]
        keep = work / f".latest.json.{live.pid}-def456.tmp.json"
        for p in stale + [keep]:
            p.write_bytes(b"")
        (work / f".tree.tmp-{DEAD_PID}").mkdir()
        # every stage cached: checking the cache tidies the workdir
        run_pipeline(str(small_image_folder), work, **fast_kwargs)
        assert not stale[0].exists() and not (work / f".tree.tmp-{DEAD_PID}").exists()
        assert keep.exists()  # a writer that is still alive keeps its temporary file
        # a stage that is recomputed tidies its own folder (the embedding pass its chunks too)
        (emb_dir / "meta.json").unlink()
        (run.dir / "meta.json").unlink()
        run_pipeline(str(small_image_folder), work, **fast_kwargs)
        assert [p for p in stale if p.exists()] == []
        assert clean_stale_tmp(work) == []
    finally:
        live.kill()
        live.wait()
    assert clean_stale_tmp(work) == [keep]


def test_a_resume_with_another_chunking_keeps_the_finished_rows(small_image_folder, tmp_path):
    """Markers record their rows, so a resume with other chunk sizes reuses every finished row and never
    overwrites a marker of the first chunking."""
    src = resolve_source(str(small_image_folder))  # 24 images
    out = tmp_path / "emb"
    enc = SlowPixels(delay=0.0)

    def stop(done, total):
        if done >= 12:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        compute_embeddings(src, enc, out, num_workers=0, batch_size=4, chunk_size=4, progress=stop)
    first = _markers(out)
    assert first == [[0, 4], [4, 8]]
    enc2 = SlowPixels(delay=0.0)
    compute_embeddings(src, enc2, out, num_workers=0, batch_size=4, chunk_size=8)
    assert enc2.rows_seen == len(src) - 8
    # rows 8-16 are chunk 1 of the new chunking, but 000001.json is rows 4-8 of the old one: kept
    assert _markers(out) == [[0, 4], [4, 8], [8, 16], [16, 24]]
    assert sorted(p.name for p in (out / "chunks").iterdir()) == [
        "000000.json",
        "000001.json",
        "000002.json",
        "r0000000008.json",
    ]
