#!/usr/bin/env python
"""Benchmark: what one new keep count costs for every strategy x balance (the app's slider, `curate select`).

For each setting: building the :class:`backend.Ranking` once, then ``mask(n)`` for three new keep
counts (median) and for a count already seen (the per-ranking cache of non-prefix settings).  The
baseline, measured in the same run, is ``hard`` without balance: one vectorised comparison per call.
Synthetic table: N examples, 10 labels, 100 clusters, uniform scores.

Usage::

    python benchmarks/bench_select.py --n 100000 1000000
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import pandas as pd

SETTINGS = (
    ("hard", "none"),
    ("hard", "class"),
    ("hard", "class-floor"),
    ("random", "cluster-floor"),
    ("ccs", "none"),
    ("ccs", "class-floor"),
)


def table(n: int) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            "example_id": [f"e{i:07d}" for i in range(n)],
            "label": rng.integers(0, 10, n).astype(str),
            "cluster": rng.integers(0, 100, n),
            "score": rng.random(n),
        }
    )


def main() -> None:
    from backend import Ranking

    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, nargs="+", default=[100_000])
    args = ap.parse_args()
    print(f"cores {len(os.sched_getaffinity(0))}, load {os.getloadavg()[0]:.1f}")
    for n in args.n:
        t = table(n)
        base = None
        for st, bal in SETTINGS:
            t0 = time.perf_counter()
            rk = Ranking(t, strategy=st, metric="score", balance=bal)
            build = time.perf_counter() - t0
            times = []
            for f in (0.30, 0.31, 0.70):
                a = time.perf_counter()
                m = rk.mask(int(f * n))
                times.append(time.perf_counter() - a)
                assert m.sum() == int(f * n)
            a = time.perf_counter()
            rk.mask(int(0.30 * n))
            again = time.perf_counter() - a
            med = float(np.median(times))
            base = med if base is None else base
            print(
                f"N={n:>9,} {st:6s} {bal:13s} build {build:6.2f} s   new count {1000 * med:8.1f} ms "
                f"({med / base:6.1f}x hard/none)   seen count {1000 * again:6.1f} ms"
            )


if __name__ == "__main__":
    main()
