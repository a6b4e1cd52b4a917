"""``local``: everything in this process (the chunked, resumable runner of backend/embed/runner.py)."""

from __future__ import annotations

import numpy as np

from . import register_runner


class LocalRunner:
    name = "local"

    def embed(
        self, source, encoder, out_dir, *, device, batch_size, num_workers=None, progress=None, fit_rows=None
    ) -> dict:
        from .. import pipeline  # compute_embeddings is looked up there, so tests can patch it

        return pipeline.compute_embeddings(
            source,
            encoder,
            out_dir,
            device=device,
            batch_size=batch_size,
            num_workers=num_workers,
            progress=progress,
            fit_rows=fit_rows,
        )

    def assign(self, x, centroids: np.ndarray, rows: np.ndarray, *, device: str = "cpu", progress=None):
        from ..cluster.kmeans import nearest_centroid

        return nearest_centroid(x, centroids, rows, device=device, progress=progress)


@register_runner("local", priority=0, description="this process")
def make_local(*, address: str | None = None, device: str = "auto") -> LocalRunner:
    return LocalRunner()
