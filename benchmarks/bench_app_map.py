#!/usr/bin/env python
"""Benchmark: the Map page in a real browser (Playwright driving /usr/bin/chromium), at 60,000 and 1,000,000.

The map viewers are measured on the same run, in the same process, one after the other:

* ``canvas``: the app's Map page with its default viewer (``components/map_canvas.py``, a Streamlit v2 component
  drawing pixels on a <canvas>): first paint (``page.goto`` until every point is drawn), re-colour (a click on a
  "Colour by" option until the canvas names the new colour), zoom (3 wheel steps) and pan (a drag), both drawn
  in the browser, with the draw time the viewer records; hover (the tooltip, then the side card the page fills
  after the pointer rests 350 ms, then the thumbnail in the tooltip); the ids for the tooltip (fetched once after
  the first paint); box selection (its select tool, until the page shows "N of M examples inside the box"); lasso
  selection (a 60-move loop with its lasso tool, until "N of M examples inside the lasso"); the bytes each step
  moved (websocket frames, media fetches);
* ``plotly``: the app's own Map page with "Viewer: plotly" (reached by a click on that option, so its first
  paint is ``first_paint_after_switch_s``) (``curate app``: Streamlit + Plotly ``scattergl``), opened at
  ``/map``.  First paint = ``page.goto`` until the chart's title and WebGL canvas are drawn;
  re-colour = a click on a "Colour by" option until the chart's title names the new colour;
  selection = a mouse drag of a box over the middle of the chart until the page shows the
  "N selected" line of the selection (the region is resolved on the server, see
  ``components/map_data.py``); hover = the mouse over a point until the tooltip shows an example id.
* ``atlas``: Apple's ``embedding-atlas`` Streamlit component (``embedding_atlas.streamlit``) on
  the same columns (x, y, example id, class, cluster, scores), in a one-page Streamlit script that
  this benchmark writes to a temporary folder.  Its frontend loads DuckDB-WASM from
  ``cdn.jsdelivr.net`` (hard-coded in the component's bundle; the package ships no copy for the
  Streamlit widget), so it is measured twice: ``atlas_offline`` with every non-loopback request
  refused (what a user of this app gets: the app must make no outbound request) and
  ``atlas_local_duckdb`` with those requests answered from the DuckDB-WASM files that the
  package ships for its own CLI viewer (``embedding_atlas/static/assets``): what it would cost
  if it were made to work offline.  Every request leaving 127.0.0.1 is recorded.

Every figure is one measurement (the machine is shared: compare only within one run); the load
average before and after is recorded.  embedding-atlas is looked up on ``sys.path`` and in
``--atlas-path`` (e.g. a ``pip install --target`` folder), never installed by this script.

Usage::

    python benchmarks/bench_app_map.py --workdir /work/demo_work              # 60k, both viewers
    python benchmarks/bench_app_map.py --workdir /tmp/h2_million/work --label 1M
    python benchmarks/bench_app_map.py --workdir W --viewers plotly           # the app's map only

Results are merged into ``benchmarks/results/app_map.json`` under ``--label`` (default: the row count).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
from browser_server import CHROMIUM, CHROMIUM_ARGS, free_port, stop, wait_healthy  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "app_map.json"
STATUS_GONE = "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')"

ATLAS_PAGE = """
import numpy as np, pandas as pd, streamlit as st
import backend
from embedding_atlas.streamlit import embedding_atlas
st.set_page_config(layout="wide")

@st.cache_resource
def frame(workdir, max_points):
    run = backend.load_run(workdir)
    t = run.table
    df = pd.DataFrame({"x": t["map_x"].to_numpy(np.float32), "y": t["map_y"].to_numpy(np.float32),
                       "example_id": t["example_id"].astype(str), "cluster": t["cluster"].astype(str)})
    if "label" in t.columns:
        df["label"] = t["label"].astype(str)
    for c in run.score_columns[:4]:
        df[c] = t[c].to_numpy(np.float32)
    return df

df = frame(WORKDIR, None)
st.title("embedding-atlas")
value = embedding_atlas(df, x="x", y="y", text="example_id", row_id="example_id", point_size=2, key="atlas")
st.write("predicate:", (value or {}).get("predicate"))
"""


def start_streamlit(
    script: Path, workdir: Path, log: Path, *, extra_path: str = "", tree: Path = ROOT, timeout: float = 180
):
    """(process, url) of ``streamlit run script`` on a free loopback port (the flags of tests/app/conftest.py),
    importing ``curation_app`` and ``backend`` from ``tree``."""
    port = free_port()
    env = dict(os.environ, CURATE_WORKDIR=str(workdir), CURATE_ALLOWED_DIRS=str(workdir))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(tree), extra_path, env.get("PYTHONPATH", "")) if p)
    cmd = [sys.executable, "-m", "streamlit", "run", str(script), "--server.headless", "true"]
    cmd += ["--server.port", str(port), "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false"]
    out = open(log, "w")
    proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=str(workdir))
    return proc, wait_healthy(proc, port, log, timeout=timeout)


def _timed(fn, timeout_ms: int) -> float | str:
    t0 = time.perf_counter()
    try:
        fn(timeout_ms)
    except Exception as exc:  # noqa: BLE001 - a failed step is a result ("timeout after ..."), not a crash
        return f"failed after {time.perf_counter() - t0:.1f} s: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
    return round(time.perf_counter() - t0, 3)


def _settle(pg, timeout_ms: int) -> None:
    time.sleep(0.2)
    pg.wait_for_function(STATUS_GONE, timeout=timeout_ms)


def _title_has(pg, text: str, timeout_ms: int) -> None:
    pg.wait_for_function(
        "t => [...document.querySelectorAll('.js-plotly-plot .gtitle')].some(e => e.textContent.includes(t))",
        arg=text,
        timeout=timeout_ms,
    )


def measure_plotly(
    pg, url: str, colours: list[str], timeout_ms: int, shot: Path | None = None, *, switch: bool = False
) -> dict:
    """The app's Map page: first paint, re-colour (each of ``colours``), box selection, hover.

    ``switch``: the page opens with another viewer (the canvas, the default): "first paint" is then the click
    on the "Viewer: plotly" option until the chart is drawn (``first_paint_after_switch_s``), no page load."""
    out: dict = {}
    frames: list[tuple[float, int]] = []  # (time, bytes) of every websocket message the page receives
    pg.on("websocket", lambda ws: ws.on("framereceived", lambda f: frames.append((time.perf_counter(), len(f)))))
    if switch:
        pg.goto(url + "/map")
        _canvas_has(pg, "title", "2-D map of", timeout_ms)
        _settle(pg, timeout_ms)

    def first(tmo):
        if switch:
            pg.locator('[data-testid="stRadio"] label', has_text="plotly").first.click()
        else:
            pg.goto(url + "/map")
        _title_has(pg, "2-D map of", tmo)
        pg.wait_for_selector(".js-plotly-plot canvas", timeout=tmo)

    out["first_paint_after_switch_s" if switch else "first_paint_s"] = _timed(first, timeout_ms)
    _settle(pg, timeout_ms)
    out["recolour_s"] = {}
    out["recolour_message"] = {}
    for c in colours:
        t_click = [0.0]

        def recolour(tmo, c=c):
            t_click[0] = time.perf_counter()
            pg.locator('[data-testid="stRadio"] label', has_text=c).first.click()
            _title_has(pg, f"coloured by {c}", tmo)

        out["recolour_s"][c] = _timed(recolour, timeout_ms)
        # when the chart's message arrived (server + wire) and its size: the rest is the browser drawing it
        big = [(t, n) for t, n in frames if t >= t_click[0] and n > 50_000]
        if big:
            out["recolour_message"][c] = {
                "arrived_s": round(big[-1][0] - t_click[0], 3),
                "mb": round(big[-1][1] / 1e6, 2),
            }
        out["recolour_settled_s"] = out.get("recolour_settled_s", {}) | {
            c: _timed(lambda tmo: _settle(pg, tmo), timeout_ms)
        }

    def hover(tmo):
        box = pg.locator(".js-plotly-plot .nsewdrag").first.bounding_box()
        # sweep until plotly's hover label shows (a point must be under the pointer)
        deadline = time.time() + tmo / 1000
        i = 0
        while time.time() < deadline:
            fx, fy = 0.3 + 0.4 * ((i * 37) % 11) / 10, 0.3 + 0.4 * ((i * 53) % 7) / 6
            pg.mouse.move(box["x"] + box["width"] * fx, box["y"] + box["height"] * fy)
            try:
                pg.wait_for_selector(".hoverlayer .hovertext", timeout=400)
                return
            except Exception:  # noqa: BLE001 - nothing under this spot: move on
                i += 1
        raise TimeoutError("no hover label")

    out["hover_s"] = _timed(hover, timeout_ms)
    try:
        out["hover_text"] = pg.locator(".hoverlayer .hovertext").first.text_content()[:300]
    except Exception:  # noqa: BLE001
        out["hover_text"] = None
    pg.mouse.move(5, 5)

    def select(tmo):
        box = pg.locator(".js-plotly-plot .nsewdrag").first.bounding_box()
        x0, y0 = box["x"] + box["width"] * 0.4, box["y"] + box["height"] * 0.4
        x1, y1 = box["x"] + box["width"] * 0.6, box["y"] + box["height"] * 0.6
        pg.mouse.move(x0, y0)
        pg.mouse.down()
        pg.mouse.move((x0 + x1) / 2, (y0 + y1) / 2, steps=4)
        pg.mouse.move(x1, y1, steps=4)
        pg.mouse.up()
        pg.wait_for_selector("text=/selected in the box|selected in the lasso|selected, hardest first/", timeout=tmo)

    out["box_select_s"] = _timed(select, timeout_ms)
    try:
        out["selection_text"] = pg.locator("text=/selected in the box|selected, hardest first/").first.text_content()
    except Exception:  # noqa: BLE001
        out["selection_text"] = None
    out["select_settled_s"] = _timed(lambda tmo: _settle(pg, tmo), timeout_ms)
    if shot is not None:
        pg.screenshot(path=str(shot))
    return out


CANVAS_ROOT = (
    "() => { for (const h of document.querySelectorAll('[data-testid=stBidiComponentIsolated]')) {"
    " const r = h.shadowRoot && h.shadowRoot.querySelector('.mc-root'); if (r) return r; } return null; }"
)


def _canvas_has(pg, attr: str, text: str, timeout_ms: int) -> None:
    pg.wait_for_function(
        f"([a, t]) => {{ const r = ({CANVAS_ROOT})(); return r && (r.dataset[a] || '').includes(t); }}",
        arg=[attr, text],
        timeout=timeout_ms,
    )


def _canvas_state(pg) -> dict:
    return pg.evaluate(
        f"() => {{ const r = ({CANVAS_ROOT})(); const S = r && r.getRootNode().__mapCanvas;"
        " return S ? {draw_ms: S.drawMs, n: S.n, tip: S.tip.style.display === 'block' ? S.tip.textContent : null}"
        " : null; }"
    )


def measure_canvas(pg, url: str, colours: list[str], timeout_ms: int, shot: Path | None = None) -> dict:
    """The Map page with the canvas viewer (its default): first paint, re-colour, pan, zoom, hover
    (tooltip, then the side card), box selection; the bytes each step moved (websocket + media fetches)."""
    out: dict = {}
    frames: list[tuple[float, int]] = []
    media: list[tuple[float, int, str]] = []
    pg.on("websocket", lambda ws: ws.on("framereceived", lambda f: frames.append((time.perf_counter(), len(f)))))

    def on_response(r):
        if "/media/" in r.url:
            try:
                media.append((time.perf_counter(), len(r.body()), r.url.rsplit("/", 1)[-1][:12]))
            except Exception:  # noqa: BLE001 - a response whose body is gone: not counted
                pass

    pg.on("response", on_response)

    def moved(t0: float) -> dict:
        return {
            "websocket_mb": round(sum(n for t, n in frames if t >= t0) / 1e6, 3),
            "fetched_mb": round(sum(n for t, n, _ in media if t >= t0) / 1e6, 3),
        }

    t0 = time.perf_counter()

    def first(tmo):
        pg.goto(url + "/map")  # the canvas is the page's default viewer
        _canvas_has(pg, "title", "2-D map of", tmo)

    out["first_paint_s"] = _timed(first, timeout_ms)
    out["first_paint_bytes"] = moved(t0)

    def ids(tmo):  # the example ids for the tooltip: fetched once per run, after the first draw
        pg.wait_for_function(f"() => {{ const r = ({CANVAS_ROOT})(); return r && !!r.dataset.ids; }}", timeout=tmo)

    out["ids_after_first_paint_s"] = _timed(ids, timeout_ms)
    out["ids_mb"] = pg.evaluate(
        f"() => {{ const r = ({CANVAS_ROOT})(); const S = r && r.getRootNode().__mapCanvas;"
        " return S && S.idBytes ? Math.round(S.idBytes.length / 1e3) / 1e3 : null; }"
    )  # the file's size as the viewer holds it (a media fetch can finish before the step's clock starts)
    _settle(pg, timeout_ms)
    st0 = _canvas_state(pg) or {}
    out["n_drawn"] = st0.get("n")
    out["draw_ms"] = st0.get("draw_ms")
    out["recolour_s"], out["recolour_bytes"], out["recolour_settled_s"] = {}, {}, {}
    for c in colours:
        t_click = time.perf_counter()

        def recolour(tmo, c=c):
            pg.locator('[data-testid="stRadio"] label', has_text=c).first.click()
            _canvas_has(pg, "title", f"coloured by {c}", tmo)

        out["recolour_s"][c] = _timed(recolour, timeout_ms)
        out["recolour_settled_s"][c] = _timed(lambda tmo: _settle(pg, tmo), timeout_ms)
        out["recolour_bytes"][c] = moved(t_click)
    canvas = pg.locator(".mc-canvas").first
    box = canvas.bounding_box()
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2

    def zoom(tmo):
        pg.mouse.move(cx, cy)
        for _ in range(3):
            pg.mouse.wheel(0, -240)
            time.sleep(0.05)
        pg.evaluate("() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")

    out["zoom_3_wheel_steps_s"] = _timed(zoom, timeout_ms)
    out["zoom_draw_ms"] = (_canvas_state(pg) or {}).get("draw_ms")

    def pan(tmo):
        pg.mouse.move(cx, cy)
        pg.mouse.down()
        pg.mouse.move(cx + 120, cy + 60, steps=6)
        pg.mouse.up()
        pg.evaluate("() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")

    out["pan_6_moves_s"] = _timed(pan, timeout_ms)
    out["pan_draw_ms"] = (_canvas_state(pg) or {}).get("draw_ms")
    pg.locator(".mc-tool[data-mode=reset]").first.click()
    pg.mouse.move(5, 5)  # off the map: the card that the zoom's resting pointer asked for is the "before"
    _settle(pg, timeout_ms)
    card_sel = '[data-testid="stMarkdownContainer"]:has-text("· cluster")'
    before = pg.locator(card_sel).first.text_content() if pg.locator(card_sel).count() else ""
    t_hover = [0.0]

    def hover(tmo):
        deadline = time.time() + tmo / 1000
        i = 0
        while time.time() < deadline:
            fx, fy = 0.3 + 0.4 * ((i * 37) % 11) / 10, 0.3 + 0.4 * ((i * 53) % 7) / 6
            t_hover[0] = time.perf_counter()
            pg.mouse.move(box["x"] + box["width"] * fx, box["y"] + box["height"] * fy)
            st = _canvas_state(pg) or {}
            if st.get("tip"):
                out["hover_text"] = st["tip"]
                return
            i += 1
        raise TimeoutError("no tooltip")

    out["hover_tooltip_s"] = _timed(hover, timeout_ms)

    def card(tmo):
        # the card of the newly hovered example (another id than before; the first hit of a sweep can be the
        # same point only by chance)
        pg.wait_for_function(
            "b => [...document.querySelectorAll('[data-testid=stMarkdownContainer]')]"
            ".some(m => m.textContent.includes('· cluster') && m.textContent !== b)",
            arg=before,
            timeout=tmo,
        )

    out["hover_card_s"] = _timed(card, timeout_ms)  # from the tooltip; includes the viewer's rest delay
    out["hover_rest_ms"] = 350

    def thumb(tmo):  # the rested point's thumbnail in the tooltip (a run with images only)
        pg.wait_for_function(
            f"() => {{ const r = ({CANVAS_ROOT})(); const S = r && r.getRootNode().__mapCanvas; return !!(S &&"
            " S.tip.classList.contains('has-thumb') && S.tipImg.complete && S.tipImg.naturalWidth > 0); }",
            timeout=tmo,
        )

    if pg.locator('[data-testid="stCaptionContainer"]:has-text("no image (precomputed")').count():
        out["hover_thumbnail_s"] = "n/a: precomputed embeddings, no images"
    elif out.get("hover_text"):
        res = _timed(thumb, 10_000)  # from the tooltip (like hover_card_s)
        out["hover_thumbnail_s"] = round(time.perf_counter() - t_hover[0], 3) if isinstance(res, float) else res
    _settle(pg, timeout_ms)
    pg.locator(".mc-tool[data-mode=select]").first.click()
    t_sel = time.perf_counter()

    def select(tmo):
        x0, y0 = box["x"] + box["width"] * 0.4, box["y"] + box["height"] * 0.4
        x1, y1 = box["x"] + box["width"] * 0.6, box["y"] + box["height"] * 0.6
        pg.mouse.move(x0, y0)
        pg.mouse.down()
        pg.mouse.move(x1, y1, steps=8)
        pg.mouse.up()
        pg.wait_for_selector("text=/examples inside the box/", timeout=tmo)

    out["box_select_s"] = _timed(select, timeout_ms)
    out["box_select_bytes"] = moved(t_sel)
    try:
        out["selection_text"] = pg.locator("text=/examples inside the box/").first.text_content()
    except Exception:  # noqa: BLE001
        out["selection_text"] = None
    out["select_settled_s"] = _timed(lambda tmo: _settle(pg, tmo), timeout_ms)
    pg.locator(".mc-tool[data-mode=lasso]").first.click()
    t_lasso = time.perf_counter()

    def lasso(tmo):  # a free-hand loop (a wobbly circle of 60 moves) around the middle of the map
        import math

        r = box["height"] * 0.15
        pts = [(cx + r * math.cos(a) * (1 + 0.25 * math.sin(3 * a)), cy + r * math.sin(a))
               for a in (k * 2 * math.pi / 60 for k in range(61))]  # fmt: skip
        pg.mouse.move(*pts[0])
        pg.mouse.down()
        for q in pts[1:]:
            pg.mouse.move(*q)
        t_up[0] = time.perf_counter()
        pg.mouse.up()
        pg.wait_for_selector("text=/examples inside the lasso/", timeout=tmo)

    t_up = [0.0]
    res = _timed(lasso, timeout_ms)
    out["lasso_draw_and_select_s"] = res  # from the first move: includes the 60 moves of the loop
    out["lasso_select_s"] = round(time.perf_counter() - t_up[0], 3) if isinstance(res, float) else res  # from release
    out["lasso_select_bytes"] = moved(t_lasso)
    try:
        out["lasso_text"] = pg.locator("text=/examples inside the lasso/").first.text_content()
    except Exception:  # noqa: BLE001
        out["lasso_text"] = None
    out["lasso_settled_s"] = _timed(lambda tmo: _settle(pg, tmo), timeout_ms)
    if shot is not None:
        pg.screenshot(path=str(shot))
    return out


def measure_atlas(pg, url: str, timeout_ms: int, shot: Path | None = None) -> dict:
    """The embedding-atlas component: first paint (its canvas drawn), box selection (its predicate back)."""
    out: dict = {}

    def frame_el():
        return pg.frame_locator('iframe[title*="embedding_atlas"]')

    def first(tmo):
        pg.goto(url)
        pg.wait_for_selector('iframe[title*="embedding_atlas"]', timeout=tmo)
        frame_el().locator("canvas").first.wait_for(timeout=tmo)

    out["first_paint_s"] = _timed(first, timeout_ms)
    if shot is not None:
        time.sleep(2.0)
        pg.screenshot(path=str(shot.with_name(shot.stem + "_first.png")))
    if isinstance(out["first_paint_s"], str):
        return out

    def select(tmo):
        # a plain drag pans; the rectangle tool of the view's toolbar (a button titled "...select...") selects
        tool = frame_el().locator('button[title*="ect" i], [role="button"][title*="ect" i]')
        out["select_tools"] = [tool.nth(i).get_attribute("title") for i in range(min(tool.count(), 6))]
        rect = frame_el().locator('button[title*="rect" i], button[title*="box" i]')
        if rect.count():
            rect.first.click()
        c = frame_el().locator("canvas").first
        box = c.bounding_box()
        x0, y0 = box["x"] + box["width"] * 0.4, box["y"] + box["height"] * 0.4
        x1, y1 = box["x"] + box["width"] * 0.6, box["y"] + box["height"] * 0.6
        pg.keyboard.down("Shift")  # and shift-drag, should the tool not be found
        pg.mouse.move(x0, y0)
        pg.mouse.down()
        pg.mouse.move(x1, y1, steps=8)
        pg.mouse.up()
        pg.keyboard.up("Shift")
        pg.wait_for_selector("text=/predicate:.*(x|y)/", timeout=tmo)

    out["box_select_s"] = _timed(select, min(timeout_ms, 60_000))
    if shot is not None:
        pg.screenshot(path=str(shot.with_name(shot.stem + "_select.png")))
    return out


PLOTLY_FLOOR_PAGE = """<html><body><div id="g" style="width:1200px;height:620px"></div>
<script src="plotly.min.js"></script><script>
function rnd(n){const a=new Float32Array(n);for(let i=0;i<n;i++)a[i]=Math.random();return a;}
async function run(n){
  const x=rnd(n), y=rnd(n), text=Array.from({length:n},(_, i)=>"train/"+i+" · Ankle boot");
  const tr=(c)=>({type:'scattergl',mode:'markers',x,y,text,marker:{size:3,color:c,colorscale:'Viridis'}});
  let t0=performance.now(); await Plotly.newPlot('g',[tr(rnd(n))],{uirevision:'a'}); const first=performance.now()-t0;
  t0=performance.now(); await Plotly.restyle('g',{'marker.color':[rnd(n)]}); const restyle=performance.now()-t0;
  t0=performance.now(); await Plotly.relayout('g',{'xaxis.range':[0.2,0.8]}); const zoom=performance.now()-t0;
  return {n, newplot_s: first/1000, recolour_restyle_s: restyle/1000, zoom_s: zoom/1000};
}
</script></body></html>"""


def plotly_floor(sizes: list[int]) -> list[dict]:
    """plotly.js alone in this Chromium (no Streamlit, no network): newPlot, a re-colour (Plotly.restyle of
    marker.color only, the least plotly can do) and a zoom of a scattergl of n points, served from loopback."""
    import functools
    import http.server
    import threading

    import plotly

    d = Path(tempfile.mkdtemp(prefix="plotly_floor_"))
    shutil.copy(Path(plotly.__file__).parent / "package_data" / "plotly.min.js", d / "plotly.min.js")
    (d / "index.html").write_text(PLOTLY_FLOOR_PAGE)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(d))
    handler.log_message = lambda *a, **k: None  # type: ignore[method-assign]
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        res, _ = run_browser(
            f"http://127.0.0.1:{srv.server_address[1]}",
            lambda pg: {
                "runs": [
                    (pg.goto(f"http://127.0.0.1:{srv.server_address[1]}/index.html"), pg.evaluate(f"run({n})"))[1]
                    for n in sizes
                ]
            },
        )
    finally:
        srv.shutdown()
        shutil.rmtree(d, ignore_errors=True)
    return [{k: (round(v, 3) if isinstance(v, float) else v) for k, v in r.items()} for r in res["runs"]]


def atlas_assets(atlas_dir: Path) -> dict:
    """The DuckDB-WASM files embedding-atlas ships for its CLI viewer, by the name the Streamlit bundle asks for."""
    a = atlas_dir / "static" / "assets"
    pick = {
        "duckdb-eh.wasm": next(a.glob("duckdb-eh-*.wasm"), None),
        "duckdb-mvp.wasm": next(a.glob("duckdb-mvp-*.wasm"), None),
        "duckdb-browser-eh.worker.js": next(a.glob("duckdb-browser-eh.worker-*.js"), None),
        "duckdb-browser-mvp.worker.js": next(a.glob("duckdb-browser-mvp.worker-*.js"), None),
    }
    return {k: v for k, v in pick.items() if v is not None}


def run_browser(url: str, fn, *, local_duckdb: dict | None = None, viewport=(1440, 1000)) -> tuple[dict, list[str]]:
    """Run ``fn(page)`` in a fresh Chromium; requests that leave 127.0.0.1 are refused (or answered from
    ``local_duckdb``) and listed."""
    from playwright.sync_api import sync_playwright

    outbound: list[str] = []

    def route(r):
        u = r.request.url
        if u.startswith(("http://127.0.0.1", "ws://127.0.0.1", "data:", "blob:")):
            return r.continue_()
        outbound.append(u)
        name = u.rsplit("/", 1)[-1]
        if local_duckdb and name in local_duckdb:
            ctype = "application/wasm" if name.endswith(".wasm") else "text/javascript"
            return r.fulfill(
                status=200,
                body=Path(local_duckdb[name]).read_bytes(),
                headers={"content-type": ctype, "access-control-allow-origin": "*"},
            )
        return r.abort()

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        ctx = browser.new_context(viewport={"width": viewport[0], "height": viewport[1]})
        ctx.route("**/*", route)
        pg = ctx.new_page()
        errors: list[str] = []
        pg.on("pageerror", lambda e: errors.append(str(e)[:200]))
        try:
            res = fn(pg)
        finally:
            ctx.close()
            browser.close()
    res["page_errors"] = errors[:5]
    return res, sorted(set(outbound))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workdir", required=True, help="a workdir with a finished run (its latest run is used)")
    ap.add_argument("--label", help="key in the results file (default: 60k / 1M from the row count)")
    ap.add_argument("--viewers", default="canvas,plotly", help="comma list of canvas, plotly, atlas")
    ap.add_argument("--atlas-path", default="", help="a folder holding the embedding_atlas package (pip --target)")
    ap.add_argument("--colours", default="", help="colours to try (default: two scores, then class / cluster)")
    ap.add_argument("--plotly-floor", default="", help="comma list of sizes: plotly.js alone at each (e.g. 60000)")
    ap.add_argument("--shots", default="", help="a folder for screenshots of each viewer")
    ap.add_argument("--timeout", type=float, default=120, help="seconds per step before it counts as failed")
    ap.add_argument(
        "--app", default=str(ROOT / "curation_app" / "app.py"), help="the app script (default: this tree's)"
    )
    ap.add_argument(
        "--baseline-tree",
        default="",
        help="a copy of an older tree (git archive COMMIT curation_app backend | tar -x -C DIR): its Map page "
        "is measured first, in the same run, as plotly_baseline",
    )
    ap.add_argument("--baseline-colours", default="", help="colours for the baseline (its titles may differ)")
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args(argv)

    import backend

    workdir = Path(args.workdir).resolve()
    run = backend.load_run(workdir)
    n = run.n_examples
    label = args.label or (f"{n // 1000}k" if n < 1_000_000 else f"{n / 1e6:g}M")
    colours = [c for c in args.colours.split(",") if c] or (run.score_columns[:2] + ["duplicate group size", "cluster"])
    tmo = int(args.timeout * 1000)
    report: dict = {
        "n": n,
        "workdir": str(workdir),
        "run": run.key,
        "loadavg_before": [round(v, 2) for v in os.getloadavg()],
        "cpus": os.cpu_count(),
        "commit": subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    tmp = Path(tempfile.mkdtemp(prefix="bench_app_map_"))
    try:
        if args.baseline_tree:
            base = Path(args.baseline_tree).resolve()
            proc, url = start_streamlit(base / "curation_app" / "app.py", workdir, tmp / "base.log", tree=base)
            bcol = [c for c in args.baseline_colours.split(",") if c] or colours
            try:
                res, outbound = run_browser(url, lambda pg: measure_plotly(pg, url, bcol, tmo))
                res["outbound_requests"] = outbound
                res["tree"] = str(base)
                report["plotly_baseline"] = res
            finally:
                stop(proc)
            print(json.dumps({"plotly_baseline": report["plotly_baseline"]}, indent=1), flush=True)
        if "plotly" in args.viewers or "canvas" in args.viewers:
            # both viewers of the app, on one server, one after the other (each in a fresh browser)
            proc, url = start_streamlit(Path(args.app), workdir, tmp / "app.log")
            try:
                for viewer, fn in (("canvas", measure_canvas), ("plotly", measure_plotly)):
                    if viewer not in args.viewers:
                        continue
                    shot = Path(args.shots) / f"bench_{label}_{viewer}.png" if args.shots else None
                    kw = {"switch": True} if viewer == "plotly" else {}
                    res, outbound = run_browser(
                        url, lambda pg, fn=fn, shot=shot, kw=kw: fn(pg, url, colours, tmo, shot, **kw)
                    )
                    res["outbound_requests"] = outbound
                    res["loadavg_after_viewer"] = [round(v, 2) for v in os.getloadavg()]
                    report[viewer] = res
                    print(json.dumps({viewer: report[viewer]}, indent=1), flush=True)
            finally:
                stop(proc)
        if "atlas" in args.viewers:
            extra = args.atlas_path
            probe = subprocess.run(
                [sys.executable, "-c", "import embedding_atlas, os; print(os.path.dirname(embedding_atlas.__file__))"],
                env=dict(os.environ, PYTHONPATH=extra),
                capture_output=True,
                text=True,
            )
            if probe.returncode != 0:
                report["atlas"] = {"skipped": "embedding_atlas is not importable (pass --atlas-path)"}
            else:
                atlas_dir = Path(probe.stdout.strip())
                page = tmp / "atlas_page.py"
                page.write_text(ATLAS_PAGE.replace("WORKDIR", repr(str(workdir))))
                for variant, local in (("atlas_offline", None), ("atlas_local_duckdb", atlas_assets(atlas_dir))):
                    proc, url = start_streamlit(page, workdir, tmp / f"{variant}.log", extra_path=extra)
                    try:
                        shot = Path(args.shots) / f"bench_{label}_{variant}.png" if args.shots else None
                        res, outbound = run_browser(
                            url, lambda pg: measure_atlas(pg, url, tmo, shot), local_duckdb=local
                        )
                        res["outbound_requests"] = outbound
                        report[variant] = res
                    finally:
                        stop(proc)
                    print(json.dumps({variant: report[variant]}, indent=1), flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if args.plotly_floor:
        report["plotly_js_alone"] = plotly_floor([int(v) for v in args.plotly_floor.split(",") if v])
        print(json.dumps({"plotly_js_alone": report["plotly_js_alone"]}, indent=1), flush=True)
    report["loadavg_after"] = [round(v, 2) for v in os.getloadavg()]
    out = Path(args.out)
    allres = json.loads(out.read_text()) if out.exists() else {}
    # merge: a run of one viewer keeps the others' earlier results under the same label (each viewer's
    # result carries its own commit and load average)
    for key, val in report.items():
        if isinstance(val, dict) and key not in ("machine",):
            val.setdefault("commit", report["commit"])
            val.setdefault("loadavg_before_run", report["loadavg_before"])
            val.setdefault("loadavg_after_run", report["loadavg_after"])
    allres[label] = {**allres.get(label, {}), **report}
    from backend.io import write_json

    write_json(out, allres)
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
