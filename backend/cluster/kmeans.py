"""Spherical k-means on L2-normalised embeddings (faiss; torch on CUDA).

Vocabulary: N examples, D dimensions, K clusters.  On unit vectors cosine and
Euclidean rankings agree, so "distance to the nearest centroid" is reported as
cosine similarity ``sim`` (in [-1, 1]) and the SSP difficulty is ``1 - sim``.

Training uses a uniform sample of at most ``max_train_points`` rows (and at
least 40 per centroid when N allows): the centroids are as good and the fit
costs a fixed amount on 1.3M images.  Every row is then assigned in chunks, so
no full normalised copy of the embeddings is held in memory.
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import CurateError

CHUNK = 65536


def default_k(n: int, n_classes: int | None) -> int:
    """K = number of classes when labels exist, else ``round(sqrt(N / 2))`` in [2, 1000]."""
    if n_classes and n_classes >= 2:
        return int(min(n_classes, n))
    return int(min(n, max(2, min(1000, round(math.sqrt(n / 2))))))


def l2_normalize(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


def _iter_chunks(x, rows):
    for start in range(0, len(rows), CHUNK):
        idx = rows[start:start + CHUNK]
        yield start, l2_normalize(x[idx] if not _is_range(idx) else x[idx[0]:idx[-1] + 1])


def _is_range(idx) -> bool:
    return len(idx) > 0 and idx[-1] - idx[0] + 1 == len(idx)


class SphericalKMeans:
    """scikit-learn style: ``__init__`` stores hyper-parameters, ``fit`` learns ``centroids_``.

    Parameters
    ----------
    n_clusters : K.
    n_iter : Lloyd iterations (faiss ``niter``).
    max_train_points : rows sampled for training (all rows when N is smaller).
    random_state : seed for the sample and the initialisation.
    device : ``"cpu"`` (faiss) or ``"cuda"`` (faiss-gpu if present, else torch).
    """

    def __init__(self, n_clusters: int, *, n_iter: int = 20, max_train_points: int = 131072,
                 random_state: int = 0, device: str = "cpu"):
        self.n_clusters = n_clusters
        self.n_iter = n_iter
        self.max_train_points = max_train_points
        self.random_state = random_state
        self.device = device

    def fit(self, x: np.ndarray, rows: np.ndarray | None = None) -> "SphericalKMeans":
        rows = np.arange(len(x)) if rows is None else np.asarray(rows)
        k = int(self.n_clusters)
        if k < 1:
            raise CurateError(f"--k must be at least 1 (got {k})")
        if len(rows) < k:
            raise CurateError(f"{len(rows)} examples is fewer than k={k} clusters: pass --k {max(1, len(rows))} or less")
        rng = np.random.default_rng(self.random_state)
        n_train = min(len(rows), max(self.max_train_points, 40 * k))
        train_rows = np.sort(rng.choice(rows, size=n_train, replace=False)) if n_train < len(rows) else rows
        xt = l2_normalize(x[train_rows])
        if self.device.startswith("cuda"):
            self.centroids_ = _torch_kmeans(xt, k, self.n_iter, self.random_state, self.device)
        else:
            import faiss

            km = faiss.Kmeans(xt.shape[1], k, niter=self.n_iter, spherical=True,
                              seed=int(self.random_state) + 1, max_points_per_centroid=10**9,
                              min_points_per_centroid=1, verbose=False)
            km.train(xt)
            self.centroids_ = l2_normalize(km.centroids)
        self.n_train_ = n_train
        return self

    def predict(self, x: np.ndarray, rows: np.ndarray | None = None):
        """(cluster id int32, cosine similarity to it float32) for each row."""
        return nearest_centroid(x, self.centroids_, rows, device=self.device)


def nearest_centroid(x, centroids, rows=None, *, device: str = "cpu", progress=None):
    rows = np.arange(len(x)) if rows is None else np.asarray(rows)
    assign = np.empty(len(rows), np.int32)
    sim = np.empty(len(rows), np.float32)
    c = l2_normalize(centroids)
    if device.startswith("cuda"):
        import torch

        ct = torch.from_numpy(c).to(device)
        for start, xc in _iter_chunks(x, rows):
            s, a = (torch.from_numpy(xc).to(device) @ ct.T).max(dim=1)
            assign[start:start + len(xc)] = a.cpu().numpy()
            sim[start:start + len(xc)] = s.cpu().numpy()
    else:
        import faiss

        index = faiss.IndexFlatIP(c.shape[1])
        index.add(c)
        for start, xc in _iter_chunks(x, rows):
            s, a = index.search(xc, 1)
            assign[start:start + len(xc)] = a[:, 0]
            sim[start:start + len(xc)] = s[:, 0]
            if progress:
                progress(start + len(xc), len(rows))
    return assign, np.clip(sim, -1.0, 1.0)


def _torch_kmeans(x: np.ndarray, k: int, n_iter: int, seed: int, device: str) -> np.ndarray:
    import torch

    g = torch.Generator(device="cpu").manual_seed(seed)
    xt = torch.from_numpy(x).to(device)
    cent = xt[torch.randperm(len(xt), generator=g)[:k].to(device)].clone()
    for _ in range(n_iter):
        assign = torch.cat([(xt[s:s + CHUNK] @ cent.T).argmax(1) for s in range(0, len(xt), CHUNK)])
        sums = torch.zeros_like(cent).index_add_(0, assign, xt)
        counts = torch.bincount(assign, minlength=k)
        empty = counts == 0
        sums[empty] = xt[torch.randint(len(xt), (int(empty.sum()),), generator=g).to(device)]
        cent = torch.nn.functional.normalize(sums, dim=1)
    return cent.float().cpu().numpy()
