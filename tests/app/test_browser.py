"""The app in a real Chromium: every page renders, the slider moves the kept count, the CSV download
is byte-identical to `curate select`, and a screenshot of every page is saved for a person to look at.

Needs /usr/bin/chromium and the playwright Python package (never `playwright install`); skips itself
otherwise.  Screenshots go to artifacts/screenshots/ (or $CURATE_ARTIFACTS/screenshots).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
REPO = Path(__file__).resolve().parents[2]
APP = REPO / "curation_app" / "app.py"
PAGES = ["data", "map", "clusters", "difficulty", "prune", "export"]

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(300)]

sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright Python package is not installed")
if not Path(CHROMIUM).exists():
    pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)", allow_module_level=True)


def _screens_dir() -> Path:
    base = Path(os.environ.get("CURATE_ARTIFACTS") or REPO / "artifacts")
    d = base / "screenshots"
    d.mkdir(parents=True, exist_ok=True)
    return d


@pytest.fixture(scope="module")
def server(app_workdir, start_streamlit):
    return start_streamlit(app_workdir, Path(app_workdir) / "streamlit.log", cwd=str(app_workdir), timeout=60)


@pytest.fixture(scope="module")
def page(server, chromium_args):
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=chromium_args, headless=True)
        ctx = browser.new_context(viewport={"width": 1440, "height": 1000}, accept_downloads=True)
        pg = ctx.new_page()
        pg.set_default_timeout(30_000)
        yield pg
        ctx.close()
        browser.close()


from browser_helpers import goto_page, settle, shot  # noqa: E402
from map_canvas_helpers import canvas_box_select  # noqa: E402


def kept_text(pg) -> str:
    return (
        pg.locator('[data-testid="stMetric"]', has_text="Kept")
        .first.locator('[data-testid="stMetricValue"]')
        .inner_text()
    )


def test_every_page_slider_and_download(server, page, app_workdir, tmp_path):
    shots = _screens_dir()
    pg = page
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))

    pg.goto(server + "/")  # the Data page is the default page
    settle(pg, charts=True)
    assert pg.get_by_text("Examples (pool)").count() >= 1
    shot(pg, shots / "1_data.png")

    goto_page(pg, "Map", chart_pages=frozenset())  # the canvas viewer (the default) has no plotly chart
    canvas_box_select(pg)
    pg.wait_for_selector("text=selected, hardest first", timeout=30_000)
    pg.wait_for_selector('[data-testid="stImage"] img', timeout=30_000)  # the gallery of the selection
    settle(pg)
    shot(pg, shots / "2_map.png")

    for i, name in enumerate(["Clusters", "Difficulty"], start=3):
        goto_page(pg, name)
        assert pg.locator('[data-testid="stException"]').count() == 0, f"{name} raised"
        pg.wait_for_selector('[data-testid="stImage"] img')
        shot(pg, shots / f"{i}_{name.lower()}.png")

    goto_page(pg, "Prune")
    before = kept_text(pg)
    assert before.replace(",", "").startswith("280 of 400"), before  # default keep 0.7 of 400
    slider = pg.get_by_role("slider", name="Keep fraction")
    slider.focus()
    for _ in range(5):
        slider.press("ArrowLeft")
        time.sleep(0.15)
    try:
        pg.wait_for_function(
            "() => [...document.querySelectorAll('[data-testid=\"stMetricValue\"]')]"
            ".some(e => e.innerText.startsWith('260 of'))",
            timeout=30_000,
        )
    except sync_api.TimeoutError:
        pytest.fail(
            f"the kept count did not reach 260 after 5 presses: {kept_text(pg)!r}, "
            f"slider {slider.get_attribute('value')!r}"
        )
    settle(pg, charts=True)
    assert kept_text(pg).replace(",", "").startswith("260 of 400")
    assert re.search(r"[?&]keep=0\.65", pg.url), pg.url  # the setting is mirrored into the URL
    shot(pg, shots / "5_prune.png")
    pg.get_by_role("tab", name="Theory (perceptron)").click()
    pg.wait_for_selector("text=Perceptron theory", timeout=60_000)
    settle(pg, charts=True)
    shot(pg, shots / "5b_prune_theory.png")
    pg.get_by_role("tab", name="Estimated on your data").click()
    estimate = pg.get_by_role("button", name=re.compile("Estimate scaling curves"))
    if estimate.count():  # backend.scaling is installed: run the estimate from the app (a few seconds)
        estimate.click()
        pg.wait_for_selector("text=Estimated held-out error vs examples kept", timeout=120_000)
        settle(pg, charts=True)
        # the recommendation (its sentence opens with the pick, or says first that random is as good)
        assert (
            pg.get_by_text(re.compile("Recommended:|is as good as any metric|No setting beats a random")).count() >= 1
        )
        shot(pg, shots / "5c_prune_estimate.png")

    goto_page(pg, "Export")
    assert pg.get_by_text("Keeping").first.is_visible()
    with pg.expect_download() as dl:
        pg.get_by_role("button", name=re.compile(r"Download kept_hard_260\.csv")).click()
    got = tmp_path / "from_app.csv"
    dl.value.save_as(got)
    shot(pg, shots / "6_export.png")

    ref = tmp_path / "from_cli.csv"
    curate = Path(sys.executable).with_name("curate")
    cmd = [str(curate)] if curate.exists() else [sys.executable, "-m", "backend.cli"]
    subprocess.run(
        cmd
        + [
            "select",
            "--workdir",
            str(app_workdir),
            "--keep",
            "0.65",
            "--strategy",
            "hard",
            "--metric",
            "ssl_prototype",
            "--balance",
            "none",
            "--seed",
            "0",
            "--out",
            str(ref),
        ],
        check=True,
        capture_output=True,
    )
    assert got.read_bytes() == ref.read_bytes()
    assert not errors, errors


# set before the page's own scripts: whether any Plotly chart was on the page when the kept count first showed
FIRST_PAINT_PROBE = """
window.__keptWithChart = null;
new MutationObserver(() => {
  if (window.__keptWithChart !== null) return;
  const kept = [...document.querySelectorAll('[data-testid="stMetricLabel"]')].some(e => e.innerText.includes('Kept'));
  if (kept) window.__keptWithChart = !!document.querySelector('[data-testid="stPlotlyChart"]');
}).observe(document, {childList: true, subtree: true});
"""


def test_a_new_tab_shows_the_kept_count_before_its_charts(server, page):
    """curation_app/components/first_paint.py: a new tab's first run sends no Plotly chart (so plotly.js does
    not hold the page's first render), the charts follow in the rerun after the paint, and plotly's chunk is
    fetched once although the page imported it ahead of the charts."""
    pg = page.context.new_page()  # a new session in the same browser
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.add_init_script(FIRST_PAINT_PROBE)
    pg.goto(server + "/prune")
    settle(pg, charts=True)
    assert pg.evaluate("window.__keptWithChart") is False  # the count showed, and no chart was there yet
    assert pg.locator(".js-plotly-plot .main-svg").count() >= 2  # then the charts came
    assert pg.locator("[data-curate-deferred-charts]").count() == 0
    fetched = pg.evaluate(
        "() => performance.getEntriesByType('resource').filter(e => e.name.includes('/PlotlyChart.')).length"
    )
    assert fetched == 1, fetched
    # a page switch in the same session draws its charts in its first run
    goto_page(pg, "Difficulty")
    assert pg.locator(".js-plotly-plot .main-svg").count() >= 1
    assert not errors, errors
    pg.close()
