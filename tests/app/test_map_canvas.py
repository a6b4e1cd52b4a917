"""The Map page's canvas viewer: the bytes it sends (positions once, a compact colouring per re-colour), the
region it sends back, and the page under AppTest (every colour renders, a region selects from all examples)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from curation_app.components import figures, map_canvas, map_data
from tests.app.test_map_page import goto, make_app, texts


def test_positions_round_trip_within_one_quantisation_step():
    rng = np.random.default_rng(0)
    x, y = rng.normal(3, 2, 5000), rng.normal(-1, 0.5, 5000)
    box = map_canvas.bounds(x, y)
    assert box[1] - box[0] == pytest.approx(box[3] - box[2])  # square: the viewer keeps the aspect ratio
    raw = map_canvas.position_bytes(x, y, np.arange(5000) % 10, np.arange(5000) % 7, box)
    assert len(raw) == 8 * 5000  # 4 uint16 a point
    q = np.frombuffer(raw, "<u2").reshape(4, 5000)
    step = (box[1] - box[0]) / map_canvas.QUANT
    assert np.abs(map_canvas.dequantise(q[0], box[0], box[1]) - x).max() <= step
    assert np.abs(map_canvas.dequantise(q[1], box[2], box[3]) - y).max() <= step
    assert np.array_equal(q[2], np.arange(5000) % 10) and np.array_equal(q[3], np.arange(5000) % 7)
    flat = map_canvas.bounds(np.zeros(3), np.zeros(3))  # one point repeated: no division by zero
    assert flat[1] > flat[0]


def test_a_score_colouring_is_one_byte_plus_the_float_score_a_point():
    rng = np.random.default_rng(1)
    v = rng.normal(size=60_000).astype(np.float32)
    v[0] = 50.0  # an outlier must not flatten the rest
    raw, js = map_canvas.colour_payload(
        map_data.score_colouring(v, "el2n"), palette=list(figures.PALETTE), top_colour="#d62728"
    )
    assert len(raw) == 60_000 + 4 * 60_000
    levels = np.frombuffer(raw, np.uint8, 60_000)
    assert levels[0] == map_canvas.LEVELS - 1 and levels.min() == 0
    assert len(np.unique(levels)) > 200  # the bulk spans the scale
    assert np.array_equal(np.frombuffer(raw, "<f4", 60_000, 60_000), v)  # the tooltip's exact score
    assert js["has_scores"] and len(js["palette"]) == 256 and js["range"][1] < 50
    # the JSON part stays small whatever n is (the message Streamlit resends on each rerun)
    assert len(json.dumps(js)) < 4000
    # higher = harder: the colour's order follows the score's
    order = np.argsort(v[1:])
    assert np.all(np.diff(levels[1:][order].astype(int)) >= 0)


def test_categories_kept_on_top_and_overlay():
    kept = np.array([True, False, True, False])
    c = map_data.kept_colouring(kept, kept_colour="#111111", pruned_colour="#eeeeee")
    raw, js = map_canvas.colour_payload(c, palette=list(figures.PALETTE), top_colour="#d62728")
    assert list(np.frombuffer(raw, np.uint8, 4)) == [1, 0, 1, 0] and js["top_code"] == 1
    assert js["palette"] == ["#eeeeee", "#111111"] and not js["has_scores"]
    raw, js = map_canvas.colour_payload(
        c, palette=list(figures.PALETTE), top_colour="#d62728", scores=np.arange(4.0), score_name="el2n"
    )
    assert js["has_scores"] and js["score_name"] == "el2n" and len(raw) == 4 + 16
    many = map_data.categorical(np.arange(300), [str(i) for i in range(300)], what="cluster")
    raw, js = map_canvas.colour_payload(many, palette=list(figures.PALETTE), top_colour="#d62728")
    codes = np.frombuffer(raw, np.uint8, 300)
    assert codes.max() < len(figures.PALETTE) and codes[len(figures.PALETTE)] == 0  # cycles like Plotly's
    assert js["legend"] is None
    g = map_data.group_size_colouring(np.array([1, 2, 2, 4]), np.array([False, True, False, False]), threshold=0.9)
    raw, js = map_canvas.colour_payload(g, palette=list(figures.PALETTE), top_colour="#d62728")
    assert np.frombuffer(raw, np.uint8, 4)[1] == map_canvas.TOP and js["top_code"] == map_canvas.TOP
    assert js["palette"][map_canvas.TOP] == "#d62728"
    assert np.allclose(np.frombuffer(raw, "<f4", 4, 4), [1, 2, 2, 4])  # the tooltip shows sizes, not log2
    with pytest.raises(ValueError):
        map_canvas.colour_bytes(np.array([256]))


def test_region_from_the_browser_is_a_box_resolved_over_every_example():
    rng = np.random.default_rng(2)
    x, y = rng.uniform(-1, 1, 200_000), rng.uniform(-1, 1, 200_000)
    r = map_canvas.region_of({"x0": 0.5, "x1": -0.5, "y0": -0.25, "y1": 0.25})
    assert r == {"kind": "box", "x": [-0.5, 0.5], "y": [-0.25, 0.25]}
    got = map_data.region_positions(x, y, r)
    assert np.array_equal(got, np.flatnonzero((np.abs(x) <= 0.5) & (np.abs(y) <= 0.25)))
    for bad in (
        None,
        [],
        {"x0": 1},
        {"x0": "a", "x1": 0, "y0": 0, "y1": 0},
        {"x0": float("nan"), "x1": 0, "y0": 0, "y1": 1},
    ):
        assert map_canvas.region_of(bad) is None


def _canvas(at):
    els = [e for e in at.get("bidi_component")]
    assert len(els) == 1, [type(e).__name__ for e in at.main]
    return json.loads(els[0].proto.json)


def test_canvas_page_every_colour_and_a_region(app_workdir, app_run, monkeypatch):
    t = app_run.table
    at = goto(make_app(app_workdir, monkeypatch), "map", viewer="fast canvas")
    seen = set()
    for colour in at.radio(key="w.map.colour").options:
        at.radio(key="w.map.colour").set_value(colour).run()
        assert not at.exception, colour
        data = _canvas(at)
        assert data["n"] == len(t)  # every example drawn, no sample
        assert f"coloured by {colour}" in data["title"] or colour == map_data.GROUP_SIZE
        # the message carries URLs and a palette, never the points themselves
        assert len(at.get("bidi_component")[0].proto.json) < 6000 or data["pos_url"].startswith("data:")
        seen.add(data["pos_url"])
    assert len(seen) == 1  # the positions' URL never changes with the colour: fetched once
    x = t["map_x"].to_numpy()
    region = {"x0": float(np.quantile(x, 0.3)), "x1": float(np.quantile(x, 0.7)), "y0": -1e9, "y1": 1e9}
    at.session_state["map.canvas"] = {"region": region}  # the component's state, as the browser sets it
    at.run()
    assert not at.exception
    inside = int(((x >= region["x0"]) & (x <= region["x1"])).sum())
    assert f"{inside:,} of {len(t):,} examples inside the box" in texts(at, "caption")
    at.run()  # the next rerun draws the box again
    assert _canvas(at)["region"] == region
