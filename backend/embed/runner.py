"""The embedding pass: batches through a DataLoader, chunks into a memory-mapped .npy.

Rows are processed in chunks of ``chunk_size``.  After a chunk's rows are
written and flushed, a small marker file records it (and the files that failed
in it).  An interrupted run therefore resumes from the last finished chunk.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import CurateError
from ..io import atomic_path, write_npy
from ..sources import BadImage, Source

ProgressFn = Callable[[int, int], None]


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


def _drop_foreign_markers(chunks_dir: Path, n: int, chunk_size: int) -> None:
    """Forget every finished-chunk marker if any was written with another chunking."""
    markers = sorted(chunks_dir.glob("*.json"))
    for marker in markers:
        try:
            c = int(marker.stem)
            rows = json.loads(marker.read_text())["rows"]
        except (ValueError, KeyError, OSError, TypeError):
            rows, c = None, -1
        if rows != [c * chunk_size, min(n, (c + 1) * chunk_size)]:
            for m in markers:
                m.unlink(missing_ok=True)
            return


def compute_embeddings(source: Source, encoder, out_dir: Path, *, device: str = "cpu",
                       batch_size: int = 256, num_workers: int | None = None,
                       chunk_size: int = 16384, progress: ProgressFn | None = None,
                       fit_rows: np.ndarray | None = None) -> dict:
    """Embed every row of ``source`` into ``out_dir/embeddings.npy``; return info.

    Failed images get a zero row and are listed in ``failed.json`` (row, reason).
    """
    import torch
    from torch.utils.data import DataLoader

    out_dir = Path(out_dir)
    chunks_dir = out_dir / "chunks"
    chunks_dir.mkdir(parents=True, exist_ok=True)
    n = len(source)
    raw_path = out_dir / ("raw.npy" if getattr(encoder, "pca_dim", None) else "embeddings.npy")
    shape = (n, encoder.raw_dim)
    if raw_path.exists():
        raw = np.load(raw_path, mmap_mode="r+")
        if raw.shape != shape or raw.dtype != encoder.raw_dtype:
            raw = None
    else:
        raw = None
    if raw is None:
        for marker in chunks_dir.glob("*.json"):
            marker.unlink()
        with atomic_path(raw_path) as tmp:
            np.lib.format.open_memmap(tmp, mode="w+", dtype=encoder.raw_dtype, shape=shape).flush()
        raw = np.load(raw_path, mmap_mode="r+")

    if num_workers is None:
        num_workers = min(4, os.cpu_count() or 1)
    encoder.to(device)
    n_chunks = (n + chunk_size - 1) // chunk_size
    _drop_foreign_markers(chunks_dir, n, chunk_size)
    done_rows = sum(min(chunk_size, n - c * chunk_size) for c in range(n_chunks)
                    if (chunks_dir / f"{c:06d}.json").exists())
    if progress:
        progress(done_rows, n)
    for c in range(n_chunks):
        marker = chunks_dir / f"{c:06d}.json"
        if marker.exists():
            continue
        rows = np.arange(c * chunk_size, min(n, (c + 1) * chunk_size))
        loader = DataLoader(_ImageDataset(source, rows, encoder), batch_size=batch_size,
                            shuffle=False, num_workers=num_workers, collate_fn=_collate,
                            pin_memory=device.startswith("cuda"),
                            persistent_workers=False)
        failed = []
        for batch, brows, errors in loader:
            feats = encoder.forward(batch)
            feats = feats.cpu().numpy() if isinstance(feats, torch.Tensor) else np.asarray(feats)
            bad = [i for i, e in enumerate(errors) if e]
            if bad:  # a failed image gets a zero row, not the encoder's output for a blank input
                feats = np.array(feats, copy=True)
                feats[bad] = 0
            raw[brows[0]:brows[-1] + 1] = feats.astype(encoder.raw_dtype, copy=False)
            failed.extend((r, e) for r, e in zip(brows, errors) if e)
            done_rows += len(brows)
            if progress:
                progress(done_rows, n)
        raw.flush()
        with atomic_path(marker) as tmp:
            tmp.write_text(json.dumps({"rows": [int(rows[0]), int(rows[-1]) + 1], "failed": failed}))

    failed = []
    for c in range(n_chunks):
        failed.extend(json.loads((chunks_dir / f"{c:06d}.json").read_text())["failed"])
    info = {"n": n, "raw_dim": encoder.raw_dim, "failed": failed}
    if getattr(encoder, "pca_dim", None):
        ok = np.ones(n, bool)
        ok[[r for r, _ in failed]] = False
        rows = fit_rows if fit_rows is not None else np.arange(n)
        rows = rows[ok[rows]]
        if len(rows) == 0:
            r, reason = failed[0] if failed else (0, "no examples")
            raise CurateError(f"no image could be read (e.g. {source.index['example_id'].iat[int(r)]}: "
                              f"{reason}): check the files passed to --source")
        emb_path = out_dir / "embeddings.npy"
        dim = min(encoder.pca_dim, len(rows), encoder.raw_dim)
        with atomic_path(emb_path) as tmp:
            out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(n, dim))
            fit = encoder.fit_transform(np.load(raw_path, mmap_mode="r"), rows, out)
            out[~ok] = 0.0
            out.flush()
            del out
        write_npy(out_dir / "pca_components.npy", fit["pca_components"])
        write_npy(out_dir / "pca_mean.npy", fit["pca_mean"])
        info["pca_explained_variance"] = fit["explained_variance"]
        info["dim"] = int(fit["dim"])
        del raw
        raw_path.unlink()  # the raw pixels were only needed for the PCA
    else:
        info["dim"] = encoder.raw_dim
    return info
