#!/usr/bin/env python
"""Benchmark: what a user waits for on the Prune and Redundancy pages, in a real Chromium driven by Playwright.

For each workdir given (the 60,000-example demo, a 1,000,000-example run from precomputed embeddings) it
starts ``streamlit run curation_app/app.py`` on a free loopback port and measures, with the wall clock of
this process around Playwright calls (so each figure includes a few ms of Playwright round trip):

- **first paint** of a page: ``page.goto(url/page)`` until the page's title and its main number (the
  Prune page's "Kept" metric, the Redundancy page's "Removed" metric) are in the DOM, until its plotly
  charts are drawn (a new tab draws them in a rerun after its first paint: curation_app/components/
  first_paint.py), and until the page has *settled* (no script run in progress, every chart drawn).  ``cold``: the first visit
  after the server started, in a fresh browser profile (the run, the ranking and the dedup index are loaded
  from disk, the browser downloads and compiles Streamlit's and plotly's JavaScript: what the first user of
  a fresh ``curate app`` waits for); ``warm``: a new tab of the same browser on the running server (a new
  session; server caches and the browser's HTTP cache filled: what opening a link or reloading costs);
- **page switch**: a click on the sidebar link until the other page's main element is there / settled;
- **Prune slider**: one key press (ArrowRight/ArrowLeft: 1% of the pool) or one click on the slider track,
  until the "Kept" metric shows the new count, and until the page settled; median over ``--moves`` moves;
- **Redundancy threshold slider** (one ArrowLeft/ArrowRight press = 0.001): until the "Removed" count
  changed, the curve's threshold marker moved and the first page of groups is redrawn (run settled).

Targets (issues 13 and 15): slider to kept count <= 300 ms median at 60k and 1M; page switch <= 1 s;
first paint <= 2 s; Redundancy threshold <= 300 ms at 60k; the Redundancy page opens in <= 2 s at 1M
from cached groups.  The machine is shared: the load average is recorded next to every section, and
figures are only comparable within one run.

Usage::

    # the app as it was at an older commit against the app now, interleaved, on both workdirs
    mkdir /tmp/before && git archive OLD_COMMIT curation_app backend | tar -x -C /tmp/before
    python benchmarks/bench_app_browser.py --workdir demo=/tmp/h1_demo --workdir million=/tmp/h1_million/work \\
        --variant before=/tmp/before --variant after=. --out benchmarks/results/app_browser.json

Each ``--variant LABEL=CHECKOUT`` is stored under LABEL in the JSON file (other labels already there are
kept).  Needs /usr/bin/chromium and the playwright Python package (never
``playwright install``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from browser_server import CHROMIUM, CHROMIUM_ARGS, free_port, stop, wait_healthy  # noqa: E402

TARGETS_MS = {"slider": 300, "switch": 1000, "first_paint": 2000, "threshold": 300, "redundancy_open_1m": 2000}

# JS helpers evaluated in the page
# the app root's script state ("running" while the server runs the page or a fragment): the status widget alone
# is not enough, Streamlit shows it only after a delay, so a run that still works behind drawn content looked settled
SCRIPT_STATE = "(document.querySelector('[data-testid=\"stApp\"]') || {dataset: {}}).dataset.testScriptState"
RUNNING = "() => " + SCRIPT_STATE + " === 'running' || !!document.querySelector('[data-testid=\"stStatusWidget\"]')"
SETTLED = (
    "() => "
    + SCRIPT_STATE
    + """ === 'notRunning' && !document.querySelector('[data-testid="stStatusWidget"]')
  && [...document.querySelectorAll('.js-plotly-plot')].every(p => p.querySelector('.main-svg'))
  && !document.querySelector('[data-stale="true"]')
  && !document.querySelector('[data-curate-deferred-charts]') && !document.querySelector('[data-testid="stSkeleton"]')"""
)
METRIC_TEXT = """(label) => { const m = [...document.querySelectorAll('[data-testid="stMetric"]')]
  .find(e => (e.querySelector('[data-testid="stMetricLabel"]') || {}).innerText?.trim().startsWith(label));
  return m ? m.querySelector('[data-testid="stMetricValue"]').innerText : null; }"""
METRIC_CHANGED = "([label, before]) => { const v = (" + METRIC_TEXT + ")(label); return v !== null && v !== before; }"
# the curve's threshold marker: the SVG chart's (curation_app/components/curve_chart.py) or, in an older app, plotly's
CURVE_MARK = """() => { const t = [...document.querySelectorAll('[data-curve-marker], .js-plotly-plot .annotation-text')]
  .map(e => e.textContent).find(s => s.startsWith('threshold')); return t || null; }"""
CURVE_CHANGED = "(before) => { const t = (" + CURVE_MARK + ")(); return t !== null && t !== before; }"
# every plotly chart on the page drawn, none held back for the rerun after a new tab's first paint
# (curation_app/components/first_paint.py)
PLOTLY_DRAWN = """() => !document.querySelector('[data-curate-deferred-charts]')
  && document.querySelectorAll('.js-plotly-plot .main-svg').length > 0
  && [...document.querySelectorAll('.js-plotly-plot')].every(p => p.querySelector('.main-svg'))"""
# per page: its title, its main number (what a user came to the page for, what its first paint must show),
# and its charts drawn
PAGE_READY = {
    "prune": ("Prune", "() => (" + METRIC_TEXT + ")('Kept') !== null", PLOTLY_DRAWN),
    "redundancy": (
        "Redundancy",
        "() => (" + METRIC_TEXT + ")('Removed') !== null",
        "() => (" + CURVE_MARK + ")() !== null",
    ),
}


def _loadavg() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


def _stats(ms: list[float]) -> dict:
    if not ms:
        return {"n": 0}
    return {
        "median_ms": round(statistics.median(ms), 1),
        "p90_ms": round(sorted(ms)[min(len(ms) - 1, int(0.9 * len(ms)))], 1),
        "min_ms": round(min(ms), 1),
        "max_ms": round(max(ms), 1),
        "n": len(ms),
    }


def start_server(
    workdir: Path, log_path: Path, *, repo: Path = REPO, timeout: float = 180, extra_env: dict | None = None
) -> tuple[subprocess.Popen, str]:
    """The app of the checkout ``repo`` (its curation_app and backend first on the path) on a free port."""
    port = free_port()
    env = dict(os.environ, CURATE_WORKDIR=str(workdir), CURATE_ALLOWED_DIRS=str(workdir), PYTHONPATH=str(repo))
    env.update(extra_env or {})
    app = repo / "curation_app" / "app.py"
    # curation_app.serve: what `curate app` runs (streamlit run, no outbound lookups, the cache warm-up)
    cmd = [sys.executable, "-m", "curation_app.serve", "run", str(app), "--server.headless", "true", "--server.port"]
    cmd += [str(port), "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false"]
    # cwd = the checkout: `python -m` puts the working directory first on sys.path, so another cwd would import
    # that checkout's curation_app and backend under this variant's page scripts
    proc = subprocess.Popen(cmd, env=env, stdout=open(log_path, "w"), stderr=subprocess.STDOUT, cwd=str(repo))
    return proc, wait_healthy(proc, port, log_path, timeout=timeout)


class Timer:
    """Wall-clock waits on one Playwright page."""

    def __init__(self, pg, timeout_ms: int):
        self.pg, self.timeout = pg, timeout_ms

    def until(self, js: str, arg=None) -> float:
        self.pg.wait_for_function(js, arg=arg, timeout=self.timeout, polling="raf")
        return time.perf_counter()

    def settle(self) -> float:
        # a run may start a few frames after the event: give it 150 ms to show, then wait for it to end
        try:
            self.pg.wait_for_function(RUNNING, timeout=150, polling="raf")
        except Exception:  # noqa: BLE001 - Playwright's TimeoutError: no run was visible
            pass
        return self.until(SETTLED)


def open_page(pg, url: str, page: str, timer: Timer) -> dict:
    title, ready, charts = PAGE_READY[page]
    t0 = time.perf_counter()
    pg.goto(f"{url}/{page}")
    pg.wait_for_selector(f'h1:has-text("{title}")', timeout=timer.timeout)
    t_ready = timer.until(ready)
    t_charts = timer.until(charts)
    t_settled = timer.settle()
    return {
        "content_ms": round(1e3 * (t_ready - t0), 1),
        "charts_ms": round(1e3 * (t_charts - t0), 1),
        "settled_ms": round(1e3 * (t_settled - t0), 1),
    }


ALL_PAGES = {
    "": "Data",
    "map": "Map",
    "clusters": "Clusters",
    "difficulty": "Difficulty",
    "prune": "Prune",
    "metrics": "Metrics",
    "redundancy": "Redundancy",
    "export": "Export",
}


def open_any(pg, url: str, page: str, title: str, timer: Timer) -> dict:
    """Any page in a new tab: ms until its title is there, and until the page settled (script done, charts)."""
    t0 = time.perf_counter()
    pg.goto(f"{url}/{page}")
    pg.wait_for_selector(f'h1:has-text("{title}")', timeout=timer.timeout)
    t_title = time.perf_counter()
    t_settled = timer.settle()
    return {"title_ms": round(1e3 * (t_title - t0), 1), "settled_ms": round(1e3 * (t_settled - t0), 1)}


def switch_page(pg, page: str, timer: Timer) -> dict:
    title, ready, _ = PAGE_READY[page]
    link = pg.locator('[data-testid="stSidebarNav"] a', has_text=title).first
    t0 = time.perf_counter()
    link.click()
    pg.wait_for_selector(f'h1:has-text("{title}")', timeout=timer.timeout)
    t_ready = timer.until(ready)
    t_settled = timer.settle()
    return {"content_ms": round(1e3 * (t_ready - t0), 1), "settled_ms": round(1e3 * (t_settled - t0), 1)}


def _metric(pg, label: str) -> str | None:
    return pg.evaluate(METRIC_TEXT, label)


def prune_slider(pg, timer: Timer, moves: int) -> dict:
    """Arrow-key and click moves of the keep-fraction slider; ms until "Kept" changed / the page settled."""
    box = pg.locator('[data-testid="stSlider"]', has_text="Keep fraction").first
    thumb = box.get_by_role("slider")
    out: dict = {}
    for how in ("key", "click"):
        kept, settled, misses = [], [], 0
        track = box.locator('[role="group"] > div').first.bounding_box()
        for i in range(moves):
            before = _metric(pg, "Kept")
            if how == "key":
                thumb.focus()
                t0 = time.perf_counter()
                thumb.press("ArrowRight" if (i // 4) % 2 == 0 else "ArrowLeft")
            else:  # positions spread over the track, never the same twice in a row
                f = 0.12 + 0.76 * ((i * 0.381966) % 1.0)
                t0 = time.perf_counter()
                pg.mouse.click(track["x"] + f * track["width"], track["y"] + track["height"] / 2)
            try:
                t1 = timer.until(METRIC_CHANGED, [("Kept"), before])
            except Exception:  # noqa: BLE001 - a click that landed on the current value
                misses += 1
                timer.settle()
                continue
            kept.append(1e3 * (t1 - t0))
            settled.append(1e3 * (timer.settle() - t0))
        out[how] = {"kept_count": _stats(kept), "settled": _stats(settled), "no_change": misses}
    return out


def redundancy_threshold(pg, timer: Timer, moves: int) -> dict:
    """ArrowLeft/Right presses on the threshold slider: ms until the removed count, the curve's marker and
    the groups (run settled) are updated."""
    thumb = pg.get_by_role("slider", name="Similarity threshold (1 - eps)")
    count, curve, settled, unchanged = [], [], [], 0
    for i in range(moves):
        before, mark = _metric(pg, "Removed"), pg.evaluate(CURVE_MARK)
        thumb.focus()
        t0 = time.perf_counter()
        thumb.press("ArrowLeft" if (i // 4) % 2 == 0 else "ArrowRight")
        # the count is drawn before the curve; it changes only when an example lies between the two thresholds
        either = f"([b, m]) => ({METRIC_CHANGED})(['Removed', b]) || ({CURVE_CHANGED})(m)"
        t_first = timer.until(either, [before, mark])
        seen = _metric(pg, "Removed") != before
        if seen:
            count.append(1e3 * (t_first - t0))
        t_curve = timer.until(CURVE_CHANGED, mark)
        curve.append(1e3 * (t_curve - t0))
        if _metric(pg, "Removed") == before:
            unchanged += 1
        elif not seen:  # it changed between the first wait and the curve
            count.append(1e3 * (t_curve - t0))
        settled.append(1e3 * (timer.settle() - t0))
    return {
        "removed_count": _stats(count),
        "curve_marker": _stats(curve),
        "settled_groups_drawn": _stats(settled),
        "count_unchanged": unchanged,
    }


def bench_workdir(name: str, workdir: Path, repo: Path, args, sync_api, extra_env: dict | None = None) -> dict:
    log = Path(args.logdir) / f"streamlit_{name}.log"
    res: dict = {"workdir": str(workdir), "app": str(repo), "env": extra_env or {}, "loadavg_start": _loadavg()}
    t0 = time.perf_counter()
    proc, url = start_server(workdir, log, repo=repo, extra_env=extra_env)
    res["server_start_s"] = round(time.perf_counter() - t0, 1)
    # a user reads the URL `curate app` printed before the browser opens it: a pause, or until the server's log
    # says the warm-up of the current run is done (curation_app/prewarm.py)
    if args.cold_delay == "prewarm":
        deadline = time.time() + 180
        while "warmed the caches of run" not in log.read_text() and time.time() < deadline:
            time.sleep(0.1)
    elif float(args.cold_delay):
        time.sleep(float(args.cold_delay))
    res["cold_delay"] = args.cold_delay
    res["cold_delay_waited_s"] = round(time.perf_counter() - t0 - res["server_start_s"], 1)
    try:
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
            errors: list[str] = []

            def new_page():
                pg = browser.new_context(viewport={"width": 1440, "height": 1000}).new_page()
                pg.on("pageerror", lambda e: errors.append(str(e)))
                return pg

            timer_ms = int(args.timeout * 1000)
            first: dict = {}
            pg = new_page()
            for page in ("prune", "redundancy"):
                first[page] = {"cold": open_page(pg, url, page, Timer(pg, timer_ms))}
            for page in ("prune", "redundancy"):  # a new tab: a new session, the browser's cache kept
                fresh = pg.context.new_page()
                fresh.on("pageerror", lambda e: errors.append(str(e)))
                first[page]["warm"] = open_page(fresh, url, page, Timer(fresh, timer_ms))
                fresh.close()
            res["first_paint"] = first
            res["loadavg_after_first_paint"] = _loadavg()
            if args.all_pages:  # every page, each in a new tab: its title, then the page settled
                every: dict = {}
                for page, title in ALL_PAGES.items():
                    fresh = pg.context.new_page()
                    fresh.on("pageerror", lambda e: errors.append(str(e)))
                    every[page or "data"] = open_any(fresh, url, page, title, Timer(fresh, timer_ms))
                    fresh.close()
                res["first_paint_every_page"] = every

            timer = Timer(pg, timer_ms)
            switches = {"to_prune": [], "to_redundancy": []}
            for _ in range(args.switches):
                for page in ("prune", "redundancy"):
                    switches[f"to_{page}"].append(switch_page(pg, page, timer))
            res["page_switch"] = {
                k: {
                    "content": _stats([v["content_ms"] for v in vs]),
                    "settled": _stats([v["settled_ms"] for v in vs]),
                }
                for k, vs in switches.items()
            }
            res["loadavg_after_switch"] = _loadavg()

            if not args.skip_threshold:
                switch_page(pg, "redundancy", timer)
                res["redundancy_threshold"] = redundancy_threshold(pg, timer, args.moves)
                res["loadavg_after_threshold"] = _loadavg()

            switch_page(pg, "prune", timer)
            res["prune_slider"] = prune_slider(pg, timer, args.moves)
            res["loadavg_after_slider"] = _loadavg()
            if pg.locator('[data-testid="stException"]').count():
                errors.append(
                    "an exception box is on the Prune page: "
                    + pg.locator('[data-testid="stException"]').first.inner_text()[:300]
                )
            res["page_errors"] = errors
            browser.close()
    finally:
        stop(proc)
    return res


def table(label: str, results: dict) -> str:
    rows = [f"== {label} =="]
    for name, r in results.items():
        if name.startswith("_"):
            continue
        rows.append(f"-- {name}: {r['workdir']} (load average at start {r['loadavg_start']})")
        for page, v in r["first_paint"].items():
            for kind in ("cold", "warm"):
                rows.append(
                    f"first paint {page:10s} {kind}: content {v[kind]['content_ms']:8.0f} ms  "
                    f"charts {v[kind].get('charts_ms', float('nan')):8.0f} ms  "
                    f"settled {v[kind]['settled_ms']:8.0f} ms   (target {TARGETS_MS['first_paint']} ms)"
                )
        for page, v in r.get("first_paint_every_page", {}).items():
            rows.append(
                f"first paint {page:10s} new tab: title {v['title_ms']:8.0f} ms  settled {v['settled_ms']:8.0f} ms"
            )
        for k, v in r["page_switch"].items():
            rows.append(
                f"page switch {k:15s}: content median {v['content']['median_ms']:7.0f} ms  settled median "
                f"{v['settled']['median_ms']:7.0f} ms   (target {TARGETS_MS['switch']} ms)"
            )
        for how, v in r["prune_slider"].items():
            rows.append(
                f"prune slider ({how:5s}): kept count median {v['kept_count'].get('median_ms', float('nan')):7.0f} ms "
                f"p90 {v['kept_count'].get('p90_ms', float('nan')):7.0f}  settled median "
                f"{v['settled'].get('median_ms', float('nan')):7.0f} ms  n={v['kept_count']['n']}   "
                f"(target {TARGETS_MS['slider']} ms)"
            )
        if "redundancy_threshold" in r:
            v = r["redundancy_threshold"]
            rows.append(
                f"redundancy threshold: count median {v['removed_count'].get('median_ms', float('nan')):7.0f} ms, "
                f"curve {v['curve_marker']['median_ms']:7.0f} ms, groups drawn (settled) "
                f"{v['settled_groups_drawn']['median_ms']:7.0f} ms   (target {TARGETS_MS['threshold']} ms)"
            )
        rows.append(
            f"load average during the section: {r.get('loadavg_after_slider')}; page errors: {r['page_errors']}"
        )
    return "\n".join(rows)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--workdir", action="append", required=True, metavar="NAME=DIR", help="a finished workdir (repeatable)"
    )
    ap.add_argument(
        "--variant",
        action="append",
        metavar="LABEL=CHECKOUT[;ENV=VALUE...]",
        help="serve the app of this checkout (e.g. before=/tmp/old, a `git archive` of an older commit) under "
        "LABEL, with these environment variables (e.g. 'off=.;CURATE_PREWARM=0'); repeatable, interleaved per "
        "workdir so that both see the same load (default: current=this repo)",
    )
    ap.add_argument(
        "--cold-delay",
        default="0",
        help="seconds between the server's health check and the first (cold) visit (default 0: at once), or "
        "'prewarm': until the server's log says the cache warm-up finished",
    )
    ap.add_argument("--moves", type=int, default=16, help="slider moves per kind (default 16)")
    ap.add_argument("--all-pages", action="store_true", help="also open every page in a new tab (first paint)")
    ap.add_argument("--switches", type=int, default=3, help="page switches each way (default 3)")
    ap.add_argument("--timeout", type=float, default=180, help="seconds to wait for one step")
    ap.add_argument("--skip-threshold-for", default="million", help="workdir names without the threshold test")
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "app_browser.json"))
    ap.add_argument("--logdir", default="/tmp")
    args = ap.parse_args(argv)
    try:
        from playwright import sync_api
    except ImportError:
        print("needs the playwright Python package (pip install playwright; never `playwright install`)")
        return 2
    if not Path(CHROMIUM).exists():
        print(f"needs {CHROMIUM} (apt-get install chromium)")
        return 2
    skip = set(args.skip_threshold_for.split(","))
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "curation_app/"], cwd=REPO, capture_output=True, text=True
    ).stdout.split("\n")
    results: dict = {
        "_meta": {
            "commit": commit,
            "uncommitted_app_files": [d for d in dirty if d.strip()],
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "argv": sys.argv[1:],
            "targets_ms": TARGETS_MS,
        }
    }
    variants = []
    for v in args.variant or [f"current={REPO}"]:
        label, _, rest = v.partition("=")
        repo, *env = rest.split(";")
        variants.append((label, repo, dict(e.split("=", 1) for e in env if e)))
    by_label: dict = {label: {"_meta": results["_meta"]} for label, _, _ in variants}
    for spec in args.workdir:
        name, _, d = spec.partition("=")
        args.skip_threshold = name in skip
        for label, repo, env in variants:
            r = bench_workdir(f"{name}_{label}", Path(d).resolve(), Path(repo).resolve(), args, sync_api, env)
            by_label[label][name] = r
            print(table(label, {name: r}), flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    all_results = json.loads(out.read_text()) if out.exists() else {}
    all_results.update(by_label)
    out.write_text(json.dumps(all_results, indent=2) + "\n")
    print(f"wrote {out} ({', '.join(by_label)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
