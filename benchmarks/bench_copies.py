#!/usr/bin/env python
"""Benchmark: exact near-copies (perceptual hash) at 1,000,000 examples: hashing throughput, grouping time and
memory, against brute force in the same run.

1. **Hashing**: ``backend.dedup.phash.hash_images`` on ``--hash-images`` real Fashion-MNIST images (images/s).
2. **Grouping at N** (default 1,000,000): hash rows made from the 70,000 real Fashion-MNIST pHashes, so the
   bit correlations of real pHashes (which make multi-index-hashing buckets uneven) are there: each row is a
   real hash with 24-60 random bits flipped (not a copy of anything: farther than the threshold from its
   original), and ``--copy-share`` of the rows are planted copies of an earlier row with 0-``max_distance``
   bits flipped.  ``group_hashes`` runs in a child process: wall time and the child's peak RSS; recall of the
   planted copies.
3. **Baseline, same run**: all pairs by brute force (``hamming`` on every pair, blocked) on the first
   ``--brute-n`` rows against ``close_pairs`` on the same rows: identical pairs, and the time ratio.

Usage::

    python benchmarks/bench_copies.py                      # 1M rows, ~2-4 minutes on 2 cores
    python benchmarks/bench_copies.py --n 200000 --quick   # a smaller check
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _loadavg() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


def real_hashes(n_images: int | None = None) -> tuple[np.ndarray, float]:
    """pHashes of the demo's images (train + test), and the images/s of hashing them."""
    from backend.dedup.phash import hash_images
    from backend.sources.arrays import load_demo

    src = load_demo(allow_download=False)
    n = len(src.index) if n_images is None else min(n_images, len(src.index))
    t0 = time.perf_counter()
    h, ok, _ = hash_images((src.load_image(i) for i in range(n)), n)
    rate = n / (time.perf_counter() - t0)
    return h[ok], rate


def synthetic(base: np.ndarray, n: int, copy_share: float, max_distance: int, seed: int):
    """``n`` rows derived from the real hashes ``base`` (see the module docstring); returns (hashes, planted
    pairs (copy row, original row))."""
    rng = np.random.default_rng(seed)
    words = base.shape[1]
    nbits = 64 * words
    out = base[rng.integers(0, len(base), n)].copy()

    def flip(rows: np.ndarray, counts: np.ndarray) -> None:
        """Flip ``counts[r]`` random bits of each row (drawn with replacement: a bit drawn twice flips back,
        so a row may differ in a few bits fewer)."""
        for c in range(int(counts.max(initial=0))):
            r = rows[counts > c]
            bit = rng.integers(0, nbits, len(r))
            word, off = bit // 64, (63 - bit % 64).astype(np.uint64)
            out[r, word] ^= np.left_shift(np.uint64(1), off)

    flip(np.arange(n), rng.integers(24, 61, n))  # far from the original: not copies
    n_copy = int(copy_share * n)
    copies = rng.choice(np.arange(1, n), n_copy, replace=False)
    # an earlier row that is not a copy itself (a copy of a copy would be overwritten after it was read)
    plain = np.setdiff1d(np.arange(n), copies)
    before = np.searchsorted(plain, copies)  # plain rows earlier than each copy (>= 1: row 0 is never a copy)
    originals = plain[(rng.random(n_copy) * before).astype(np.int64)]
    out[copies] = out[originals]
    flip(copies, rng.integers(0, max_distance + 1, n_copy))
    return out, np.stack([copies, originals], 1)


def _child(data: str, max_distance: int, result: str) -> None:
    from backend.dedup.phash import group_hashes

    h = np.load(data)
    t0 = time.perf_counter()
    group = group_hashes(h, np.ones(len(h), bool), max_distance)
    wall = time.perf_counter() - t0
    np.save(result + ".npy", group)
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    Path(result).write_text(json.dumps({"wall_s": round(wall, 2), "peak_rss_gb": round(peak_gb, 3)}))


def brute_pairs(h: np.ndarray, max_distance: int) -> set[tuple[int, int]]:
    from backend.dedup.phash import hamming

    out: set[tuple[int, int]] = set()
    block = max(1, (4 << 20) // len(h))
    for r0 in range(0, len(h), block):
        rows = np.arange(r0, min(r0 + block, len(h)))
        d = hamming(h[rows, None, :], h[None, :, :])
        ri, ci = np.nonzero((d <= max_distance) & (np.arange(len(h))[None, :] > rows[:, None]))
        out.update(zip(rows[ri].tolist(), ci.tolist()))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--max-distance", type=int, default=20)
    ap.add_argument("--copy-share", type=float, default=0.005)
    ap.add_argument("--hash-images", type=int, default=None, help="real images hashed (default: all 70,000)")
    ap.add_argument("--brute-n", type=int, default=20_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quick", action="store_true", help="hash 5,000 images, brute force on 5,000 rows")
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "copies.json"))
    ap.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        _child(args.child[0], int(args.child[1]), args.child[2])
        return 0
    if args.quick:
        args.hash_images, args.brute_n = args.hash_images or 5000, min(args.brute_n, 5000)
    res: dict = {"benchmark": "benchmarks/bench_copies.py", "argv": sys.argv[1:], "loadavg_start": _loadavg()}
    res["machine"] = {"cpus": os.cpu_count(), "platform": platform.platform()}

    base, rate = real_hashes(args.hash_images)
    res["hashing"] = {"images": len(base), "images_per_s": round(rate, 1), "what": "Fashion-MNIST 28x28, PIL"}
    print(f"hashing: {len(base):,} real images at {rate:,.0f} images/s", flush=True)
    if args.hash_images is not None and len(base) < 70_000:
        base = real_hashes(None)[0]  # the grouping data always derives from all 70,000 real hashes

    t0 = time.perf_counter()
    h, planted = synthetic(base, args.n, args.copy_share, args.max_distance, args.seed)
    res["data"] = {
        "n": args.n,
        "from_real_hashes": len(base),
        "planted_copies": len(planted),
        "max_distance": args.max_distance,
        "generate_s": round(time.perf_counter() - t0, 1),
    }
    with tempfile.TemporaryDirectory() as tmp:
        data, result = f"{tmp}/h.npy", f"{tmp}/r.json"
        np.save(data, h)
        subprocess.run([sys.executable, __file__, "--child", data, str(args.max_distance), result], check=True)
        g = json.loads(Path(result).read_text())
        group = np.load(result + ".npy")
    found = (group[planted[:, 0]] >= 0) & (group[planted[:, 0]] == group[planted[:, 1]])
    g.update(
        {
            "recall_planted": round(float(found.mean()), 4),
            "rows_in_groups": int((group >= 0).sum()),
            "groups": int(group.max() + 1),
        }
    )
    res["grouping"] = g
    print(f"grouping {args.n:,} rows: {g}", flush=True)

    from backend.dedup.phash import close_pairs

    sub = h[: args.brute_n]
    t0 = time.perf_counter()
    i, j, _ = close_pairs(sub, args.max_distance)
    ours_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    brute = brute_pairs(sub, args.max_distance)
    brute_s = time.perf_counter() - t0
    same = set(zip(i.tolist(), j.tolist())) == brute
    res["baseline"] = {
        "rows": len(sub),
        "ours_close_pairs_s": round(ours_s, 3),
        "brute_force_s": round(brute_s, 3),
        "brute_over_ours": round(brute_s / max(ours_s, 1e-9), 1),
        "identical_pairs": bool(same),
        "pairs": len(brute),
    }
    print(f"baseline on {len(sub):,} rows: {res['baseline']}", flush=True)
    res["loadavg_end"] = _loadavg()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2) + "\n")
    print(f"wrote {out}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
