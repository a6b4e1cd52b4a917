"""A run started from the Data page in a real Chromium: the progress bar moves, the job survives a page switch,
Cancel stops it (finished work kept), and /data opens the Data page.  Screenshots of the running and the
cancelled job go to $CURATE_ARTIFACTS/screenshots (or artifacts/screenshots) for a person to look at.

Needs /usr/bin/chromium and the playwright Python package (never `playwright install`); skips itself otherwise.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
REPO = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(420)]

sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright Python package is not installed")
if not Path(CHROMIUM).exists():
    pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)", allow_module_level=True)

from browser_helpers import settle, shot  # noqa: E402


def _screens_dir() -> Path:
    d = Path(os.environ.get("CURATE_ARTIFACTS") or REPO / "artifacts") / "screenshots"
    d.mkdir(parents=True, exist_ok=True)
    return d


def _choose(pg, label: str, option: str) -> None:
    """Pick ``option`` in the Streamlit select box labelled ``label``."""
    pg.locator('[data-testid="stSelectbox"]', has_text=label).first.click()
    pg.locator('[role="option"]', has_text=option).first.click()
    settle(pg)


def _type(pg, widget: str, label: str, text: str) -> None:
    """Type into the input of the Streamlit ``widget`` (stTextInput, stNumberInput) labelled ``label``."""
    box = pg.locator(f'[data-testid="{widget}"]', has_text=label).first.locator("input")
    box.fill(text)
    box.press("Enter")
    settle(pg)


def _bar_value(pg) -> float | None:
    bar = pg.locator('[data-testid="stProgress"] [role="progressbar"]').first
    if bar.count() == 0:
        return None
    v = bar.get_attribute("aria-valuenow")
    return float(v) if v not in (None, "") else None


def test_start_watch_switch_pages_cancel(tmp_path, start_streamlit, chromium_args):
    from backend.jobs import latest_job

    work = tmp_path / "work"
    work.mkdir()
    url = start_streamlit(work, tmp_path / "streamlit.log", cwd=str(tmp_path), timeout=90)
    shots = _screens_dir()
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=chromium_args, headless=True)
        pg = browser.new_context(viewport={"width": 1440, "height": 1000}).new_page()
        pg.set_default_timeout(60_000)

        pg.goto(url + "/data")  # a typed address: the Data page, not "Page not found"
        pg.locator("h1", has_text="Data").first.wait_for(timeout=60_000)
        settle(pg)
        assert pg.get_by_text("Page not found").count() == 0

        # the demo through an untrained resnet18 at 224 px: slow enough on a CPU to watch and cancel
        _choose(pg, "Encoder", "resnet18")
        _type(pg, "stTextInput", "Weights (file or folder", "random")
        _type(pg, "stNumberInput", "Limit per split", "300")
        _choose(pg, "2-D map", "pca")
        pg.get_by_role("button", name="Start the run").click()
        pg.wait_for_selector('[data-testid="stProgress"]', timeout=60_000)

        # the bar moves on its own (the panel refreshes every second) once the embeddings are computed
        values: list[float] = []
        deadline = time.time() + 180
        while time.time() < deadline:
            text = pg.locator('[data-testid="stProgress"]').first.inner_text()
            v = _bar_value(pg)
            if v is not None and text.startswith("embeddings"):
                values.append(v)
                if len(values) >= 2 and values[-1] > values[0] and values[-1] < 100:
                    break
            time.sleep(0.5)
        assert len(values) >= 2 and values[-1] > values[0], f"the bar did not move: {values}"
        assert " left" in pg.locator('[data-testid="stProgress"]').first.inner_text()  # counts and an ETA
        shot(pg, shots / "jobs_1_running.png")

        # a page switch and back: the job still runs and its panel is found again
        pg.locator('[data-testid="stSidebarNav"] a', has_text="Export").first.click()
        settle(pg)
        pg.locator('[data-testid="stSidebarNav"] a', has_text="Data").first.click()
        pg.wait_for_selector('[data-testid="stProgress"]', timeout=30_000)
        job = latest_job(work, "data.run")
        assert job is not None and job.active

        pg.get_by_role("button", name="Cancel").click()
        pg.get_by_text("cancelled after").first.wait_for(timeout=90_000)
        settle(pg)
        shot(pg, shots / "jobs_2_cancelled.png")
        job = job.refresh()
        assert job.state == "cancelled" and job.exit_code == 130, job.log_tail()
        assert not (work / "latest.json").exists()  # nothing finished, so no current run was set
        browser.close()
