"""Map: the 2-D map of the embeddings; select points to see their images."""

from __future__ import annotations

import numpy as np
import streamlit as st

from curation_app import services, state
from curation_app.components import figures, gallery

run = state.require_run()
rd = str(run.dir)
t = run.table
method = run.config["params"].get("map_method", "map")

st.title("Map")
st.caption(
    f"Every example placed by a 2-D {method.upper()} projection of its embedding. Drag a box or a lasso "
    "(toolbar, top right of the chart) to see the images you selected."
)

options = ["cluster"] + (["class"] if run.has_labels else []) + run.score_columns + ["kept / pruned"]
if st.session_state.get("s.map_colour") not in options:
    st.session_state["s.map_colour"] = "cluster"
state.fill("w.map.colour", st.session_state["s.map_colour"])
colour = st.radio(
    "Colour by",
    options,
    horizontal=True,
    key="w.map.colour",
    on_change=lambda: st.session_state.update({"s.map_colour": st.session_state["w.map.colour"]}),
)

pos = services.map_sample(rd)
if len(pos) < len(t):
    st.info(
        f"Showing a sample of {len(pos):,} of {len(t):,} examples, drawn in proportion to every cluster's "
        "size, so the density you see is faithful. Selections pick from the sample.",
        icon=":material/grain:",
    )

x = t["map_x"].to_numpy()[pos]
y = t["map_y"].to_numpy()[pos]
hover = None
if len(pos) <= 30_000:
    ids = t["example_id"].astype(str).to_numpy()[pos]
    labs = t["label"].astype(str).to_numpy()[pos] if run.has_labels else None
    hover = ids if labs is None else np.char.add(np.char.add(ids.astype(str), " · "), labs.astype(str))

title = f"2-D map of {len(t):,} examples ({method})"
if colour == "cluster":
    codes, names, _ = services.group_codes(rd, "cluster")
    fig = figures.map_figure(
        x,
        y,
        pos,
        colour="group",
        groups=codes[pos],
        group_names=names,
        hover=hover,
        method=method,
        title=title + ", coloured by k-means cluster",
        legend_title="cluster",
    )
elif colour == "class":
    codes, names, _ = services.group_codes(rd, "label")
    fig = figures.map_figure(
        x,
        y,
        pos,
        colour="group",
        groups=codes[pos],
        group_names=names,
        hover=hover,
        method=method,
        title=title + ", coloured by class",
        legend_title="class",
    )
elif colour == "kept / pruned":
    s = state.current()
    k = state.n_keep(run)
    mask = services.ranking(rd, s["strategy"], s["metric"], s["balance"], s["seed"]).mask(k)
    fig = figures.map_figure(
        x,
        y,
        pos,
        colour="kept",
        kept=mask[pos],
        hover=hover,
        method=method,
        title=title + f": kept at the current setting ({k:,} of {len(t):,})",
        legend_title="at the current setting",
    )
    st.caption(state.describe(run) + " (change it on the Prune page)")
else:
    scores, _ = services.score_array(rd, colour)
    fig = figures.map_figure(
        x,
        y,
        pos,
        colour="value",
        values=scores[pos],
        hover=hover,
        method=method,
        title=title + f", coloured by {colour}",
        legend_title=colour,
    )

event = st.plotly_chart(
    fig,
    key="map.chart",
    on_select="rerun",
    selection_mode=("box", "lasso", "points"),
    config={"scrollZoom": True, "displaylogo": False},
)

points = event.selection.points if event is not None and "selection" in event else []
selected = figures.selected_positions(fig, points)

st.subheader("Selected images")
if len(selected) == 0:
    st.caption("Nothing selected yet: drag a box or a lasso on the map.")
else:
    metric = state.get("metric")
    order = selected[np.argsort(-services.score_array(rd, metric)[0][selected], kind="stable")]
    gallery.gallery(
        run,
        order,
        key=f"map.{len(order)}.{int(order[0])}",
        score=metric,
        title=f"{len(order):,} selected, hardest first by {metric}",
    )
