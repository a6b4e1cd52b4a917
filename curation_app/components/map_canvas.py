"""The Map page's canvas viewer: a Streamlit v2 component that draws every example as pixels on a <canvas>.

Why not Plotly at this size: a re-colour there resends the whole figure (positions, hover text: ~4 MB at
60,000 points) and plotly.js needs ~0.9 s to restyle 60,000 points in software rendering.  Here:

* the positions are sent **once per run**: :func:`position_bytes` (x, y quantised to uint16 over the map's
  bounds, the class code and the cluster, uint16 each: 8 bytes a point) is registered with Streamlit's
  in-memory media store, whose file id is a hash of the bytes, so every rerun hands the browser the same URL
  and the component (kept mounted by its key) does not fetch it again;
* a re-colour sends only :func:`colour_bytes` (a uint8 palette index per point, plus the float32 score per
  point when the colour is a score, for the tooltip) at a URL of its own, and a small JSON message (palette,
  legend, title);
* pan and zoom happen in the browser; a box selection comes back as a region in map coordinates
  (``{"x0", "x1", "y0", "y1"}``), resolved on the server over every example
  (``map_data.region_positions``); the hovered or clicked point comes back as its index (position in the
  run's table), for the page's card.

Pure encoding functions first (tested without a browser), the Streamlit mount last.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

from curation_app.components import map_data

QUANT = 65535  # positions are quantised to uint16: 1/65535 of the map's extent (far below a pixel)
LEVELS = 255  # colour levels of a score (palette indices 0..254)
TOP = 255  # palette index drawn on top of the others (near-duplicates removed, or the kept examples)
HEIGHT = 620  # canvas height, CSS pixels
REST_MS = 350  # the pointer rests this long on a point before the page is asked for its card


def bounds(x: np.ndarray, y: np.ndarray) -> list[float]:
    """[x_min, x_max, y_min, y_max] of the map, widened when flat so the quantisation never divides by zero."""
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    if len(x) == 0:
        return [0.0, 1.0, 0.0, 1.0]
    x0, x1, y0, y1 = float(np.nanmin(x)), float(np.nanmax(x)), float(np.nanmin(y)), float(np.nanmax(y))
    # a square extent: the viewer keeps the map's aspect ratio (one unit is as long on both axes)
    side = max(x1 - x0, y1 - y0, 1e-9)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    return [cx - side / 2, cx + side / 2, cy - side / 2, cy + side / 2]


def quantise(values: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """uint16 in 0..65535 for ``values`` in [lo, hi] (NaN -> 0)."""
    v = (np.asarray(values, np.float64) - lo) / max(hi - lo, 1e-12)
    return np.round(np.clip(np.nan_to_num(v, nan=0.0), 0.0, 1.0) * QUANT).astype(np.uint16)


def dequantise(q: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """The map coordinate of a quantised position (what the browser computes)."""
    return lo + np.asarray(q, np.float64) / QUANT * (hi - lo)


def position_bytes(x, y, class_codes, clusters, box: list[float]) -> bytes:
    """x, y (quantised over ``box``), class code and cluster: four uint16 blocks of n values each."""
    cls = np.clip(np.asarray(class_codes, np.int64), 0, QUANT).astype(np.uint16)
    clu = np.clip(np.asarray(clusters, np.int64), 0, QUANT).astype(np.uint16)
    blocks = [quantise(x, box[0], box[1]), quantise(y, box[2], box[3]), cls, clu]
    return np.concatenate(blocks).astype("<u2").tobytes()


def score_levels(values: np.ndarray) -> tuple[np.ndarray, float, float]:
    """(uint8 level 0..254 per value, low, high): the colour of a score, linear between its 1st and 99th
    percentiles so that a few outliers do not flatten the rest (NaN -> level 0)."""
    v = np.asarray(values, np.float64)
    finite = v[np.isfinite(v)]
    if len(finite) == 0:
        return np.zeros(len(v), np.uint8), 0.0, 1.0
    lo, hi = (float(q) for q in np.percentile(finite, [1, 99]))
    if hi <= lo:
        lo, hi = float(finite.min()), float(finite.max())
    t = np.clip((np.nan_to_num(v, nan=lo) - lo) / max(hi - lo, 1e-12), 0.0, 1.0)
    return np.round(t * (LEVELS - 1)).astype(np.uint8), lo, hi


def colour_bytes(codes: np.ndarray, scores: np.ndarray | None = None) -> bytes:
    """uint8 palette index per point, padded to a multiple of 4 bytes, then (optional) float32 score per point."""
    c = np.asarray(codes)
    if len(c) and (c.min() < 0 or c.max() > 255):
        raise ValueError("palette indices must be 0..255")
    out = c.astype(np.uint8).tobytes()
    out += b"\0" * (-len(out) % 4)
    if scores is not None:
        out += np.asarray(scores, "<f4").tobytes()
    return out


@lru_cache(maxsize=1)
def viridis(levels: int = LEVELS) -> list[str]:
    """``levels`` hex colours of Plotly's Viridis (the Plotly viewer's colour scale)."""
    from plotly.colors import sample_colorscale

    out = []
    for c in sample_colorscale("Viridis", [i / (levels - 1) for i in range(levels)]):
        r, g, b = (int(round(float(v))) for v in c[c.index("(") + 1 : -1].split(","))
        out.append(f"#{r:02x}{g:02x}{b:02x}")
    return out


def colour_payload(
    c: map_data.Colouring,
    *,
    palette: list[str],
    top_colour: str,
    scores: np.ndarray | None = None,
    score_name: str | None = None,
) -> tuple[bytes, dict]:
    """(bytes, JSON part) of one colouring for the canvas.

    Category: palette index = group code modulo the palette (as the Plotly viewer cycles it), the kept group
    (two groups, "kept" last) drawn on top.  Value: the score's level on Viridis, the float32 score travels
    along for the tooltip; an overlay (near-duplicates removed) is palette index 255, drawn on top.
    ``scores`` (float per point, named ``score_name``): the score a category's tooltip shows (the current metric).
    """
    if c.kind == "category":
        assert c.codes is not None
        codes = np.asarray(c.codes, np.int64)
        cols = list(c.colours) if c.colours else list(palette)
        n_col = min(len(cols), 255)
        idx = (codes % n_col).astype(np.uint8)
        pal = cols[:n_col]
        top = 1 if len(c.names) == 2 and c.colours else -1  # kept over pruned
        legend = [c.names[i] if i < len(c.names) else "" for i in range(n_col)] if len(c.names) <= n_col else None
        return colour_bytes(idx, scores), {
            "palette": pal,
            "top_code": top,
            "has_scores": scores is not None,
            "legend": legend,
            "legend_title": c.legend_title,
            "score_name": score_name if scores is not None else None,
        }
    assert c.values is not None
    levels, lo, hi = score_levels(c.values)
    pal = viridis() + [top_colour]
    if c.overlay is not None:
        levels = levels.copy()
        levels[np.asarray(c.overlay, bool)] = TOP
    scores = (2.0 ** np.asarray(c.values, np.float64)).astype(np.float32) if c.log_values else c.values
    return colour_bytes(levels, scores), {
        "palette": pal,
        "top_code": TOP if c.overlay is not None else -1,
        "has_scores": True,
        "legend": None,
        "legend_title": c.legend_title,
        "score_name": c.legend_title,
        "range": [2.0**lo, 2.0**hi] if c.log_values else [lo, hi],
    }


def region_of(value) -> dict | None:
    """The component's region state ({"x0", "x1", "y0", "y1"}) as ``map_data``'s box region (None: none)."""
    if not isinstance(value, dict):
        return None
    try:
        x0, x1, y0, y1 = (float(value[k]) for k in ("x0", "x1", "y0", "y1"))
    except (KeyError, TypeError, ValueError):
        return None
    if not all(np.isfinite([x0, x1, y0, y1])):
        return None
    return {"kind": "box", "x": [min(x0, x1), max(x0, x1)], "y": [min(y0, y1), max(y0, y1)]}


# ---------------------------------------------------------------------------
# Streamlit

HTML = """<div class="mc-root">
<div class="mc-bar"><button class="mc-tool" data-mode="pan" title="drag to pan">✥ pan</button>
<button class="mc-tool" data-mode="select" title="drag a box to select (or shift-drag)">▭ select</button>
<button class="mc-tool" data-mode="reset" title="whole map">⟲ reset view</button>
<button class="mc-tool" data-mode="clear" title="clear the selection">✕ clear selection</button></div>
<div class="mc-status"></div>
<div class="mc-stage"><canvas class="mc-canvas"></canvas><div class="mc-box"></div><div class="mc-tip"></div></div>
</div>"""

CSS = """
.mc-root { width: 100%; font-family: var(--st-font, sans-serif); font-size: 13px; color: var(--st-text-color); }
.mc-bar { display: flex; gap: 6px; align-items: center; margin-bottom: 4px; flex-wrap: wrap; }
.mc-tool { border: 1px solid #c9ccd1; background: #fff; border-radius: 6px; padding: 2px 8px; cursor: pointer;
  font-size: 13px; }
.mc-tool.on { background: #1f6fb4; color: #fff; border-color: #1f6fb4; }
.mc-status { color: #6b7280; font-size: 12px; white-space: nowrap; overflow: hidden; text-overflow: ellipsis;
  height: 18px; }
.mc-stage { position: relative; border: 1px solid #e5e7eb; border-radius: 6px; overflow: hidden; }
.mc-canvas { display: block; touch-action: none; }
.mc-box { position: absolute; display: none; border: 1.5px dashed #d62728; background: rgba(214,39,40,0.08);
  pointer-events: none; }
.mc-tip { position: absolute; display: none; white-space: pre; background: rgba(17,24,39,0.92); color: #fff;
  padding: 4px 7px; border-radius: 4px; pointer-events: none; font-size: 12px; z-index: 2; }
"""


@lru_cache(maxsize=1)
def _component():
    import streamlit as st

    js = (Path(__file__).with_name("map_canvas.js")).read_text()
    return st.components.v2.component("curation_map_canvas", html=HTML, css=CSS, js=js)


def _url(data: bytes, coordinates: str) -> str:
    """A URL the browser fetches ``data`` from: Streamlit's in-memory media store (same origin, id = hash of
    the bytes, so identical bytes keep their URL across reruns); a data URL when no server runs (AppTest)."""
    from streamlit import runtime

    if runtime.exists():
        try:
            return runtime.get_instance().media_file_mgr.add(data, "application/octet-stream", coordinates)
        except Exception:  # noqa: BLE001 - no session (bare script): fall back to inline data
            pass
    import base64

    return "data:application/octet-stream;base64," + base64.b64encode(data).decode()


def canvas_map(
    *,
    positions: bytes,
    n: int,
    box: list[float],
    class_names: list[str],
    colours: bytes,
    colour_json: dict,
    title: str,
    key: str,
    region: dict | None = None,
    height: int = HEIGHT,
):
    """Mount the viewer; its result has ``.region`` (the box) and ``.hovered`` (the index rested on or clicked)."""
    data = {
        "pos_url": _url(positions, f"{key}.positions"),
        "col_url": _url(colours, f"{key}.colours"),
        "n": int(n),
        "bounds": [float(v) for v in box],
        "class_names": class_names,
        "title": title,
        "height": int(height),
        "rest_ms": REST_MS,
        # the selected box, drawn again after a rerun ({"x0", "x1", "y0", "y1"} in map coordinates)
        "region": region,
        **colour_json,
    }
    return _component()(
        key=key,
        data=data,
        height=height + 70,  # the tool bar and the status line above the canvas
        on_region_change=lambda: None,
        on_hovered_change=lambda: None,
    )
