"""Engines that run the heavy passes: ``local`` (this process) and ``ray`` (a Ray cluster).

An engine is one module of this package with one ``@register_runner``; it
builds an object with two methods, the only places where the pipeline's work
can leave this process:

``embed(source, encoder, out_dir, *, device, batch_size, num_workers, progress, fit_rows) -> info``
    write ``out_dir/embeddings.npy`` (N x D float32, source order, failed rows
    zero) and return the info the local runner returns (``n``, ``raw_dim``,
    ``dim``, ``failed`` as (row, reason), ``pca_explained_variance`` for pixels);
``assign(x, centroids, rows, *, device, progress) -> (cluster int32, sim float32)``
    the nearest centroid of every row of ``x[rows]`` and its cosine similarity.

Both engines give the same arrays for the same inputs (tests/runners), so the
engine is not part of any cache key: a run started on one can be finished on
the other.  Ray is imported only by the ``ray`` engine, through
:mod:`backend.runners._ray_adapter`.
"""

from __future__ import annotations

from typing import Any

from ..registry import Registry

RUNNERS: Registry = Registry("engine", packages=("backend.runners",), option="--engine")


def register_runner(name: str, **info: Any):
    """Register ``make(address=None, device="auto") -> runner`` under ``name`` (``description=`` for ``--help``)."""
    return RUNNERS.register(name, **info)


def get_runner(name: str = "local", *, address: str | None = None, device: str = "auto"):
    """The runner called ``name`` (unknown names: a one-line error listing the engines).

    ``device`` is the one the user asked for: with ``auto`` the ray engine uses the cluster's GPUs even when
    the driver has none.
    """
    return RUNNERS.get(name)(address=address, device=device)


__all__ = ["RUNNERS", "get_runner", "register_runner"]
