"""What the browser tests share: wait for a script run to settle, a whole-page screenshot, page switches.

Not a test module (no ``test_`` prefix); the browser tests import it by name (pytest puts this folder on
``sys.path``).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

T0 = [time.perf_counter()]


def step(name: str) -> None:
    """Elapsed time per step on stderr (pytest shows it on failure, or with -s)."""
    now = time.perf_counter()
    print(f"[browser] {name}: {now - T0[0]:.1f} s", file=sys.stderr)
    T0[0] = now


# the app root's script state, not only the status widget (which Streamlit shows after a delay, if at all); and
# no charts held back for the rerun after a new tab's first paint (curation_app/components/first_paint.py)
NOT_RUNNING = """() => (document.querySelector('[data-testid="stApp"]') || {dataset: {}}).dataset.testScriptState
  === 'notRunning' && !document.querySelector('[data-testid="stStatusWidget"]')
  && !document.querySelector('[data-curate-deferred-charts]') && !document.querySelector('[data-testid="stSkeleton"]')"""


def settle(pg, charts: bool = False) -> None:
    """Wait until the script run finished (and the plotly charts drew)."""
    pg.wait_for_selector('[data-testid="stApp"]')
    time.sleep(0.3)
    pg.wait_for_function(NOT_RUNNING, timeout=60_000)
    if charts:
        pg.wait_for_selector(".js-plotly-plot .main-svg", timeout=60_000)
        time.sleep(0.8)  # plotly draws lazily
    pg.wait_for_function(NOT_RUNNING, timeout=60_000)


def shot(pg, path: Path) -> None:  # noqa: D401
    """Screenshot of the whole page: the viewport grows to the content (Streamlit scrolls inside
    its main container, so full_page alone would cut it) until the height is stable; images and
    charts finish drawing first."""
    last = -1
    for _ in range(10):
        h = pg.evaluate("() => document.querySelector('[data-testid=stMain]').scrollHeight")
        if h == last:
            break
        last = h
        pg.set_viewport_size({"width": 1440, "height": int(min(h + 40, 9000))})
        time.sleep(0.6)  # plotly relayouts to the new size
    pg.wait_for_function("() => [...document.images].every(i => i.complete)", timeout=30_000)
    pg.screenshot(path=str(path))
    pg.set_viewport_size({"width": 1440, "height": 1000})
    step(f"screenshot {path.name}")


def box_select(pg) -> None:
    """Drag a box over the middle of the first plotly chart (its drag mode is box select)."""
    box = pg.locator(".js-plotly-plot .nsewdrag").first.bounding_box()
    x0, y0 = box["x"] + box["width"] * 0.2, box["y"] + box["height"] * 0.2
    x1, y1 = box["x"] + box["width"] * 0.8, box["y"] + box["height"] * 0.8
    pg.mouse.move(x0, y0)
    pg.mouse.down()
    pg.mouse.move((x0 + x1) / 2, (y0 + y1) / 2, steps=5)
    pg.mouse.move(x1, y1, steps=5)
    pg.mouse.up()


def goto_page(pg, title: str, *, chart_pages=frozenset({"data", "map", "difficulty", "prune"})) -> None:
    """Switch page via the sidebar navigation (keeps the session and its settings)."""
    pg.locator('[data-testid="stSidebarNav"] a', has_text=title).first.click()
    settle(pg, charts=title.lower() in chart_pages)
