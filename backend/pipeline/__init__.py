"""The one pipeline behind the CLI, the Python API and the app.

``run_pipeline`` goes source -> embeddings -> clusters -> scores -> 2-D map ->
run folder.  Each stage lives in its own module here, with its version beside
it, and is cached under ``<workdir>/<stage>/<fingerprint>/`` (see
:mod:`backend.store`): running again with the same inputs reuses everything,
changing only ``k`` reuses the embeddings, and adding a metric computes only
that metric.

The run folder ``<workdir>/runs/<key>/`` holds:

``run.json``          configuration, stage keys, counts, versions, and explicit metadata
                      (``has_labels``, ``score_columns``, ``encoder`` identity); read only by
                      :class:`backend.run.Run`
``examples.parquet``  one row per pool example: example_id, path, label, split,
                      row (into embeddings.npy), cluster, centroid_sim, one column
                      per score (higher = harder), map_x, map_y
``holdout.parquet``   held-out examples (test split): never pruned
``skipped.csv``       files that could not be used, with the reason
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..config import PipelineConfig
from ..embed import compute_embeddings  # noqa: F401  (tests patch it here; the embed stage looks it up here)
from ..progress import Reporter
from ..run import LATEST, Run, find_run_dir
from .core import STAGE_VERSIONS, run_config

__all__ = ["run_pipeline", "run_config", "find_run_dir", "PipelineConfig", "STAGE_VERSIONS", "LATEST"]


def run_pipeline(source: str, workdir: str | Path, *, reporter: Reporter | None = None, **params: Any) -> Run:
    """Compute embeddings, clusters, scores and the 2-D map; return the finished :class:`Run`.

    ``params`` are the fields of :class:`backend.config.PipelineConfig` (encoder, weights,
    image_size, k, seed, device, map_method, data_root, download, manifest, limit,
    kmeans_iters, batch_size, num_workers, metrics).  Every stage is cached in ``workdir``;
    a repeated call is a cache hit.
    """
    return run_config(PipelineConfig.from_kwargs(source, **params), workdir, reporter=reporter)
