"""``curate import-scores`` and ``curate benchmark-metrics`` (the same code as the Python API)."""

from __future__ import annotations

import argparse

IMPORT_DESCRIPTION = """\
Join a score column from a CSV or Parquet file onto a finished run (e.g.
memorization or influence scores, or the paper's released ImageNet scores).
The column is stored in the run's per-example table, oriented higher = harder
like every score here (--higher keep negates it), and is then available to
curate select, curate scaling, benchmark-metrics and the app. File rows that
match no example are counted and reported; run examples without a score stop
the import unless --allow-missing."""

BENCH_DESCRIPTION = """\
Which metric should you prune by? Runs the scaling estimate (linear probes on
the frozen embeddings, held-out error) for every score column of the run on
the same grid, seeds and hold-out, and prints, for keep 30/50/70/90%, each
metric's error when keeping the hardest and the easiest examples against a
random subset of the same size: the difference with its standard error over
seeds, and a rank. Then the agreement between metrics (Spearman rank
correlation, kept-set overlap) and the stability of ssl_prototype across
k-means seeds and k. Prints a measured cost estimate first. Cached."""


def _float_list(text: str) -> list[float]:
    try:
        vals = [float(t) for t in text.replace(" ", "").split(",") if t]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a comma-separated list of numbers: pass e.g. 0.3,0.5,0.7,0.9"
        ) from None
    if not vals:
        raise argparse.ArgumentTypeError("empty list: pass e.g. 0.3,0.5,0.7,0.9")
    return vals


def add_parser(subparsers) -> None:
    from .base import METRICS
    from .importing import KEYS, ORIENTATIONS

    c = subparsers.add_parser(
        "scores",
        help="compute more metrics on a finished run and add their columns",
        description="Compute registered metrics on a finished run's pool (e.g. the "
        "training-dynamics metrics, which `curate run` skips by default), cache "
        "them and add one column each to the run's table. Prints a cost "
        "estimate measured on a small sample first.",
        epilog="example:\n  curate scores --workdir work --metrics el2n,forgetting,aum",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    c.add_argument("--workdir", required=True, help="the workdir of `curate run` (its latest run) or a run folder")
    c.add_argument("--metrics", required=True, help="comma-separated: " + ", ".join(METRICS))
    c.add_argument(
        "--seeds", type=int, default=5, help="trainings averaged by the training-dynamics metrics (default: 5)"
    )
    c.add_argument("--epoch", type=int, help="epoch EL2N is read at (default: the metric's own, early)")
    c.add_argument("--no-estimate", action="store_true", help="skip the measured cost estimate")
    c.add_argument("--device", default="auto", help="auto | cpu | cuda (default: auto)")
    c.add_argument("--force", action="store_true", help="recompute even when cached")
    c.set_defaults(handler=cmd_scores)

    p = subparsers.add_parser(
        "import-scores",
        help="join a score column from a CSV/Parquet file onto a run",
        description=IMPORT_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  curate import-scores --workdir work mem.csv --column memorization "
        "--higher harder\n  curate import-scores --workdir work released.parquet "
        "--column score --higher keep --key filename --name paper_ssp",
    )
    p.add_argument("--workdir", required=True, help="the workdir of `curate run` (its latest run) or a run folder")
    p.add_argument("file", help="a .csv, .tsv or .parquet file with one row per example")
    p.add_argument("--column", required=True, help="the file's column holding the scores")
    p.add_argument(
        "--higher",
        choices=ORIENTATIONS,
        default="harder",
        help="what a higher value means in the file: harder (stored as is) or keep (the paper's "
        "released scores; stored negated so that higher = harder) (default: harder)",
    )
    p.add_argument(
        "--key",
        choices=KEYS,
        default="example_id",
        help="how file rows find their examples: the file's example_id or path column, or file names "
        "(default: example_id)",
    )
    p.add_argument("--name", help="column name in the run (default: the --column name)")
    p.add_argument(
        "--allow-missing",
        action="store_true",
        help="import even when some run examples have no score (stored as NaN, ranked last)",
    )
    p.add_argument("--force", action="store_true", help="replace an existing column of that name")
    p.set_defaults(handler=cmd_import_scores)

    b = subparsers.add_parser(
        "benchmark-metrics",
        help="every metric's scaling estimate against random, agreement and stability",
        description=BENCH_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  curate benchmark-metrics --workdir work\n"
        "  curate benchmark-metrics --workdir work --metrics ssl_prototype,el2n "
        "--seeds 5",
    )
    b.add_argument("--workdir", required=True, help="the workdir of `curate run` (its latest run) or a run folder")
    b.add_argument("--metrics", help="comma-separated score columns (default: every score column but random)")
    b.add_argument("--seeds", type=int, default=3, help="repeats (subsets, k-means and random seeds; default: 3)")
    b.add_argument(
        "--fractions",
        type=_float_list,
        metavar="F,F,...",
        help="keep fractions of the curves (default: 0.1,...,1; 0.3,0.5,0.7,0.9 are always included)",
    )
    b.add_argument(
        "--initial-sizes",
        type=_float_list,
        metavar="Q,Q,...",
        default=[1.0],
        help="initial subset sizes as fractions of the pool (default: 1)",
    )
    b.add_argument("--probe", choices=("linear", "mlp"), default="linear", help="probe model (default: linear)")
    b.add_argument(
        "--overlap-fraction",
        type=float,
        default=0.7,
        help="keep fraction at which kept sets are compared (default: 0.7)",
    )
    b.add_argument("--no-stability", action="store_true", help="skip the ssl_prototype stability check")
    b.add_argument("--no-estimate", action="store_true", help="skip the measured cost estimate")
    b.add_argument("--device", default="auto", help="auto | cpu | cuda (default: auto)")
    b.add_argument("--force", action="store_true", help="recompute even when cached")
    b.set_defaults(handler=cmd_benchmark_metrics)


def cmd_scores(args) -> int:
    from .. import load_run
    from ..progress import TqdmReporter
    from .benchmark import cost_estimate
    from .compute import compute_scores

    run = load_run(args.workdir)
    names = [m.strip() for m in args.metrics.split(",") if m.strip()]
    if not args.no_estimate and not args.force:
        est = cost_estimate(run, names, measure_all=True, options={"seeds": args.seeds})
        print("cost (registered; one computation timed on a sample, extrapolated to the pool):")
        for r in est.itertuples():
            timed = f"; {r.sample_s:.2f} s on {r.sample:,} examples -> ~{r.pool_s_estimate:.0f} s" if r.sample else ""
            print(f"  {r.metric:24s} {r.cost}{timed}")
    rep = TqdmReporter()
    try:
        res = compute_scores(
            run, names, seeds=args.seeds, epoch=args.epoch, device=args.device, force=args.force, reporter=rep
        )
    finally:
        rep.end_stage()
    if res.scores:  # through the shared helper too: the run folder's lock, provenance and re-recorded files
        from .table import add_score_columns

        add_score_columns(
            run, res.scores, provenance={n: {"kind": "computed", "metric": n, "seeds": args.seeds} for n in res.scores}
        )
    for name, s in res.scores.items():
        how = "cached" if res.cached.get(name) else f"{res.elapsed_s.get(name, 0):.1f} s"
        print(f"{name:24s} {how}: mean {float(s.mean()):.4g}, range [{float(s.min()):.4g}, {float(s.max()):.4g}]")
    for name, why in res.skipped.items():
        print(f"{name}: skipped ({why})")
    print(f"columns added to {res.table_path}")
    return 0


def cmd_import_scores(args) -> int:
    from .importing import import_scores

    rep = import_scores(
        args.workdir,
        args.file,
        column=args.column,
        higher=args.higher,
        key=args.key,
        name=args.name,
        allow_missing=args.allow_missing,
        force=args.force,
    )
    for line in rep.lines():
        print(line)
    return 0


def cmd_benchmark_metrics(args) -> int:
    from .. import load_run
    from ..progress import TqdmReporter
    from .benchmark import _metric_list, benchmark_metrics, cost_estimate, load_benchmark

    run = load_run(args.workdir)
    kw = dict(
        metrics=args.metrics,
        fractions=args.fractions,
        initial_sizes=args.initial_sizes,
        seeds=args.seeds,
        probe=args.probe,
        overlap_fraction=args.overlap_fraction,
        stability=not args.no_stability,
    )
    cached = None if args.force else load_benchmark(run, **kw)
    if cached is None and not args.no_estimate:
        names, _ = _metric_list(run, args.metrics)
        est = cost_estimate(run, names)
        print("cost (registered; measured on a sample for metrics recomputed inside every initial subset):")
        n_sub = len(args.initial_sizes) * args.seeds
        for r in est.itertuples():
            extra = (
                f"; one recomputation: {r.sample_s:.2f} s on {r.sample:,} examples -> ~{r.pool_s_estimate:.0f} s "
                f"on the pool, x{n_sub} subsets"
                if r.recomputed_in_subsets
                else ""
            )
            print(f"  {r.metric:24s} {r.cost}{extra}")
    rep = TqdmReporter()
    try:
        res = cached or benchmark_metrics(run, device=args.device, force=args.force, reporter=rep, **kw)
    finally:
        rep.end_stage()
    print(
        ("cached: " if res.cached else "") + f"benchmark of {len(res.summary)} metrics in {res.elapsed_s:.0f} s "
        f"-> {res.dir}"
    )
    for line in res.lines():
        print(line)
    print("")
    print(
        f"agreement: Spearman rank correlation / kept-set overlap at keep {res.params['overlap_fraction']:.0%} "
        f"(hard; random overlap would be {res.params['overlap_fraction']:.0%})"
    )
    cols = list(res.spearman.columns)
    print(" " * 24 + " ".join(f"{c[:11]:>11s}" for c in cols))
    for a in cols:
        cells = [f"{res.spearman.loc[a, b]:+.2f}/{res.overlap.loc[a, b]:.2f}".rjust(11) for b in cols]
        print(f"{a[:24]:24s}" + " ".join(cells))
    if len(res.stability):
        print("")
        print("stability of ssl_prototype (against the run's own scores):")
        for r in res.stability.itertuples():
            print(
                f"  k={r.k:<6d} seed {r.seed}: Spearman {r.spearman_vs_run:.3f}, kept-set overlap at "
                f"{r.fraction:.0%} {r.kept_overlap_vs_run:.3f}"
            )
    print("")
    print("The estimate comes from linear probes on frozen embeddings, not from your final network.")
    return 0
