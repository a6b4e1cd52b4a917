#!/usr/bin/env python
"""Benchmark: embedding throughput (images/s), end to end through ``backend.embed.compute_embeddings``.

For each encoder (``NAME@IMAGE_SIZE``) on the demo images (Fashion-MNIST 28x28
from ``backend.sources.resolve_source("demo")``):

* **pipeline**: ``compute_embeddings(source, encoder, tmp, device=..., batch_size=...,
  num_workers=...)`` as ``curate run`` calls it: DataLoader workers decode and
  preprocess, batches go through the model, rows land in a memory-mapped
  ``embeddings.npy``; for ``pixels`` the PCA (fit + transform) is included.
* **baseline**, in the same run: a plain Python loop, one image at a time, no
  DataLoader (``preprocess(load_image(i))`` then ``forward`` on a batch of 1;
  for ``pixels`` the same PCA afterwards), on fewer images.

``--weights random`` (the default) has the same compute as ImageNet weights and
needs no download.  The machine may be shared: compare the two rows of one run.

Usage::

    python benchmarks/bench_embed.py                       # CPU: pixels@32, resnet18@32, resnet18@224
    python benchmarks/bench_embed.py --quick               # smoke test
    python benchmarks/bench_embed.py --device cuda --encoder resnet50 --image-size 224   # GPU machine
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def subset(src, n: int):
    """The first ``n`` examples of ``src`` (an in-memory array source)."""
    from backend.store import fingerprint

    n = min(n, len(src))
    return dataclasses.replace(
        src,
        index=src.index.iloc[:n].reset_index(drop=True),
        images=None if src.images is None else src.images[:n],
        fingerprint=fingerprint(src.fingerprint, "bench-first", n),
    )


def parse_spec(spec: str) -> tuple[str, int | None]:
    name, _, size = spec.partition("@")
    return name, (int(size) if size else None)


def sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def run_pipeline_pass(src, name, size, args, tmp: Path) -> dict:
    import torch

    from backend.embed import compute_embeddings, get_encoder

    enc = get_encoder(name, weights=args.weights, image_size=size)
    out_dir = tmp / f"{name}-{size}-{len(src)}"
    pca_s = []
    if hasattr(enc, "fit_transform"):  # pixels: time the PCA inside the pass too
        inner = enc.fit_transform

        def timed_fit_transform(*a, **kw):
            t0 = time.perf_counter()
            try:
                return inner(*a, **kw)
            finally:
                pca_s.append(time.perf_counter() - t0)

        enc.fit_transform = timed_fit_transform
    if args.device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    sync(args.device)
    t = time.perf_counter()
    info = compute_embeddings(
        src, enc, out_dir, device=args.device, batch_size=args.batch_size, num_workers=args.workers
    )
    sync(args.device)
    wall = time.perf_counter() - t
    emb = np.load(out_dir / "embeddings.npy", mmap_mode="r")
    assert emb.shape[0] == len(src) and np.isfinite(emb[: min(len(src), 1000)]).all()
    res = {
        "images": len(src),
        "wall_s": round(wall, 2),
        "images_per_s": round(len(src) / wall, 1),
        "dim": int(info["dim"]),
        "failed": len(info["failed"]),
        "batch_size": args.batch_size,
        "num_workers": args.workers if args.workers is not None else min(4, os.cpu_count() or 1),
    }
    if pca_s:
        res["of_which_pca_s"] = round(sum(pca_s), 2)
        res["images_per_s_without_pca"] = round(len(src) / max(wall - sum(pca_s), 1e-9), 1)
    if args.device.startswith("cuda"):
        res["cuda_peak_mem_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
        model = getattr(enc, "model", None)
        if model is not None:
            conv = next((m for m in model.modules() if isinstance(m, torch.nn.Conv2d)), None)
            res["channels_last"] = bool(
                conv is not None and conv.weight.is_contiguous(memory_format=torch.channels_last)
            )
            res["autocast"] = "float16 (TorchvisionEncoder.forward on cuda)"
    shutil.rmtree(out_dir, ignore_errors=True)
    return res


def run_baseline(src, name, size, args) -> dict:
    """One image at a time: no DataLoader, no workers, batch size 1."""
    import torch

    from backend.embed import get_encoder

    enc = get_encoder(name, weights=args.weights, image_size=size)
    enc.to(args.device)
    n = len(src)
    raw = np.empty((n, enc.raw_dim), enc.raw_dtype)
    sync(args.device)
    t = time.perf_counter()
    for i in range(n):
        x = enc.preprocess(src.load_image(i))
        f = enc.forward(x.unsqueeze(0))
        raw[i] = f.cpu().numpy()[0] if isinstance(f, torch.Tensor) else np.asarray(f)[0]
    pca = None
    if getattr(enc, "pca_dim", None):
        t_pca = time.perf_counter()
        out = np.empty((n, enc.pca_dim), np.float32)
        enc.fit_transform(raw, np.arange(n), out)
        pca = time.perf_counter() - t_pca
    sync(args.device)
    wall = time.perf_counter() - t
    res = {"images": n, "wall_s": round(wall, 2), "images_per_s": round(n / wall, 1), "batch_size": 1, "num_workers": 0}
    if pca is not None:
        res["of_which_pca_s"] = round(pca, 2)
        res["images_per_s_without_pca"] = round(n / max(wall - pca, 1e-9), 1)
    return res


def best_of(repeat: int, fn) -> dict:
    """The fastest of ``repeat`` runs (the machine may be shared), with every wall time."""
    runs = [fn() for _ in range(max(1, repeat))]
    best = dict(min(runs, key=lambda r: r["wall_s"]))
    if len(runs) > 1:
        best["all_wall_s"] = [r["wall_s"] for r in runs]
    return best


def machine(device: str) -> dict:
    import torch

    model = ""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    out = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "cpu": model or platform.processor(),
        "cores": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
    }
    if device.startswith("cuda") and torch.cuda.is_available():
        out["gpu"] = torch.cuda.get_device_name(0)
    try:
        import torchvision

        out["torchvision"] = torchvision.__version__
    except ImportError:
        pass
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument(
        "--encoders",
        default=None,
        help="comma-separated NAME@SIZE (default: pixels@32,resnet18@32,resnet18@224 on cpu)",
    )
    ap.add_argument("--encoder", default=None, help="a single encoder (with --image-size)")
    ap.add_argument("--image-size", type=int, default=None)
    ap.add_argument("--weights", default="random", help="random (default), imagenet or a state-dict file")
    ap.add_argument("--n", type=int, default=None, help="images per pipeline pass (default 10000; 512 at 224 on cpu)")
    ap.add_argument(
        "--n-baseline",
        type=int,
        default=None,
        help="images for the one-at-a-time baseline (default: --n for pixels, 1000 for models, 64 at 224 on cpu)",
    )
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--workers", type=int, default=None, help="DataLoader workers (default: the runner's)")
    ap.add_argument("--no-baseline", action="store_true")
    ap.add_argument("--repeat", type=int, default=1, help="repeat each measurement, keep the fastest")
    ap.add_argument("--quick", action="store_true", help="few images: a smoke test")
    ap.add_argument("--data-root", default=None)
    ap.add_argument("--out", default=None, help="results JSON (default benchmarks/results/embed[_DEVICE][_quick].json)")
    args = ap.parse_args(argv)

    from backend.embed import resolve_device
    from backend.errors import CurateError
    from backend.sources import resolve_source

    try:
        args.device = resolve_device(args.device)
    except CurateError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.encoder:
        specs = [f"{args.encoder}@{args.image_size}" if args.image_size else args.encoder]
    elif args.encoders:
        specs = [s.strip() for s in args.encoders.split(",") if s.strip()]
    else:
        specs = (
            ["pixels@32", "resnet18@32", "resnet18@224"] if args.device == "cpu" else ["resnet18@224", "resnet50@224"]
        )
    src_all = resolve_source("demo", data_root=args.data_root)
    print(f"source: {src_all.description}, {len(src_all)} images", flush=True)
    results = {
        "benchmark": "bench_embed",
        "command": " ".join(["python"] + sys.argv),
        "device": args.device,
        "source": src_all.description,
        "weights": args.weights,
        "loadavg_start": _loadavg(),
        "runs": [],
    }
    tmp = Path(tempfile.mkdtemp(prefix="bench_embed-"))
    try:
        for spec in specs:
            name, size = parse_spec(spec)
            big = (size or 224) >= 128 and name != "pixels"
            cpu_big = big and args.device == "cpu"
            n = args.n or (512 if cpu_big else 10000)
            # pixels: the same images (its PCA costs more with more rows); models: fewer images
            nb = args.n_baseline or (n if name == "pixels" else 64 if cpu_big else 1000)
            if args.quick:
                n, nb = min(n, 64 if cpu_big else 1024), min(nb, 16 if cpu_big else 128)
            print(f"{spec}: pipeline on {n} images ...", flush=True)
            row = {"encoder": name, "image_size": size, "device": args.device}
            if args.device.startswith("cuda"):  # CUDA context, cuDNN plans: not part of the throughput
                run_pipeline_pass(subset(src_all, min(n, 2 * args.batch_size)), name, size, args, tmp)
            row["pipeline"] = best_of(args.repeat, lambda: run_pipeline_pass(subset(src_all, n), name, size, args, tmp))
            print(f"  pipeline  {row['pipeline']['images_per_s']:9.1f} images/s  ({row['pipeline']})", flush=True)
            if name == "pixels":
                print(
                    "  (pixels: the PCA, an SVD of the fit sample, is part of the pass; see of_which_pca_s)", flush=True
                )
            if not args.no_baseline:
                row["baseline"] = best_of(args.repeat, lambda: run_baseline(subset(src_all, nb), name, size, args))
                row["speedup_vs_baseline"] = round(row["pipeline"]["images_per_s"] / row["baseline"]["images_per_s"], 2)
                if "images_per_s_without_pca" in row["baseline"]:
                    row["speedup_vs_baseline_without_pca"] = round(
                        row["pipeline"]["images_per_s_without_pca"] / row["baseline"]["images_per_s_without_pca"], 2
                    )
                print(
                    f"  baseline  {row['baseline']['images_per_s']:9.1f} images/s  (one at a time, "
                    f"{nb} images: {row['baseline']}): pipeline is {row['speedup_vs_baseline']}x",
                    flush=True,
                )
            results["runs"].append(row)
        results["loadavg_end"] = _loadavg()
        results["machine"] = machine(args.device)
        if args.out:
            out = Path(args.out)
        else:
            stem = "embed" + ("" if args.device == "cpu" else "_cuda") + ("_quick" if args.quick else "")
            out = ROOT / "benchmarks" / "results" / f"{stem}.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(results, indent=1) + "\n")
        print(f"wrote {out}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


def _loadavg():
    try:
        return [float(v) for v in open("/proc/loadavg").read().split()[:3]]
    except OSError:
        return None


if __name__ == "__main__":
    sys.exit(main())
