"""The ``curate`` command: one pipeline, the same code path as the Python API and the app."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from pathlib import Path

from . import __version__
from .errors import CurateError

EPILOG = """examples:
  curate run --source demo --workdir work
  curate run --source ~/data/pets --workdir work --encoder resnet50 --weights swav_r50.pth
  curate select --workdir work --keep 0.7 --strategy hard --out kept.csv
  curate export-tree --workdir work --keep 0.7 --out kept_tree/
  curate app --workdir work
"""


# More sub-commands, one module each: ``add_parser(subparsers)`` adds the sub-parser and sets
# ``handler=...`` with ``set_defaults`` (see backend/scaling/cli.py).  A module that is not there is skipped.
COMMAND_MODULES = (
    "backend.scaling.cli",  # curate scaling
    "backend.scores.cli",  # curate scores, import-scores, benchmark-metrics
    "backend.dedup.cli",  # curate dedup
    "backend.verify.cli",  # curate verify
    "backend.embed.train_cli",  # curate train-encoder
)


def _fraction(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number: pass e.g. 0.7") from None


def _add_selection_args(p: argparse.ArgumentParser) -> None:
    from .scores import METRICS
    from .select import BALANCES, STRATEGIES

    p.add_argument("--workdir", required=True, help="the workdir of `curate run` (its latest run) or a run folder")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--keep", type=_fraction, metavar="FRACTION", help="share of examples to keep, 0 < f <= 1")
    g.add_argument("--keep-count", type=int, metavar="N", help="number of examples to keep instead of a fraction")
    p.add_argument(
        "--strategy", choices=list(STRATEGIES), default="hard", help=STRATEGIES.help("hard").replace("%", "%%")
    )
    p.add_argument(
        "--metric",
        default="ssl_prototype",
        help="difficulty column to rank by: " + ", ".join(METRICS) + " (default: ssl_prototype)",
    )
    p.add_argument("--balance", choices=list(BALANCES), default="none", help=BALANCES.help("none").replace("%", "%%"))
    p.add_argument(
        "--floor-share",
        type=_fraction,
        metavar="S",
        help="class-floor / cluster-floor: the share of its random-pruning count every group keeps "
        "at least (default: 0.5)",
    )
    p.add_argument(
        "--min-per-class",
        type=int,
        default=0,
        metavar="N",
        help="every class keeps at least N examples (all of it when smaller), enforced (default: 0)",
    )
    p.add_argument(
        "--min-per-cluster",
        type=int,
        default=0,
        metavar="N",
        help="every k-means cluster keeps at least N examples, enforced (default: 0)",
    )
    p.add_argument(
        "--ccs-beta",
        type=_fraction,
        metavar="B",
        help="ccs: share of the hardest dropped first (default: by keep fraction, as the CCS paper: "
        "0 when keeping more than 30%%, 0.1 at 30%% or less, 0.3 at 10%% or less)",
    )
    p.add_argument("--ccs-strata", type=int, metavar="K", help="ccs: equal-width score strata (default: 50)")
    p.add_argument(
        "--dedup-eps",
        type=_fraction,
        metavar="EPS",
        help="dedup+hard / dedup+easy: duplicates have cosine similarity above 1 - EPS (default: 0.05)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed for the random strategy (default: 0)")
    p.add_argument("--force", action="store_true", help="overwrite an existing output")


def selection_options(args) -> dict:
    """The strategy's and balance's options given on the command line (those that apply to the setting)."""
    from .select import BALANCES, STRATEGIES

    applies = {**STRATEGIES.entry(args.strategy).options, **BALANCES.entry(args.balance).options}
    given = {
        "floor_share": args.floor_share,
        "ccs_beta": args.ccs_beta,
        "ccs_strata": args.ccs_strata,
        "dedup_eps": args.dedup_eps,
    }
    out = {k: v for k, v in given.items() if v is not None and k in applies}
    ignored = sorted(k for k, v in given.items() if v is not None and k not in applies)
    if ignored:
        raise CurateError(
            f"--{ignored[0].replace('_', '-')} does not apply to --strategy {args.strategy} --balance {args.balance}"
        )
    return {**out, "min_per_class": args.min_per_class, "min_per_cluster": args.min_per_cluster}


def _source_help() -> str:
    from .sources import SOURCE_KINDS

    return "; ".join(f"{e.info['spec']}: {e.info['description']}" for e in SOURCE_KINDS.entries())


def _metric_help() -> str:
    from .scores import METRICS

    return "; ".join(
        f"{e.name} ({'default' if e.info['default'] else 'on request'}, "
        f"{'labels, ' if e.info['needs_labels'] else ''}{e.info['cost']})"
        for e in METRICS.entries()
    )


def build_parser() -> argparse.ArgumentParser:
    from .embed import ENCODERS
    from .projection import MAP_METHODS

    parser = argparse.ArgumentParser(
        prog="curate",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=EPILOG,
        description="Find the redundant part of an image data set and prune it "
        "(self-supervised prototypes, Sorscher et al. 2022).",
    )
    parser.add_argument("--version", action="version", version=f"curation-studio {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    r = sub.add_parser(
        "run",
        help="compute embeddings, clusters, difficulty scores and the 2-D map",
        description="Compute embeddings, spherical k-means clusters, difficulty scores and the "
        "2-D map for a source; print the run directory. Stages are cached in the "
        "workdir: the same inputs again are a cache hit, and an interrupted run "
        "resumes where it stopped.",
    )
    r.add_argument("--source", required=True, help="what to read: " + _source_help())
    r.add_argument("--workdir", required=True, help="folder for the cache and the runs (created if missing)")
    r.add_argument(
        "--encoder",
        default="pixels",
        choices=ENCODERS,
        help="embedding model (default: pixels, which needs no weights)",
    )
    r.add_argument(
        "--weights",
        help="weights FILE or FOLDER: a torchvision state dict (e.g. self-supervised "
        "SwAV/DINO ResNet-50), a timm/open_clip checkpoint, encoder.pt from "
        "`curate train-encoder` (or its workdir); 'imagenet' (local caches only; "
        "default) or 'random' (untrained, for tests)",
    )
    r.add_argument("--image-size", type=int, help="input size for the encoder (pixels: 32; torchvision: 224)")
    r.add_argument(
        "--k",
        type=int,
        help="number of k-means clusters (default: number of classes when "
        "labelled, else round(sqrt(N/2)) clipped to 2..1000)",
    )
    r.add_argument("--device", default="auto", help="auto | cpu | cuda (default: auto = cuda when available)")
    r.add_argument(
        "--map", dest="map_method", default="umap", choices=MAP_METHODS, help="2-D map method (default: umap)"
    )
    r.add_argument("--seed", type=int, default=0, help="seed for k-means, the map and sampling (default: 0)")
    r.add_argument("--data-root", help="root folder of torchvision data sets (default: $CURATE_DATA_ROOT or ./data)")
    r.add_argument("--download", action="store_true", help="let torchvision download a missing data set")
    r.add_argument("--manifest", help="ids/paths/labels for a .npy of precomputed embeddings (same row order)")
    r.add_argument("--limit", type=int, help="use at most N examples per split (seeded sample), for a quick look")
    r.add_argument(
        "--batch-size", type=int, help="images per batch (default: 256 for pixels and on CUDA, 32 for CNNs on a CPU)"
    )
    r.add_argument("--workers", type=int, dest="num_workers", help="DataLoader workers (default: min(4, cores))")
    r.add_argument(
        "--metrics",
        metavar="NAME,...",
        help="difficulty metrics to compute, comma-separated (default: every default metric; metrics "
        "that need labels are skipped on unlabelled data): " + _metric_help(),
    )
    from .runners import RUNNERS

    r.add_argument(
        "--engine",
        default="local",
        choices=list(RUNNERS),
        help="where the embedding and nearest-centroid passes run, same results on each: "
        + RUNNERS.help("local")
        + "; ray needs pip install 'curation-studio[distributed]'",
    )
    r.add_argument(
        "--address",
        help="--engine ray: the cluster, auto (the one `ray start` started here) or "
        "HOST:PORT (default: a Ray instance started on this machine)",
    )
    r.add_argument(
        "--keep-current",
        action="store_true",
        help="leave the workdir's current run (latest.json: what --workdir means for select, scaling, info, app) "
        "as it was; a workdir without one still gets this run",
    )
    r.add_argument("--json", action="store_true", help="print the summary as JSON")

    s = sub.add_parser(
        "select",
        help="write the kept subset (.csv/.parquet/.json/.txt) and its manifest",
        description="Write the kept subset. The format follows the --out ending: .csv, .parquet, "
        ".json (one row per kept example with example_id, path, label, cluster, rank "
        "and every score) or .txt (one path, or id, per line). FILE.manifest.json "
        "beside it records everything needed to reproduce the list.",
    )
    _add_selection_args(s)
    s.add_argument("--out", required=True, help="output file; its ending picks the format")

    e = sub.add_parser(
        "export-tree",
        help="build an ImageFolder tree of symlinks to the kept images",
        description="Build OUT/<label>/<image> symlinks to the kept images (sources are never "
        "copied, moved or modified; array data sets are written as PNG).",
    )
    _add_selection_args(e)
    e.add_argument("--out", required=True, help="output folder")

    i = sub.add_parser("info", help="print the summary of a finished run")
    i.add_argument("--workdir", required=True, help="workdir or run folder")
    i.add_argument("--json", action="store_true", help="print as JSON")

    a = sub.add_parser(
        "app",
        help="open the Streamlit app on a finished run",
        description="Start the app at http://127.0.0.1:PORT (no usage statistics are sent).",
    )
    a.add_argument("--workdir", default="work", help="workdir with runs (default: ./work)")
    a.add_argument("--port", type=int, default=8501, help="port (default: 8501)")
    a.add_argument("--address", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    a.add_argument(
        "--allow-dir", action="append", default=[], help="another folder the app may read from or write to (repeatable)"
    )

    for module in COMMAND_MODULES:
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            # the module (or its package) is absent: no such command here; a broken import inside it is a bug
            if exc.name is None or not (module == exc.name or module.startswith(exc.name + ".")):
                raise
            continue
        mod.add_parser(sub)
    return parser


def _print_summary(summary: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(summary, indent=2))
        return
    print(f"run directory: {summary['run_dir']}")
    for key in ("source", "examples", "holdout", "skipped", "image_size", "encoder", "embedding_dim", "k"):
        print(f"  {key:14s} {summary[key]}")
    print(f"  {'scores':14s} {', '.join(summary['scores'])}")
    if summary.get("classes"):
        counts = ", ".join(f"{c}: {n}" for c, n in summary["classes"].items())
        print(f"  {'classes':14s} {len(summary['classes'])} ({counts})")


def cmd_run(args) -> int:
    from .jobs import current_run_key
    from .pipeline import run_pipeline
    from .progress import TqdmReporter

    rep = TqdmReporter()
    keep = current_run_key(args.workdir) if args.keep_current else None
    try:
        run = run_pipeline(
            args.source,
            args.workdir,
            encoder=args.encoder,
            weights=args.weights,
            image_size=args.image_size,
            k=args.k,
            seed=args.seed,
            device=args.device,
            map_method=args.map_method,
            data_root=args.data_root,
            download=args.download,
            manifest=args.manifest,
            limit=args.limit,
            batch_size=args.batch_size,
            num_workers=args.num_workers,
            engine=args.engine,
            address=args.address,
            metrics=args.metrics,
            reporter=rep,
        )
    finally:
        rep.end_stage()  # close a progress bar, so an error message starts on its own line
    if keep is not None:
        _restore_current_run(args.workdir, keep, run.dir.name)
    _print_summary(run.summary(), args.json)
    if run.summary()["skipped"]:
        print(f"  skipped files are listed in {run.dir / 'skipped.csv'}")
    return 0


def _restore_current_run(workdir, key: str, ours: str) -> None:
    """--keep-current: point latest.json back at the run it named before (the pipeline always moves it).

    Only when it names this run now: a run another command finished meanwhile stays current."""
    from .jobs import current_run_key, set_current_run

    if current_run_key(workdir) == ours != key:
        set_current_run(workdir, key)


def _selection(args):
    from . import load_run, select_subset

    run = load_run(args.workdir)
    sel = select_subset(
        run,
        keep=args.keep,
        keep_count=args.keep_count,
        strategy=args.strategy,
        metric=args.metric,
        balance=args.balance,
        seed=args.seed,
        **selection_options(args),
    )
    return run, sel


def cmd_select(args) -> int:
    from .select import write_selection

    _, sel = _selection(args)
    out = write_selection(sel, args.out, force=args.force)
    print(f"kept {sel.n_kept} of {sel.n_total} examples ({sel.n_kept / sel.n_total:.1%}) -> {out}")
    print(f"manifest: {out.with_name(out.name + '.manifest.json')}")
    return 0


def cmd_export_tree(args) -> int:
    from .select import export_tree

    run, sel = _selection(args)
    res = export_tree(run, sel, args.out, force=args.force)
    how = f"{res['symlinks']} symlinks" if res["symlinks"] else f"{res['png_written']} PNG files (array data set)"
    print(f"kept {sel.n_kept} of {sel.n_total} examples -> {res['out']} ({how})")
    return 0


def cmd_info(args) -> int:
    from . import load_run

    _print_summary(load_run(args.workdir).summary(), args.json)
    return 0


def _app_hosts(address: str) -> list[str]:
    """Host names the app answers to (server.allowedHosts): loopback names and the bound address."""
    hosts = ["localhost", "127.0.0.1", "::1"]
    if address in ("0.0.0.0", "::", ""):  # every interface, on purpose: the machine's name too
        import socket

        hosts.append(socket.gethostname())
    elif address not in hosts:
        hosts.append(address)
    return hosts


def _runs_outside(workdir: Path, allowed: list[Path]) -> list[str]:
    """Image folders of the workdir's runs that the app will not be allowed to read."""
    out = []
    for cfg in sorted(workdir.glob("runs/*/run.json")):
        try:
            src = json.loads(cfg.read_text()).get("source", {})
        except (OSError, ValueError):
            continue
        if src.get("kind") not in ("folder", "manifest") or not src.get("spec"):
            continue
        folder = Path(src["spec"]).resolve()
        folder = folder if src["kind"] == "folder" else folder.parent
        if not any(folder == d or folder.is_relative_to(d) for d in allowed) and str(folder) not in out:
            out.append(str(folder))
    return out


def cmd_app(args) -> int:
    app = Path(__file__).resolve().parent.parent / "curation_app" / "app.py"
    if not app.exists():
        raise CurateError(f"the app is not installed ({app} is missing): reinstall curation-studio")
    workdir = Path(args.workdir).expanduser().resolve()
    allowed = [workdir] + [Path(d).expanduser().resolve() for d in args.allow_dir]
    # CURATE_ALLOWED_DIRS confines every read of the backend's sources in the server process
    # (folder walks, manifest rows, thumbnails): see backend/sources/confine.py
    env = dict(
        os.environ,
        CURATE_WORKDIR=str(workdir),
        CURATE_ALLOWED_DIRS=os.pathsep.join(str(d) for d in dict.fromkeys(allowed)),
    )
    hosts = _app_hosts(args.address)
    # curation_app.serve is `streamlit run` with Streamlit's public-IP lookups switched off (no outbound request);
    # server.allowedHosts refuses WebSockets whose Host is not this machine's (DNS rebinding)
    cmd = [
        sys.executable,
        "-m",
        "curation_app.serve",
        "run",
        str(app),
        "--server.headless",
        "true",
        "--server.address",
        args.address,
        "--server.port",
        str(args.port),
        "--server.enableCORS",
        "true",
        "--server.enableXsrfProtection",
        "true",
        "--browser.gatherUsageStats",
        "false",
        "--global.developmentMode",
        "false",
    ]
    for host in hosts:
        cmd += ["--server.allowedHosts", host]
    print(f"curation-studio app on http://{args.address}:{args.port} (workdir {workdir}); Ctrl-C to stop", flush=True)
    for folder in _runs_outside(workdir, allowed):
        print(
            f"note: the images in {folder} are outside the folders the app may read: pass --allow-dir {folder} "
            "to see them",
            flush=True,
        )
    # replace this process, so Ctrl-C and kill reach Streamlit itself (a child would be orphaned)
    os.execve(sys.executable, cmd, env)
    return 0  # pragma: no cover - execve does not return


COMMANDS = {"run": cmd_run, "select": cmd_select, "export-tree": cmd_export_tree, "info": cmd_info, "app": cmd_app}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 2
    handler = COMMANDS.get(args.command) or getattr(args, "handler", None)
    assert handler is not None, f"sub-command {args.command!r} has no handler"
    try:
        return handler(args)
    except CurateError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("\ninterrupted: finished work is kept; run the same command again to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
