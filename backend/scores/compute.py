"""Compute metrics on a finished run, on request, and add them to its per-example table.

The pipeline computes the metrics registered with ``default=True``; the
expensive ones (``el2n``, ``forgetting``, ...: ``default=False``) are computed
here when a user asks::

    from backend.scores.compute import compute_scores
    res = compute_scores(run, ["el2n", "forgetting", "aum"], seeds=5)
    res.scores["el2n"]            # one float per pool example (the table's order), higher = harder

All requested metrics share one :class:`ScoreContext` (so one set of probe
trainings serves every training-dynamics metric).  Each metric's scores are
cached as a :class:`backend.store.Stage` under
``<workdir>/scores/<key>/scores.npy``, keyed by the run, the metric, its
version and the options it reads, so asking again (or resuming after an
interruption) recomputes only what is missing.  The columns are then added to
(or replaced in) the run's ``examples.parquet``, written atomically, so
``curate select``, ``curate scaling`` and the app see them.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import CurateError
from ..io import read_json, write_json, write_npy, write_table
from ..progress import Reporter
from ..store import Stage
from .base import METRICS, ScoreContext, compute_metric

STAGE = "scores"
VERSION = 1


@dataclass
class ComputedScores:
    """What :func:`compute_scores` did: scores per metric (pool order), which were cached, which were skipped."""

    scores: dict[str, np.ndarray]
    cached: dict[str, bool]
    skipped: dict[str, str]
    dirs: dict[str, Path]
    table_path: Path
    elapsed_s: dict[str, float] = field(default_factory=dict)


def _as_run(run):
    from .. import load_run
    from ..run import Run

    return run if isinstance(run, Run) else load_run(run)


def _metric_names(metrics: str | Iterable[str]) -> list[str]:
    names = metrics.split(",") if isinstance(metrics, str) else list(metrics)
    out: list[str] = []
    for n in (str(n).strip() for n in names):
        if n and n not in out:
            METRICS.entry(n)  # an unknown name raises a CurateError that lists the choices
            out.append(n)
    if not out:
        raise CurateError(f"no metric given: pass --metrics with one or more of {', '.join(METRICS.names())}")
    return out


def run_context(
    run,
    *,
    options: dict[str, Any] | None = None,
    device: str = "auto",
    reporter: Reporter | None = None,
    with_pixels: bool = False,
) -> ScoreContext:
    """The :class:`ScoreContext` of a run's pool: its embeddings, rows, ids, labels, k and the stored clustering.

    ``with_pixels``: metrics that train on the images find a loader in
    ``ctx.shared["pixels_loader"]`` (:func:`backend.probes.cnn.load_images` of
    the pool, called once, when first needed).  ``ctx.source`` stays None: the
    run's source is indexed by ``source_row``, not by the embedding rows.
    """
    from ..embed import resolve_device

    rep = reporter or Reporter()
    table = run.table
    params = run.config.get("params", {})
    ctx = ScoreContext(
        embeddings=run.embeddings,
        rows=table["row"].to_numpy(np.int64),
        example_ids=table["example_id"].astype(str).to_numpy(),
        labels=table["label"].astype(str).to_numpy() if run.has_labels else None,
        k=run.k,
        seed=int(params.get("seed", 0)),
        device=resolve_device(device),
        kmeans_iters=int(params.get("kmeans_iters", 20)),
        centroid_sim=table["centroid_sim"].to_numpy(np.float32) if "centroid_sim" in table.columns else None,
        cluster=table["cluster"].to_numpy(np.int64) if "cluster" in table.columns else None,
        options=dict(options or {}),
        shared={},
        workdir=run.dir.parent.parent,
        reporter=rep,
    )
    if with_pixels:

        def load():
            from ..probes.cnn import load_images

            return load_images(run, reporter=rep)

        ctx.shared["pixels_loader"] = load
    return ctx


def _stage(run, name: str, ctx: ScoreContext) -> Stage:
    info = METRICS.entry(name).info
    declared = info.get("options")
    opts = {k: v for k, v in ctx.options.items() if declared is None or k in declared}
    inputs = {"run": run.key, "metric": name, "version": int(info.get("version", 1)), "options": opts, "seed": ctx.seed}
    if declared is None:  # a metric that does not say what it reads: key by everything it could read
        inputs.update(k=ctx.k, kmeans_iters=ctx.kmeans_iters)
    return Stage(run.dir.parent.parent, STAGE, VERSION, inputs)


def compute_scores(
    run,
    metrics: str | Iterable[str],
    *,
    seeds: int = 5,
    epoch: int | None = None,
    options: dict[str, Any] | None = None,
    device: str = "auto",
    force: bool = False,
    reporter: Reporter | None = None,
) -> ComputedScores:
    """Compute ``metrics`` on the run's pool, cache them, and add/replace their columns in ``examples.parquet``.

    ``run``: a :class:`backend.Run` or a run/work folder.  ``metrics``: names
    (a list or "a,b,c"; any registered metric, default or not).  ``seeds``:
    trainings averaged over by the training-dynamics metrics (default 5);
    ``epoch``: the epoch EL2N is read at (default: the metric's, early);
    ``options``: further metric options (e.g. ``{"epochs": 30}``), passed in
    ``ctx.options``.  A metric that needs labels on a run without labels is
    skipped with a one-line note.  ``force``: recompute even when cached.
    """
    rep = reporter or Reporter()
    run = _as_run(run)
    names = _metric_names(metrics)
    if int(seeds) < 1:
        raise CurateError(f"--seeds must be at least 1 (got {seeds})")
    opts = {"seeds": int(seeds), **({"epoch": int(epoch)} if epoch is not None else {}), **(options or {})}
    skipped: dict[str, str] = {}
    todo = []
    for n in names:
        if METRICS.entry(n).info["needs_labels"] and not run.has_labels:
            skipped[n] = "needs labels and this run has none"
            rep.info(f"{n}: needs labels and this run has none, skipped")
        else:
            todo.append(n)
    needs_images = any(METRICS.entry(n).info.get("needs_images") for n in todo)
    ctx = run_context(run, options=opts, device=device, reporter=rep, with_pixels=needs_images)
    out: dict[str, np.ndarray] = {}
    cached: dict[str, bool] = {}
    dirs: dict[str, Path] = {}
    elapsed: dict[str, float] = {}
    for n in todo:
        st = _stage(run, n, ctx)
        dirs[n] = st.dir
        if st.done and not force:
            rep.stage(f"score {n}", cached=True, detail=str(st.dir))
            out[n], cached[n] = np.load(st.dir / "scores.npy"), True
            continue
        rep.stage(f"score {n}", detail=METRICS.entry(n).info.get("cost", ""))
        t0 = time.perf_counter()
        s = compute_metric(n, ctx)
        elapsed[n] = round(time.perf_counter() - t0, 3)
        d = st.prepare()
        write_npy(d / "scores.npy", s)
        dyn = ctx.shared.get("probe_dynamics") or {}
        write_json(
            d / "summary.json",
            {
                "metric": n,
                "n": len(s),
                "mean": float(s.mean()),
                "std": float(s.std()),
                "min": float(s.min()),
                "max": float(s.max()),
                "training": [v.info for v in dyn.values()],
            },
        )
        st.finish(elapsed_s=elapsed[n])
        rep.end_stage()
        out[n], cached[n] = s, False
    path = run.dir / "examples.parquet"
    if out:
        _write_columns(run, path, out)
    return ComputedScores(scores=out, cached=cached, skipped=skipped, dirs=dirs, table_path=path, elapsed_s=elapsed)


def _write_columns(run, path: Path, columns: dict[str, np.ndarray]) -> None:
    """Add or replace score columns in the run's table and its ``run.json`` record, under the run's lock.

    The run folder is a finished stage whose ``meta.json`` records its files:
    :func:`backend.store.rerecord` records them again, so the change is not
    mistaken for damage (and the run is not recomputed).
    """
    from ..io import lock_file
    from ..store import META, rerecord

    with lock_file(run.dir / ".lock"):
        table = pd.read_parquet(path)  # fresh from disk: another process may have added columns
        if (
            len(table) != len(run.table)
            or not (table["example_id"].to_numpy() == run.table["example_id"].to_numpy()).all()
        ):
            raise CurateError(f"{path} changed while the scores were computed: run the command again")
        for name, s in columns.items():
            if len(s) != len(table):
                raise CurateError(
                    f"cached scores of {name!r} have {len(s)} values for {len(table)} examples: "
                    "recompute them with force=True (--force)"
                )
            table[name] = np.asarray(s, np.float64)
        write_table(path, table)
        cfg_path = run.dir / "run.json"
        cfg = read_json(cfg_path)
        if "score_columns" in cfg:  # the run's own record of its score columns (Run.score_columns reads it)
            cfg["score_columns"] = list(dict.fromkeys([*cfg["score_columns"], *columns]))
            write_json(cfg_path, cfg)
        if (run.dir / META).exists():
            rerecord(run.dir)
    run.config = cfg
    run.__dict__.pop("table", None)  # the Run's cached table is stale now
