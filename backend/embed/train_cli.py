"""``curate train-encoder``: train a self-supervised encoder on your own images (same code as the Python API)."""

from __future__ import annotations

import argparse

DESCRIPTION = """\
Train a self-supervised encoder (SimCLR, BYOL or DINO, from the lightly
library) on the images of a source, offline; no labels needed. It writes
<workdir>/encoders/<key>/encoder.pt (and prints it); embed with it through
  curate run --source S --workdir W --encoder ssl --weights FILE
A checkpoint is written after every epoch and on Ctrl-C: the same command
again resumes it; a finished training is a cache hit. With labels, the kNN
accuracy on a labelled hold-out is printed every few epochs (higher = better
embedding; compare it with the pixels encoder's in benchmarks/bench_encoders.py).
On a CPU keep the small default backbone at the data's own resolution; on a
CUDA GPU training uses mixed precision."""

EPILOG = """examples:
  curate train-encoder --source demo --workdir work --limit 10000 --epochs 5
  curate train-encoder --source ~/data/pets --workdir work --backbone resnet18 --image-size 64 --device cuda
  curate train-encoder --source ~/data/pets --workdir work --method dino --epochs 50
"""


def _positive(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"{v} must be at least 1")
    return v


def add_parser(subparsers) -> argparse.ArgumentParser:
    from .backbones import BACKBONES
    from .ssl_train import DEFAULT_EPOCHS, METHODS

    p = subparsers.add_parser(
        "train-encoder",
        help="train a self-supervised encoder on your images (offline)",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--source", required=True, help="the images: demo | folder | manifest | torchvision:NAME (as for curate run)"
    )
    p.add_argument("--workdir", required=True, help="folder for checkpoints and the trained encoder")
    p.add_argument("--method", choices=METHODS, default="simclr", help="self-supervised method (default: simclr)")
    p.add_argument(
        "--backbone",
        default="small-cnn",
        help=f"{', '.join(BACKBONES)} or timm:MODEL (default: small-cnn, fast on a CPU)",
    )
    p.add_argument("--epochs", type=_positive, default=DEFAULT_EPOCHS, help=f"epochs (default: {DEFAULT_EPOCHS})")
    p.add_argument(
        "--image-size",
        type=_positive,
        help="training resolution (default: the data's own for array "
        "data sets, else 32 for small-cnn and 64 for others)",
    )
    p.add_argument("--batch-size", type=_positive, default=256, help="images per step (default: 256)")
    p.add_argument("--lr", type=float, help="AdamW learning rate (default: 1e-3; dino 5e-4)")
    p.add_argument("--limit", type=_positive, help="train on at most N images of the pool (seeded sample)")
    p.add_argument("--knn-every", type=int, help="kNN accuracy every N epochs (default: about 5 times; 0: never)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda (default: auto = cuda when available)")
    p.add_argument("--seed", type=int, default=0, help="seed for initialisation, order and augmentations")
    p.add_argument(
        "--workers",
        type=int,
        dest="num_workers",
        help="DataLoader workers for the augmentations (default: 0 on 2 cores, else cores - 1, max 6)",
    )
    p.add_argument("--data-root", help="root folder of torchvision data sets (default: $CURATE_DATA_ROOT or ./data)")
    p.add_argument("--download", action="store_true", help="let torchvision download a missing data set")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(handler=cmd_train_encoder)
    return p


def cmd_train_encoder(args) -> int:
    import json

    from ..progress import TqdmReporter
    from .ssl_train import train_encoder

    rep = TqdmReporter()
    try:
        res = train_encoder(
            args.source,
            args.workdir,
            method=args.method,
            backbone=args.backbone,
            epochs=args.epochs,
            image_size=args.image_size,
            batch_size=args.batch_size,
            lr=args.lr,
            device=args.device,
            seed=args.seed,
            limit=args.limit,
            knn_every=args.knn_every,
            num_workers=args.num_workers,
            data_root=args.data_root,
            download=args.download,
            reporter=rep,
        )
    finally:
        rep.end_stage()
    if args.json:
        print(
            json.dumps(
                {
                    "weights": str(res.path),
                    "method": res.method,
                    "backbone": res.backbone,
                    "epochs": res.epochs,
                    "image_size": res.image_size,
                    "images": res.n_images,
                    "knn_accuracy": res.knn_accuracy,
                    "train_seconds": round(res.seconds, 1),
                    "cached": res.cached,
                    "history": res.history,
                },
                indent=2,
            )
        )
        return 0
    knn = f"{res.knn_accuracy:.3f}" if res.knn_accuracy is not None else "n/a (no labels)"
    print(f"encoder: {res.path}" + (" (cached)" if res.cached else ""))
    print(
        f"  {'method':14s} {res.method} / {res.backbone} at {res.image_size} px, {res.epochs} epochs, "
        f"{res.n_images} images"
    )
    print(f"  {'kNN accuracy':14s} {knn}")
    print(f"  {'train time':14s} {res.seconds:.0f} s")
    print(f"  {'--weights':14s} {args.workdir} now means this encoder ({args.workdir}/encoders/latest.json)")
    print(f"next: {res.run_command(args.source, args.workdir)}")
    return 0
