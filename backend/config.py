"""The one configuration of a pipeline run, shared by the CLI, the Python API and the app.

A :class:`PipelineConfig` is frozen: build it once (``PipelineConfig(source=..., k=...)``
or ``PipelineConfig.from_kwargs(**kw)``), validate it with :meth:`check`, and
hand it to :func:`backend.pipeline.run_config`.  Every stage reads only the
fields it needs; the run folder records :meth:`as_dict`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from .errors import CurateError


@dataclass(frozen=True)
class PipelineConfig:
    """Parameters of ``curate run`` (see ``curate run --help`` for each one)."""

    source: str
    encoder: str = "pixels"
    weights: str | None = None
    image_size: int | None = None
    k: int | None = None
    seed: int = 0
    device: str = "auto"
    map_method: str = "umap"
    data_root: str | None = None
    download: bool = False
    manifest: str | None = None
    limit: int | None = None
    kmeans_iters: int = 20
    batch_size: int | None = None
    num_workers: int | None = None
    # difficulty metrics to compute; None = every registered metric whose registration says default=True
    metrics: tuple[str, ...] | None = None
    # where the embedding and nearest-centroid passes run (backend/runners): local | ray; address for ray
    engine: str = "local"
    address: str | None = None

    @classmethod
    def from_kwargs(cls, source: str, **kw: Any) -> PipelineConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(kw) - known)
        if unknown:
            raise TypeError(f"unknown pipeline parameter(s): {', '.join(unknown)}")
        if kw.get("metrics") is not None:
            kw["metrics"] = parse_metric_list(kw["metrics"])
        return cls(source=source, **kw)

    def replace(self, **changes: Any) -> PipelineConfig:
        return replace(self, **changes)

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["metrics"] = list(self.metrics) if self.metrics is not None else None
        return out

    def check(self) -> PipelineConfig:
        """Refuse values that are wrong whatever the data (one-line messages); return self."""
        from .projection import MAP_METHODS
        from .scores import METRICS

        if self.k is not None and int(self.k) < 1:
            raise CurateError(
                f"--k must be at least 1 (got {self.k}): pass a positive number of clusters or leave it out"
            )
        if self.map_method not in MAP_METHODS:
            raise CurateError(f"unknown map method {self.map_method!r}: use one of {', '.join(MAP_METHODS)}")
        if self.limit is not None and int(self.limit) < 1:
            raise CurateError(f"--limit must be a positive number of examples (got {self.limit})")
        if self.kmeans_iters < 1:
            raise CurateError(f"k-means iterations must be at least 1 (got {self.kmeans_iters})")
        from .runners import RUNNERS

        RUNNERS.entry(self.engine)  # unknown -> one line listing the engines
        if self.address is not None and self.engine == "local":
            raise CurateError("--address is for --engine ray: add --engine ray or leave --address out")
        for name in self.metrics or ():
            METRICS.entry(name)  # unknown -> one line listing the choices
        return self


def parse_metric_list(value: Any) -> tuple[str, ...]:
    """``"a,b"`` or a sequence -> ("a", "b"), order kept, duplicates dropped."""
    items = value.split(",") if isinstance(value, str) else list(value)
    out: list[str] = []
    for item in items:
        name = str(item).strip()
        if name and name not in out:
            out.append(name)
    if not out:
        raise CurateError("--metrics is empty: pass metric names separated by commas, e.g. ssl_prototype,el2n")
    return tuple(out)
