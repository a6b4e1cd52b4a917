"""Spherical k-means on L2-normalised embeddings (CPU: torch bf16 or numpy fp32 BLAS; CUDA: torch).

Vocabulary: N examples, D dimensions, K clusters.  On unit vectors cosine and
Euclidean rankings agree, so "distance to the nearest centroid" is reported as
cosine similarity ``sim`` (in [-1, 1]) and the SSP difficulty is ``1 - sim``.

Training uses a uniform sample of at most ``max_train_points`` rows (and at
least 40 per centroid when N allows): the centroids are as good and the fit
costs a fixed amount on 1.3M images.  The sample is copied into memory
(normalised) up to ``_TRAIN_BYTES``; wider data (5,000 x 100,000 float32 is
2 GB) is streamed from the memory-mapped input in byte-bounded chunks, one
pass per Lloyd iteration (:func:`.lloyd.streamed_lloyd`).  Every row is then
assigned in chunks of at most ``CHUNK`` rows and ~256 MB, so no full
normalised copy of the embeddings is held in memory.

The fit (every path)
--------------------
* k-means++ seeds (:func:`kmeans_plus_plus`, on a bounded sample);
* the first Lloyd iterations run on a nested sample that doubles up to the
  whole training set (:func:`sample_stages`): they move the seeds far, and an
  eighth of the rows does that as well as all of them; each stage starts from
  the bounds of the previous stage's rows (only the new rows are scored in full);
* Lloyd stops after ``n_iter`` iterations, at a fixed point, or when an
  iteration lowers the inertia by less than ``tol`` times itself;
* on small data (cheap iterations) several k-means++ starts run and the best
  objective is kept (``n_init="auto"``).

Speed and memory (measured figures: benchmarks/README.md)
---------------------------------------------------------
Both steps are dominated by one dot product per (row, centroid): 2*N*K*D
flops, 1e12 for N=1M, K=1000, D=512.  The CPU path is chosen from
``/proc/cpuinfo``:

* **native bf16** (``avx512_bf16`` or ``amx_bf16``): torch's bf16 matrix
  product is ~3x faster than fp32 there.  Training assigns each row to the
  bf16 argmax (within ~0.012 of the fp32 score: a row near a tie may go to a
  centroid a hair less similar; the centroids are fp32 sums of the fp32 rows
  and come out as good).  The assignment (``predict`` /
  :func:`nearest_centroid`) is exact: the bf16 product only proposes
  candidates (every centroid within a proven error margin of the row's best,
  see :class:`_Bf16Centroids`), re-scored in fp32; when most rows of a block
  sit near a tie the rest of the pass uses faiss's exhaustive fp32 search.
* **any other CPU** (AVX2, AVX-512 without bf16): exact fp32 with numpy's BLAS
  (:mod:`.lloyd`): products in blocks into reused buffers, Hamerly bounds
  that skip rows which cannot change centroid (the few centroids that moved
  most scored exactly, so they do not loosen every row's bound; each row's
  runner-up centroid kept with its own bound, so a row near a tie is settled
  by two dot products instead of a re-score), the blocks spread over a thread
  per core with one-thread BLAS (the argmax and gathers are not BLAS).  Not
  faiss: its bundled OpenBLAS falls back to generic kernels on CPUs it does
  not recognise (4x slower searches on the machines this was measured on).
* memory-mapped inputs (``np.load(..., mmap_mode="r")``): each chunk is copied
  into one reused buffer and its pages are then released from the process
  (``madvise(MADV_DONTNEED)``: they stay in the page cache), so the resident
  size stays at about the training sample plus a few chunks instead of
  growing by the whole file (2 GB for 1M x 512).

``CURATE_KMEANS_BF16=0`` forces the fp32 path, ``=1`` forces bf16 (emulated,
hence slow, on CPUs without it: for tests).  On CUDA torch does both steps in
fp32.

Trade-off: training costs ``iterations * n_train`` row products (fewer with
the sample stages) and the assignment ``N``; with the default ``n_train =
131072`` (131 rows per centroid at K=1000) a smaller sample is faster but the
centroids get noisier (faiss warns below 39 rows per centroid); the default
keeps the sample.
"""

from __future__ import annotations

import math
import os
import threading
from typing import Any

import numpy as np

from ..arrays import CHUNK, l2_normalize, normalize_inplace, release_pages
from ..errors import CurateError
from .lloyd import (
    BlockSearch,
    _cluster_sums,
    _map_blocks,
    _workers,
    single_blas_thread,
    spherical_lloyd,
    streamed_lloyd,
)

_BLOCK = 16384  # rows per bf16 product: the score block is _BLOCK x K
_BF16_MARGIN = 0.032  # x max |c - mean(c)|: > 2 x the largest bf16 error of one score (see _Bf16Centroids)
_MAX_AMBIGUOUS = 0.25  # fraction of ambiguous rows above which they are scored in fp32 (faiss)
_MAX_CANDIDATES = 8  # mean candidates per ambiguous row above which they are scored in fp32


def default_k(n: int, n_classes: int | None) -> int:
    """K = number of classes when labels exist, else ``round(sqrt(N / 2))`` in [2, 1000]."""
    if n_classes and n_classes >= 2:
        return int(min(n_classes, n))
    return int(min(n, max(2, min(1000, round(math.sqrt(n / 2))))))


def _read_rows(x, idx, out: np.ndarray | None = None) -> np.ndarray:
    """Rows ``idx`` of ``x``, normalised, as float32 (into ``out[:len(idx)]`` when given).

    The mapped pages of a memory-mapped ``x`` are released afterwards (see
    :func:`_release_pages`).
    """
    m = len(idx)
    out = np.empty((m, x.shape[1]), np.float32) if out is None else out[:m]
    if m == 0:
        return out
    lo, hi = int(idx[0]), int(idx[-1]) + 1
    if hi - lo == m and (m < 2 or bool(np.all(np.diff(idx) == 1))):
        np.copyto(out, x[lo:hi], casting="unsafe")
    elif x.dtype == np.float32 and isinstance(x, np.ndarray):
        np.take(x, idx, axis=0, out=out)
    else:
        np.copyto(out, x[idx], casting="unsafe")
    if hi - lo != m:
        lo, hi = int(np.min(idx)), int(np.max(idx)) + 1
    _release_pages(x, lo, hi)
    return normalize_inplace(out)


_CHUNK_BYTES = 256 << 20  # one float32 chunk: 64k rows at D = 1024, fewer rows for wider embeddings
# the training rows are copied into memory (normalised) up to this size; above it (wide embeddings: 5,000 x
# 100,000 float32 is 2 GB) Lloyd streams them from the input, one byte-bounded chunk at a time
_TRAIN_BYTES = 512 << 20


def iter_unit_chunks(x, rows):
    """(start, normalised float32 rows) per chunk of ``x[rows]``: at most ``CHUNK`` rows and ~256 MB whatever
    the dimension, the pages of a memory-mapped ``x`` released after each.  The buffer is reused: use each
    chunk before asking for the next."""
    step = max(1, min(CHUNK, _CHUNK_BYTES // (4 * max(1, x.shape[1]))))
    buf = np.empty((min(step, len(rows)), x.shape[1]), np.float32)
    for start in range(0, len(rows), step):
        yield start, _read_rows(x, rows[start : start + step], buf)


_iter_chunks = iter_unit_chunks


_release_pages = release_pages  # a module attribute: bench_kmeans --no-release-run replaces it


_BF16 = None


def _use_bf16() -> bool:
    """bf16 candidate search on this CPU? (``CURATE_KMEANS_BF16`` = 0/1 overrides the CPU flags.)"""
    global _BF16
    env = os.environ.get("CURATE_KMEANS_BF16", "").strip().lower()
    if env in ("0", "false", "no", "off"):
        return False
    if _BF16 is None:
        fast = False
        try:
            with open("/proc/cpuinfo") as fh:
                for line in fh:
                    if line.startswith("flags"):
                        flags = set(line.split(":", 1)[1].split())
                        fast = bool(flags & {"avx512_bf16", "amx_bf16"})
                        break
        except OSError:
            pass
        if fast:  # torch is a 3 s import: only where its bf16 path may run
            try:
                import torch  # noqa: F401
            except ImportError:
                fast = False
        _BF16 = fast
    if env in ("1", "true", "yes", "on"):
        return True
    return _BF16


class SphericalKMeans:
    """scikit-learn style: ``__init__`` stores hyper-parameters, ``fit`` learns ``centroids_``.

    Parameters
    ----------
    n_clusters : K.
    n_iter : Lloyd iterations at most (assignment steps, over all sample stages).
    tol : stop when an iteration lowers the inertia ``sum |x - c|^2`` (unit rows
        and centroids) by less than ``tol`` times itself (in a sample stage:
        go on to the next stage).  ``early_stop=False`` turns the tolerance
        off; a fixed point (no row changes centroid) always stops, since the
        remaining iterations would change nothing.
    n_init : k-means++ restarts, the best objective kept; ``"auto"``: as many
        (up to 10) as cost less than :data:`_RESTART_BUDGET` flops together
        (small data: a 3,000-image set gets 10, 100k x 512 at K=1000 gets 1).
    max_train_points : rows sampled for training (all rows when N is smaller).
    random_state : seed for the sample, the initialisation and the restarts.
    device : ``"cpu"`` or ``"cuda"`` (torch).

    After ``fit``: ``centroids_`` (K x D unit rows, float32), ``n_train_``,
    ``n_iter_`` (iterations run by the kept restart), ``n_init_``,
    ``objective_`` (mean similarity of the training rows to their centroid, in
    [-1, 1], higher = tighter clusters) and ``backend_`` ("bf16", "fp32" or
    "torch").
    """

    def __init__(
        self,
        n_clusters: int,
        *,
        n_iter: int = 100,
        tol: float = 1e-4,
        n_init: int | str = "auto",
        max_train_points: int = 131072,
        random_state: int = 0,
        device: str = "cpu",
        early_stop: bool = True,
    ):
        self.n_clusters = n_clusters
        self.n_iter = n_iter
        self.tol = tol
        self.n_init = n_init
        self.max_train_points = max_train_points
        self.random_state = random_state
        self.device = device
        self.early_stop = early_stop

    def fit(self, x: np.ndarray, rows: np.ndarray | None = None) -> SphericalKMeans:
        rows = np.arange(len(x)) if rows is None else np.asarray(rows)
        k = int(self.n_clusters)
        if k < 1:
            raise CurateError(f"--k must be at least 1 (got {k})")
        if len(rows) < k:
            raise CurateError(
                f"{len(rows)} examples is fewer than k={k} clusters: pass --k {max(1, len(rows))} or less"
            )
        if int(self.n_iter) < 1:
            raise CurateError(f"k-means iterations must be at least 1 (got {self.n_iter})")
        rng = np.random.default_rng(self.random_state)
        n_train = min(len(rows), max(self.max_train_points, 40 * k))
        train_rows = np.sort(rng.choice(rows, size=n_train, replace=False)) if n_train < len(rows) else rows
        streamed = n_train * x.shape[1] * 4 > _TRAIN_BYTES
        where = None
        if streamed:  # wide rows: the training rows stay in the (memory-mapped) input, read chunk by chunk
            xt = None
        else:
            # read in file order, stored in a random order: every prefix of xt is a uniform sample, so the
            # sample stages are views, not copies
            where = rng.permutation(n_train)
            xt = np.empty((n_train, x.shape[1]), np.float32)
            # chunks on every core (normalising is a third of the copy's work), one buffer per thread
            step = max(1, min(8192, _CHUNK_BYTES // (4 * x.shape[1] * _workers())))
            bufs: dict[int, np.ndarray] = {}

            def copy(lo: int, hi: int) -> None:
                buf = bufs.get(threading.get_ident())
                if buf is None:
                    buf = bufs[threading.get_ident()] = np.empty((min(step, n_train), x.shape[1]), np.float32)
                xt[where[lo:hi]] = _read_rows(x, train_rows[lo:hi], buf)

            _map_blocks(copy, n_train, step=step)
            del bufs
        if streamed:
            backend = "fp32-streamed"
        elif self.device.startswith("cuda"):
            backend = "torch"
        else:
            backend = "bf16" if _use_bf16() else "fp32"
        n_init = _restarts(self.n_init, n_train, k, x.shape[1], int(self.n_iter))
        best: tuple[Any, ...] | None = None
        for r in range(n_init):
            seed = (
                int(self.random_state)
                if r == 0
                else int(np.random.SeedSequence([int(self.random_state), r]).generate_state(1)[0])
            )
            run = self._fit_streamed(x, train_rows, k, seed) if xt is None else self._fit_once(xt, k, seed, backend)
            if best is None or run[2] > best[2]:
                best = run
        assert best is not None  # n_init >= 1
        self.centroids_, self.n_iter_, self.objective_ = best[0], int(best[1]), float(best[2])
        labels = best[3] if len(best) > 3 else {}
        self._train_labels = None  # (training rows, their ids, their similarities): what fit_predict reuses
        if labels and where is not None:
            ids, sims = np.empty(n_train, np.int32), np.empty(n_train, np.float32)
            ids[:], sims[:] = labels["assign"][where], labels["sim"][where]  # xt[where[i]] is train_rows[i]
            self._train_labels = (train_rows, ids, sims)
        self.backend_ = backend
        self.n_init_ = n_init
        self.n_train_ = n_train
        return self

    def _fit_once(self, xt: np.ndarray, k: int, seed: int, backend: str):
        """One k-means++ start: (centroids, iterations run, objective) over the sample stages."""
        rng = np.random.default_rng(seed)
        with single_blas_thread():  # k sequential memory-bound products
            cent = kmeans_plus_plus(xt, k, seed)
        total, objective = 0, -1.0
        stages = sample_stages(len(xt), k, int(self.n_iter), xt.shape[1])
        labels: dict = {}
        carry: dict = {}  # the bounds of the previous stage's rows (a prefix of the next stage's)
        for stage, (m, iters) in enumerate(stages):
            xs = xt[:m]  # the rows are in a random order (see fit): a uniform sample
            if backend == "fp32":
                cent, done, objective = spherical_lloyd(
                    xs,
                    cent,
                    n_iter=iters,
                    tol=self.tol,
                    rng=rng,
                    early_stop=self.early_stop,
                    warm=stage > 0,
                    labels_out=labels if stage == len(stages) - 1 else None,
                    carry=carry,
                )
            else:
                cent, done, objective = _torch_kmeans(
                    xs,
                    cent,
                    iters,
                    rng,
                    "cpu" if backend == "bf16" else self.device,
                    bf16=backend == "bf16",
                    tol=self.tol,
                    early_stop=self.early_stop,
                )
            total += done
        return cent, total, objective, labels

    def _fit_streamed(self, x, train_rows: np.ndarray, k: int, seed: int):
        """One k-means++ start on training rows too wide to copy: (centroids, iterations run, objective).

        Plain exact fp32 Lloyd over byte-bounded chunks of ``x[train_rows]``
        (:func:`.lloyd.streamed_lloyd`): the same fixed points as the in-memory
        fit, one read of the rows per iteration instead of a copy of them all.
        """
        rng = np.random.default_rng(seed)
        with single_blas_thread():
            cent = _kmeans_plus_plus_streamed(x, train_rows, k, seed)
        d = x.shape[1]

        def chunks():
            return _iter_chunks(x, train_rows)

        def read_row(i: int) -> np.ndarray:
            return _read_rows(x, train_rows[i : i + 1])[0]

        return streamed_lloyd(
            chunks,
            len(train_rows),
            d,
            cent,
            n_iter=int(self.n_iter),
            tol=self.tol,
            rng=rng,
            read_row=read_row,
            early_stop=self.early_stop,
        )

    def predict(self, x: np.ndarray, rows: np.ndarray | None = None):
        """(cluster id int32, cosine similarity to it float32) for each row."""
        return nearest_centroid(x, self.centroids_, rows, device=self.device)

    def fit_predict(self, x: np.ndarray, rows: np.ndarray | None = None, *, search=None):
        """``fit`` then ``predict`` of the same rows, exactly: the training rows' answer comes from the fit's
        final assignment step (which reuses its bounds), only the other rows are searched, with
        ``search(x, centroids, rows) -> (ids, sims)`` when given (e.g. an engine's distributed
        assignment), else :meth:`predict`."""
        self.fit(x, rows)
        rows = np.arange(len(x)) if rows is None else np.asarray(rows)
        if search is None:
            search = lambda x_, c_, r_: self.predict(x_, r_)  # noqa: E731
        if self._train_labels is None:
            return search(x, self.centroids_, rows)
        train_rows, ids, sims = self._train_labels
        order = np.argsort(rows, kind="stable")
        pos = order[np.searchsorted(rows, train_rows, sorter=order)]  # where each training row sits in rows
        assign = np.empty(len(rows), np.int32)
        sim = np.empty(len(rows), np.float32)
        assign[pos], sim[pos] = ids, np.clip(sims, -1.0, 1.0)
        rest = np.ones(len(rows), bool)
        rest[pos] = False
        if rest.any():
            assign[rest], sim[rest] = search(x, self.centroids_, rows[rest])
        return assign, sim


_RESTART_BUDGET = 5e10  # flops (2 N K D per iteration, 30 iterations) all restarts together: ~0.3 s on 2 cores
_MAX_RESTARTS = 10
_STAGE_MIN_PER_CENTROID = 16  # rows per centroid in the first sample stage at least
_FINAL_SHARE = 0.3  # of the iterations run on all rows (the last stage), at least 2
_STAGE_MIN_FLOPS = 2e9  # one iteration over all rows costs more than this (~10 ms): sample stages pay


def _restarts(n_init, n: int, k: int, d: int, n_iter: int) -> int:
    if n_init != "auto":
        if int(n_init) < 1:
            raise CurateError(f"k-means restarts must be at least 1 (got {n_init})")
        return int(n_init)
    one = 2.0 * n * k * d * min(n_iter, 30)  # with the tolerance most runs stop well before 30 iterations
    return int(max(1, min(_MAX_RESTARTS, _RESTART_BUDGET // max(one, 1.0))))


def sample_stages(n: int, k: int, n_iter: int, d: int) -> list[tuple[int, int]]:
    """(rows, iterations) per stage: the first Lloyd iterations run on a nested sample that doubles up to all rows.

    The first iterations move the centroids far (k-means++ seeds are single
    rows; the first update moves a typical seed by half a unit vector), and an
    eighth of the rows places them as well as all of them: the last stage
    (:data:`_FINAL_SHARE` of ``n_iter``) refines on every row.  Measured on
    30k x 512 at K=300, 20 iterations: objective 0.3511 vs 0.3514 with every
    iteration on all rows, at 0.43x the CPU time.  The first stage keeps
    :data:`_STAGE_MIN_PER_CENTROID` rows per centroid: on 100k x 512 at K=1000
    (two generated sets, bench_kmeans' recipe) 16 per centroid (16k, 32k, 64k,
    100k rows) gave objectives 0.5097 / 0.6233 at 0.85x / 0.88x the product
    work of 32 per centroid (32k, 64k, 100k: 0.5080 / 0.6222).  Data whose iterations
    cost little (under :data:`_STAGE_MIN_FLOPS`) get one stage.
    """
    if 2.0 * n * k * d < _STAGE_MIN_FLOPS:
        return [(n, n_iter)]
    m0 = max(n // 8, _STAGE_MIN_PER_CENTROID * k)
    sizes = []
    m = m0
    while m < n:
        sizes.append(m)
        m *= 2
    final = max(2, math.ceil(_FINAL_SHARE * n_iter))
    early = n_iter - final
    sizes = sizes[: max(0, early)]
    if not sizes:
        return [(n, n_iter)]
    per = [early // len(sizes) + (1 if i < early % len(sizes) else 0) for i in range(len(sizes))]
    return [(m, it) for m, it in zip(sizes, per) if it > 0] + [(n, final)]


_SEED_DIM = 128  # k-means++ measures distances in a random projection to this many dimensions (when D is larger)


def kmeans_plus_plus(x: np.ndarray, k: int, seed: int, *, max_sample: int | None = None) -> np.ndarray:
    """k-means++ seeding on unit vectors (squared distance = 2 - 2 cos): (k, D) initial centroids (rows of ``x``).

    Random initial rows merge well separated clusters and split others; k-means++
    spreads the seeds.  It is sequential (K passes over the sample), so it runs on
    at most ``max(10 K, 10000)`` rows; with K <= 200 each step keeps the best of
    ``2 + log K`` candidates (greedy k-means++, as scikit-learn does).  Each pass
    is bound by memory, not arithmetic, so above :data:`_SEED_DIM` dimensions the
    distances are measured in a Gaussian random projection to that many (a
    quarter of the bytes at D = 512; Johnson-Lindenstrauss: the distances the
    sampling weighs by move by a few percent); the seeds are the original rows.
    """
    rng = np.random.default_rng(seed)
    n = len(x)
    m = min(n, max_sample or max(10 * k, 10000))
    idx = np.sort(rng.choice(n, size=m, replace=False)) if m < n else np.arange(n)
    xs = x[idx] if m < n else x
    if xs.shape[1] > _SEED_DIM:
        xp = np.ascontiguousarray(xs @ _seed_projection(xs.shape[1], rng))
    else:
        xp = np.ascontiguousarray(xs, dtype=np.float32)
    picks = _plus_plus_picks(xp, k, rng)
    return np.ascontiguousarray(xs[picks], dtype=np.float32)


def _seed_projection(d: int, rng: np.random.Generator) -> np.ndarray:
    return rng.standard_normal((d, _SEED_DIM), dtype=np.float32) / np.float32(math.sqrt(_SEED_DIM))


def _kmeans_plus_plus_streamed(x, rows: np.ndarray, k: int, seed: int) -> np.ndarray:
    """:func:`kmeans_plus_plus` of the unit rows ``x[rows]`` without copying them: the sample is projected
    chunk by chunk, then only the ``k`` picked rows are read."""
    rng = np.random.default_rng(seed)
    n = len(rows)
    m = min(n, max(10 * k, 10000))
    idx = np.sort(rng.choice(n, size=m, replace=False)) if m < n else np.arange(n)
    d = x.shape[1]
    proj = _seed_projection(d, rng) if d > _SEED_DIM else None
    xp = np.empty((m, min(d, _SEED_DIM)), np.float32)
    for start, xc in _iter_chunks(x, rows[idx]):
        xp[start : start + len(xc)] = xc if proj is None else xc @ proj
    picks = idx[_plus_plus_picks(xp, k, rng)]
    order = np.argsort(picks, kind="stable")  # read in file order, returned in pick order
    seeds = np.empty((k, d), np.float32)
    seeds[order] = _read_rows(x, rows[picks[order]])
    return seeds


def _plus_plus_picks(xp: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """k-means++ (greedy with ``2 + log K`` trials when K <= 200): positions in ``xp`` of the ``k`` seeds."""
    m = len(xp)
    trials = 2 + int(np.log(k)) if k <= 200 else 1
    picks = np.empty(k, np.int64)
    first = int(rng.integers(m))
    picks[0] = first
    d2 = np.maximum(2.0 - 2.0 * (xp @ xp[first]), 0.0)
    for j in range(1, k):
        total = float(d2.sum())
        if total <= 0:  # fewer distinct points than k: repeat rows, Lloyd re-seeds empty clusters
            cand = rng.integers(m, size=1)
        else:
            cand = np.searchsorted(np.cumsum(d2, dtype=np.float64), rng.random(trials) * total)
            cand = np.minimum(cand, m - 1)
        if len(cand) == 1:
            best = int(cand[0])
            d2 = np.minimum(d2, np.maximum(2.0 - 2.0 * (xp @ xp[best]), 0.0))
        else:
            cd = np.minimum(d2[None, :], np.maximum(2.0 - 2.0 * (xp[cand] @ xp.T), 0.0))
            pick = int(cd.sum(axis=1).argmin())
            best, d2 = int(cand[pick]), cd[pick]
        picks[j] = best
    return picks


_last_stats: dict = {}  # how the last nearest_centroid call went (path, bf16 and ambiguous rows): diagnostics


def nearest_centroid(x, centroids, rows=None, *, device: str = "cpu", progress=None):
    """(nearest centroid id int32, its cosine similarity float32) for each row of ``x[rows]``.

    Exact (fp32) on every path; see the module docstring for the bf16 candidate search.
    """
    rows = np.arange(len(x)) if rows is None else np.asarray(rows)
    assign = np.empty(len(rows), np.int32)
    sim = np.empty(len(rows), np.float32)
    c = l2_normalize(centroids)
    stats: dict[str, Any] = {"rows": len(rows), "path": "", "bf16_rows": 0, "ambiguous_rows": 0}
    if device.startswith("cuda"):
        import torch

        stats["path"] = "torch-cuda"
        ct = torch.from_numpy(c).to(device)
        for start, xc in _iter_chunks(x, rows):
            s, a = (torch.from_numpy(xc).to(device) @ ct.T).max(dim=1)
            assign[start : start + len(xc)] = a.cpu().numpy()
            sim[start : start + len(xc)] = s.cpu().numpy()
            if progress:
                progress(start + len(xc), len(rows))
    elif not _use_bf16():
        stats["path"] = "fp32"
        search = BlockSearch(c)
        for start, xc in _iter_chunks(x, rows):

            def block(lo: int, hi: int, start: int = start, xc: np.ndarray = xc) -> None:
                assign[start + lo : start + hi], sim[start + lo : start + hi] = search.top1(xc[lo:hi])

            _map_blocks(block, len(xc))  # blocks on every core (see lloyd._map_blocks)
            if progress:
                progress(start + len(xc), len(rows))
    else:
        import faiss

        index = faiss.IndexFlatIP(c.shape[1])
        index.add(c)
        cb: _Bf16Centroids | None = _Bf16Centroids(c)
        strikes = 0
        for start, xc in _iter_chunks(x, rows):
            for b in range(0, len(xc), _BLOCK):
                xb = xc[b : b + _BLOCK]
                if cb is not None:
                    a, s, n_amb = cb.assign(xb, fallback=index)
                    stats["bf16_rows"] += len(xb)
                    stats["ambiguous_rows"] += n_amb
                    # rows too often near a tie: bf16 does not pay here, stay with fp32
                    strikes = strikes + 1 if n_amb > _MAX_AMBIGUOUS * len(xb) else 0
                    if strikes >= 2:
                        cb = None
                else:
                    s, a = index.search(xb, 1)
                    a, s = a[:, 0], s[:, 0]
                assign[start + b : start + b + len(xb)] = a
                sim[start + b : start + b + len(xb)] = s
            if progress:
                progress(start + len(xc), len(rows))
        stats["path"] = "bf16+fp32" if stats["bf16_rows"] == len(rows) else "bf16+fp32, then faiss"
    _last_stats.clear()
    _last_stats.update(stats)
    return assign, np.clip(sim, -1.0, 1.0)


class _Bf16Centroids:
    """Nearest-centroid search with a bf16 product (CPU).

    The product is taken with the centroids minus their mean ``m``: ``x.(c - m)``
    ranks the centroids as ``x.c`` does (``x.m`` is the same for every centroid)
    and is smaller, so its bf16 error is smaller.  With ``R = max |c - m|`` the
    error of one bf16 score is at most ``~4 * 2**-8 * R`` (inputs rounded, fp32
    accumulation, output rounded or truncated), so the true nearest centroid
    is within ``margin = 0.032 * R`` of the best bf16 score.

    ``assign(xb, fallback=index)``: a row whose runner-up is within the margin
    is ambiguous; its candidates in the margin are re-scored in fp32 (the
    block's ambiguous rows go to the fp32 ``fallback`` index when they are many
    or have many candidates).  The result is the exact fp32 answer; ties in
    fp32 go to the smallest id.  ``top1(xh)`` is the plain bf16 argmax (training).

    Work arrays are allocated once per block size and reused: fresh 30 MB
    temporaries cost as much in page faults as the arithmetic on them.
    """

    _NEG_INF_BF16 = np.int16(-128)  # bit pattern 0xFF80

    def __init__(self, c: np.ndarray):
        self._rows = 0
        self.set_centroids(c)

    def set_centroids(self, c: np.ndarray) -> None:
        import torch

        self.c = np.ascontiguousarray(c, dtype=np.float32)
        shifted = self.c - self.c.mean(axis=0)
        self.margin = float(_BF16_MARGIN * np.sqrt(np.einsum("ij,ij->i", shifted, shifted).max()) + 1e-6)
        self.cbT = torch.from_numpy(shifted).to(torch.bfloat16).T.contiguous()

    def _buffers(self, n: int):
        import torch

        if n > self._rows:
            k, d = self.c.shape
            self._xh = torch.empty((n, d), dtype=torch.bfloat16)
            self._scores = torch.empty((n, k), dtype=torch.bfloat16)
            self._best = torch.empty(n, dtype=torch.bfloat16)
            self._second = torch.empty(n, dtype=torch.bfloat16)
            self._top = torch.empty(n, dtype=torch.int64)
            self._gathered = np.empty((n, d), np.float32)
            self._rows = n
        return (self._xh[:n], self._scores[:n], self._best[:n], self._second[:n], self._top[:n], self._gathered[:n])

    def top1(self, xh, out) -> None:
        """bf16 argmax of each row of ``xh`` (bf16 unit rows) into ``out`` (int64 tensor)."""
        import torch

        _, scores, best, _, _, _ = self._buffers(len(xh))
        torch.matmul(xh, self.cbT, out=scores)
        torch.max(scores, dim=1, out=(best, out))  # max is ~2x cheaper than argmax for bf16 on CPU

    def assign(self, xb: np.ndarray, fallback=None):
        """(ids int64, fp32 similarities, number of ambiguous rows) for the unit fp32 rows ``xb``."""
        import torch

        n, k = len(xb), len(self.c)
        xh, scores, best_t, second_t, top_t, gathered = self._buffers(n)
        xh.copy_(torch.from_numpy(xb))
        torch.matmul(xh, self.cbT, out=scores)
        torch.max(scores, dim=1, out=(best_t, top_t))
        top = top_t.numpy().copy()
        np.take(self.c, top, axis=0, out=gathered)
        sim = np.einsum("nd,nd->n", xb, gathered)
        if k == 1:
            return top, sim, 0
        flat = scores.view(torch.int16).numpy().reshape(-1)
        flat[np.arange(n) * k + top] = self._NEG_INF_BF16  # mask the best: amax = runner-up
        torch.amax(scores, dim=1, out=second_t)
        best = best_t.float().numpy()
        amb = np.flatnonzero(second_t.float().numpy() >= best - self.margin)
        if not len(amb):
            return top, sim, 0
        cand = None
        if len(amb) <= _MAX_AMBIGUOUS * n:
            cand = scores[torch.from_numpy(amb)].float().numpy() >= (best[amb] - self.margin)[:, None]
            cand[np.arange(len(amb)), top[amb]] = True
            if cand.sum() > _MAX_CANDIDATES * len(amb):
                cand = None
        if cand is None:  # exhaustive fp32 for the ambiguous rows
            xa = np.ascontiguousarray(xb[amb])
            if fallback is not None:
                v_amb, a_amb = fallback.search(xa, 1)
                v_amb, a_amb = v_amb[:, 0], a_amb[:, 0]
            else:
                s_amb = xa @ self.c.T
                a_amb = s_amb.argmax(axis=1)
                v_amb = s_amb[np.arange(len(amb)), a_amb]
        else:
            r, j = np.nonzero(cand)
            vals = np.einsum("nd,nd->n", xb[amb[r]], self.c[j])
            starts = np.flatnonzero(np.r_[True, r[1:] != r[:-1]])
            v_amb = np.maximum.reduceat(vals, starts)
            win = np.flatnonzero(vals == np.repeat(v_amb, np.diff(np.r_[starts, len(r)])))
            _, first = np.unique(r[win], return_index=True)  # smallest id among equal best
            a_amb = j[win[first]]
        top[amb] = a_amb
        sim[amb] = v_amb
        return top, sim, len(amb)


def _torch_kmeans(
    x: np.ndarray,
    init: np.ndarray,
    n_iter: int,
    rng: np.random.Generator,
    device: str,
    *,
    bf16: bool = False,
    tol: float = 0.0,
    early_stop: bool = True,
):
    """Lloyd's algorithm for unit vectors from ``init``: (centroids, iterations run, objective).

    Stops as :func:`.lloyd.spherical_lloyd` does (``n_iter``, a fixed point, or
    an inertia gain below ``tol``).  An empty cluster is re-seeded with a random
    member of a cluster drawn in proportion to its size minus one.  With
    ``bf16`` (CPU) the assignment step is the bf16 argmax
    (:meth:`_Bf16Centroids.top1`): it may pick a centroid whose similarity is
    within ~0.01 of the best, which moves the centroids by a negligible amount.
    """
    import torch

    n = len(x)
    k = len(init)
    xt = torch.from_numpy(x).to(device)
    xh = xt.to(torch.bfloat16) if bf16 else None
    cent = torch.from_numpy(np.ascontiguousarray(init, np.float32)).to(device)
    prev = None
    assign = torch.empty(n, dtype=torch.int64, device=device)
    cb = _Bf16Centroids(cent.numpy()) if bf16 else None
    it, objective = 0, -1.0
    for it in range(1, n_iter + 1):
        if cb is not None and xh is not None:
            cb.set_centroids(cent.numpy())
            for s in range(0, n, _BLOCK):
                cb.top1(xh[s : s + _BLOCK], assign[s : s + _BLOCK])
        else:
            for s in range(0, n, _BLOCK):
                assign[s : s + _BLOCK] = (xt[s : s + _BLOCK] @ cent.T).argmax(dim=1)
        if prev is not None and torch.equal(assign, prev):
            break  # fixed point: the centroids below would be the ones we have
        prev = assign.clone()
        if device == "cpu":  # torch's CPU index_add_ is slow (0.15 s for 1,500 x 64 on 2 busy cores)
            sums = torch.from_numpy(_cluster_sums(x, assign.numpy(), k).astype(np.float32))
        else:
            sums = torch.zeros_like(cent).index_add_(0, assign, xt)
        counts = torch.bincount(assign, minlength=k).cpu().numpy()
        empty = np.flatnonzero(counts == 0)
        if len(empty):
            assign_np = assign.cpu().numpy().copy()
            for e in empty:
                weight = np.maximum(counts - 1, 0).astype(np.float64)
                donor = rng.choice(k, p=weight / weight.sum()) if weight.sum() > 0 else None
                members = np.flatnonzero(assign_np == donor) if donor is not None else np.arange(n)
                row = int(rng.choice(members))
                sums[e] = xt[row]
                if donor is not None:
                    sums[donor] -= xt[row]
                    counts[donor] -= 1
                counts[e] = 1
                assign_np[row] = e
            prev = torch.from_numpy(assign_np).to(device)
        cent = torch.nn.functional.normalize(sums, dim=1)
        previous, objective = objective, float(sums.double().norm(dim=1).sum()) / n
        if early_stop and it > 1 and objective - previous <= tol * max(1.0 - objective, 1e-12):
            break
    return cent.float().cpu().numpy(), it, objective
