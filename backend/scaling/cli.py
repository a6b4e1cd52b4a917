"""``curate scaling``: the empirical scaling estimate from the command line (same code as the API)."""

from __future__ import annotations

import argparse

DESCRIPTION = """\
Estimate what pruning costs on held-out data before you train: for several
initial sizes (random subsets of the pool), keep fractions and strategies
(keep hard / keep easy / random), train a linear probe on the frozen
embeddings and measure its error on held-out data that is never pruned (the
run's test split, or a stratified 20% hold-out carved from the pool). Prints
the error table at full size, the power-law fit of the unpruned curve, whether
the Pareto frontier beats it, and a recommendation. Cached in the workdir:
the same parameters again are a cache hit."""

EPILOG = """examples:
  curate scaling --workdir work
  curate scaling --workdir work --metric supervised_prototype --tolerance 1
  curate scaling --workdir work --fractions 0.2,0.4,0.6,0.8,1 --initial-sizes 0.25,1 --seeds 2
"""


def _float_list(text: str) -> list[float]:
    try:
        vals = [float(t) for t in text.replace(" ", "").split(",") if t]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a comma-separated list of numbers: pass e.g. 0.1,0.5,1"
        ) from None
    if not vals:
        raise argparse.ArgumentTypeError("empty list: pass e.g. 0.1,0.5,1")
    return vals


def _pp(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of percentage points: pass e.g. 0.5") from None
    if not 0 <= v < 100:
        raise argparse.ArgumentTypeError(f"--tolerance {v} must be in [0, 100) percentage points")
    return v


def add_parser(subparsers) -> argparse.ArgumentParser:
    from ..scores import METRICS
    from ..select import BALANCES, STRATEGIES

    p = subparsers.add_parser(
        "scaling",
        help="estimate held-out error after pruning (scaling curves)",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--workdir", required=True, help="the workdir of `curate run` (its latest run) or a run folder")
    p.add_argument(
        "--metric",
        default="ssl_prototype",
        help="difficulty to prune by: " + ", ".join(METRICS) + " or another score column "
        "(default: ssl_prototype; recomputed inside every initial subset)",
    )
    p.add_argument(
        "--fractions",
        type=_float_list,
        metavar="F,F,...",
        help="keep fractions, comma-separated (default: 0.1,0.2,...,1.0; 1 is always added)",
    )
    p.add_argument(
        "--initial-sizes",
        type=_float_list,
        metavar="Q,Q,...",
        help="initial subset sizes as fractions of the pool (default: 0.125,0.25,0.5,1)",
    )
    p.add_argument("--seeds", type=int, default=3, help="repeats with different subsets and k-means seeds (default: 3)")
    p.add_argument(
        "--probe",
        choices=("linear", "mlp"),
        default="linear",
        help="linear: logistic regression on the embeddings (default); mlp: one hidden layer (slow without a GPU)",
    )
    p.add_argument(
        "--tolerance",
        type=_pp,
        default=0.5,
        metavar="PP",
        help="error increase, in percentage points, that still counts as free (default: 0.5)",
    )
    p.add_argument(
        "--strategies",
        metavar="S,S,...",
        help="strategies to estimate, comma-separated (default: hard,easy; random is always in): "
        + ", ".join(STRATEGIES),
    )
    p.add_argument(
        "--balances",
        metavar="B,B,...",
        help="balances to estimate each strategy under (default: none): " + ", ".join(BALANCES),
    )
    p.add_argument(
        "--settings",
        metavar="S:B,...",
        help="the exact strategy:balance pairs to estimate instead of --strategies x --balances, "
        "e.g. hard:none,easy:class-floor (random:none is always in)",
    )
    p.add_argument("--device", default="auto", help="auto | cpu | cuda (default: auto)")
    p.add_argument("--force", action="store_true", help="recompute even when the result is cached")
    p.set_defaults(handler=cmd_scaling)
    return p


def _fmt_pct(x) -> str:
    return "   -  " if x is None or x != x else f"{100 * x:5.1f}%"


def cmd_scaling(args) -> int:
    from ..progress import TqdmReporter
    from . import estimate_scaling

    rep = TqdmReporter()
    settings = None
    if args.settings:
        from ..errors import CurateError

        if args.strategies or args.balances:
            raise CurateError("pass either --settings or --strategies / --balances, not both")
        pairs = [t for t in args.settings.replace(" ", "").split(",") if t]
        if not pairs or any(t.count(":") != 1 for t in pairs):
            raise CurateError(f"--settings {args.settings!r}: pass strategy:balance pairs, e.g. hard:none,easy:none")
        settings = [t.split(":") for t in pairs]
    elif args.strategies or args.balances:
        strategies = (args.strategies or "hard,easy").replace(" ", "").split(",")
        balances = (args.balances or "none").replace(" ", "").split(",")
        settings = [[st, b] for st in strategies if st for b in balances if b]
    res = estimate_scaling(
        args.workdir,
        metric=args.metric,
        fractions=args.fractions,
        initial_sizes=args.initial_sizes,
        seeds=args.seeds,
        probe=args.probe,
        tolerance=args.tolerance / 100.0,
        device=args.device,
        reporter=rep,
        force=args.force,
        settings=settings,
    )
    rep.end_stage()
    print(format_result(res))
    return 0


def format_result(res) -> str:
    """The report printed by ``curate scaling``."""
    p = res.params
    out = []
    c = res.curves
    full_q = c["initial_fraction"].max()
    n_full = int(c.loc[c["initial_fraction"] == full_q, "initial_size"].iloc[0])
    metric = p.get("metric_name", p["metric"])
    out.append(
        f"held-out error of a {p['probe']} probe, metric {metric}, initial size {n_full} "
        f"(mean over {len(p['seeds'])} seed(s)):"
    )
    t = res.table()
    fr = list(t.columns)
    width = max([8, *(len(str(i)) for i in t.index)])
    out.append("  " + "keep".ljust(width) + "  " + " ".join(f"{f:>6g}" for f in fr))
    for st, row in t.iterrows():
        out.append(f"  {st:{width}s}  " + " ".join(_fmt_pct(row[f]) for f in fr))
    others = sorted(q for q in c["initial_fraction"].unique() if q != full_q)
    if others:
        out.append("unpruned error by initial size (every size's curves are in points.csv):")
        rnd = c[(c["strategy"] == "random") & (c["keep_fraction"] == 1.0)].sort_values("initial_size")
        out.append(
            "  " + ", ".join(f"n={int(r.initial_size)}: {_fmt_pct(r.error_mean).strip()}" for r in rnd.itertuples())
        )
    fit = res.powerlaw
    if fit.get("ok"):

        def pm(v, s):
            return f"{v:.3g}" + (f" ± {s:.2g}" if s is not None else "")

        out.append(
            f"power law (random subsets, {fit['n_points']} points): error = {pm(fit['a'], fit['a_std'])} "
            f"* n^-({pm(fit['nu'], fit['nu_std'])}) + {pm(fit['c'], fit['c_std'])}"
            + ("" if fit.get("with_floor") else f"  [{fit['note']}]")
        )
    else:
        out.append(f"power law: {fit.get('note')}")
    b = res.beats_powerlaw
    if b.get("max_gain") is None:
        out.append(f"frontier vs power law: {b.get('note')}")
    elif b["beats"]:
        out.append(
            f"the Pareto frontier beats the power law at n = {', '.join(str(n) for n in b['where'])} "
            f"(up to {100 * b['max_gain']:.2f} pp lower error)"
        )
    else:
        out.append(
            f"the Pareto frontier does not beat the power law by more than its uncertainty "
            f"(largest gap {100 * b['max_gain']:+.2f} pp)"
        )
    r = res.recommendation
    out.append("")
    out.append(r["sentence"])
    out.append(f"evidence: {r['evidence']}")
    out.append(r["proxy_note"])
    out.append("")
    h = res.holdout
    out.append(f"held-out: {h['kind']}, {h['size']} examples, never pruned")
    how = "cached result (computed in" if res.cached else "computed in"
    out.append(
        f"{how} {res.elapsed_s:.1f} s{')' if res.cached else ''}: {p.get('n_probes_trained', '?')} probes "
        f"on {p.get('device') or '?'}"
    )
    out.append("files:")
    for f in res.files.values():
        out.append(f"  {f}")
    return "\n".join(out)
