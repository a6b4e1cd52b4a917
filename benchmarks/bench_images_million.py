#!/usr/bin/env python
"""Benchmark: a million small image files through the ``pixels`` encoder, end to end (issue 11, section 2).

1. ``generate``: the 70,000 Fashion-MNIST images (Debian's dataset-fashion-mnist)
   repeated with small changes -- copy ``v`` of image ``i`` is shifted by
   ``(dx, dy)`` in [-2, 2] pixels and mirrored on odd ``v`` -- written as PNG
   files (1,000 per folder) into ``--images`` with ``manifest.csv`` (path, label,
   split=train).  Not timed; skipped when the manifest already lists ``--n`` rows.
2. ``curate run --source manifest.csv --encoder pixels --map pca --k 1000
   --metrics ssl_prototype,random``: every file opened, decoded, resized to
   32x32 RGB, PCA to 128 dims, then clusters, scores, the PCA map and the table.
   Wall time and peak RSS come from ``os.wait4`` on that process; the RSS (and
   PSS, which counts shared pages once) of the whole process tree -- the
   DataLoader workers included -- is sampled every second from /proc, so the
   report shows whether memory grows with the rows embedded.

Usage::

    python benchmarks/bench_images_million.py                         # 1M images (generates once, ~4 GB)
    python benchmarks/bench_images_million.py --n 20000 --out /tmp/i.json  # a smoke test
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import os
import platform
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
FASHION = Path("/usr/share/datasets/fashion-mnist")
PER_FOLDER = 1000


def read_idx(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as fh:
        data = fh.read()
    dims = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims))
    return np.frombuffer(data, np.uint8, offset=4 + 4 * dims).reshape(shape)


def fashion_mnist() -> tuple[np.ndarray, np.ndarray]:
    xs = [read_idx(FASHION / f"{s}-images-idx3-ubyte.gz") for s in ("train", "t10k")]
    ys = [read_idx(FASHION / f"{s}-labels-idx1-ubyte.gz") for s in ("train", "t10k")]
    return np.concatenate(xs), np.concatenate(ys)


def variant(img: np.ndarray, v: int) -> np.ndarray:
    """Copy ``v`` of an image: shifted by a (dx, dy) fixed by ``v`` (zero fill), mirrored on odd ``v``."""
    if v == 0:
        return img
    dx, dy = (v * 7) % 5 - 2, (v * 3) % 5 - 2
    out = np.zeros_like(img)
    h, w = img.shape
    out[max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)] = img[
        max(-dy, 0) : h + min(-dy, 0), max(-dx, 0) : w + min(-dx, 0)
    ]
    return out[:, ::-1] if v % 2 else out


def _write_range(folder: Path, lo: int, hi: int) -> None:
    from PIL import Image

    x, _ = fashion_mnist()
    base = len(x)
    for i in range(lo, hi):
        sub = folder / f"{i // PER_FOLDER:04d}"
        if i % PER_FOLDER == 0 or i == lo:
            sub.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.ascontiguousarray(variant(x[i % base], i // base))).save(
            sub / f"{i:07d}.png", compress_level=1
        )


def generate(folder: Path, n: int, workers: int = 2) -> dict:
    manifest = folder / "manifest.csv"
    if manifest.exists():
        with manifest.open() as fh:
            if sum(1 for _ in fh) - 1 == n:
                return {"n": n, "generated": False}
    free = shutil.disk_usage(folder.parent if not folder.exists() else folder).free
    need = n * 4096 + (64 << 20)  # one 4 KiB block per small PNG
    if free < need * 2:
        raise SystemExit(f"not enough free disk in {folder}: {free >> 30} GiB free, want {2 * need >> 30} GiB")
    folder.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    bounds = np.linspace(0, n, workers + 1).astype(int)
    procs = [
        subprocess.Popen([sys.executable, __file__, "--write-range", str(folder), str(lo), str(hi)])
        for lo, hi in zip(bounds[:-1], bounds[1:])
    ]
    if any(p.wait() != 0 for p in procs):
        raise SystemExit("writing the images failed")
    _, y = fashion_mnist()
    from backend.sources.arrays import FASHION_CLASSES

    with open(str(manifest) + ".tmp", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "label", "split"])
        for i in range(n):
            w.writerow([f"{i // PER_FOLDER:04d}/{i:07d}.png", FASHION_CLASSES[int(y[i % len(y)])], "train"])
    os.replace(str(manifest) + ".tmp", manifest)
    return {"n": n, "generated": True, "generate_s": round(time.perf_counter() - t, 1)}


def _tree(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for t in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{t}/children") as fh:
                    todo.extend(int(c) for c in fh.read().split())
        except OSError:
            pass
    return out


def _kb(path: str, field: str) -> int:
    try:
        with open(path) as fh:
            for line in fh:
                if line.startswith(field):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def measure(cmd: list[str], env: dict, log: Path) -> dict:
    """Run ``cmd``; wall, CPU, peak RSS (wait4), and a 1 s series of the process tree's RSS/PSS."""
    samples: list[tuple[float, int, int, int, str]] = []
    t0 = time.perf_counter()
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
        stop = threading.Event()

        def sample():
            while not stop.wait(1.0):
                pids = _tree(proc.pid)
                main = _kb(f"/proc/{proc.pid}/status", "VmRSS:")
                rss = sum(_kb(f"/proc/{p}/status", "VmRSS:") for p in pids)
                pss = sum(_kb(f"/proc/{p}/smaps_rollup", "Pss:") for p in pids)
                try:
                    with log.open("rb") as fh:
                        fh.seek(max(0, log.stat().st_size - 300))
                        tail = fh.read().decode(errors="replace").replace("\r", "\n").strip().splitlines()[-1:]
                except (OSError, IndexError):
                    tail = []
                samples.append((round(time.perf_counter() - t0, 1), main, rss, pss, tail[0][:100] if tail else ""))

        th = threading.Thread(target=sample, daemon=True)
        th.start()
        _, status, usage = os.wait4(proc.pid, 0)
        stop.set()
        th.join()
    wall = time.perf_counter() - t0
    return {
        "cmd": " ".join(cmd),
        "wall_s": round(wall, 1),
        "cpu_s_with_children": round(usage.ru_utime + usage.ru_stime, 1),
        "peak_rss_mb_wait4": round(usage.ru_maxrss / 1024, 1),
        "peak_tree_rss_mb": round(max((s[2] for s in samples), default=0) / 1024, 1),
        "peak_tree_pss_mb": round(max((s[3] for s in samples), default=0) / 1024, 1),
        "rc": os.waitstatus_to_exitcode(status),
        "samples": samples,
    }


def embed_phase(samples: list, log_text: str) -> dict:
    """Memory during the embedding pass: the samples whose progress line names the embeddings stage."""
    emb = [s for s in samples if "embed" in s[4].lower()]
    if len(emb) < 4:
        return {"samples": len(emb)}
    q = len(emb) // 4
    first, last = emb[q : 2 * q], emb[3 * q :]
    return {
        "samples": len(emb),
        "seconds": round(emb[-1][0] - emb[0][0], 1),
        "main_rss_mb_2nd_quarter_max": round(max(s[1] for s in first) / 1024, 1),
        "main_rss_mb_4th_quarter_max": round(max(s[1] for s in last) / 1024, 1),
        "tree_pss_mb_2nd_quarter_max": round(max(s[3] for s in first) / 1024, 1),
        "tree_pss_mb_4th_quarter_max": round(max(s[3] for s in last) / 1024, 1),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--k", type=int, default=1000)
    ap.add_argument("--images", default="/tmp/h5_images")
    ap.add_argument("--workdir", default=None, help="default: <images>/work (removed first)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "images_million.json"))
    ap.add_argument("--write-range", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    if args.write_range:
        _write_range(Path(args.write_range[0]), int(args.write_range[1]), int(args.write_range[2]))
        return 0

    folder = Path(args.images) if args.n == 1_000_000 else Path(f"{args.images}_{args.n}")
    gen = generate(folder, args.n)
    work = Path(args.workdir) if args.workdir else folder / "work"
    shutil.rmtree(work, ignore_errors=True)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "CURATE_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "backend.cli", "run", "--source", str(folder / "manifest.csv")]
    cmd += ["--workdir", str(work), "--encoder", "pixels", "--map", "pca", "--k", str(args.k), "--device", "cpu"]
    cmd += ["--metrics", "ssl_prototype,random"]
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    report: dict = {
        "benchmark": "bench_images_million",
        "commit": commit,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "data": {
            **gen,
            "images": "Fashion-MNIST train+test (70,000) x shifted/mirrored copies, 28x28 grey PNG",
            "folder": str(folder),
        },
        "loadavg_before": os.getloadavg(),
    }
    log = folder / "run.log"
    res = measure(cmd, env, log)
    report["loadavg_after"] = os.getloadavg()
    run_json = next(work.glob("runs/*/run.json"), None)
    timings = json.loads(run_json.read_text()).get("timings_s", {}) if run_json else {}
    report["run"] = {k: v for k, v in res.items() if k != "samples"}
    report["stage_timings_s"] = timings
    if timings.get("embeddings"):
        report["embed_images_per_s"] = round(args.n / timings["embeddings"], 1)
    report["end_to_end_images_per_s"] = round(args.n / res["wall_s"], 1)
    report["embed_pass_memory"] = embed_phase(res["samples"], log.read_text(errors="replace"))
    step = max(1, len(res["samples"]) // 120)
    report[f"rss_series_every_{step}_samples"] = [s[:4] for s in res["samples"][::step]]  # (s, main, tree RSS, PSS kB)
    if res["rc"] != 0:
        report["output_tail"] = log.read_text(errors="replace")[-3000:]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1))
    print(json.dumps({k: v for k, v in report.items() if not k.startswith("rss_series")}, indent=1))
    return 0 if res["rc"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
