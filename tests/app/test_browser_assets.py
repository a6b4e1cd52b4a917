"""The README's pictures: a screenshot of every page of a finished workdir, saved into assets/screenshots/.

Runs only when asked: ``make screenshots`` (``CURATE_ASSETS_WORKDIR=work pytest tests/app/test_browser_assets.py``)
after ``make demo-run``, so the pictures show the 60,000-image demo, not a test's 400 images.  Every page must
render without an exception; a person then looks at the pictures before committing them.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from browser_helpers import goto_page, settle, shot

CHROMIUM = "/usr/bin/chromium"
ASSETS = Path(__file__).resolve().parents[2] / "assets" / "screenshots"
PAGES = ["Map", "Clusters", "Difficulty", "Prune", "Metrics", "Redundancy", "Export"]
MAX_HEIGHT = 2700  # px: a README picture shows the top of a long page (the rest repeats: more groups, more cards)
CHART_PAGES = frozenset({"difficulty", "prune"})  # pages whose plotly charts to wait for (the map is a canvas)

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(900)]

if not os.environ.get("CURATE_ASSETS_WORKDIR"):
    pytest.skip("set CURATE_ASSETS_WORKDIR to a finished workdir (make screenshots)", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright Python package is not installed")
if not Path(CHROMIUM).exists():
    pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)", allow_module_level=True)


def _crop(png: Path) -> None:
    from PIL import Image

    with Image.open(png) as im:
        if im.height <= MAX_HEIGHT:
            return
        top = im.crop((0, 0, im.width, MAX_HEIGHT))
    top.save(png)


def test_screenshot_every_page(start_streamlit, chromium_args, tmp_path):
    work = Path(os.environ["CURATE_ASSETS_WORKDIR"]).resolve()
    url = start_streamlit(work, tmp_path / "streamlit.log", cwd=str(tmp_path), timeout=120)
    ASSETS.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=chromium_args, headless=True)
        pg = browser.new_context(viewport={"width": 1440, "height": 1000}).new_page()
        pg.set_default_timeout(120_000)
        errors: list[str] = []
        pg.on("pageerror", lambda e: errors.append(str(e)))
        # the setting the demo's estimate recommends (make demo-run estimates el2n with the MLP probe)
        pg.goto(url + "/?" + os.environ.get("CURATE_ASSETS_QUERY", "metric=el2n&strategy=hard&keep=0.5"))
        settle(pg, charts=True)
        shot(pg, ASSETS / "data.png")
        for title in PAGES:
            goto_page(pg, title, chart_pages=CHART_PAGES)
            assert pg.locator('[data-testid="stException"]').count() == 0, f"the {title} page raised"
            if title == "Prune":  # the estimate's curves, when the workdir has a cached estimate
                tab = pg.get_by_role("tab", name=re.compile("Estimated on your data"))
                if tab.count():
                    tab.first.click()
                    settle(pg, charts=True)
                mlp = pg.get_by_text("MLP (one hidden layer)")
                if mlp.count():  # the probe that made the demo's estimate
                    mlp.first.click()
                    settle(pg, charts=True)
            shot(pg, ASSETS / f"{title.lower()}.png")
        browser.close()
    for png in ASSETS.glob("*.png"):
        _crop(png)
    assert not errors, errors
