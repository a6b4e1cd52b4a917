#!/usr/bin/env python
"""Benchmark: SemDeDup on N x D embeddings in K clusters (exact search inside every cluster).

What it does
------------
1. Generates N x D float32 embeddings chunk-wise into a memory-mapped ``.npy``
   in a temporary folder (as the pipeline reads ``embeddings.npy``): K random
   unit centres with log-normal cluster weights (unequal sizes), each row =
   centre + Gaussian noise; ``--dup-share`` of the rows are near-copies of an
   earlier row of the same cluster (the row + noise of norm ~1e-3), so there
   are real duplicates to find.  The cluster of each row and its cosine
   similarity to its (normalised) centre stand for the run's k-means
   (``bench_kmeans.py`` measures k-means itself).  Not timed.
2. In a *subprocess* started before the data exists (Linux carries a
   process's peak RSS over exec, so a child forked from a big parent would
   report the parent's size), :func:`backend.dedup.dedup_index` on the
   memory-mapped file: wall time, CPU time, peak RSS; then the O(N) steps:
   ``.at(eps)`` at three thresholds and the redundancy curve at 41
   thresholds.
3. Baseline in the same run, another subprocess: a plain faiss search per
   cluster (``IndexFlatIP`` of the cluster's normalised rows, ``search(k=2)``
   for the nearest other member), which gives only ``max_sim``
   (SemDeDup's order-dependent ``earlier_sim`` and parent are extra work for
   ours).  Agreement of ``max_sim`` between the two is printed.

Usage::

    python benchmarks/bench_dedup.py                 # 1M x 512, K=1000 (~2-3 min in all)
    python benchmarks/bench_dedup.py --quick         # 100k x 512, K=100
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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
GEN_CHUNK = 65536


def generate(path: Path, n: int, dim: int, k: int, seed: int, dup_share: float) -> dict:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((k, dim), dtype=np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    weights = rng.lognormal(0.0, 0.5, size=k)
    weights /= weights.sum()
    emb = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n, dim))
    cluster = np.empty(n, np.int64)
    sim = np.empty(n, np.float32)
    n_dup = 0
    for start in range(0, n, GEN_CHUNK):
        m = min(GEN_CHUNK, n - start)
        lab = rng.choice(k, size=m, p=weights)
        x = rng.standard_normal((m, dim), dtype=np.float32) * np.float32(1.2 / np.sqrt(dim))
        x += centres[lab]
        # near-copies of an earlier row of the same chunk and cluster
        dup = np.flatnonzero(rng.uniform(size=m) < dup_share)
        for i in dup:
            same = np.flatnonzero(lab[:i] == lab[i])
            if len(same):
                jitter = rng.standard_normal(dim).astype(np.float32) * np.float32(1e-3 / np.sqrt(dim))
                x[i] = x[rng.choice(same)] + jitter
                n_dup += 1
        emb[start : start + m] = x
        u = x / np.linalg.norm(x, axis=1, keepdims=True)
        cluster[start : start + m] = lab
        sim[start : start + m] = np.einsum("nd,nd->n", u, centres[lab])
    emb.flush()
    del emb
    np.save(str(path) + ".cluster.npy", cluster)
    np.save(str(path) + ".sim.npy", sim)
    sizes = np.bincount(cluster, minlength=k)
    return {
        "n": n,
        "dim": dim,
        "k": k,
        "seed": seed,
        "planted_near_copies": int(n_dup),
        "cluster_size_min_mean_max": [int(sizes.min()), float(sizes.mean()), int(sizes.max())],
        "sum_size_squared": float((sizes.astype(np.float64) ** 2).sum()),
    }


def _peak_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def worker_main(args) -> None:
    if sys.stdin.readline().strip() != "go":
        return
    import torch  # noqa: F401  (loaded by the CLI before the dedup stage)

    emb = np.load(args.data, mmap_mode="r")
    cluster = np.load(args.data + ".cluster.npy")
    sim = np.load(args.data + ".sim.npy")
    n = len(emb)
    out: dict = {"rss_after_import_mb": _peak_mb()}
    c0 = time.process_time()
    t0 = time.perf_counter()
    if args.worker == "ours":
        from backend.dedup import dedup_index, search

        with search._torch_threads("cpu") as n_threads:
            out["threads"] = n_threads
        ids = np.array([f"train/{i}" for i in range(n)], dtype=object)
        t_ids = time.perf_counter() - t0
        idx = dedup_index(emb, np.arange(n), cluster, sim, ids)
        out["search_s"] = round(time.perf_counter() - t0, 2)
        out["ids_s"] = round(t_ids, 2)
        t = time.perf_counter()
        at = {str(e): idx.at(eps=e).n_removed for e in (0.001, 0.01, 0.05)}
        out["three_thresholds_s"] = round(time.perf_counter() - t, 3)
        t = time.perf_counter()
        curve = idx.redundancy_curve(np.linspace(0.8, 1.0, 41))
        out["curve_41_s"] = round(time.perf_counter() - t, 3)
        out["removed_at_eps"] = at
        out["removed_share_at_0.999"] = float(curve.loc[np.isclose(curve["threshold"], 0.995), "share_removed"].iloc[0])
        max_sim = idx.max_sim
    else:
        import faiss

        # the same thread policy as ours (backend.dedup.search._torch_threads), so the ratio is fair
        if os.environ.get("CURATE_DEDUP_THREADS"):
            faiss.omp_set_num_threads(int(os.environ["CURATE_DEDUP_THREADS"]))
        elif os.getloadavg()[0] > len(os.sched_getaffinity(0)) + 0.5:
            faiss.omp_set_num_threads(1)
        out["threads"] = faiss.omp_get_max_threads()
        order = np.argsort(cluster, kind="stable")
        bounds = np.flatnonzero(np.r_[True, cluster[order][1:] != cluster[order][:-1], True])
        max_sim = np.full(n, -1.0, np.float32)
        for a, b in zip(bounds[:-1], bounds[1:]):
            rows = order[a:b]
            if b - a < 2:
                continue
            srt = np.sort(rows)
            x = np.ascontiguousarray(emb[srt], dtype=np.float32)
            faiss.normalize_L2(x)
            index = faiss.IndexFlatIP(x.shape[1])
            index.add(x)
            d, i = index.search(x, 2)
            # the nearest is oneself unless an exact copy ties: take the best that is not oneself
            self_first = i[:, 0] == np.arange(len(srt))
            max_sim[srt] = np.where(self_first, d[:, 1], d[:, 0])
        out["search_s"] = round(time.perf_counter() - t0, 2)
    out["wall_s"] = round(time.perf_counter() - t0, 2)
    out["cpu_s"] = round(time.process_time() - c0, 2)
    out["peak_rss_mb"] = _peak_mb()
    np.save(args.result + ".max_sim.npy", max_sim)
    Path(args.result).write_text(json.dumps(out, indent=1))


def _start(kind: str, data: Path, result: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, __file__, "--worker", kind, "--data", str(data), "--result", str(result)],
        stdin=subprocess.PIPE,
        text=True,
        cwd=str(ROOT),
    )


def _run(p: subprocess.Popen, result: Path) -> dict:
    p.communicate("go\n")
    if p.returncode != 0:
        raise SystemExit(f"worker failed with status {p.returncode}")
    return json.loads(result.read_text())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--k", type=int, default=1000)
    ap.add_argument("--dup-share", type=float, default=0.05)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quick", action="store_true", help="100k x 512, K=100")
    ap.add_argument("--no-baseline", action="store_true")
    ap.add_argument("--out", default=None)
    ap.add_argument("--worker", choices=("ours", "faiss"), help=argparse.SUPPRESS)
    ap.add_argument("--data", help=argparse.SUPPRESS)
    ap.add_argument("--result", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker_main(args)
        return
    if args.quick:
        args.n, args.k = 100_000, 100
    out_path = Path(args.out or ROOT / "benchmarks" / "results" / ("dedup_quick.json" if args.quick else "dedup.json"))
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench_dedup_") as tmp:
        tmp = Path(tmp)
        data = tmp / "emb.npy"
        workers = {"ours": _start("ours", data, tmp / "ours.json")}
        if not args.no_baseline:
            workers["faiss"] = _start("faiss", data, tmp / "faiss.json")
        t = time.perf_counter()
        recipe = generate(data, args.n, args.dim, args.k, args.seed, args.dup_share)
        print(f"generated {args.n:,} x {args.dim} in {time.perf_counter() - t:.1f} s: {recipe}", flush=True)
        results = {name: _run(p, tmp / f"{name}.json") for name, p in workers.items()}
        for name, r in results.items():
            print(f"{name:6s}: {r}", flush=True)
        if "faiss" in results:
            a = np.load(tmp / "ours.json.max_sim.npy")
            b = np.load(tmp / "faiss.json.max_sim.npy")
            results["max_sim_max_abs_diff_vs_faiss"] = float(np.abs(a - b).max())
            ratio = results["faiss"]["search_s"] / results["ours"]["search_s"]
            results["speed_ratio_faiss_over_ours"] = round(ratio, 2)
    report = {
        "command": " ".join([Path(sys.executable).name] + sys.argv),
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "processor": platform.processor(),
            "load_before": load_before,
            "load_after": os.getloadavg(),
        },
        "data": recipe,
        "results": results,
        "targets": {"wall_s": 60, "peak_rss_mb": 3072},
    }
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(report, indent=1))
    o = results["ours"]
    print(
        f"\nours: search {o['search_s']} s (target 60 s), peak RSS {o['peak_rss_mb']} MB (target 3072 MB); "
        f"any threshold afterwards {o['three_thresholds_s'] / 3:.3f} s, 41-point curve {o['curve_41_s']} s"
    )
    if "faiss" in results:
        f = results["faiss"]
        print(
            f"faiss per-cluster IndexFlatIP (max_sim only): {f['search_s']} s, peak RSS {f['peak_rss_mb']} MB; "
            f"ratio {results['speed_ratio_faiss_over_ours']}x; max |diff| of max_sim "
            f"{results['max_sim_max_abs_diff_vs_faiss']:.2e}"
        )
    print(f"-> {out_path}")


if __name__ == "__main__":
    main()
