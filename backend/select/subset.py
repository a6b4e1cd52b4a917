"""Choosing the kept subset (writing it out: :mod:`backend.select.export`).

Strategies (:data:`STRATEGIES`, one module each in
:mod:`backend.select.strategies`; scores are "higher = harder"):

``hard``        keep the highest scores
``easy``        keep the lowest scores
``random``      keep a seeded uniform sample (ranked by the ``random`` hash score)
``ccs``         coverage-centric: drop the hardest beta, sample evenly across score strata
``dedup+hard``  semantic duplicates first, then keep hard (``dedup+easy`` likewise)

Balances (:data:`BALANCES`, :mod:`backend.select.balances`): ``none``;
``class`` / ``cluster`` keep the same fraction inside every class (cluster),
quotas by largest remainder so the total is exact; ``class-floor`` /
``cluster-floor`` give every group at least ``floor_share`` (default 50%)
of what uniform random pruning would give it and the rest of the budget by
the strategy's global order.

Coverage floors (``min_per_class``, ``min_per_cluster``) are enforced: each
class (cluster) keeps at least that many (all of it when it is smaller), the
first ones in the strategy's order; the balance shares what is left.  A budget
too small for the floors is an error that says how many are needed.

Ties are broken by ``example_id``; the same inputs and seed always give the
same list.  A :class:`Ranking` is computed once per setting; ``mask(n_keep)``
is O(N) numpy for prefix strategies (the app's slider), and cached per
``n_keep`` for the others.
"""

from __future__ import annotations

import json
import platform
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..errors import CurateError
from .base import BALANCES, STRATEGIES, StrategyInput, proportional_quotas

EXPORT_COLUMNS = ["example_id", "path", "label", "cluster"]
COVERAGE_OPTIONS = ("min_per_class", "min_per_cluster")
_MASK_CACHE = 64  # masks kept per non-prefix ranking (the slider revisits the same counts)


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
    return max(1, min(n, round(keep * n)))


def _codes(table: pd.DataFrame, column: str) -> np.ndarray:
    return pd.factorize(table[column].astype(str), sort=True)[0].astype(np.int64)


def _rank_within(group: np.ndarray, order: np.ndarray, n_groups: int, eligible: np.ndarray | None = None):
    """Rank of each example inside its group along ``order`` (only ``eligible`` ones counted; others: huge)."""
    n = len(group)
    g = group[order]
    ok = np.ones(n, bool) if eligible is None else eligible[order]
    rank = np.full(n, np.iinfo(np.int64).max // 2, np.int64)
    if not ok.any():
        return rank
    go = g[ok]
    by_group = np.argsort(go, kind="stable")
    sizes = np.bincount(go, minlength=n_groups)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    pos = np.empty(len(go), np.int64)
    pos[by_group] = np.arange(len(go)) - np.repeat(starts, sizes)
    rank[order[ok]] = pos
    return rank


def _quotas_above_floors(sizes: np.ndarray, forced: np.ndarray, n_keep: int) -> np.ndarray:
    """Proportional quotas when some groups already hold more than their share (coverage floors).

    A group whose forced count exceeds its proportional quota keeps exactly its
    forced count; the others share the rest of the budget in proportion to
    their sizes (repeated until no group is below its forced count).
    """
    pinned = np.zeros(len(sizes), bool)
    while True:
        budget = n_keep - int(forced[pinned].sum())
        q = np.where(pinned, forced, 0)
        q[~pinned] = proportional_quotas(np.where(pinned, 0, sizes)[~pinned], max(budget, 0))
        low = ~pinned & (q < forced)
        if not low.any():
            return q
        pinned |= low


class Ranking:
    """The keep order of one setting (strategy, metric, balance, seed, options), precomputed.

    ``table`` is a run's table (or a :class:`backend.Run`, which dedup
    strategies need for the embeddings).  ``options`` are the strategy's and
    the balance's declared options (``ccs_beta``, ``ccs_strata``,
    ``floor_share``, ``dedup_eps``) plus the coverage floors
    ``min_per_class`` / ``min_per_cluster``; None means the default.
    ``order`` is the strategy's priority order (positions, first kept
    first); ``global_rank`` its inverse.
    """

    def __init__(
        self,
        table,
        *,
        strategy: str = "hard",
        metric: str = "ssl_prototype",
        balance: str = "none",
        seed: int = 0,
        run=None,
        **options,
    ):
        from ..run import Run

        if isinstance(table, Run):
            run, table = table, table.table
        if strategy not in STRATEGIES:
            raise CurateError(f"unknown strategy {strategy!r}: use one of {', '.join(STRATEGIES)}")
        if balance not in BALANCES:
            raise CurateError(f"unknown balance {balance!r}: use one of {', '.join(BALANCES)}")
        self.entry, self.balance_entry = STRATEGIES.entry(strategy), BALANCES.entry(balance)
        declared = {**self.entry.options, **self.balance_entry.options, **{k: 0 for k in COVERAGE_OPTIONS}}
        unknown = sorted(set(options) - set(declared))
        if unknown:
            raise CurateError(
                f"option {unknown[0]!r} does not apply to --strategy {strategy} --balance {balance} "
                f"(it takes: {', '.join(sorted(declared)) or 'none'})"
            )
        self.options = {k: (options[k] if options.get(k) is not None else v) for k, v in declared.items()}
        needs_metric = bool(self.entry.needs_metric)
        if needs_metric and metric not in table.columns:
            raise CurateError(
                f"metric {metric!r} is not in this run (available: "
                f"{', '.join(c for c in table.columns if c in _score_cols(table))}): pass --metric"
            )
        group_col = self.balance_entry.group
        min_class, min_cluster = int(self.options["min_per_class"]), int(self.options["min_per_cluster"])
        if min_class < 0 or min_cluster < 0:
            raise CurateError("--min-per-class and --min-per-cluster must be 0 or more")
        has_labels = "label" in table.columns and not table["label"].isna().any()
        if (group_col == "label" or min_class) and not has_labels:
            what = f"--balance {balance}" if group_col == "label" else "--min-per-class"
            raise CurateError(f"{what} needs labels and this run has none: use --balance none or cluster")
        self.strategy, self.metric, self.balance, self.seed = strategy, metric, balance, seed
        self.n = len(table)
        ids = table["example_id"].astype(str).to_numpy()
        scores = table[metric].to_numpy(np.float64) if needs_metric else None
        self._inp = StrategyInput(table=table, scores=scores, ids=ids, seed=seed, options=self.options, run=run)
        key = np.asarray(self.entry.obj(self._inp), np.float64)
        # position in keep order: by priority, ties by example_id
        self.order = np.lexsort((ids, key))
        self.global_rank = np.empty(self.n, np.int64)
        self.global_rank[self.order] = np.arange(self.n)
        self._inp.priority_rank = self.global_rank
        self.group = _codes(table, group_col) if group_col else np.zeros(self.n, np.int64)
        self.sizes = np.bincount(self.group, minlength=1)
        self.group_rank = _rank_within(self.group, self.order, len(self.sizes))
        self.forced = self._coverage_floors(table, min_class, min_cluster)
        self._simple = bool(self.entry.prefix) and not self.forced.any()
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self._prepared = False

    def _prepare_general(self) -> None:
        """Once, for the general path (floors, non-prefix strategies): per-group counts and ranks."""
        if self._prepared:
            return
        self._forced_per_group = np.bincount(self.group[self.forced], minlength=len(self.sizes))
        self._rank_free = _rank_within(self.group, self.order, len(self.sizes), ~self.forced)
        self._members = np.split(np.argsort(self.group, kind="stable"), np.cumsum(self.sizes)[:-1])
        self._prepared = True

    # -- coverage floors ----------------------------------------------------------------------
    def _coverage_floors(self, table, min_class: int, min_cluster: int) -> np.ndarray:
        """The examples every selection must keep: the first ``min`` of each class / cluster in keep order."""
        forced = np.zeros(self.n, bool)
        for col, m in (("label", min_class), ("cluster", min_cluster)):
            if m > 0:
                g = _codes(table, col)
                forced |= _rank_within(g, self.order, int(g.max()) + 1) < m
        return forced

    def floors_needed(self) -> int:
        """How many examples the coverage floors alone keep (the smallest budget they allow)."""
        return int(self.forced.sum())

    # -- the mask -----------------------------------------------------------------------------
    def mask(self, n_keep: int) -> np.ndarray:
        """Boolean mask of kept examples when keeping ``n_keep`` (exactly ``n_keep`` of them)."""
        n_keep = int(min(max(n_keep, 0), self.n))
        plan = self.balance_entry.obj(self.sizes, n_keep, self.options)
        if self._simple and plan.quota is not None:
            return self.group_rank < plan.quota[self.group]
        if n_keep in self._cache:
            self._cache.move_to_end(n_keep)
            return self._cache[n_keep].copy()
        out = self._mask_general(n_keep, plan)
        self._cache[n_keep] = out
        if len(self._cache) > _MASK_CACHE:
            self._cache.popitem(last=False)
        return out.copy()

    def _mask_general(self, n_keep: int, plan) -> np.ndarray:
        self._prepare_general()
        forced = self.forced
        n_forced = int(forced.sum())
        if n_forced > n_keep:
            raise CurateError(
                f"the coverage floors need at least {n_forced} examples but the budget is {n_keep}: "
                "keep more, or lower --min-per-class / --min-per-cluster"
            )
        free_per_group = self.sizes - self._forced_per_group
        if plan.quota is not None:
            need = np.minimum(
                _quotas_above_floors(self.sizes, self._forced_per_group, n_keep) - self._forced_per_group,
                free_per_group,
            )
            kept = forced | self._choose_in_groups(need, n_keep)
            short = n_keep - int(kept.sum())
            if short > 0:  # groups too small for their quota after the floors: the rest by global order
                kept |= self._choose_global(~kept, short, n_keep)
            return kept
        need = np.minimum(np.maximum(plan.floor - self._forced_per_group, 0), free_per_group)
        if need.sum() > n_keep - n_forced:
            need = proportional_quotas(need, n_keep - n_forced)
        kept = forced | self._choose_in_groups(need, n_keep)
        rest = n_keep - int(kept.sum())
        if rest > 0:
            kept |= self._choose_global(~kept, rest, n_keep)
        return kept

    def _choose_in_groups(self, need: np.ndarray, n_keep: int) -> np.ndarray:
        """``need[g]`` not-yet-forced examples of every group g, by the strategy."""
        if self.entry.prefix:
            return (~self.forced) & (self._rank_free < need[self.group])
        out = np.zeros(self.n, bool)
        for g, members in enumerate(self._members):
            if need[g] > 0:
                free = members[~self.forced[members]]
                out[self.entry.choose(self._inp, free, int(need[g]), keep_fraction=n_keep / self.n)] = True
        return out

    def _choose_global(self, candidates: np.ndarray, count: int, n_keep: int) -> np.ndarray:
        """``count`` of the ``candidates`` (a mask), by the strategy over all groups at once."""
        out = np.zeros(self.n, bool)
        if count <= 0:
            return out
        if self.entry.prefix:
            cand_in_order = candidates[self.order]
            take = cand_in_order & (np.cumsum(cand_in_order) <= count)
            out[self.order[take]] = True
            return out
        pos = np.flatnonzero(candidates)
        out[self.entry.choose(self._inp, pos, int(count), keep_fraction=n_keep / self.n)] = True
        return out

    # -- what the selection was -----------------------------------------------------------------
    def params(self) -> dict:
        """The setting, as the manifest records it: options only where they apply (and are set)."""
        out = {
            "strategy": self.strategy,
            "metric": self.metric if self.entry.needs_metric else None,
            "balance": self.balance,
            "seed": self.seed,
        }
        for k in list(self.entry.options) + list(self.balance_entry.options):
            out[k] = self.options[k]
        for k in COVERAGE_OPTIONS:
            if self.options[k]:
                out[k] = int(self.options[k])
        return out

    def steps(self, mask: np.ndarray) -> dict:
        """What each step removed (dedup strategies: duplicates vs difficulty), for the manifest."""
        out: dict[str, dict] = {}
        if "dedup_removed_total" in self._inp.report:
            from .strategies._dedup import duplicate_mask

            dup = duplicate_mask(self._inp)
            out["dedup"] = {
                "duplicates_found": int(dup.sum()),
                "removed_as_duplicates": int((dup & ~mask).sum()),
                "removed_by_difficulty": int((~dup & ~mask).sum()),
                "duplicates_kept_back": int((dup & mask).sum()),
            }
        if self.strategy == "ccs":
            from .strategies.ccs import resolve_options

            beta, strata = resolve_options(self.options, mask.sum() / max(self.n, 1))
            out["ccs"] = {"beta": beta, "strata": strata}
        if self.forced.any():
            out["coverage_floors"] = {"forced": int(self.forced.sum())}
        return out


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
    steps: dict = field(default_factory=dict)

    @property
    def n_kept(self) -> int:
        return len(self.kept)

    def manifest(self) -> dict:
        return {
            "tool": "curation-studio",
            "selection": self.params,
            "counts": {"total": self.n_total, "kept": self.n_kept, "per_class": self.per_class},
            **({"steps": self.steps} if self.steps else {}),
            "run": self.run_info,
            "versions": _versions(),
            "reproduce": _reproduce_cmd(self),
        }


def select_subset(
    run,
    *,
    keep: float | None = None,
    keep_count: int | None = None,
    strategy: str = "hard",
    metric: str = "ssl_prototype",
    balance: str = "none",
    seed: int = 0,
    ranking: Ranking | None = None,
    **options,
) -> Selection:
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
    rk = ranking or Ranking(table, strategy=strategy, metric=metric, balance=balance, seed=seed, run=run, **options)
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
    run_info = {
        "dir": str(run.dir),
        "key": run.key,
        "source": run.config["source"]["spec"],
        "source_fingerprint": run.config["source"]["fingerprint"],
        "params": run.config["params"],
        "stages": run.config["stages"],
        "encoder": run.encoder,  # which model made the embeddings the scores come from (weights hash included)
    }
    return Selection(
        kept=kept.reset_index(drop=True),
        n_total=len(table),
        params=params,
        run_info=run_info,
        per_class=per_class,
        steps=rk.steps(mask),
    )


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
    if p.get("keep_fraction") is None:
        parts += ["--keep-count", str(p["keep_count"])]
    else:
        parts += ["--keep", str(p["keep_fraction"])]
    parts += ["--strategy", p["strategy"], "--balance", p["balance"], "--seed", str(p["seed"])]
    if p.get("metric"):
        parts += ["--metric", p["metric"]]
    for k, v in p.items():
        if k not in ("keep_fraction", "keep_count", "strategy", "balance", "seed", "metric") and v is not None:
            parts += ["--" + k.replace("_", "-"), str(v)]
    return " ".join(parts) + " --out FILE"
