"""Add or replace score columns in a finished run's per-example table: the one helper every writer uses.

A run's ``examples.parquet`` is a finished stage (see :mod:`backend.store`):
changing it in place has to (1) hold the run folder's lock, so two writers
(``curate import-scores``, ``compute_scores``, the app) never lose each
other's columns, (2) read the table fresh from disk, not from a cached
:class:`backend.Run`, (3) write it atomically, (4) list the new columns in
``run.json``'s ``score_columns`` (what :attr:`Run.score_columns` and so
``curate select``, ``curate scaling`` and the app read) with where each came
from under ``score_info``, and (5) re-record the stage's files
(:func:`backend.store.rerecord`), or the next cache check would take the
changed table for a damaged one.  :func:`add_score_columns` does all five.

``backend/scores/compute.py`` (``compute_scores``) should call
:func:`add_score_columns` instead of its own ``_write_columns``, so that both
paths share the lock, the provenance and the re-record.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from ..errors import CurateError
from ..io import lock_file, read_json, write_json, write_table

LOCK = ".lock"  # the run folder's stage lock (backend.store.LOCK)


def _as_run(run):
    from .. import load_run
    from ..run import Run

    return run if isinstance(run, Run) else load_run(run)


def check_column_name(name: str) -> str:
    """``name`` if it can be a score column, else a CurateError saying why."""
    from ..run import NON_SCORE_COLUMNS

    name = str(name).strip()
    if not name or name != name.strip() or any(c in name for c in "\n\r\t,"):
        raise CurateError(f"{name!r} cannot be a score column name: pass --name with letters, digits and _")
    if name in NON_SCORE_COLUMNS:
        raise CurateError(
            f"{name!r} is one of the run's own columns ({', '.join(sorted(NON_SCORE_COLUMNS))}): pass another --name"
        )
    return name


def add_score_columns(
    run, columns: Mapping[str, np.ndarray], *, provenance: Mapping[str, dict] | None = None, allow_nan: bool = False
):
    """Add (or replace) ``columns`` (name -> one value per pool example, the table's order) in ``run``'s table.

    ``provenance``: per column, a JSON-able dict stored in ``run.json``
    ``score_info`` (what made it: "imported" from which file, "computed" by
    which metric version, ...).  ``allow_nan``: accept NaN for examples with
    no score (imported files that cover part of the run); inf is never
    accepted.  Returns the run with its cached table and config refreshed.
    """
    from ..store import rerecord

    run = _as_run(run)
    cols = {check_column_name(k): np.asarray(v) for k, v in columns.items()}
    path = run.dir / "examples.parquet"
    with lock_file(run.dir / LOCK):
        table = pd.read_parquet(path)
        for name, v in cols.items():
            if v.ndim != 1 or len(v) != len(table):
                raise CurateError(f"score column {name!r} has {v.size} values but the run has {len(table)} examples")
            if not np.issubdtype(v.dtype, np.floating):
                v = v.astype(np.float64)
                cols[name] = v
            bad = ~np.isfinite(v) & ~(np.isnan(v) if allow_nan else False)
            if bad.any():
                raise CurateError(f"score column {name!r} has {int(bad.sum())} NaN or infinite values")
            table[name] = v
        write_table(path, table)
        cfg_path = run.dir / "run.json"
        cfg = read_json(cfg_path)
        if "score_columns" in cfg:
            known = list(cfg["score_columns"])
        else:  # a run from before 0.2 listed nothing: every non-bookkeeping column was a score
            from ..run import NON_SCORE_COLUMNS

            known = [c for c in table.columns if c not in NON_SCORE_COLUMNS and c not in cols]
        cfg["score_columns"] = list(dict.fromkeys([*known, *cols]))
        info: dict[str, Any] = dict(cfg.get("score_info", {}))
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        for name in cols:
            info[name] = {**((provenance or {}).get(name) or {}), "written": stamp}
        cfg["score_info"] = info
        write_json(cfg_path, cfg)
        if (run.dir / "meta.json").exists():
            rerecord(run.dir)
    run.__dict__.pop("table", None)  # the Run's cached table is stale now
    run.config = cfg
    return run


def score_info(run) -> dict[str, dict]:
    """Where each added score column came from (``run.json`` ``score_info``); {} for pipeline-only runs."""
    return dict(_as_run(run).config.get("score_info", {}))
