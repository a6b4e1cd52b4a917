"""The Redundancy and Metrics pages in a real Chromium: the page opens, the threshold slider moves the removed
count, the curve's marker and the groups (timed) without rerunning the page (the slider's fragment: nothing
outside it changes in the DOM), and screenshots are saved for a person to look at (artifacts/screenshots/).

``CURATE_BROWSER_WORKDIR=/path/to/work`` points it at another finished workdir (e.g. the 60,000-image demo,
for the latency figure); by default it uses the small app run.  Skips itself without /usr/bin/chromium or
playwright.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
REPO = Path(__file__).resolve().parents[2]
APP = REPO / "curation_app" / "app.py"

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(600)]

sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright Python package is not installed")
if not Path(CHROMIUM).exists():
    pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)", allow_module_level=True)

from browser_helpers import settle  # noqa: E402
from map_canvas_helpers import wait_canvas  # noqa: E402


@pytest.fixture(scope="module")
def workdir(app_workdir):
    return Path(os.environ.get("CURATE_BROWSER_WORKDIR") or app_workdir)


@pytest.fixture(scope="module")
def server(workdir, tmp_path_factory, start_streamlit):
    return start_streamlit(workdir, tmp_path_factory.mktemp("streamlit_log") / "streamlit.log", timeout=90)


def _settle(pg, *, plotly: bool = True) -> None:
    """The run finished and the page's charts drew (the Redundancy page's curve is an SVG chart, not plotly)."""
    settle(pg, charts=plotly)
    if not plotly:
        pg.wait_for_selector("[data-curve-marker]", timeout=60_000)


def _shot(pg, path: Path) -> None:
    last = -1
    for _ in range(10):
        h = pg.evaluate("() => document.querySelector('[data-testid=stMain]').scrollHeight")
        if h == last:
            break
        last = h
        pg.set_viewport_size({"width": 1440, "height": int(min(h + 40, 9000))})
        time.sleep(0.6)
    pg.wait_for_function("() => [...document.images].every(i => i.complete)", timeout=60_000)
    pg.screenshot(path=str(path))
    pg.set_viewport_size({"width": 1440, "height": 1000})


def _removed(pg) -> str:
    return (
        pg.locator('[data-testid="stMetric"]', has_text="Removed")
        .first.locator('[data-testid="stMetricValue"]')
        .inner_text()
    )


# counts DOM changes outside the threshold's fragment (the sidebar, the page title): a page rerun redraws them
WATCH_OUTSIDE = """() => { window.__outside = 0; const o = new MutationObserver(ms => { window.__outside += ms.length; });
  for (const sel of ['[data-testid="stSidebar"]', 'h1']) { const e = document.querySelector(sel);
    if (e) o.observe(e, {subtree: true, childList: true, attributes: true, characterData: true}); } }"""
CURVE_MARK = """() => [...document.querySelectorAll('[data-curve-marker]')].map(e => e.textContent)
  .find(s => s.startsWith('threshold')) || null"""
# the first card of the page of groups (one HTML block: curation_app/views/redundancy.py, group_card)
FIRST_GROUP = """() => { const m = document.querySelector('.cs-group p'); return m ? m.innerText : null; }"""


def test_redundancy_and_metrics_pages_in_a_browser(server, chromium_args):
    shots = Path(os.environ.get("CURATE_ARTIFACTS") or REPO / "artifacts") / "screenshots"
    shots.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=chromium_args, headless=True)
        pg = browser.new_context(viewport={"width": 1440, "height": 1000}).new_page()
        errors: list[str] = []
        pg.on("pageerror", lambda e: errors.append(str(e)))
        t0 = time.perf_counter()
        pg.goto(server + "/redundancy")
        _settle(pg, plotly=False)
        opened = time.perf_counter() - t0
        slider = pg.get_by_role("slider", name="Similarity threshold (1 - eps)")
        slider.focus()
        latencies = []
        marks, groups, removed = [pg.evaluate(CURVE_MARK)], [pg.evaluate(FIRST_GROUP)], [_removed(pg)]
        pg.evaluate(WATCH_OUTSIDE)
        for _ in range(5):  # each press moves the threshold by 0.001: the curve, counts and first groups redraw
            before = pg.evaluate(CURVE_MARK)
            t = time.perf_counter()
            slider.press("ArrowLeft")
            # the marker always moves (the count only when an example lies between the two thresholds)
            pg.wait_for_function(f"(b) => ({CURVE_MARK})() !== b", arg=before, timeout=60_000)
            time.sleep(0.15)  # the run that redraws the groups may show its status a few frames later
            pg.wait_for_function("() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=60_000)
            latencies.append(time.perf_counter() - t)
            marks.append(pg.evaluate(CURVE_MARK))
            groups.append(pg.evaluate(FIRST_GROUP))
            removed.append(_removed(pg))
        outside = pg.evaluate("() => window.__outside")
        _settle(pg, plotly=False)
        # the curve's marker followed every press (0.950 -> 0.945), and the groups are those of the threshold
        assert marks == [f"threshold {0.95 - i / 1000:.3f}" for i in range(6)], marks
        for g, r in zip(groups, removed):  # a first group exactly when something is removed
            assert (g is not None and g.startswith("Group ")) == (not r.startswith("0 of")), (g, r)
        assert outside == 0, f"{outside} DOM changes outside the threshold's fragment: the page reran"
        if groups[-1] is not None:  # the cards' thumbnails come from the media store and load
            pg.wait_for_function("() => [...document.querySelectorAll('.cs-group img')].every(i => i.complete)")
            loaded = pg.evaluate("() => [...document.querySelectorAll('.cs-group img')].map(i => i.naturalWidth)")
            assert loaded and all(w > 0 for w in loaded), loaded
        assert pg.locator('[data-testid="stException"]').count() == 0
        _shot(pg, shots / "7_redundancy.png")
        if groups[-1] is not None:  # "show on the map" opens the first group on the Map page, in this tab
            pg.locator(".cs-group a", has_text="show on the map").first.click()
            pg.wait_for_selector('h1:has-text("Map")', timeout=60_000)
            settle(pg)
            pg.wait_for_selector('[data-testid="stAlert"]:has-text("Duplicate group")', timeout=60_000)
            assert "group=" in pg.url and "group_at=0.9450" in pg.url, pg.url
            wait_canvas(pg)  # and the canvas zoomed to the group
            zoom = "() => [...document.querySelectorAll('[data-testid=stBidiComponentIsolated]')].map(h => "
            zoom += "h.shadowRoot && h.shadowRoot.__mapCanvas).filter(S => S && S.codes).map(S => S.scale)[0]"
            assert pg.evaluate(zoom) > 1
            assert pg.locator('[data-testid="stException"]').count() == 0
            _shot(pg, shots / "7b_redundancy_group_on_map.png")
        pg.goto(server + "/metrics")
        _settle(pg)
        assert pg.locator('[data-testid="stException"]').count() == 0
        _shot(pg, shots / "8_metrics.png")
        browser.close()
    print(
        f"[browser] redundancy page opened in {opened:.2f} s; threshold moves: "
        + ", ".join(f"{1000 * v:.0f} ms" for v in latencies),
        file=sys.stderr,
    )
    assert not errors, errors


KEPT = """() => { const m = [...document.querySelectorAll('[data-testid="stMetric"]')]
  .find(e => e.innerText.startsWith('Kept')); return m ? m.querySelector('[data-testid="stMetricValue"]').innerText : null; }"""
WATCH_STRATEGY = """() => { window.__outside = 0; const o = new MutationObserver(ms => { window.__outside += ms.length; });
  const r = [...document.querySelectorAll('[data-testid="stRadio"]')].find(e => e.innerText.startsWith('Strategy'));
  for (const e of [document.querySelector('h1'), r]) if (e) o.observe(e, {subtree: true, childList: true,
    attributes: true, characterData: true}); }"""


def test_prune_slider_reruns_only_its_fragment_and_bad_counts_are_said(server, chromium_args):
    """Arrow keys move the kept count and the address bar follows, while the title and the strategy radio
    (outside the slider's fragment) are untouched; a keep count of 0 is refused under the field, in words."""
    shots = Path(os.environ.get("CURATE_ARTIFACTS") or REPO / "artifacts") / "screenshots"
    shots.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=chromium_args, headless=True)
        pg = browser.new_context(viewport={"width": 1440, "height": 1000}).new_page()
        errors: list[str] = []
        pg.on("pageerror", lambda e: errors.append(str(e)))
        pg.goto(server + "/prune")
        _settle(pg)
        thumb = pg.locator('[data-testid="stSlider"]', has_text="Keep fraction").get_by_role("slider")
        pg.evaluate(WATCH_STRATEGY)
        kept, latencies = [pg.evaluate(KEPT)], []
        for _ in range(4):
            thumb.focus()
            t = time.perf_counter()
            thumb.press("ArrowLeft")
            pg.wait_for_function(f"(b) => ({KEPT})() !== b", arg=kept[-1], timeout=60_000)
            latencies.append(time.perf_counter() - t)
            kept.append(pg.evaluate(KEPT))
        pg.wait_for_function("() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=60_000)
        n = int(kept[0].split(" of ")[1].replace(",", ""))
        shown = [int(k.split(" of ")[0].replace(",", "")) for k in kept]
        assert shown == sorted(shown, reverse=True) and len(set(shown)) == 5, kept
        pg.wait_for_function("() => location.search.includes('keep=0.66')", timeout=30_000)  # 0.70 - 4 x 0.01
        assert pg.evaluate("() => window.__outside") == 0, "the page reran: the title or the strategy radio changed"
        box = pg.locator('[data-testid="stNumberInput"]', has_text="Keep count").locator("input")
        box.fill("0")
        box.press("Enter")
        pg.wait_for_selector('[data-testid="stAlert"]:has-text("0 keeps nothing")', timeout=60_000)
        alert = pg.locator('[data-testid="stAlert"]', has_text="0 keeps nothing").inner_text()
        assert f"keep between 1 and {n:,} examples; still keeping {shown[-1]:,}" in alert
        assert pg.evaluate(KEPT) == kept[-1]
        _settle(pg)
        assert pg.locator('[data-testid="stException"]').count() == 0
        _shot(pg, shots / "5_prune_count_error.png")
        browser.close()
    print("[browser] prune slider moves: " + ", ".join(f"{1000 * v:.0f} ms" for v in latencies), file=sys.stderr)
    assert not errors, errors
