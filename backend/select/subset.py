"""Choosing the kept subset (writing it out: :mod:`backend.select.export`).

Strategies (scores are "higher = harder"):

``hard``    keep the highest scores
``easy``    keep the lowest scores
``random``  keep a seeded uniform sample (ranked by the ``random`` hash score)

``balance="class"`` (or ``"cluster"``) keeps the same fraction inside every
class (cluster): quotas by largest remainder, so the total is exact.  Ties are
broken by ``example_id``; the same inputs and seed always give the same list.

A :class:`Ranking` is computed once per (strategy, metric, balance, seed);
``mask(n_keep)`` is then O(N) numpy, which keeps the app's slider fast.
"""

from __future__ import annotations

import json
import platform
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..errors import CurateError
from ..scores import random_score

STRATEGIES = ("hard", "easy", "random")
BALANCES = ("none", "class", "cluster")
EXPORT_COLUMNS = ["example_id", "path", "label", "cluster"]


def keep_count_for(n: int, keep: float | None = None, keep_count: int | None = None) -> int:
    """Number of examples to keep, validated."""
    if keep_count is not None:
        if keep is not None:
            raise CurateError("pass either --keep or --keep-count, not both")
        if not 1 <= int(keep_count) <= n:
            raise CurateError(f"--keep-count {keep_count} is outside 1..{n} (the run has {n} examples)")
        return int(keep_count)
    if keep is None:
        raise CurateError("pass --keep FRACTION (0 < f <= 1) or --keep-count N")
    keep = float(keep)
    if not (0.0 < keep <= 1.0) or np.isnan(keep):
        raise CurateError(f"keep fraction {keep} is outside (0, 1]: pass e.g. --keep 0.7 to keep 70%")
    return max(1, min(n, int(round(keep * n))))


def _quotas(sizes: np.ndarray, n_keep: int) -> np.ndarray:
    """Largest-remainder apportionment of n_keep over groups proportional to sizes."""
    total = sizes.sum()
    exact = sizes * (n_keep / total)
    q = np.minimum(np.floor(exact).astype(np.int64), sizes)
    short = n_keep - q.sum()
    if short > 0:
        rem = exact - q
        rem[q >= sizes] = -1
        order = np.lexsort((np.arange(len(sizes)), -rem))
        q[order[:short]] += 1
    return q


class Ranking:
    """The order in which a strategy keeps examples, precomputed."""

    def __init__(self, table: pd.DataFrame, *, strategy: str = "hard", metric: str = "ssl_prototype",
                 balance: str = "none", seed: int = 0):
        if strategy not in STRATEGIES:
            raise CurateError(f"unknown strategy {strategy!r}: use one of {', '.join(STRATEGIES)}")
        if balance not in BALANCES:
            raise CurateError(f"unknown balance {balance!r}: use one of {', '.join(BALANCES)}")
        if strategy != "random" and metric not in table.columns:
            raise CurateError(f"metric {metric!r} is not in this run (available: "
                              f"{', '.join(c for c in table.columns if c in _score_cols(table))}): pass --metric")
        if balance == "class" and (table["label"].isna().any()):
            raise CurateError("--balance class needs labels and this run has none: use --balance none or cluster")
        self.strategy, self.metric, self.balance, self.seed = strategy, metric, balance, seed
        self.n = len(table)
        ids = table["example_id"].astype(str).to_numpy()
        if strategy == "random":
            key = random_score(ids, seed)
        else:
            key = table[metric].to_numpy(np.float64)
            key = -key if strategy == "hard" else key
        # position in keep order: by key, ties by example_id
        order = np.lexsort((ids, key))
        self.order = order
        if balance == "none":
            self.group = np.zeros(self.n, np.int64)
        else:
            col = "label" if balance == "class" else "cluster"
            self.group = pd.factorize(table[col].astype(str), sort=True)[0].astype(np.int64)
        self.sizes = np.bincount(self.group)
        # rank of each example inside its group, following the global order
        # positions along the order, grouped by group (stable keeps the order inside a group)
        by_group = np.argsort(self.group[order], kind="stable")
        starts = np.concatenate([[0], np.cumsum(self.sizes)[:-1]])
        pos_in_group = np.empty(self.n, np.int64)
        pos_in_group[by_group] = np.arange(self.n) - np.repeat(starts, self.sizes)
        self.group_rank = np.empty(self.n, np.int64)
        self.group_rank[order] = pos_in_group
        self.global_rank = np.empty(self.n, np.int64)
        self.global_rank[order] = np.arange(self.n)

    def mask(self, n_keep: int) -> np.ndarray:
        """Boolean mask of kept examples when keeping ``n_keep``."""
        quotas = _quotas(self.sizes, n_keep)
        return self.group_rank < quotas[self.group]

    def params(self) -> dict:
        return {"strategy": self.strategy, "metric": None if self.strategy == "random" else self.metric,
                "balance": self.balance, "seed": self.seed}


def _score_cols(table):
    from ..run import NON_SCORE_COLUMNS

    return [c for c in table.columns if c not in NON_SCORE_COLUMNS]


@dataclass
class Selection:
    """The kept subset of a run, with everything needed to reproduce it."""

    kept: pd.DataFrame
    n_total: int
    params: dict
    run_info: dict
    per_class: dict = field(default_factory=dict)

    @property
    def n_kept(self) -> int:
        return len(self.kept)

    def manifest(self) -> dict:
        return {
            "tool": "curation-studio",
            "selection": self.params,
            "counts": {"total": self.n_total, "kept": self.n_kept, "per_class": self.per_class},
            "run": self.run_info,
            "versions": _versions(),
            "reproduce": _reproduce_cmd(self),
        }


def select_subset(run, *, keep: float | None = None, keep_count: int | None = None, strategy: str = "hard",
                  metric: str = "ssl_prototype", balance: str = "none", seed: int = 0,
                  ranking: Ranking | None = None) -> Selection:
    """Keep ``keep`` (fraction) or ``keep_count`` examples of ``run`` by ``strategy``.

    ``run`` is a :class:`backend.Run` (or a run/work directory).  The kept rows
    come back in the run's table order with a ``rank`` column (1 = first kept).
    """
    from ..pipeline import find_run_dir
    from ..run import Run

    if not isinstance(run, Run):
        run = Run(find_run_dir(run))
    table = run.table
    n_keep = keep_count_for(len(table), keep, keep_count)
    rk = ranking or Ranking(table, strategy=strategy, metric=metric, balance=balance, seed=seed)
    mask = rk.mask(n_keep)
    cols = EXPORT_COLUMNS + run.score_columns
    kept = table.loc[mask, cols].copy()
    kept.insert(len(EXPORT_COLUMNS), "rank", rk.global_rank[mask] + 1)
    per_class = {}
    if run.has_labels:
        tot = table["label"].value_counts()
        kc = kept["label"].value_counts()
        per_class = {str(c): {"total": int(tot[c]), "kept": int(kc.get(c, 0))} for c in sorted(tot.index)}
    params = {"keep_fraction": keep, "keep_count": n_keep, **rk.params()}
    run_info = {"dir": str(run.dir), "key": run.key, "source": run.config["source"]["spec"],
                "source_fingerprint": run.config["source"]["fingerprint"],
                "params": run.config["params"], "stages": run.config["stages"]}
    return Selection(kept=kept.reset_index(drop=True), n_total=len(table), params=params, run_info=run_info,
                     per_class=per_class)


def _versions() -> dict:
    from importlib import metadata

    out = {"python": platform.python_version()}
    for pkg in ("curation-studio", "numpy", "pandas", "faiss-cpu", "torch", "torchvision", "umap-learn", "pyarrow"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    return out


def _reproduce_cmd(sel: Selection) -> str:
    p = sel.params
    parts = ["curate", "select", "--workdir", json.dumps(sel.run_info["dir"])]
    parts += ["--keep-count", str(p["keep_count"])] if p.get("keep_fraction") is None else ["--keep", str(p["keep_fraction"])]
    parts += ["--strategy", p["strategy"], "--balance", p["balance"], "--seed", str(p["seed"])]
    if p.get("metric"):
        parts += ["--metric", p["metric"]]
    return " ".join(parts) + " --out FILE"

