"""Exact fp32 spherical Lloyd on a CPU with any SIMD level: BLAS products in blocks, Yinyang bounds.

Vocabulary as in :mod:`.kmeans`: N rows (unit, float32), D dimensions, K centroids.

Why not faiss here: on CPUs that faiss's bundled OpenBLAS does not recognise
(it falls back to its generic "Prescott" kernels, as on the AVX2/AVX-512 VMs
this project runs on) ``IndexFlatIP.search`` reaches ~60 GFLOP/s where numpy's
BLAS, writing into a reused score buffer, reaches ~250; faiss's k-means is one
such search per iteration.  Fresh 64 MB score blocks also cost as much in page
faults as the product, so the buffers here are allocated once.

Why bounds: after the first few iterations most rows keep their centroid, yet
plain Lloyd recomputes all N x K similarities every iteration.  Yinyang
k-means (Ding et al., ICML 2015) keeps, per row, a lower bound on the
similarity to its own centroid and, per group of ~10 nearby centroids, an upper
bound on the similarity to any other centroid of the group.  When centroid
``j`` moves by ``drift_j = |c'_j - c_j|``, ``x.c_j`` changes by at most
``drift_j`` (unit ``x``), so the bounds stay valid after subtracting / adding the
drift.  A row whose own bound beats every group bound cannot change centroid
and is skipped; otherwise only the groups whose bound it does not beat are
re-scored.  The result is the same assignment as plain Lloyd (up to fp32
rounding ties), at a fraction of the products once the centroids settle.

The centroid sums are kept in float64 and updated with the rows that change
cluster only, so an iteration where few rows move costs little.
"""

from __future__ import annotations

import contextlib
import math

import numpy as np

BLOCK = 16384  # rows per full product: the score block is BLOCK x K float32
_EPS = 1e-6  # added to every drift: covers fp32 rounding of the similarities
_GROUP_SIZE = 10  # centroids per Yinyang group (the paper's K / 10)
_MAX_BOUNDS = 1 << 25  # N x G upper bounds at most (128 MB of float32)
_FULL_SHARE = 0.5  # a row failing more than this share of its groups is re-scored against all centroids
_BOUNDS_PAY = 0.5  # bounds are used when at most this share of the rows fails the first (cheap) test
_FRESH_BOUNDS = 0.1  # a full pass computes fresh bounds for a block where at most this share of rows moved


class BlockSearch:
    """Exhaustive fp32 nearest-centroid search in blocks of :data:`BLOCK` rows with one reused score buffer."""

    def __init__(self, centroids: np.ndarray):
        self.set_centroids(centroids)
        self._buf = np.empty((0, len(centroids)), np.float32)
        self._last: np.ndarray | None = None

    def set_centroids(self, centroids: np.ndarray) -> None:
        self.c = np.ascontiguousarray(centroids, dtype=np.float32)
        self.cT = self.c.T  # an F-ordered view: BLAS reads it transposed, no copy

    def _scores(self, xb: np.ndarray) -> np.ndarray:
        n, k = len(xb), len(self.c)
        if self._buf.shape[0] < n or self._buf.shape[1] != k:
            self._buf = np.empty((max(n, min(BLOCK, 4 * n)), k), np.float32)
        out = self._buf[:n]
        np.matmul(xb, self.cT, out=out)
        return out

    def top1(self, xb: np.ndarray, *, keep_scores: bool = False):
        """(id int32, similarity float32) of the most similar centroid of each row (ties: smallest id).

        ``keep_scores``: the score block stays for :meth:`second` (until the next call).
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

    def top2(self, xb: np.ndarray):
        """(best id int32, best similarity, second-best similarity) of each row (second = -inf when K = 1)."""
        a, b = self.top1(xb, keep_scores=True)
        return a, b, self.second(a)


def _group_centroids(c: np.ndarray, n_groups: int, rng: np.random.Generator) -> np.ndarray:
    """Group id of each centroid: a few spherical Lloyd steps on the centroids themselves (nearby in one group)."""
    k = len(c)
    if n_groups <= 1:
        return np.zeros(k, np.int64)
    g = c[np.sort(rng.choice(k, size=n_groups, replace=False))].copy()
    lab = np.zeros(k, np.int64)
    for _ in range(5):
        lab = (c @ g.T).argmax(axis=1)
        sums = np.zeros_like(g)
        np.add.at(sums, lab, c)
        norms = np.linalg.norm(sums, axis=1)
        keep = norms > 0
        g[keep] = sums[keep] / norms[keep, None]
    _, lab = np.unique(lab, return_inverse=True)  # drop empty groups: ids 0..G'-1
    return lab.astype(np.int64)


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
    stats: dict | None = None,
):
    """Lloyd's algorithm for unit rows ``x`` from ``init`` (K x D unit rows): (centroids, iterations run, objective).

    The objective is the mean similarity of each row to its own (normalised)
    centroid, in [-1, 1], higher = tighter; it never decreases from one
    iteration to the next.  Stops after ``n_iter`` assignment steps, at a fixed
    point (no row changes centroid) or, unless ``early_stop`` is false, when an
    iteration lowers the inertia ``sum |x - c|^2 = 2 N (1 - objective)`` by less
    than ``tol`` times itself.  An empty cluster is re-seeded with a random
    member of a cluster drawn in proportion to its size minus one.
    ``stats`` (a dict) receives the rows re-scored per iteration.
    """
    n, _ = x.shape
    k = len(init)
    n_groups = max(1, min(k // _GROUP_SIZE, _MAX_BOUNDS // max(n, 1)))
    group = _group_centroids(np.ascontiguousarray(init, np.float32), n_groups, rng)
    perm = np.argsort(group, kind="stable")  # centroids of a group are contiguous from here on
    inv = np.empty(k, np.int64)
    inv[perm] = np.arange(k)
    group = group[perm]
    n_groups = int(group[-1]) + 1
    starts = np.searchsorted(group, np.arange(n_groups + 1))
    cent = np.ascontiguousarray(init[perm], np.float32)

    search = BlockSearch(cent)
    assign = np.empty(n, np.int32)
    own = np.empty(n, np.float32)  # lower bound on x . c_own
    ub = np.empty((n, n_groups), np.float32)  # upper bound on x . c_j, j in the group, j != own
    _full_pass(x, search, assign, own, ub, first=True)
    n_fresh, backoff, wait = 0, 1, 0
    sums = _cluster_sums(x, assign, k)
    _reseed_empty(sums, assign, x, own, ub, rng)
    rescored = [n]
    objective = float(np.linalg.norm(sums, axis=1).sum()) / n
    it = 1
    for it in range(2, n_iter + 1):  # noqa: B007 - the count is returned
        new = _normalise(sums)
        drift = np.linalg.norm(new - cent, axis=1).astype(np.float32) + np.float32(_EPS)
        cent = new
        search.set_centroids(cent)
        own -= drift[assign]
        ub += np.maximum.reduceat(drift, starts[:-1])[None, :]
        cand = np.flatnonzero(own <= ub.max(axis=1))
        if len(cand) > _BOUNDS_PAY * n:
            # most rows may move (early iterations): one pass over all of them beats gathering most of them
            if n_fresh >= 0.9 * n:  # even fresh bounds did not hold for one step (noisy data):
                backoff *= 2  # skip computing them for 2, 4, 8, ... iterations after each such failure
                wait = backoff
            wait -= 1
            changed, n_fresh = _full_pass(x, search, assign, own, ub, fresh=wait < 0)
            rescored.append(n)
        else:
            with single_blas_thread():  # many small products: thread hand-offs would cost more than they save
                if len(cand):  # tighten: the exact similarity to the own centroid
                    own[cand] = np.einsum("nd,nd->n", x[cand], cent[assign[cand]])
                    cand = cand[own[cand] <= ub[cand].max(axis=1)]
                changed = _rescore(x, cand, cent, search, assign, own, ub, group, starts)
            rescored.append(len(cand))
            n_fresh = 0
        if len(changed[0]):
            _move_rows(sums, x, *changed)
        _reseed_empty(sums, assign, x, own, ub, rng)
        previous, objective = objective, float(np.linalg.norm(sums, axis=1).sum()) / n
        if not len(changed[0]):
            break  # fixed point: the next centroids are the current ones
        if early_stop and objective - previous <= tol * max(1.0 - objective, 1e-12):
            break
    if stats is not None:
        stats["rescored_rows"] = rescored
        stats["groups"] = n_groups
    return _normalise(sums)[inv], it, objective


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


def _full_pass(x, search, assign, own, ub, *, first: bool = False, fresh: bool = True):
    """Score every row against every centroid: ((rows moved, new ids, old ids), rows given fresh bounds).

    Fresh bounds need the second-best similarity (one more pass over the score
    block); a block where many rows moved will fail its bounds next time anyway,
    so there (on the first pass, and when ``fresh`` is false) the bounds are
    left open (+inf) instead.
    """
    moved, new_ids, old_ids = [], [], []
    n_fresh = 0
    for s in range(0, len(x), BLOCK):
        xb = x[s : s + BLOCK]
        if first:
            a, b = search.top1(xb)
            assign[s : s + BLOCK], own[s : s + BLOCK] = a, b
            ub[s : s + BLOCK] = np.inf
            continue
        a, b = search.top1(xb, keep_scores=fresh)
        ch = np.flatnonzero(a != assign[s : s + BLOCK])
        moved.append(s + ch)
        new_ids.append(a[ch])
        old_ids.append(assign[s + ch])
        assign[s : s + BLOCK], own[s : s + BLOCK] = a, b
        if fresh and len(ch) <= _FRESH_BOUNDS * len(xb):
            ub[s : s + BLOCK] = search.second(a)[:, None]
            n_fresh += len(xb)
        else:
            ub[s : s + BLOCK] = np.inf
    empty = np.empty(0, np.int64)
    if first or not moved:
        return (empty, empty, empty), n_fresh
    return (
        np.concatenate(moved),
        np.concatenate(new_ids).astype(np.int64),
        np.concatenate(old_ids).astype(np.int64),
    ), n_fresh


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


def _rescore(x, cand, cent, search, assign, own, ub, group, starts):
    """Re-score the rows ``cand`` whose bounds failed; update assign/own/ub in place.

    Returns (rows that changed centroid, their new ids, their old ids).
    """
    n_groups = len(starts) - 1
    if not len(cand):
        empty = np.empty(0, np.int64)
        return empty, empty, empty
    old = assign[cand].copy()
    fail = ub[cand] >= own[cand, None]  # groups that may hold a better centroid
    full = fail.sum(axis=1) > _FULL_SHARE * n_groups if n_groups > 1 else np.ones(len(cand), bool)
    rows_full = cand[full]
    for s in range(0, len(rows_full), BLOCK):
        r = rows_full[s : s + BLOCK]
        a, b, s2 = search.top2(x[r])
        assign[r], own[r] = a, b
        ub[r] = s2[:, None]
    part = np.flatnonzero(~full)
    if len(part):
        rows = cand[part]
        fail = fail[part]
        best = own[rows].copy()  # exact (tightened) similarity to the current centroid
        best_id = assign[rows].astype(np.int64)
        pt_list, g_list, arg_list, max_list, sec_list = [], [], [], [], []
        for g in np.flatnonzero(fail.any(axis=0)):
            idx = np.flatnonzero(fail[:, g])
            lo, hi = int(starts[g]), int(starts[g + 1])
            sims = x[rows[idx]] @ cent[lo:hi].T
            arg = sims.argmax(axis=1)
            r = np.arange(len(idx))
            top = sims[r, arg]
            if hi - lo > 1:
                sims[r, arg] = -np.inf
                sec = sims.max(axis=1)
            else:
                sec = np.full(len(idx), -np.inf, np.float32)
            better = top > best[idx]
            # the own centroid's GEMM similarity replaces the einsum one (same value up to rounding)
            same = (lo + arg) == best_id[idx]
            best[idx[same]] = top[same]
            best[idx[better]] = top[better]
            best_id[idx[better]] = lo + arg[better]
            pt_list.append(idx)
            g_list.append(np.full(len(idx), g))
            arg_list.append(lo + arg)
            max_list.append(top)
            sec_list.append(sec)
        pt = np.concatenate(pt_list)
        gg = np.concatenate(g_list)
        # a re-scored group's bound: its best similarity, or its second best when that best is the row's centroid
        holds = np.concatenate(arg_list) == best_id[pt]
        ub[rows[pt], gg] = np.where(holds, np.concatenate(sec_list), np.concatenate(max_list))
        moved = best_id != assign[rows]
        # the old centroid is now an "other" one: its group's bound must cover it
        mv = rows[moved]
        g_old = group[assign[mv]]
        ub[mv, g_old] = np.maximum(ub[mv, g_old], own[mv])
        assign[rows] = best_id
        own[rows] = best
    new = assign[cand]
    ch = np.flatnonzero(new != old)
    return cand[ch], new[ch].astype(np.int64), old[ch].astype(np.int64)


def _reseed_empty(sums, assign, x, own, ub, rng) -> None:
    """Give every empty cluster one row taken from a cluster with more than one (drawn by size - 1)."""
    k = len(sums)
    counts = np.bincount(assign, minlength=k)
    for e in np.flatnonzero(counts == 0):
        weight = np.maximum(counts - 1, 0).astype(np.float64)
        if weight.sum() <= 0:
            return  # fewer rows than clusters (the caller refuses that) or all duplicates
        donor = int(rng.choice(k, p=weight / weight.sum()))
        row = int(rng.choice(np.flatnonzero(assign == donor)))
        sums[donor] -= x[row]
        sums[e] = x[row]
        counts[donor] -= 1
        counts[e] = 1
        assign[row] = e
        own[row] = -math.inf  # bounds unknown: re-score this row in full next iteration
        ub[row] = math.inf
