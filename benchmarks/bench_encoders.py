#!/usr/bin/env python
"""Benchmark: what each encoder is worth on the demo data (Fashion-MNIST), measured in one run.

For ``pixels``, for the self-supervised encoder trained here on Fashion-MNIST
(``train_encoder``, default SimCLR / small-cnn at 28 px) and, as a control, the
same backbone untrained (random init: what the architecture alone gives):

* **kNN accuracy** (k=20, cosine, temperature-weighted; higher = better):
  bank = the 60,000 training embeddings, queries = the 10,000 test
  embeddings, all made by ``run_pipeline`` (the same vectors the metrics use);
* **time**: SSL training (images/s, seconds) and the whole ``run_pipeline``
  on the full demo (embeddings, k-means, scores, PCA map) per encoder, on
  this machine's CPU;
* **scaling estimate** (``--scaling``): ``estimate_scaling(run,
  metric="ssl_prototype")`` per encoder, a small grid (initial size 1,
  keep fractions 0.2-1, 2 seeds); held-out error of keep-hard / keep-easy
  vs random at each keep fraction, with the spread over seeds.  A metric is
  only better than random when it beats it by more than that spread.

Usage::

    python benchmarks/bench_encoders.py                          # 10k images x 4 epochs, full demo, scaling
    python benchmarks/bench_encoders.py --quick                  # smoke: 2k images x 1 epoch, limit 5k
    python benchmarks/bench_encoders.py --device cuda --train-images 60000 --epochs 20   # a GPU machine

Results: ``benchmarks/results/encoders.json`` (``--quick``: ``encoders_quick.json``).
The machine may be shared: the load average is stored with the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _loadavg():
    try:
        return [float(v) for v in open("/proc/loadavg").read().split()[:3]]
    except OSError:
        return None


def knn_of_run(run) -> float:
    """kNN accuracy of a run's embeddings: training pool as the bank, the held-out test split as queries."""
    from backend.embed import knn_accuracy

    emb = run.embeddings
    table, hold = run.table, run.holdout
    return knn_accuracy(
        np.asarray(emb[np.sort(table["row"].to_numpy())]),
        table.sort_values("row")["label"].to_numpy(),
        np.asarray(emb[np.sort(hold["row"].to_numpy())]),
        hold.sort_values("row")["label"].to_numpy(),
    )


def untrained_weights(trained_path: Path, out: Path) -> Path:
    """The trained file with the backbone re-initialised (same seed as training): the architecture alone."""
    import torch

    from backend.embed.backbones import build_backbone

    blob = torch.load(trained_path, map_location="cpu", weights_only=True)
    torch.manual_seed(0)
    model, _ = build_backbone(blob["backbone"])
    blob = {**blob, "state_dict": model.state_dict(), "epochs": 0, "knn_accuracy": None}
    torch.save(blob, out)
    return out


def scaling_table(run, args) -> dict:
    from backend.scaling.empirical import estimate_scaling

    t0 = time.perf_counter()
    res = estimate_scaling(
        run, metric="ssl_prototype", fractions=args.fractions, initial_sizes=[1.0], seeds=args.seeds, device=args.device
    )
    c = res.curves
    c = c[np.isclose(c["initial_fraction"], c["initial_fraction"].max()) & (c["balance"] == "none")]
    rows = {}
    for strategy, g in c.groupby("strategy"):
        rows[strategy] = {
            f"{f:g}": {"error": round(float(e), 4), "std": round(float(s), 4)}
            for f, e, s in zip(g["keep_fraction"], g["error_mean"], g["error_std"])
        }
    return {
        "seconds": round(time.perf_counter() - t0, 1),
        "cached": res.cached,
        "curves": rows,
        "recommendation": {k: v for k, v in res.recommendation.items() if isinstance(v, (str, int, float))},
    }


def print_scaling(name: str, sc: dict) -> None:
    curves = sc["curves"]
    fracs = list(curves.get("random", next(iter(curves.values()))).keys())
    print(f"  scaling estimate ({name}, held-out error %, mean +- std over seeds; {sc['seconds']} s):")
    print("    keep     " + "  ".join(f"{f:>13s}" for f in fracs))
    for strategy, row in curves.items():
        cells = [f"{100 * row[f]['error']:6.2f}+-{100 * row[f]['std']:4.2f}" if f in row else " " * 13 for f in fracs]
        print(f"    {strategy:8s} " + "  ".join(cells))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workdir", default="/tmp/bench_encoders", help="cache folder (re-runs reuse it)")
    ap.add_argument("--train-images", type=int, default=10000, help="images the SSL encoder trains on")
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--method", default="simclr")
    ap.add_argument("--backbone", default="small-cnn")
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--limit", type=int, help="examples per split for the pipeline runs (default: all)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--no-scaling", dest="scaling", action="store_false", help="skip the scaling estimate")
    ap.add_argument("--fractions", default="0.2,0.4,0.6,0.8,1.0")
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="smoke test: 2000 images x 1 epoch, limit 5000, no scaling")
    ap.add_argument("--out", help="result file (default: benchmarks/results/encoders[_quick].json)")
    args = ap.parse_args(argv)
    if args.quick:
        args.train_images, args.epochs, args.limit, args.scaling = 2000, 1, args.limit or 5000, False
    args.fractions = [float(f) for f in args.fractions.split(",")]

    import torch

    from backend import run_pipeline
    from backend.embed import train_encoder
    from backend.progress import Reporter

    class Lines(Reporter):
        def info(self, message):
            print("    " + message, flush=True)

    work = Path(args.workdir)
    results = {
        "command": " ".join([Path(sys.argv[0]).name] + (argv if argv is not None else sys.argv[1:])),
        "machine": {
            "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "python": platform.python_version(),
            "torch": torch.__version__,
            "processor": platform.processor() or platform.machine(),
        },
        "loadavg_start": _loadavg(),
        "params": {k: v for k, v in vars(args).items() if k != "out"},
        "encoders": {},
    }
    common = {"map_method": "pca", "device": args.device, "limit": args.limit, "batch_size": 256, "num_workers": 0}

    print(f"training {args.method}/{args.backbone} on {args.train_images} demo images, {args.epochs} epochs ...")
    t0 = time.perf_counter()
    trained = train_encoder(
        "demo",
        work,
        method=args.method,
        backbone=args.backbone,
        epochs=args.epochs,
        limit=args.train_images,
        batch_size=args.batch_size,
        device=args.device,
        reporter=Lines(),
    )
    train_wall = time.perf_counter() - t0
    train_only = sum(h["seconds"] for h in trained.history)
    img_s = trained.n_images * trained.epochs / max(train_only, 1e-9)
    results["training"] = {
        "path": str(trained.path),
        "cached": trained.cached,
        "images": trained.n_images,
        "epochs": trained.epochs,
        "seconds_total": round(trained.seconds, 1),
        "seconds_epochs_only": round(train_only, 1),
        "images_per_s": round(img_s, 1),
        "wall_this_call": round(train_wall, 1),
        "history": trained.history,
        "extrapolated_60k_epoch_s": round(60000 / img_s, 0),
    }
    print(
        f"  trained in {trained.seconds:.0f} s ({img_s:.0f} images/s in the epochs; kNN monitor "
        f"{trained.knn_accuracy}); a 60,000-image epoch would take ~{60000 / img_s:.0f} s here"
    )

    encoders = [
        ("pixels", None),
        ("ssl", str(trained.path)),
        ("ssl-untrained", str(untrained_weights(trained.path, work / "untrained.pt"))),
    ]
    for label, weights in encoders:
        print(f"{label}: run_pipeline on the demo ...", flush=True)
        t0 = time.perf_counter()
        run = run_pipeline("demo", work, encoder="pixels" if label == "pixels" else "ssl", weights=weights, **common)
        wall = time.perf_counter() - t0
        t1 = time.perf_counter()
        acc = knn_of_run(run)
        entry = {
            "knn_accuracy": round(acc, 4),
            "knn_seconds": round(time.perf_counter() - t1, 1),
            "pipeline_wall_s": round(wall, 1),
            "timings_s": run.config.get("timings_s"),
            "dim": int(run.embeddings.shape[1]),
            "identity": run.config["embedding"].get("identity"),
        }
        print(f"  kNN accuracy {acc:.4f}; pipeline {wall:.0f} s (stages {run.config.get('timings_s')})")
        if args.scaling:
            entry["scaling"] = scaling_table(run, args)
            print_scaling(label, entry["scaling"])
        results["encoders"][label] = entry
    results["loadavg_end"] = _loadavg()
    out = (
        Path(args.out)
        if args.out
        else ROOT / "benchmarks" / "results" / ("encoders_quick.json" if args.quick else "encoders.json")
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
