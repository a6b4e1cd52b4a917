"""Browser helpers for the Map page's canvas viewer (curation_app/components/map_canvas.py), for any test that
drives the Map page: wait for the canvas to draw, drag a box with its select tool."""

from __future__ import annotations

import time

CANVAS_DRAWN = (
    "() => [...document.querySelectorAll('[data-testid=stBidiComponentIsolated]')].some(h => {"
    " const S = h.shadowRoot && h.shadowRoot.__mapCanvas; return !!(S && S.drawMs !== undefined && S.codes); })"
)


def wait_canvas(pg, timeout_ms: int = 60_000) -> None:
    """Until the canvas viewer drew every point with its colouring."""
    pg.wait_for_function(CANVAS_DRAWN, timeout=timeout_ms)
    pg.wait_for_function("() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=timeout_ms)


def canvas_box_select(pg, *, frac: tuple[float, float] = (0.2, 0.8)) -> None:
    """Pick the viewer's box tool and drag a box over the middle of the canvas."""
    wait_canvas(pg)
    pg.locator(".mc-tool[data-mode=select]").first.click()
    box = pg.locator(".mc-canvas").first.bounding_box()
    x0, y0 = box["x"] + box["width"] * frac[0], box["y"] + box["height"] * frac[0]
    x1, y1 = box["x"] + box["width"] * frac[1], box["y"] + box["height"] * frac[1]
    pg.mouse.move(x0, y0)
    pg.mouse.down()
    pg.mouse.move((x0 + x1) / 2, (y0 + y1) / 2, steps=5)
    pg.mouse.move(x1, y1, steps=5)
    pg.mouse.up()
    time.sleep(0.2)
