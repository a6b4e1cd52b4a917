"""Benchmark: the default scaling grid on Fashion-MNIST-sized embeddings.

    .venv/bin/python benchmarks/bench_scaling.py [--workdir /tmp/scal_demo] [--dims 128,512] [--threads N]

For each embedding width it times the default grid (10 keep fractions x 3
strategies x 3 seeds x 4 initial sizes, ssl_prototype recomputed in every
initial subset) through :func:`backend.scaling.empirical.run_grid` (no
cache), then measures a baseline in the same process: scikit-learn's
``LogisticRegression`` (lbfgs, the same objective: C=1, same iteration cap)
fitted one probe at a time on a few kept sets of the full-size group, its time
per kept example extrapolated to every probe of the grid.  It prints wall
time, CPU time, probes, probes/s, the baseline and the ratio, plus the
held-out error of both on the sampled probes (they should agree).

* 128-D: the demo run (60,000 train + 10,000 test Fashion-MNIST images, the
  ``pixels`` encoder = PCA-128 of the pixels), built with ``--map pca`` when
  the workdir has none.
* 512-D: random ReLU features of the same images (``relu(x @ R)``, R a
  fixed Gaussian 128 x 512 matrix) as a precomputed-embedding run, so the
  shape is that of a ResNet-style 512-D embedding.

Other processes on the machine make the wall times noisy; the load average at
the start is printed with each measurement.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import backend  # noqa: E402
from backend.scaling import empirical as E  # noqa: E402


def demo_run(workdir: Path):
    try:
        return backend.load_run(workdir)
    except backend.CurateError:
        print(f"building the demo run in {workdir} (curate run --source demo --map pca) ...", flush=True)
        return backend.run_pipeline("demo", workdir, map_method="pca")


def wide_run(base, workdir: Path, dim: int):
    d = workdir / f"bench{dim}"
    if (d / "work" / "latest.json").exists():
        return backend.load_run(d / "work")
    d.mkdir(parents=True, exist_ok=True)
    emb = np.asarray(base.embeddings, np.float32)
    emb = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    r = np.random.default_rng(0).normal(size=(emb.shape[1], dim)).astype(np.float32)
    x = np.maximum(emb @ r, 0.0)
    rows = np.concatenate([base.table["row"].to_numpy(), base.holdout["row"].to_numpy()])
    labels = np.concatenate([base.table["label"].to_numpy(), base.holdout["label"].to_numpy()])
    split = ["train"] * len(base.table) + ["test"] * len(base.holdout)
    np.save(d / "emb.npy", x[rows])
    pd.DataFrame({"example_id": [f"x{i}" for i in range(len(rows))], "label": labels, "split": split}).to_csv(
        d / "manifest.csv", index=False
    )
    print(f"building a {dim}-D precomputed-embedding run in {d} ...", flush=True)
    return backend.run_pipeline(str(d / "emb.npy"), d / "work", manifest=str(d / "manifest.csv"), map_method="pca")


def sklearn_baseline(run, points: pd.DataFrame, max_iter: int, threads: int, n_samples: int = 4):
    """Time scikit-learn one probe at a time on a few full-size kept sets; seconds per kept example.

    BLAS threads are limited to the number the grid used, so both sides get the same cores.
    """
    from sklearn.linear_model import LogisticRegression
    from threadpoolctl import threadpool_limits

    table = run.table
    labels = table["label"].astype(str).to_numpy()
    classes = np.unique(labels)
    y = np.searchsorted(classes, labels)
    hold = run.holdout
    y_hold = np.searchsorted(classes, hold["label"].astype(str).to_numpy())
    x, tf = E._features(run.embeddings, table["row"].to_numpy(np.int64))
    x_hold, _ = E._features(run.embeddings, hold["row"].to_numpy(np.int64), tf)
    x, x_hold = x[:, :-1], x_hold[:, :-1]
    seed = 0
    s = E._subset_scores(run, "ssl_prototype", None, np.arange(len(table)), seed, "cpu")
    orders = E._orders(table["example_id"].astype(str).to_numpy(), s, seed)
    from backend.select.subset import keep_count_for

    picks = [("random", 1.0), ("hard", 0.5), ("easy", 0.3), ("hard", 0.1)][:n_samples]
    out = []
    for strategy, f in picks:
        n_keep = keep_count_for(len(table), f)
        rows = orders[strategy][:n_keep]
        t = time.perf_counter()
        c = time.process_time()
        with warnings.catch_warnings(), threadpool_limits(limits=threads):
            warnings.simplefilter("ignore")  # ConvergenceWarning: the iteration cap is the point
            m = LogisticRegression(C=1.0, max_iter=max_iter).fit(x[rows], y[rows])
        wall, cpu = time.perf_counter() - t, time.process_time() - c
        err = float((m.predict(x_hold) != y_hold).mean())
        p = points[
            (points["initial_fraction"] == 1.0)
            & (points["seed"] == seed)
            & (points["strategy"] == strategy)
            & np.isclose(points["keep_fraction"], f)
        ]
        out.append(
            {
                "strategy": strategy,
                "keep": f,
                "n_kept": n_keep,
                "sk_wall_s": wall,
                "sk_cpu_s": cpu,
                "sk_iters": int(np.max(m.n_iter_)),
                "sk_error": err,
                "our_error": float(p["error"].iloc[0]),
            }
        )
    df = pd.DataFrame(out)
    per_example_wall = df["sk_wall_s"].sum() / df["n_kept"].sum()
    per_example_cpu = df["sk_cpu_s"].sum() / df["n_kept"].sum()
    return df, per_example_wall, per_example_cpu


def bench(run, label: str, threads: int | None):
    if threads:
        os.environ["CURATE_SCALING_THREADS"] = str(threads)
    params = E._params(run, "ssl_prototype", None, None, 3, "linear", None)
    _ = run.table, run.embeddings[:1]
    load = os.getloadavg()[0]
    t = time.perf_counter()
    c = time.process_time()
    points, info = E.run_grid(run, params, device="cpu")
    wall, cpu = time.perf_counter() - t, time.process_time() - c
    ip = info["params"]
    n = ip["n_probes_trained"]
    print(f"\n== {label}: {run.n_examples} pool x {ip['embedding_dim']}-D, hold-out {info['holdout']['size']} ==")
    print(f"load average at start {load:.1f} on {os.cpu_count()} CPUs; torch threads {ip['cpu_threads']}")
    print(
        f"default grid: {n} probes trained ({len(points)} grid points), {ip['kept_rows_total']} kept rows, "
        f"at most {params['probe_settings']['max_iter']} L-BFGS iterations "
        f"(mean {ip['probe_iterations_mean']:.1f}, converged {ip['probe_converged_share']:.0%})"
    )
    print(f"wall {wall:.1f} s, CPU {cpu:.1f} s, {n / wall:.1f} probes/s; stages (wall): {ip['timings_s']}")
    df, pew, pec = sklearn_baseline(run, points, params["probe_settings"]["max_iter"], ip["cpu_threads"])
    base_wall = pew * ip["kept_rows_total"]
    base_cpu = pec * ip["kept_rows_total"]
    print("baseline: scikit-learn LogisticRegression(lbfgs, C=1, same max_iter), one probe at a time:")
    print(df.round(4).to_string(index=False))
    print(
        f"baseline extrapolated to the grid's probes: wall {base_wall:.1f} s, CPU {base_cpu:.1f} s "
        f"({n / base_wall:.2f} probes/s)"
    )
    probes = ip["timings_s"]["probes"]
    print(
        f"ratio baseline / ours: {base_wall / probes:.1f}x on probe training ({probes:.1f} s), "
        f"{base_wall / wall:.1f}x on the whole grid including k-means and features (wall); "
        f"{base_cpu / cpu:.1f}x on the whole grid in CPU time"
    )
    print(f"probe matrix products in {ip.get('gemm_dtype')}")
    return {
        "label": label,
        "wall_s": wall,
        "cpu_s": cpu,
        "probes": n,
        "probes_per_s": n / wall,
        "baseline_wall_s": base_wall,
        "baseline_cpu_s": base_cpu,
        "ratio_probe": base_wall / probes,
        "ratio_total_wall": base_wall / wall,
        "ratio_total_cpu": base_cpu / cpu,
    }


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workdir", default="/tmp/scal_demo", help="demo workdir (built if missing)")
    ap.add_argument("--dims", default="128,512", help="embedding widths to run: 128 (the demo), 512, or both")
    ap.add_argument("--threads", type=int, help="torch threads (default: automatic, see empirical._cpu_threads)")
    args = ap.parse_args(argv)
    base = demo_run(Path(args.workdir))
    results = []
    for dim in [int(d) for d in args.dims.split(",")]:
        run = base if dim == base.embeddings.shape[1] else wide_run(base, Path(args.workdir), dim)
        results.append(bench(run, f"{dim}-D", args.threads))
    print("\nsummary:")
    print(pd.DataFrame(results).round(2).to_string(index=False))


if __name__ == "__main__":
    main()
