"""The Map page and the Clusters member view in a real Chromium: the canvas viewer (re-colour, hover tooltip and
card, zoom, box; the tooltip's id and thumbnail, a lasso); the Plotly viewer: open the map, re-colour it by a score and by duplicate-group size, hover a point (id, class, scores), click one (its image), drag a box (the examples
inside); open a cluster's members (kept / pruned marks).  Screenshots go to $CURATE_ARTIFACTS/screenshots
(or artifacts/screenshots) for a person to look at.

Needs /usr/bin/chromium and the playwright Python package (never `playwright install`); skips itself otherwise.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pytest
from browser_helpers import box_select

from curation_app.components import cluster_members

CHROMIUM = "/usr/bin/chromium"
REPO = Path(__file__).resolve().parents[2]
STATUS_GONE = "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')"

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(420)]

sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright Python package is not installed")
if not Path(CHROMIUM).exists():
    pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)", allow_module_level=True)


def _screens() -> Path:
    d = Path(os.environ.get("CURATE_ARTIFACTS") or REPO / "artifacts") / "screenshots"
    d.mkdir(parents=True, exist_ok=True)
    return d


def _settle(pg) -> None:
    time.sleep(0.3)
    pg.wait_for_function(STATUS_GONE, timeout=90_000)


def _title_has(pg, text: str) -> None:
    pg.wait_for_function(
        "t => [...document.querySelectorAll('.js-plotly-plot .gtitle')].some(e => e.textContent.includes(t))",
        arg=text,
        timeout=90_000,
    )


def _shot(pg, name: str) -> None:
    h = pg.evaluate("() => document.querySelector('[data-testid=stMain]').scrollHeight")
    pg.set_viewport_size({"width": 1440, "height": int(min(max(h + 40, 1000), 4000))})
    time.sleep(1.0)  # plotly relayouts to the new size
    pg.wait_for_function("() => [...document.images].every(i => i.complete)", timeout=30_000)
    pg.screenshot(path=str(_screens() / name))
    pg.set_viewport_size({"width": 1440, "height": 1000})
    time.sleep(0.5)


def _hover_a_point(pg) -> str:
    """Move over the plot until plotly's tooltip shows; its text."""
    box = pg.locator(".js-plotly-plot .nsewdrag").first.bounding_box()
    for i in range(60):
        fx, fy = 0.15 + 0.7 * ((i * 37) % 13) / 12, 0.15 + 0.7 * ((i * 53) % 11) / 10
        pg.mouse.move(box["x"] + box["width"] * fx, box["y"] + box["height"] * fy)
        try:
            pg.wait_for_selector(".hoverlayer .hovertext", timeout=300)
            return pg.locator(".hoverlayer .hovertext").first.text_content()
        except sync_api.TimeoutError:
            continue
    pytest.fail("no tooltip appeared anywhere over the map")


@pytest.fixture(scope="module")
def page(app_workdir, app_run, start_streamlit, chromium_args):
    from backend.dedup import run_index

    run_index(app_run)  # the duplicate groups, as the Redundancy page leaves them
    url = start_streamlit(app_workdir, Path(app_workdir) / "streamlit_map.log", cwd=str(app_workdir))
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=chromium_args, headless=True)
        ctx = browser.new_context(viewport={"width": 1440, "height": 1000})
        pg = ctx.new_page()
        pg.set_default_timeout(60_000)
        pg.base_url = url
        yield pg
        ctx.close()
        browser.close()


CANVAS_STATE = (
    "() => { for (const h of document.querySelectorAll('[data-testid=stBidiComponentIsolated]')) {"
    " const S = h.shadowRoot && h.shadowRoot.__mapCanvas; if (S && S.root) return {title: S.root.dataset.title || '',"
    " n: S.n, tip: S.tip.style.display === 'block' ? S.tip.textContent : null, draw: S.drawMs}; } return null; }"
)


def _canvas(pg) -> dict:
    return pg.evaluate(CANVAS_STATE) or {}


def _canvas_title_has(pg, text: str) -> None:
    pg.wait_for_function(
        f"t => {{ const s = ({CANVAS_STATE})(); return s && s.title.includes(t); }}", arg=text, timeout=90_000
    )


def _canvas_hover(pg, *, lo: float = 0.2, span: float = 0.6) -> str:
    """Move over the canvas (the middle ``span`` of it from ``lo``) until the tooltip shows; its text."""
    box = pg.locator(".mc-canvas").first.bounding_box()
    for i in range(80):
        fx, fy = lo + span * ((i * 37) % 13) / 12, lo + span * ((i * 53) % 11) / 10
        pg.mouse.move(box["x"] + box["width"] * fx, box["y"] + box["height"] * fy)
        tip = _canvas(pg).get("tip")
        if tip:
            return tip
    pytest.fail("no tooltip appeared anywhere over the canvas map")


def test_canvas_map_recolour_hover_card_and_box(page, app_run):
    """The default viewer: every example drawn; a re-colour changes the pixels, the tooltip shows class and
    score at once and the pointed example's card (id, image, every score) follows; a box selects from all."""
    pg = page
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.goto(pg.base_url + "/map")  # the canvas is the default viewer
    _canvas_title_has(pg, "coloured by cluster")
    _settle(pg)
    t = app_run.table
    assert _canvas(pg)["n"] == len(t)
    canvas = pg.locator(".mc-canvas").first
    before = canvas.screenshot()
    other = app_run.score_columns[1]
    pg.locator('[data-testid="stRadio"] label', has_text=other).first.click()
    _canvas_title_has(pg, f"coloured by {other}")
    _settle(pg)
    assert canvas.screenshot() != before  # the pixels changed colour
    tip = _canvas_hover(pg)
    assert any(c in tip for c in set(t["label"].astype(str))), tip
    assert other in tip and re.search(r"\d\.\d{3}", tip), tip
    # the pointer rests: the card beside the map (id, class, cluster, image, every score)
    pg.wait_for_selector("text=/ · class .+ · cluster \\d+/", timeout=60_000)
    pg.wait_for_selector('[data-testid="stImage"] img', timeout=60_000)
    card = pg.get_by_text(re.compile(r" · class .+ · cluster \d+")).first.text_content()
    assert any(i in card for i in set(t["example_id"].astype(str))), card
    _settle(pg)
    _shot(pg, "map_canvas_hover_card.png")

    # zoom with the wheel, redraw in the browser (no rerun: the title stays, nothing is fetched)
    box = canvas.bounding_box()
    pg.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    pg.mouse.wheel(0, -600)
    time.sleep(0.5)
    assert _canvas(pg)["draw"] is not None

    pg.locator('[data-testid="stRadio"] label', has_text="duplicate group size").first.click()
    _canvas_title_has(pg, "coloured by duplicate group size")
    _settle(pg)
    pg.locator(".mc-tool[data-mode=reset]").first.click()
    pg.locator(".mc-tool[data-mode=select]").first.click()
    box = canvas.bounding_box()
    x0, y0 = box["x"] + box["width"] * 0.3, box["y"] + box["height"] * 0.3
    x1, y1 = box["x"] + box["width"] * 0.7, box["y"] + box["height"] * 0.7
    pg.mouse.move(x0, y0)
    pg.mouse.down()
    pg.mouse.move(x1, y1, steps=8)
    pg.mouse.up()
    pg.wait_for_selector("text=/examples inside the box/", timeout=60_000)
    pg.wait_for_selector("text=selected, hardest first", timeout=60_000)
    _settle(pg)
    _shot(pg, "map_canvas_box.png")
    assert pg.locator('[data-testid="stException"]').count() == 0
    assert not errors, errors


TIP_THUMB = (
    "() => { for (const h of document.querySelectorAll('[data-testid=stBidiComponentIsolated]')) {"
    " const S = h.shadowRoot && h.shadowRoot.__mapCanvas; if (S && S.root) return S.tip.style.display === 'block'"
    " && S.tip.classList.contains('has-thumb') && S.tipImg.complete && S.tipImg.naturalWidth > 0"
    " && S.tip.dataset.index === String(S.card && S.card.index); } return false; }"
)
LASSO_SHOWN = (
    "() => { for (const h of document.querySelectorAll('[data-testid=stBidiComponentIsolated]')) {"
    " const S = h.shadowRoot && h.shadowRoot.__mapCanvas; if (S && S.root) return !!(S.region && S.region.kind === "
    "'lasso' && S.lassoEl.style.display === 'block' && S.lassoPoly.points.length >= 3); } return false; }"
)


def _lasso(pg, *, centre=(0.5, 0.5), radius=0.25, n=48) -> None:
    """Draw a free-hand loop (a wobbly circle) with the viewer's lasso tool."""
    import math

    pg.locator(".mc-tool[data-mode=lasso]").first.click()
    box = pg.locator(".mc-canvas").first.bounding_box()
    cx, cy = box["x"] + box["width"] * centre[0], box["y"] + box["height"] * centre[1]
    r = box["height"] * radius
    pts = [(cx + r * math.cos(a) * (1 + 0.25 * math.sin(3 * a)), cy + r * math.sin(a)) for a in
           (k * 2 * math.pi / n for k in range(n + 1))]  # fmt: skip
    pg.mouse.move(*pts[0])
    pg.mouse.down()
    for q in pts[1:]:
        pg.mouse.move(*q, steps=2)
    pg.mouse.up()


def test_canvas_tooltip_id_thumbnail_and_lasso(page, app_run):
    """The tooltip names the example (its id, class, cluster, the current score) and, once the pointer rests, shows
    its thumbnail; a lasso comes back as a polygon, selects every example inside it and is drawn again."""
    pg = page
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.goto(pg.base_url + "/map")
    _canvas_title_has(pg, "coloured by")
    _settle(pg)
    pg.wait_for_function(
        "() => [...document.querySelectorAll('[data-testid=stBidiComponentIsolated]')].some(h => h.shadowRoot"
        " && h.shadowRoot.__mapCanvas && h.shadowRoot.__mapCanvas.root.dataset.ids)",
        timeout=60_000,
    )  # the ids arrive after the first draw
    t = app_run.table
    tip = _canvas_hover(pg)
    first = tip.split("\n")[0]
    example_id, _, cls = first.partition(" · ")
    assert example_id in set(t["example_id"].astype(str)), tip
    assert cls == str(t.loc[t["example_id"].astype(str) == example_id, "label"].iloc[0]), tip
    assert re.search(r"cluster \d+", tip) and re.search(r"\d\.\d{3}", tip), tip
    pg.wait_for_function(TIP_THUMB, timeout=60_000)  # rested: the server's card brought the thumbnail

    _lasso(pg)
    pg.wait_for_selector("text=/examples inside the lasso/", timeout=60_000)
    _settle(pg)
    pg.wait_for_function(LASSO_SHOWN, timeout=30_000)  # drawn again after the rerun
    caption = pg.get_by_text(re.compile(r"examples inside the lasso")).first.text_content()
    region = pg.evaluate(
        "() => { for (const h of document.querySelectorAll('[data-testid=stBidiComponentIsolated]')) {"
        " const S = h.shadowRoot && h.shadowRoot.__mapCanvas; if (S && S.root) return S.region; } }"
    )
    from curation_app.components import map_data

    inside = map_data.points_in_polygon(t["map_x"].to_numpy(), t["map_y"].to_numpy(), region["x"], region["y"])
    assert f"{int(inside.sum()):,} of {len(t):,} examples inside the lasso" in caption, caption
    # the pointer over a point inside the lasso: tooltip and selection in one picture (the canvas and the
    # selection's caption inside the viewport)
    pg.set_viewport_size({"width": 1440, "height": 1400})
    time.sleep(0.5)
    pg.locator(".mc-tool[data-mode=pan]").first.click()
    _canvas_hover(pg, lo=0.4, span=0.2)
    pg.wait_for_function(TIP_THUMB, timeout=60_000)
    time.sleep(0.3)
    pg.screenshot(path=str(_screens() / "map_canvas_tooltip_lasso.png"))
    pg.set_viewport_size({"width": 1440, "height": 1000})
    assert pg.locator('[data-testid="stException"]').count() == 0
    assert not errors, errors


def test_map_recolour_hover_click_and_box(page, app_run):
    pg = page
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.goto(pg.base_url + "/map")
    _canvas_title_has(pg, "coloured by")
    _settle(pg)
    pg.locator('[data-testid="stRadio"] label', has_text="plotly").first.click()
    _title_has(pg, "coloured by cluster")
    _settle(pg)

    other = app_run.score_columns[1]
    pg.locator('[data-testid="stRadio"] label', has_text=other).first.click()
    _title_has(pg, f"coloured by {other}")
    _settle(pg)
    tip = _hover_a_point(pg)
    ids = set(app_run.table["example_id"].astype(str))
    assert any(i in tip for i in ids), tip  # the example's id, not "position 29358"
    assert any(c in tip for c in set(app_run.table["label"].astype(str))), tip
    assert other in tip and re.search(r"\d\.\d{3}", tip), tip
    _shot(pg, "map_hover.png")

    # with the pan tool a click selects the point under the tooltip: its image, id, class and scores
    pg.locator('.modebar-btn[data-title="Pan"]').first.click()
    _hover_a_point(pg)  # again: the screenshot resized the page
    pg.mouse.down()
    pg.mouse.up()
    pg.wait_for_selector("text=/ · class .+ · cluster \\d+/", timeout=60_000)
    pg.wait_for_selector('[data-testid="stImage"] img', timeout=60_000)
    _settle(pg)
    _shot(pg, "map_click.png")

    # duplicate-group size, the removed ones marked
    pg.locator('[data-testid="stRadio"] label', has_text="duplicate group size").first.click()
    _title_has(pg, "coloured by duplicate group size")
    _settle(pg)
    assert pg.get_by_text(re.compile("examples are in a duplicate group")).count() >= 1
    _shot(pg, "map_duplicate_groups.png")

    # a box: every example inside, hardest first, with thumbnails
    pg.locator('.modebar-btn[data-title="Box Select"]').first.click()
    box_select(pg)
    pg.wait_for_selector("text=/examples inside the box/", timeout=60_000)
    pg.wait_for_selector("text=selected, hardest first", timeout=60_000)
    pg.wait_for_selector('[data-testid="stImage"] img', timeout=60_000)
    _settle(pg)
    _shot(pg, "map_box.png")
    assert pg.locator('[data-testid="stException"]').count() == 0
    assert not errors, errors


def test_clusters_member_view_marks_kept_and_pruned(page, app_run):
    pg = page
    pg.goto(pg.base_url + "/clusters")
    pg.wait_for_selector("text=Prototypes (nearest the centroid)", timeout=90_000)
    _settle(pg)
    pg.get_by_role("button", name=re.compile(r"^All [\d,]+ members")).first.click()
    pg.wait_for_selector("text=/Cluster \\d+: all/", timeout=60_000)
    pg.wait_for_selector('[data-testid="stImage"] img', timeout=60_000)
    _settle(pg)
    captions = pg.locator('[data-testid="stImageCaption"]').all_text_contents()
    assert captions and all(c.startswith((cluster_members.KEPT_MARK, cluster_members.PRUNED_MARK)) for c in captions)
    assert pg.get_by_text(re.compile(r"[\d,]+ of [\d,]+ kept \(\d+%\), [\d,]+ pruned")).count() >= 1
    _shot(pg, "clusters_members.png")
