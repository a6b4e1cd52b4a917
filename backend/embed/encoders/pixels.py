"""``pixels``: resize, flatten, PCA fitted on the pool.  Needs no weights (the demo and the tests run offline)."""

from __future__ import annotations

import numpy as np

from ...arrays import release_pages
from .base import register_encoder


class PixelsEncoder:
    """Resize to ``size`` x ``size`` RGB, flatten (uint8), then PCA to ``pca_dim``."""

    name = "pixels"
    raw_dtype = np.uint8

    def __init__(self, size: int = 32, pca_dim: int = 128):
        self.size = int(size)
        self.pca_dim = int(pca_dim)
        self.raw_dim = 3 * self.size * self.size
        self.identity = {
            "encoder": "pixels",
            "size": self.size,
            "pca_dim": self.pca_dim,
            "preprocess": "bilinear-resize,rgb,uint8",
        }

    def preprocess(self, img):
        import torch
        from PIL import Image

        img = img.resize((self.size, self.size), Image.BILINEAR)
        return torch.from_numpy(np.asarray(img, dtype=np.uint8).reshape(-1).copy())

    def empty(self):
        import torch

        return torch.zeros(self.raw_dim, dtype=torch.uint8)

    def forward(self, batch):
        return batch  # raw pixels; PCA happens after the pass (see fit_transform)

    def to(self, device):
        return self

    # PCA is fitted on a sample of the pool, then applied in chunks.
    def fit_transform(
        self, raw: np.ndarray, fit_rows: np.ndarray, out: np.ndarray, *, seed: int = 0, progress=None
    ) -> dict:
        rng = np.random.default_rng(seed)
        sample = np.sort(rng.choice(fit_rows, size=min(len(fit_rows), 20000), replace=False))
        from ...projection.map2d import read_rows  # a scattered read that does not map the whole file

        x = read_rows(raw, sample).astype(np.float32)
        x /= np.float32(255.0)  # as `astype(float32) / 255.0` did, in place: the same numbers
        mean = x.mean(axis=0)
        dim = min(self.pca_dim, x.shape[0], x.shape[1])
        # randomized SVD of the centred sample: a full SVD of 20k x 3072 takes minutes on 2 cores
        from sklearn.utils.extmath import randomized_svd

        x -= mean  # in place: a second 20k x 3072 copy would be another 250 MB
        _, s, vt = randomized_svd(x, n_components=dim, n_iter=4, random_state=seed)
        comps = vt.astype(np.float32)
        explained = float((s**2).sum() / max(float(np.einsum("ij,ij->", x, x)), 1e-12))
        del x
        # about 64 MB of float32 per chunk whatever the image size (65,536 rows of 3,072 were 800 MB per copy)
        step = max(1024, (64 << 20) // (4 * max(1, raw.shape[1])))
        for start in range(0, len(raw), step):
            end = min(start + step, len(raw))
            chunk = raw[start:end].astype(np.float32)
            chunk /= np.float32(255.0)
            chunk -= mean
            out[start:end, :dim] = chunk @ comps.T
            # both files' pages leave the resident set once used (1M x 3072 raw pixels are 3 GB)
            release_pages(raw, start, end)
            release_pages(out, start, end)  # a shared map's dirty pages stay in the page cache: nothing is lost
            if progress:
                progress(end, len(raw))
        return {"pca_mean": mean, "pca_components": comps, "explained_variance": explained, "dim": dim}


@register_encoder(
    "pixels",
    family="pixels",
    priority=0,
    description="resize to 32x32, flatten, PCA to 128 dimensions; needs no weights",
)
def make_pixels(name, *, weights=None, image_size=None, pca_dim=128):
    return PixelsEncoder(size=image_size or 32, pca_dim=pca_dim)
