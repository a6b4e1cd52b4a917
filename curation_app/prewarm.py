"""Fill the app's caches for the current run in a background thread, before a page asks for them.

Why: on a fresh server the first page of a run pays for everything at once (the run's table, the heavy
imports, decoding the images for thumbnails, the scaling analysis, the theory curves, the dedup index):
3-5 s on a 2-core machine, for values every later session reads from the same process caches in
milliseconds.  The pages call the same cached functions (``services``): Streamlit takes one lock per cache
key, so a page that asks for a value the thread is still making waits for it instead of making it twice.

Started once per (run folder, run key) and process: by the first script run that opens the run
(``app.py``) and, under ``curate app``, as soon as the server is up (``serve.py``), so a user who opens the
browser a second later finds the caches full.  It only *reads* what is on disk: it never starts a long
computation (an uncached dedup index or scaling grid is left to the page that offers it).
"""

from __future__ import annotations

import importlib
import logging
import os
import threading
import time

log = logging.getLogger("curation_app.prewarm")  # Streamlit's log level (info: the server log says when done)
DONE_LINE = "curation-studio: warmed the caches of run"
_started: set[tuple[str, str]] = set()
_lock = threading.Lock()
# the values a page reads on first paint with the default settings (components/scaling_panel.py, views/)
THEORY_DEFAULT = (0.0, 10.0)  # the theory tab's default (theta in degrees, pool alpha)
DEDUP_DEFAULT = 0.95  # the Redundancy page's default threshold
DEDUP_EXACT = 0.999  # and its near-exact count (views/redundancy.py EXACT)
HEAVY_IMPORTS = ("scipy.optimize", "plotly.graph_objects", "backend.scaling", "backend.dedup")


def prewarm(run_dir: str, run_key: str) -> threading.Thread | None:
    """Start the warm-up of one run (at most once per process); returns the thread, or None if it ran already
    or ``CURATE_PREWARM=0`` switches warming off (a server short of memory: each page then loads what it needs)."""
    if os.environ.get("CURATE_PREWARM", "1") == "0":
        return None
    with _lock:
        if (run_dir, run_key) in _started:
            return None
        _started.add((run_dir, run_key))
    th = threading.Thread(target=warm, args=(run_dir, run_key), name="curate-prewarm", daemon=True)
    th.start()
    return th


def prewarm_current(workdir_runs: list[dict] | None = None) -> threading.Thread | None:
    """Warm the workdir's current run (the one a new session opens), if it has one."""
    from curation_app import services

    runs = services.list_runs() if workdir_runs is None else workdir_runs
    return prewarm(str(runs[0]["dir"]), str(runs[0]["key"])) if runs else None


def warm(run_dir: str, run_key: str) -> dict[str, float]:
    """Run every step in order (the first page's needs first); returns seconds per step.  A failing step is
    logged and skipped: the page that needs it will meet the same problem and say it in its own words."""
    _quiet_missing_context()
    _log_like_streamlit()
    done: dict[str, float] = {}
    for name, step in _steps(run_dir, run_key):
        t0 = time.perf_counter()
        try:
            step()
        except Exception as exc:  # noqa: BLE001 - warming is best effort, never an error of its own
            log.info("prewarm %s skipped: %s", name, exc)
            continue
        done[name] = round(time.perf_counter() - t0, 3)
    steps = ", ".join(f"{k} {v} s" for k, v in done.items())
    log.info("%s %s in %.1f s (%s)", DONE_LINE, run_key, sum(done.values()), steps)
    return done


def _steps(run_dir: str, run_key: str):
    from curation_app import services
    from curation_app.components import settings as S

    def run():
        return services.load_run(run_dir)

    def metric() -> str:
        cols = run().score_columns
        return S.DEFAULTS["metric"] if S.DEFAULTS["metric"] in cols else (cols[0] if cols else "")

    def ranking():
        services.ranking(run_dir, S.DEFAULTS["strategy"], metric(), S.DEFAULTS["balance"], S.DEFAULTS["seed"])
        services.group_codes(run_dir, "cluster")
        if run().has_labels:
            services.group_codes(run_dir, "label")
        services.score_array(run_dir, metric())

    def clusters():
        services.cluster_summary(run_dir, run_key, metric())
        services.cluster_extremes(run_dir, 4)

    def images():
        if run().has_images:
            run().source  # noqa: B018 - an array data set decodes all its images once, here

    def map_canvas():
        if {"map_x", "map_y"} <= set(run().table.columns):
            services.map_positions(run_dir, run_key)

    def scaling():
        from curation_app.components import scaling_panel

        if run().has_labels:
            scaling_panel._find_result(run(), metric(), S.DEFAULTS["strategy"], S.DEFAULTS["balance"])

    def theory():
        services.theory_figure(*THEORY_DEFAULT)

    def dedup():
        from backend.dedup import index_cached

        if index_cached(run()):  # only what is on disk: the page offers the computation itself
            services.dedup_at(run_dir, run_key, DEDUP_DEFAULT)
            services.dedup_at(run_dir, run_key, DEDUP_EXACT)
            services.redundancy_curve(run_dir, run_key, "all examples")

    return [
        ("run", run),
        ("imports", lambda: [importlib.import_module(m) for m in HEAVY_IMPORTS]),
        ("ranking", ranking),
        ("images", images),
        ("map", map_canvas),
        ("clusters", clusters),
        ("scaling", scaling),
        ("theory", theory),
        ("dedup", dedup),
    ]


def _quiet_missing_context() -> None:
    """Streamlit warns "missing ScriptRunContext" at every cached call made outside a script run; here that is
    the point, so the warning would only fill the server log."""
    logging.getLogger("streamlit.runtime.scriptrunner_utils.script_run_context").setLevel(logging.ERROR)


def _log_like_streamlit() -> None:
    """This module's log lines in the server's log, formatted and filtered like Streamlit's own."""
    try:
        from streamlit.logger import get_logger

        ref = get_logger("streamlit")
    except ImportError:  # pragma: no cover - streamlit is a dependency of the app
        return
    if not log.handlers:
        for h in ref.handlers:
            log.addHandler(h)
        log.setLevel(ref.getEffectiveLevel())
        log.propagate = False
