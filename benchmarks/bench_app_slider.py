#!/usr/bin/env python
"""Benchmark: what one move of the Prune page's keep slider costs, at 100,000 examples.

What a slider move does in the app (curation_app/views/prune.py) and what is timed here:

1. **slider work**, in-process, with the page's own functions: ``Ranking.mask(n_keep)`` on the
   cached ranking, kept counts per class and per cluster, floor checks, the score histogram
   of the kept part, the margin (the next 12 examples in keep order), and building the three
   figures the page redraws (per-class bars, the histogram with the cut, the scaling-curves
   chart with the slider marked, when ``backend.scaling`` has a cached estimate).
2. **baseline**, the same run: rebuilding the ``Ranking`` on every move (what the page would
   cost without the cache); the ratio shows what caching buys.
3. **AppTest round trip**: ``at.slider("w.prune.keep").set_value(x).run()`` on the real
   router, i.e. the whole Prune page script re-run (widgets, metrics, charts serialised to
   protobuf, the cached theory view), as Streamlit does on a slider move, minus the browser.
4. The Map page's first render and a re-render at the same size (sample, 100k-point WebGL
   scatter build and serialisation).

Budget: <= 300 ms per slider move at 100,000 examples on 2 CPU cores.

Usage::

    # a 100k-example run from precomputed embeddings (about a minute):
    python benchmarks/bench_app_slider.py --make-run /tmp/app100k --n 100000
    python benchmarks/bench_app_slider.py --workdir /tmp/app100k
    python benchmarks/bench_app_slider.py --workdir /tmp/app100k --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
BUDGET_MS = 300.0


def make_run(workdir: Path, n: int, dim: int = 64, classes: int = 20, seed: int = 0) -> None:
    """A labelled run from synthetic embeddings (class = one of ``classes`` Gaussian blobs)."""
    import pandas as pd

    import backend

    rng = np.random.default_rng(seed)
    src = workdir / "source"
    src.mkdir(parents=True, exist_ok=True)
    centres = rng.normal(size=(classes, dim)).astype(np.float32)
    lab = rng.integers(0, classes, n)
    x = centres[lab] + 0.8 * rng.normal(size=(n, dim)).astype(np.float32)
    np.save(src / "emb.npy", x.astype(np.float32))
    pd.DataFrame(
        {"example_id": [f"ex{i:07d}" for i in range(n)], "label": [f"class_{c:02d}" for c in lab], "split": "train"}
    ).to_csv(src / "manifest.csv", index=False)
    t = time.perf_counter()
    backend.run_pipeline(str(src / "emb.npy"), workdir, manifest=str(src / "manifest.csv"), map_method="pca")
    print(f"made a {n:,}-example run in {workdir} in {time.perf_counter() - t:.1f} s")


def _stats(ms: list[float]) -> dict:
    a = np.asarray(ms)
    return {
        "median_ms": round(float(np.median(a)), 2),
        "p90_ms": round(float(np.percentile(a, 90)), 2),
        "max_ms": round(float(a.max()), 2),
        "n": len(ms),
    }


def indexed_work(run, rk, n_keep: int) -> None:
    """What the Prune page's fragment computes now after a move: the numbers from the per-ranking index
    (components/kept_counts.py, O(classes + clusters + bins)), without the O(N) mask; figures as below."""
    from curation_app.components import figures, summaries
    from curation_app.components.kept_counts import kept_index, score_bins

    idx = kept_index(rk)
    cl_codes, lab = _cache["cl_codes"], _cache["lab"]
    scores, edges = _cache["scores"]
    bins = idx.labelling_codes("bins", lambda: score_bins(scores, edges), len(edges))
    q = idx.quota(n_keep)
    cl_kept = idx.counts("cluster", cl_codes, len(_cache["cl_names"]), n_keep, quota=q)
    summaries.floor_violations(_cache["cl_names"], _cache["cl_total"], cl_kept, 10)
    lab_kept = idx.counts("label", lab[0], len(lab[1]), n_keep, quota=q)
    summaries.floor_violations(lab[1], lab[2], lab_kept, 10)
    kept_h = idx.counts("bins", bins, len(edges), n_keep, quota=q)[:-1]
    cut = idx.cut(scores, n_keep, rk.strategy, rk.balance)
    idx.margin(n_keep, 12)
    for f in (
        figures.class_counts_figure(lab[1], lab[2], lab_kept, floor=10, title="Kept per class"),
        figures.score_histogram(edges, kept_h, _cache["all_h"] - kept_h, metric="ssl_prototype", cut=cut),
    ):
        f.to_json()


def slider_work(run, rk, n_keep: int, scaling) -> None:
    """What prune.py computed after a slider move before the index (O(N) mask, bincounts, histogram)."""
    from curation_app.components import figures, summaries

    t = run.table
    n = len(t)
    mask = rk.mask(n_keep)
    cl_codes = _cache["cl_codes"]
    lab_codes, lab_names, lab_total = _cache["lab"]
    cl_kept = summaries.group_counts(cl_codes, len(_cache["cl_names"]), mask)
    summaries.floor_violations(_cache["cl_names"], _cache["cl_total"], cl_kept, 10)
    lab_kept = summaries.group_counts(lab_codes, len(lab_names), mask)
    summaries.floor_violations(lab_names, lab_total, lab_kept, 10)
    scores, edges = _cache["scores"]
    kept_h = summaries.histogram(scores, edges, mask)
    all_h = _cache["all_h"]
    cut = summaries.cut_value(scores, mask, rk.strategy, rk.balance)
    summaries.margin_positions(rk, n_keep, n, mask, count=12)
    figs = [
        figures.class_counts_figure(lab_names, lab_total, lab_kept, floor=10, title="Kept per class"),
        figures.score_histogram(edges, kept_h, all_h - kept_h, metric="ssl_prototype", cut=cut),
    ]
    if scaling is not None:
        figs.append(figures.scaling_figure(scaling.curves, scaling.powerlaw, scaling.frontier, n_current=n_keep))
    for f in figs:  # Streamlit serialises each figure to JSON on every run
        f.to_json()


_cache: dict = {}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workdir", help="workdir (or run folder) of a finished run")
    ap.add_argument("--make-run", metavar="DIR", help="first make a synthetic labelled run in DIR")
    ap.add_argument("--n", type=int, default=100_000, help="examples of --make-run (default 100,000)")
    ap.add_argument("--dim", type=int, default=64, help="embedding dimensions of --make-run (default 64)")
    ap.add_argument("--moves", type=int, default=30, help="slider moves timed in-process (default 30)")
    ap.add_argument("--apptest-moves", type=int, default=10, help="AppTest slider round trips (default 10)")
    ap.add_argument("--baseline-moves", type=int, default=5, help="moves with the ranking rebuilt (default 5)")
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args(argv)
    if args.make_run:
        make_run(Path(args.make_run).resolve(), args.n, args.dim)
        args.workdir = args.workdir or args.make_run
    if not args.workdir:
        ap.error("pass --workdir (or --make-run DIR)")

    import backend
    from curation_app.components import summaries

    t0 = time.perf_counter()
    run = backend.load_run(args.workdir)
    t = run.table
    n = len(t)
    load_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    rk = backend.Ranking(t, strategy="hard", metric="ssl_prototype", balance="none", seed=0)
    ranking_s = time.perf_counter() - t0
    _cache["cl_codes"] = t["cluster"].to_numpy().astype(np.int64)
    _cache["cl_names"] = [str(i) for i in range(int(_cache["cl_codes"].max()) + 1)]
    _cache["cl_total"] = np.bincount(_cache["cl_codes"])
    codes, names = summaries.codes(t["label"])
    _cache["lab"] = (codes, names, np.bincount(codes, minlength=len(names)))
    s = t["ssl_prototype"].to_numpy(np.float64)
    _cache["scores"] = (s, summaries.score_edges(s))
    _cache["all_h"] = summaries.histogram(s, _cache["scores"][1])
    scaling = None
    try:
        from backend.scaling import load_scaling

        scaling = load_scaling(run, metric="ssl_prototype")
    except ImportError:
        pass
    cores = os.cpu_count()
    print(f"run: {run.dir} | {n:,} examples, k={run.k}, {len(names)} classes | {cores} CPU cores")
    print(
        f"once per run/setting (cached by the app): load {load_s * 1e3:.0f} ms, Ranking {ranking_s * 1e3:.0f} ms"
        f"{'' if scaling is not None else ' | no cached scaling estimate: its chart is not timed'}"
    )

    rng = np.random.default_rng(0)
    fracs = rng.uniform(0.05, 1.0, args.moves + 3)
    slider_work(run, rk, keep_n := backend.keep_count_for(n, keep=0.7), scaling)  # warm-up (imports)
    work_ms, mask_ms = [], []
    for f in fracs:
        k = backend.keep_count_for(n, keep=float(round(f, 2)))
        a = time.perf_counter()
        rk.mask(k)
        b = time.perf_counter()
        slider_work(run, rk, k, scaling)
        c = time.perf_counter()
        mask_ms.append((b - a) * 1e3)
        work_ms.append((c - b) * 1e3)
    indexed_work(run, rk, keep_n)  # warm-up: the index's one-off sorts are made here
    idx_ms = []
    for f in fracs:
        k = backend.keep_count_for(n, keep=float(round(f, 2)))
        a = time.perf_counter()
        indexed_work(run, rk, k)
        idx_ms.append((time.perf_counter() - a) * 1e3)
    base_ms = []
    for f in fracs[: args.baseline_moves]:
        k = backend.keep_count_for(n, keep=float(round(f, 2)))
        a = time.perf_counter()
        rk2 = backend.Ranking(t, strategy="hard", metric="ssl_prototype", balance="none", seed=0)
        slider_work(run, rk2, k, scaling)
        base_ms.append((time.perf_counter() - a) * 1e3)
    res = {
        "n": n,
        "k": run.k,
        "classes": len(names),
        "cores": cores,
        "load_ms": round(load_s * 1e3, 1),
        "ranking_ms": round(ranking_s * 1e3, 1),
        "mask": _stats(mask_ms),
        "slider_work": _stats(work_ms),
        "indexed_work": _stats(idx_ms),
        "baseline_rebuild_ranking": _stats(base_ms),
    }
    ratio = res["baseline_rebuild_ranking"]["median_ms"] / max(res["slider_work"]["median_ms"], 1e-9)
    print(f"mask only              median {res['mask']['median_ms']:8.2f} ms  p90 {res['mask']['p90_ms']:8.2f} ms")
    print(
        f"slider work (in-proc)  median {res['slider_work']['median_ms']:8.2f} ms  p90 "
        f"{res['slider_work']['p90_ms']:8.2f} ms"
    )
    print(
        f"indexed work (the page now) median {res['indexed_work']['median_ms']:8.2f} ms  p90 "
        f"{res['indexed_work']['p90_ms']:8.2f} ms ({res['slider_work']['median_ms'] / max(res['indexed_work']['median_ms'], 1e-9):.1f}x less than the O(N) work)"
    )
    print(
        f"baseline: rebuild Ranking per move  median {res['baseline_rebuild_ranking']['median_ms']:8.2f} ms "
        f"(cached ranking is {ratio:.1f}x faster)"
    )

    if args.apptest_moves:
        from streamlit.testing.v1 import AppTest

        os.environ["CURATE_WORKDIR"] = str(Path(args.workdir).resolve())
        at = AppTest.from_file(str(REPO / "curation_app" / "app.py"), default_timeout=600)
        a = time.perf_counter()
        at.run()
        at.switch_page("views/prune.py").run()
        first_ms = (time.perf_counter() - a) * 1e3
        if at.exception:
            print("the Prune page raised:", at.exception[0].message)
            return 1
        rt = []
        for f in fracs[: args.apptest_moves]:
            v = float(min(1.0, max(0.01, round(f, 2))))
            a = time.perf_counter()
            at.slider(key="w.prune.keep").set_value(v).run()
            rt.append((time.perf_counter() - a) * 1e3)
            want = f"{backend.keep_count_for(n, keep=v):,} of {n:,}"
            got = next(m.value for m in at.metric if m.label == "Kept")
            assert got == want, (got, want)
        res["apptest_first_render_ms"] = round(first_ms, 1)
        res["apptest_slider_round_trip"] = _stats(rt)
        print(f"AppTest Prune page first render (cold caches, theory solve) {first_ms:8.0f} ms")
        print(
            f"AppTest slider set_value().run()  median {res['apptest_slider_round_trip']['median_ms']:8.2f} ms  "
            f"p90 {res['apptest_slider_round_trip']['p90_ms']:8.2f} ms"
        )
        a = time.perf_counter()
        at.switch_page("views/map.py").run()
        map_first = (time.perf_counter() - a) * 1e3
        a = time.perf_counter()
        at.run()
        map_again = (time.perf_counter() - a) * 1e3
        res["apptest_map_first_ms"], res["apptest_map_rerun_ms"] = round(map_first, 1), round(map_again, 1)
        print(f"AppTest Map page: first render {map_first:8.0f} ms, re-run {map_again:8.0f} ms")

    worst = res.get("apptest_slider_round_trip", res["slider_work"])["median_ms"]
    verdict = "within" if worst <= BUDGET_MS else "OVER"
    print(f"budget {BUDGET_MS:.0f} ms per slider move: {verdict} ({worst:.1f} ms median)")
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2) + "\n")
    return 0 if worst <= BUDGET_MS else 1


if __name__ == "__main__":
    sys.exit(main())
