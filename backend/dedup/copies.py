"""Exact near-copies of a run: the same image saved twice, resized or re-encoded, found by a perceptual hash.

Apart from SemDeDup's semantic neighbours (similar *content*), these are the
same *picture*: the perceptual hashes (:mod:`backend.dedup.phash`) of the
source images differ in at most ``max_distance`` of their 256 bits.  Nothing
is compared across all pairs (multi-index hashing), and the hashes are cached
under ``<workdir>/phash/<key>/``, so any other distance afterwards costs only
the grouping.

    from backend.dedup import near_copies
    cp = near_copies(run, max_distance=DEFAULT_MAX_DISTANCE)
    cp.group            # int per table row: copy group 0..n_groups-1, -1 = no copy
    cp.kept             # bool per row: the member each group keeps (its largest image; ties: first row)
    cp.distance         # Hamming distance of each member's hash to its group's kept member (-1 = none)
    cp.groups_frame(), cp.members(g), cp.frame(run.table)
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import CurateError
from ..io import write_npy
from ..progress import Reporter
from ..store import Stage
from .phash import HASH_SIZE, group_hashes, hamming, hash_images

VERSION = 1
STAGE = "phash"
# 256-bit pHash on Fashion-MNIST (300 images, their copies, all 60,000 train images): re-saved and x2 copies are
# always within 20 bits, x0.7 resizes 99%, JPEG q75 97%, q50 78%, a 1 px crop of a 112 px upscale 88%, a 1 px crop
# of the 28 px original 1% (pHash is not crop-invariant); at 20 bits 172 of the 60,000 train images (0.3%) fall in
# 78 groups, and 99% of images are more than 22 bits from every other one

DEFAULT_MAX_DISTANCE = 20


@dataclass
class CopyGroups:
    """Groups of exact near-copies among a run's examples (positions = the run's table order)."""

    group: np.ndarray  # (N,) int64, -1 = not a copy of anything
    kept: np.ndarray  # (N,) bool: the member that stays (every example outside a group stays too)
    representative: np.ndarray  # (N,) int64: position of the group's kept member (itself when alone)
    distance: np.ndarray  # (N,) int64: Hamming distance to the kept member, -1 outside groups
    example_ids: np.ndarray
    max_distance: int
    n_groups: int
    info: dict

    @property
    def n_copies(self) -> int:
        """Examples that are a copy of a kept one (would be removed)."""
        return int(((self.group >= 0) & ~self.kept).sum())

    def groups_frame(self) -> pd.DataFrame:
        """One row per group: size, kept member, the largest distance to it.  Largest groups first."""
        pos = np.flatnonzero(self.group >= 0)
        g = self.group[pos]
        size = np.bincount(g, minlength=self.n_groups)
        far = np.zeros(self.n_groups, np.int64)
        np.maximum.at(far, g, self.distance[pos])
        reps = np.zeros(self.n_groups, np.int64)
        reps[g] = self.representative[pos]
        df = pd.DataFrame(
            {
                "group": np.arange(self.n_groups),
                "size": size,
                "representative": reps,
                "representative_id": self.example_ids[reps],
                "max_hamming": far,
            }
        )
        return df.sort_values(["size", "max_hamming", "group"], ascending=[False, True, True], ignore_index=True)

    def members(self, group: int) -> np.ndarray:
        """Positions of one group's members: the kept one first, then by distance to it."""
        pos = np.flatnonzero(self.group == group)
        return pos[np.lexsort((pos, self.distance[pos], ~self.kept[pos]))]

    def frame(self, table: pd.DataFrame) -> pd.DataFrame:
        """The copies (grouped rows only): example_id, copy_group, kept, kept_id, hamming."""
        pos = np.flatnonzero(self.group >= 0)
        return pd.DataFrame(
            {
                "example_id": table["example_id"].to_numpy()[pos],
                "copy_group": self.group[pos],
                "kept": self.kept[pos],
                "kept_id": self.example_ids[self.representative[pos]],
                "hamming": self.distance[pos],
            }
        ).sort_values(["copy_group", "kept", "hamming"], ascending=[True, False, True], ignore_index=True)

    def summary(self) -> dict:
        return {
            "examples": len(self.group),
            "in_groups": int((self.group >= 0).sum()),
            "copies": self.n_copies,
            "groups": self.n_groups,
            "max_distance": self.max_distance,
            "hash_bits": int(self.info.get("hash_bits", HASH_SIZE * HASH_SIZE)),
        }


def copy_groups(
    hashes: np.ndarray,
    ok: np.ndarray,
    pixels: np.ndarray,
    example_ids,
    *,
    max_distance: int = DEFAULT_MAX_DISTANCE,
    info: dict | None = None,
) -> CopyGroups:
    """Group the rows whose hashes are within ``max_distance`` bits; each group keeps its largest image."""
    md = int(max_distance)
    nbits = 64 * hashes.shape[1]
    if not 0 <= md < nbits // 2:
        raise CurateError(
            f"max distance {max_distance} is outside [0, {nbits // 2 - 1}] for {nbits}-bit hashes: "
            f"pass e.g. {DEFAULT_MAX_DISTANCE}"
        )
    n = len(hashes)
    group = group_hashes(hashes, ok, md)
    n_groups = int(group.max()) + 1 if n else 0
    pos = np.flatnonzero(group >= 0)
    # the kept member: the most pixels (the original, not a downscaled or cropped copy), then the first row
    order = pos[np.lexsort((pos, -pixels[pos], group[pos]))]
    first = np.r_[True, group[order][1:] != group[order][:-1]] if len(order) else np.zeros(0, bool)
    keep_pos = order[first]
    representative = np.arange(n, dtype=np.int64)
    rep_of_group = np.zeros(n_groups, np.int64)
    rep_of_group[group[keep_pos]] = keep_pos
    representative[pos] = rep_of_group[group[pos]]
    kept = np.ones(n, bool)
    kept[pos] = False
    kept[keep_pos] = True
    distance = np.full(n, -1, np.int64)
    distance[pos] = hamming(hashes[pos], hashes[representative[pos]])
    return CopyGroups(
        group=group,
        kept=kept,
        representative=representative,
        distance=distance,
        example_ids=np.asarray(example_ids).astype(str).astype(object),
        max_distance=md,
        n_groups=n_groups,
        info=dict(info or {}),
    )


def _images(run, table: pd.DataFrame):
    """The run's images in table order (None where a file cannot be read), opened read-only."""
    from ..sources import BadImage, open_rgb

    paths = table["path"].to_numpy(object) if "path" in table.columns else np.full(len(table), None, object)
    source_rows = table["source_row"].to_numpy() if "source_row" in table.columns else None
    src = None
    for i, p in enumerate(paths):
        try:
            if isinstance(p, str) and p:
                yield open_rgb(p)
                continue
            if source_rows is None:
                yield None
                continue
            if src is None:
                src = run.source
            yield src.load_image(int(source_rows[i]))
        except (BadImage, OSError, ValueError):
            yield None


def _hash_stage(run) -> Stage:
    return Stage(
        run.dir.parent.parent,
        STAGE,
        VERSION,
        {"source": run.config["source"]["fingerprint"], "ids": _ids_key(run.table), "hash_size": HASH_SIZE},
    )


def hashes_cached(run) -> bool:
    """Whether the run's perceptual hashes are computed (so :func:`near_copies` takes seconds, not minutes)."""
    return _hash_stage(run).done


def run_hashes(run, *, reporter: Reporter | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
    """The perceptual hashes of a run's examples (table order), cached under ``<workdir>/phash/<key>/``."""
    rep = reporter or Reporter()
    t = run.table
    st = _hash_stage(run)
    if st.done:
        rep.stage("phash", cached=True, detail=str(st.dir))
        d = st.dir
        return np.load(d / "hashes.npy"), np.load(d / "ok.npy"), np.load(d / "pixels.npy"), st.meta()
    if not run.has_images:
        raise CurateError(
            "this run was made from precomputed embeddings without image files: exact near-copies need the "
            "images (run `curate run` on the image folder or a manifest)"
        )
    with st.lock(on_wait=rep.info):
        if not st.done:
            rep.stage("phash", detail=f"perceptual hashes of {len(t):,} images")
            t0 = time.perf_counter()
            hashes, ok, pixels = hash_images(_images(run, t), len(t), progress=rep.update)
            d = st.prepare()
            write_npy(d / "hashes.npy", hashes)
            write_npy(d / "ok.npy", ok)
            write_npy(d / "pixels.npy", pixels)
            st.finish(
                hash="pHash (imagehash's algorithm)",
                hash_bits=HASH_SIZE * HASH_SIZE,
                unreadable=int((~ok).sum()),
                elapsed_s=round(time.perf_counter() - t0, 2),
            )
            rep.end_stage()
    d = st.dir
    return np.load(d / "hashes.npy"), np.load(d / "ok.npy"), np.load(d / "pixels.npy"), st.meta()


def _ids_key(table: pd.DataFrame) -> str:
    import hashlib

    h = hashlib.sha256()
    for e in table["example_id"].astype(str):
        h.update(e.encode() + b"\0")
    return h.hexdigest()[:16]


def near_copies(run, *, max_distance: int = DEFAULT_MAX_DISTANCE, reporter: Reporter | None = None) -> CopyGroups:
    """Exact near-copies among a run's examples (see the module docstring); the hashes are cached."""
    from .. import load_run
    from ..run import Run

    run = run if isinstance(run, Run) else load_run(run)
    hashes, ok, pixels, meta = run_hashes(run, reporter=reporter)
    return copy_groups(
        hashes,
        ok,
        pixels,
        run.table["example_id"].astype(str).to_numpy(object),
        max_distance=max_distance,
        info={k: v for k, v in meta.items() if k != "files"},
    )
