"""Stage 4: the 2-D map of the pool (UMAP -- exact, or fitted on a stratified sample above 50,000 -- or PCA).

``meta.json`` of the stage records how the map was made (``path``: exact or
sampled, the fit sample size, the placement method); :attr:`Map.info` reads it back.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..config import PipelineConfig
from ..io import write_npy
from ..progress import Reporter
from ..projection.map2d import FIT_SAMPLE
from ..store import Stage, fingerprint
from .embed_stage import Embeddings

VERSION = 2  # 2: exact UMAP up to 50,000 points, stratified 50,000-point fit above (was 20,000 uniform)


@dataclass
class Map:
    key: str
    coords: np.ndarray  # (len(pool), 2) float32
    info: dict = field(default_factory=dict)  # how it was made: Projector2D.info_ (path, fit_sample, placement)


def _strata_key(clusters) -> str:
    return hashlib.sha256(np.ascontiguousarray(clusters, np.int64).tobytes()).hexdigest()[:16]


def run(
    workdir: Path,
    emb: Embeddings,
    pool: np.ndarray,
    cfg: PipelineConfig,
    rep: Reporter,
    *,
    clusters: np.ndarray | None = None,
) -> Map:
    """The map of ``pool``; ``clusters`` (one k-means cluster per pool row) stratifies the fit sample."""
    from ..projection import Projector2D

    st = Stage(
        workdir,
        "maps",
        VERSION,
        {
            "embeddings": emb.key,
            "rows": fingerprint(pool.tolist()),
            "method": cfg.map_method,
            "seed": cfg.seed,
            # the strata only change a sampled map: an exact one keeps its key whatever k is
            "strata": None if clusters is None or len(pool) <= FIT_SAMPLE else _strata_key(clusters),
        },
    )
    with st.lock(on_wait=rep.info):  # a second run on this workdir waits here, then finds it done
        if st.done:
            rep.stage("map", cached=True, detail=cfg.map_method)
        else:
            rep.stage("map", detail=f"{cfg.map_method} of {len(pool)} examples")
            projector = Projector2D(cfg.map_method, random_state=cfg.seed)
            coords = projector.fit_transform(emb.array, pool, progress=rep.update, strata=clusters)
            write_npy(st.prepare() / "map2d.npy", coords)
            st.finish(method=cfg.map_method, projection=projector.info_)
            rep.end_stage()
    meta = st.meta()
    return Map(
        key=st.key, coords=np.load(st.dir / "map2d.npy"), info=meta.get("projection", {"method": meta["method"]})
    )
