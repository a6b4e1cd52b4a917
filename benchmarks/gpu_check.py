#!/usr/bin/env python
"""One prepared script for a GPU machine: every CUDA path, its speed, and its agreement with the CPU path.

Checks, each timed and compared with the same computation on the CPU (float
tolerances below; fp16 autocast is not bit-exact, so agreement is measured,
not assumed):

1. ``embed``: ResNet-50 at 224 px, random (seeded) weights, through the
   project's encoder (fp16 autocast + channels_last on CUDA).  Forward-only
   images/s on device-resident batches, and end to end
   (``compute_embeddings`` on a folder of JPEG files: decode, resize, batch,
   copy, forward).  CPU check: cosine similarity of the CUDA and CPU vectors of
   the same images (>= 0.995 each).
2. ``kmeans``: ``SphericalKMeans`` (torch on CUDA) on N x 512 from K clusters
   (1M x 512, K=1000 on a GPU), fit + predict seconds.  Checks: the CUDA
   assignment of every row against the exact CPU search with the same
   centroids (>= 99.9% equal, ties apart; similarity error <= 1e-4), and the
   fit's mean similarity against a CPU fit on the same rows (within 0.01).
3. ``probes``: the scaling grid's batched probes (``LinearProbes``,
   ``MLPProbes``) on CUDA vs CPU on the same features and orderings: held-out
   errors within 0.02 per probe.
4. ``ssl``: a few steps of SimCLR training (``train_encoder``, small-cnn) on
   CUDA and on CPU: finite losses, seconds; then the CPU and CUDA forward of
   the same backbone weights agree (cosine >= 0.999).
5. ``cnn``: the small CNN of the training-dynamics metrics (``train_cnn``,
   fixed iterations, no augmentation, same seed) on CUDA and CPU: final
   training losses within 10% and eval predictions >= 90% equal.

Everything also runs with ``--device cpu`` (both sides on the CPU, small
sizes, and the "device" side is the CPU again, so the agreement figures are trivially met: a test of
the script itself, not a GPU figure).  Prints one JSON
object and writes it to ``--out``; exit code 1 when a check fails.

Usage on a GPU machine (about 5 minutes)::

    python benchmarks/gpu_check.py --device cuda
    python benchmarks/gpu_check.py --device cpu --small     # here: checks the script (< 2 min)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("CURATE_OFFLINE", "1")


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def _images(n: int, side: int, seed: int = 0) -> np.ndarray:
    """Smooth random RGB images (uint8): blurred noise, so JPEG and resizing behave like on photos."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, size=(n, side // 8 + 1, side // 8 + 1, 3)).astype(np.float32)
    big = np.repeat(np.repeat(small, 8, axis=1), 8, axis=2)[:, :side, :side]
    return np.clip(big + rng.normal(0, 12, big.shape), 0, 255).astype(np.uint8)


# --------------------------------------------------------------------------- 1. embedding


def check_embed(device: str, small: bool, tmp: Path) -> dict:
    import torch
    from PIL import Image

    from backend.embed import compute_embeddings, get_encoder
    from backend.sources import resolve_source

    n_fwd, n_files, batch = (16, 16, 8) if small else (4096, 20000, 256)
    side = 224
    enc_dev = get_encoder("resnet50", weights="random", image_size=side)
    enc_cpu = get_encoder("resnet50", weights="random", image_size=side)
    imgs = _images(max(n_fwd, 16), 256)
    x = torch.stack([enc_cpu.preprocess(Image.fromarray(a)) for a in imgs[:16]])
    ref = enc_cpu.to("cpu").forward(x).float().numpy()
    got = enc_dev.to(device).forward(x).float().cpu().numpy()
    cos = (ref * got).sum(1) / (np.linalg.norm(ref, axis=1) * np.linalg.norm(got, axis=1) + 1e-12)

    xb = torch.stack([enc_cpu.preprocess(Image.fromarray(imgs[i % len(imgs)])) for i in range(batch)])
    if device.startswith("cuda"):
        xb = xb.to(device)
    enc_dev.forward(xb)  # warm-up (cuDNN autotune, allocator)
    _sync(device)
    t0 = time.perf_counter()
    done = 0
    while done < n_fwd:
        enc_dev.forward(xb)
        done += batch
    _sync(device)
    fwd_s = time.perf_counter() - t0

    folder = tmp / "jpegs" / "all"
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n_files):
        Image.fromarray(imgs[i % len(imgs)]).save(folder / f"{i:06d}.jpg", quality=90)
    src = resolve_source(str(tmp / "jpegs"))
    t0 = time.perf_counter()
    info = compute_embeddings(
        src, enc_dev, tmp / "emb_out", device=device, batch_size=batch, num_workers=min(8, os.cpu_count() or 1)
    )
    e2e_s = time.perf_counter() - t0
    return {
        "ok": bool(cos.min() >= 0.995),
        "min_cosine_vs_cpu": round(float(cos.min()), 5),
        "forward_images_per_s": round(done / fwd_s, 1),
        "forward_images": done,
        "batch_size": batch,
        "end_to_end_images_per_s": round(n_files / e2e_s, 1),
        "end_to_end_images": n_files,
        "end_to_end_s": round(e2e_s, 2),
        "failed": len(info["failed"]),
        "decode": "PIL on DataLoader workers (CPU)",
    }


# --------------------------------------------------------------------------- 2. k-means


def check_kmeans(device: str, small: bool) -> dict:
    from backend.cluster import SphericalKMeans
    from backend.cluster.kmeans import nearest_centroid

    n, d, k = (20000, 512, 50) if small else (1_000_000, 512, 1000)
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((k, d)).astype(np.float32)
    x = centres[rng.integers(0, k, n)] + rng.standard_normal((n, d)).astype(np.float32) * 1.5
    _sync(device)
    t0 = time.perf_counter()
    km = SphericalKMeans(k, n_iter=20, random_state=0, device=device).fit(x)
    _sync(device)
    fit_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    a_dev, s_dev = km.predict(x)
    _sync(device)
    predict_s = time.perf_counter() - t0
    a_cpu, s_cpu = nearest_centroid(x, km.centroids_, device="cpu")
    same = float((a_dev == a_cpu).mean())
    sim_err = float(np.abs(s_dev - s_cpu).max())
    # the same rows fitted on the CPU: the fits should be equally good
    sub = slice(0, min(n, 200000))
    km_cpu = SphericalKMeans(k, n_iter=20, random_state=0, device="cpu").fit(x[sub])
    km_dev = SphericalKMeans(k, n_iter=20, random_state=0, device=device).fit(x[sub])
    q_cpu = float(km_cpu.predict(x[sub])[1].mean())
    q_dev = float(km_dev.predict(x[sub])[1].mean())
    return {
        "ok": bool(same >= 0.999 and sim_err <= 1e-4 and abs(q_cpu - q_dev) <= 0.01),
        "n": n,
        "dim": d,
        "k": k,
        "fit_s": round(fit_s, 2),
        "predict_s": round(predict_s, 2),
        "total_s": round(fit_s + predict_s, 2),
        "backend": getattr(km, "backend_", "?"),
        "assignment_equal_to_cpu": round(same, 6),
        "max_similarity_error": sim_err,
        "mean_similarity_cpu_fit": round(q_cpu, 5),
        "mean_similarity_device_fit": round(q_dev, 5),
    }


# --------------------------------------------------------------------------- 3. probes


def check_probes(device: str, small: bool) -> dict:
    import torch

    from backend.probes import LinearProbes, MLPProbes, probe_features

    n, d, c = (1000, 32, 10) if small else (50000, 512, 100)
    rng = np.random.default_rng(0)
    means = rng.standard_normal((c, d)).astype(np.float32)
    y = rng.integers(0, c, n + n // 5)
    emb = means[y] + rng.standard_normal((len(y), d)).astype(np.float32) * 2.0
    pool, hold = np.arange(n), np.arange(n, len(y))
    feats, transform = probe_features(emb, pool)
    hfeats, _ = probe_features(emb, hold, transform)
    order = {"random": torch.from_numpy(rng.permutation(n))}
    probes = [("random", int(n * f)) for f in (0.3, 0.6, 1.0)]
    out = {}
    ok = True
    for name, cls in (("linear", LinearProbes), ("mlp", MLPProbes)):
        errs, secs = {}, {}
        for dev in ("cpu", device) if device != "cpu" else ("cpu",):
            xt = torch.from_numpy(feats).to(dev)
            yt = torch.from_numpy(y[pool]).to(dev)
            hx = torch.from_numpy(hfeats).to(dev)
            hy = torch.from_numpy(y[hold]).to(dev)
            o = {k2: v.to(dev) for k2, v in order.items()}
            _sync(dev)
            t0 = time.perf_counter()
            err = cls(xt, yt, c, o, probes, seed=0).fit_evaluate(hx, hy)[0]
            _sync(dev)
            secs[dev] = round(time.perf_counter() - t0, 2)
            errs[dev] = err
        diff = float(np.abs(errs["cpu"] - errs[device]).max())
        ok &= diff <= 0.02
        out[name] = {
            "heldout_error_cpu": [round(float(e), 4) for e in errs["cpu"]],
            "heldout_error_device": [round(float(e), 4) for e in errs[device]],
            "max_abs_diff": round(diff, 4),
            "seconds_cpu": secs["cpu"],
            "seconds_device": secs[device],
        }
    return {"ok": bool(ok), "n": n, "dim": d, "classes": c, "probes": len(probes), **out}


# --------------------------------------------------------------------------- 4. SSL


def check_ssl(device: str, small: bool, tmp: Path) -> dict:
    import torch
    from PIL import Image

    from backend.embed.ssl_train import train_encoder

    n = 256 if small else 4096
    imgs = _images(n, 32, seed=1)
    folder = tmp / "ssl_imgs" / "all"
    folder.mkdir(parents=True, exist_ok=True)
    for i, a in enumerate(imgs):
        Image.fromarray(a).save(folder / f"{i:05d}.png")
    out, models = {}, {}
    for dev in ("cpu", device) if device != "cpu" else ("cpu",):
        t0 = time.perf_counter()
        res = train_encoder(
            str(tmp / "ssl_imgs"),
            tmp / f"ssl_{dev}",
            method="simclr",
            backbone="small-cnn",
            epochs=1,
            image_size=32,
            batch_size=64,
            device=dev,
            seed=0,
            knn_every=0,
            num_workers=0,
        )
        _sync(dev)
        loss = res.history[-1].get("loss") if res.history else None
        out[dev] = {
            "seconds": round(time.perf_counter() - t0, 2),
            "loss": loss,
            "images": n,
            "images_per_s": round(n / max(res.seconds, 1e-9), 1),
        }
        models[dev] = res
    ok = all(v["loss"] is None or np.isfinite(v["loss"]) for v in out.values())
    # the same weights, forward on both devices (the SSL backbone's CUDA path)
    from backend.embed import get_encoder

    try:
        enc = get_encoder("ssl", weights=str(models["cpu"].path), image_size=32)
        x = torch.stack([enc.preprocess(Image.fromarray(a)) for a in imgs[:32]])
        ref = enc.to("cpu").forward(x).float().numpy()
        got = enc.to(device).forward(x).float().cpu().numpy()
        cos = (ref * got).sum(1) / (np.linalg.norm(ref, axis=1) * np.linalg.norm(got, axis=1) + 1e-12)
        out["forward_min_cosine_cpu_vs_device"] = round(float(cos.min()), 5)
        ok &= bool(cos.min() >= 0.999)
    except Exception as exc:  # noqa: BLE001 - reported, and the check fails
        out["forward_check_error"] = f"{type(exc).__name__}: {exc}"
        ok = False
    return {"ok": bool(ok), **out}


# --------------------------------------------------------------------------- 5. CNN


def check_cnn(device: str, small: bool) -> dict:
    from backend.probes.cnn import CNNConfig, train_cnn

    n, iters = (512, 20) if small else (20000, 300)
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 10, n + 256)
    imgs = _images(len(labels), 32, seed=2)
    imgs[np.arange(len(labels)), (labels * 3) % 32, :, :] = 255  # a class-dependent bright row: learnable
    cfg = CNNConfig(iterations=iters, batch_size=128, translate=0, seed=0, widths=(16, 32, 64))
    out, preds = {}, {}
    for dev in ("cpu", device) if device != "cpu" else ("cpu", "cpu"):
        t0 = time.perf_counter()
        res = train_cnn(
            imgs[:n], labels[:n], n_classes=10, config=cfg, eval_images=imgs[n:], eval_labels=labels[n:], device=dev
        )
        _sync(dev)
        key = dev if dev not in out else dev + "_again"
        out[key] = {
            "seconds": round(time.perf_counter() - t0, 2),
            "eval_error": res.eval_error,
            "final_loss": res.history[-1].get("loss") if res.history else None,
            "steps": res.steps,
            "images_per_s": round(res.steps * cfg.batch_size / max(res.elapsed_s, 1e-9), 1),
        }
        preds[key] = np.asarray(res.eval_predictions)
    a, b = list(out)
    same = float((preds[a] == preds[b]).mean())
    la, lb = out[a]["final_loss"], out[b]["final_loss"]
    loss_ok = la is None or lb is None or abs(la - lb) <= 0.1 * max(abs(la), 1e-6)
    return {"ok": bool(same >= 0.9 and loss_ok), "eval_predictions_equal": round(same, 4), **out}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cuda", help="cuda (the GPU machine) or cpu (a test of this script)")
    ap.add_argument("--small", action="store_true", help="small sizes (default with --device cpu)")
    ap.add_argument("--only", default="embed,kmeans,probes,ssl,cnn", help="comma-separated checks to run")
    ap.add_argument("--out", default=None, help="JSON output (default: benchmarks/results/gpu_check_<device>.json)")
    args = ap.parse_args(argv)
    import torch

    device = args.device
    if device.startswith("cuda") and not torch.cuda.is_available():
        print(
            "no CUDA GPU visible to torch: run this on a GPU machine, or pass --device cpu to test the script",
            file=sys.stderr,
        )
        return 2
    small = args.small or device == "cpu"
    report = {
        "benchmark": "gpu_check",
        "device": device,
        "small": small,
        "torch": torch.__version__,
        "gpu": torch.cuda.get_device_name(0) if device.startswith("cuda") else None,
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "checks": {},
    }
    ok = True
    with tempfile.TemporaryDirectory(prefix="gpucheck-") as d:
        tmp = Path(d)
        for name in [s.strip() for s in args.only.split(",") if s.strip()]:
            t0 = time.perf_counter()
            try:
                fn = {
                    "embed": lambda: check_embed(device, small, tmp),
                    "kmeans": lambda: check_kmeans(device, small),
                    "probes": lambda: check_probes(device, small),
                    "ssl": lambda: check_ssl(device, small, tmp),
                    "cnn": lambda: check_cnn(device, small),
                }[name]
                res = fn()
            except Exception as exc:  # noqa: BLE001 - one broken path must not hide the others' figures
                res = {
                    "ok": False,
                    "error": f"{type(exc).__name__}: {exc}",
                    "traceback": traceback.format_exc()[-2000:],
                }
            res["check_s"] = round(time.perf_counter() - t0, 2)
            report["checks"][name] = res
            ok &= bool(res.get("ok"))
            print(f"{name}: {'ok' if res.get('ok') else 'FAILED'} ({res['check_s']} s)", file=sys.stderr, flush=True)
    report["ok"] = bool(ok)
    out = Path(args.out or ROOT / "benchmarks" / "results" / f"gpu_check_{device.replace(':', '')}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, default=float))
    print(json.dumps(report, indent=2, default=float))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
