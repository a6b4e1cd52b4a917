"""The embedding pass: batches through a DataLoader, chunks into a memory-mapped .npy.

Rows are processed in chunks sized by *time*: the first chunk is a few
batches, the next ones hold about ``chunk_seconds`` of work at the speed
measured so far (clipped to ``max_chunk`` rows).  After a chunk's rows are
written and flushed, a small marker ``chunks/<first row>.json`` records its row
range (and the files that failed in it).  An interrupted run resumes from the
last finished chunk, so at most about ``chunk_seconds`` of work is lost,
whatever the encoder's speed.

Safe to run twice at once on one output folder: the pass holds an ``flock``
on ``<out_dir>/.lock`` (the same lock as :meth:`backend.store.Stage.lock`, so
it is free when the pipeline already holds it); the second process waits,
then reuses what the first finished (``result.json`` records it, with the size
and mtime of the embeddings it describes).

Memory-mapped files are preallocated (``posix_fallocate``) after checking the
free space: on a full disk a write into a sparse memory map is a SIGBUS, not
an error.
"""

from __future__ import annotations

import errno
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..arrays import release_pages
from ..errors import CurateError
from ..io import (
    atomic_path,
    clean_stale_tmp,
    disk_full,
    ensure_free,
    is_space_error,
    lock_file,
    write_json,
    write_npy,
)
from ..sources import BadImage, Source

ProgressFn = Callable[[int, int], None]
LOCK = ".lock"  # the same file as backend.store.LOCK
RESULT = "result.json"


def resolve_device(device: str = "auto") -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise CurateError("--device cuda was asked for but torch sees no CUDA GPU: use --device cpu or auto")
    if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
        raise CurateError(f"unknown device {device!r}: use auto, cpu or cuda")
    return device


class _ImageDataset:
    """Row indices -> (preprocessed tensor, row, error-or-empty)."""

    def __init__(self, source: Source, rows: np.ndarray, encoder):
        self.source, self.rows, self.encoder = source, rows, encoder

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, i):
        row = int(self.rows[i])
        try:
            return self.encoder.preprocess(self.source.load_image(row)), row, ""
        except BadImage as exc:
            return self.encoder.empty(), row, str(exc)
        except Exception as exc:  # noqa: BLE001 - one bad file must never stop the run
            return self.encoder.empty(), row, f"unreadable image: {type(exc).__name__}: {exc}"


def _collate(items):
    import torch

    return (torch.stack([t for t, _, _ in items]), [r for _, r, _ in items], [e for _, _, e in items])


# ---------------------------------------------------------------------------
# chunk markers


def _read_markers(chunks_dir: Path, n: int) -> list[tuple[int, int, list]]:
    """Finished chunks as sorted (start, end, failed); all are forgotten if any is damaged or overlaps."""
    found: list[tuple[int, int, list]] | None = []
    markers = sorted(chunks_dir.glob("*.json"))
    readable: list[tuple[int, int, list]] = []
    for marker in markers:
        try:
            info = json.loads(marker.read_text())
            start, end = (int(v) for v in info["rows"])
            readable.append((start, end, list(info["failed"])))
        except (ValueError, KeyError, OSError, TypeError):
            found = None
            break
    if found is not None:
        found = readable
        found.sort()
        prev_end = 0
        for start, end, _ in found:
            if not (prev_end <= start < end <= n):
                found = None
                break
            prev_end = end
    if found is None:
        for m in markers:
            m.unlink(missing_ok=True)
        return []
    return found


def _marker_path(chunks_dir: Path, start: int, chunk_size: int | None) -> Path:
    """Where the marker of the chunk starting at ``start`` goes; never the name of another chunk's marker.

    Fixed-size chunks keep their index as the name (as before); timed chunks, and a fixed chunk whose
    index name is taken by a marker of another chunking, are named by their first row, which no
    other finished chunk can share (finished chunks never overlap).
    """
    if chunk_size and start % chunk_size == 0:
        by_index = chunks_dir / f"{start // chunk_size:06d}.json"
        if not by_index.exists():
            return by_index
    return chunks_dir / f"r{start:010d}.json"


def _gaps(done: list[tuple[int, int, list]], n: int) -> list[tuple[int, int]]:
    """Row ranges not covered by a finished chunk."""
    out, pos = [], 0
    for start, end, _ in done:
        if start > pos:
            out.append((pos, start))
        pos = max(pos, end)
    if pos < n:
        out.append((pos, n))
    return out


class _ChunkSizer:
    """Rows for the next chunk: about ``seconds`` of work at the measured speed, whole batches."""

    def __init__(self, batch_size: int, seconds: float, max_rows: int, fixed: int | None = None):
        self.fixed = int(fixed) if fixed else None
        self.batch = max(1, int(batch_size))
        self.seconds = float(seconds)
        self.max_rows = max(self.batch, int(max_rows))
        self.rate: float | None = None  # rows per second

    def next(self) -> int:
        if self.fixed:
            return self.fixed
        if self.rate is None:  # the first chunk is small: it measures the speed
            return min(self.max_rows, 2 * self.batch)
        rows = int(self.rate * self.seconds)
        rows = max(self.batch, rows - rows % self.batch)
        return min(self.max_rows, rows)

    def observe(self, rows: int, elapsed: float) -> None:
        if rows > 0 and elapsed > 0:
            rate = rows / elapsed
            self.rate = rate if self.rate is None else 0.5 * (self.rate + rate)


# ---------------------------------------------------------------------------
# memory-mapped outputs


def _open_memmap_prealloc(path: Path, dtype, shape: tuple[int, int], what: str) -> None:
    """Create an .npy memory map at ``path`` with every block allocated (or raise DiskFull)."""
    nbytes = int(np.dtype(dtype).itemsize * shape[0] * shape[1])
    ensure_free(path.parent, nbytes + (1 << 20), what)
    try:
        mm = np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=shape)
        offset = mm.offset
        mm.flush()
        del mm
        fd = os.open(path, os.O_RDWR)
        try:
            os.posix_fallocate(fd, 0, offset + nbytes)
        except OSError as exc:
            if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL):  # unsupported: the free-space check stays
                raise
        finally:
            os.close(fd)
    except OSError as exc:
        if is_space_error(exc):
            path.unlink(missing_ok=True)
            raise disk_full(path.parent, nbytes, what) from None
        raise


def _file_stat(path: Path) -> dict | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _finished_result(out_dir: Path) -> dict | None:
    """The info of a pass that finished here (another process, or before a crash), if still valid."""
    try:
        res = json.loads((out_dir / RESULT).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(res, dict) or res.get("embeddings") != _file_stat(out_dir / "embeddings.npy"):
        return None
    return res.get("info")


def _default_wait_message(out_dir: Path) -> Callable[[], None]:
    def say():
        print(f"waiting for another run computing embeddings in {out_dir}", file=sys.stderr, flush=True)

    return say


def compute_embeddings(
    source: Source,
    encoder,
    out_dir: Path,
    *,
    device: str = "cpu",
    batch_size: int = 256,
    num_workers: int | None = None,
    chunk_seconds: float = 30.0,
    max_chunk: int = 16384,
    chunk_size: int | None = None,
    progress: ProgressFn | None = None,
    fit_rows: np.ndarray | None = None,
    on_wait: Callable[[], None] | None = None,
) -> dict:
    """Embed every row of ``source`` into ``out_dir/embeddings.npy``; return info.

    Failed images get a zero row and are listed in the info's ``failed`` (row, reason).
    ``chunk_seconds`` bounds the work an interruption can lose (``chunk_size``
    instead fixes the rows per chunk, e.g. for tests); ``on_wait`` is
    called once if another process holds this folder.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with lock_file(out_dir / LOCK, on_wait=on_wait or _default_wait_message(out_dir)):
        for folder in (out_dir, out_dir / "chunks"):
            clean_stale_tmp(folder)  # 0-byte temporary files of a killed run
        done = _finished_result(out_dir)
        if done is not None:
            if progress:
                progress(len(source), len(source))
            return done
        (out_dir / RESULT).unlink(missing_ok=True)
        info = _compute(
            source,
            encoder,
            out_dir,
            device=device,
            batch_size=batch_size,
            num_workers=num_workers,
            chunk_seconds=chunk_seconds,
            max_chunk=max_chunk,
            chunk_size=chunk_size,
            progress=progress,
            fit_rows=fit_rows,
        )
        write_json(out_dir / RESULT, {"embeddings": _file_stat(out_dir / "embeddings.npy"), "info": info})
        return info


def _compute(
    source: Source,
    encoder,
    out_dir: Path,
    *,
    device,
    batch_size,
    num_workers,
    chunk_seconds,
    max_chunk,
    chunk_size,
    progress,
    fit_rows,
) -> dict:
    import torch
    from torch.utils.data import DataLoader

    chunks_dir = out_dir / "chunks"
    chunks_dir.mkdir(parents=True, exist_ok=True)
    n = len(source)
    pca_dim = getattr(encoder, "pca_dim", None)
    raw_path = out_dir / ("raw.npy" if pca_dim else "embeddings.npy")
    shape = (n, encoder.raw_dim)
    raw = None
    if raw_path.exists():
        try:
            raw = np.load(raw_path, mmap_mode="r+")
        except (OSError, ValueError):
            raw = None
        if raw is not None and (raw.shape != shape or raw.dtype != encoder.raw_dtype):
            raw = None
    if raw is None:
        for marker in chunks_dir.glob("*.json"):
            marker.unlink()
        if pca_dim:  # the PCA output and its components are written beside the raw pixels: check for all at once
            dim = min(pca_dim, encoder.raw_dim)
            ensure_free(
                out_dir,
                int(np.dtype(encoder.raw_dtype).itemsize) * n * encoder.raw_dim
                + 4 * (n + encoder.raw_dim + 1) * dim
                + (1 << 20),
                "the embeddings",
            )
        with atomic_path(raw_path) as tmp:
            _open_memmap_prealloc(tmp, encoder.raw_dtype, shape, "the embeddings")
        raw = np.load(raw_path, mmap_mode="r+")

    if num_workers is None:
        num_workers = min(4, os.cpu_count() or 1)
    encoder.to(device)
    finished = _read_markers(chunks_dir, n)
    done_rows = sum(end - start for start, end, _ in finished)
    if progress:
        progress(done_rows, n)
    sizer = _ChunkSizer(batch_size, chunk_seconds, max_chunk, fixed=chunk_size)
    for gap_start, gap_end in _gaps(finished, n):
        start = gap_start
        while start < gap_end:
            end = min(gap_end, start + sizer.next())
            t0 = time.perf_counter()
            rows = np.arange(start, end)
            # a map-style dataset (len + getitem); not a torch Dataset subclass, so torch stays a lazy import
            loader: DataLoader = DataLoader(
                _ImageDataset(source, rows, encoder),  # type: ignore[arg-type]
                batch_size=batch_size,
                shuffle=False,
                num_workers=num_workers if len(rows) > batch_size else 0,
                collate_fn=_collate,
                pin_memory=device.startswith("cuda"),
                persistent_workers=False,
            )
            failed: list[tuple[int, str]] = []
            for batch, brows, errors in loader:
                feats = encoder.forward(batch)
                feats = feats.cpu().numpy() if isinstance(feats, torch.Tensor) else np.asarray(feats)
                bad = [i for i, e in enumerate(errors) if e]
                if bad:  # a failed image gets a zero row, not the encoder's output for a blank input
                    feats = np.array(feats, copy=True)
                    feats[bad] = 0
                raw[brows[0] : brows[-1] + 1] = feats.astype(encoder.raw_dtype, copy=False)
                failed.extend((r, e) for r, e in zip(brows, errors) if e)
                done_rows += len(brows)
                if progress:
                    progress(done_rows, n)
            raw.flush()
            release_pages(raw, start, end)  # written rows leave the resident set: RSS stays flat over 1M rows
            with atomic_path(_marker_path(chunks_dir, start, chunk_size)) as tmp:
                tmp.write_text(json.dumps({"rows": [int(start), int(end)], "failed": failed}))
            sizer.observe(end - start, time.perf_counter() - t0)
            start = end

    failed = [f for _, _, fl in _read_markers(chunks_dir, n) for f in fl]
    info = {"n": n, "raw_dim": encoder.raw_dim, "failed": failed}
    if pca_dim:
        del raw  # the PCA reads the raw pixels from the file, then removes it
        info.update(finish_pca(source, encoder, out_dir, raw_path, failed, fit_rows))
    else:
        info["dim"] = encoder.raw_dim
    return info


def finish_pca(source, encoder, out_dir: Path, raw_path: Path, failed: list, fit_rows) -> dict:
    """The encoder's PCA (``pixels``): fitted on the usable pool rows of ``raw_path``, applied to every row.

    Writes ``embeddings.npy`` (failed rows zero) and the PCA's components and mean, removes the raw
    pixels and returns the stage info it adds.  Shared by every engine, so they give identical vectors.
    """
    n = len(source)
    ok = np.ones(n, bool)
    ok[[r for r, _ in failed]] = False
    rows = np.asarray(fit_rows) if fit_rows is not None else np.arange(n)
    rows = rows[ok[rows]]
    if len(rows) == 0:
        r, reason = failed[0] if failed else (0, "no examples")
        raise CurateError(
            f"no image could be read (e.g. {source.index['example_id'].iat[int(r)]}: "
            f"{reason}): check the files passed to --source"
        )
    emb_path = out_dir / "embeddings.npy"
    dim = min(encoder.pca_dim, len(rows), encoder.raw_dim)
    with atomic_path(emb_path) as tmp:
        _open_memmap_prealloc(tmp, np.float32, (n, dim), "the embeddings")
        out = np.load(tmp, mmap_mode="r+")
        fit = encoder.fit_transform(np.load(raw_path, mmap_mode="r"), rows, out)
        out[~ok] = 0.0
        out.flush()
        del out
    write_npy(out_dir / "pca_components.npy", fit["pca_components"])
    write_npy(out_dir / "pca_mean.npy", fit["pca_mean"])
    raw_path.unlink(missing_ok=True)  # the raw pixels were only needed for the PCA
    return {"pca_explained_variance": fit["explained_variance"], "dim": int(fit["dim"])}
