"""Exact nearest-neighbour search inside every k-means cluster, in bounded memory.

For every example (one row of ``rows``) this finds, among the other members
of its cluster:

``max_sim``      the largest cosine similarity to any other member (-1 when it is alone
                 in its cluster: nothing is similar to it);
``earlier_sim``  the largest cosine similarity to a member *earlier in SemDeDup's order*
                 (-inf for the first member of a cluster);
``parent``       the position (into ``rows``) of that earlier member (-1 for the first).

SemDeDup's order (Abbas et al. 2023, and its reference implementation): the
members of a cluster sorted by similarity to their centroid, *least similar
first* (ties by example id).  Example j is a duplicate at threshold t when
``earlier_sim[j] > t``: it is removed because an example that comes before
it (so is kept in preference) is that similar.  Neither the order nor
``earlier_sim`` depends on t, so one pass serves every threshold.

Memory is bounded: clusters are processed in *waves* of consecutive clusters
holding about ``wave_rows`` rows (a cluster larger than that is a wave of its
own: its rows must be in memory together), each wave's rows are gathered
from the (memory-mapped) embeddings, normalised, and their mapped pages
released; the similarity matrix of a cluster is computed ``ROW_BLOCK`` rows at a
time against the rows before them (at most ``ROW_BLOCK x cluster size``
floats), never N x N, and only its lower half.  Work: the sum over
clusters of ``size^2 * D / 2`` multiply-adds, i.e. about ``N^2 D / (2K)`` for
equal clusters (2.6e11 for 1M x 512, K = 1000).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import sys
from dataclasses import dataclass

import numpy as np
import pandas as pd

WAVE_ROWS = 131072  # rows gathered at once (256 MB at D = 512)
BLOCK_BYTES = 64 << 20  # at most this much of the similarity matrix at once
ROW_BLOCK = 256  # rows per block (the masked diagonal block is ROW_BLOCK^2)
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


@dataclass
class NeighbourArrays:
    """The search's output, aligned with ``rows`` (see the module docstring)."""

    max_sim: np.ndarray  # float32
    earlier_sim: np.ndarray  # float32
    parent: np.ndarray  # int64, -1 = none
    order: np.ndarray  # int64: positions in SemDeDup's order (cluster by cluster)


def semdedup_order(cluster: np.ndarray, centroid_sim: np.ndarray, example_ids) -> np.ndarray:
    """Positions sorted by cluster, then similarity to the centroid ascending, then example id."""
    id_rank = pd.factorize(pd.Series(np.asarray(example_ids)).astype(str), sort=True)[0]
    return np.lexsort((id_rank, np.asarray(centroid_sim, np.float64), np.asarray(cluster))).astype(np.int64)


def within_cluster_neighbours(
    embeddings,
    rows,
    cluster,
    centroid_sim,
    example_ids,
    *,
    device: str = "cpu",
    wave_rows: int = WAVE_ROWS,
    progress=None,
) -> NeighbourArrays:
    """Exact within-cluster search (see the module docstring); ``progress(done, total)`` per cluster."""
    import torch

    rows = np.asarray(rows, np.int64)
    cluster = np.asarray(cluster, np.int64)
    n = len(rows)
    order = semdedup_order(cluster, centroid_sim, example_ids)
    sorted_cluster = cluster[order]
    starts = np.flatnonzero(np.r_[True, sorted_cluster[1:] != sorted_cluster[:-1]]) if n else np.zeros(0, np.int64)
    ends = np.r_[starts[1:], n].astype(np.int64)
    max_sim = np.full(n, -1.0, np.float32)
    earlier_sim = np.full(n, -np.inf, np.float32)
    parent = np.full(n, -1, np.int64)
    dev = torch.device(device)
    with _torch_threads(device):
        _search_waves(embeddings, rows, order, starts, ends, wave_rows, dev, max_sim, earlier_sim, parent, progress)
    # back from SemDeDup's order to the positions of ``rows``
    out_max = np.empty_like(max_sim)
    out_earlier = np.empty_like(earlier_sim)
    out_parent = np.empty_like(parent)
    out_max[order] = max_sim
    out_earlier[order] = earlier_sim
    out_parent[order] = np.where(parent >= 0, order[np.maximum(parent, 0)], -1)
    return NeighbourArrays(max_sim=out_max, earlier_sim=out_earlier, parent=out_parent, order=order)


def _search_waves(embeddings, rows, order, starts, ends, wave_rows, dev, max_sim, earlier_sim, parent, progress):
    import torch

    n = len(rows)
    done = 0
    ci = 0
    while ci < len(starts):
        cj = ci + 1  # clusters [ci, cj) form this wave
        while cj < len(starts) and ends[cj] - starts[ci] <= wave_rows:
            cj += 1
        lo, hi = int(starts[ci]), int(ends[cj - 1])
        x = torch.from_numpy(_gather_normalised(embeddings, rows[order[lo:hi]])).to(dev)
        for c in range(ci, cj):
            a, b = int(starts[c]) - lo, int(ends[c]) - lo
            if b - a > 1:
                ms, es, par = _one_cluster(x[a:b])
                max_sim[lo + a : lo + b] = ms
                earlier_sim[lo + a : lo + b] = es
                par = np.where(par >= 0, par + lo + a, -1)
                parent[lo + a : lo + b] = par
            done += b - a
            if progress is not None:
                progress(done, n)
        del x
        ci = cj


@contextlib.contextmanager
def _torch_threads(device: str):
    """All CPU threads, or one when the machine is already busier than its cores.

    The blocks are small GEMMs; with several OpenMP threads on oversubscribed
    cores they spend most of their time at barriers (measured 3-4x slower
    than one thread at load 8 on 2 cores).  ``CURATE_DEDUP_THREADS=N``
    overrides the choice.
    """
    import torch

    before = torch.get_num_threads()
    n = before
    env = os.environ.get("CURATE_DEDUP_THREADS")
    if env:
        n = max(1, int(env))
    elif not str(device).startswith("cuda"):
        try:
            if os.getloadavg()[0] > len(os.sched_getaffinity(0)) + 0.5:
                n = 1
        except (AttributeError, OSError):
            pass
    torch.set_num_threads(n)
    try:
        yield n
    finally:
        torch.set_num_threads(before)


def _one_cluster(x):
    """(max_sim, earlier_sim, parent index within the cluster or -1) for the unit rows ``x`` of one cluster.

    Symmetry halves the work: row block [r0, r1) is multiplied only with rows
    [0, r1) (itself and everything earlier).  Its row-wise maximum over those
    columns (strictly earlier ones inside the diagonal block) is the block's
    ``earlier_sim``/``parent``; its column-wise maximum is, for the earlier
    rows, the best *later* partner seen so far.  ``max_sim`` is the larger of
    the two.  Only a B x B triangle is ever masked.  On a CPU the reductions
    run in numpy on the product's memory (single-threaded numpy reductions are
    several times faster than torch's on small blocks); on CUDA in torch.
    """
    import torch

    m = x.shape[0]
    block = max(1, min(ROW_BLOCK, m, BLOCK_BYTES // (4 * m)))
    on_cpu = x.device.type == "cpu"
    lib = np if on_cpu else torch
    later = np.full(m, -np.inf, np.float32) if on_cpu else torch.full((m,), float("-inf"), device=x.device)
    earlier = np.empty(m, np.float32) if on_cpu else torch.empty(m, device=x.device)
    parent = np.empty(m, np.int64) if on_cpu else torch.empty(m, dtype=torch.int64, device=x.device)
    buf = torch.empty(block * m, dtype=torch.float32, device=x.device)
    tri = np.triu(np.ones((block, block), bool))  # j >= i: not an earlier partner
    tri = tri if on_cpu else torch.from_numpy(tri).to(x.device)
    for r0 in range(0, m, block):
        r1 = min(m, r0 + block)
        b = r1 - r0
        st = buf[: b * r1].view(b, r1)
        torch.mm(x[r0:r1], x[:r1].T, out=st)
        s = st.numpy() if on_cpu else st
        if on_cpu:
            s[:, r0:r1][tri[:b, :b]] = -np.inf  # keep only strictly earlier partners inside the block
            i = s.argmax(axis=1)
            earlier[r0:r1] = s[np.arange(b), i]
        else:
            s[:, r0:r1].masked_fill_(tri[:b, :b], float("-inf"))
            v, i = s.max(dim=1)
            earlier[r0:r1] = v
        parent[r0:r1] = i
        # column maxima: the best later partner of every earlier row (and, in the block, of its own rows)
        lib.maximum(later[:r1], s.max(axis=0) if on_cpu else s.amax(dim=0), out=later[:r1])
    if not on_cpu:
        later, earlier, parent = later.cpu().numpy(), earlier.cpu().numpy(), parent.cpu().numpy()
    max_sim = np.clip(np.maximum(earlier, later), -1.0, 1.0)
    first = ~np.isfinite(earlier)
    parent[first] = -1
    earlier = np.where(first, -np.inf, np.clip(earlier, -1.0, 1.0)).astype(np.float32)
    return max_sim, earlier, parent


def _gather_normalised(x, idx: np.ndarray, piece: int = 8192) -> np.ndarray:
    """Rows ``idx`` of ``x`` as unit float32 rows, in the order of ``idx``.

    The rows are read in file order, ``piece`` at a time, and the mapped pages
    of each piece are released right after it (a piece of sorted indices
    spans one stretch of the file, which the kernel's read-ahead pulls in
    whole): the resident size grows by about one stretch, not by the file.
    """
    buf = np.empty((len(idx), x.shape[1]), np.float32)
    if len(idx) == 0:
        return buf
    srt = np.argsort(idx, kind="stable")
    sorted_idx = idx[srt]
    for a in range(0, len(idx), piece):
        part = sorted_idx[a : a + piece]
        buf[srt[a : a + piece]] = x[part]
        _release_pages(x, int(part[0]), int(part[-1]) + 1)
    norms = np.sqrt(np.einsum("ij,ij->i", buf, buf))
    buf /= np.maximum(norms, 1e-12)[:, None]
    return buf


_libc = None


def _release_pages(x, lo: int, hi: int) -> None:
    """Drop rows [lo, hi) of a shared read-only file mapping from the resident set (they stay in the page cache).

    Without this, reading a 2 GB memory-mapped file once would leave 2 GB
    resident in this process although every row is needed only once.
    """
    global _libc
    if hi <= lo or not sys.platform.startswith("linux") or not isinstance(x, np.memmap):
        return
    if getattr(x, "mode", None) not in ("r", "r+", "w+") or x.ndim != 2 or not x.flags.c_contiguous:
        return
    try:
        if _libc is None:
            _libc = ctypes.CDLL(None, use_errno=True)
            _libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
        base = x.ctypes.data
        row = x.strides[0]
        start = (base + lo * row) // _PAGE * _PAGE
        stop = base + hi * row
        _libc.madvise(ctypes.c_void_p(start), ctypes.c_size_t(stop - start), 4)  # MADV_DONTNEED
    except (OSError, AttributeError):  # not fatal: only the resident size grows
        pass
