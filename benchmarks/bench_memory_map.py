"""Peak memory of the 2-D map (PCA) on very wide embeddings: streaming SVD vs the in-memory sample.

Writes N x D float32 random low-rank embeddings to a memory-mapped .npy in a
temporary folder, then runs ``Projector2D("pca").fit_transform`` in a fresh
child process per case and reads its peak RSS (``ru_maxrss``, which counts the
memory-mapped input's pages) and its peak anonymous memory (``RssAnon``, sampled
every 20 ms: what the computation itself allocates).  The baseline
is the in-memory path (the whole PCA sample copied, normalised and centred),
measured in the same run at a smaller D, where it is safe on a 23 GB machine;
the headline case is the issue's 5,000 x 100,000.

    python benchmarks/bench_memory_map.py            # 5000 x 100000 streaming, 5000 x 20000 both ways
    python benchmarks/bench_memory_map.py --quick    # 2000 x 20000
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CHILD = r"""
import resource, sys, threading, time, numpy as np
sys.path.insert(0, {root!r})
peak_anon = [0]
def watch():  # anonymous memory only: the memory-mapped input's pages count in RSS but are page cache
    while True:
        for line in open("/proc/self/status"):
            if line.startswith("RssAnon:"):
                peak_anon[0] = max(peak_anon[0], int(line.split()[1]) * 1024)
        time.sleep(0.02)
threading.Thread(target=watch, daemon=True).start()
import backend.projection.map2d as m
if {in_memory}:
    m.SAMPLE_BYTES = 1 << 62  # force the in-memory sample (the path before streaming)
x = np.load({path!r}, mmap_mode="r")
t = time.perf_counter()
out = m.Projector2D("pca", random_state=0).fit_transform(x)
print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, peak_anon[0],
      float(out[:, 0].std()))
"""


def make(path: Path, n: int, d: int) -> None:
    import numpy as np

    rng = np.random.default_rng(0)
    x = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n, d))
    basis = rng.standard_normal((32, d)).astype(np.float32)
    for start in range(0, n, 256):
        k = min(256, n - start)
        x[start : start + k] = rng.standard_normal((k, 32)).astype(np.float32) @ basis
    x.flush()
    del x


def run_case(path: Path, in_memory: bool) -> dict:
    code = CHILD.format(root=str(ROOT), path=str(path), in_memory=in_memory)
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    wall, rss, anon, spread = res.stdout.split()
    return {
        "wall_s": round(float(wall), 2),
        "peak_rss_gb": round(int(rss) / 1e9, 3),
        "peak_anon_gb": round(int(anon) / 1e9, 3),
        "map_x_std": float(spread),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    cases = [(2000, 20000)] if args.quick else [(5000, 20000), (5000, 100000)]
    results = {"command": " ".join(sys.argv), "load_before": os.getloadavg(), "cases": []}
    with tempfile.TemporaryDirectory(dir=os.environ.get("TMPDIR")) as tmp:
        for n, d in cases:
            path = Path(tmp) / f"emb_{n}x{d}.npy"
            make(path, n, d)
            row = {"n": n, "d": d, "input_gb": round(n * d * 4 / 1e9, 2), "streaming": run_case(path, False)}
            if d <= 20000:  # the baseline copies the sample several times: only where that is safe
                row["in_memory"] = run_case(path, True)
                row["anon_ratio_in_memory_over_streaming"] = round(
                    row["in_memory"]["peak_anon_gb"] / row["streaming"]["peak_anon_gb"], 2
                )
            results["cases"].append(row)
            print(json.dumps(row), flush=True)
            path.unlink()
    results["load_after"] = os.getloadavg()
    results["date"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    out = ROOT / "benchmarks" / "results" / ("memory_map_quick.json" if args.quick else "memory_map.json")
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"written {out}")


if __name__ == "__main__":
    main()
