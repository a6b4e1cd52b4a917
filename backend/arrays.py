"""Array helpers shared by every stage: row normalisation and chunked iteration over big arrays."""

from __future__ import annotations

from typing import Iterator

import numpy as np

# rows per chunk when streaming a (memory-mapped) N x D array: 64k x 512 float32 = 128 MB
CHUNK = 65536


def l2_normalize(x: np.ndarray) -> np.ndarray:
    """A new float32 array with unit rows (zero rows stay zero)."""
    out = np.array(x, dtype=np.float32, order="C", copy=True)
    normalize_inplace(out)
    return out


def normalize_inplace(x: np.ndarray) -> np.ndarray:
    """Scale the rows of float ``x`` to unit length in place (zero rows stay zero); returns ``x``."""
    norms = np.sqrt(np.einsum("ij,ij->i", x, x))
    x /= np.maximum(norms, 1e-12)[:, None]
    return x


def chunks(n: int, size: int = CHUNK) -> Iterator[slice]:
    """Slices covering ``range(n)`` in steps of ``size``."""
    for start in range(0, n, size):
        yield slice(start, min(n, start + size))
