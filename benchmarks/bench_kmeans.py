#!/usr/bin/env python
"""Benchmark: score N x D embeddings (spherical k-means + ssl_prototype + a keep-0.7 selection).

What it does
------------
1. Generates N x D float32 embeddings from K clusters, chunk-wise, into a
   memory-mapped ``.npy`` in a temporary folder (as the pipeline reads
   ``embeddings.npy``): K random unit centres, each row = centre + Gaussian
   noise (a per-cluster noise level, so the clusters overlap differently),
   times a random positive scale (rows are not unit length).  Cluster sizes
   are unequal (log-normal weights).  The generating cluster of every row is
   kept for the quality check.  Generation is not timed.
2. Scores the file in a *subprocess* (so generation does not count towards
   its memory): ``SphericalKMeans(K, n_iter=ITERS).fit(emb)``, ``predict``,
   ``ssl_prototype``, the per-example table and ``Ranking(...).mask`` at keep
   0.7 (strategy hard, no balancing), as ``backend.pipeline`` does.  It
   reports wall time per phase, CPU time and the peak resident set size
   (``resource.getrusage(RUSAGE_SELF).ru_maxrss``; memory-mapped pages that
   are resident count).
3. Quality: adjusted Rand index of the assignment against the generating
   clusters (all rows), and an exactness check of the reported assignment and
   similarity against an exhaustive fp32 search on a sample of rows.
4. The same run compares, on the first ``--sk-rows`` rows (normalised, in
   memory): our ``fit`` + ``predict`` against scikit-learn's
   ``KMeans(n_clusters=K, n_init=1, max_iter=ITERS, tol=0, algorithm="lloyd",
   init="random")``.fit and against plain ``faiss.Kmeans(spherical=True)``
   started from our k-means++ seeds + an ``IndexFlatIP`` search, with the
   spherical objective (mean cosine of each row to its own normalised
   centroid) and the ARI of each.  ``--faiss-full`` also scores the whole
   file with a minimal faiss pipeline (same sample, ``faiss.Kmeans`` with its
   own initialisation, ``IndexFlatIP`` in chunks); ``--baseline-full`` with
   the fp32 path forced (``CURATE_KMEANS_BF16=0``, for bf16 CPUs).
5. It prints the CPU flags it saw, the k-means path they choose and the
   BLAS libraries' detected kernels, and writes
   ``results/kmeans_<avx2|bf16>[_quick][_compare].json``.

The machine may be shared: the ratios are measured in the same run, and CPU
times are reported beside wall times.

Usage::

    python benchmarks/bench_kmeans.py --faiss-full    # 1M x 512, K=1000, with the minimal faiss pipeline
    python benchmarks/bench_kmeans.py --compare-only  # 100k x 512, K=1000: ours vs faiss vs scikit-learn
    python benchmarks/bench_kmeans.py --quick         # 100k x 512, K=100: smoke test (< 1 min)
    python benchmarks/bench_kmeans.py --n 200000 --k 500 --iters 10 --out /tmp/k.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

GEN_CHUNK = 65536


# --------------------------------------------------------------------------- data


def generate(path: Path, n: int, dim: int, k: int, seed: int, noise: tuple[float, float]) -> dict:
    """Write ``path`` (n x dim float32 .npy) and ``path.labels.npy`` chunk-wise; return the recipe."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((k, dim), dtype=np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    weights = rng.lognormal(0.0, 0.5, size=k)
    weights /= weights.sum()
    # noise norm relative to the unit centre, per cluster: cos(row, own centre) ~ 1/sqrt(1 + r^2)
    ratio = rng.uniform(noise[0], noise[1], size=k).astype(np.float32)
    emb = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n, dim))
    labels = np.lib.format.open_memmap(str(path) + ".labels.npy", mode="w+", dtype=np.int32, shape=(n,))
    for start in range(0, n, GEN_CHUNK):
        m = min(GEN_CHUNK, n - start)
        lab = rng.choice(k, size=m, p=weights).astype(np.int32)
        x = rng.standard_normal((m, dim), dtype=np.float32)
        x *= (ratio[lab] / np.float32(np.sqrt(dim)))[:, None]
        x += centres[lab]
        x *= rng.lognormal(0.0, 0.3, size=(m, 1)).astype(np.float32)
        emb[start : start + m] = x
        labels[start : start + m] = lab
    emb.flush()
    labels.flush()
    del emb, labels
    return {
        "n": n,
        "dim": dim,
        "k": k,
        "seed": seed,
        "noise_ratio_range": list(noise),
        "cluster_weights": "lognormal(0, 0.5)",
        "row_scale": "lognormal(0, 0.3)",
        "expected_cos_to_own_centre": [
            round(1 / np.sqrt(1 + noise[1] ** 2), 3),
            round(1 / np.sqrt(1 + noise[0] ** 2), 3),
        ],
    }


# --------------------------------------------------------------------------- scoring (subprocess)


def score_main(args) -> None:
    """The scoring process: everything after the imports counts (``import_s`` is reported apart:
    in ``curate run`` torch and faiss are already loaded when the clusters stage starts).

    It is started before the parent generates the data and waits for a line on
    stdin: Linux carries a process's peak RSS over ``exec``, so a child forked
    from a big parent would report the parent's size as its ``ru_maxrss``.
    """
    if sys.stdin.readline().strip() != "go":
        return
    t_import = time.perf_counter()
    import pandas as pd

    from backend.cluster import SphericalKMeans
    from backend.cluster import kmeans as kmeans_mod
    from backend.scores import ssl_prototype
    from backend.select.subset import Ranking, keep_count_for

    if args.no_release:
        kmeans_mod._release_pages = lambda *a, **kw: None
    import faiss  # noqa: F401  (loaded by the pipeline before this stage, like torch)

    if kmeans_mod._use_bf16():
        import torch  # noqa: F401
    import_s = time.perf_counter() - t_import
    rss_after_import = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    cpu0 = time.process_time()
    phases, cpu_phases = {}, {}
    t0 = t = time.perf_counter()
    c = time.process_time()
    emb = np.load(args.score, mmap_mode="r")
    if args.engine == "faiss":
        km = _MinimalFaiss(args.k, n_iter=args.iters, random_state=args.seed).fit(emb)
    else:
        km = SphericalKMeans(args.k, n_iter=args.iters, random_state=args.seed).fit(emb)
    phases["fit"] = time.perf_counter() - t
    cpu_phases["fit"] = time.process_time() - c
    rss_after_fit = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t, c = time.perf_counter(), time.process_time()
    assign, sim = km.predict(emb)
    phases["predict"] = time.perf_counter() - t
    cpu_phases["predict"] = time.process_time() - c
    predict_stats = dict(kmeans_mod._last_stats) if args.engine == "ours" else {"path": "faiss IndexFlatIP"}
    t = time.perf_counter()
    table = pd.DataFrame(
        {
            "example_id": [f"train/{i}" for i in range(len(emb))],
            "cluster": assign,
            "centroid_sim": sim,
            "ssl_prototype": ssl_prototype(sim),
        }
    )
    phases["table"] = time.perf_counter() - t
    t = time.perf_counter()
    n_keep = keep_count_for(len(table), 0.7)
    ranking = Ranking(table, strategy="hard", metric="ssl_prototype", balance="none", seed=args.seed)
    kept = ranking.mask(n_keep)
    phases["select"] = time.perf_counter() - t
    wall = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    usage = resource.getrusage(resource.RUSAGE_SELF)
    hwm = _vm_hwm_mb()
    np.save(args.result + ".assign.npy", assign)
    np.save(args.result + ".sim.npy", sim)
    np.save(args.result + ".centroids.npy", km.centroids_)
    out = {
        "wall_s": round(wall, 2),
        "cpu_s": round(cpu, 2),
        "phases_s": {k: round(v, 2) for k, v in phases.items()},
        "cpu_phases_s": {k: round(v, 2) for k, v in cpu_phases.items()},
        "import_s": round(import_s, 2),
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
        "rss_after_import_mb": round(rss_after_import, 1),
        "peak_rss_after_fit_mb": round(rss_after_fit, 1),
        "engine": args.engine,
        "vm_hwm_mb": hwm,
        "backend": km.backend_,
        "n_train": int(km.n_train_),
        "n_iter_run": int(km.n_iter_),
        "n_init": int(getattr(km, "n_init_", 1)),
        "predict_stats": predict_stats,
        "mean_sim_all_rows": round(float(sim.mean()), 5),
        "kept": int(kept.sum()),
        "kept_expected": int(n_keep),
        "threads": {"torch": _torch_threads(), "faiss": _faiss_threads()},
        "release_pages": not args.no_release,
        "env_CURATE_KMEANS_BF16": os.environ.get("CURATE_KMEANS_BF16"),
    }
    Path(args.result).write_text(json.dumps(out, indent=1))


class _MinimalFaiss:
    """The minimal faiss pipeline the issue measures against: the same row sample, normalised chunk by
    chunk, ``faiss.Kmeans(spherical=True)`` with faiss's own initialisation, then ``IndexFlatIP`` over
    every row in chunks.  No restarts, no early stop, no page release."""

    backend_ = "faiss (minimal pipeline)"

    def __init__(self, k, *, n_iter, random_state):
        self.k, self.n_iter, self.random_state = k, n_iter, random_state

    def fit(self, emb):
        import faiss

        from backend.arrays import normalize_inplace

        rng = np.random.default_rng(self.random_state)
        n_train = min(len(emb), max(131072, 40 * self.k))
        rows = np.sort(rng.choice(len(emb), size=n_train, replace=False)) if n_train < len(emb) else None
        xt = np.ascontiguousarray(emb[rows] if rows is not None else emb, dtype=np.float32)
        normalize_inplace(xt)
        km = faiss.Kmeans(
            xt.shape[1],
            self.k,
            niter=self.n_iter,
            spherical=True,
            seed=self.random_state + 1,
            max_points_per_centroid=10**9,
            verbose=False,
        )
        km.train(xt)
        self.centroids_ = km.centroids.copy()
        normalize_inplace(self.centroids_)
        self.n_train_, self.n_iter_ = n_train, self.n_iter
        return self

    def predict(self, emb):
        import faiss

        from backend.arrays import normalize_inplace

        index = faiss.IndexFlatIP(self.centroids_.shape[1])
        index.add(self.centroids_)
        assign = np.empty(len(emb), np.int32)
        sim = np.empty(len(emb), np.float32)
        for s in range(0, len(emb), 65536):
            xc = np.array(emb[s : s + 65536], dtype=np.float32)
            normalize_inplace(xc)
            v, a = index.search(xc, 1)
            assign[s : s + len(xc)], sim[s : s + len(xc)] = a[:, 0], v[:, 0]
        return assign, sim


def _vm_hwm_mb():
    try:
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return None


def _torch_threads():
    try:
        import torch

        return torch.get_num_threads()
    except ImportError:
        return None


def _faiss_threads():
    import faiss

    return faiss.omp_get_max_threads()


class Scorer:
    """A scoring subprocess, started while this process is still small (see ``score_main``)."""

    def __init__(
        self,
        emb_path: Path,
        tmp: Path,
        args,
        *,
        tag: str,
        env: dict | None = None,
        no_release: bool = False,
        engine: str = "ours",
    ):
        self.result = tmp / f"score-{tag}.json"
        cmd = [
            sys.executable,
            __file__,
            "--score",
            str(emb_path),
            "--result",
            str(self.result),
            "--k",
            str(args.k),
            "--iters",
            str(args.iters),
            "--seed",
            str(args.seed),
            "--engine",
            engine,
        ]
        cmd += ["--no-release"] if no_release else []
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, text=True, env={**os.environ, **(env or {})})

    def run(self) -> dict:
        t = time.perf_counter()
        self.proc.communicate("go\n")
        if self.proc.returncode:
            raise SystemExit(f"scoring process failed with exit code {self.proc.returncode}")
        out = json.loads(self.result.read_text())
        out["process_wall_s"] = round(time.perf_counter() - t, 2)
        out["result_prefix"] = str(self.result)
        return out

    def cancel(self):
        if self.proc.poll() is None:
            self.proc.communicate("stop\n")


# --------------------------------------------------------------------------- checks


def exactness(emb, assign, sim, centroids, n_sample: int, seed: int) -> dict:
    """Compare with an exhaustive fp32 (float64 accumulation) search on a sample of rows."""
    from backend.cluster import l2_normalize

    rng = np.random.default_rng(seed + 7)
    rows = np.sort(rng.choice(len(emb), size=min(n_sample, len(emb)), replace=False))
    x = l2_normalize(emb[rows]).astype(np.float64)
    c = l2_normalize(centroids).astype(np.float64)
    s = x @ c.T
    best = s.argmax(axis=1)
    top2 = np.sort(s, axis=1)[:, -2:]
    gap = top2[:, 1] - top2[:, 0]
    differ = assign[rows] != best
    return {
        "rows_checked": int(len(rows)),
        "assignment_differs": int(differ.sum()),
        "assignment_differs_where_gap_gt_1e-5": int((differ & (gap > 1e-5)).sum()),
        "max_abs_sim_error": float(np.abs(sim[rows] - s[np.arange(len(rows)), best]).max()),
        "frac_rows_top2_within_0.01": float((gap < 0.01).mean()),
        "mean_sim": float(s.max(axis=1).mean()),
    }


def _objective(x, labels, centroids) -> float:
    """Mean cosine similarity of each row to its own (normalised) centroid: the spherical objective."""
    from backend.cluster import l2_normalize

    c = l2_normalize(centroids)
    out = 0.0
    for s in range(0, len(x), 65536):
        out += float(np.einsum("nd,nd->n", x[s : s + 65536], c[labels[s : s + 65536]]).sum())
    return out / len(x)


def compare_slice(emb, labels, args) -> dict:
    """Ours vs scikit-learn vs plain faiss with our seeding, on the first rows (normalised, in memory), same run.

    Every run does ``args.iters`` iterations at most; the objective of each is
    computed here the same way (mean cosine to the own normalised centroid).
    """
    import faiss
    from sklearn.cluster import KMeans
    from sklearn.metrics import adjusted_rand_score

    from backend.cluster import SphericalKMeans, l2_normalize
    from backend.cluster import kmeans as kmeans_mod

    m = min(args.sk_rows, len(emb))
    x = l2_normalize(emb[:m])
    y = np.asarray(labels[:m])
    res = {"rows": m, "k": args.k, "iters": args.iters, "runs": []}

    def timed(name, fn):
        w, c = time.perf_counter(), time.process_time()
        lab, cents, extra = fn()
        r = {
            "name": name,
            "wall_s": round(time.perf_counter() - w, 2),
            "cpu_s": round(time.process_time() - c, 2),
            "objective": round(_objective(x, lab, cents), 5),
            "ari_vs_truth": round(float(adjusted_rand_score(y, lab)), 4),
            **extra,
        }
        print(
            f"  {name:44s} wall {r['wall_s']:7.2f} s  cpu {r['cpu_s']:7.2f} s  objective {r['objective']:.5f}  "
            f"ARI {r['ari_vs_truth']:.4f}  { {key: v for key, v in extra.items() if key != 'stages'} }",
            flush=True,
        )
        res["runs"].append(r)
        return r

    def with_env(env_bf16, fn):
        old = os.environ.get("CURATE_KMEANS_BF16")
        if env_bf16 is not None:
            os.environ["CURATE_KMEANS_BF16"] = env_bf16
        try:
            return fn()
        finally:
            if old is None:
                os.environ.pop("CURATE_KMEANS_BF16", None)
            else:
                os.environ["CURATE_KMEANS_BF16"] = old

    def ours(env_bf16=None, **kw):
        def fn():
            def go():
                from backend.cluster import lloyd

                stages = []
                plain = lloyd.spherical_lloyd

                def traced(*a, **kw2):  # the share of the full N x K product each iteration computed
                    st = {}
                    out = plain(*a, stats=st, **kw2)
                    stages.append(
                        {
                            "rows": len(a[0]),
                            "iters": out[1],
                            "work": st["work"],
                            "wild": st["wild_centroids"],
                            "settled": st.get("settled_rows"),  # rows settled against their runner-up only
                        }
                    )
                    return out

                kmeans_mod.spherical_lloyd = traced
                try:
                    km = SphericalKMeans(args.k, n_iter=args.iters, max_train_points=m, random_state=args.seed, **kw)
                    # fit + the exact assignment of every row (the training rows' from the fit's final
                    # bounded step, as scikit-learn's fit ends with labels_ from a final E-step)
                    a, s = km.fit_predict(x)
                finally:
                    kmeans_mod.spherical_lloyd = plain
                return (
                    a,
                    km.centroids_,
                    {
                        "backend": km.backend_,
                        "n_iter_run": int(km.n_iter_),
                        "n_init": int(km.n_init_),
                        "predict_path": (
                            "the fit's final bounded assignment step"
                            if km._train_labels is not None and len(km._train_labels[0]) == len(x)
                            else kmeans_mod._last_stats["path"]
                        ),
                        "full_pass_equivalents": round(
                            sum(sum(st["work"]) * st["rows"] for st in stages) / m, 2
                        ),  # of the training iterations (the final assignment step not counted)
                        "stages": stages,
                    },
                )

            return with_env(env_bf16, go)

        return fn

    def faiss_same_seeding():
        init = kmeans_mod.kmeans_plus_plus(x, args.k, args.seed)
        km = faiss.Kmeans(
            x.shape[1],
            args.k,
            niter=args.iters,
            spherical=True,
            seed=args.seed + 1,
            max_points_per_centroid=10**9,
            min_points_per_centroid=1,
            verbose=False,
        )
        km.train(x, init_centroids=init)
        index = faiss.IndexFlatIP(x.shape[1])
        index.add(l2_normalize(km.centroids))
        _, a = index.search(x, 1)
        return a[:, 0], km.centroids, {"faiss_threads": faiss.omp_get_max_threads()}

    def sklearn_fn(tol=0.0):
        def fn():
            km = KMeans(
                n_clusters=args.k,
                n_init=1,
                max_iter=args.iters,
                tol=tol,
                algorithm="lloyd",
                init="random",
                random_state=args.seed,
            ).fit(x)
            # tol=0: exactly max_iter iterations (+ sklearn's final assignment pass); its default tol (1e-4 x
            # the mean feature variance, on the centre shift) is shown once to say whether it would stop sooner
            return km.labels_, km.cluster_centers_, {"n_iter_run": int(km.n_iter_), "tol": tol}

        return fn

    # warm-up: imports and first-call set-up are not part of the comparison
    w = x[: min(m, 4 * args.k)]
    SphericalKMeans(args.k, n_iter=2, max_train_points=len(w)).fit(w).predict(w)
    KMeans(n_clusters=args.k, n_init=1, max_iter=2, algorithm="lloyd", init="random").fit(w)
    fw = faiss.Kmeans(x.shape[1], args.k, niter=2, spherical=True, verbose=False)
    fw.train(w)

    bf16_cpu = kmeans_mod._use_bf16()
    one_init = False  # ours restarts k-means++ when it is cheap (small data): then also time one start, like sklearn
    for rep in range(args.repeat):
        first = timed("ours: fit_predict", ours())
        if rep == 0:
            one_init = first.get("n_init", 1) > 1
        if one_init:
            timed("ours: fit_predict, n_init=1 (as scikit-learn)", ours(n_init=1))
        if rep == 0 and bf16_cpu:
            timed("ours, fp32 path forced (CURATE_KMEANS_BF16=0)", ours(env_bf16="0"))
        if not args.no_faiss:
            timed("faiss.Kmeans, same k-means++ seeding: +search", faiss_same_seeding)
        if not args.no_sklearn:
            timed("scikit-learn KMeans lloyd, init=random: fit", sklearn_fn())
            if rep == 0 and args.sklearn_default_tol:
                timed("scikit-learn KMeans lloyd, init=random, default tol=1e-4: fit", sklearn_fn(1e-4))
    by = {}
    for r in res["runs"]:
        by.setdefault(r["name"], []).append(r)
    best = {name: min(rs, key=lambda r: r["wall_s"]) for name, rs in by.items()}
    o = best["ours: fit_predict"]
    for key, name in (
        ("faiss", "faiss.Kmeans, same k-means++ seeding: +search"),
        ("sklearn", "scikit-learn KMeans lloyd, init=random: fit"),
        ("fp32_path", "ours, fp32 path forced (CURATE_KMEANS_BF16=0)"),
    ):
        if name in best:
            res[f"ratio_{key}_over_ours_wall"] = round(best[name]["wall_s"] / o["wall_s"], 2)
            res[f"ratio_{key}_over_ours_cpu"] = round(best[name]["cpu_s"] / o["cpu_s"], 2)
            res[f"objective_ours_minus_{key}"] = round(o["objective"] - best[name]["objective"], 5)
    one = best.get("ours: fit_predict, n_init=1 (as scikit-learn)")
    sk = best.get("scikit-learn KMeans lloyd, init=random: fit")
    if one is not None and sk is not None:  # the like-for-like ratio when ours restarted
        res["ratio_sklearn_over_ours_n_init1_wall"] = round(sk["wall_s"] / one["wall_s"], 2)
        res["ratio_sklearn_over_ours_n_init1_cpu"] = round(sk["cpu_s"] / one["cpu_s"], 2)
        res["objective_ours_n_init1_minus_sklearn"] = round(one["objective"] - sk["objective"], 5)
    return res


_FLAGS_OF_INTEREST = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_tile")


def cpu_kind() -> dict:
    """The CPU flags that choose the k-means path, the path they choose, and what the BLAS libraries detected."""
    from backend.cluster import kmeans as kmeans_mod

    model, flags = "", set()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name") and not model:
                model = line.split(":", 1)[1].strip()
            if line.startswith("flags") and not flags:
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    bf16 = kmeans_mod._use_bf16()
    blas = []
    try:
        import faiss  # noqa: F401  (its bundled OpenBLAS shows up below)
        from threadpoolctl import threadpool_info

        blas = [
            f"{i['prefix']} {i.get('version')} {i.get('architecture')} x{i['num_threads']}"
            for i in threadpool_info()
            if i["user_api"] == "blas"
        ]
    except ImportError:
        pass
    return {
        "model": model,
        "flags": [f for f in _FLAGS_OF_INTEREST if f in flags],
        "kind": "bf16" if flags & {"avx512_bf16", "amx_bf16"} else "avx2",
        "path": "bf16 torch (candidate search + exact fp32 re-scoring)"
        if bf16
        else "fp32 numpy BLAS (blocks on a thread per core; Hamerly bounds with a runner-up bound + exactly scored "
        "most-moved centroids; sample stages hand their bounds on)",
        "blas": blas,
        "block_threads": __import__("backend.cluster.lloyd", fromlist=["_workers"])._workers(),
    }


def machine() -> dict:
    import faiss
    import sklearn
    import torch

    model = ""
    flags = set()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name") and not model:
                model = line.split(":", 1)[1].strip()
            if line.startswith("flags") and not flags:
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "cpu": model or platform.processor(),
        "cores": os.cpu_count(),
        "avx512_bf16": "avx512_bf16" in flags,
        "mem_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "torch": torch.__version__,
        "faiss": faiss.__version__,
        "sklearn": sklearn.__version__,
    }


def loadavg():
    try:
        return [float(v) for v in open("/proc/loadavg").read().split()[:3]]
    except OSError:
        return None


# --------------------------------------------------------------------------- main


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--k", type=int, default=1000)
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--noise",
        type=float,
        nargs=2,
        default=(1.0, 2.5),
        metavar=("LO", "HI"),
        help="per-cluster noise norm relative to the unit centre, uniform in [LO, HI]",
    )
    ap.add_argument("--quick", action="store_true", help="100k x 512, K=100, 20k-row comparison: a smoke test")
    ap.add_argument("--sk-rows", type=int, default=100_000, help="rows for the scikit-learn comparison")
    ap.add_argument("--no-sklearn", action="store_true", help="skip scikit-learn in the comparison")
    ap.add_argument(
        "--sklearn-default-tol", action="store_true", help="also run scikit-learn with its default tol (once)"
    )
    ap.add_argument("--no-faiss", action="store_true", help="skip plain faiss in the comparison")
    ap.add_argument("--no-compare", action="store_true", help="skip the whole same-run comparison")
    ap.add_argument(
        "--baseline-full",
        action="store_true",
        help="also score the full file with the fp32 path forced (CURATE_KMEANS_BF16=0): on bf16 CPUs",
    )
    ap.add_argument(
        "--faiss-full",
        action="store_true",
        help="also score the full file with a minimal faiss pipeline (faiss.Kmeans + IndexFlatIP)",
    )
    ap.add_argument(
        "--compare-only",
        action="store_true",
        help="generate --sk-rows rows and run only the same-run comparison (no scoring subprocess)",
    )
    ap.add_argument(
        "--no-release-run",
        action="store_true",
        help="also score the full file without releasing mapped pages (shows the RSS they add)",
    )
    ap.add_argument("--repeat", type=int, default=1, help="repeat the comparison runs (best wall time is kept)")
    ap.add_argument("--check-rows", type=int, default=20000, help="rows for the fp32 exactness check")
    ap.add_argument("--tmpdir", default=None, help="where the temporary .npy goes (default: $TMPDIR)")
    ap.add_argument("--keep-data", action="store_true")
    ap.add_argument("--out", default=None, help="results JSON (default benchmarks/results/kmeans[_quick].json)")
    ap.add_argument("--score", help=argparse.SUPPRESS)
    ap.add_argument("--result", help=argparse.SUPPRESS)
    ap.add_argument("--no-release", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--engine", default="ours", choices=("ours", "faiss"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.score:
        score_main(args)
        return 0
    if args.quick:
        args.n, args.k = 100_000, 100
        args.sk_rows = min(args.sk_rows, 20_000)
    if args.compare_only:
        args.n = args.sk_rows
    # the scoring processes start first, while this one is small (see score_main)
    tmp = Path(tempfile.mkdtemp(prefix="bench_kmeans-", dir=args.tmpdir))
    emb_path = tmp / "embeddings.npy"
    scorers = {} if args.compare_only else {"ours": Scorer(emb_path, tmp, args, tag="ours")}
    if args.no_release_run and not args.compare_only:
        scorers["norelease"] = Scorer(emb_path, tmp, args, tag="norelease", no_release=True)
    if args.baseline_full and not args.compare_only:
        scorers["fp32"] = Scorer(emb_path, tmp, args, tag="fp32", env={"CURATE_KMEANS_BF16": "0"})
    if args.faiss_full and not args.compare_only:
        scorers["faiss"] = Scorer(emb_path, tmp, args, tag="faiss", engine="faiss")
    kind = cpu_kind()
    out_path = (
        Path(args.out)
        if args.out
        else ROOT
        / "benchmarks"
        / "results"
        / (f"kmeans_{kind['kind']}{'_quick' if args.quick else ''}{'_compare' if args.compare_only else ''}.json")
    )
    results = {
        "benchmark": "bench_kmeans",
        "command": " ".join(["python"] + sys.argv),
        "loadavg_start": loadavg(),
        "cpu_kind": kind,
        "targets": {"wall_s": 60, "peak_rss_gb": 3},
    }
    print(
        f"CPU: {kind['model']}; flags seen: {', '.join(kind['flags']) or 'none of interest'}; "
        f"k-means CPU path: {kind['path']} (CURATE_KMEANS_BF16={os.environ.get('CURATE_KMEANS_BF16')}); "
        f"BLAS: {kind['blas']}",
        flush=True,
    )
    sc = None
    try:
        print(f"generating {args.n} x {args.dim} float32 from {args.k} clusters into {emb_path} ...", flush=True)
        t = time.perf_counter()
        results["data"] = generate(emb_path, args.n, args.dim, args.k, args.seed, tuple(args.noise))
        results["data"]["generate_s"] = round(time.perf_counter() - t, 1)
        results["data"]["file_gb"] = round(emb_path.stat().st_size / 2**30, 2)
        print(f"  {results['data']['file_gb']} GB in {results['data']['generate_s']} s", flush=True)

        emb = np.load(emb_path, mmap_mode="r")
        labels = np.load(str(emb_path) + ".labels.npy", mmap_mode="r")
        if not args.compare_only:
            sc = score_full(args, scorers, results, emb, labels)
        if not args.no_compare:
            print(f"same-run comparison on the first {min(args.sk_rows, args.n)} rows:", flush=True)
            results["compare"] = compare_slice(emb, labels, args)
            print(
                "  "
                + ", ".join(f"{k}={v}" for k, v in results["compare"].items() if k.startswith(("ratio", "objective_"))),
                flush=True,
            )
        results["loadavg_end"] = loadavg()
        results["machine"] = machine()
        if sc:
            results["targets"]["wall_ok"] = sc["wall_s"] <= 60
            results["targets"]["rss_ok"] = sc["peak_rss_mb"] <= 3 * 1024
        out_path.parent.mkdir(parents=True, exist_ok=True)
        for r in [results.get("score"), results.get("score_faiss_minimal"), results.get("score_fp32_forced")]:
            if r:
                r.pop("result_prefix", None)
        out_path.write_text(json.dumps(results, indent=1) + "\n")
        print(f"wrote {out_path}")
    finally:
        for sc_ in scorers.values():
            sc_.cancel()
        if args.keep_data:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


def score_full(args, scorers, results, emb, labels) -> dict:
    """Score the whole file in subprocesses (ours, then the optional baselines); quality checks on ours."""
    from sklearn.metrics import adjusted_rand_score

    print(
        f"scoring in a subprocess: k-means k={args.k}, {args.iters} iterations, ssl_prototype, keep 0.7 ...", flush=True
    )
    sc = scorers["ours"].run()
    results["score"] = sc
    print(
        f"  wall {sc['wall_s']} s (cpu {sc['cpu_s']} s; phases {sc['phases_s']}, cpu {sc['cpu_phases_s']}), "
        f"peak RSS {sc['peak_rss_mb']:.0f} MB (VmHWM {sc['vm_hwm_mb']} MB, after imports "
        f"{sc['rss_after_import_mb']:.0f} MB, after fit {sc['peak_rss_after_fit_mb']:.0f} MB), "
        f"{sc['n_iter_run']} iterations on {sc['n_train']} rows, backend {sc['backend']}, "
        f"predict {sc['predict_stats']}",
        flush=True,
    )

    prefix = sc["result_prefix"]
    assign = np.load(prefix + ".assign.npy")
    sim = np.load(prefix + ".sim.npy")
    cents = np.load(prefix + ".centroids.npy")
    results["quality"] = {
        "ari_vs_truth_all_rows": round(float(adjusted_rand_score(labels, assign)), 4),
        "exactness_vs_fp32": exactness(emb, assign, sim, cents, args.check_rows, args.seed),
    }
    print(f"  quality: {results['quality']}", flush=True)
    if "norelease" in scorers:
        print("scoring again without releasing mapped pages ...", flush=True)
        nr = scorers["norelease"].run()
        results["score_without_page_release"] = {k: nr[k] for k in ("wall_s", "cpu_s", "peak_rss_mb", "phases_s")}
        print(f"  {results['score_without_page_release']}", flush=True)
    if "fp32" in scorers:
        print("scoring again with the fp32 path forced (CURATE_KMEANS_BF16=0) ...", flush=True)
        fp = scorers["fp32"].run()
        fp["ari_vs_truth_all_rows"] = round(
            float(adjusted_rand_score(labels, np.load(fp["result_prefix"] + ".assign.npy"))), 4
        )
        fp["ratio_wall_fp32_over_ours"] = round(fp["wall_s"] / sc["wall_s"], 2)
        fp["ratio_cpu_fp32_over_ours"] = round(fp["cpu_s"] / sc["cpu_s"], 2)
        results["score_fp32_forced"] = fp
        print(
            f"  wall {fp['wall_s']} s (cpu {fp['cpu_s']} s), peak RSS {fp['peak_rss_mb']:.0f} MB, "
            f"ARI {fp['ari_vs_truth_all_rows']}, ratio fp32/ours {fp['ratio_wall_fp32_over_ours']}",
            flush=True,
        )
    if "faiss" in scorers:
        print("scoring again with a minimal faiss pipeline (faiss.Kmeans + IndexFlatIP, same sample) ...", flush=True)
        bl = scorers["faiss"].run()
        b_assign = np.load(bl["result_prefix"] + ".assign.npy")
        bl["ari_vs_truth_all_rows"] = round(float(adjusted_rand_score(labels, b_assign)), 4)
        bl["ratio_wall_ours_over_faiss"] = round(sc["wall_s"] / bl["wall_s"], 2)
        bl["ratio_cpu_ours_over_faiss"] = round(sc["cpu_s"] / bl["cpu_s"], 2)
        results["score_faiss_minimal"] = bl
        print(
            f"  wall {bl['wall_s']} s (cpu {bl['cpu_s']} s; phases {bl['phases_s']}), peak RSS "
            f"{bl['peak_rss_mb']:.0f} MB, mean sim {bl['mean_sim_all_rows']} (ours {sc['mean_sim_all_rows']}), "
            f"ARI {bl['ari_vs_truth_all_rows']}, ratio ours/faiss wall {bl['ratio_wall_ours_over_faiss']}",
            flush=True,
        )
    return sc


if __name__ == "__main__":
    sys.exit(main())
