"""What a keep count keeps, per group, without touching the N examples on every slider move.  Pure numpy.

For a prefix strategy (keep hard, keep easy, random) without coverage floors, a
:class:`backend.Ranking` keeps, in each balance group ``b``, the members whose rank inside ``b`` is below
the quota ``q_b`` of the keep count (balance none: one group, the first ``n_keep`` in keep order).  So the
kept examples of a labelling ``v`` (cluster, class, score bin) are, for each (b, v) pair, a prefix of that
pair's members sorted by rank: one ``searchsorted`` per pair, O(pairs * log N) per move instead of the
O(N) mask, bincount and histogram.  The precomputation (one sort per labelling) is done once per ranking.

Other strategies (CCS, dedup) and coverage floors fall back to ``Ranking.mask`` (cached there per count),
which gives the same numbers.
"""

from __future__ import annotations

import threading
import weakref

import numpy as np


class KeptIndex:
    """Per-group kept counts, the margin and the score cut of one ranking, for any keep count."""

    def __init__(self, ranking):
        self.rk = ranking
        self.n = int(ranking.n)
        self.fast = bool(ranking.entry.prefix) and not ranking.forced.any()
        self._labellings: dict[str, tuple] = {}
        self._derived: dict[str, np.ndarray] = {}
        self._lock = threading.Lock()
        if self.fast:
            # members of each balance group in keep order (positions), and where each group starts
            by = np.lexsort((ranking.group_rank, ranking.group))
            self._by_group = by
            self._group_start = np.concatenate([[0], np.cumsum(ranking.sizes)[:-1]]).astype(np.int64)
        self._prefix_extremes: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    # -- the quota -------------------------------------------------------------------------
    def quota(self, n_keep: int) -> np.ndarray | None:
        """Members kept per balance group at ``n_keep`` (None when the ranking needs its mask)."""
        if not self.fast:
            return None
        n_keep = int(min(max(n_keep, 0), self.n))
        plan = self.rk.balance_entry.obj(self.rk.sizes, n_keep, self.rk.options)
        return None if plan.quota is None else np.asarray(plan.quota, np.int64)

    # -- per-group counts ------------------------------------------------------------------
    def labelling_codes(self, name: str, make, n_groups: int) -> np.ndarray:
        """Codes of a derived labelling (score bins), made once by ``make()``; a code of -1 (outside every
        group) becomes the extra group ``n_groups - 1``."""
        with self._lock:
            got = self._derived.get(name)
        if got is None:
            c = np.asarray(make(), np.int64)
            got = np.where(c < 0, n_groups - 1, c)
            with self._lock:
                self._derived[name] = got
        return got

    def _labelling(self, name: str, codes: np.ndarray, n_groups: int) -> tuple:
        with self._lock:
            got = self._labellings.get(name)
            if got is not None and got[0] == n_groups:
                return got
            rk = self.rk
            pair = rk.group.astype(np.int64) * n_groups + np.asarray(codes, np.int64)
            keys = pair * (self.n + 1) + rk.group_rank
            keys.sort()
            pairs = keys // (self.n + 1)
            uniq, starts = np.unique(pairs, return_index=True)
            got = (n_groups, keys, uniq, starts.astype(np.int64), uniq // n_groups, uniq % n_groups)
            self._labellings[name] = got
            return got

    def counts(self, name: str, codes: np.ndarray, n_groups: int, n_keep: int, quota=None) -> np.ndarray:
        """Kept examples per group of the labelling ``codes`` (0..n_groups-1), named ``name`` for the cache.

        ``quota``: :meth:`quota` of ``n_keep`` when the caller already has it (it is the same for every
        labelling)."""
        q = self.quota(n_keep) if quota is None else quota
        if q is None:
            return np.bincount(np.asarray(codes)[self.rk.mask(n_keep)], minlength=n_groups)
        _, keys, uniq, starts, bal, view = self._labelling(name, codes, n_groups)
        ends = np.searchsorted(keys, uniq * (self.n + 1) + q[bal], side="left")
        return np.bincount(view, weights=ends - starts, minlength=n_groups).astype(np.int64)

    # -- the margin and the cut --------------------------------------------------------------
    def margin(self, n_keep: int, count: int = 12) -> np.ndarray:
        """The next ``count`` examples in keep order that ``n_keep`` leaves out (what keeping a few more adds)."""
        if n_keep >= self.n:
            return np.empty(0, np.int64)
        q, q_more = self.quota(n_keep), self.quota(min(self.n, n_keep + count))
        if q is None or q_more is None:
            mask = self.rk.mask(n_keep)
            more = self.rk.mask(min(self.n, n_keep + count))
            idx = np.flatnonzero(more & ~mask)
        else:
            grow = np.flatnonzero(q_more > q)
            idx = np.concatenate(
                [self._by_group[self._group_start[g] + q[g] : self._group_start[g] + q_more[g]] for g in grow]
                or [np.empty(0, np.int64)]
            )
        return idx[np.argsort(self.rk.global_rank[idx], kind="stable")][:count]

    def cut(self, scores: np.ndarray, n_keep: int, strategy: str, balance: str) -> float | None:
        """The score where keep hard (lowest kept) / keep easy (highest kept) cuts; None without one cut."""
        if strategy not in ("hard", "easy") or balance != "none" or n_keep <= 0 or n_keep >= self.n:
            return None
        if not self.fast:
            kept = scores[self.rk.mask(n_keep)]
            return float(kept.min() if strategy == "hard" else kept.max())
        key = id(scores)
        got = self._prefix_extremes.get(key)
        if got is None or got[2] is not scores:
            s = np.asarray(scores, np.float64)[self.rk.order]
            got = (np.minimum.accumulate(s), np.maximum.accumulate(s), scores)
            self._prefix_extremes = {key: got}
        return float(got[0][n_keep - 1] if strategy == "hard" else got[1][n_keep - 1])


_INDEXES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_INDEXES_LOCK = threading.Lock()


def kept_index(ranking) -> KeptIndex:
    """The index of ``ranking``, made once and kept as long as the ranking lives (the app caches rankings)."""
    with _INDEXES_LOCK:
        got = _INDEXES.get(ranking)
        if got is None:
            got = _INDEXES[ranking] = KeptIndex(ranking)
        return got


def score_bins(scores: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Bin of each score for ``edges`` as ``np.histogram`` counts them (last bin closed; outside: -1)."""
    b = np.searchsorted(edges, scores, side="right") - 1
    b[scores == edges[-1]] = len(edges) - 2
    b[(scores < edges[0]) | (scores > edges[-1]) | ~np.isfinite(scores)] = -1
    return b
