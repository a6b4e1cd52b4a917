"""``curate verify``: train from scratch on a kept subset and on random subsets of the same size."""

from __future__ import annotations

import argparse
import json

DESCRIPTION = """\
Check a selection by training from scratch: a model on the kept subset and on
random subsets of the same size (one per seed), both measured on the held-out
data the scaling estimate used (never trained on). Prints both errors with
their spread next to the errors the cached scaling estimate predicted, and
whether the prediction held. --model probe is the estimate's own linear probe
on the embeddings (seconds); --model mlp its MLP probe (for an estimate made
with --probe mlp); --model cnn trains a small CNN on the images (GPU when
present; small images run on a CPU). The difference's standard error is
paired over the same held-out examples. Cached and resumable."""


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "verify",
        help="train from scratch on the kept subset vs random subsets of its size",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example:\n  curate select --workdir work --keep 0.7 --out kept.csv\n"
        "  curate verify --workdir work --selection kept.csv --model cnn --seeds 3\n",
    )
    p.add_argument("--workdir", required=True, help="the workdir of `curate run` (its latest run) or a run folder")
    p.add_argument(
        "--selection",
        required=True,
        help="the kept list written by `curate select` (.csv/.parquet/"
        ".json/.txt; its manifest beside it names the setting)",
    )
    p.add_argument(
        "--model",
        choices=("probe", "mlp", "cnn"),
        default="probe",
        help="probe: the estimate's linear probe on the embeddings (default, seconds); mlp: the estimate's MLP "
        "probe (check an estimate made with --probe mlp); cnn: a small CNN on the images",
    )
    p.add_argument(
        "--seeds", type=int, default=3, help="trainings per side (random subsets differ per seed; default: 3)"
    )
    p.add_argument("--epochs", type=int, help="cnn: epochs over the kept set (fixed epochs, the default: 15)")
    p.add_argument("--iterations", type=int, help="cnn: fixed SGD steps instead of fixed epochs")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda (default: auto)")
    p.add_argument("--force", action="store_true", help="train again even when the result is cached")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(handler=cmd_verify)
    return p


def cmd_verify(args) -> int:
    from .. import load_run
    from ..progress import TqdmReporter
    from .core import verify_selection

    rep = TqdmReporter()
    try:
        res = verify_selection(
            load_run(args.workdir),
            args.selection,
            model=args.model,
            seeds=args.seeds,
            epochs=args.epochs,
            iterations=args.iterations,
            device=args.device,
            reporter=rep,
            force=args.force,
        )
    finally:
        rep.end_stage()
    if args.json:
        print(json.dumps(res.to_dict(), indent=2, default=str))
        return 0
    s = res.setting
    if s:
        print(f"selection: {s.get('strategy')} / {s.get('balance')} / {s.get('metric')}, {res.n_kept:,} examples")
    print(res.sentence)
    if res.details.get("excluded_in_holdout"):
        print(
            f"({res.details['excluded_in_holdout']} kept examples are in the carved hold-out and were not trained on)"
        )
    print(f"held-out: {res.holdout['kind']}, {res.holdout['size']} examples" + ("  [cached]" if res.cached else ""))
    print(f"result: {res.dir / 'result.json'}")
    return 0
