"""A line chart with a movable vertical marker, drawn as SVG in the page (a Streamlit v2 component).

Why not Plotly for the Redundancy page's curve: a threshold move re-sent the whole figure and plotly.js drew it
again, 136 ms of the 408 ms a move took to settle in Chromium (benchmarks/bench_app_browser.py on the demo, the
page with and without its chart in one run).  Here the browser draws the lines once per ``lines_key`` (the
curve, not the threshold) and a move only moves the marker.  It also keeps plotly.js, a 4.7 MB chunk that every
new tab compiles, off that page.

The payload is built in Python (:func:`curve_payload`, tested without a browser); the mount comes last.
"""

from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd

from curation_app.components.figures import PALETTE

CSS = """
.cs-curve { position: relative; font-size: 13px; }
.cs-curve-title { font-weight: 600; font-size: 15px; margin: 0 0 4px 2px; }
.cs-curve-svg { display: block; overflow: visible; }
.cs-curve-grid line { stroke: rgba(128, 128, 128, 0.22); stroke-width: 1; }
.cs-curve-frame { fill: none; stroke: rgba(128, 128, 128, 0.45); }
.cs-curve-tick { fill: currentColor; opacity: 0.8; font-size: 12px; }
.cs-curve-label { fill: currentColor; font-size: 13px; }
.cs-curve-marker-line { stroke: #d62728; stroke-width: 2; stroke-dasharray: 6 4; }
.cs-curve-marker { fill: #d62728; font-size: 13px; font-weight: 600; }
.cs-curve-hover { stroke: rgba(128, 128, 128, 0.7); stroke-width: 1; }
.cs-curve-tip { position: absolute; display: none; pointer-events: none; z-index: 5; padding: 6px 8px;
  background: rgba(30, 30, 30, 0.92); color: #fff; border-radius: 4px; font-size: 12px; white-space: nowrap; }
.cs-curve-tip-head { font-weight: 600; margin-bottom: 2px; }
.cs-curve-swatch { display: inline-block; width: 10px; height: 3px; margin: 0 6px 3px 0; vertical-align: middle; }
"""


def curve_payload(
    curve: pd.DataFrame,
    *,
    title: str,
    x_title: str,
    y_title: str,
    hover_x: str,
    y_percent: bool = True,
    height: int = 420,
) -> dict:
    """The chart's lines from a long table with columns ``group``, ``threshold``, ``share_removed`` and
    ``n_removed`` (one line per group, ``all`` thick and dark, the others in the palette), without the
    marker; ``lines_key`` changes exactly when the lines do."""
    series = []
    for i, g in enumerate(dict.fromkeys(curve["group"])):
        c = curve[curve["group"] == g].sort_values("threshold")
        allg = str(g) == "all"
        series.append(
            {
                "name": "all examples" if allg else str(g),
                "x": [float(v) for v in c["threshold"]],
                "y": [float(v) for v in c["share_removed"]],
                "n": [int(v) for v in c["n_removed"]] if "n_removed" in c else None,
                "colour": "#222" if allg else PALETTE[i % len(PALETTE)],
                "width": 4 if allg else 1.5,
            }
        )
    body = {
        "series": series,
        "title": title,
        "x_title": x_title,
        "y_title": y_title,
        "hover_x": hover_x,
        "y_percent": bool(y_percent),
        "height": int(height),
    }
    body["lines_key"] = hashlib.sha1(json.dumps(body, sort_keys=True).encode()).hexdigest()[:16]
    return body


def with_marker(payload: dict, x: float, text: str) -> dict:
    """The payload with its vertical marker at ``x`` (a new dict: the payload may be cached)."""
    return {**payload, "marker": {"x": float(x), "text": str(text)}}


def marker_of(payload: dict) -> float | None:
    return None if payload.get("marker") is None else float(payload["marker"]["x"])


def series_at(payload: dict, name: str, x: float) -> float:
    """The value of one line at (the grid point nearest) ``x``: what the tooltip shows."""
    s = next(s for s in payload["series"] if s["name"] == name)
    xs = np.asarray(s["x"])
    return float(s["y"][int(np.argmin(np.abs(xs - x)))])


@functools.lru_cache(maxsize=1)
def _component():
    import streamlit as st

    js = (Path(__file__).with_name("curve_chart.js")).read_text()
    # in the page's DOM (no shadow root): the browser tests and the benchmark read the marker's text
    return st.components.v2.component("curation_curve_chart", css=CSS, js=js, isolate_styles=False)


def curve_chart(payload: dict, *, key: str):
    """Mount the chart (a stable ``key`` keeps the drawn lines between reruns)."""
    return _component()(key=key, data=payload, height=int(payload["height"]) + 30)
