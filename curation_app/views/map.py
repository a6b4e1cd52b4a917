"""Map: the 2-D map of the embeddings; hover a point for its id, class and scores, click it for its image,
drag a box or lasso to see every example inside."""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from curation_app import services, state
from curation_app.components import figures, first_paint, gallery, map_canvas, map_data, summaries

DEFAULT_DEDUP_THRESHOLD = 0.95  # the Redundancy page's default
DRAWN_AT_SCALE = 50_000  # points drawn for a run larger than summaries.MAP_MAX_POINTS
FEW = 3  # a selection of at most this many shows each example's card (image, id, class, every score)
CANVAS, PLOTLY = "canvas", "plotly"  # the shared setting map_viewer (settings.MAP_VIEWERS), also ?viewer=
VIEWER_QUERY = "viewer"  # ?viewer=canvas|plotly: the Map page's own part of the address (state.PAGE_QUERY_KEYS)
VIEWER_LABELS = {CANVAS: "fast canvas", PLOTLY: "plotly"}
DEFAULT_VIEWER = CANVAS  # measured in benchmarks/bench_app_map.py (canvas vs plotly, same run)
LEGEND_MAX = 40  # groups listed next to the canvas; more: their count only

run = state.require_run()
rd = str(run.dir)
t = run.table
method = run.config["params"].get("map_method", "map")

st.title("Map")
st.caption(
    f"Every example placed by a 2-D {method.upper()} projection of its embedding. Hover a point for its id, class "
    "and score (rest on it, or click it, for its image and every score). Select a box or draw a lasso to see "
    "every example inside (a small box around one point shows its image and all its scores)."
)

# plotly redraws the whole chart on every re-colour, and a box sends back every drawn point inside it:
# above the sampling limit draw fewer (the density stays faithful, selections still cover every example)
pos = services.map_sample(rd) if len(t) <= summaries.MAP_MAX_POINTS else services.map_sample(rd, DRAWN_AT_SCALE)


def _dedup_threshold() -> float:
    """The similarity threshold the Redundancy page uses (shared setting when it set one)."""
    for key in ("s.dedup_threshold", "redundancy.threshold"):
        v = st.session_state.get(key)
        if isinstance(v, (int, float)) and 0.0 < float(v) <= 1.0:
            return float(v)
    return DEFAULT_DEDUP_THRESHOLD


def _focus_group() -> tuple[int, float, np.ndarray] | None:
    """The duplicate group a link from the Redundancy page asks for (``?group=G&group_at=T``): its number, the
    threshold it was found at and its members (kept one first); None without one.  A bad value is said here,
    in the page, and dropped from the address."""
    raw, at = st.query_params.get("group"), st.query_params.get("group_at")
    if raw is None:
        return None
    try:
        group, thr = int(raw), float(at) if at is not None else _dedup_threshold()
        if not 0.0 < thr <= 1.0:
            raise ValueError("a threshold is in (0, 1]")
        res = services.dedup_at(rd, run.key, thr)
        if not 0 <= group < res.n_groups:
            raise ValueError(f"at similarity > {thr:.3f} there are {res.n_groups:,} groups, numbered from 0")
    except ValueError as exc:
        st.warning(f"ignored group={raw!r}: {exc}", icon=":material/link_off:")
        for k in ("group", "group_at"):
            st.query_params.pop(k, None)
        return None
    return group, thr, res.members(group)


def _clear_focus() -> None:
    for k in ("group", "group_at"):
        st.query_params.pop(k, None)


FOCUS = _focus_group()


def _colouring(colour: str, pos: np.ndarray = pos) -> map_data.Colouring | None:
    """The colouring for ``colour`` over the points ``pos`` (None: duplicate groups not computed yet); a
    duplicate group opened from the Redundancy page instead, while it is open."""
    if FOCUS is not None:
        group, thr, members = FOCUS
        inside = np.flatnonzero(np.isin(pos, members))  # the drawn points that are members
        return map_data.group_focus_colouring(inside, len(pos), group=group, threshold=thr, colour=figures.CUT_COLOUR)
    if colour in (map_data.CLUSTER, map_data.CLASS):
        codes, names, _ = services.group_codes(rd, "cluster" if colour == map_data.CLUSTER else "label")
        return map_data.categorical(codes[pos], names, what=colour)
    if colour == map_data.KEPT:
        s = state.current()
        mask = services.ranking(rd, s["strategy"], s["metric"], s["balance"], s["seed"]).mask(state.n_keep(run))
        c = map_data.kept_colouring(mask[pos], kept_colour=figures.KEPT_COLOUR, pruned_colour=figures.PRUNED_COLOUR)
        c.note = state.describe(run) + " (change it on the Prune page)"
        return c
    if colour == map_data.GROUP_SIZE:
        if not map_data.dedup_cached(run) and not st.session_state.get("map.dedup_go"):
            st.info(
                "The near-duplicate groups of this run are not computed yet (an exact search inside every "
                f"cluster; for {len(t):,} examples it can take a while).",
                icon=":material/content_copy:",
            )
            if not st.button("Find the near-duplicate groups", key="map.dedup_go", icon=":material/search:"):
                return None
        thr = _dedup_threshold()
        res = services.dedup_at(rd, run.key, thr)
        per = map_data.group_sizes_per_example(res.group, res.group_sizes())
        return map_data.group_size_colouring(per[pos], res.removed[pos], threshold=thr)
    scores, _ = services.score_array(rd, colour)
    return map_data.score_colouring(scores[pos], colour)


def _figure(colour: str, c: map_data.Colouring):
    metric = state.get("metric")
    cols = map_data.hover_columns(run.score_columns, metric=metric, colour=colour)
    kw = dict(
        hover=map_data.cached_hover_text(run.key, t, pos),
        scores=map_data.hover_scores(t, pos, cols),
        hover_template=map_data.hover_template(cols),
        method=method,
        title=f"2-D map of {len(t):,} examples ({method}), {c.title}",
        legend_title=c.legend_title,
        uirevision=run.key,
    )
    if c.kind == "category":
        return figures.map_figure(
            t["map_x"].to_numpy()[pos],
            t["map_y"].to_numpy()[pos],
            pos,
            colour="group",
            groups=c.codes,
            group_names=c.names,
            group_colours=c.colours,
            **kw,
        )
    ticks = map_data.log2_ticks(int(2 ** float(np.max(c.values)))) if c.log_values and len(c.values) else None
    return figures.map_figure(
        t["map_x"].to_numpy()[pos],
        t["map_y"].to_numpy()[pos],
        pos,
        colour="value",
        values=c.values,
        bar_title=c.bar_title,
        bar_ticks=ticks,
        overlay=c.overlay,
        overlay_name=c.overlay_name,
        **kw,
    )


def _show_example(p: int, *, side=None) -> None:
    """One example's card: image, id, class, cluster, path, every score (in ``side``: stacked, for a column)."""
    card = map_data.example_card(t, p, run.score_columns)
    left, right = (side, side) if side is not None else st.columns([1, 3])
    img = services.thumbnail(rd, run.key, p, 192) if run.has_images else None
    if img is not None:
        left.image(img, width=128 if side is not None else 192)
    else:
        left.caption("no image (precomputed embeddings)" if not run.has_images else "the image could not be read")
    right.markdown(
        f"**{card['example_id']}** · class **{card['class'] or 'n/a'}** · cluster **{card['cluster']}**"
        + (f"  \n`{card['path']}`" if card["path"] else "")
    )
    right.dataframe(
        pd.DataFrame({"score (higher = harder)": list(card["scores"]), "value": list(card["scores"].values())}),
        hide_index=True,
    )


@st.fragment
def map_view() -> None:
    """Colour choice, chart and selection: a fragment, so re-colouring reruns only this part of the page.

    Streamlit gives a chart whose figure changed a new identity (the element id hashes the spec), so a
    re-colour redraws the chart from scratch and clears its selection; the zoom is not kept."""
    options = map_data.colour_options(run.score_columns, has_labels=run.has_labels)
    if st.session_state.get("s.map_colour") not in options:
        st.session_state["s.map_colour"] = map_data.CLUSTER
    state.fill("w.map.colour", st.session_state["s.map_colour"])
    colour = st.radio(
        "Colour by",
        options,
        horizontal=True,
        key="w.map.colour",
        on_change=lambda: st.session_state.update({"s.map_colour": st.session_state["w.map.colour"]}),
    )
    viewer = _viewer()
    if FOCUS is not None:
        group, thr, members = FOCUS
        st.info(
            f"Duplicate group {group} at similarity > {thr:.3f}: its {len(members):,} members are drawn in red "
            f"on top (kept: `{t['example_id'].iloc[int(members[0])]}`), and listed under the map.",
            icon=":material/content_copy:",
        )
        st.button("Show every example again", key="map.clear_group", on_click=_clear_focus)
    if viewer == CANVAS:
        _canvas_view(colour)
        return
    if len(pos) < len(t):
        st.info(
            f"Showing a sample of {len(pos):,} of {len(t):,} examples, drawn in proportion to every cluster's size, "
            "so the density you see is faithful. A box or lasso selects from all examples, not only the drawn ones.",
            icon=":material/grain:",
        )
    c = _colouring(colour) or _colouring(map_data.CLUSTER)
    assert c is not None
    if c.note:
        st.caption(c.note)
    fig = _figure(colour, c)
    event = first_paint.plotly_chart(
        fig,
        key="map.chart",
        on_select="rerun",
        selection_mode=("box", "lasso", "points"),
        config={"scrollZoom": True, "displaylogo": False},
    )
    sel = event["selection"] if event is not None and "selection" in event else None
    region = map_data.region_of(sel)
    if region is not None:
        _show_region(region)
        return
    if FOCUS is not None:
        _show_group()
        return
    clicked = map_data.clicked_positions(t["map_x"].to_numpy(), t["map_y"].to_numpy(), (sel or {}).get("points"), pos)
    st.subheader("Selected images")
    if len(clicked) == 0:
        st.caption("Nothing selected yet: drag a box or a lasso on the map, or click a point with the pan tool.")
        return
    for p in clicked[:5]:
        _show_example(int(p))


def _show_group() -> None:
    """The open duplicate group's members, the kept one first, then the removed ones most similar first."""
    assert FOCUS is not None
    group, thr, members = FOCUS
    st.subheader(f"Duplicate group {group}")
    st.caption(f"{len(members):,} members at similarity > {thr:.3f}: the kept one first, then those removed.")
    if len(members) <= FEW:
        for p in members:
            _show_example(int(p))
        return
    gallery.gallery(run, members, key=f"map.group.{group}", score=state.get("metric"))


def _show_region(region: dict) -> None:
    """Every example inside ``region`` (all of them, drawn or not): a card each when few, else a gallery."""
    st.subheader("Selected images")
    # the region, not the browser's point list: tested against every example (also those not drawn)
    chosen = map_data.region_positions(t["map_x"].to_numpy(), t["map_y"].to_numpy(), region)
    if len(chosen) == 0:
        st.caption(f"No example inside the {region['kind']}.")
        return
    st.caption(f"{len(chosen):,} of {len(t):,} examples inside the {region['kind']} (all examples, drawn or not).")
    _show_chosen(chosen)


def _show_chosen(chosen: np.ndarray) -> None:
    """A card each when few, else a gallery hardest first."""
    metric = state.get("metric")
    if len(chosen) <= FEW:
        for p in chosen:
            _show_example(int(p))
        return
    order = chosen[np.argsort(-services.score_array(rd, metric)[0][chosen], kind="stable")]
    gallery.gallery(
        run,
        order,
        key=f"map.{len(order)}.{int(order[0])}",
        score=metric,
        title=f"{len(order):,} selected, hardest first by {metric}",
    )


def _viewer() -> str:
    """The map viewer: the fast canvas (every example drawn) or Plotly (a sample above MAP_MAX_POINTS).

    The shared setting ``map_viewer`` (so a saved settings file keeps it), mirrored into the address as
    ``?viewer=canvas|plotly``; a value there that is neither is said here, in the page, and dropped from the
    address (the session's viewer stays)."""
    raw = st.query_params.get(VIEWER_QUERY)
    if raw is not None and raw in VIEWER_LABELS:
        st.session_state["s.map_viewer"] = raw
    elif raw is not None:
        st.warning(
            f"ignored {VIEWER_QUERY}={raw!r}: the map viewer is one of {', '.join(VIEWER_LABELS)}",
            icon=":material/link_off:",
        )
        del st.query_params[VIEWER_QUERY]
    if st.session_state.get("s.map_viewer") not in (CANVAS, PLOTLY):
        st.session_state["s.map_viewer"] = DEFAULT_VIEWER
    state.fill("w.map.viewer", st.session_state["s.map_viewer"])
    viewer = st.radio(
        "Viewer",
        (CANVAS, PLOTLY),
        format_func=VIEWER_LABELS.get,
        horizontal=True,
        key="w.map.viewer",
        help="fast canvas: every example drawn in the browser, pan and zoom without a round trip; "
        "plotly: the chart with its toolbar and lasso (a sample above "
        f"{summaries.MAP_MAX_POINTS:,} examples)",
        on_change=_viewer_changed,
    )
    if st.query_params.get(VIEWER_QUERY) != viewer:
        st.query_params[VIEWER_QUERY] = viewer  # a link brings this viewer back
    return viewer


def _viewer_changed() -> None:
    """The radio moved: the session's viewer and the address follow (the address is read before the radio)."""
    viewer = st.session_state["w.map.viewer"]
    st.session_state["s.map_viewer"] = viewer
    st.query_params[VIEWER_QUERY] = viewer


def _positions() -> tuple[bytes, list[float], list[str], tuple[bytes, str]]:
    """(bytes, bounds, class names, id bytes and prefix) of every example, once per run and process
    (services.map_positions): the canvas fetches the positions and the ids once."""
    return services.map_positions(rd, run.key)


def _pointed() -> int | None:
    """The point the pointer rested on (or clicked) in the canvas, as the browser last said (None: none)."""
    try:
        p = (st.session_state.get("map.canvas") or {}).get("hovered")
    except AttributeError:
        return None
    return int(p) if isinstance(p, int) and 0 <= p < len(t) else None


def _legend(c: map_data.Colouring, js: dict) -> None:
    """The colours next to the canvas: one line per group, or the score's colour bar."""
    st.markdown(f"**{c.legend_title}**")
    if c.kind == "category":
        if len(c.names) > LEGEND_MAX:
            st.caption(f"{len(c.names):,} groups; the colours cycle through {len(js['palette'])}.")
            return
        pal = js["palette"]
        lines = [
            f'<span style="color:{pal[i % len(pal)]};font-size:1.2em">■</span> {name}' for i, name in enumerate(c.names)
        ]
        st.markdown("<br>".join(lines), unsafe_allow_html=True)
        return
    lo, hi = js["range"]
    stops = ",".join(js["palette"][:-1][::16] + [js["palette"][-2]])
    st.markdown(
        f'<div style="height:14px;border-radius:3px;background:linear-gradient(90deg,{stops})"></div>'
        f'<div style="display:flex;justify-content:space-between;font-size:0.8em"><span>{lo:.3g}</span>'
        f"<span>{hi:.3g}</span></div>",
        unsafe_allow_html=True,
    )
    st.caption("higher = harder; the colour spans the 1st to 99th percentile" if not c.log_values else "")
    if c.overlay is not None:
        st.markdown(f'<span style="color:{figures.CUT_COLOUR}">■</span> {c.overlay_name}', unsafe_allow_html=True)


def _canvas_view(colour: str) -> None:
    """Every example on the canvas; the legend and the pointed example's card beside it, the selection below."""
    every = np.arange(len(t))
    # one slot above the map whatever the colour says there: the canvas keeps its place in the page, so the
    # browser updates it in place (its positions and zoom kept) instead of mounting a new one
    with st.container():
        c = _colouring(colour, every) or _colouring(map_data.CLUSTER, every)
        assert c is not None
        if c.note:
            st.caption(c.note)
    pos_bytes, box, class_names, ids = _positions()
    metric = state.get("metric")
    extra = services.score_array(rd, metric)[0] if c.kind == "category" and metric in run.score_columns else None
    col_bytes, js = map_canvas.colour_payload(
        c, palette=list(figures.PALETTE), top_colour=figures.CUT_COLOUR, scores=extra, score_name=metric
    )
    region = st.session_state.get("map.canvas_region")
    pointed = _pointed()
    card = None
    if pointed is not None:  # its id, class, score and thumbnail in the tooltip (the card beside the map too)
        thumb = services.thumbnail(rd, run.key, pointed, 192) if run.has_images else None
        card = map_canvas.card_payload(
            map_data.example_card(t, pointed, run.score_columns), thumb=thumb, key="map.canvas", score_name=metric
        )
    focus = None
    if FOCUS is not None:  # the group opened from the Redundancy page: the view zooms to it once
        group, thr, members = FOCUS
        focus = map_canvas.focus_box(
            t["map_x"].to_numpy()[members], t["map_y"].to_numpy()[members], key=f"{group}@{thr:.4f}", bounds_box=box
        )
    left, right = st.columns([3, 1])
    with left:
        res = map_canvas.canvas_map(
            positions=pos_bytes,
            n=len(t),
            box=box,
            class_names=class_names,
            colours=col_bytes,
            colour_json=js,
            title=f"2-D map of {len(t):,} examples ({method}), {c.title}",
            key="map.canvas",
            ids=ids,
            card=card,
            region=region,
            focus=focus,
        )
    with right:
        _legend(c, js)
        if pointed is not None:
            st.markdown("---")
            _show_example(int(pointed), side=st.container())
    region = map_canvas.region_of(res.get("region"))
    st.session_state["map.canvas_region"] = res.get("region") if region is not None else None
    if region is None and FOCUS is not None:
        _show_group()
        return
    if region is None:
        st.subheader("Selected images")
        st.caption("Nothing selected yet: drag a box with ▭ select (or shift-drag), or draw a lasso with ◌ lasso.")
        return
    _show_region(region)


map_view()
