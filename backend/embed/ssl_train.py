"""Train a self-supervised encoder on your own images, offline: ``curate train-encoder`` and :func:`train_encoder`.

SimCLR, BYOL or DINO (losses, heads, augmentations and schedules from lightly)
on a backbone from :mod:`backend.embed.backbones`.  The images are only read.

Everything lives in ``<workdir>/encoders/<key>/`` where the key hashes the
source and every training parameter:

``checkpoint.pt``  model, optimiser, schedule, loss state, RNG and history;
                   written after every epoch (and every ``checkpoint_every_s``
                   seconds inside a long epoch) and on Ctrl-C; a new call with
                   the same arguments resumes from it
``train.json``     per-epoch loss, kNN accuracy and time (updated every epoch)
``encoder.pt``     the result: the backbone's state dict plus what rebuilds it
                   (method, backbone spec, image size, normalisation, epochs);
                   its content hash is the encoder identity, so
                   ``curate run --encoder ssl --weights <workdir>/encoders/<key>/encoder.pt``
                   embeds with it and caches under it

On a CUDA GPU training uses mixed precision (bf16 where supported, else fp16
with a gradient scaler) and channels-last; on a CPU use a small backbone at the
data's own resolution (``small-cnn`` at 28-32 px trains Fashion-MNIST in
minutes).  With labels, a kNN accuracy on a labelled hold-out (the source's
test split, else 20% of a labelled sample of the pool) is measured every few
epochs: the cheap signal that the embedding is getting better.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import CurateError
from ..io import atomic_path, write_json
from ..progress import Reporter
from ..store import fingerprint
from .backbones import BACKBONES, backbone_spec

METHODS = ("simclr", "byol", "dino")
FORMAT = "curation-studio/ssl-encoder"
TRAIN_VERSION = 1
DEFAULT_EPOCHS = 10
KNN_BANK, KNN_QUERIES = 5000, 2000
LATEST = "latest.json"


@dataclass
class TrainedEncoder:
    """The result of :func:`train_encoder`: where the weights are and how they were made."""

    path: Path  # encoder.pt: pass it as --weights to ``curate run --encoder ssl``
    method: str
    backbone: str
    epochs: int
    image_size: int
    n_images: int
    history: list[dict[str, Any]] = field(default_factory=list)  # per epoch: epoch, loss, knn_accuracy, seconds
    seconds: float = 0.0  # training time summed over every session that trained it
    cached: bool = False
    resumed_from_epoch: int | None = None

    @property
    def knn_accuracy(self) -> float | None:
        """The last measured kNN accuracy in [0, 1] (higher = better), or None without labels."""
        vals = [h["knn_accuracy"] for h in self.history if h.get("knn_accuracy") is not None]
        return vals[-1] if vals else None

    def run_command(self, source: str, workdir: str | Path) -> str:
        return f"curate run --source {source} --workdir {workdir} --encoder ssl --weights {self.path}"


def train_encoder(
    source,
    workdir: str | Path,
    *,
    method: str = "simclr",
    backbone: str = "small-cnn",
    epochs: int = DEFAULT_EPOCHS,
    image_size: int | None = None,
    batch_size: int = 256,
    lr: float | None = None,
    device: str = "auto",
    seed: int = 0,
    limit: int | None = None,
    knn_every: int | None = None,
    num_workers: int | None = None,
    data_root: str | None = None,
    download: bool = False,
    manifest: str | None = None,
    checkpoint_every_s: float = 300.0,
    reporter: Reporter | None = None,
) -> TrainedEncoder:
    """Train ``method`` on the images of ``source`` (a spec for ``resolve_source`` or a Source); return the weights.

    ``limit`` trains on at most that many images of the pool (a seeded sample);
    ``knn_every`` measures kNN accuracy every that many epochs (default: about
    five times per training, and always after the last epoch; 0: never).  A repeated
    call with the same arguments returns the finished weights (``cached``) or
    resumes an interrupted training.
    """
    from ..sources import Source, resolve_source
    from .runner import resolve_device

    rep = reporter or Reporter()
    if method not in METHODS:
        raise CurateError(f"unknown method {method!r}: use one of {', '.join(METHODS)} (--method)")
    if int(epochs) < 1:
        raise CurateError(f"--epochs must be at least 1 (got {epochs})")
    if int(batch_size) < 2:
        raise CurateError(f"--batch-size must be at least 2 (contrastive losses compare examples), got {batch_size}")
    dev = resolve_device(device)
    src = (
        source
        if isinstance(source, Source)
        else resolve_source(source, data_root=data_root, download=download, manifest=manifest)
    )
    if not src.has_images:
        raise CurateError(
            f"{src.spec} holds embeddings, not images: train-encoder needs images (a folder, a "
            "manifest of image paths, torchvision:NAME or demo)"
        )
    split = src.index["split"].to_numpy()
    pool = np.flatnonzero(split == "train")
    if limit is not None:
        if int(limit) < 2:
            raise CurateError(f"--limit must be at least 2 images (got {limit})")
        if int(limit) < len(pool):
            pool = np.sort(np.random.default_rng(seed).choice(pool, size=int(limit), replace=False))
    if len(pool) < 2:
        raise CurateError(f"the source has {len(pool)} training image(s): self-supervised training needs at least 2")
    size = int(image_size or _default_size(src, backbone))
    if size < 8:
        raise CurateError(f"--image-size {size} is too small: pass at least 8 pixels")
    spec = backbone_spec(backbone, image_size=size)
    bs = min(int(batch_size), len(pool))
    lr = float(lr if lr is not None else (5e-4 if method == "dino" else 1e-3))
    epochs = int(epochs)
    knn_every = max(1, epochs // 5) if knn_every is None else int(knn_every)  # 0: never
    params = {
        "method": method,
        "backbone": spec,
        "epochs": epochs,
        "batch_size": bs,
        "lr": lr,
        "seed": seed,
        "n_images": int(len(pool)),
        "rows": fingerprint(pool.tolist()),
    }
    key = fingerprint("ssl-encoder", TRAIN_VERSION, src.fingerprint, params)
    out_dir = Path(workdir).expanduser().resolve() / "encoders" / key
    final = out_dir / "encoder.pt"
    latest = Path(workdir).expanduser().resolve() / "encoders" / LATEST
    if final.exists():
        meta = json.loads((out_dir / "train.json").read_text())
        rep.stage("train-encoder", cached=True, detail=str(final))
        write_json(latest, {"encoder": str(final)})  # what was asked for last is what --weights WORKDIR means
        return _result(final, meta, cached=True)
    out_dir.mkdir(parents=True, exist_ok=True)

    job = _Training(
        src,
        pool,
        out_dir,
        params=params,
        spec=spec,
        device=dev,
        knn_every=knn_every,
        num_workers=num_workers,
        checkpoint_every_s=checkpoint_every_s,
        reporter=rep,
    )
    meta = job.run()
    write_json(latest, {"encoder": str(final)})
    return _result(final, meta, cached=False, resumed_from=job.resumed_from)


def _default_size(src, backbone: str) -> int:
    """The data's own resolution for arrays (28 for Fashion-MNIST); 32 px for small-cnn, 64 otherwise."""
    if src.images is not None:
        return int(max(src.images.shape[1:3]))
    return 32 if backbone == "small-cnn" else 64


def _result(path: Path, meta: dict, *, cached: bool, resumed_from: int | None = None) -> TrainedEncoder:
    return TrainedEncoder(
        path=path,
        method=meta["method"],
        backbone=meta["backbone"]["name"],
        epochs=meta["epochs"],
        image_size=meta["backbone"]["image_size"],
        n_images=meta["n_images"],
        history=meta["history"],
        seconds=meta["seconds"],
        cached=cached,
        resumed_from_epoch=resumed_from,
    )


class _ImageViews:
    """Rows -> augmented views (a list of tensors), or None for an image that cannot be read."""

    def __init__(self, src, rows: np.ndarray, transform):
        self.src, self.rows, self.transform = src, rows, transform

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, i):
        try:
            out = self.transform(self.src.load_image(int(self.rows[i])))
        except Exception:  # noqa: BLE001 - one unreadable file must not stop a training; it is counted
            return None
        return out if isinstance(out, (list, tuple)) else [out]


def _collate_views(items):
    import torch

    items = [it for it in items if it is not None]
    if not items:
        return None, 0
    return [torch.stack([it[v] for it in items]) for v in range(len(items[0]))], len(items)


class _Training:
    """One training job: the loop, its checkpoints and its kNN monitor."""

    def __init__(
        self, src, pool, out_dir: Path, *, params, spec, device, knn_every, num_workers, checkpoint_every_s, reporter
    ):
        self.src, self.pool, self.dir = src, pool, out_dir
        self.params, self.spec, self.device = params, spec, device
        self.knn_every, self.checkpoint_every_s, self.rep = knn_every, checkpoint_every_s, reporter
        cores = os.cpu_count() or 1
        # on a small CPU the workers' augmentation competes with the training itself for the same cores
        self.num_workers = num_workers if num_workers is not None else (0 if cores <= 2 else min(6, cores - 1))
        self.resumed_from: int | None = None
        self._stop = False

    # -- the loop ---------------------------------------------------------
    def run(self) -> dict:
        import torch

        with torch.random.fork_rng(devices=[]):  # the caller's global RNG is left as it was
            return self._run()

    def _run(self) -> dict:
        import torch

        from . import ssl_models
        from .backbones import build_backbone

        p, dev = self.params, self.device
        cuda = dev.startswith("cuda")
        torch.manual_seed(p["seed"])
        mean, std = self._stats()
        backbone, dim = build_backbone(self.spec)
        model: Any = ssl_models.MODELS[p["method"]](backbone, dim, epochs=p["epochs"]).to(dev)
        # channels-last: faster convolutions on CUDA; on this 2-core CPU it measured between 0.5x (batch 64)
        # and 1.1x (batch 512), so the CPU keeps the default layout
        channels_last = cuda and not self.spec["name"].startswith("timm:vit")
        if channels_last:
            model = model.to(memory_format=torch.channels_last)
        opt = torch.optim.AdamW(
            [q for q in model.parameters() if q.requires_grad],
            lr=p["lr"],
            weight_decay=0.04 if p["method"] == "dino" else 1e-4,
        )
        steps_per_epoch = max(1, len(self.pool) // p["batch_size"])
        total_steps = steps_per_epoch * p["epochs"]
        from lightly.utils.scheduler import CosineWarmupScheduler

        sched = CosineWarmupScheduler(
            opt, warmup_epochs=min(steps_per_epoch, max(1, total_steps // 10)), max_epochs=total_steps
        )
        amp_dtype = (torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16) if cuda else None
        scaler = torch.amp.GradScaler("cuda", enabled=amp_dtype == torch.float16)
        transform = ssl_models.transform_for(p["method"], image_size=self.spec["image_size"], mean=mean, std=std)
        knn_sets = self._knn_sets()

        epoch, step_in_epoch, history, seconds = 0, 0, [], 0.0
        ckpt = self.dir / "checkpoint.pt"
        if ckpt.exists():
            state = torch.load(ckpt, map_location=dev, weights_only=True)
            if state.get("params") == json.loads(json.dumps(p)):
                model.load_state_dict(state["model"])
                opt.load_state_dict(state["optimizer"])
                sched.load_state_dict(state["scheduler"])
                scaler.load_state_dict(state["scaler"])
                torch.set_rng_state(state["rng"])
                epoch, step_in_epoch = int(state["epoch"]), int(state["step_in_epoch"])
                history, seconds = list(state["history"]), float(state["seconds"])
                self.resumed_from = epoch
                self.rep.info(
                    f"resuming the training from epoch {epoch}"
                    + (f", step {step_in_epoch}" if step_in_epoch else "")
                    + f" ({ckpt})"
                )

        def save(ep: int, step: int) -> None:
            with atomic_path(ckpt) as tmp:
                torch.save(
                    {
                        "params": p,
                        "model": model.state_dict(),
                        "optimizer": opt.state_dict(),
                        "scheduler": sched.state_dict(),
                        "scaler": scaler.state_dict(),
                        "rng": torch.get_rng_state(),
                        "epoch": ep,
                        "step_in_epoch": step,
                        "history": history,
                        "seconds": seconds + (time.perf_counter() - t_session),
                    },
                    tmp,
                )

        t_session = time.perf_counter()
        step_times: list[float] = []
        self.rep.info(
            f"training {p['method']} / {self.spec['name']} at {self.spec['image_size']} px on {dev}: "
            f"{len(self.pool)} images, {p['epochs']} epochs of {steps_per_epoch} "
            f"step{'s' if steps_per_epoch != 1 else ''} "
            f"(batch {p['batch_size']}), workers {self.num_workers}"
        )
        previous = self._catch_sigint()
        try:
            while epoch < p["epochs"]:
                t_epoch = time.perf_counter()
                loader = self._loader(transform, epoch, step_in_epoch)
                self.rep.stage(f"epoch {epoch + 1}/{p['epochs']}")
                model.train()
                losses, skipped, last_save = [], 0, time.perf_counter()
                step = step_in_epoch
                for views, n_ok in loader:
                    if views is None or n_ok < 2:
                        skipped += n_ok if views is None else 0
                        continue
                    t_step = time.perf_counter()
                    views = [v.to(dev, non_blocking=True) for v in views]
                    if channels_last:
                        views = [v.to(memory_format=torch.channels_last) for v in views]
                    progress = (epoch * steps_per_epoch + step) / total_steps
                    with torch.autocast("cuda", dtype=amp_dtype, enabled=amp_dtype is not None):
                        loss = model.loss(views, epoch=epoch, progress=progress)
                    if not torch.isfinite(loss):
                        raise CurateError(
                            f"the training diverged (loss {loss.item()}) in epoch {epoch + 1}: "
                            f"lower --lr (now {p['lr']:g}) or use another --method"
                        )
                    opt.zero_grad(set_to_none=True)
                    scaler.scale(loss).backward()
                    model.after_backward(epoch)
                    scaler.step(opt)
                    scaler.update()
                    sched.step()
                    losses.append(float(loss.detach()))
                    step += 1
                    step_times.append(time.perf_counter() - t_step)
                    self.rep.update(step, steps_per_epoch)
                    if self._stop:
                        save(epoch, step)
                        raise KeyboardInterrupt
                    if time.perf_counter() - last_save > self.checkpoint_every_s and step < steps_per_epoch:
                        save(epoch, step)
                        last_save = time.perf_counter()
                self.rep.end_stage()
                epoch += 1
                step_in_epoch = 0
                entry: dict[str, Any] = {
                    "epoch": epoch,
                    "loss": float(np.mean(losses)) if losses else None,
                    "seconds": round(time.perf_counter() - t_epoch, 2),
                    "skipped": skipped,
                }
                if knn_sets is not None and self.knn_every and (epoch % self.knn_every == 0 or epoch == p["epochs"]):
                    t_knn = time.perf_counter()
                    entry["knn_accuracy"] = self._knn(model.export(), knn_sets, mean, std)
                    entry["knn_seconds"] = round(time.perf_counter() - t_knn, 2)
                history.append(entry)
                save(epoch, 0)
                self._write_meta(history, seconds + time.perf_counter() - t_session, mean, std, done=False)
                done_epochs = epoch - (self.resumed_from or 0)
                eta = (time.perf_counter() - t_session) / max(done_epochs, 1) * (p["epochs"] - epoch)
                knn = f", kNN accuracy {entry['knn_accuracy']:.3f}" if "knn_accuracy" in entry else ""
                self.rep.info(
                    f"epoch {epoch}/{p['epochs']}: loss {entry['loss']:.4f}{knn}, "
                    f"{entry['seconds']:.0f} s; ETA {_duration(eta)}"
                    + (f"; {skipped} unreadable images skipped" if skipped else "")
                )
        finally:
            self._restore_sigint(previous)
            self.rep.end_stage()

        seconds += time.perf_counter() - t_session
        weights = {
            "format": FORMAT,
            "version": TRAIN_VERSION,
            "method": p["method"],
            "backbone": self.spec,
            "feature_dim": int(dim),
            "epochs": p["epochs"],
            "image_size": self.spec["image_size"],
            "mean": list(mean),
            "std": list(std),
            "state_dict": {k: v.detach().cpu() for k, v in model.export().state_dict().items()},
            "source": {
                "fingerprint": self.src.fingerprint,
                "description": self.src.description,
                "n_images": p["n_images"],
            },
            "knn_accuracy": next((h["knn_accuracy"] for h in reversed(history) if "knn_accuracy" in h), None),
        }
        with atomic_path(self.dir / "encoder.pt") as tmp:
            torch.save(weights, tmp)
        meta = self._write_meta(history, seconds, mean, std, done=True)
        ckpt.unlink(missing_ok=True)  # the optimiser state is not needed once the weights are written
        return meta

    # -- pieces -----------------------------------------------------------
    def _loader(self, transform, epoch: int, start_step: int):
        """This epoch's batches: a seeded permutation of the pool, skipping the steps already done."""
        import torch
        from torch.utils.data import DataLoader

        bs = self.params["batch_size"]
        order = np.random.default_rng([self.params["seed"], epoch]).permutation(len(self.pool))
        order = order[: (len(order) // bs) * bs][start_step * bs :]  # drop_last: BatchNorm needs full batches
        torch.manual_seed(self.params["seed"] * 100_003 + epoch * 1_009 + start_step)  # augmentations
        gen = torch.Generator().manual_seed(self.params["seed"] * 7_919 + epoch)
        views: Any = _ImageViews(self.src, self.pool[order], transform)  # a map-style dataset (len + getitem)
        return DataLoader(
            views,
            batch_size=bs,
            shuffle=False,
            num_workers=self.num_workers,
            collate_fn=_collate_views,
            generator=gen,
            pin_memory=self.device.startswith("cuda"),
            persistent_workers=False,
            prefetch_factor=4 if self.num_workers else None,
        )

    def _stats(self) -> tuple[list[float], list[float]]:
        """Per-channel mean and std of up to 512 images at the training size (the normalisation of the encoder)."""
        from PIL import Image

        size = self.spec["image_size"]
        rows = np.random.default_rng(self.params["seed"]).permutation(self.pool)[:512]
        acc = []
        for r in rows:
            try:
                img = self.src.load_image(int(r)).resize((size, size), Image.Resampling.BILINEAR)
            except Exception:  # noqa: BLE001 - unreadable: the training skips it too
                continue
            acc.append(np.asarray(img, np.float32).reshape(-1, 3) / 255.0)
        if not acc:
            raise CurateError("none of the first sampled images could be read: check the files passed to --source")
        x = np.concatenate(acc)
        return [round(float(v), 4) for v in x.mean(0)], [round(max(float(v), 1e-3), 4) for v in x.std(0)]

    def _knn_sets(self):
        """(bank rows, bank labels, query rows, query labels) for the kNN monitor, or None without labels."""
        labels = self.src.index["label"].to_numpy(object)
        split = self.src.index["split"].to_numpy()
        rng = np.random.default_rng(self.params["seed"] + 1)
        labelled = np.array([lab is not None and lab == lab for lab in labels])
        train = np.flatnonzero(labelled & (split == "train"))
        test = np.flatnonzero(labelled & (split != "train"))
        if len(train) < 2:
            return None
        train = np.sort(rng.permutation(train)[: KNN_BANK + (0 if len(test) else KNN_QUERIES)])
        if len(test):
            bank, queries = train[:KNN_BANK], np.sort(rng.permutation(test)[:KNN_QUERIES])
        else:  # no held-out split: a fifth of the labelled sample as queries, disjoint from the bank
            perm = rng.permutation(train)
            cut = max(1, len(perm) // 5)
            queries, bank = np.sort(perm[:cut]), np.sort(perm[cut:])
        if len(bank) == 0 or len(np.unique(labels[bank].astype(str))) < 2:
            return None
        return bank, labels[bank].astype(str), queries, labels[queries].astype(str)

    def _knn(self, backbone, sets, mean, std) -> float:
        from .knn import knn_accuracy

        bank, bank_labels, queries, query_labels = sets
        feats = embed_rows(
            backbone,
            self.src,
            np.concatenate([bank, queries]),
            image_size=self.spec["image_size"],
            mean=mean,
            std=std,
            device=self.device,
            num_workers=self.num_workers,
        )
        return round(knn_accuracy(feats[: len(bank)], bank_labels, feats[len(bank) :], query_labels), 4)

    def _write_meta(self, history, seconds, mean, std, *, done: bool) -> dict:
        meta = {
            **self.params,
            "history": history,
            "seconds": round(seconds, 2),
            "mean": mean,
            "std": std,
            "device": self.device,
            "done": done,
            "source": self.src.spec,
            "num_workers": self.num_workers,
        }
        write_json(self.dir / "train.json", meta)
        return meta

    # Ctrl-C finishes the current step, writes a checkpoint, then stops (an interrupt inside
    # optimizer.step() could leave half-updated weights in the checkpoint).
    def _catch_sigint(self):
        if threading.current_thread() is not threading.main_thread():
            return None

        def handler(signum, frame):
            self._stop = True

        return signal.signal(signal.SIGINT, handler)

    @staticmethod
    def _restore_sigint(previous) -> None:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)


def eval_transform(image_size: int, mean, std):
    """Resize the short side, centre crop, normalise: the preprocessing of a trained encoder."""
    from torchvision import transforms as T

    return T.Compose([T.Resize(image_size), T.CenterCrop(image_size), T.ToTensor(), T.Normalize(mean, std)])


def embed_rows(
    backbone,
    src,
    rows: np.ndarray,
    *,
    image_size: int,
    mean,
    std,
    device: str = "cpu",
    batch_size: int = 256,
    num_workers: int = 0,
) -> np.ndarray:
    """Features of ``rows`` (N x D float32; an unreadable image gets a zero row) in eval mode."""
    import torch
    from torch.utils.data import DataLoader

    tf = eval_transform(image_size, mean, std)

    class _Rows:
        def __len__(self):
            return len(rows)

        def __getitem__(self, i):
            try:
                return tf(src.load_image(int(rows[i]))), True
            except Exception:  # noqa: BLE001
                return torch.zeros(3, image_size, image_size), False

    was_training = backbone.training
    backbone.eval()
    out = []
    with torch.inference_mode():
        dataset: Any = _Rows()
        for x, _ in DataLoader(dataset, batch_size=batch_size, num_workers=num_workers):
            x = x.to(device)
            with torch.autocast("cuda", dtype=torch.float16, enabled=device.startswith("cuda")):
                out.append(backbone(x).flatten(1).float().cpu().numpy())
    backbone.train(was_training)
    return np.concatenate(out) if out else np.zeros((0, 1), np.float32)


def _duration(seconds: float) -> str:
    seconds = max(0.0, float(seconds))
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


__all__ = ["METHODS", "BACKBONES", "TrainedEncoder", "train_encoder", "embed_rows", "eval_transform"]
