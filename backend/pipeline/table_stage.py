"""Stage 5: the run folder: the per-example table, the hold-out, skipped files and ``run.json``."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd

from ..config import PipelineConfig
from ..io import write_json, write_npy, write_table
from ..progress import Reporter
from ..run import LATEST
from ..sources import Source
from ..store import Stage
from ..version import __version__
from .cluster_stage import Clusters
from .embed_stage import Embeddings
from .map_stage import Map
from .score_stage import Scores

VERSION = 4


def _abs(path: str | None) -> str | None:
    """An absolute path, so the run can re-open its source from any working folder."""
    return str(Path(path).expanduser().resolve()) if path else path


def run(
    workdir: Path,
    *,
    cfg: PipelineConfig,
    src_full: Source,
    src: Source,
    source_rows: np.ndarray,
    emb: Embeddings,
    clusters: Clusters,
    scores: Scores,
    map2d: Map,
    pool: np.ndarray,
    holdout: np.ndarray,
    labels: np.ndarray,
    has_labels: bool,
    n_classes: int | None,
    k_used: int,
    dev: str,
    timings: dict[str, float],
    reporter: Reporter,
) -> Path:
    rep = reporter
    st = Stage(
        workdir,
        "runs",
        VERSION,
        {
            "source": src.fingerprint,
            "embeddings": emb.key,
            "clusters": clusters.key,
            "scores": scores.keys,
            "map": map2d.key,
        },
    )
    with st.lock(on_wait=rep.info):  # a second run on this workdir waits here, then finds it done
        if st.done:
            rep.stage("run", cached=True, detail=str(st.dir))
            write_json(workdir / LATEST, {"run": str(st.dir.relative_to(workdir))})
            return st.dir
        rep.stage("run", detail="writing the per-example table")
        idx = src.index
        split = idx["split"].to_numpy()
        table = pd.DataFrame(
            {
                "example_id": idx["example_id"].to_numpy()[pool],
                "path": idx["path"].to_numpy()[pool],
                "label": labels[pool],
                "split": split[pool],
                "row": pool.astype(np.int64),
                "source_row": source_rows[pool].astype(np.int64),
                "cluster": clusters.assign.astype(np.int32),
                "centroid_sim": clusters.sim.astype(np.float32),
            }
        )
        for name, values in scores.columns.items():
            table[name] = values
        table["map_x"] = map2d.coords[:, 0]
        table["map_y"] = map2d.coords[:, 1]
        d = st.prepare()
        write_table(d / "examples.parquet", table)
        hold = pd.DataFrame(
            {
                "example_id": idx["example_id"].to_numpy()[holdout],
                "path": idx["path"].to_numpy()[holdout],
                "label": labels[holdout],
                "row": holdout.astype(np.int64),
                "source_row": source_rows[holdout].astype(np.int64),
            }
        )
        write_table(d / "holdout.parquet", hold)
        skipped = [(sid, reason) for sid, reason in src_full.skipped]
        skipped += [(idx["example_id"].iat[r], reason) for r, reason in sorted(emb.failed_rows.items())]
        write_table(d / "skipped.csv", pd.DataFrame(skipped, columns=["example_id", "reason"]))
        write_npy(d / "centroids.npy", clusters.centroids)
        precomputed = src.embeddings is not None
        # a user's .npy is memory-mapped in place; a Parquet file or a limited subset is saved as .npy
        user_npy = Path(src.spec) if precomputed and cfg.limit is None and Path(src.spec).suffix == ".npy" else None
        if precomputed and user_npy is None:
            write_npy(d / "embeddings.npy", np.asarray(emb.array, np.float32))
        emb_path = user_npy or (d / "embeddings.npy" if precomputed else emb.path)
        encoder = "precomputed" if precomputed else cfg.encoder
        config = {
            "tool": "curation-studio",
            "version": __version__,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "params": {
                "source": cfg.source,
                "encoder": encoder,
                "weights": cfg.weights,
                "image_size": cfg.image_size,
                "k": k_used,
                "k_requested": cfg.k,
                "seed": cfg.seed,
                "device": dev,
                "map_method": cfg.map_method,
                "data_root": _abs(cfg.data_root),
                "manifest": _abs(cfg.manifest),
                "limit": cfg.limit,
                "kmeans_iters": cfg.kmeans_iters,
                "metrics": list(cfg.metrics) if cfg.metrics is not None else None,
            },
            "source": {
                "spec": src.spec,
                "kind": src.kind,
                "description": src.description,
                "fingerprint": src_full.fingerprint,
                "limited_fingerprint": src.fingerprint,
                "image_size": _image_size(src, pool),
                "classes": src.classes,
                "has_files": src.has_files,
            },
            # explicit metadata, so readers never guess from the table's columns
            "has_labels": bool(has_labels),
            "score_columns": list(scores.columns),
            "scores_skipped": scores.skipped,
            "encoder": {"name": encoder, "identity": emb.info.get("identity", {"encoder": encoder})},
            "embedding": {k2: v for k2, v in emb.info.items() if k2 not in ("failed", "inputs", "files")},
            "stages": {
                "embeddings": emb.key,
                "clusters": clusters.key,
                "map": map2d.key,
                "scores": scores.keys,
                "run": st.key,
            },
            "embeddings_path": str(emb_path),
            "counts": {
                "examples": int(len(pool)),
                "holdout": int(len(holdout)),
                "skipped": int(len(skipped)),
                "classes": n_classes,
            },
            "timings_s": {k2: round(v, 3) for k2, v in timings.items()},
        }
        write_json(d / "run.json", config)
        st.finish()
        rep.end_stage()
        write_json(workdir / LATEST, {"run": str(st.dir.relative_to(workdir))})
        return st.dir


def _image_size(src: Source, pool: np.ndarray) -> str:
    """The source's image size; for files ("varies" until opened) read from the pool's image headers."""
    if src.image_size != "varies" or not src.has_files or "path" not in src.index:
        return src.image_size
    from ..sources.image_size import measure_image_size

    paths = src.index["path"].to_numpy(object)[pool]
    return measure_image_size([p for p in paths if isinstance(p, str) and p], len(pool))
