"""Stage 3: one difficulty column per metric (higher = harder), each cached on its own.

Which metrics: ``cfg.metrics`` when given, else every registered metric whose
registration says ``default=True``.  A metric that needs labels is skipped,
with one line saying so, when the run has none.  Each metric's scores are a
stage of their own (``<workdir>/scores/<key>/scores.npy``), keyed by the
embeddings, the pool rows, the metric's name and version, the seed, the
labels when it reads them and the clustering when it reads that, so adding a
metric to a finished run computes only the new one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..config import PipelineConfig
from ..io import write_npy
from ..progress import Reporter
from ..scores import METRICS, ScoreContext, available_metrics, compute_metric
from ..sources import Source
from ..store import Stage, fingerprint
from .cluster_stage import Clusters
from .embed_stage import Embeddings

VERSION = 1


@dataclass
class Scores:
    columns: dict[str, np.ndarray]  # metric name -> one score per pool example
    keys: dict[str, str]  # metric name -> stage key
    skipped: dict[str, str]  # metric name -> why it was not computed


def metric_names(cfg: PipelineConfig, has_labels: bool) -> tuple[list[str], dict[str, str]]:
    """(metrics to compute, {metric: reason} for requested ones that cannot be computed)."""
    if cfg.metrics is None:
        return available_metrics(has_labels=has_labels, default_only=True), {}
    names, skipped = [], {}
    for name in cfg.metrics:
        if METRICS.entry(name).info["needs_labels"] and not has_labels:
            skipped[name] = "needs labels and this run has none"
        else:
            names.append(name)
    return names, skipped


def run(
    workdir: Path,
    emb: Embeddings,
    clusters: Clusters,
    pool: np.ndarray,
    src: Source,
    pool_labels: np.ndarray | None,
    k: int,
    cfg: PipelineConfig,
    dev: str,
    rep: Reporter,
) -> Scores:
    names, skipped = metric_names(cfg, pool_labels is not None)
    for name, why in skipped.items():
        rep.info(f"metric {name} skipped: it {why}")
    ids = src.index["example_id"].to_numpy()[pool].astype(str)
    labels = None if pool_labels is None else np.asarray(pool_labels).astype(str)
    ctx = ScoreContext(
        embeddings=emb.array,
        rows=pool,
        example_ids=ids,
        labels=labels,
        k=k,
        seed=cfg.seed,
        device=dev,
        kmeans_iters=cfg.kmeans_iters,
        centroid_sim=clusters.sim,
        cluster=clusters.assign,
        workdir=workdir,
        reporter=rep,
        source=src,
    )
    rows_fp = fingerprint(pool.tolist())
    labels_fp = fingerprint(labels.tolist()) if labels is not None else None
    out, keys = {}, {}
    for name in names:
        entry = METRICS.entry(name)
        inputs = {
            "embeddings": emb.key,
            "rows": rows_fp,
            "metric": name,
            "metric_version": entry.info["version"],
            "seed": cfg.seed,
        }
        if entry.info["needs_labels"]:
            inputs["labels"] = labels_fp
        if entry.info.get("uses_clusters"):
            inputs["clusters"] = clusters.key
        st = Stage(workdir, "scores", VERSION, inputs)
        with st.lock(on_wait=rep.info):  # a second run on this workdir waits here, then finds it done
            if st.done:
                rep.substage(f"score {name}", cached=True, detail="")
            else:
                what = entry.info["description"].split(":")[0]
                rep.substage(f"score {name}", detail=f"{what} ({entry.info['cost']})")
                values = compute_metric(name, ctx)
                write_npy(st.prepare() / "scores.npy", values)
                st.finish(metric=name, cost=entry.info["cost"])
                rep.end_stage()
        out[name] = np.load(st.dir / "scores.npy")
        keys[name] = st.key
    return Scores(columns=out, keys=keys, skipped=skipped)
