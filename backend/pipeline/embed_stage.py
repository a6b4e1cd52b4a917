"""Stage 1: embeddings of every example (pool and held-out), chunked and resumable."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..config import PipelineConfig
from ..progress import Reporter
from ..sources import Source
from ..store import Stage

VERSION = 1


@dataclass
class Embeddings:
    """The embedding stage's output: the (memory-mapped) array and what made it."""

    key: str
    array: np.ndarray
    info: dict
    failed_rows: dict[int, str] = field(default_factory=dict)
    path: Path | None = None  # the .npy when the stage wrote one (None: precomputed, in memory or the user's)


def run(workdir: Path, src: Source, enc, cfg: PipelineConfig, dev: str, rep: Reporter) -> Embeddings:
    if src.embeddings is not None:
        rep.stage("embeddings", cached=True, detail="precomputed embeddings from the source")
        return Embeddings(
            key=f"precomputed-{src.fingerprint}",
            array=src.embeddings,
            info={"dim": int(src.embeddings.shape[1]), "encoder": "precomputed"},
        )
    from ..runners import get_runner

    st = Stage(workdir, "embeddings", VERSION, {"source": src.fingerprint, "encoder": enc.identity})
    pool_rows = np.flatnonzero(src.index["split"].to_numpy() == "train")
    with st.lock(on_wait=rep.info):  # a second run on this workdir waits here, then finds it done
        if st.done:
            rep.stage("embeddings", cached=True, detail=f"{st.dir}")
        else:
            rep.stage("embeddings", detail=f"{cfg.encoder} on {dev}, {len(src)} images")
            batch_size = cfg.batch_size
            if batch_size is None:  # big CNN batches are slower on a CPU (cache misses): 32, unless it says
                batch_size = (
                    256
                    if cfg.encoder == "pixels" or dev.startswith("cuda")
                    else int(getattr(enc, "cpu_batch_size", 32))
                )
            # local: backend.pipeline.compute_embeddings (tests patch it there); ray: backend/runners/ray_engine.py
            runner = get_runner(cfg.engine, address=cfg.address, device=cfg.device)
            info = runner.embed(
                src,
                enc,
                st.prepare(),
                device=dev,
                batch_size=batch_size,
                num_workers=cfg.num_workers,
                progress=rep.update,
                fit_rows=pool_rows,
            )
            st.finish(**info, identity=enc.identity)
            rep.end_stage()
    meta = st.meta()
    path = st.dir / "embeddings.npy"
    return Embeddings(
        key=st.key,
        array=np.load(path, mmap_mode="r"),
        info=meta,
        failed_rows={int(r): reason for r, reason in meta["failed"]},
        path=path,
    )
