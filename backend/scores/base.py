"""What a difficulty metric is, and the registry that finds metrics by name.

A metric is a function ``compute(ctx: ScoreContext) -> np.ndarray`` returning
one float per example of ``ctx.rows`` (higher = harder, for every metric),
registered with :func:`register_metric`.  Its registration says:

``needs_labels``         it cannot be computed without labels (skipped, with a note, when there are none)
``recompute_in_subset``  it depends on the set it is computed on (k-means, class prototypes): the
                         scaling grid recomputes it inside every initial subset instead of reusing
                         the pool's scores
``cost``                 what it costs, in words ("free", "k-means", "class means", "N probe trainings")
``default``              computed by ``curate run`` unless ``--metrics`` says otherwise
``range``                the values it takes
``version``              bump it when the scores change (part of the cache key)
``uses_clusters``        it reads ``ctx.centroid_sim`` (the run's k-means), so a new clustering recomputes it
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..progress import Reporter
from ..registry import Registry


class MetricRegistry(Registry[Callable[["ScoreContext"], np.ndarray]]):
    """The metric registry; ``METRICS[name]`` is the metric's one-line description (a name -> text mapping)."""

    def __getitem__(self, name: str) -> str:
        return str(self.entry(name).info["description"])


METRICS = MetricRegistry("metric", packages=("backend.scores",), option="--metric")


def register_metric(
    name: str,
    *,
    description: str,
    needs_labels: bool = False,
    recompute_in_subset: bool = False,
    cost: str = "free",
    default: bool = True,
    range: str = "",
    version: int = 1,
    **extra: Any,
):
    """Decorator: register ``compute(ctx) -> scores`` as the metric ``name`` (higher = harder)."""
    return METRICS.register(
        name,
        description=description,
        needs_labels=needs_labels,
        recompute_in_subset=recompute_in_subset,
        cost=cost,
        default=default,
        range=range,
        version=version,
        direction="higher = harder",
        **extra,
    )


@dataclass
class ScoreContext:
    """Everything a metric may read, for the examples at embedding rows ``rows``.

    ``centroid_sim`` is the cosine similarity of every example to its nearest
    k-means centroid when a clustering of exactly these rows exists (the
    pipeline's); a metric that needs it and finds None clusters itself.
    ``shared`` lets metrics computed together share work (e.g. one set of
    probe trainings gives EL2N, forgetting and AUM).
    """

    embeddings: np.ndarray
    rows: np.ndarray
    example_ids: np.ndarray
    labels: np.ndarray | None = None
    k: int = 10
    seed: int = 0
    device: str = "cpu"
    kmeans_iters: int = 20
    centroid_sim: np.ndarray | None = None
    # the k-means cluster of every row, from the same clustering as centroid_sim (None with it)
    cluster: np.ndarray | None = None
    options: dict[str, Any] = field(default_factory=dict)
    shared: dict[str, Any] = field(default_factory=dict)
    workdir: Path | None = None
    reporter: Reporter = field(default_factory=Reporter)
    # a source that can load the images (for metrics that train on pixels); None for embeddings only
    source: Any = None

    @property
    def has_labels(self) -> bool:
        return self.labels is not None

    def subset(self, positions: np.ndarray, *, seed: int | None = None) -> ScoreContext:
        """The same context restricted to ``positions`` (into ``rows``): what the scaling grid scores."""
        positions = np.asarray(positions)
        return ScoreContext(
            embeddings=self.embeddings,
            rows=self.rows[positions],
            example_ids=self.example_ids[positions],
            labels=None if self.labels is None else self.labels[positions],
            k=max(1, min(self.k, len(positions))),
            seed=self.seed if seed is None else seed,
            device=self.device,
            kmeans_iters=self.kmeans_iters,
            centroid_sim=None,
            cluster=None,
            options=dict(self.options),
            shared={},
            workdir=self.workdir,
            reporter=self.reporter,
            source=self.source,
        )


def available_metrics(*, has_labels: bool, default_only: bool = False) -> list[str]:
    """Metric names that can be computed on a run with (or without) labels."""
    out = []
    for e in METRICS.entries():
        if e.info["needs_labels"] and not has_labels:
            continue
        if default_only and not e.info["default"]:
            continue
        out.append(e.name)
    return out


def compute_metric(name: str, ctx: ScoreContext) -> np.ndarray:
    """Scores of metric ``name`` on ``ctx`` (float32 or float64), checked: one per row, finite."""
    from ..errors import CurateError

    entry = METRICS.entry(name)
    if entry.info["needs_labels"] and ctx.labels is None:
        raise CurateError(
            f"metric {name!r} needs labels and this run has none: choose a metric without labels "
            f"({', '.join(available_metrics(has_labels=False))})"
        )
    out = np.asarray(entry.obj(ctx)).ravel()
    if out.dtype not in (np.float32, np.float64):  # keep a metric's own float precision (it is stored as is)
        out = out.astype(np.float64)
    if len(out) != len(ctx.rows):
        raise ValueError(f"metric {name!r} returned {len(out)} scores for {len(ctx.rows)} examples")
    if not np.isfinite(out).all():
        raise ValueError(f"metric {name!r} returned NaN or inf")
    return out
