"""The Redundancy and Metrics pages in a real Chromium: the page opens, the threshold slider moves the removed
count (timed), and screenshots are saved for a person to look at (artifacts/screenshots/).

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


@pytest.fixture(scope="module")
def workdir(app_workdir):
    return Path(os.environ.get("CURATE_BROWSER_WORKDIR") or app_workdir)


@pytest.fixture(scope="module")
def server(workdir, tmp_path_factory, start_streamlit):
    return start_streamlit(workdir, tmp_path_factory.mktemp("streamlit_log") / "streamlit.log", timeout=90)


def _settle(pg) -> None:
    pg.wait_for_selector('[data-testid="stApp"]')
    time.sleep(0.3)
    pg.wait_for_function("() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=180_000)
    pg.wait_for_selector(".js-plotly-plot .main-svg", timeout=60_000)
    time.sleep(0.8)


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
        _settle(pg)
        opened = time.perf_counter() - t0
        slider = pg.get_by_role("slider", name="Similarity threshold (1 - eps)")
        slider.focus()
        latencies = []
        for _ in range(5):  # each press moves the threshold by 0.001: the curve, counts and first groups redraw
            before = _removed(pg)
            t = time.perf_counter()
            slider.press("ArrowLeft")
            try:
                pg.wait_for_function(
                    "(b) => { const m = [...document.querySelectorAll('[data-testid=\"stMetric\"]')]"
                    ".find(e => e.innerText.includes('Removed')); return m && !m.innerText.includes(b); }",
                    arg=before,
                    timeout=60_000,
                )
            except sync_api.TimeoutError:  # the count did not change (no example between the two thresholds)
                pass
            pg.wait_for_function("() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=60_000)
            latencies.append(time.perf_counter() - t)
        _settle(pg)
        assert pg.locator('[data-testid="stException"]').count() == 0
        _shot(pg, shots / "7_redundancy.png")
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
