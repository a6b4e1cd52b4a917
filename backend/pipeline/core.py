"""The orchestration: read the source, check it, then run the stages in order."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd

from ..config import PipelineConfig
from ..errors import CurateError
from ..progress import Reporter
from ..run import Run
from ..sources import Source, resolve_source
from ..store import fingerprint
from . import cluster_stage, embed_stage, map_stage, score_stage, table_stage

STAGE_VERSIONS = {
    "embeddings": embed_stage.VERSION,
    "clusters": cluster_stage.VERSION,
    "scores": score_stage.VERSION,
    "maps": map_stage.VERSION,
    "runs": table_stage.VERSION,
}


def limit_source(source: Source, limit: int | None, seed: int) -> tuple[Source, np.ndarray]:
    """Keep at most ``limit`` examples of each split (seeded); return (source, source rows)."""
    rows = np.arange(len(source))
    if limit is None:
        return source, rows
    rng = np.random.default_rng(seed)
    keep = []
    for _, idx in source.index.groupby("split", sort=True).indices.items():
        keep.append(np.sort(rng.choice(idx, size=min(limit, len(idx)), replace=False)))
    rows = np.sort(np.concatenate(keep))
    sub = Source(
        spec=source.spec,
        kind=source.kind,
        index=source.index.iloc[rows].reset_index(drop=True),
        fingerprint=fingerprint(source.fingerprint, "limit", limit, seed),
        description=source.description,
        classes=source.classes,
        images=None if source.images is None else source.images[rows],
        embeddings=None if source.embeddings is None else np.asarray(source.embeddings[rows]),
        skipped=source.skipped,
        image_size=source.image_size,
    )
    return sub, rows


def _check_train_split(src: Source, k: int | None) -> None:
    """Problems visible before any work: refuse them before anything is written."""
    n_train = int((src.index["split"] == "train").sum())
    if n_train == 0:
        raise CurateError(
            f"the source has no training examples (all {len(src)} are held out as test/val): "
            "put some examples in a train split"
        )
    if n_train == 1:
        raise CurateError("the source has a single example: pruning needs at least 2 (and k-means at least k)")
    if k is not None and n_train < int(k):
        raise CurateError(f"{n_train} examples is fewer than k={k} clusters: pass --k {n_train} or less")


def _workdir(workdir: str | Path) -> Path:
    wd = Path(workdir).expanduser().resolve()
    if wd.exists() and not wd.is_dir():
        raise CurateError(f"workdir {wd} is a file: pass a folder (new or existing) as --workdir")
    return wd


def run_config(cfg: PipelineConfig, workdir: str | Path, *, reporter: Reporter | None = None) -> Run:
    """Run every stage of ``cfg`` in ``workdir`` (cached); return the finished :class:`Run`."""
    from ..cluster import default_k
    from ..embed import get_encoder, resolve_device

    cfg.check()
    rep = reporter or Reporter()
    wd = _workdir(workdir)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()

    rep.stage("source", detail=f"reading {cfg.source}")
    src_full = resolve_source(cfg.source, data_root=cfg.data_root, download=cfg.download, manifest=cfg.manifest)
    src, source_rows = limit_source(src_full, cfg.limit, cfg.seed)
    rep.info(
        f"source: {src.description}; {len(src)} examples"
        + (f", {len(src_full.skipped)} files skipped at scan" if src_full.skipped else "")
    )
    for warning in getattr(src_full, "warnings", ()):  # accepted, but probably not what the user meant
        rep.info(f"warning: {warning}")
    timings["source"] = time.perf_counter() - t0
    # --device cpu needs no torch (a 3 s import) when the embeddings are precomputed
    dev = "cpu" if cfg.device == "cpu" else resolve_device(cfg.device)
    _check_train_split(src, cfg.k)
    enc = get_encoder(cfg.encoder, weights=cfg.weights, image_size=cfg.image_size) if src.embeddings is None else None
    try:
        wd.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CurateError(f"cannot create workdir {wd} ({exc.strerror}): pass a writable --workdir") from None

    t = time.perf_counter()
    emb = embed_stage.run(wd, src, enc, cfg, dev, rep)
    timings["embeddings"] = time.perf_counter() - t

    ok = np.ones(len(src), bool)
    ok[list(emb.failed_rows)] = False
    split = src.index["split"].to_numpy()
    pool = np.flatnonzero(ok & (split == "train"))
    holdout = np.flatnonzero(ok & (split != "train"))
    if len(pool) == 0:
        first = next(iter(sorted(emb.failed_rows.items())), (0, ""))
        raise CurateError(
            f"no usable examples in the source: every image failed to load (e.g. "
            f"{src.index['example_id'].iat[first[0]]}: {first[1]}): check the files"
            if emb.failed_rows
            else "the source has no training examples: check --source"
        )
    if len(pool) == 1:
        raise CurateError("the source has a single usable example: pruning needs at least 2")
    labels = src.index["label"].to_numpy(object)
    has_labels = bool(pd.notna(labels[pool]).all())
    n_classes = len(set(labels[pool])) if has_labels else None
    k_used = int(cfg.k) if cfg.k is not None else default_k(len(pool), n_classes)

    t = time.perf_counter()
    clusters = cluster_stage.run(wd, emb, pool, k_used, cfg, dev, rep)
    timings["clusters"] = time.perf_counter() - t

    t = time.perf_counter()
    scores = score_stage.run(wd, emb, clusters, pool, src, labels[pool] if has_labels else None, k_used, cfg, dev, rep)
    timings["scores"] = time.perf_counter() - t

    t = time.perf_counter()
    # the clusters stratify the map's fit sample above the exact-UMAP size (every cluster is drawn)
    map2d = map_stage.run(wd, emb, pool, cfg, rep, clusters=clusters.assign)
    timings["map"] = time.perf_counter() - t

    run_dir = table_stage.run(
        wd,
        cfg=cfg,
        src_full=src_full,
        src=src,
        source_rows=source_rows,
        emb=emb,
        clusters=clusters,
        scores=scores,
        map2d=map2d,
        pool=pool,
        holdout=holdout,
        labels=labels,
        has_labels=has_labels,
        n_classes=n_classes,
        k_used=k_used,
        dev=dev,
        timings=timings,
        reporter=rep,
    )
    return Run(run_dir)
