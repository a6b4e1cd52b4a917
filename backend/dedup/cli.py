"""``curate dedup``: SemDeDup from the command line (the same code as :func:`backend.dedup.semdedup`)."""

from __future__ import annotations

import argparse

DESCRIPTION = """\
Remove semantic near-duplicates (SemDeDup, Abbas et al. 2023). Inside each
k-means cluster of the run, members are sorted by cosine similarity to their
centroid (least similar first); a member is removed when its cosine similarity
to an earlier member exceeds 1 - eps, so every group of duplicates keeps the
member least similar to the centroid. The search is exact inside each cluster
and cached in the workdir; any other threshold afterwards is instant. Writes
the kept list (OUT), the removed examples with their group and kept
representative (OUT's stem + .removed), a manifest (OUT.manifest.json), and
prints the redundancy curve (share removed vs threshold)."""

EPILOG = """examples:
  curate dedup --workdir work --eps 0.05 --out dedup.csv
  curate dedup --workdir work --target-fraction 0.9 --out kept.parquet
  curate dedup --workdir work --eps 0.05 --out dedup.csv --copies     # + exact near-copies (pHash)
"""


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number: pass e.g. 0.05") from None


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "dedup",
        help="remove semantic near-duplicates (SemDeDup) and write the kept list",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--workdir", required=True, help="the workdir of `curate run` (its latest run) or a run folder")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--eps", type=_number, help="duplicates have cosine similarity > 1 - EPS (e.g. 0.05)")
    g.add_argument(
        "--target-fraction",
        type=_number,
        metavar="F",
        help="keep this share of the examples instead (the threshold is chosen to match)",
    )
    p.add_argument("--out", required=True, help="kept list; its ending picks the format (.csv .parquet .json .txt)")
    p.add_argument(
        "--copies",
        nargs="?",
        type=int,
        const=-1,
        default=None,
        metavar="BITS",
        help="also find exact near-copies (the same image re-saved, resized, re-encoded) by perceptual hash: "
        "256-bit pHash within BITS bits (default 20); writes OUT's stem + .copies.csv",
    )
    p.add_argument("--device", default="cpu", help="cpu | cuda for the search (default: cpu)")
    p.add_argument("--force", action="store_true", help="overwrite existing outputs")
    p.set_defaults(handler=cmd_dedup)
    return p


def cmd_dedup(args) -> int:
    import numpy as np

    from .. import load_run
    from ..embed import resolve_device
    from ..progress import TqdmReporter
    from .core import run_index
    from .export import write_dedup

    run = load_run(args.workdir)
    rep = TqdmReporter()
    try:
        idx = run_index(run, device=resolve_device(args.device), reporter=rep)
    finally:
        rep.end_stage()
    res = idx.at(eps=args.eps, target_fraction=args.target_fraction)
    files = write_dedup(run, res, args.out, force=args.force)
    n = len(res.removed)
    print(f"threshold: cosine similarity > {res.threshold:.4f} (eps {res.eps:.4f})")
    print(
        f"kept {res.n_kept:,} of {n:,} ({res.n_kept / n:.1%}); removed {res.n_removed:,} in {res.n_groups:,} "
        f"duplicate groups -> {files['kept']}"
    )
    print(f"removed, with their groups: {files['removed']}")
    print(f"manifest: {files['manifest']}")
    if args.copies is not None:
        _report_copies(run, args, rep)
    marks = sorted({0.80, 0.85, 0.90, 0.95, 0.98, 0.99, 0.995, 0.999, round(res.threshold, 4)})
    curve = idx.redundancy_curve(np.asarray(marks))
    print("redundancy curve (share removed at each threshold):")
    for r in curve.itertuples():
        here = "  <- this run" if abs(r.threshold - round(res.threshold, 4)) < 1e-9 else ""
        print(f"  > {r.threshold:.4f} (eps {r.eps:.4f}): {r.n_removed:>9,} ({r.share_removed:6.1%}){here}")
    return 0


def _report_copies(run, args, rep) -> None:
    from pathlib import Path

    from ..io import atomic_path
    from .copies import DEFAULT_MAX_DISTANCE, near_copies

    bits = DEFAULT_MAX_DISTANCE if args.copies < 0 else args.copies
    out = Path(args.out)
    dest = out.with_name(out.stem + ".copies.csv")
    if dest.exists() and not args.force:
        from ..errors import CurateError

        raise CurateError(f"{dest} already exists: pass --force to overwrite it or choose another --out")
    try:
        cp = near_copies(run, max_distance=bits, reporter=rep)
    finally:
        rep.end_stage()
    with atomic_path(dest) as tmp:
        cp.frame(run.table).to_csv(tmp, index=False)
    s = cp.summary()
    print(
        f"exact near-copies (pHash, {s['hash_bits']} bits, within {bits}): {s['copies']:,} copies of "
        f"{s['groups']:,} kept images ({s['in_groups']:,} examples in groups) -> {dest}"
    )
