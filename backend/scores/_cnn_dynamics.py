"""Training dynamics of a small CNN trained on the pixels (the paper's setting): shared by el2n_cnn,
forgetting_cnn and aum_cnn.

:func:`cnn_dynamics` trains :func:`backend.probes.cnn.train_cnn` once per seed
on the images of ``ctx.rows`` and feeds the logits of every training image
after every epoch (evaluation mode, no augmentation) to the same
:class:`~backend.scores._dynamics.DynamicsRecorder` the probe metrics use.
Differences from the probe family, on purpose: the per-epoch outputs are an
evaluation pass after the epoch, not the mini-batch forward pass (so
forgetting counts transitions between epochs and AUM averages the
end-of-epoch margins); nothing is read at initialisation.  Each seed's
training checkpoints every epoch under ``<workdir>/probes-cnn/<key>/`` and an
interrupted computation resumes from the last finished epoch.

Options (``ctx.options``): ``seeds`` (default 5), ``epoch`` (EL2N's epoch,
default 2), ``cnn_epochs`` (default: :class:`backend.probes.cnn.CNNConfig`'s),
``cnn_batch``, ``cnn_lr``, ``cnn_side`` (image side; default: the images', at
most 64 px).

Where the images come from: ``ctx.shared["pixels_loader"]`` (a callable
returning ``(uint8 images [N, H, W, C], ok [N])`` for ``ctx.rows``, set by
:func:`backend.scores.compute.compute_scores`), else ``ctx.source`` indexed by
``ctx.rows`` (the pipeline's context).
"""

from __future__ import annotations

import numpy as np

from ..errors import CurateError
from ..store import fingerprint
from ._dynamics import DEFAULTS, Dynamics, DynamicsRecorder, class_codes
from .base import ScoreContext

CNN_OPTIONS = ("seeds", "epoch", "cnn_epochs", "cnn_batch", "cnn_lr", "cnn_side")
COST = (
    "small-CNN trainings on the pixels (5 seeds x 15 epochs; GPU when present, on a CPU minutes per epoch for "
    "60,000 small images; checkpointed, resumable)"
)


def cnn_options(ctx: ScoreContext) -> dict:
    """The CNN family's options with defaults, validated."""
    from ..probes.cnn import CNNConfig

    o = ctx.options
    base = CNNConfig()
    opts = {
        "seeds": o.get("seeds") or DEFAULTS["seeds"],
        "epoch": o.get("epoch", DEFAULTS["epoch"]),
        "cnn_epochs": o.get("cnn_epochs") or base.epochs,
        "cnn_batch": o.get("cnn_batch") or base.batch_size,
        "cnn_lr": float(o.get("cnn_lr") or base.lr),
        "cnn_side": o.get("cnn_side"),
    }
    try:
        for k in ("seeds", "epoch", "cnn_epochs", "cnn_batch"):
            opts[k] = int(opts[k])
        opts["cnn_side"] = None if opts["cnn_side"] is None else int(opts["cnn_side"])
    except (TypeError, ValueError):
        raise CurateError(f"the CNN metrics' options must be whole numbers (got {dict(o)!r})") from None
    if opts["seeds"] < 1 or opts["cnn_epochs"] < 1:
        raise CurateError("--seeds and cnn_epochs must be at least 1")
    if not 1 <= opts["epoch"] <= opts["cnn_epochs"]:
        raise CurateError(
            f"--epoch {opts['epoch']} must be between 1 and the CNN's epochs ({opts['cnn_epochs']}) for "
            "el2n_cnn (its outputs are read after each epoch)"
        )
    return opts


def _pixels(ctx: ScoreContext, side: int | None) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 images [N, H, W, C], readable [N]) of ``ctx.rows``, loaded once per context."""
    if "pixels" in ctx.shared:
        return ctx.shared["pixels"]
    loader = ctx.shared.get("pixels_loader")
    if loader is not None:
        images, ok = loader()
    elif ctx.source is not None and getattr(ctx.source, "images", None) is not None:
        images = np.asarray(ctx.source.images[np.asarray(ctx.rows)])
        ok = np.ones(len(images), bool)
    elif ctx.source is not None:
        images, ok = _load_files(ctx, side)
    else:
        raise CurateError(
            "the CNN metrics train on the images and none are available here (precomputed "
            "embeddings?): use el2n, forgetting or aum on the embeddings instead"
        )
    images = images[..., None] if images.ndim == 3 else images
    if side and images.shape[1] != side:
        from PIL import Image

        def resize(a):
            img = Image.fromarray(a.squeeze(-1) if a.shape[-1] == 1 else a)
            return np.asarray(img.resize((side, side), Image.Resampling.BILINEAR)).reshape(side, side, -1)

        images = np.stack([resize(a) for a in images])
    ctx.shared["pixels"] = (np.ascontiguousarray(images, np.uint8), np.asarray(ok, bool))
    return ctx.shared["pixels"]


def _load_files(ctx: ScoreContext, side: int | None) -> tuple[np.ndarray, np.ndarray]:
    from PIL import Image

    rows = np.asarray(ctx.rows)
    out, ok = None, np.ones(len(rows), bool)
    for i, r in enumerate(rows):
        try:
            img = ctx.source.load_image(int(r)).convert("RGB")
        except Exception:  # noqa: BLE001 - an unreadable image trains as black and is reported
            img = None
        if out is None:
            s = side or min(max(img.size) if img is not None else 32, 64)
            out = np.zeros((len(rows), s, s, 3), np.uint8)
        if img is None:
            ok[i] = False
        else:
            out[i] = np.asarray(img.resize((out.shape[1], out.shape[2]), Image.Resampling.BILINEAR))
    if out is None:
        raise CurateError("no images to train the CNN on")
    return out, ok


def cnn_dynamics(ctx: ScoreContext) -> Dynamics:
    """Train (once per context and options) the CNN of every seed and record its per-epoch outputs."""
    import time

    from ..probes.cnn import CNNConfig, train_cnn

    if ctx.labels is None:
        raise CurateError("the CNN training-dynamics metrics need labels and this run has none")
    opts = cnn_options(ctx)
    key = ("cnn", tuple(sorted(opts.items())))
    cache = ctx.shared.setdefault("probe_dynamics", {})
    if key in cache:
        return cache[key]
    t0 = time.perf_counter()
    images, ok = _pixels(ctx, opts["cnn_side"])
    if not ok.all():
        ctx.reporter.info(
            f"{int((~ok).sum())} images could not be read: they train as black images and will score as hard"
        )
    classes, y = class_codes(ctx.labels)
    seeds = [int(ctx.seed) + i for i in range(opts["seeds"])]
    rec = DynamicsRecorder(y, len(seeds))
    read_at = {opts["epoch"], opts["cnn_epochs"]}
    every = np.arange(len(y))
    data_fp = fingerprint(
        len(y), fingerprint(np.asarray(ctx.example_ids).astype(str).tolist()), fingerprint(y.tolist()), images.shape
    )
    history = []
    for i, seed in enumerate(seeds):
        cfg = CNNConfig(epochs=opts["cnn_epochs"], batch_size=opts["cnn_batch"], lr=opts["cnn_lr"], seed=seed)
        ckdir = None
        if ctx.workdir is not None:
            ckdir = ctx.workdir / "probes-cnn" / fingerprint(data_fp, repr(cfg))

        def on_epoch(epoch, logits, i=i):
            rec.batch(epoch, every, logits, seed=i)
            if epoch in read_at:
                rec.outputs(epoch, logits, seed=i)

        ctx.reporter.info(f"CNN dynamics: seed {seed} ({i + 1} of {len(seeds)})")
        res = train_cnn(
            images,
            y,
            n_classes=len(classes),
            config=cfg,
            device=ctx.device,
            checkpoint_dir=ckdir,
            reporter=ctx.reporter,
            on_epoch=on_epoch,
        )
        history.append(
            {
                "seed": seed,
                "device": res.device,
                "elapsed_s": round(res.elapsed_s, 3),
                "resumed_from_epoch": res.resumed_from_epoch,
                "seconds_per_epoch": [h["seconds"] for h in res.history],
                "train_error_last": res.history[-1]["train_error"] if res.history else None,
            }
        )
    info = {
        "trainer": "small CNN on the pixels",
        "seeds": seeds,
        **opts,
        "n_classes": int(len(classes)),
        "image_shape": list(images.shape[1:]),
        "runs": history,
        "elapsed_s": round(time.perf_counter() - t0, 3),
    }
    out = rec.result(info=info)
    cache[key] = out
    return out
