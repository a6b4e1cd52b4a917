"""Stage 4: the 2-D map of the pool (UMAP on a sample, or PCA)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..config import PipelineConfig
from ..io import write_npy
from ..progress import Reporter
from ..store import Stage, fingerprint
from .embed_stage import Embeddings

VERSION = 1


@dataclass
class Map:
    key: str
    coords: np.ndarray  # (len(pool), 2) float32


def run(workdir: Path, emb: Embeddings, pool: np.ndarray, cfg: PipelineConfig, rep: Reporter) -> Map:
    from ..projection import Projector2D

    st = Stage(
        workdir,
        "maps",
        VERSION,
        {"embeddings": emb.key, "rows": fingerprint(pool.tolist()), "method": cfg.map_method, "seed": cfg.seed},
    )
    with st.lock(on_wait=rep.info):  # a second run on this workdir waits here, then finds it done
        if st.done:
            rep.stage("map", cached=True, detail=cfg.map_method)
        else:
            rep.stage("map", detail=f"{cfg.map_method} of {len(pool)} examples")
            coords = Projector2D(cfg.map_method, random_state=cfg.seed).fit_transform(
                emb.array, pool, progress=rep.update
            )
            write_npy(st.prepare() / "map2d.npy", coords)
            st.finish(method=cfg.map_method)
            rep.end_stage()
    return Map(key=st.key, coords=np.load(st.dir / "map2d.npy"))
