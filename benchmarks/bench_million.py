#!/usr/bin/env python
"""Benchmark: a million precomputed embeddings through ``curate run`` and ``curate select``, against faiss.

What it does (every measured step is its own subprocess; wall time and peak RSS
come from ``os.wait4`` on that process, so nothing of this parent is counted):

1. ``--generate``: 1,000,000 x 512 float32 rows from 1,000 clusters (the
   generator of ``bench_kmeans.py``: unequal cluster sizes, per-cluster noise,
   rows not unit length) into a ``.npy`` in a temporary folder.  Not timed.
2. ``curate run --source emb.npy --map pca --k 1000 --metrics ssl_prototype,random``
   then ``curate select --keep 0.7 --out kept.csv``: the product, end to end
   (imports, source check, k-means fitted on a sample, every row assigned,
   scores, the PCA map, examples.parquet, the kept list and its manifest).
   ``dup_distance`` (a default metric, an exact search inside every cluster)
   is left out so both sides compute the same scores; ``--with-default-metrics``
   adds a run with every default metric.
3. The baseline, in the same run: a minimal faiss pipeline doing the same
   scoring -- a 131,072-row sample, ``faiss.Kmeans(spherical=True, niter=20)``
   trained on it, every row assigned with ``IndexFlatIP`` in chunks,
   ``1 - cos`` as the score, ``argpartition`` for the top 70%, the kept ids
   written as a .csv.
4. ``--umap``: ``curate run --map umap`` on the same workdir (embeddings,
   clusters and scores are cache hits: only the 2-D map is computed), then the
   same command again (the cached map).

Targets (issue 11): run + select <= 60 s and <= 3 GB peak RSS, <= 1.5x the
baseline; the UMAP map of 1M points <= 5 min.

Usage::

    python benchmarks/bench_million.py                # 1M x 512, K=1000 (a few minutes)
    python benchmarks/bench_million.py --umap         # + the 1M UMAP map, computed then cached
    python benchmarks/bench_million.py --n 100000 --k 100 --out /tmp/m.json   # a smoke test
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))


def measure(cmd: list[str], *, env: dict | None = None) -> dict:
    """Run ``cmd``; wall seconds, peak RSS (MB) of that process, exit code, the tail of its output."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    res = {
        "cmd": " ".join(cmd),
        "wall_s": round(wall, 2),
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
        "rc": proc.returncode,
    }
    if proc.returncode != 0:
        res["output_tail"] = out[-3000:]
    return res


def faiss_baseline(path: str, k: int, keep: float, out_csv: str, iters: int, n_train: int, seed: int) -> None:
    """The minimal pipeline: sample, train, assign, score, top-k (runs in its own process)."""
    import faiss
    import numpy as np

    x = np.load(path, mmap_mode="r")
    n = len(x)
    rng = np.random.default_rng(seed)
    sample = np.sort(rng.choice(n, size=min(n, n_train), replace=False))
    xt = np.ascontiguousarray(x[sample], dtype=np.float32)
    faiss.normalize_L2(xt)
    km = faiss.Kmeans(
        x.shape[1], k, niter=iters, spherical=True, seed=seed + 1, verbose=False, max_points_per_centroid=10**9
    )
    km.train(xt)
    del xt
    index = faiss.IndexFlatIP(x.shape[1])
    index.add(km.centroids)
    score = np.empty(n, np.float32)
    for start in range(0, n, 65536):
        xc = np.array(x[start : start + 65536], dtype=np.float32)  # a copy: normalize_L2 writes in place
        faiss.normalize_L2(xc)
        sim, _ = index.search(xc, 1)
        score[start : start + len(xc)] = 1.0 - sim[:, 0]
    n_keep = int(round(keep * n))
    kept = np.sort(np.argpartition(-score, n_keep - 1)[:n_keep])  # the hardest n_keep
    np.savetxt(out_csv, kept, fmt="%d", header="row", comments="")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--k", type=int, default=1000)
    ap.add_argument("--keep", type=float, default=0.7)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--umap", action="store_true", help="also compute the UMAP map of all rows, then reuse it")
    ap.add_argument(
        "--with-default-metrics",
        action="store_true",
        help="also time `curate run` with every default metric (dup_distance included)",
    )
    ap.add_argument("--tmpdir", default=None)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "million.json"))
    ap.add_argument("--generate", nargs=1, metavar="PATH", help=argparse.SUPPRESS)
    ap.add_argument("--baseline", nargs=2, metavar=("PATH", "CSV"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.generate:
        from bench_kmeans import generate

        print(json.dumps(generate(Path(args.generate[0]), args.n, args.dim, args.k, args.seed, (1.0, 2.5))))
        return 0
    if args.baseline:
        faiss_baseline(args.baseline[0], args.k, args.keep, args.baseline[1], iters=20, n_train=131072, seed=args.seed)
        return 0

    py = sys.executable
    tmp = Path(tempfile.mkdtemp(prefix="million-", dir=args.tmpdir))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "CURATE_OFFLINE": "1"}
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "backend/"], cwd=ROOT, capture_output=True, text=True
    ).stdout.split("\n")
    report: dict = {
        "benchmark": "bench_million",
        "argv": sys.argv[1:],
        "commit": commit,
        "uncommitted_backend_files": [d for d in dirty if d.strip()],
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "bf16": "avx512_bf16" in Path("/proc/cpuinfo").read_text(),
        },
        "loadavg_before": os.getloadavg(),
    }
    try:
        emb = tmp / "emb.npy"
        t = time.perf_counter()
        gen = subprocess.run(
            [
                py,
                __file__,
                "--generate",
                str(emb),
                "--n",
                str(args.n),
                "--dim",
                str(args.dim),
                "--k",
                str(args.k),
                "--seed",
                str(args.seed),
            ],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        report["data"] = {
            **json.loads(gen.stdout.strip().splitlines()[-1]),
            "generate_s": round(time.perf_counter() - t, 1),
            "file_mb": round(emb.stat().st_size / 2**20, 1),
        }
        (Path(str(emb) + ".labels.npy")).unlink(missing_ok=True)  # not needed: not a source file

        work = tmp / "work"
        curate = [py, "-m", "backend.cli"]
        run_cmd = curate + [
            "run",
            "--source",
            str(emb),
            "--workdir",
            str(work),
            "--map",
            "pca",
            "--k",
            str(args.k),
            "--device",
            "cpu",
            "--metrics",
            "ssl_prototype,random",
        ]
        report["run"] = measure(run_cmd, env=env)
        report["select"] = measure(
            curate + ["select", "--workdir", str(work), "--keep", str(args.keep), "--out", str(tmp / "kept.csv")],
            env=env,
        )
        report["baseline_faiss"] = measure(
            [
                py,
                __file__,
                "--baseline",
                str(emb),
                str(tmp / "faiss_kept.csv"),
                "--k",
                str(args.k),
                "--keep",
                str(args.keep),
                "--seed",
                str(args.seed),
            ],
            env=env,
        )
        ours = report["run"]["wall_s"] + report["select"]["wall_s"]
        report["ours_wall_s"] = round(ours, 2)
        report["ours_peak_rss_mb"] = max(report["run"]["peak_rss_mb"], report["select"]["peak_rss_mb"])
        report["ratio_to_faiss"] = round(ours / report["baseline_faiss"]["wall_s"], 2)
        try:
            import numpy as np
            import pandas as pd

            mine = (
                pd.read_csv(tmp / "kept.csv")["row"].to_numpy()
                if "row" in pd.read_csv(tmp / "kept.csv", nrows=1).columns
                else None
            )
            theirs = np.loadtxt(tmp / "faiss_kept.csv", skiprows=1, dtype=np.int64)
            if mine is not None:  # different k-means initialisations: overlap, not identity
                report["kept_overlap_with_faiss"] = round(len(np.intersect1d(mine, theirs)) / len(theirs), 4)
        except Exception as exc:  # noqa: BLE001 - a diagnostic, never the reason a benchmark fails
            report["kept_overlap_with_faiss"] = f"not computed: {exc}"
        run_json = json.loads(next(work.glob("runs/*/run.json")).read_text())
        report["run_stage_timings_s"] = run_json.get("timings_s")
        if args.with_default_metrics:
            report["run_default_metrics"] = measure(
                curate
                + [
                    "run",
                    "--source",
                    str(emb),
                    "--workdir",
                    str(tmp / "work_default"),
                    "--map",
                    "pca",
                    "--k",
                    str(args.k),
                    "--device",
                    "cpu",
                ],
                env=env,
            )
        if args.umap:
            umap_cmd = [c if c != "pca" else "umap" for c in run_cmd]
            report["umap_map"] = measure(umap_cmd, env=env)
            report["umap_map_cached"] = measure(umap_cmd, env=env)
    finally:
        report["loadavg_after"] = os.getloadavg()
        shutil.rmtree(tmp, ignore_errors=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))
    ok = all(report[k]["rc"] == 0 for k in ("run", "select", "baseline_faiss"))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
