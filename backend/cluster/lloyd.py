"""Exact fp32 spherical Lloyd on a CPU with any SIMD level: BLAS products in blocks, bounds that skip rows.

Vocabulary as in :mod:`.kmeans`: N rows (unit, float32), D dimensions, K centroids.

Why not faiss here: on CPUs that faiss's bundled OpenBLAS does not recognise
(it falls back to its generic "Prescott" kernels, as on the AVX2/AVX-512 VMs
this project runs on) ``IndexFlatIP.search`` reaches ~60 GFLOP/s where numpy's
BLAS, writing into a reused score buffer, reaches ~250; faiss's k-means is one
such search per iteration.  Fresh 64 MB score blocks also cost as much in page
faults as the product, so the buffers here are allocated once.

Why bounds: after the first few iterations most rows keep their centroid, yet
plain Lloyd recomputes all N x K similarities every iteration.  Each row keeps
a lower bound on the similarity to its own centroid and one upper bound on the
similarity to any other centroid (Hamerly, SDM 2010).  When centroid ``j``
moves by ``drift_j = |c'_j - c_j|``, ``x.c_j`` changes by at most ``drift_j``
(unit ``x``), so the bounds stay valid after subtracting / adding the drift.
A row whose own bound beats the other bound cannot change centroid and is
skipped; the others are gathered and re-scored against all centroids in one
dense product (the product is what BLAS does fast; re-scoring a row against a
few groups of centroids, as Yinyang k-means does, is a gather per group and
measured slower here than the full pass it avoids).

Why "wild" centroids: on real data a few centroids (small clusters trading
members) jump far every iteration, and the other-centroid bound must grow by
the largest drift of all.  Each iteration the centroids that moved the most
(up to K/5, as many as pay: :func:`_choose_wild`) are scored exactly for every
row (an N x W product), so the bound only grows by the largest drift of the
rest.  On 100k x 512 at K=1000 (bench_kmeans) the bounds then skip 80-93% of
the rows from the last sample stage's third iteration on.  The result is the same assignment as plain Lloyd (up to
fp32 rounding ties).

Why a runner-up: in high dimensions most rows sit nearly as close to a second
centroid as to their own (on 100k x 512 at K=1000, 5-9% of the rows have their
two best similarities within 0.03-0.05, the typical drift bound), but the
third-best is much further (0.6-1.5% within the same margin).  So each row also
keeps its runner-up centroid with its own upper bound (grown by that
centroid's drift alone), and the bound on every other centroid is taken from
the third-best similarity.  A row failing its bounds is first settled between
its own centroid and the runner-up (two gathered dot products); only when the
third-best bound is not beaten is it re-scored against all centroids.  Sample
stages (see :func:`.kmeans.sample_stages`) hand their rows' bounds on to the
next stage (``carry``), so only the new rows are scored in full.

The centroid sums are kept in float64 and updated with the rows that change
cluster only, so an iteration where few rows move costs little.
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

BLOCK = 16384  # rows per full product: the score block is BLOCK x K float32
_EPS = 1e-6  # added to every drift: covers fp32 rounding of the similarities
_BOUNDS_TRY = 0.95  # estimated share of the rows failing the bounds (before tightening) above which: a full pass
_BOUNDS_PAY = 0.7  # after tightening: re-scoring this share of the rows (gathered) still costs less than a full pass
_GATHER = 2048  # rows per gathered chunk (4 MB at D = 512: stays in L2)
_PAR_BLOCK = 8192  # rows per block when blocks run on several threads (balanced: 13 blocks for 100k rows)
_PAR_MIN = 2048  # rows per thread at least: smaller work runs on one thread (with BLAS's own threads)
_MAX_WORKERS = 8
_FRESH_BOUNDS = 0.1  # a full pass computes fresh bounds for a block where at most this share of rows moved
_WILD_SHARES = (0.0, 0.02, 0.05, 0.1, 0.2)  # wild centroids tried, as shares of K (see _choose_wild)
_WILD_FIXED = 0.04  # a wild pass also costs this share of a full pass whatever W (its own pass over N rows)


class BlockSearch:
    """Exhaustive fp32 nearest-centroid search in blocks of :data:`BLOCK` rows with one reused score buffer."""

    def __init__(self, centroids: np.ndarray):
        self.set_centroids(centroids)
        self._local = threading.local()  # score buffer and kept block per thread (blocks may run in parallel)

    def set_centroids(self, centroids: np.ndarray) -> None:
        self.c = np.ascontiguousarray(centroids, dtype=np.float32)
        self.cT = self.c.T  # an F-ordered view: BLAS reads it transposed, no copy

    @property
    def _last(self) -> np.ndarray | None:
        return getattr(self._local, "last", None)

    @_last.setter
    def _last(self, value: np.ndarray | None) -> None:
        self._local.last = value

    def _scores(self, xb: np.ndarray) -> np.ndarray:
        n, k = len(xb), len(self.c)
        buf = getattr(self._local, "buf", None)
        if buf is None or buf.shape[0] < n or buf.shape[1] != k:
            buf = self._local.buf = np.empty((max(n, min(BLOCK, 4 * n)), k), np.float32)
        out = buf[:n]
        np.matmul(xb, self.cT, out=out)
        return out

    def top1(self, xb: np.ndarray, *, keep_scores: bool = False):
        """(id int32, similarity float32) of the most similar centroid of each row (ties: smallest id).

        ``keep_scores``: the score block stays for :meth:`second` / :meth:`runners_up` (until the next call).
        """
        s = self._scores(xb)
        a = s.argmax(axis=1)
        self._last = s if keep_scores else None
        return a.astype(np.int32), s[np.arange(len(xb)), a]

    def second(self, best: np.ndarray) -> np.ndarray:
        """The second-best similarity of each row of the last :meth:`top1` block (-inf when K = 1)."""
        s, self._last = self._last, None
        assert s is not None, "second() needs top1(..., keep_scores=True) first"
        if s.shape[1] == 1:
            return np.full(len(s), -np.inf, np.float32)
        r = np.arange(len(s))
        s[r, best] = -np.inf
        return s.max(axis=1)

    def runners_up(self, best: np.ndarray):
        """(second-best id int32, its similarity, third-best similarity) of each row of the last
        :meth:`top1` block (similarities -inf where K is too small; the id is then ``best``)."""
        s, self._last = self._last, None
        assert s is not None, "runners_up() needs top1(..., keep_scores=True) first"
        n, k = s.shape
        if k == 1:
            inf = np.full(n, -np.inf, np.float32)
            return best.astype(np.int32), inf, inf.copy()
        r = np.arange(n)
        s[r, best] = -np.inf
        a2 = s.argmax(axis=1)
        s2 = s[r, a2]
        if k == 2:
            return a2.astype(np.int32), s2, np.full(n, -np.inf, np.float32)
        s[r, a2] = -np.inf
        return a2.astype(np.int32), s2, s.max(axis=1)

    def top2(self, xb: np.ndarray):
        """(best id int32, best similarity, second-best similarity) of each row (second = -inf when K = 1)."""
        a, b = self.top1(xb, keep_scores=True)
        return a, b, self.second(a)

    def top3(self, xb: np.ndarray):
        """(best id, best similarity, second-best id, its similarity, third-best similarity) of each row."""
        a, b = self.top1(xb, keep_scores=True)
        return (a, b, *self.runners_up(a))


class _Bounds:
    """Per-row state of the bounded Lloyd: own centroid ``assign`` with a lower bound ``own`` on x.c_own,
    runner-up centroid ``run`` with an upper bound ``up2`` on x.c_run, and ``up3``, an upper bound on x.c_j
    for every other centroid.  ``up3 = +inf`` means "unknown": the row is re-scored in full."""

    __slots__ = ("assign", "own", "run", "up2", "up3")

    def __init__(self, n: int = 0, parts: tuple | None = None):
        if parts is None:
            parts = (
                np.zeros(n, np.int32),
                np.full(n, -np.inf, np.float32),
                np.zeros(n, np.int32),
                np.full(n, np.inf, np.float32),
                np.full(n, np.inf, np.float32),
            )
        self.assign, self.own, self.run, self.up2, self.up3 = parts

    def __len__(self) -> int:
        return len(self.assign)

    def rows(self, lo: int, hi: int) -> _Bounds:
        """A view of rows ``lo:hi`` (writes go through)."""
        return _Bounds(parts=tuple(a[lo:hi] for a in (self.assign, self.own, self.run, self.up2, self.up3)))

    def copy_from(self, other: _Bounds) -> None:
        for mine, theirs in zip(
            (self.assign, self.own, self.run, self.up2, self.up3),
            (other.assign, other.own, other.run, other.up2, other.up3),
        ):
            mine[...] = theirs


def _cluster_sums(x: np.ndarray, assign: np.ndarray, k: int) -> np.ndarray:
    """(K x D float64) sum of the rows of each cluster: one sparse product, no copy of ``x``."""
    import scipy.sparse as sp

    n = len(x)
    onehot = sp.csr_matrix((np.ones(n, np.float32), (assign, np.arange(n))), shape=(k, n))
    return np.asarray(onehot @ x, dtype=np.float64)


def _move_rows(sums: np.ndarray, x: np.ndarray, rows: np.ndarray, new: np.ndarray, old: np.ndarray) -> None:
    """sums[new[i]] += x[rows[i]] and sums[old[i]] -= x[rows[i]], in float64, BLOCK rows per sparse product."""
    import scipy.sparse as sp

    for s in range(0, len(rows), BLOCK):
        r, nw, od = rows[s : s + BLOCK], new[s : s + BLOCK], old[s : s + BLOCK]
        m = len(r)
        cols = np.arange(m)
        mat = sp.csr_matrix((np.r_[np.ones(m), -np.ones(m)], (np.r_[nw, od], np.r_[cols, cols])), shape=(len(sums), m))
        sums += mat @ x[r].astype(np.float64)


def _normalise(sums: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(sums, axis=1)
    return (sums / np.maximum(norms, 1e-300)[:, None]).astype(np.float32)


def spherical_lloyd(
    x: np.ndarray,
    init: np.ndarray,
    *,
    n_iter: int,
    tol: float,
    rng: np.random.Generator,
    early_stop: bool = True,
    warm: bool = False,
    stats: dict | None = None,
    labels_out: dict | None = None,
    carry: dict | None = None,
):
    """Lloyd's algorithm for unit rows ``x`` from ``init`` (K x D unit rows): (centroids, iterations run, objective).

    The objective is the mean similarity of each row to its own (normalised)
    centroid, in [-1, 1], higher = tighter; it never decreases from one
    iteration to the next.  Stops after ``n_iter`` assignment steps, at a fixed
    point (no row changes centroid) or, unless ``early_stop`` is false, when an
    iteration lowers the inertia ``sum |x - c|^2 = 2 N (1 - objective)`` by less
    than ``tol`` times itself.  An empty cluster is re-seeded with a random
    member of a cluster drawn in proportion to its size minus one.
    ``warm``: ``init`` is already near a solution (a later sample stage), so the
    first pass computes bounds too.  ``stats`` (a dict) receives, per
    iteration, the rows re-scored, the wild centroids and the share of the full
    N x K product computed.  ``labels_out`` (a dict) receives ``assign`` and
    ``sim``: every row's nearest returned centroid and its similarity, exact,
    from one more assignment step that reuses the bounds (scikit-learn's final
    E-step; a fraction of a full pass once the centroids have settled).
    ``carry`` (a dict, in and out): on return it holds the assignment and the
    bounds of every row (valid for the centroids of the last assignment step);
    given to the next sample stage, whose ``x`` starts with these rows, it
    replaces the first full pass over them by one bounded step (only the new
    rows are scored in full).
    """
    n, _ = x.shape
    k = len(init)
    cent = np.ascontiguousarray(init, np.float32)
    search = BlockSearch(cent)
    b = _Bounds(n)
    m0 = _carried_rows(carry, n, k)
    first_work = 1.0
    if m0:  # the previous sample stage's rows lead x: their bounds move to these centroids, only new rows in full
        assert carry is not None
        head = b.rows(0, m0)
        head.copy_from(carry["bounds"])
        drift = np.linalg.norm(cent - carry["cent"], axis=1).astype(np.float32) + np.float32(_EPS)
        step = _bounded_step(x[:m0], cent, drift, search, head)
        if step is None:
            _full_pass(x[:m0], search, head, first=True, fresh=True)
        else:
            first_work = (step[1] + (n - m0)) / n + step[2] / k * m0 / n
        if m0 < n:
            _full_pass(x[m0:], search, b.rows(m0, n), first=True, fresh=True)
    else:
        _full_pass(x, search, b, first=True, fresh=warm)
    n_fresh, backoff, wait, misses = (n if warm else 0), 1, 0, 0
    sums = _cluster_sums(x, b.assign, k)
    _reseed_empty(sums, b, x, rng)
    rescored, wild_counts, work, settled = [n], [0], [round(first_work, 4)], [0]
    objective = float(np.linalg.norm(sums, axis=1).sum()) / n
    it = 1
    for it in range(2, n_iter + 1):  # noqa: B007 - the count is returned
        new = _normalise(sums)
        drift = np.linalg.norm(new - cent, axis=1).astype(np.float32) + np.float32(_EPS)
        cent = new
        search.set_centroids(cent)
        step = _bounded_step(x, cent, drift, search, b)
        if step is None:
            # most rows may move (early iterations): one pass over all of them beats gathering most of them
            if n_fresh >= 0.9 * n:  # even fresh bounds did not hold for one step
                misses += 1
                if misses >= 3:  # noisy data, they never will: skip computing them (the runner-up pass)
                    backoff *= 2  # for 2, 4, 8, ... iterations after each further failure
                    wait = backoff
            wait -= 1
            changed, n_fresh = _full_pass(x, search, b, fresh=wait < 0)
            rescored.append(n)
            wild_counts.append(0)
            work.append(1.0)
            settled.append(0)
        else:
            changed, n_cand, n_wild, n_settled = step
            settled.append(n_settled)
            rescored.append(n_cand)
            wild_counts.append(n_wild)
            work.append(round((n_cand / n) + n_wild / k, 4))
            n_fresh = misses = 0
        if len(changed[0]):
            _move_rows(sums, x, *changed)
        _reseed_empty(sums, b, x, rng)
        previous, objective = objective, float(np.linalg.norm(sums, axis=1).sum()) / n
        if not len(changed[0]):
            break  # fixed point: the next centroids are the current ones
        if early_stop and objective - previous <= tol * max(1.0 - objective, 1e-12):
            break
    final = _normalise(sums)
    if carry is not None:  # bounds valid for ``cent``: what the next sample stage starts from
        carry.clear()
        carry.update(bounds=b, cent=cent)
    if labels_out is not None:
        labels_out["assign"], labels_out["sim"] = _final_assignment(x, final, cent, search, b)
    _drop_scratch()
    if stats is not None:
        stats["rescored_rows"] = rescored
        stats["wild_centroids"] = wild_counts
        stats["settled_rows"] = settled  # rows settled between their own centroid and the runner-up
        stats["work"] = work  # share of the full N x K product computed, per iteration
    return final, it, objective


def _carried_rows(carry: dict | None, n: int, k: int) -> int:
    """How many leading rows of x have bounds in ``carry`` (0: none usable)."""
    if not carry or "bounds" not in carry:
        return 0
    m0 = len(carry["bounds"])
    return m0 if 0 < m0 <= n and len(carry["cent"]) == k else 0


_NO_MOVES = (np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.int64))


def _bounded_step(x, cent, drift, search, b: _Bounds):
    """One assignment step from the bounds after the centroids moved by ``drift`` (``search`` already holds
    ``cent``): ((rows moved, new ids, old ids), rows re-scored in full, wild centroids, rows settled against
    the runner-up), or None when a full pass would cost less (the bounds are then stale and no row has
    moved: the full pass overwrites them).

    A row that fails its bounds is tightened (exact own similarity), then settled between its own centroid
    and the runner-up (exact runner-up similarity) when the best of the two beats the bound on all the
    others; only the rest is re-scored against every centroid.  The decision is taken twice: before any
    work on the estimate of :func:`_choose_wild`, and on the rows left to re-score in full.
    """
    n = len(x)
    b.own -= drift[b.assign]
    b.up2 += drift[b.run]
    wild, tame, cost = _choose_wild(drift, b)
    if cost > _BOUNDS_TRY:
        return None
    b.up3 += tame
    if len(wild):
        _fold_wild(x, cent, wild, b)
    cand = np.flatnonzero(b.own <= np.maximum(b.up2, b.up3))
    if len(cand):  # tighten: the exact similarity to the own centroid
        b.own[cand] = _own_similarity(x, cent, cand, b.assign)
        cand = cand[b.own[cand] <= np.maximum(b.up2[cand], b.up3[cand])]
    settle = cand[b.up3[cand] < np.inf]  # bounds known: try the runner-up before a full re-score
    if len(settle):
        s_run = _own_similarity(x, cent, settle, b.run)
        s_own = b.own[settle]
        swap = (s_run > s_own) | ((s_run == s_own) & (b.run[settle] < b.assign[settle]))  # ties: smallest id
        done = np.maximum(s_own, s_run) > b.up3[settle]
        full = np.ones(len(cand), bool)
        full[np.searchsorted(cand, settle[done])] = False
        rest = cand[full]
    else:
        rest = cand
    if len(rest) > _BOUNDS_PAY * n:
        return None
    moved = _NO_MOVES
    if len(settle):
        ok = settle[done]
        b.up2[ok] = np.where(swap[done], s_own[done], s_run[done])  # the loser is the new runner-up, exact
        b.own[ok] = np.where(swap[done], s_run[done], s_own[done])
        sw = settle[done & swap]
        if len(sw):
            old, new = b.assign[sw].copy(), b.run[sw].copy()
            b.assign[sw], b.run[sw] = new, old
            moved = (sw.astype(np.int64), new.astype(np.int64), old.astype(np.int64))
    changed = _rescore(x, rest, search, b)
    if len(moved[0]):
        changed = tuple(np.concatenate([m, c]) for m, c in zip(moved, changed))
    return changed, len(rest), len(wild), len(cand) - len(rest)


def _own_similarity(x, cent, rows, ids) -> np.ndarray:
    """x[r] . cent[ids[r]] for the rows ``rows``: gathered in cache-sized chunks into reused buffers (a
    gather of all of them at once writes and page-faults two fresh N x D temporaries), on every core."""
    out = np.empty(len(rows), np.float32)

    def part(lo: int, hi: int) -> None:
        xb = _scratch("gx", (_GATHER, x.shape[1]), x.dtype)
        cb = _scratch("gc", (_GATHER, cent.shape[1]), cent.dtype)
        for s in range(lo, hi, _GATHER):
            r = rows[s : min(s + _GATHER, hi)]
            m = len(r)
            np.take(x, r, axis=0, out=xb[:m], mode="clip")
            np.take(cent, ids[r], axis=0, out=cb[:m], mode="clip")
            out[s : s + m] = np.einsum("nd,nd->n", xb[:m], cb[:m])

    _map_blocks(part, len(rows), split=True)
    return out


def _final_assignment(x, final, cent, search, b: _Bounds):
    """(id int32, exact similarity float32) of each row to its nearest centroid of ``final``, from the
    bounds the last iteration left (valid for ``cent``), without changing any centroid."""
    drift = np.linalg.norm(final - cent, axis=1).astype(np.float32) + np.float32(_EPS)
    search.set_centroids(final)
    if _bounded_step(x, final, drift, search, b) is None:
        _full_pass(x, search, b, fresh=False)
        return b.assign, b.own
    # the rows that kept their centroid: their exact similarity (a lower bound so far)
    b.own[:] = _own_similarity(x, final, np.arange(len(x)), b.assign)
    return b.assign, b.own


_SETTLE_COST = 0.1  # settling a row between its own centroid and the runner-up, as a share of re-scoring it


def _choose_wild(drift: np.ndarray, b: _Bounds):
    """(wild centroid ids, the drift the other-centroid bound grows by, estimated cost as a share of a full
    pass).

    Scoring the W centroids that moved the most costs W/K of a full pass and
    lets the other-centroid bound grow by the (W+1)-th largest drift only, plus
    :data:`_WILD_FIXED` (measured: W = 20 costs 0.07 of a full pass, W = 200
    0.21); the rows failing that bound then cost their share of a full pass,
    the rows only failing the runner-up bound :data:`_SETTLE_COST` of it.  The
    W among :data:`_WILD_SHARES` with the smallest sum is kept (failures
    estimated before tightening: an upper estimate).
    """
    k, n = len(drift), max(len(b), 1)
    order = np.argsort(drift)[::-1]
    best = (np.empty(0, np.int64), np.float32(drift[order[0]]), np.inf)
    gap3 = b.own - b.up3
    gap2 = b.own - b.up2
    for share in _WILD_SHARES:
        w = int(share * k)
        if w >= k or (share and w == 0):
            continue
        tame = np.float32(drift[order[w]])
        fail3 = gap3 <= tame
        settle = np.count_nonzero((gap2 <= 0) & ~fail3)
        cost = (w / k + _WILD_FIXED if w else 0.0) + (np.count_nonzero(fail3) + _SETTLE_COST * settle) / n
        if cost < best[2]:
            best = (order[:w], tame, cost)
    return best


def _fold_wild(x, cent, wild, b: _Bounds) -> None:
    """Score the centroids ``wild`` exactly for every row: the exact own similarity where the own centroid
    is one of them, the exact runner-up similarity where the runner-up is, every other one folded into the
    other-centroid bound (which was moved without them)."""
    pos = np.full(len(cent), -1, np.int64)
    pos[wild] = np.arange(len(wild))
    cw = np.ascontiguousarray(cent[wild])

    def block(lo: int, hi: int) -> None:
        sw = _scratch("wild", (_PAR_BLOCK, len(wild)), np.float32)[: hi - lo]
        np.matmul(x[lo:hi], cw.T, out=sw)
        p = pos[b.assign[lo:hi]]
        r = np.flatnonzero(p >= 0)
        b.own[lo + r] = sw[r, p[r]]
        sw[r, p[r]] = -np.inf
        q = pos[b.run[lo:hi]]
        r = np.flatnonzero(q >= 0)
        b.up2[lo + r] = sw[r, q[r]]  # -inf where the runner-up is the own centroid (only in open rows)
        sw[r, q[r]] = -np.inf
        seg = b.up3[lo:hi]
        np.maximum(seg, sw.max(axis=1), out=seg)

    _map_blocks(block, len(x))


def streamed_lloyd(
    chunks,
    n: int,
    d: int,
    init: np.ndarray,
    *,
    n_iter: int,
    tol: float,
    rng: np.random.Generator,
    read_row,
    early_stop: bool = True,
):
    """Plain exact spherical Lloyd over rows that are never all in memory: (centroids, iterations, objective).

    ``chunks()`` yields ``(start, unit float32 rows)`` covering the ``n`` rows in
    order (a fresh pass each call, e.g. byte-bounded chunks of a memory-mapped
    file); ``read_row(i)`` returns unit row ``i`` (to re-seed an empty cluster).
    Same stopping rules and empty-cluster rule as :func:`spherical_lloyd`; no
    bounds (they would need the rows again to pay off), so every iteration is
    one full pass: meant for wide rows (D in the tens of thousands), where the
    pass is bound by reading the rows and K is small.
    """
    k = len(init)
    cent = np.ascontiguousarray(init, np.float32)
    search = BlockSearch(cent)
    assign = np.full(n, -1, np.int32)
    objective, it = -1.0, 0
    for it in range(1, n_iter + 1):
        sums = np.zeros((k, d), np.float64)
        moved = 0
        for start, xc in chunks():
            for b in range(0, len(xc), BLOCK):
                xb = xc[b : b + BLOCK]
                a, _ = search.top1(xb)
                seg = assign[start + b : start + b + len(a)]
                moved += int(np.count_nonzero(a != seg))
                seg[:] = a
                sums += _cluster_sums(xb, a, k)
        counts = np.bincount(assign, minlength=k)
        for e in np.flatnonzero(counts == 0):
            weight = np.maximum(counts - 1, 0).astype(np.float64)
            if weight.sum() <= 0:
                break  # fewer distinct rows than clusters
            donor = int(rng.choice(k, p=weight / weight.sum()))
            row = int(rng.choice(np.flatnonzero(assign == donor)))
            v = read_row(row).astype(np.float64)
            sums[donor] -= v
            sums[e] = v
            counts[donor] -= 1
            counts[e] = 1
            assign[row] = e
            moved += 1
        previous, objective = objective, float(np.linalg.norm(sums, axis=1).sum()) / n
        cent = _normalise(sums)
        search.set_centroids(cent)
        if moved == 0:
            break  # fixed point
        if early_stop and it > 1 and objective - previous <= tol * max(1.0 - objective, 1e-12):
            break
    return cent, it, objective


def _full_pass(x, search, b: _Bounds, *, first: bool = False, fresh: bool = True):
    """Score every row against every centroid: ((rows moved, new ids, old ids), rows given fresh bounds).

    Fresh bounds need the runner-up and the third-best similarity (two more passes over the score block);
    a block where many rows moved will fail its bounds next time anyway, so there (and when ``fresh`` is
    false) the bounds are left open (+inf).  On the first pass ``fresh`` means every block gets them.
    """

    def block(lo: int, hi: int):
        part = b.rows(lo, hi)
        a, best = search.top1(x[lo:hi], keep_scores=fresh)
        n_moved, mv = hi - lo, None
        if not first:
            ch = np.flatnonzero(a != part.assign)
            n_moved = len(ch)
            mv = (lo + ch, a[ch].astype(np.int64), part.assign[ch].astype(np.int64))
        part.assign[:], part.own[:] = a, best
        if fresh and (first or n_moved <= _FRESH_BOUNDS * (hi - lo)):
            part.run[:], part.up2[:], part.up3[:] = search.runners_up(a)
            return mv, hi - lo
        search._last = None
        part.up2[:] = np.inf
        part.up3[:] = np.inf
        return mv, 0

    done = _map_blocks(block, len(x))
    n_fresh = sum(f for _, f in done)
    if first:
        return _NO_MOVES, n_fresh
    return tuple(np.concatenate([mv[i] for mv, _ in done]) for i in range(3)), n_fresh


_controller = None


def single_blas_thread():
    """Context: BLAS on one thread (threadpoolctl).  For loops of small or memory-bound products, where
    waking a second thread per call costs more than it brings (much more on a loaded machine)."""
    global _controller
    try:
        if _controller is None:
            from threadpoolctl import ThreadpoolController

            _controller = ThreadpoolController()
        return _controller.limit(limits=1, user_api="blas")
    except Exception:  # noqa: BLE001 - an optimisation, never an error
        return contextlib.nullcontext()


_pool: ThreadPoolExecutor | None = None
_pool_pid = 0
_tls = threading.local()


def _workers() -> int:
    """Threads for the block loops: the CPUs this process may run on (at most :data:`_MAX_WORKERS`)."""
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        n = os.cpu_count() or 1
    return max(1, min(n, _MAX_WORKERS))


def _scratch(name: str, shape: tuple, dtype) -> np.ndarray:
    """A reused buffer per thread and name, at least ``shape`` (fresh big temporaries cost page faults);
    :func:`_drop_scratch` frees them all."""
    buf = getattr(_tls, name, None)
    if buf is None or buf.shape[0] < shape[0] or buf.shape[1:] != tuple(shape[1:]) or buf.dtype != dtype:
        buf = np.empty(shape, dtype)
        setattr(_tls, name, buf)
    return buf


def _drop_scratch() -> None:
    """Free every thread's :func:`_scratch` buffers (~60 MB per thread at K = 1000): a new thread-local
    object, the old one goes with its per-thread dicts."""
    global _tls
    _tls = threading.local()


def _map_blocks(fn, n: int, *, split: bool = False, step: int = _PAR_BLOCK) -> list:
    """``fn(lo, hi)`` for consecutive blocks of ``range(n)`` (results in order), the blocks spread over
    :func:`_workers` threads, each with one-thread BLAS.

    Why: the product is only part of a pass; the argmax, the runner-ups, the gathers and the bound updates
    are numpy loops on one core (they release the GIL), so a 2-thread BLAS left one core idle for a third
    of each pass.  Blocks of ``step`` rows (fewer rows per block when ``split``, so that small work still
    spreads over every thread); work under :data:`_PAR_MIN` rows per thread runs here.
    """
    global _pool, _pool_pid
    w = _workers()
    if split:
        step = min(step, max(_PAR_MIN, -(-n // w)))
    starts = range(0, n, step)
    if w == 1 or len(starts) < 2 or threading.current_thread().name.startswith("lloyd"):
        return [fn(s, min(s + step, n)) for s in starts]
    if _pool is None or _pool_pid != os.getpid():  # a forked child does not inherit the threads
        _pool, _pool_pid = ThreadPoolExecutor(w, thread_name_prefix="lloyd"), os.getpid()
    with single_blas_thread():
        return list(_pool.map(lambda s: fn(s, min(s + step, n)), starts))


def _rescore(x, cand, search, b: _Bounds):
    """Re-score the rows ``cand`` whose bounds failed against every centroid (gathered into reused buffers,
    one dense product per block); update their bounds in place.  Returns (rows that changed centroid, new
    ids, old ids)."""
    if not len(cand):
        return _NO_MOVES
    old = b.assign[cand].copy()

    def block(lo: int, hi: int) -> None:
        r = cand[lo:hi]
        xr = np.take(x, r, axis=0, out=_scratch("rescore", (_PAR_BLOCK, x.shape[1]), x.dtype)[: hi - lo], mode="clip")
        b.assign[r], b.own[r], b.run[r], b.up2[r], b.up3[r] = search.top3(xr)

    _map_blocks(block, len(cand), split=True)
    new = b.assign[cand]
    ch = np.flatnonzero(new != old)
    return cand[ch], new[ch].astype(np.int64), old[ch].astype(np.int64)


def _reseed_empty(sums, b: _Bounds, x, rng) -> None:
    """Give every empty cluster one row taken from a cluster with more than one (drawn by size - 1)."""
    k = len(sums)
    counts = np.bincount(b.assign, minlength=k)
    for e in np.flatnonzero(counts == 0):
        weight = np.maximum(counts - 1, 0).astype(np.float64)
        if weight.sum() <= 0:
            return  # fewer rows than clusters (the caller refuses that) or all duplicates
        donor = int(rng.choice(k, p=weight / weight.sum()))
        row = int(rng.choice(np.flatnonzero(b.assign == donor)))
        sums[donor] -= x[row]
        sums[e] = x[row]
        counts[donor] -= 1
        counts[e] = 1
        b.assign[row] = e
        b.own[row] = -math.inf  # bounds unknown: re-score this row in full next iteration
        b.up2[row] = math.inf
        b.up3[row] = math.inf
