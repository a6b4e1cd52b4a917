"""Perceptual hashes (pHash) of images, and groups of hashes within a small Hamming distance.

The hash is imagehash's ``phash`` (Zauner 2010, as in hackerfactor's "Looks
Like It"): the image in grey, resized to ``4 * hash_size`` square (Lanczos),
its 2-D DCT-II, the top-left ``hash_size x hash_size`` coefficients, one bit per
coefficient: above their median.  It is computed here on batches of images
with one matrix product per batch instead of two ``scipy.fftpack.dct`` calls
per image (the same numbers: the tests compare bit for bit with
``imagehash.phash``), so a million thumbnails hash in minutes.

Grouping never compares all pairs: by the pigeonhole principle two hashes
within Hamming distance ``d`` agree exactly on at least one of ``d + 1``
disjoint bit segments (multi-index hashing, Norouzi et al. 2012), so only
hashes that share a segment value are compared, one bucket offset at a time
(memory O(N) per pass); the segments interleave the bits, which keeps the
buckets small.  Identical hashes are merged first, so a thousand
copies of one image cost one comparison, not a million.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np

HASH_SIZE = 16  # 256 bits: 8 (imagehash's default, 64 bits) is too coarse for 28x28 thumbnails (see the tests)
HIGHFREQ_FACTOR = 4
SMALL_BUCKET = 64  # buckets up to this size are compared offset by offset, larger ones block by block


def _dct_matrix(n: int, rows: int) -> np.ndarray:
    """The first ``rows`` rows of scipy.fftpack's unnormalised DCT-II matrix of size ``n``."""
    k = np.arange(rows)[:, None]
    j = np.arange(n)[None, :]
    return 2.0 * np.cos(np.pi * k * (2 * j + 1) / (2 * n))


def grey_thumbnail(image, *, hash_size: int = HASH_SIZE) -> np.ndarray:
    """The image as imagehash's pHash sees it: grey (PIL's 'L'), ``4 * hash_size`` square, Lanczos."""
    from PIL import Image

    side = hash_size * HIGHFREQ_FACTOR
    return np.asarray(image.convert("L").resize((side, side), Image.Resampling.LANCZOS), dtype=np.float64)


def phash_bits(thumbnails: np.ndarray, *, hash_size: int = HASH_SIZE) -> np.ndarray:
    """pHash bits of a batch of grey thumbnails (B, S, S) -> (B, hash_size**2) bool, row-major like imagehash."""
    t = np.asarray(thumbnails, dtype=np.float64)
    c = _dct_matrix(t.shape[-1], hash_size)
    low = np.einsum("ki,bij,lj->bkl", c, t, c, optimize=True).reshape(len(t), -1)
    return low > np.median(low, axis=1, keepdims=True)


def pack(bits: np.ndarray) -> np.ndarray:
    """(B, nbits) bool -> (B, nbits // 64) uint64 words (big-endian bit order, as imagehash prints them)."""
    packed = np.packbits(np.asarray(bits, bool), axis=1)
    return packed.view(">u8").astype(np.uint64)


def hash_images(
    images: Iterable,
    n: int,
    *,
    hash_size: int = HASH_SIZE,
    batch: int = 1024,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """pHash of ``n`` PIL images (None for an unreadable one).

    Returns (hashes (n, hash_size**2 // 64) uint64, ok (n,) bool, pixels (n,) int64 = width * height).
    Rows that are not ok have an all-zero hash and are never grouped.
    """
    words = max(1, hash_size * hash_size // 64)
    side = hash_size * HIGHFREQ_FACTOR
    hashes = np.zeros((n, words), np.uint64)
    ok = np.zeros(n, bool)
    pixels = np.zeros(n, np.int64)
    buf = np.empty((batch, side, side), np.float64)
    pos: list[int] = []

    def flush():
        if pos:
            hashes[pos] = pack(phash_bits(buf[: len(pos)], hash_size=hash_size))
            pos.clear()

    i = -1
    for i, img in enumerate(images):
        if i >= n:
            break
        if img is not None:
            buf[len(pos)] = grey_thumbnail(img, hash_size=hash_size)
            ok[i] = True
            pixels[i] = img.size[0] * img.size[1]
            pos.append(i)
            if len(pos) == batch:
                flush()
        if progress and (i + 1) % batch == 0:
            progress(i + 1, n)
    flush()
    if progress:
        progress(min(i + 1, n), n)
    return hashes, ok, pixels


def hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Bits that differ between hash rows ``a`` and ``b`` (broadcast over leading axes)."""
    x = np.bitwise_xor(a, b)
    if x.ndim <= 2:  # rows against rows: one reduction with an int64 accumulator (2-3x ``.sum().astype()``)
        return np.add.reduce(np.bitwise_count(x), axis=-1, dtype=np.int64)
    out = np.bitwise_count(x[..., 0]).astype(np.int64)  # a block against a bucket: word by word, 2x the sum
    for w in range(1, x.shape[-1]):
        out += np.bitwise_count(x[..., w])
    return out


def _segments(nbits: int, parts: int) -> list[np.ndarray]:
    """``parts`` disjoint sets of bit positions covering ``nbits`` bits, interleaved (bit i goes to set i % parts).

    Interleaved, not contiguous: neighbouring pHash bits are neighbouring DCT frequencies and agree
    far more often than chance, so contiguous segments make a few huge buckets (5,949 of 60,000
    Fashion-MNIST images shared one, against 258 interleaved: 5.5x fewer pairs to compare).
    """
    return [np.arange(first, nbits, parts) for first in range(min(parts, nbits))]


def _segment_keys(h: np.ndarray, bits: np.ndarray) -> np.ndarray:
    """The bits at positions ``bits`` (at most 64) of every hash row, as one integer per row."""
    out = np.zeros(len(h), np.uint64)
    for bit in bits:  # bit by bit: simple and cheap (len(bits) * N operations)
        word, off = divmod(int(bit), 64)
        out = (out << np.uint64(1)) | ((h[:, word] >> np.uint64(63 - off)) & np.uint64(1))
    return out


def close_pairs(hashes: np.ndarray, max_distance: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every pair (i < j) of *distinct* hash rows within ``max_distance`` bits, and its distance.

    Multi-index hashing: ``max_distance + 1`` segments; pairs that share a
    segment value are compared -- small buckets offset by offset, all at once,
    large ones in blocks of rows -- so memory is O(N) plus one block and the
    work is the number of same-bucket pairs.
    """
    h = np.ascontiguousarray(hashes, np.uint64)
    n, words = h.shape
    found_i: list[np.ndarray] = []
    found_j: list[np.ndarray] = []
    found_d: list[np.ndarray] = []
    for bits in _segments(64 * words, max_distance + 1):
        key = _segment_keys(h, bits)
        order = np.argsort(key, kind="stable")
        k = key[order]
        starts = np.flatnonzero(np.r_[True, k[1:] != k[:-1]])
        sizes = np.diff(np.r_[starts, n])
        size_at = np.repeat(sizes, sizes)
        rank = np.arange(n) - np.repeat(starts, sizes)
        found = (found_i, found_j, found_d)
        # small buckets: all at once, one bucket offset per pass (at most SMALL_BUCKET - 1 passes), on the
        # hashes in bucket order so that each pass reads memory in sequence
        hs = h[order]
        small = size_at <= SMALL_BUCKET
        active = np.flatnonzero((rank < size_at - 1) & small)
        off = 1
        while len(active):
            d = hamming(hs[active], hs[active + off])
            close = d <= max_distance
            if close.any():
                a, b = order[active[close]], order[active[close] + off]
                found[0].append(np.minimum(a, b))
                found[1].append(np.maximum(a, b))
                found[2].append(d[close])
            off += 1
            active = active[rank[active] + off < size_at[active]]
        del hs
        # large buckets (few): each one's pairs in blocks of rows, ~2M comparisons per block
        for start, size in zip(starts[sizes > SMALL_BUCKET], sizes[sizes > SMALL_BUCKET]):
            members = order[start : start + size]
            hm = h[members]
            block = max(1, (2 << 20) // int(size))
            for r0 in range(0, int(size) - 1, block):
                rows = np.arange(r0, min(r0 + block, int(size)))
                d = hamming(hm[rows, None, :], hm[None, :, :])
                ri, ci = np.nonzero((d <= max_distance) & (np.arange(int(size))[None, :] > rows[:, None]))
                if len(ri):
                    a, b = members[rows[ri]], members[ci]
                    found_i.append(np.minimum(a, b))
                    found_j.append(np.maximum(a, b))
                    found_d.append(d[ri, ci])
    if not found_i:
        empty = np.zeros(0, np.int64)
        return empty, empty, empty
    i, j, d = np.concatenate(found_i), np.concatenate(found_j), np.concatenate(found_d)
    pair = np.unique(i * n + j, return_index=True)[1]  # a pair sharing several segments is found once per segment
    return i[pair], j[pair], d[pair]


def group_hashes(hashes: np.ndarray, ok: np.ndarray, max_distance: int) -> np.ndarray:
    """Connected groups of usable hashes within ``max_distance`` bits of another member: (N,) int64, -1 = alone.

    Groups are numbered 0..G-1 in order of their first member.  Chains
    (a ~ b ~ c with a, c farther apart) join one group, as in every
    threshold-graph grouping; :func:`backend.dedup.copies.CopyGroups` reports
    each member's distance to the kept one.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    n = len(hashes)
    usable = np.flatnonzero(ok)
    group = np.full(n, -1, np.int64)
    if len(usable) < 2:
        return group
    uniq, inverse = np.unique(hashes[usable], axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    i, j, _ = close_pairs(uniq, max_distance) if max_distance > 0 else (np.zeros(0, int),) * 3
    m = len(uniq)
    graph = coo_matrix((np.ones(len(i), np.int8), (i, j)), shape=(m, m))
    _, comp = connected_components(graph, directed=False)
    label = comp[inverse]  # the component of each usable row (identical hashes share one)
    counts = np.bincount(label)
    member = counts[label] > 1
    rows = usable[member]
    _, first_pos, numbered = np.unique(label[member], return_index=True, return_inverse=True)
    # renumber by first member (table order), so group ids do not depend on hash values
    rank = np.empty(len(first_pos), np.int64)
    rank[np.argsort(rows[first_pos], kind="stable")] = np.arange(len(first_pos))
    group[rows] = rank[numbered.reshape(-1)]
    return group
