"""2-D map: PCA to ~50 dims, then UMAP -- on every point, or on a stratified sample with the rest placed.

UMAP on a million points takes tens of minutes on two cores, so above
``fit_sample`` rows the map is fitted on a sample of ``fit_sample`` rows
(stratified by ``strata``, e.g. the k-means clusters: every cluster is drawn in
proportion to its size and with at least a few members, so small clusters get
their own place on the map), and every other point is placed at the
inverse-distance-weighted mean of the 2-D positions of its ``place_k`` nearest
sampled neighbours in the PCA space.  The neighbours come from a faiss IVF
index over the sample (exact inside the probed lists), in chunks, so memory
stays O(N * 2 + sample).  At or below ``fit_sample`` rows UMAP sees every point
(the "exact" path).  :attr:`Projector2D.info_` records which path ran.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from ..arrays import CHUNK, l2_normalize, release_pages
from ..errors import CurateError

MAP_METHODS = ("umap", "pca")
# at or below this many rows UMAP sees every point; above, it is fitted on this many (stratified)
FIT_SAMPLE = 50_000
# from this many fitted points on, UMAP gets faiss's exact kNN graph (below, UMAP's own exact search is cheap)
KNN_GRAPH_FROM = 4096
# the PCA sample is copied into memory only below this size; above it the SVD streams over row chunks
SAMPLE_BYTES = 256 << 20
CHUNK_BYTES = 64 << 20


def read_rows(x: np.ndarray, rows: np.ndarray, *, block: int = 256) -> np.ndarray:
    """``x[rows]`` (rows sorted) for a memory-mapped ``x``, without mapping the whole file into the resident set.

    A scattered read maps ~64 KB around every row it touches (the kernel's fault-around): 50,000 rows
    of a 1M x 512 file, or 20,000 of 1M x 3,072 raw pixels, put the whole file in the process's RSS.
    Reading ``block`` rows at a time and releasing their span after each block keeps it to one span.
    """
    rows = np.asarray(rows)
    if not isinstance(x, np.memmap):
        return np.asarray(x[rows])
    out = np.empty((len(rows),) + x.shape[1:], x.dtype)
    for start in range(0, len(rows), block):
        part = rows[start : start + block]
        out[start : start + len(part)] = x[part]
        release_pages(x, int(part.min()), int(part.max()) + 1)
    return out


def _rows_per_chunk(dim: int) -> int:
    """Rows per chunk so that a float32 chunk stays near CHUNK_BYTES whatever the dimension."""
    return max(1, min(CHUNK, CHUNK_BYTES // (4 * max(1, dim))))


class Projector2D:
    """``fit_transform(x, rows, strata=...)`` -> (len(rows), 2) float32 coordinates; ``info_`` says how.

    ``fit_sample``: the most points UMAP is fitted on (and the PCA's sample);
    above it the sampled path runs.  ``place_k``: neighbours that place a point
    that was not fitted.  ``min_per_stratum``: each stratum's floor in the sample.
    """

    def __init__(
        self,
        method: str = "umap",
        *,
        pca_dim: int = 50,
        fit_sample: int = FIT_SAMPLE,
        place_k: int = 10,
        min_per_stratum: int = 5,
        n_neighbors: int = 15,
        min_dist: float = 0.1,
        random_state: int = 0,
    ):
        self.method = method
        self.pca_dim = pca_dim
        self.fit_sample = fit_sample
        self.place_k = place_k
        self.min_per_stratum = min_per_stratum
        self.n_neighbors = n_neighbors
        self.min_dist = min_dist
        self.random_state = random_state

    def _pca(self, x, rows, sample):
        d = x.shape[1]
        step = _rows_per_chunk(d)
        dim = min(self.pca_dim, d, max(2, len(sample) - 1))
        if len(sample) * d * 4 <= SAMPLE_BYTES:  # the sample fits: the exact (or randomized) SVD in memory
            xs = l2_normalize(read_rows(x, sample))
            self.mean_ = xs.mean(axis=0)
            if dim < min(xs.shape) // 2:
                from sklearn.utils.extmath import randomized_svd

                _, _, vt = randomized_svd(xs - self.mean_, n_components=dim, n_iter=4, random_state=self.random_state)
            else:
                _, _, vt = np.linalg.svd(xs - self.mean_, full_matrices=False)
            del xs
        else:
            vt = self._streaming_pca(x, sample, dim, step)
        self.components_ = vt[:dim].astype(np.float32)
        out = np.empty((len(rows), self.components_.shape[0]), np.float32)
        for start in range(0, len(rows), step):
            chunk = rows[start : start + step]
            out[start : start + step] = (l2_normalize(x[chunk]) - self.mean_) @ self.components_.T
            if len(chunk):  # read pages leave the resident set (a 1M x 512 map would hold the whole file)
                release_pages(x, int(chunk.min()), int(chunk.max()) + 1)
        return out

    def _streaming_pca(self, x, sample, dim, step):
        """Randomized SVD (Halko et al.) of the centred, normalised sample, one row chunk at a time.

        Memory is O((len(sample) + D) * (dim + 10)) plus one chunk, instead of
        copies of the whole len(sample) x D sample (5,000 x 100,000 float32 is 2 GB
        per copy).
        """
        d = x.shape[1]
        rng = np.random.default_rng(self.random_state)

        def chunks():
            for start in range(0, len(sample), step):
                yield start, l2_normalize(read_rows(x, sample[start : start + step]))

        mean = np.zeros(d, np.float64)
        for _, c in chunks():
            mean += c.sum(axis=0, dtype=np.float64)
        self.mean_ = (mean / len(sample)).astype(np.float32)
        width = min(dim + 10, len(sample), d)

        def times(m):  # (A - mean) @ m, A = the sample, as (len(sample), k)
            out = np.empty((len(sample), m.shape[1]), np.float32)
            shift = self.mean_ @ m
            for start, c in chunks():
                out[start : start + len(c)] = c @ m - shift
            return out

        def t_times(q):  # (A - mean).T @ q, as (D, k)
            out = np.zeros((d, q.shape[1]), np.float32)
            for start, c in chunks():
                out += c.T @ q[start : start + len(c)]
            out -= np.outer(self.mean_, q.sum(axis=0))
            return out

        q, _ = np.linalg.qr(times(rng.standard_normal((d, width)).astype(np.float32)))
        for _ in range(2):  # power iterations: two are plenty for a 2-D map (each costs two passes)
            z, _ = np.linalg.qr(t_times(q))
            q, _ = np.linalg.qr(times(z))
        b = t_times(q).T  # (width, D) = Q.T @ (A - mean)
        _, _, vt = np.linalg.svd(b, full_matrices=False)
        return vt[:dim]

    def fit_transform(
        self, x: np.ndarray, rows: np.ndarray | None = None, progress=None, *, strata: np.ndarray | None = None
    ) -> np.ndarray:
        if self.method not in MAP_METHODS:
            raise CurateError(f"unknown map method {self.method!r}: use one of {', '.join(MAP_METHODS)}")
        rows = np.arange(len(x)) if rows is None else np.asarray(rows)
        n = len(rows)
        if strata is not None and len(strata) != n:
            raise ValueError(f"strata has {len(strata)} entries for {n} rows: pass one per row")
        sample_pos = fit_sample_positions(
            n,
            self.fit_sample,
            strata=strata,
            min_per_stratum=self.min_per_stratum,
            random_state=self.random_state,
        )
        z = self._pca(x, rows, rows[sample_pos])
        self.info_ = {"method": self.method, "n": int(n), "pca_dim": int(z.shape[1]), "pca_sample": len(sample_pos)}
        if progress:
            progress(1, 3)
        if self.method == "pca" or n < 5:
            self.info_["path"] = "exact"
            out = np.zeros((n, 2), np.float32)
            out[:, : min(2, z.shape[1])] = z[:, :2]
            return out
        try:
            import umap
        except ImportError:  # pragma: no cover
            raise CurateError("the UMAP map needs umap-learn: pip install umap-learn (or use --map pca)") from None
        import warnings

        warnings.filterwarnings("ignore", message="n_jobs value", category=UserWarning)
        n_neighbors = min(self.n_neighbors, max(2, len(sample_pos) - 1))
        zs = np.ascontiguousarray(z[sample_pos])
        t0 = time.perf_counter()
        knn = exact_knn_graph(zs, n_neighbors) if len(zs) >= KNN_GRAPH_FROM else None
        warnings.filterwarnings("ignore", message="precomputed_knn", category=UserWarning)
        reducer = umap.UMAP(
            n_components=2,
            n_neighbors=n_neighbors,
            min_dist=self.min_dist,
            random_state=self.random_state,
            init="spectral" if len(sample_pos) > self.n_neighbors + 2 else "random",
            precomputed_knn=knn if knn is not None else (None, None, None),
        )
        fitted = reducer.fit_transform(zs).astype(np.float32)
        del zs
        self.info_["umap_fit_s"] = round(time.perf_counter() - t0, 2)
        self.info_["knn_graph"] = "faiss exact" if knn is not None else "umap's own"
        if progress:
            progress(2, 3)
        out = np.empty((n, 2), np.float32)
        out[sample_pos] = fitted
        rest = np.setdiff1d(np.arange(n), sample_pos)
        if len(rest) == 0:
            self.info_["path"] = "exact"
        else:
            t0 = time.perf_counter()
            placement = place_by_neighbours(z, sample_pos, fitted, rest, out, k=self.place_k, seed=self.random_state)
            self.info_.update(
                path="sampled",
                fit_sample=len(sample_pos),
                sample="stratified" if strata is not None else "uniform",
                placed=len(rest),
                placement=placement,
                place_s=round(time.perf_counter() - t0, 2),
            )
        if progress:
            progress(3, 3)
        return out


def exact_knn_graph(z: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Each row's ``k`` nearest rows (itself first) and their L2 distances, by faiss's exact search.

    UMAP's own graph (pynndescent) costs several times more CPU at 50,000 points on two cores,
    plus its numba compilation; the exact graph is also a little better.
    """
    import faiss

    index = faiss.IndexFlatL2(z.shape[1])
    index.add(z)
    nn = np.empty((len(z), k), np.int64)
    dist = np.empty((len(z), k), np.float32)
    for start in range(0, len(z), CHUNK):
        d, i = index.search(z[start : start + CHUNK], k)
        nn[start : start + CHUNK], dist[start : start + CHUNK] = i, np.sqrt(np.maximum(d, 0))
    return nn, dist


def fit_sample_positions(
    n: int, size: int, *, strata: np.ndarray | None = None, min_per_stratum: int = 5, random_state: int = 0
) -> np.ndarray:
    """Sorted positions of the fit sample: all ``n`` when ``n <= size``, else ``size`` of them.

    With ``strata`` (one code per row, e.g. the k-means cluster) every stratum
    gets ``max(min(count, min_per_stratum), round(count * size / n))`` rows --
    proportional, with a floor so that small clusters appear on the map -- and
    the total is brought to exactly ``size`` (the floor shrinks when there are more strata than
    ``size / min_per_stratum``).
    """
    rng = np.random.default_rng(random_state)
    if n <= size:
        return np.arange(n)
    if strata is None:
        return np.sort(rng.choice(n, size=size, replace=False))
    codes, inverse, counts = np.unique(np.asarray(strata), return_inverse=True, return_counts=True)
    inverse = inverse.reshape(-1)
    floor = min(min_per_stratum, size // len(counts))  # the floors together never exceed the sample
    quota = np.maximum(np.minimum(counts, floor), np.round(counts * (size / n)).astype(np.int64))
    short = size - int(quota.sum())
    if short > 0:  # rounding left the sample short: one more row from the strata with the largest remainders
        room = np.flatnonzero(quota < counts)
        remainder = counts[room] * (size / n) - quota[room]
        quota[room[np.argsort(-remainder, kind="stable")[:short]]] += 1
    excess = int(quota.sum()) - size
    if excess > 0:  # the floors pushed the total up: take the excess from the strata with the most rows
        spare = quota - np.minimum(counts, floor)
        for c in np.argsort(-spare, kind="stable"):
            take = min(excess, int(spare[c]))
            quota[c] -= take
            excess -= take
            if excess == 0:
                break
    # a random rank inside each stratum; a row is drawn when its rank is below its stratum's quota
    order = np.lexsort((rng.random(n), inverse))
    starts = np.r_[0, np.cumsum(counts)[:-1]]
    rank = np.empty(n, np.int64)
    rank[order] = np.arange(n) - np.repeat(starts, counts)
    return np.flatnonzero(rank < quota[inverse])


def place_by_neighbours(
    z: np.ndarray, sample_pos: np.ndarray, fitted: np.ndarray, rest: np.ndarray, out: np.ndarray, *, k: int, seed: int
) -> str:
    """Write into ``out[rest]`` the inverse-distance-weighted mean of the 2-D positions of each point's
    ``k`` nearest sampled points (in the PCA space ``z``); returns a description of the search used."""
    import faiss

    ref = np.ascontiguousarray(z[sample_pos])
    dim = ref.shape[1]
    k = min(k, len(ref))
    if len(ref) >= 20000:  # a flat search of 1M x 50k x 50 dims is ~2.5e12 flops: an IVF index is ~20x less
        nlist = int(min(1024, max(64, np.sqrt(len(ref)) * 2)))
        nprobe = 16
        index: Any = faiss.IndexIVFFlat(faiss.IndexFlatL2(dim), dim, nlist)
        index.cp.seed = seed
        index.train(ref)
        index.add(ref)
        index.nprobe = nprobe
        how = f"faiss IVFFlat (nlist {nlist}, nprobe {nprobe}) {k}-NN in PCA space, inverse-distance mean"
    else:
        index = faiss.IndexFlatL2(dim)
        index.add(ref)
        how = f"faiss exact {k}-NN in PCA space, inverse-distance mean"
    for start in range(0, len(rest), CHUNK):  # z is (n, <= 50): 64k rows are small
        pos = rest[start : start + CHUNK]
        d, nn = index.search(np.ascontiguousarray(z[pos]), k)
        missing = nn < 0  # an IVF search can find fewer than k in the probed lists
        nn[missing] = nn[:, :1].repeat(k, axis=1)[missing]
        w = 1.0 / (np.sqrt(np.maximum(d, 0)) + 1e-6)
        w[missing] = 0.0
        w /= w.sum(axis=1, keepdims=True)
        out[pos] = np.einsum("nk,nkd->nd", w, fitted[nn])
    return how
