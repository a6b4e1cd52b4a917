"""The Map page's canvas viewer: the bytes it sends (positions once, a compact colouring per re-colour), the
region it sends back, and the page under AppTest (every colour renders, a region selects from all examples)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from curation_app.components import figures, map_canvas, map_data, media
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
    at = goto(make_app(app_workdir, monkeypatch), "map", viewer="canvas")
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


# ---------------------------------------------------------------------------
# lasso, ids, card, base path, the viewer in the address


def _brute_force_inside(x, y, px, py) -> np.ndarray:
    """The textbook even-odd crossing test, one point and one edge at a time (the reference)."""
    out = np.zeros(len(x), bool)
    n = len(px)
    for k in range(len(x)):
        inside, j = False, n - 1
        for i in range(n):
            if (py[i] > y[k]) != (py[j] > y[k]):
                at = (px[j] - px[i]) * (y[k] - py[i]) / (py[j] - py[i]) + px[i]
                if x[k] < at:
                    inside = not inside
            j = i
        out[k] = inside
    return out


@pytest.mark.parametrize("seed", range(6))
def test_points_in_polygon_matches_the_brute_force_test(seed):
    rng = np.random.default_rng(seed)
    # points on a coarse grid (many exactly on vertices and on horizontal edges) and random ones
    grid = np.stack(np.meshgrid(np.linspace(-1, 1, 21), np.linspace(-1, 1, 21)), -1).reshape(-1, 2)
    pts = np.concatenate([grid, rng.uniform(-1.2, 1.2, (1500, 2))])
    x, y = pts[:, 0], pts[:, 1]
    m = int(rng.integers(3, 40))
    if seed % 3 == 0:  # a free-hand-like star (concave)
        th = np.sort(rng.uniform(0, 2 * np.pi, m))
        r = rng.uniform(0.3, 1.0, m)
        px, py = r * np.cos(th), r * np.sin(th)
    elif seed % 3 == 1:  # self-intersecting, vertices snapped to the grid (horizontal edges, shared y)
        px, py = np.round(rng.uniform(-1, 1, m) * 10) / 10, np.round(rng.uniform(-1, 1, m) * 10) / 10
    else:  # random vertices anywhere
        px, py = rng.uniform(-1, 1, m), rng.uniform(-1, 1, m)
    got = map_data.points_in_polygon(x, y, px, py)
    want = _brute_force_inside(x, y, px, py)
    assert np.array_equal(got, want)
    assert 0 < got.sum() < len(x) or seed % 3 == 1  # the test means something: some inside, some not


def test_points_in_polygon_degenerate_input():
    x, y = np.array([0.0, 0.8, np.nan]), np.array([0.0, 0.3, 0.5])
    assert not map_data.points_in_polygon(x, y, [0, 1], [0, 1]).any()  # two vertices: no area
    assert not map_data.points_in_polygon(x, y, [0, 1, 2], [0, 0, 0]).any()  # flat
    assert map_data.points_in_polygon(x, y, [0.2, 1, 1], [0.1, 0.1, 1]).tolist() == [False, True, False]
    assert not map_data.points_in_polygon(x, y, [0, 1, np.nan], [0, 1, 1]).any()


def test_lasso_region_from_the_browser():
    rng = np.random.default_rng(3)
    x, y = rng.uniform(-1, 1, 50_000), rng.uniform(-1, 1, 50_000)
    lasso = {"kind": "lasso", "x": [0, 1, 0.0], "y": [0, 0, 1]}
    r = map_canvas.region_of(lasso)
    assert r == {"kind": "lasso", "x": [0.0, 1.0, 0.0], "y": [0.0, 0.0, 1.0]}
    got = map_data.region_positions(x, y, r)
    assert np.array_equal(got, np.flatnonzero(_brute_force_inside(x, y, r["x"], r["y"])))
    assert np.array_equal(got, np.flatnonzero((x >= 0) & (y >= 0) & (x + y < 1)))  # no point lies on an edge
    for bad in (
        {"kind": "lasso", "x": [0, 1], "y": [0, 1]},
        {"kind": "lasso", "x": [0, 1, 2], "y": [0, 1]},
        {"kind": "lasso", "x": [0, 1, "a"], "y": [0, 1, 2]},
        {"kind": "lasso", "x": [0, 1, float("inf")], "y": [0, 1, 2]},
        {"kind": "lasso", "x": "012", "y": [0, 1, 2]},
        {"kind": "lasso", "x": list(range(map_canvas.LASSO_MAX_VERTICES + 1)), "y": [0] * 2001},
    ):
        assert map_canvas.region_of(bad) is None, bad


def test_ids_sent_once_as_lines_with_their_common_prefix():
    ids = [f"train/{i}" for i in range(1000)]
    raw, prefix = map_canvas.id_bytes(ids)
    assert prefix == "train/" and raw.count(b"\n") == 999
    assert map_canvas.decode_ids(raw, prefix, 1000) == ids
    odd = ["a\nb", "ünï/1", "ünï/2", ""]
    raw, prefix = map_canvas.id_bytes(odd)
    assert prefix == "" and map_canvas.decode_ids(raw, prefix, 4) == ["a b", "ünï/1", "ünï/2", ""]
    raw, prefix = map_canvas.id_bytes(["x7"])
    assert map_canvas.decode_ids(raw, prefix, 1) == ["x7"]
    assert map_canvas.id_bytes([]) == (b"", "") and map_canvas.decode_ids(b"", "", 0) == []
    # 1,000,000 ids like the million-example demo's: well under the 8 bytes a point the positions cost
    raw, prefix = map_canvas.id_bytes(np.char.add("ex", np.char.zfill(np.arange(1_000_000).astype(str), 7)))
    assert prefix == "ex0" and len(raw) == 7 * 1_000_000 - 1


def test_media_urls_carry_the_base_path():
    assert media.with_base_path("/media/ab.bin", "") == "/media/ab.bin"
    assert media.with_base_path("/media/ab.bin", "studio") == "/studio/media/ab.bin"
    assert media.with_base_path("/media/ab.bin", "/a/b/") == "/a/b/media/ab.bin"
    assert media.with_base_path("data:application/octet-stream;base64,AA", "studio").startswith("data:")


def _record_media(monkeypatch) -> dict[str, bytes]:
    """Every file the page hands the component, by its URL (AppTest's media store goes with each run)."""
    seen: dict[str, bytes] = {}
    real = map_canvas._url

    def recording(data: bytes, *args, **kw) -> str:
        url = real(data, *args, **kw)
        seen[url] = data
        return url

    monkeypatch.setattr(map_canvas, "_url", recording)
    return seen


def test_large_media_files_that_differ_anywhere_get_their_own_url(monkeypatch):
    """The media store fingerprints files above 1 MiB by their head, middle and tail only: two colourings of
    1,000,000 points that differ in one example must still get two URLs (else the browser keeps the old one)."""
    from streamlit.runtime.media_file_manager import MediaFileManager
    from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage

    mgr = MediaFileManager(MemoryMediaFileStorage("/media"))

    class Runtime:
        media_file_mgr = mgr

    monkeypatch.setattr("streamlit.runtime.exists", lambda: True)
    monkeypatch.setattr("streamlit.runtime.get_instance", lambda: Runtime)
    monkeypatch.setattr(mgr, "add", lambda data, mimetype, coordinates, file_name=None: (
        "/media/" + __import__("streamlit.runtime.memory_media_file_storage", fromlist=["x"])
        ._calculate_file_id(data, mimetype, file_name) + ".bin"))  # fmt: skip
    codes = np.zeros(1_000_000, np.uint8)
    a = map_canvas.colour_bytes(codes, np.zeros(1_000_000))
    codes[300_000] = 1  # outside the sampled head, middle and tail
    b = map_canvas.colour_bytes(codes, np.zeros(1_000_000))
    assert map_canvas._url(a, "c") != map_canvas._url(b, "c")
    assert map_canvas._url(a, "c") == map_canvas._url(a, "c")  # same bytes, same URL: fetched once


def test_canvas_page_lasso_card_and_ids(app_workdir, app_run, monkeypatch):
    t = app_run.table
    media = _record_media(monkeypatch)
    at = goto(make_app(app_workdir, monkeypatch), "map", viewer="canvas")
    data = _canvas(at)
    raw = media[data["ids_url"]]
    assert map_canvas.decode_ids(raw, data["ids_prefix"], len(t)) == t["example_id"].astype(str).tolist()
    assert data["card"] is None
    x, y = t["map_x"].to_numpy(), t["map_y"].to_numpy()
    cx, cy, rx, ry = np.median(x), np.median(y), np.std(x), np.std(y)
    th = np.linspace(0, 2 * np.pi, 40, endpoint=False)
    lasso = {"kind": "lasso", "x": (cx + rx * np.cos(th)).tolist(), "y": (cy + ry * np.sin(th)).tolist()}
    at.session_state["map.canvas"] = {"region": lasso, "hovered": 17}
    at.run()
    assert not at.exception
    inside = int(_brute_force_inside(x, y, lasso["x"], lasso["y"]).sum())
    assert 0 < inside < len(t)
    assert f"{inside:,} of {len(t):,} examples inside the lasso" in texts(at, "caption")
    at.run()  # the next rerun draws the lasso again, and the rested point's card travels to the tooltip
    data = _canvas(at)
    assert data["region"] == lasso
    card = data["card"]
    assert card["index"] == 17 and card["id"] == str(t["example_id"].iloc[17])
    assert card["class"] == str(t["label"].iloc[17]) and media[card["thumb"]].startswith(b"\x89PNG")
    metric = at.session_state["s.metric"]
    assert card["score"] == [metric, pytest.approx(float(t[metric].iloc[17]))]


def test_the_viewer_is_in_the_address(app_workdir, app_run, monkeypatch):
    at = make_app(app_workdir, monkeypatch, query={"viewer": "plotly"})
    at.switch_page("views/map.py").run()
    assert not at.exception
    assert at.radio(key="w.map.viewer").value == "plotly" and len(at.get("plotly_chart")) == 1
    assert at.query_params["viewer"] == ["plotly"] or at.query_params["viewer"] == "plotly"
    at.radio(key="w.map.viewer").set_value("canvas").run()
    assert not at.exception and len(at.get("bidi_component")) == 1
    assert "canvas" in str(at.query_params["viewer"])
    bad = make_app(app_workdir, monkeypatch, query={"viewer": "webgl"})
    bad.switch_page("views/map.py").run()
    assert not bad.exception
    assert "ignored viewer='webgl': the map viewer is one of canvas, plotly" in texts(bad, "warning")
    assert len(bad.get("bidi_component")) == 1  # the default viewer


def test_a_loaded_settings_file_sets_the_viewer_over_the_address(app_workdir, app_run, monkeypatch):
    """The viewer is a saved setting: loading a file that says plotly (the sidebar applies its values and
    reruns) shows the Plotly map although the address said canvas, and the address follows."""
    at = make_app(app_workdir, monkeypatch, query={"viewer": "canvas"})
    at.switch_page("views/map.py").run()
    assert len(at.get("bidi_component")) == 1
    at.session_state["s.map_viewer"] = "plotly"  # what state.apply does with a loaded file's values
    at.run()
    assert not at.exception
    assert len(at.get("plotly_chart")) == 1 and "plotly" in str(at.query_params["viewer"])


def test_the_digest_of_the_same_bytes_is_remembered_and_never_confused():
    big = bytes(2 << 20)
    first = media.digest(big)
    assert media.digest(big) == first and media._DIGESTS[id(big)][0] is big
    for i in range(6):  # other colourings come and go; the positions stay remembered while in use
        media.digest(bytes([i]) * (2 << 20))
        assert media.digest(big) == first
    other = bytearray(big)
    other[123_456] = 1
    assert media.digest(bytes(other)) != first


def test_a_duplicate_group_opened_from_the_redundancy_page(app_workdir, app_run, monkeypatch):
    """?group=G&group_at=T (the Redundancy page's "show on the map" link): the group's members on top of a grey
    map, said above it and listed below it; a group that does not exist is said in the page and dropped."""
    from backend.dedup import run_index

    res = run_index(app_run).at(eps=1 - 0.9)
    assert res.n_groups, "the test run has no duplicate group at 0.9"
    big = int(np.argmax(res.group_sizes()))
    members = res.members(big)
    at = make_app(app_workdir, monkeypatch, query={"group": str(big), "group_at": "0.9000", "viewer": "canvas"})
    at.switch_page("views/map.py").run()
    assert not at.exception, [e.message for e in at.exception]
    data = _canvas(at)
    assert f"duplicate group {big} at similarity > 0.900" in data["title"]
    # the view zooms to the group once: a box around every member, widened, inside the map
    x0, x1, y0, y1 = data["focus"]["box"]
    mx, my = app_run.table["map_x"].to_numpy()[members], app_run.table["map_y"].to_numpy()[members]
    assert x0 < mx.min() <= mx.max() < x1 and y0 < my.min() <= my.max() < y1
    assert data["focus"]["key"] == f"{big}@0.9000"
    assert f"group {big} ({len(members):,} members)" in texts(at, "markdown")  # the legend
    assert f"Duplicate group {big} at similarity > 0.900: its {len(members):,} members" in texts(at, "info")
    assert f"Duplicate group {big}" in texts(at, "subheader")
    # the colours: members are palette entry 1 (drawn on top), every other example 0
    assert sorted(data["palette"][:2]) == sorted([figures.CUT_COLOUR, "#cfcfcf"])
    at.button(key="map.clear_group").click().run()
    assert not at.exception and "group" not in at.query_params
    assert "duplicate group" not in _canvas(at)["title"]
    bad = make_app(app_workdir, monkeypatch, query={"group": "99999", "group_at": "0.9"})
    bad.switch_page("views/map.py").run()
    assert not bad.exception
    assert "ignored group='99999': at similarity > 0.900 there are" in texts(bad, "warning")
    assert "group" not in bad.query_params
