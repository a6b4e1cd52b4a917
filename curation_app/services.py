"""Everything the pages share that is slow to make, cached.  The only module that uses
Streamlit's caches.

``st.cache_resource`` holds the shared heavy objects (a :class:`backend.Run`
with its table, one :class:`backend.Ranking` per (run, strategy, metric,
balance, seed), the per-run group codes); ``st.cache_data`` holds small
derived frames, thumbnails (keyed by run key + position) and theory curves.
A cached function takes the run *folder* (a string) and, where the content
could change under the same folder, the run key.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st

import backend
from curation_app.components import paths, summaries

THUMB_PX = 96


# ---------------------------------------------------------------------------
# where we are


def workdir() -> Path:
    return paths.workdir_from_env()


def allowed_dirs() -> list[Path]:
    return paths.allowed_dirs()


def list_runs() -> list[dict]:
    """Finished runs of the workdir: its current run first (what ``--workdir`` resolves to, so a new session
    opens on the run the CLI uses), then latest first.  Cheap: reads the run.json files."""
    from backend.jobs import current_run_key

    runs = paths.list_runs(workdir())
    current = current_run_key(workdir())
    for r in runs:
        r["current"] = r["key"] == current
    return sorted(runs, key=lambda r: not r["current"])  # stable: the rest stays latest first


# ---------------------------------------------------------------------------
# the run and its derived arrays


@st.cache_resource(show_spinner="Loading the run...", max_entries=4)
def load_run(run_dir: str) -> backend.Run:
    run = backend.Run(run_dir)
    run.table  # noqa: B018 - read the table once, here, not in a page
    return run


@st.cache_resource(show_spinner="Ranking the examples...", max_entries=16)
def ranking(run_dir: str, strategy: str, metric: str, balance: str, seed: int) -> backend.Ranking:
    """The keep order for these settings; the slider only calls ``.mask(n_keep)`` on it."""
    # the Run, not only its table: dedup strategies read the embeddings
    return backend.Ranking(load_run(run_dir), strategy=strategy, metric=metric, balance=balance, seed=seed)


@st.cache_resource(max_entries=8)
def group_codes(run_dir: str, column: str) -> tuple[np.ndarray, list[str], np.ndarray]:
    """(codes, names, totals) of "label" or "cluster" for fast per-group counts."""
    t = load_run(run_dir).table
    if column == "cluster":
        c = t["cluster"].to_numpy().astype(np.int64)
        names = [str(i) for i in range(int(c.max()) + 1)] if len(c) else []
    else:
        c, names = summaries.codes(t[column])
    return c, names, np.bincount(c, minlength=len(names))


@st.cache_resource(max_entries=8)
def score_array(run_dir: str, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """(scores as float64, histogram bin edges) of one score column."""
    s = load_run(run_dir).table[metric].to_numpy(np.float64)
    return s, summaries.score_edges(s)


@st.cache_resource(max_entries=8)
def score_order(run_dir: str, metric: str) -> np.ndarray:
    """Positions sorted by ``metric``, easiest first (ties by position)."""
    return np.argsort(score_array(run_dir, metric)[0], kind="stable")


@st.cache_resource(max_entries=4)
def map_sample(run_dir: str, max_points: int = summaries.MAP_MAX_POINTS) -> np.ndarray:
    """Positions drawn on the map: all, or a sample stratified by cluster above ``max_points``."""
    t = load_run(run_dir).table
    return summaries.stratified_sample(t["cluster"].to_numpy(), max_points, seed=0)


@st.cache_resource(max_entries=2, show_spinner="Preparing the map...")
def map_positions(run_dir: str, run_key: str) -> tuple[bytes, list[float], list[str], tuple[bytes, str]]:
    """The canvas map's payload of every example: (position bytes, bounds, class names, id bytes and prefix).

    A resource, not a page global: a page script's globals start afresh at every run, and at 1,000,000
    examples this is ~0.9 s of work (positions 0.2 s, the 7 MB of ids 0.7 s) that a rerun must not repeat.
    The same bytes objects every time also keep the canvas's media URLs (a digest per object) stable."""
    from curation_app.components import map_canvas

    t = load_run(run_dir).table
    x, y = t["map_x"].to_numpy(), t["map_y"].to_numpy()
    if load_run(run_dir).has_labels:
        cls, names, _ = group_codes(run_dir, "label")
    else:
        cls, names = np.zeros(len(t), np.int64), []
    box = map_canvas.bounds(x, y)
    pos_bytes = map_canvas.position_bytes(x, y, cls, t["cluster"].to_numpy(), box)
    return pos_bytes, box, list(names), map_canvas.id_bytes(t["example_id"].to_numpy())


@st.cache_data(max_entries=8, show_spinner=False)
def cluster_summary(run_dir: str, run_key: str, metric: str) -> pd.DataFrame:
    return summaries.cluster_summary(load_run(run_dir).table, metric)


@st.cache_resource(max_entries=4)
def cluster_extremes(run_dir: str, n: int = 4) -> dict:
    return summaries.cluster_extremes(load_run(run_dir).table, n)


def selection(run_dir: str, settings: dict) -> backend.Selection:
    """The kept subset for the settings, as ``curate select`` makes it (the ranking is cached)."""
    from curation_app.components.settings import n_keep

    run = load_run(run_dir)
    rk = ranking(run_dir, settings["strategy"], settings["metric"], settings["balance"], settings["seed"])
    if settings.get("keep_mode") == "count" and settings.get("keep_count"):
        kw = {"keep_count": n_keep(settings, run.n_examples)}
    else:
        kw = {"keep": float(settings["keep"])}
    return backend.select_subset(
        run,
        **kw,
        strategy=settings["strategy"],
        metric=settings["metric"],
        balance=settings["balance"],
        seed=settings["seed"],
        ranking=rk,
    )


# ---------------------------------------------------------------------------
# images


@st.cache_data(max_entries=16, show_spinner="Reading the image sizes...")
def image_size(run_dir: str, run_key: str) -> str:
    """The pool's image size as a person reads it ("28x28 grey (all 200 checked)").

    Array data sets record their exact size; for image files the run records "varies", so the
    headers are read here (every file up to 10,000 images, a seeded sample of 2,000 above).
    """
    from backend.sources.image_size import measure_image_size

    run = load_run(run_dir)
    recorded = str(run.config["source"].get("image_size") or "")
    if recorded and recorded != "varies":  # runs made before the table stage read the headers say "varies"
        return recorded
    if not run.has_images:
        return "n/a (precomputed embeddings)"
    files = run.table["path"].dropna().astype(str).to_numpy()
    if len(files) == 0:
        return recorded or "unknown"
    return measure_image_size(files, run.n_examples)


@st.cache_data(max_entries=20_000, show_spinner=False)
def thumbnail(run_dir: str, run_key: str, position: int, px: int = THUMB_PX) -> bytes | None:
    """PNG bytes of one example, about ``px`` pixels on its long side (None if unreadable).

    Small images (28x28) are enlarged by a whole factor without smoothing so
    pixels stay sharp; large ones are shrunk.  Made only when a page shows it.
    """
    from PIL import Image

    img = load_run(run_dir).load_image(int(position))
    if img is None:
        return None
    w, h = img.size
    if max(w, h) < px:
        f = max(1, px // max(w, h))
        img = img.resize((w * f, h * f), Image.NEAREST)
    elif max(w, h) > px:
        img = img.copy()
        img.thumbnail((px, px))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


@st.cache_resource(max_entries=2_000, show_spinner=False)
def thumbnails(run_dir: str, run_key: str, positions: tuple[int, ...], px: int = THUMB_PX) -> tuple[bytes | None, ...]:
    """:func:`thumbnail` of several examples in one cache lookup (a lookup costs ~0.5 ms: the Redundancy page's
    six strips of eight were 26 ms of every slider move); bytes are immutable, so no copy is handed out."""
    return tuple(thumbnail(run_dir, run_key, int(p), px) for p in positions)


# ---------------------------------------------------------------------------
# scaling (backend.scaling is optional: the pages say what is missing)


def scaling_api():
    """(load_scaling, estimate_scaling, None) or (None, None, what is missing)."""
    try:
        from backend.scaling import estimate_scaling, load_scaling
    except ImportError as exc:
        return (
            None,
            None,
            (
                f"the scaling-curve estimate is not available in this installation: "
                f"backend.scaling does not provide load_scaling / estimate_scaling ({exc})"
            ),
        )
    return load_scaling, estimate_scaling, None


def theory_api():
    """(error_curve, pareto_frontier, None) or (None, None, what is missing)."""
    try:
        from backend.scaling.theory import error_curve, pareto_frontier
    except ImportError as exc:
        return (
            None,
            None,
            (
                f"the perceptron theory is not available in this installation: "
                f"backend.scaling.theory does not provide error_curve / pareto_frontier ({exc})"
            ),
        )
    return error_curve, pareto_frontier, None


@st.cache_resource(max_entries=8, show_spinner=False)
def scaling_result(run_dir: str, run_key: str, metric: str):
    """The cached empirical estimate for (run, metric), or None when not computed yet."""
    load, _, missing = scaling_api()
    if missing:
        return None
    return load(load_run(run_dir), metric=metric)


@st.cache_resource(max_entries=8, show_spinner=False)
def scaling_grid(run_dir: str, run_key: str, metric: str, settings: tuple):
    """The cached estimate of a grid of (strategy, balance) ``settings``, or None when not computed yet."""
    load, _, missing = scaling_api()
    if missing:
        return None
    return load(load_run(run_dir), metric=metric, settings=[list(p) for p in settings])


THEORY_FS = (0.2, 0.4, 0.6, 0.8)


@st.cache_data(max_entries=32, show_spinner=False)
def theory_curves(theta_deg: float, pool_alpha: float, n_alpha: int = 16) -> dict:
    """Theory curves (error vs alpha_prune) for THEORY_FS, keep hard/easy, random, frontier."""
    import math

    error_curve, pareto_frontier, missing = theory_api()
    if missing:
        raise RuntimeError(missing)
    theta = math.radians(theta_deg)
    alphas = np.geomspace(0.1, max(pool_alpha, 0.2), n_alpha)
    curves = {(s, f): error_curve(alphas, f, theta, s) for f in THEORY_FS for s in ("hard", "easy")}
    random = error_curve(alphas, 1.0, theta, "hard")
    fa, fe, _, _ = pareto_frontier(alphas, pool_alpha, theta, fs=THEORY_FS)
    return {"alphas": alphas, "curves": curves, "random": random, "frontier": (fa, fe)}


@st.cache_resource(max_entries=32, show_spinner=False)
def theory_figure(theta_deg: float, pool_alpha: float):
    """The theory chart itself, cached: it does not depend on the slider, so a slider move
    (which reruns the whole page, fragments included) does not rebuild it."""
    from curation_app.components import figures

    t = theory_curves(theta_deg, pool_alpha)
    fig = figures.theory_figure(
        t["alphas"], t["curves"], THEORY_FS, t["random"], t["frontier"], theta_deg=theta_deg, pool_alpha=pool_alpha
    )
    return fig, t


# ---------------------------------------------------------------------------
# metric benchmark and redundancy (backend.scores.benchmark, backend.dedup)


@st.cache_resource(max_entries=4, show_spinner=False)
def metric_benchmark(run_dir: str, run_key: str, columns: tuple[str, ...]):
    """The cached ``curate benchmark-metrics`` result with its default settings, or None (never computes).

    ``columns`` (the run's score columns) is part of the key: importing or computing a metric changes it."""
    from backend.scores.benchmark import load_benchmark

    return load_benchmark(load_run(run_dir))


@st.cache_resource(max_entries=4, show_spinner="Comparing the metrics...")
def metric_agreement(run_dir: str, run_key: str, columns: tuple[str, ...], fraction: float):
    """(Spearman matrix, kept-set overlap matrix) between the score columns (no training: fast)."""
    from backend.scores.benchmark import agreement

    return agreement(load_run(run_dir), list(columns), fraction=fraction)


@st.cache_resource(max_entries=4, show_spinner="Finding near-duplicates inside every cluster...")
def dedup_index(run_dir: str, run_key: str):
    """The run's SemDeDup index (one exact within-cluster search, cached on disk too)."""
    from backend.dedup import run_index

    return run_index(load_run(run_dir))


@st.cache_resource(max_entries=16, show_spinner=False)
def dedup_at(run_dir: str, run_key: str, threshold: float):
    """The deduplication at one similarity threshold (O(N) from the cached index)."""
    return dedup_index(run_dir, run_key).at(eps=1.0 - float(threshold))


@st.cache_resource(max_entries=16, show_spinner=False)
def dedup_groups(run_dir: str, run_key: str, threshold: float) -> pd.DataFrame:
    """The duplicate groups at one threshold, largest first (read-only: a page sorts a copy)."""
    return dedup_at(run_dir, run_key, threshold).groups_frame()


REDUNDANCY_CURVE = tuple(np.round(np.arange(0.80, 1.0000001, 0.0025), 4))


@st.cache_resource(max_entries=8, show_spinner=False)
def redundancy_curve(run_dir: str, run_key: str, by: str) -> pd.DataFrame:
    """Share removed vs threshold (0.80..1.00), overall and per class or cluster (``by``)."""
    t = load_run(run_dir).table
    codes = t["label"].astype(str).to_numpy() if by == "class" else t["cluster"].to_numpy() if by == "cluster" else None
    return dedup_index(run_dir, run_key).redundancy_curve(np.asarray(REDUNDANCY_CURVE), by=codes)


@st.cache_resource(max_entries=4, show_spinner=False)
def near_copies(run_dir: str, run_key: str, max_distance: int = 20):
    """Exact near-copies by perceptual hash, or None while the hashes are not computed (a job computes them)."""
    from backend.dedup import hashes_cached
    from backend.dedup import near_copies as _near

    run = load_run(run_dir)
    if not hashes_cached(run):
        return None
    return _near(run, max_distance=max_distance)
