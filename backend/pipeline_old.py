"""The one pipeline behind the CLI, the Python API and the app.

``run_pipeline`` goes source -> embeddings -> clusters + scores -> 2-D map ->
run folder.  Each stage is cached under ``<workdir>/<stage>/<fingerprint>/``
(see :mod:`backend.store`), so running again with the same inputs reuses
everything and changing only ``k`` reuses the embeddings.

The run folder ``<workdir>/runs/<key>/`` holds:

``run.json``          configuration, stage keys, counts, versions
``examples.parquet``  one row per pool example: example_id, path, label, split,
                      row (into embeddings.npy), cluster, centroid_sim, one column
                      per score (higher = harder), map_x, map_y
``holdout.parquet``   held-out examples (test split): never pruned
``skipped.csv``       files that could not be used, with the reason
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from . import __version__
from .cluster import SphericalKMeans, default_k
from .embed import compute_embeddings, get_encoder, resolve_device
from .errors import CurateError
from .io import read_json, write_json, write_npy, write_table
from .progress import Reporter
from .projection import MAP_METHODS, Projector2D
from .scores import random_score, ssl_prototype, supervised_prototype
from .sources import Source, resolve_source
from .store import Stage, fingerprint

STAGE_VERSIONS = {"embeddings": 1, "clusters": 1, "maps": 1, "runs": 3}
LATEST = "latest.json"


@dataclass
class RunConfig:
    source: str
    encoder: str = "pixels"
    weights: str | None = None
    image_size: int | None = None
    k: int | None = None
    seed: int = 0
    device: str = "auto"
    map_method: str = "umap"
    data_root: str | None = None
    download: bool = False
    manifest: str | None = None
    limit: int | None = None
    kmeans_iters: int = 20
    batch_size: int | None = None
    num_workers: int | None = None


def _limit_source(source: Source, limit: int | None, seed: int) -> tuple[Source, np.ndarray]:
    """Keep at most ``limit`` examples of each split (seeded); return (source, source rows)."""
    rows = np.arange(len(source))
    if limit is None:
        return source, rows
    if limit < 1:
        raise CurateError(f"--limit must be a positive number of examples (got {limit})")
    rng = np.random.default_rng(seed)
    keep = []
    for _, idx in source.index.groupby("split", sort=True).indices.items():
        keep.append(np.sort(rng.choice(idx, size=min(limit, len(idx)), replace=False)))
    rows = np.sort(np.concatenate(keep))
    sub = Source(spec=source.spec, kind=source.kind, index=source.index.iloc[rows].reset_index(drop=True),
                 fingerprint=fingerprint(source.fingerprint, "limit", limit, seed), description=source.description,
                 classes=source.classes, images=None if source.images is None else source.images[rows],
                 embeddings=None if source.embeddings is None else np.asarray(source.embeddings[rows]),
                 skipped=source.skipped, image_size=source.image_size)
    return sub, rows


def run_pipeline(source: str, workdir: str | Path, *, encoder: str = "pixels", weights: str | None = None,
                 image_size: int | None = None, k: int | None = None, seed: int = 0, device: str = "auto",
                 map_method: str = "umap", data_root: str | None = None, download: bool = False,
                 manifest: str | None = None, limit: int | None = None, kmeans_iters: int = 20,
                 batch_size: int | None = None, num_workers: int | None = None,
                 reporter: Reporter | None = None) -> "Run":
    """Compute embeddings, clusters, scores and the 2-D map; return the finished :class:`Run`.

    Every stage is cached in ``workdir``; a repeated call is a cache hit.
    """
    from .run import Run

    rep = reporter or Reporter()
    cfg = RunConfig(source=source, encoder=encoder, weights=weights, image_size=image_size, k=k, seed=seed,
                    device=device, map_method=map_method, data_root=data_root, download=download,
                    manifest=manifest, limit=limit, kmeans_iters=kmeans_iters, batch_size=batch_size,
                    num_workers=num_workers)
    workdir = Path(workdir).expanduser().resolve()
    if workdir.exists() and not workdir.is_dir():
        raise CurateError(f"workdir {workdir} is a file: pass a folder (new or existing) as --workdir")
    if k is not None and int(k) < 1:
        raise CurateError(f"--k must be at least 1 (got {k}): pass a positive number of clusters or leave it out")
    if map_method not in MAP_METHODS:
        raise CurateError(f"unknown map method {map_method!r}: use one of {', '.join(MAP_METHODS)}")
    timings: dict[str, float] = {}
    t0 = time.perf_counter()

    rep.stage("source", detail=f"reading {source}")
    src_full = resolve_source(source, data_root=data_root, download=download, manifest=manifest)
    src, source_rows = _limit_source(src_full, limit, seed)
    rep.info(f"source: {src.description}; {len(src)} examples"
             + (f", {len(src_full.skipped)} files skipped at scan" if src_full.skipped else ""))
    timings["source"] = time.perf_counter() - t0
    dev = resolve_device(device)
    # problems visible before any work: refuse them before anything is written
    n_train = int((src.index["split"] == "train").sum())
    if n_train == 0:
        raise CurateError(f"the source has no training examples (all {len(src)} are held out as test/val): "
                          "put some examples in a train split")
    if n_train == 1:
        raise CurateError("the source has a single example: pruning needs at least 2 (and k-means at least k)")
    if k is not None and n_train < int(k):
        raise CurateError(f"{n_train} examples is fewer than k={k} clusters: pass --k {n_train} or less")
    enc = get_encoder(encoder, weights=weights, image_size=image_size) if src.embeddings is None else None
    try:
        workdir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CurateError(f"cannot create workdir {workdir} ({exc.strerror}): pass a writable --workdir") from None

    # ---- embeddings ------------------------------------------------------
    t = time.perf_counter()
    if src.embeddings is not None:
        emb_key, emb = f"precomputed-{src.fingerprint}", src.embeddings
        failed: list = []
        emb_info = {"dim": int(emb.shape[1]), "encoder": "precomputed"}
        rep.stage("embeddings", cached=True, detail="precomputed embeddings from the source")
    else:
        st = Stage(workdir, "embeddings", STAGE_VERSIONS["embeddings"],
                   {"source": src.fingerprint, "encoder": enc.identity})
        pool_rows = np.flatnonzero(src.index["split"].to_numpy() == "train")
        if st.done:
            rep.stage("embeddings", cached=True, detail=f"{st.dir}")
        else:
            rep.stage("embeddings", detail=f"{encoder} on {dev}, {len(src)} images")
            if batch_size is None:  # big CNN batches are slower on a CPU (cache misses): 32 there
                batch_size = 256 if encoder == "pixels" or dev.startswith("cuda") else 32
            info = compute_embeddings(src, enc, st.prepare(), device=dev, batch_size=batch_size,
                                      num_workers=num_workers, progress=rep.update, fit_rows=pool_rows)
            st.finish(**info, identity=enc.identity)
            rep.end_stage()
        emb_key = st.key
        emb_info = st.meta()
        failed = emb_info["failed"]
        emb = np.load(st.dir / "embeddings.npy", mmap_mode="r")
    timings["embeddings"] = time.perf_counter() - t

    failed_rows = {int(r): reason for r, reason in failed}
    ok = np.ones(len(src), bool)
    ok[list(failed_rows)] = False
    split = src.index["split"].to_numpy()
    pool = np.flatnonzero(ok & (split == "train"))
    holdout = np.flatnonzero(ok & (split != "train"))
    if len(pool) == 0:
        first = next(iter(sorted(failed_rows.items())), (0, ""))
        raise CurateError(f"no usable examples in the source: every image failed to load (e.g. "
                          f"{src.index['example_id'].iat[first[0]]}: {first[1]}): check the files"
                          if failed_rows else "the source has no training examples: check --source")
    if len(pool) == 1:
        raise CurateError("the source has a single usable example: pruning needs at least 2")
    labels = src.index["label"].to_numpy(object)
    has_labels = bool(pd.notna(labels[pool]).all())
    n_classes = len(set(labels[pool])) if has_labels else None
    k_used = int(k) if k is not None else default_k(len(pool), n_classes)

    # ---- clusters + scores ----------------------------------------------
    t = time.perf_counter()
    cl = Stage(workdir, "clusters", STAGE_VERSIONS["clusters"],
               {"embeddings": emb_key, "rows": fingerprint(pool.tolist()), "k": k_used, "seed": seed,
                "iters": kmeans_iters})
    if cl.done:
        rep.stage("clusters", cached=True, detail=f"k={k_used}")
    else:
        rep.stage("clusters", detail=f"spherical k-means, k={k_used}, {len(pool)} examples")
        if len(pool) < k_used:
            raise CurateError(f"{len(pool)} examples is fewer than k={k_used} clusters: pass --k {len(pool)} or less")
        km = SphericalKMeans(k_used, n_iter=kmeans_iters, random_state=seed, device=dev).fit(emb, pool)
        assign, sim = km.predict(emb, pool)
        d = cl.prepare()
        write_npy(d / "centroids.npy", km.centroids_)
        write_npy(d / "assign.npy", assign)
        write_npy(d / "sim.npy", sim)
        cl.finish(k=k_used, n_train=int(km.n_train_))
        rep.end_stage()
    centroids = np.load(cl.dir / "centroids.npy")
    assign = np.load(cl.dir / "assign.npy")
    sim = np.load(cl.dir / "sim.npy")
    timings["clusters"] = time.perf_counter() - t

    # ---- 2-D map ---------------------------------------------------------
    t = time.perf_counter()
    mp = Stage(workdir, "maps", STAGE_VERSIONS["maps"],
               {"embeddings": emb_key, "rows": fingerprint(pool.tolist()), "method": map_method, "seed": seed})
    if mp.done:
        rep.stage("map", cached=True, detail=map_method)
    else:
        rep.stage("map", detail=f"{map_method} of {len(pool)} examples")
        coords = Projector2D(map_method, random_state=seed).fit_transform(emb, pool, progress=rep.update)
        write_npy(mp.prepare() / "map2d.npy", coords)
        mp.finish(method=map_method)
        rep.end_stage()
    coords = np.load(mp.dir / "map2d.npy")
    timings["map"] = time.perf_counter() - t

    # ---- the run folder --------------------------------------------------
    run_st = Stage(workdir, "runs", STAGE_VERSIONS["runs"],
                   {"source": src.fingerprint, "embeddings": emb_key, "clusters": cl.key, "map": mp.key})
    if run_st.done:
        rep.stage("run", cached=True, detail=str(run_st.dir))
    else:
        rep.stage("run", detail="writing the per-example table")
        idx = src.index
        table = pd.DataFrame({
            "example_id": idx["example_id"].to_numpy()[pool],
            "path": idx["path"].to_numpy()[pool],
            "label": labels[pool],
            "split": split[pool],
            "row": pool.astype(np.int64),
            "source_row": source_rows[pool].astype(np.int64),
            "cluster": assign.astype(np.int32),
            "centroid_sim": sim.astype(np.float32),
            "ssl_prototype": ssl_prototype(sim),
        })
        if has_labels:
            table["supervised_prototype"] = supervised_prototype(emb, labels[pool], pool)
        table["random"] = random_score(table["example_id"], seed)
        table["map_x"] = coords[:, 0]
        table["map_y"] = coords[:, 1]
        d = run_st.prepare()
        write_table(d / "examples.parquet", table)
        hold = pd.DataFrame({"example_id": idx["example_id"].to_numpy()[holdout],
                             "path": idx["path"].to_numpy()[holdout], "label": labels[holdout],
                             "row": holdout.astype(np.int64), "source_row": source_rows[holdout].astype(np.int64)})
        write_table(d / "holdout.parquet", hold)
        skipped = [(sid, reason) for sid, reason in src_full.skipped]
        skipped += [(idx["example_id"].iat[r], reason) for r, reason in sorted(failed_rows.items())]
        write_table(d / "skipped.csv", pd.DataFrame(skipped, columns=["example_id", "reason"]))
        write_npy(d / "centroids.npy", centroids)
        # a user's .npy is memory-mapped in place; a Parquet file or a limited subset is saved as .npy
        emb_path = (Path(src.spec) if src.embeddings is not None and limit is None
                    and Path(src.spec).suffix == ".npy" else None)
        if src.embeddings is not None and emb_path is None:
            write_npy(d / "embeddings.npy", np.asarray(emb, np.float32))
        config = {
            "tool": "curation-studio", "version": __version__,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "params": {"source": source, "encoder": encoder if src.embeddings is None else "precomputed",
                       "weights": weights, "image_size": image_size, "k": k_used, "k_requested": k, "seed": seed,
                       "device": dev, "map_method": map_method, "data_root": _abs(data_root),
                       "manifest": _abs(manifest),
                       "limit": limit, "kmeans_iters": kmeans_iters},
            "source": {"spec": src.spec, "kind": src.kind, "description": src.description,
                       "fingerprint": src_full.fingerprint, "limited_fingerprint": src.fingerprint,
                       "image_size": src.image_size, "classes": src.classes, "has_files": src.has_files},
            "embedding": {k2: v for k2, v in emb_info.items() if k2 not in ("failed", "inputs")},
            "stages": {"embeddings": emb_key, "clusters": cl.key, "map": mp.key, "run": run_st.key},
            "embeddings_path": str(emb_path if emb_path is not None else
                                   (d / "embeddings.npy" if src.embeddings is not None
                                    else workdir / "embeddings" / emb_key / "embeddings.npy")),
            "counts": {"examples": int(len(pool)), "holdout": int(len(holdout)),
                       "skipped": int(len(skipped)), "classes": n_classes},
            "timings_s": {k2: round(v, 3) for k2, v in timings.items()},
        }
        write_json(d / "run.json", config)
        run_st.finish()
        rep.end_stage()
    write_json(workdir / LATEST, {"run": str(run_st.dir.relative_to(workdir))})
    return Run(run_st.dir)


def _abs(path: str | None) -> str | None:
    """An absolute path, so the run can re-open its source from any working folder."""
    return str(Path(path).expanduser().resolve()) if path else path


def find_run_dir(path: str | Path) -> Path:
    """A run folder from a run folder itself or a workdir (its latest run)."""
    p = Path(path).expanduser().resolve()
    if (p / "run.json").exists():
        return p
    if (p / LATEST).exists():
        run = p / read_json(p / LATEST)["run"]
        if (run / "run.json").exists():
            return run
    raise CurateError(f"no finished run in {p}: run `curate run --source ... --workdir {path}` first")


def run_summary(run) -> dict[str, Any]:
    return run.summary()
