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
    python benchmarks/bench_memory_map.py --whole-run   # the whole `curate run --map pca` on 5000 x 100000

``--whole-run`` measures the whole command instead (source check, k-means
fitted and every row assigned, the scores, the PCA map, the table) in a child
process: peak RSS is that process's ``VmHWM`` (memory-mapped pages included),
peak anonymous memory is sampled as above.  ``--root DIR`` runs another
checkout of the code (e.g. ``git archive`` of an older commit) for a
before/after figure in the same session.
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


RUN_CHILD = r"""
import sys, threading, time
sys.path.insert(0, {root!r})
peak_anon = [0]
def watch():
    while True:
        for line in open("/proc/self/status"):
            if line.startswith("RssAnon:"):
                peak_anon[0] = max(peak_anon[0], int(line.split()[1]) * 1024)
        time.sleep(0.02)
threading.Thread(target=watch, daemon=True).start()
from backend.cli import main
t = time.perf_counter(); c = time.process_time()
rc = main({argv!r})
hwm = [int(l.split()[1]) * 1024 for l in open("/proc/self/status") if l.startswith("VmHWM:")][0]
print("RESULT", rc, time.perf_counter() - t, time.process_time() - c, hwm, peak_anon[0])
"""


def run_whole(path: Path, workdir: Path, root: Path) -> dict:
    """The whole ``curate run --map pca`` on ``path`` in a child process: wall, CPU, peak RSS and anonymous."""
    argv = ["run", "--source", str(path), "--workdir", str(workdir), "--map", "pca", "--device", "cpu"]
    code = RUN_CHILD.format(root=str(root), argv=argv)
    env = {**os.environ, "CURATE_OFFLINE": "1"}
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=root)
    line = next((ln for ln in res.stdout.splitlines() if ln.startswith("RESULT")), None)
    if line is None:
        return {"rc": res.returncode, "error": (res.stderr or res.stdout)[-2000:]}
    _, rc, wall, cpu, hwm, anon = line.split()
    return {
        "command": "curate " + " ".join(argv),
        "rc": int(rc),
        "wall_s": round(float(wall), 2),
        "cpu_s": round(float(cpu), 2),
        "peak_rss_gb": round(int(hwm) / 1e9, 3),
        "peak_anon_gb": round(int(anon) / 1e9, 3),
    }


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
    ap.add_argument("--whole-run", action="store_true", help="the whole `curate run` on 5000 x 100000 instead")
    ap.add_argument("--root", default=str(ROOT), help="the checkout whose backend runs (--whole-run)")
    ap.add_argument("--out", default=None, help="results JSON (default benchmarks/results/memory_*.json)")
    args = ap.parse_args()
    if args.whole_run:
        return whole_run_main(args)
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


def whole_run_main(args) -> None:
    n, d = (2000, 20000) if args.quick else (5000, 100000)
    results = {"command": " ".join(sys.argv), "root": args.root, "load_before": os.getloadavg()}
    with tempfile.TemporaryDirectory(dir=os.environ.get("TMPDIR")) as tmp:
        path = Path(tmp) / f"emb_{n}x{d}.npy"
        make(path, n, d)
        results.update(n=n, d=d, input_gb=round(n * d * 4 / 1e9, 2))
        results["whole_run"] = run_whole(path, Path(tmp) / "work", Path(args.root))
        run_json = next((Path(tmp) / "work").glob("runs/*/run.json"), None)
        if run_json is not None:
            results["stage_timings_s"] = json.loads(run_json.read_text()).get("timings_s")
    results["load_after"] = os.getloadavg()
    results["date"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    print(json.dumps(results, indent=2))
    name = "memory_run_quick.json" if args.quick else "memory_run.json"
    out = Path(args.out) if args.out else ROOT / "benchmarks" / "results" / name
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"written {out}")


if __name__ == "__main__":
    main()
