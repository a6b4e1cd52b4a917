"""A small CNN trained from scratch on the images themselves (the paper's setting, scaled to small images).

Used by ``curate verify --model cnn`` (train on the kept subset and on random
subsets of the same size, compare held-out errors) and by the training-dynamics
metrics (EL2N, forgetting, AUM computed from a network trained on the pixels):
``on_epoch(epoch, logits)`` receives the logits of every training example
after every epoch.

- :func:`load_images`: uint8 images of run positions (array data sets straight
  from ``run.source.images``; image files through ``run.load_image``), resized
  to one size; unreadable ones are reported, not fatal.
- :func:`train_cnn`: trains :class:`SmallCNN`, evaluates on a hold-out,
  checkpoints every epoch into ``checkpoint_dir`` and resumes from it.

Conventions (method.md section 4): **fixed epochs** over the kept set by
default (compute grows with the kept size, as in the paper's pruning
experiments); ``iterations=`` switches to **fixed iterations** (the same
number of SGD steps whatever the kept size, as CCS does).  SGD with Nesterov
momentum, a one-cycle learning-rate schedule, weight decay, random
translations of up to 2 pixels (no flips: digits and letters are not
symmetric).  GPU when present (bfloat16 autocast, channels-last); small images
train on a CPU in minutes.

Vocabulary: N images of H x W pixels with C channels (1 grey or 3 RGB), K classes.
torch is imported inside the functions that need it.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import CurateError
from ..io import atomic_path, read_json, write_json
from ..progress import Reporter

CHECKPOINT = "checkpoint.pt"
VERSION = 1
MAX_SIDE = 64  # larger images are resized down: this network is meant for small images


@dataclass(frozen=True)
class CNNConfig:
    """Hyper-parameters of :func:`train_cnn` (all part of the checkpoint's key)."""

    epochs: int = 15
    iterations: int | None = None  # fixed iterations instead of fixed epochs
    batch_size: int = 128
    lr: float = 0.05  # peak of the one-cycle schedule
    momentum: float = 0.9
    weight_decay: float = 5e-4
    widths: tuple[int, int, int] = (32, 64, 128)
    translate: int = 2  # random shifts of up to this many pixels; 0 = no augmentation
    seed: int = 0

    def total_steps(self, n_train: int) -> int:
        per_epoch = max(1, math.ceil(n_train / self.batch_size))
        return int(self.iterations) if self.iterations else int(self.epochs) * per_epoch


@dataclass
class CNNResult:
    """What :func:`train_cnn` returns."""

    eval_error: float | None
    eval_predictions: np.ndarray | None
    history: list[dict] = field(default_factory=list)  # one row per epoch: loss, train_error, seconds
    steps: int = 0
    epochs: float = 0.0
    resumed_from_epoch: int = 0
    device: str = "cpu"
    elapsed_s: float = 0.0
    model: Any = None  # the trained torch module (eval mode)


def build_cnn(in_channels: int, n_classes: int, widths=(32, 64, 128)):
    """Three conv stages (3x3 conv, batch norm, ReLU; max-pool between), global average pool, linear.

    About 0.3 M parameters at the default widths; the global pool makes it work at any input size >= 8 px.
    """
    import torch.nn as nn

    w1, w2, w3 = widths

    def block(cin, cout):
        return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]

    layers = [
        *block(in_channels, w1),
        *block(w1, w1),
        nn.MaxPool2d(2),
        *block(w1, w2),
        *block(w2, w2),
        nn.MaxPool2d(2),
        *block(w2, w3),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(w3, n_classes),
    ]
    return nn.Sequential(*layers)


# ---------------------------------------------------------------------------
# images
# ---------------------------------------------------------------------------


def _target_side(h: int, w: int, side: int | None) -> int:
    return int(side) if side else int(min(max(h, w), MAX_SIDE))


def _resize(arr: np.ndarray, side: int) -> np.ndarray:
    from PIL import Image

    if arr.shape[0] == side and arr.shape[1] == side:
        return arr
    img = Image.fromarray(arr.squeeze(-1) if arr.shape[-1] == 1 else arr)
    out = np.asarray(img.resize((side, side), Image.Resampling.BILINEAR))
    return out[..., None] if out.ndim == 2 else out


def load_images(
    run, positions=None, *, table=None, side: int | None = None, reporter: Reporter | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """``(images uint8 [n, side, side, C], ok bool [n])`` of ``table`` rows (default: the run's pool table).

    ``positions`` index ``table`` (default: all rows).  Array data sets (the
    demo, torchvision sets) are read from ``run.source.images`` in one go
    (grey stays one channel); image files are opened one by one as RGB and
    resized to ``side`` (default: the first image's larger side, at most 64).
    An unreadable file gives a black image and ``ok = False``: the caller
    decides whether to drop it.
    """
    rep = reporter or Reporter()
    table = run.table if table is None else table
    positions = np.arange(len(table)) if positions is None else np.asarray(positions, np.int64)
    images = None
    if not run.config["source"].get("has_files") and "source_row" in table.columns:
        try:
            images = run.source.images
        except CurateError:
            raise
        except Exception:  # noqa: BLE001 - no array images: fall back to the files
            images = None
    if images is not None:
        src_rows = table["source_row"].to_numpy(np.int64)[positions]
        arr = np.asarray(images[src_rows])
        if arr.ndim == 3:
            arr = arr[..., None]
        s = _target_side(arr.shape[1], arr.shape[2], side)
        if arr.shape[1] != s or arr.shape[2] != s:
            arr = np.stack([_resize(a, s) for a in arr])
        return np.ascontiguousarray(arr, np.uint8), np.ones(len(positions), bool)
    from ..sources import BadImage, open_rgb

    paths = table["path"].to_numpy(object)[positions]
    out, ok = None, np.ones(len(positions), bool)
    rep.stage("images", detail=f"reading {len(positions)} images")
    for i, p in enumerate(paths):
        try:
            a = np.asarray(open_rgb(p)) if isinstance(p, str) and p else None
        except BadImage:
            a = None
        if out is None:
            h, w = (int(a.shape[0]), int(a.shape[1])) if a is not None else (32, 32)
            s = _target_side(h, w, side)
            out = np.zeros((len(positions), s, s, 3), np.uint8)
        if a is None:
            ok[i] = False
        else:
            out[i] = _resize(a, out.shape[1])
        if i % 500 == 0:
            rep.update(i, len(positions))
    rep.update(len(positions), len(positions))
    rep.end_stage()
    if out is None:
        raise CurateError("no images to train on: the run has no image files (precomputed embeddings?)")
    return out, ok


# ---------------------------------------------------------------------------
# training
# ---------------------------------------------------------------------------


def _data_key(images: np.ndarray, labels: np.ndarray, n_classes: int, cfg: CNNConfig) -> str:
    h = hashlib.sha256()
    h.update(str((images.shape, n_classes, VERSION, sorted(asdict(cfg).items()))).encode())
    h.update(np.ascontiguousarray(labels, np.int64).tobytes())
    step = max(1, len(images) // 256)  # a sample of the pixels: cheap, and enough to tell data sets apart
    h.update(np.ascontiguousarray(images[::step]).tobytes())
    return h.hexdigest()[:16]


def _to_tensor(images: np.ndarray, device, mean, std):
    import torch

    x = torch.from_numpy(np.array(images, copy=True)).to(device).permute(0, 3, 1, 2).float().div_(255.0)
    return (x - mean) / std


def _shift(x, max_shift: int, gen, groups: int = 8):
    """Random translation by up to ``max_shift`` pixels (zero padding), one draw per slice of the batch.

    A draw per image costs a gather as large as the batch; ``groups`` slices
    with their own shift are nearly as good an augmentation at a fraction of the cost.
    """
    import torch
    import torch.nn.functional as F

    if max_shift <= 0:
        return x
    _, _, h, w = x.shape
    pad = F.pad(x, (max_shift,) * 4)
    out = torch.empty_like(x)
    bounds = np.linspace(0, len(x), min(groups, len(x)) + 1).astype(int)
    d = torch.randint(0, 2 * max_shift + 1, (len(bounds) - 1, 2), generator=gen).tolist()
    for (lo, hi), (dy, dx) in zip(zip(bounds[:-1], bounds[1:]), d):
        out[lo:hi] = pad[lo:hi, :, dy : dy + h, dx : dx + w]
    return out


def predict_logits(model, images: np.ndarray, *, device, mean, std, batch_size: int = 1024) -> np.ndarray:
    """float32 logits [n, K] of uint8 ``images`` (eval mode, no augmentation)."""
    import torch

    model.eval()
    out = []
    with torch.no_grad(), _autocast(device):
        for s in range(0, len(images), batch_size):
            x = _to_tensor(images[s : s + batch_size], device, mean, std)
            if str(device).startswith("cuda"):
                x = x.contiguous(memory_format=torch.channels_last)
            out.append(model(x).float().cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, 0), np.float32)


def _autocast(device):
    import contextlib

    import torch

    if str(device).startswith("cuda"):
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def train_cnn(
    images: np.ndarray,
    labels: np.ndarray,
    *,
    n_classes: int,
    config: CNNConfig | None = None,
    eval_images: np.ndarray | None = None,
    eval_labels: np.ndarray | None = None,
    device: str = "auto",
    checkpoint_dir: str | Path | None = None,
    reporter: Reporter | None = None,
    on_epoch: Callable[[int, np.ndarray], None] | None = None,
) -> CNNResult:
    """Train a :func:`build_cnn` network; see :func:`_train_cnn` (this wrapper picks the CPU thread count)."""
    from ..embed import resolve_device
    from .runtime import cpu_threads

    dev = resolve_device(device)
    with cpu_threads(dev):
        return _train_cnn(
            images,
            labels,
            n_classes=n_classes,
            config=config,
            eval_images=eval_images,
            eval_labels=eval_labels,
            device=dev,
            checkpoint_dir=checkpoint_dir,
            reporter=reporter,
            on_epoch=on_epoch,
        )


def _train_cnn(
    images, labels, *, n_classes, config, eval_images, eval_labels, device, checkpoint_dir, reporter, on_epoch
) -> CNNResult:
    """Train a :func:`build_cnn` network on uint8 ``images`` [N, H, W, C] with integer ``labels`` in 0..K-1.

    ``eval_images`` / ``eval_labels``: the hold-out (labels -1 count as
    wrong: a class the training set never saw).  ``checkpoint_dir``: after
    every epoch the model, optimiser, schedule and random state are written
    there atomically; calling again with the same data and config resumes
    from the last finished epoch (a different config starts afresh).
    ``on_epoch(epoch, logits)``: called after every epoch (1-based) with the
    float32 logits [N, K] of every training image (eval mode); on resume it
    is first replayed for the epochs already done (their logits are kept in
    ``checkpoint_dir`` when a callback is given).  Progress: ``reporter``
    gets the step count.
    """
    import torch

    cfg = config or CNNConfig()
    rep = reporter or Reporter()
    images = np.ascontiguousarray(images, np.uint8)
    if images.ndim == 3:
        images = images[..., None]
    labels = np.asarray(labels, np.int64)
    if len(images) != len(labels) or len(images) == 0:
        raise CurateError(f"train_cnn needs as many labels as images (got {len(images)} images, {len(labels)} labels)")
    if labels.min() < 0 or labels.max() >= n_classes:
        raise CurateError(f"training labels must be in 0..{n_classes - 1}")
    dev = torch.device(device)
    t0 = time.perf_counter()
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed + 1)
    n = len(images)
    per_epoch = max(1, math.ceil(n / cfg.batch_size))
    total = cfg.total_steps(n)
    n_epochs = math.ceil(total / per_epoch)
    mean = torch.tensor(images.reshape(-1, images.shape[-1]).mean(0) / 255.0, dtype=torch.float32, device=dev).view(
        1, -1, 1, 1
    )
    std = torch.tensor(
        np.maximum(images.reshape(-1, images.shape[-1]).std(0) / 255.0, 1e-3), dtype=torch.float32, device=dev
    ).view(1, -1, 1, 1)
    model = build_cnn(images.shape[-1], n_classes, cfg.widths).to(dev)
    if dev.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(
        model.parameters(), lr=cfg.lr, momentum=cfg.momentum, nesterov=True, weight_decay=cfg.weight_decay
    )
    sched: Any
    if total >= 10:
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=total, pct_start=0.25)
    else:  # too few steps for a warm-up and an annealing phase: a constant rate
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)
    history: list[dict] = []
    step, start_epoch = 0, 0
    ckdir = Path(checkpoint_dir) if checkpoint_dir else None
    key = _data_key(images, labels, n_classes, cfg)
    if ckdir is not None and (ckdir / CHECKPOINT).exists():
        state = torch.load(ckdir / CHECKPOINT, map_location=dev, weights_only=False)
        if state.get("key") == key:
            model.load_state_dict(state["model"])
            opt.load_state_dict(state["opt"])
            sched.load_state_dict(state["sched"])
            gen.set_state(state["gen"])
            torch.set_rng_state(state["torch_rng"])
            step, start_epoch, history = int(state["step"]), int(state["epoch"]), list(state["history"])
            rep.info(f"resuming the CNN from epoch {start_epoch} of {n_epochs} ({ckdir})")
            if on_epoch is not None:
                for e in range(1, start_epoch + 1):
                    saved = ckdir / f"logits_epoch{e:03d}.npy"
                    if saved.exists():
                        on_epoch(e, np.load(saved))
    rep.stage(
        "cnn",
        detail=f"small CNN on {dev.type}: {n} images {images.shape[1]}x{images.shape[2]}, "
        f"{n_epochs} epochs ({total} steps of {cfg.batch_size})",
    )
    x_all = torch.from_numpy(images.copy() if not images.flags.writeable else images)  # uint8, CPU
    y_all = torch.from_numpy(labels)
    loss_fn = torch.nn.CrossEntropyLoss()
    for epoch in range(start_epoch, n_epochs):
        model.train()
        t_ep = time.perf_counter()
        perm = torch.randperm(n, generator=gen)
        tot_loss, tot_wrong, seen = 0.0, 0, 0
        for b in range(per_epoch):
            if step >= total:
                break
            idx = perm[b * cfg.batch_size : (b + 1) * cfg.batch_size]
            x = x_all[idx].to(dev, non_blocking=True).permute(0, 3, 1, 2).float().div_(255.0)
            x = _shift((x - mean) / std, cfg.translate, gen)
            if dev.type == "cuda":
                x = x.contiguous(memory_format=torch.channels_last)
            y = y_all[idx].to(dev, non_blocking=True)
            with _autocast(dev):
                z = model(x)
                loss = loss_fn(z.float(), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            tot_loss += float(loss.detach()) * len(idx)
            tot_wrong += int((z.detach().argmax(1) != y).sum())
            seen += len(idx)
            if step % 20 == 0:
                rep.update(step, total)
        row = {
            "epoch": epoch + 1,
            "loss": tot_loss / max(seen, 1),
            "train_error": tot_wrong / max(seen, 1),
            "seconds": round(time.perf_counter() - t_ep, 3),
            "steps": step,
        }
        history.append(row)
        if on_epoch is not None:
            logits = predict_logits(model, images, device=dev, mean=mean, std=std)
            if ckdir is not None:
                ckdir.mkdir(parents=True, exist_ok=True)
                with atomic_path(ckdir / f"logits_epoch{epoch + 1:03d}.npy") as tmp:
                    np.save(tmp, logits)
            on_epoch(epoch + 1, logits)
        if ckdir is not None:
            ckdir.mkdir(parents=True, exist_ok=True)
            with atomic_path(ckdir / CHECKPOINT) as tmp:
                torch.save(
                    {
                        "key": key,
                        "model": model.state_dict(),
                        "opt": opt.state_dict(),
                        "sched": sched.state_dict(),
                        "gen": gen.get_state(),
                        "torch_rng": torch.get_rng_state(),
                        "step": step,
                        "epoch": epoch + 1,
                        "history": history,
                    },
                    tmp,
                )
        rep.update(step, total)
    rep.end_stage()
    err = preds = None
    if eval_images is not None and eval_labels is not None and len(eval_images):
        ev = np.ascontiguousarray(eval_images, np.uint8)
        ev = ev[..., None] if ev.ndim == 3 else ev
        preds = predict_logits(model, ev, device=dev, mean=mean, std=std).argmax(1)
        err = float(np.mean(preds != np.asarray(eval_labels, np.int64)))
    model.eval()
    return CNNResult(
        eval_error=err,
        eval_predictions=preds,
        history=history,
        steps=step,
        epochs=step / per_epoch,
        resumed_from_epoch=start_epoch,
        device=dev.type,
        elapsed_s=time.perf_counter() - t0,
        model=model,
    )


def write_history(path: str | Path, result: CNNResult) -> None:
    """The per-epoch history as JSON (for reports)."""
    write_json(
        path,
        {
            "history": result.history,
            "steps": result.steps,
            "epochs": result.epochs,
            "eval_error": result.eval_error,
            "device": result.device,
        },
    )


def read_history(path: str | Path) -> dict:
    return read_json(path)
