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
* the example ids are sent once per run the same way (:func:`id_bytes`: one UTF-8 line each, their common
  prefix once), fetched after the first draw: the tooltip shows the hovered example's id, class, cluster and
  the current score at once; when the pointer rests, the page's card for that point comes back
  (:func:`card_payload`) and the tooltip shows its thumbnail too;
* pan and zoom happen in the browser; a box or a lasso selection comes back as a region in map coordinates
  (``{"x0", "x1", "y0", "y1"}``, or ``{"kind": "lasso", "x": [...], "y": [...]}``), resolved on the server over
  every example (``map_data.region_positions``), never a list of points; the hovered or clicked point comes
  back as its index (position in the run's table), for the page's card;
* the media URLs carry ``server.baseUrlPath`` (``media.with_base_path``): a component's ``fetch`` is not
  rewritten by Streamlit's frontend the way its own images are.

Pure encoding functions first (tested without a browser), the Streamlit mount last.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

from curation_app.components import map_data, media

QUANT = 65535  # positions are quantised to uint16: 1/65535 of the map's extent (far below a pixel)
LEVELS = 255  # colour levels of a score (palette indices 0..254)
TOP = 255  # palette index drawn on top of the others (near-duplicates removed, or the kept examples)
HEIGHT = 620  # canvas height, CSS pixels
REST_MS = 350  # the pointer rests this long on a point before the page is asked for its card
LASSO_MAX_VERTICES = 2000  # the browser thins a free-hand lasso to a few hundred; more is not a lasso it sent


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
    """The component's region state as ``map_data``'s region (None: none, or not a valid region).

    A box: ``{"x0", "x1", "y0", "y1"}`` (``"kind": "box"`` optional); a lasso: ``{"kind": "lasso", "x": [...],
    "y": [...]}``, the polygon's vertices in map coordinates (at most :data:`LASSO_MAX_VERTICES`)."""
    if not isinstance(value, dict):
        return None
    if value.get("kind") == "lasso":
        xs, ys = value.get("x"), value.get("y")
        if not isinstance(xs, list) or not isinstance(ys, list) or len(xs) != len(ys):
            return None
        if not 3 <= len(xs) <= LASSO_MAX_VERTICES:
            return None
        try:
            px, py = np.asarray(xs, np.float64), np.asarray(ys, np.float64)
        except (TypeError, ValueError):
            return None
        if not (np.all(np.isfinite(px)) and np.all(np.isfinite(py))):
            return None
        return {"kind": "lasso", "x": px.tolist(), "y": py.tolist()}
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
<button class="mc-tool" data-mode="lasso" title="draw around the examples to select">◌ lasso</button>
<button class="mc-tool" data-mode="reset" title="whole map">⟲ reset view</button>
<button class="mc-tool" data-mode="clear" title="clear the selection">✕ clear selection</button></div>
<div class="mc-status"></div>
<div class="mc-stage"><canvas class="mc-canvas"></canvas><div class="mc-box"></div>
<svg class="mc-lasso"><polygon class="mc-halo"></polygon><polygon class="mc-line"></polygon></svg>
<div class="mc-tip"><img class="mc-thumb" alt=""><div class="mc-text"></div></div>
</div>
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
.mc-lasso { position: absolute; left: 0; top: 0; width: 100%; height: 100%; pointer-events: none; display: none; }
.mc-lasso .mc-halo { fill: rgba(214,39,40,0.10); stroke: #fff; stroke-width: 4; stroke-opacity: 0.9; }
.mc-lasso .mc-line { fill: none; stroke: #d62728; stroke-width: 2; stroke-dasharray: 6 3; }
.mc-tip { position: absolute; display: none; background: rgba(17,24,39,0.92); color: #fff;
  padding: 4px 7px; border-radius: 4px; pointer-events: none; font-size: 12px; z-index: 2; }
.mc-tip.has-thumb { display: flex; gap: 7px; align-items: flex-start; }
.mc-thumb { display: none; width: 72px; height: 72px; object-fit: contain; image-rendering: pixelated;
  background: #fff; border-radius: 3px; }
.mc-tip.has-thumb .mc-thumb { display: block; }
.mc-text { white-space: pre; }
"""


@lru_cache(maxsize=1)
def _component():
    import streamlit as st

    js = (Path(__file__).with_name("map_canvas.js")).read_text()
    return st.components.v2.component("curation_map_canvas", html=HTML, css=CSS, js=js)


def _url(data: bytes, coordinates: str, mimetype: str = "application/octet-stream") -> str:
    return media.url(data, coordinates, mimetype)  # a name of this module: the tests record what it hands out


def id_bytes(example_ids) -> tuple[bytes, str]:
    """(bytes, prefix): every example id once per run, for the tooltip.  The ids' common prefix is sent once
    (``train/``, ``ex0``), the rest as UTF-8 lines (a newline inside an id becomes a space): at 1,000,000
    ids such as ``ex0000123`` that is 7 MB, fetched once per run like the positions, never per rerun."""
    ids = [str(v) for v in example_ids]
    if not ids:
        return b"", ""
    import os

    prefix = os.path.commonprefix([min(ids), max(ids)])  # the lexicographic extremes share what all share
    cut = len(prefix)
    text = "\n".join(ids)
    if text.count("\n") != len(ids) - 1:
        text = "\n".join(v.replace("\n", " ") for v in ids)
    if cut:
        text = "\n".join(v[cut:] for v in text.split("\n"))
    return text.encode("utf-8"), prefix


def decode_ids(raw: bytes, prefix: str, n: int) -> list[str]:
    """The ``n`` ids :func:`id_bytes` sent (what the browser decodes per hovered point)."""
    if n == 0:
        return []
    return [prefix + v for v in raw.decode("utf-8").split("\n")]


def focus_box(x: np.ndarray, y: np.ndarray, *, key: str, bounds_box: list[float], margin: float = 0.5) -> dict:
    """The box (map coordinates) the viewer zooms to for the points ``x``, ``y``: their extent widened by
    ``margin`` of it on each side, and at least 2% of the map's side, so a few neighbours show around them."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    side = max(bounds_box[1] - bounds_box[0], bounds_box[3] - bounds_box[2])
    half = max(float(np.ptp(x)), float(np.ptp(y)), 0.0) * (0.5 + margin)
    half = max(half, 0.01 * side)
    cx, cy = (float(x.min()) + float(x.max())) / 2, (float(y.min()) + float(y.max())) / 2
    return {"key": key, "box": [cx - half, cx + half, cy - half, cy + half]}


def card_payload(card: dict, *, thumb: bytes | None, key: str, score_name: str | None) -> dict:
    """The rested point's card, for the tooltip: its position, id, class, the current score, the thumbnail's
    URL (the same PNG the card beside the map shows)."""
    scores = card.get("scores") or {}
    return {
        "index": int(card["position"]),
        "id": card["example_id"],
        "class": card.get("class"),
        "score": [score_name, scores[score_name]] if score_name in scores else None,
        "thumb": _url(thumb, f"{key}.thumb", "image/png") if thumb else None,
    }


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
    ids: tuple[bytes, str] | None = None,
    card: dict | None = None,
    region: dict | None = None,
    focus: dict | None = None,
    height: int = HEIGHT,
):
    """Mount the viewer; its result has ``.region`` (the box or lasso) and ``.hovered`` (the index rested on or
    clicked).  ``ids``: :func:`id_bytes` of the run (the tooltip's example ids); ``card``: :func:`card_payload`
    of the rested point (its thumbnail in the tooltip); ``focus``: :func:`focus_box` of the examples the view
    zooms to once (a duplicate group opened from the Redundancy page)."""
    data = {
        "pos_url": _url(positions, f"{key}.positions"),
        "ids_url": _url(ids[0], f"{key}.ids") if ids is not None else None,
        "ids_prefix": ids[1] if ids is not None else "",
        "card": card,
        "col_url": _url(colours, f"{key}.colours"),
        "n": int(n),
        "bounds": [float(v) for v in box],
        "class_names": class_names,
        "title": title,
        "height": int(height),
        "rest_ms": REST_MS,
        # the selection, drawn again after a rerun: a box {"x0", "x1", "y0", "y1"} or a lasso
        # {"kind": "lasso", "x": [...], "y": [...]}, in map coordinates
        "region": region,
        "focus": focus,
        **colour_json,
    }
    return _component()(
        key=key,
        data=data,
        height=height + 70,  # the tool bar and the status line above the canvas
        on_region_change=lambda: None,
        on_hovered_change=lambda: None,
    )
