"""The Map page's data (hover payload, colourings incl. duplicate-group size, the selected region) and the
Clusters page's member view (its ``?cluster=`` address, kept / pruned marks), on the small demo run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

import backend
from curation_app.components import cluster_members, figures, map_data

APP = Path(__file__).resolve().parents[2] / "curation_app" / "app.py"
TIMEOUT = 120


def make_app(workdir, monkeypatch, *, query=None) -> AppTest:
    monkeypatch.setenv("CURATE_WORKDIR", str(workdir))
    monkeypatch.setenv("CURATE_ALLOWED_DIRS", str(workdir))
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    if query:
        at.query_params.update(query)
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def goto(at: AppTest, page: str, *, viewer: str = "plotly") -> AppTest:
    """Open ``page``; the Map page with ``viewer`` (these tests read the Plotly figure; test_map_canvas.py
    covers the canvas viewer)."""
    at.session_state["s.map_viewer"] = viewer
    at.switch_page(f"views/{page}.py").run()
    assert not at.exception, [(e.message, e.stack_trace[-5:]) for e in at.exception]
    return at


def chart_spec(at: AppTest) -> dict:
    charts = at.get("plotly_chart")
    assert len(charts) == 1
    return json.loads(charts[0].proto.spec)


def texts(at: AppTest, kind: str) -> str:
    return "\n".join(str(e.value) for e in at.get(kind))


# ---------------------------------------------------------------------------
# hover payload


def test_hover_payload_has_id_class_cluster_and_scores(app_run):
    t = app_run.table
    pos = np.array([5, 0, 17])
    text = map_data.hover_text(t, pos)
    for i, p in enumerate(pos):
        assert str(t["example_id"].iloc[p]) in text[i] and str(t["label"].iloc[p]) in text[i]
    other = app_run.score_columns[1]
    cols = map_data.hover_columns(app_run.score_columns, metric="ssl_prototype", colour=other)
    assert cols[0] == other and cols[1] == "ssl_prototype" and len(cols) == len(set(cols))
    custom = map_data.hover_scores(t, pos, cols)
    assert custom.shape == (3, 1 + len(cols)) and custom.dtype == np.float32
    assert custom[:, 0].tolist() == t["cluster"].to_numpy()[pos].tolist()
    np.testing.assert_allclose(custom[:, 1], t[other].to_numpy()[pos], rtol=1e-6)
    tpl = map_data.hover_template(cols)
    assert "%{text}" in tpl and "cluster %{customdata[1]" in tpl and f"{other} %{{customdata[2]:.3f}}" in tpl
    # the figure keeps the table position in customdata column 0, so a selection still maps back
    fig = figures.map_figure(
        t["map_x"].to_numpy()[pos], t["map_y"].to_numpy()[pos], pos, colour="value",
        values=t[other].to_numpy()[pos], hover=text, scores=custom, hover_template=tpl, title="m",
    )  # fmt: skip
    assert figures.selected_positions(fig, [{"curve_number": 0, "point_index": 2}]).tolist() == [17]
    card = map_data.example_card(t, 17, app_run.score_columns)
    assert card["example_id"] == str(t["example_id"].iloc[17]) and card["class"] == str(t["label"].iloc[17])
    assert set(card["scores"]) == set(app_run.score_columns)


def test_map_page_hover_text_and_thumbnail_of_a_clicked_point(app_workdir, app_run, monkeypatch):
    at = goto(make_app(app_workdir, monkeypatch), "map")
    tr = chart_spec(at)["data"][0]
    t = app_run.table
    want = set(t["example_id"].astype(str) + " · " + t["label"].astype(str))
    assert set(tr["text"]) <= want and len(tr["text"]) > 0  # id · class, not "position 29358"
    assert "ssl_prototype" in tr["hovertemplate"] and "cluster" in tr["hovertemplate"]
    assert "Nothing selected yet" in texts(at, "caption")
    # a click: the event carries the point's coordinates; the page shows its thumbnail, id, class and scores
    t = app_run.table
    p = 42
    event = {"selection": {"points": [{"x": float(np.float32(t["map_x"].iloc[p])),
                                       "y": float(np.float32(t["map_y"].iloc[p])),
                                       "curve_number": 0, "point_index": 0}],
                           "point_indices": [0], "box": [], "lasso": []}}  # fmt: skip
    at.session_state["map.chart"] = event
    at.run()
    assert not at.exception
    md = texts(at, "markdown")
    assert str(t["example_id"].iloc[p]) in md and str(t["label"].iloc[p]) in md
    assert len(at.get("image")) >= 1
    assert any("score" in str(d.value.columns.tolist()) for d in at.dataframe)


# ---------------------------------------------------------------------------
# colourings


def test_colour_options_include_group_size_and_kept():
    opts = map_data.colour_options(["ssl_prototype", "el2n"], has_labels=True)
    assert opts[:2] == ["cluster", "class"] and map_data.GROUP_SIZE in opts and map_data.KEPT in opts
    assert "class" not in map_data.colour_options(["ssl_prototype"], has_labels=False)


def test_group_size_per_example_and_removed_overlay():
    group = np.array([-1, 0, 0, 1, 0, -1, 1])
    sizes = np.array([3, 2])
    per = map_data.group_sizes_per_example(group, sizes)
    assert per.tolist() == [1, 3, 3, 2, 3, 1, 2]
    removed = np.array([0, 0, 1, 0, 1, 0, 1], bool)
    c = map_data.group_size_colouring(per, removed, threshold=0.95)
    np.testing.assert_allclose(c.values, np.log2(per))
    assert c.overlay.tolist() == removed.tolist() and "(3)" in c.overlay_name
    vals, text = map_data.log2_ticks(5)
    assert text[:3] == ["1", "2", "4"] and vals[-1] >= np.log2(5)


def test_group_size_colouring_on_the_run_matches_dedup(app_workdir, app_run, monkeypatch):
    from backend.dedup import run_index

    res = run_index(app_run).at(eps=0.05)  # the page's default threshold 0.95
    assert map_data.dedup_cached(app_run)
    at = goto(make_app(app_workdir, monkeypatch), "map")
    at.radio(key="w.map.colour").set_value(map_data.GROUP_SIZE).run()
    assert not at.exception
    spec = chart_spec(at)
    assert "duplicate group size" in spec["layout"]["title"]["text"]
    per = map_data.group_sizes_per_example(res.group, res.group_sizes())
    first = spec["data"][0]
    assert "members of the" in first["marker"]["colorbar"]["title"]["text"]
    if res.n_removed:
        assert spec["data"][-1]["name"] == f"removed as near-duplicates ({res.n_removed:,})"
        assert spec["data"][-1]["marker"]["symbol"] == "x"
    assert per.max() >= 1


def test_every_colour_renders(app_workdir, monkeypatch):
    at = goto(make_app(app_workdir, monkeypatch), "map")
    for colour in at.radio(key="w.map.colour").options:
        at.radio(key="w.map.colour").set_value(colour).run()
        assert not at.exception, colour
        assert f"coloured by {colour}" in chart_spec(at)["layout"]["title"]["text"] or colour == map_data.GROUP_SIZE


# ---------------------------------------------------------------------------
# selection as a region


def test_region_selection_covers_every_example_not_only_the_drawn():
    rng = np.random.default_rng(0)
    x, y = rng.uniform(-1, 1, 100_000), rng.uniform(-1, 1, 100_000)
    box = map_data.region_of({"box": [{"x": [0.5, -0.5], "y": [-0.5, 0.5]}], "lasso": [], "points": []})
    got = map_data.region_positions(x, y, box)
    assert np.array_equal(got, np.flatnonzero((np.abs(x) <= 0.5) & (np.abs(y) <= 0.5)))
    # a lasso triangle (0,0) (1,0) (0,1): inside when x, y >= 0 and x + y <= 1
    lasso = map_data.region_of({"lasso": [{"x": [0, 1, 0], "y": [0, 0, 1]}], "box": []})
    got = map_data.region_positions(x, y, lasso)
    want = np.flatnonzero((x > 0) & (y > 0) & (x + y < 1))
    assert len(np.setxor1d(got, want)) <= 2  # points exactly on an edge may go either way
    assert map_data.region_of({"box": [], "lasso": [], "points": [{"x": 0}]}) is None


def test_map_page_box_selects_from_all_examples(app_workdir, app_run, monkeypatch):
    from curation_app import services
    from curation_app.components import summaries

    t = app_run.table
    monkeypatch.setattr(
        services, "map_sample", lambda run_dir: summaries.stratified_sample(t["cluster"].to_numpy(), 100, seed=0)
    )
    at = goto(make_app(app_workdir, monkeypatch), "map")
    x, y = t["map_x"].to_numpy(), t["map_y"].to_numpy()
    box = {"x": [float(np.quantile(x, 0.2)), float(np.quantile(x, 0.8))], "y": [float(y.min()), float(y.max())]}
    at.session_state["map.chart"] = {"selection": {"points": [], "point_indices": [], "box": [box], "lasso": []}}
    at.run()
    assert not at.exception
    inside = int(((x >= box["x"][0]) & (x <= box["x"][1])).sum())
    assert inside > 100 * 0.6 * 0.5  # more than the drawn sample could hold inside the box
    assert f"{inside:,} of {len(t):,} examples inside the box" in texts(at, "caption")
    assert f"{inside:,} selected, hardest first" in texts(at, "markdown")


# ---------------------------------------------------------------------------
# Clusters: ?cluster= and kept / pruned marks


@pytest.mark.parametrize(
    "raw, want",
    [
        ("7", 7),
        ("0", 0),
        ("3.0", 3),
        (None, None),
        ("", None),
        ("abc", None),
        ("-1", None),
        ("10", None),
        ("2.5", None),
    ],
)
def test_cluster_parameter_is_validated(raw, want):
    got, why = cluster_members.parse_cluster(raw, 10)
    assert got == want
    assert (why is None) == (raw in (None, "") or want is not None)
    if why:
        assert repr(str(raw)) in why and "0 to 9" in why


def test_kept_and_pruned_marks_follow_the_prune_setting(app_run):
    rk = backend.Ranking(app_run, strategy="hard", metric="ssl_prototype", balance="none", seed=0)
    mask = rk.mask(280)
    members = np.flatnonzero(app_run.table["cluster"].to_numpy() == 0)
    caps = cluster_members.captions(app_run.table, members, mask, "ssl_prototype")
    assert [c.startswith(cluster_members.KEPT_MARK) for c in caps] == mask[members].tolist()
    kept = cluster_members.filter_members(members, mask, "kept")
    pruned = cluster_members.filter_members(members, mask, "pruned")
    assert len(kept) + len(pruned) == len(members) and mask[kept].all() and not mask[pruned].any()
    assert cluster_members.kept_summary(members, mask).startswith(f"{int(mask[members].sum()):,} of {len(members):,}")


def _keep_page_params(monkeypatch):
    """``state.sync_url`` rewrites the address from the shared settings; until it keeps a page's own
    ``cluster`` parameter (asked for in the H2 report) the test keeps it the same way."""
    from curation_app import state
    from curation_app.components import settings as S

    def sync_url():
        import streamlit as st

        want = S.to_query(state.current())
        if cluster_members.QUERY_KEY in st.query_params:
            want[cluster_members.QUERY_KEY] = st.query_params[cluster_members.QUERY_KEY]
        if want != {k: st.query_params.get(k) for k in st.query_params}:
            st.query_params.from_dict(want)

    monkeypatch.setattr(state, "sync_url", sync_url)


def test_clusters_member_view_has_its_own_address_and_marks(app_workdir, app_run, monkeypatch):
    _keep_page_params(monkeypatch)
    largest = int(app_run.table["cluster"].value_counts().idxmax())
    at = make_app(app_workdir, monkeypatch, query={"cluster": str(largest)})
    goto(at, "clusters")
    assert f"Cluster {largest}: all" in texts(at, "subheader")
    assert at.query_params.get("cluster") == [str(largest)] or at.query_params.get("cluster") == str(largest)
    caps = [c for img in at.get("image") for c in (img.proto.imgs and [i.caption for i in img.proto.imgs])]
    assert caps and all(c.startswith((cluster_members.KEPT_MARK, cluster_members.PRUNED_MARK)) for c in caps)
    at.radio(key="clusters.members.show").set_value("pruned").run()
    caps = [i.caption for img in at.get("image") for i in img.proto.imgs]
    assert all(c.startswith(cluster_members.PRUNED_MARK) for c in caps)
    at.button(key="clusters.back").click().run()
    assert "cluster" not in at.query_params
    assert not any(s.startswith("Cluster ") and ": all" in s for s in texts(at, "subheader").splitlines())


def test_clusters_bad_address_is_said_and_dropped(app_workdir, monkeypatch):
    _keep_page_params(monkeypatch)
    at = make_app(app_workdir, monkeypatch, query={"cluster": "oops"})
    goto(at, "clusters")
    assert "ignored cluster='oops'" in texts(at, "warning")
    assert "cluster" not in at.query_params


def test_member_thumbnails_are_framed_kept_or_faded_pruned():
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (10, 10), (0, 0, 0)).save(buf, format="PNG")
    kw = dict(kept_colour="#1f6fb4", pruned_colour="#c9ccd1", border=3)
    kept = Image.open(io.BytesIO(cluster_members.mark_thumbnail(buf.getvalue(), True, **kw))).convert("RGB")
    pruned = Image.open(io.BytesIO(cluster_members.mark_thumbnail(buf.getvalue(), False, **kw))).convert("RGB")
    assert kept.size == (16, 16) and kept.getpixel((0, 0)) == (0x1F, 0x6F, 0xB4) and kept.getpixel((8, 8)) == (0, 0, 0)
    assert pruned.getpixel((0, 0)) == (0xC9, 0xCC, 0xD1) and pruned.getpixel((8, 8))[0] > 100  # faded
