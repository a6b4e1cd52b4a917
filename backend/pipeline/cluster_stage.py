"""Stage 2: spherical k-means of the pool and every example's nearest-centroid similarity."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..config import PipelineConfig
from ..errors import CurateError
from ..io import write_npy
from ..progress import Reporter
from ..store import Stage, fingerprint
from .embed_stage import Embeddings

VERSION = 3  # 2: k-means stops on a tolerance, restarts when cheap; 3: runner-up bounds, stages carry bounds (lloyd.py)


@dataclass
class Clusters:
    key: str
    k: int
    centroids: np.ndarray
    assign: np.ndarray  # cluster of each pool example (pool order)
    sim: np.ndarray  # cosine similarity to that centroid


def run(
    workdir: Path, emb: Embeddings, pool: np.ndarray, k: int, cfg: PipelineConfig, dev: str, rep: Reporter
) -> Clusters:
    from ..cluster import SphericalKMeans

    st = Stage(
        workdir,
        "clusters",
        VERSION,
        {
            "embeddings": emb.key,
            "rows": fingerprint(pool.tolist()),
            "k": k,
            "seed": cfg.seed,
            "iters": cfg.kmeans_iters,
        },
    )
    with st.lock(on_wait=rep.info):  # a second run on this workdir waits here, then finds it done
        if st.done:
            rep.stage("clusters", cached=True, detail=f"k={k}")
        else:
            rep.stage("clusters", detail=f"spherical k-means, k={k}, {len(pool)} examples")
            if len(pool) < k:
                raise CurateError(f"{len(pool)} examples is fewer than k={k} clusters: pass --k {len(pool)} or less")
            from ..runners import get_runner  # the fit is on a sample here; the assignment can run on a cluster

            runner = get_runner(cfg.engine, address=cfg.address, device=cfg.device)
            km = SphericalKMeans(k, n_iter=cfg.kmeans_iters, random_state=cfg.seed, device=dev)
            # the sampled training rows' exact answer comes with the fit; the engine searches the others
            assign, sim = km.fit_predict(
                emb.array, pool, search=lambda x, c, rows: runner.assign(x, c, rows, device=dev)
            )
            d = st.prepare()
            write_npy(d / "centroids.npy", km.centroids_)
            write_npy(d / "assign.npy", assign)
            write_npy(d / "sim.npy", sim)
            st.finish(k=k, n_train=int(km.n_train_))
            rep.end_stage()
    return Clusters(
        key=st.key,
        k=k,
        centroids=np.load(st.dir / "centroids.npy"),
        assign=np.load(st.dir / "assign.npy"),
        sim=np.load(st.dir / "sim.npy"),
    )
