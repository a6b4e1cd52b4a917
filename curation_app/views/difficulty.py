"""Difficulty: the easiest and hardest examples by a metric, globally, per class, per cluster."""

from __future__ import annotations

import streamlit as st

from curation_app import services, state
from curation_app.components import figures, first_paint, gallery, summaries

run = state.require_run()
rd = str(run.dir)
t = run.table

st.title("Difficulty")
st.caption(
    "Easy examples sit close to their prototype (redundant); hard ones are far from it (atypical, rare "
    "or mislabelled). Every metric here is higher = harder."
)

c1, c2, c3 = st.columns([1.4, 1.4, 1.2])
c1.selectbox("Metric", run.score_columns, **state.bind("metric", "difficulty"))
scopes = ["all examples"] + (["one class"] if run.has_labels else []) + ["one cluster"]
scope = c2.radio("Within", scopes, horizontal=True, key="difficulty.scope")
within, where = None, "all examples"
if scope == "one class":
    lab_codes, names, _ = services.group_codes(rd, "label")
    cls = c3.selectbox("Class", names, key="difficulty.class")
    within, where = lab_codes == names.index(cls), f"class {cls}"
elif scope == "one cluster":
    cl_codes, names, totals = services.group_codes(rd, "cluster")
    cl = c3.selectbox(
        "Cluster",
        [int(c) for c in names if totals[int(c)] > 0],
        format_func=lambda c: f"{c} ({totals[c]:,} examples)",
        key="difficulty.cluster",
    )
    within, where = cl_codes == cl, f"cluster {cl}"

s = state.current()
metric = s["metric"]
scores, edges = services.score_array(rd, metric)
n_show = st.slider("Examples to show", min_value=4, max_value=48, value=12, step=4, key="difficulty.n")
easy, hard = summaries.extremes_in(services.score_order(rd, metric), within, n_show)

st.subheader(f"Easiest in {where}")
gallery.strip(run, easy, score=metric)
st.subheader(f"Hardest in {where}")
gallery.strip(run, hard, score=metric)

k = state.n_keep(run)
mask = services.ranking(rd, s["strategy"], metric, s["balance"], s["seed"]).mask(k)
kept_h = summaries.histogram(scores, edges, mask if within is None else mask & within)
all_h = summaries.histogram(scores, edges, within)
cut = summaries.cut_value(scores, mask, s["strategy"], s["balance"])
first_paint.plotly_chart(
    figures.score_histogram(
        edges,
        kept_h,
        all_h - kept_h,
        metric=metric,
        cut=cut,
        strategy=s["strategy"],
        title=f"{metric} in {where}, with the current cut ({k:,} of {len(t):,} kept overall, {s['strategy']})",
    ),
    key="difficulty.hist",
)
st.caption(state.describe(run) + ". Change it on the Prune page.")
