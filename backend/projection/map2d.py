"""2-D map: PCA to ~50 dims, UMAP on a sample, the rest placed by nearest neighbours.

UMAP on a million points takes tens of minutes, so above ``fit_sample`` rows
the map is fitted on a uniform sample and every other point is placed at the
similarity-weighted mean of its 10 nearest sampled neighbours (in the PCA
space).  Below it, UMAP sees every point.
"""

from __future__ import annotations

import numpy as np

from ..arrays import CHUNK, l2_normalize, release_pages
from ..errors import CurateError

MAP_METHODS = ("umap", "pca")
# the PCA sample is copied into memory only below this size; above it the SVD streams over row chunks
SAMPLE_BYTES = 256 << 20
CHUNK_BYTES = 64 << 20


def _rows_per_chunk(dim: int) -> int:
    """Rows per chunk so that a float32 chunk stays near CHUNK_BYTES whatever the dimension."""
    return max(1, min(CHUNK, CHUNK_BYTES // (4 * max(1, dim))))


class Projector2D:
    """``fit_transform(x, rows)`` -> (len(rows), 2) float32 coordinates."""

    def __init__(
        self,
        method: str = "umap",
        *,
        pca_dim: int = 50,
        fit_sample: int = 20000,
        n_neighbors: int = 15,
        min_dist: float = 0.1,
        random_state: int = 0,
    ):
        self.method = method
        self.pca_dim = pca_dim
        self.fit_sample = fit_sample
        self.n_neighbors = n_neighbors
        self.min_dist = min_dist
        self.random_state = random_state

    def _pca(self, x, rows, sample):
        d = x.shape[1]
        step = _rows_per_chunk(d)
        dim = min(self.pca_dim, d, max(2, len(sample) - 1))
        if len(sample) * d * 4 <= SAMPLE_BYTES:  # the sample fits: the exact (or randomized) SVD in memory
            xs = l2_normalize(x[sample])
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
                yield start, l2_normalize(x[sample[start : start + step]])

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

    def fit_transform(self, x: np.ndarray, rows: np.ndarray | None = None, progress=None) -> np.ndarray:
        if self.method not in MAP_METHODS:
            raise CurateError(f"unknown map method {self.method!r}: use one of {', '.join(MAP_METHODS)}")
        rows = np.arange(len(x)) if rows is None else np.asarray(rows)
        n = len(rows)
        rng = np.random.default_rng(self.random_state)
        sample_pos = np.sort(rng.choice(n, size=min(n, self.fit_sample), replace=False))
        z = self._pca(x, rows, rows[sample_pos])
        if progress:
            progress(1, 3)
        if self.method == "pca" or n < 5:
            out = np.zeros((n, 2), np.float32)
            out[:, : min(2, z.shape[1])] = z[:, :2]
            return out
        try:
            import umap
        except ImportError:  # pragma: no cover
            raise CurateError("the UMAP map needs umap-learn: pip install umap-learn (or use --map pca)") from None
        import warnings

        warnings.filterwarnings("ignore", message="n_jobs value", category=UserWarning)
        reducer = umap.UMAP(
            n_components=2,
            n_neighbors=min(self.n_neighbors, max(2, len(sample_pos) - 1)),
            min_dist=self.min_dist,
            random_state=self.random_state,
            init="spectral" if len(sample_pos) > self.n_neighbors + 2 else "random",
        )
        fitted = reducer.fit_transform(z[sample_pos]).astype(np.float32)
        if progress:
            progress(2, 3)
        out = np.empty((n, 2), np.float32)
        out[sample_pos] = fitted
        rest = np.setdiff1d(np.arange(n), sample_pos)
        if len(rest):
            import faiss

            index = faiss.IndexFlatL2(z.shape[1])
            index.add(np.ascontiguousarray(z[sample_pos]))
            for start in range(0, len(rest), CHUNK):  # z is (n, <= 50): 64k rows are small
                pos = rest[start : start + CHUNK]
                d, nn = index.search(np.ascontiguousarray(z[pos]), 10)
                w = 1.0 / (np.sqrt(np.maximum(d, 0)) + 1e-6)
                w /= w.sum(axis=1, keepdims=True)
                out[pos] = np.einsum("nk,nkd->nd", w, fitted[nn])
        if progress:
            progress(3, 3)
        return out
