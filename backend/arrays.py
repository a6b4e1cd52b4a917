"""Array helpers shared by every stage: row normalisation and chunked iteration over big arrays."""

from __future__ import annotations

import ctypes
import os
import sys
from collections.abc import Iterator

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


_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
_libc = None


def release_pages(x, lo: int, hi: int) -> None:
    """Drop rows [lo, hi) of a memory-mapped array from this process's resident set (Linux).

    Call it after reading a chunk of a big ``np.load(..., mmap_mode="r")`` array:
    the pages stay in the page cache (the next read is a minor fault, nothing is
    read from disk again) but no longer count towards the process's RSS, which
    otherwise grows by the whole file (2 GB for 1M x 512 float32) on one pass.
    Only for ``np.memmap`` in a shared mode ("r", "r+", "w+"); copy-on-write maps
    ("c") and in-memory arrays are left alone.  Never raises.
    """
    global _libc
    if hi <= lo or not sys.platform.startswith("linux") or not isinstance(x, np.memmap):
        return
    if getattr(x, "mode", None) not in ("r", "r+", "w+") or x.ndim != 2 or x.strides[1] != x.itemsize:
        return
    try:
        if _libc is None:
            _libc = ctypes.CDLL(None, use_errno=True)
            _libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
        base = x.ctypes.data
        start = base + lo * x.strides[0]
        stop = base + hi * x.strides[0]
        start = -(-start // _PAGE) * _PAGE  # whole pages inside the rows only
        stop = stop // _PAGE * _PAGE
        if stop > start:
            _libc.madvise(ctypes.c_void_p(start), ctypes.c_size_t(stop - start), 4)  # MADV_DONTNEED
    except Exception:  # noqa: BLE001 - an optimisation, never an error
        pass
