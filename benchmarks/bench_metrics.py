"""Benchmark: the five probe training-dynamics metrics (el2n, grand, forgetting, aum, margin) on the demo embeddings.

    .venv/bin/python benchmarks/bench_metrics.py [--workdir /work/demo_work] [--seeds 5] [--baseline-seeds 1]

Ours: the five metrics through the registry on one :class:`ScoreContext` of
the run's pool (60,000 x 128 for the demo), 5 seeds, default options: one
set of batched SGD trainings (:class:`backend.probes.EpochLinearProbes`, all
seeds in one batched product) serves all five.  Target: <= 60 s together.

Baseline, measured in the same run: the textbook loop, one seed at a time, a
``torch.nn.Linear`` trained by ``torch.optim.SGD`` with autograd on the same
features, batch size, epochs and learning rate, recording each mini-batch's
margin and correctness with the same tensor operations.  Its time for
``--baseline-seeds`` seeds is extrapolated two ways: one training per seed
shared by all five metrics (5 trainings), and one training per metric and
seed, as five independent metric implementations would do (25 trainings).

``--cnn-epoch``: also time one epoch of the small CNN of the ``*_cnn``
metrics on the run's images (training plus the evaluation pass over every
training image that the dynamics read), ``--cnn-limit N`` on the first N.

Nothing is written to the run.  Results: ``benchmarks/results/metrics.json``.
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

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import backend  # noqa: E402
from backend.scores import compute_metric  # noqa: E402
from backend.scores._dynamics import DEFAULTS, class_codes  # noqa: E402
from backend.scores.compute import run_context  # noqa: E402

NAMES = ("el2n", "grand", "forgetting", "aum", "margin")


def _loadavg():
    try:
        return [float(v) for v in open("/proc/loadavg").read().split()[:3]]
    except OSError:
        return None


def demo_run(workdir: Path):
    try:
        return backend.load_run(workdir)
    except backend.CurateError:
        print(f"building the demo run in {workdir} (curate run --source demo --map pca) ...", flush=True)
        return backend.run_pipeline("demo", workdir, map_method="pca")


def baseline_one_seed(x: np.ndarray, y: np.ndarray, n_classes: int, seed: int, settings: dict) -> float:
    """Seconds for one textbook training (autograd, nn.Linear, optim.SGD) with per-batch statistics."""
    import torch

    torch.manual_seed(seed)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    n = len(xt)
    model = torch.nn.Linear(x.shape[1], n_classes, bias=False)  # the features carry the bias column
    opt = torch.optim.SGD(
        model.parameters(), lr=settings["lr"], momentum=settings["momentum"], weight_decay=settings["weight_decay"]
    )
    loss_fn = torch.nn.CrossEntropyLoss()
    forgotten = torch.zeros(n, dtype=torch.int32)
    prev = torch.zeros(n, dtype=torch.bool)
    margin_sum = torch.zeros(n, dtype=torch.float64)
    t = time.perf_counter()
    for _ in range(settings["epochs"]):
        perm = torch.randperm(n)
        for r0 in range(0, n, settings["batch"]):
            idx = perm[r0 : r0 + settings["batch"]]
            z = model(xt[idx])
            loss = loss_fn(z, yt[idx])
            with torch.no_grad():
                zy = z.gather(1, yt[idx].view(-1, 1)).squeeze(1)
                m = zy - z.scatter(1, yt[idx].view(-1, 1), float("-inf")).amax(1)
                ok = m > 0
                forgotten[idx] += (prev[idx] & ~ok).int()
                prev[idx] = ok
                margin_sum[idx] += m.double()
            opt.zero_grad()
            loss.backward()
            opt.step()
    return time.perf_counter() - t


def cnn_epoch(run, limit: int | None = None) -> dict:
    """One epoch of the *_cnn metrics' CNN (default config) on the run's images, with the per-epoch outputs."""
    from backend.probes.cnn import CNNConfig, load_images, train_cnn

    t = time.perf_counter()
    x, _ = load_images(run)
    load_s = time.perf_counter() - t
    _, y = class_codes(run.table["label"].astype(str).to_numpy())
    if limit:
        x, y = x[:limit], y[:limit]
    seen: list[float] = []
    t = time.perf_counter()
    res = train_cnn(
        x,
        y,
        n_classes=int(y.max()) + 1,
        config=CNNConfig(epochs=1, seed=0),
        device="auto",
        on_epoch=lambda e, z: seen.append(time.perf_counter()),
    )
    return {
        "images": list(x.shape),
        "load_s": round(load_s, 1),
        "train_epoch_s": res.history[0]["seconds"],
        "epoch_with_eval_pass_s": round(seen[0] - t, 1),
        "device": res.device,
        "train_error": res.history[0]["train_error"],
        "loadavg": _loadavg(),
    }


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workdir", default="/work/demo_work", help="the demo workdir (built with --map pca if missing)")
    ap.add_argument("--seeds", type=int, default=DEFAULTS["seeds"])
    ap.add_argument("--baseline-seeds", type=int, default=1, help="textbook trainings to time (then extrapolated)")
    ap.add_argument("--cnn-epoch", action="store_true", help="also time one epoch of the *_cnn metrics' CNN")
    ap.add_argument("--cnn-limit", type=int, default=None, help="time the CNN epoch on the first N images only")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "metrics.json"))
    args = ap.parse_args(argv)

    import torch

    from backend.probes import SGD_DEFAULTS, cpu_threads, probe_features

    run = demo_run(Path(args.workdir))
    n, d = len(run.table), run.embeddings.shape[1]
    load0 = _loadavg()
    print(f"run {run.dir}: {n} pool examples x {d}-D; {os.cpu_count()} CPUs, load average {load0}", flush=True)
    ctx = run_context(run, options={"seeds": args.seeds}, device="cpu")
    per_metric = {}
    t0, c0 = time.perf_counter(), time.process_time()
    for name in NAMES:
        t = time.perf_counter()
        s = compute_metric(name, ctx)
        per_metric[name] = round(time.perf_counter() - t, 3)
        print(f"  {name:<11} {per_metric[name]:7.2f} s   mean {s.mean():.4f}  std {s.std():.4f}", flush=True)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    info = next(iter(ctx.shared["probe_dynamics"].values())).info
    print(
        f"ours: all five metrics, {args.seeds} seeds x {info['epochs']} epochs, wall {wall:.1f} s, CPU {cpu:.1f} s "
        f"(training {info['elapsed_s']:.1f} s, torch threads {info['cpu_threads']}); target <= 60 s: "
        f"{'met' if wall <= 60 else 'NOT met'}",
        flush=True,
    )

    # the baseline, same features and settings, one seed at a time
    x, _ = probe_features(run.embeddings, run.table["row"].to_numpy(np.int64))
    _, y = class_codes(run.table["label"].astype(str).to_numpy())
    settings = {**SGD_DEFAULTS}
    with cpu_threads("cpu"):
        times = [baseline_one_seed(x, y, int(y.max()) + 1, s, settings) for s in range(args.baseline_seeds)]
    per_seed = float(np.mean(times))
    shared_base = per_seed * args.seeds
    separate_base = per_seed * args.seeds * len(NAMES)
    print(
        f"baseline: textbook autograd loop {per_seed:.1f} s per seed (mean of {len(times)}); "
        f"shared over the metrics {shared_base:.1f} s, one training per metric and seed {separate_base:.1f} s"
    )
    print(
        f"ratio baseline / ours: {shared_base / wall:.1f}x (shared trainings), {separate_base / wall:.1f}x "
        f"(one training per metric)"
    )
    from scipy.stats import spearmanr

    cols = np.stack([compute_metric(nm, ctx) for nm in NAMES], 1)
    rho = spearmanr(cols).statistic
    print("Spearman rank correlation between the metrics:")
    print("            " + " ".join(f"{nm:>10}" for nm in NAMES))
    for i, nm in enumerate(NAMES):
        print(f"{nm:>11} " + " ".join(f"{rho[i, j]:10.3f}" for j in range(len(NAMES))))
    out = {
        "benchmark": "bench_metrics",
        "command": " ".join(["python"] + sys.argv),
        "run": str(run.dir),
        "n": n,
        "dim": d,
        "seeds": args.seeds,
        "training": info,
        "per_metric_s": per_metric,
        "wall_s": round(wall, 3),
        "cpu_s": round(cpu, 3),
        "target_s": 60,
        "target_met": wall <= 60,
        "baseline_seconds_per_seed": [round(t, 3) for t in times],
        "baseline_shared_s": round(shared_base, 3),
        "baseline_per_metric_s": round(separate_base, 3),
        "ratio_shared": round(shared_base / wall, 2),
        "ratio_per_metric": round(separate_base / wall, 2),
        "spearman": {
            f"{NAMES[i]}~{NAMES[j]}": round(float(rho[i, j]), 4)
            for i in range(len(NAMES))
            for j in range(i + 1, len(NAMES))
        },
        "loadavg_start": load0,
        "loadavg_end": _loadavg(),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "platform": platform.platform(),
        },
    }
    if args.cnn_epoch:
        out["cnn_epoch"] = cnn_epoch(run, args.cnn_limit)
        print(
            f"CNN: one epoch on {out['cnn_epoch']['images']} images: training {out['cnn_epoch']['train_epoch_s']} s, "
            f"with the evaluation pass {out['cnn_epoch']['epoch_with_eval_pass_s']} s on "
            f"{out['cnn_epoch']['device']} (load average {out['cnn_epoch']['loadavg']})"
        )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
