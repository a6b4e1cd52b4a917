"""Prune: how much to keep, and which examples.  Moving the slider only re-masks the cached ranking."""

from __future__ import annotations

import streamlit as st

import backend
from curation_app import services, state
from curation_app.components import figures, gallery, scaling_panel, summaries

STRATEGY_LABELS = {
    "hard": "keep hard (most atypical)",
    "easy": "keep easy (most prototypical)",
    "random": "random (baseline)",
    "ccs": "CCS (coverage)",
    "dedup+hard": "dedup + hard",
    "dedup+easy": "dedup + easy",
}
BALANCE_LABELS = {
    "none": "none",
    "class": "same share per class",
    "class-floor": "class floor (paper)",
    "cluster": "same share per cluster",
    "cluster-floor": "cluster floor",
}

run = state.require_run()
n = run.n_examples
rd = str(run.dir)

st.title("Prune")
st.caption(
    "Choose how much to keep and in which direction. The ranking is computed once per strategy, metric, "
    "balance and seed; moving the slider only re-cuts it."
)


def _on_count(wkey: str) -> None:
    c = int(st.session_state[wkey])
    state.apply({"keep_count": c, "keep_mode": "count", "keep": round(max(c / n, 1e-4), 4)})


def _on_fraction(wkey: str) -> None:
    state.apply({"keep": float(st.session_state[wkey]), "keep_mode": "fraction"})


# ---------------------------------------------------------------------------
# controls

k_now = state.n_keep(run)
c1, c2, c3 = st.columns([3, 1.2, 1.2])
frac_shown = min(1.0, max(0.01, round(k_now / n, 2))) if state.get("keep_mode") == "count" else state.get("keep")
state.fill("w.prune.keep", float(frac_shown))
c1.slider(
    "Keep fraction",
    min_value=0.01,
    max_value=1.0,
    step=0.01,
    key="w.prune.keep",
    on_change=_on_fraction,
    args=("w.prune.keep",),
    format="%.2f",
    help="share of the pool to keep; the arrow keys move it by 1%",
)
state.fill("w.prune.count", int(k_now))
c2.number_input(
    "Keep count",
    min_value=1,
    max_value=n,
    step=max(1, n // 100),
    key="w.prune.count",
    on_change=_on_count,
    args=("w.prune.count",),
    help="the same thing as a number of examples",
)
c3.number_input(
    "Floor per class / cluster",
    min_value=0,
    step=1,
    **state.bind("floor", "prune"),
    help="warn when a class or a cluster keeps fewer examples than this (`curate select "
    "--min-per-class N` / `--min-per-cluster N` enforce a floor)",
)

c1, c2, c3, c4 = st.columns([2.2, 1.6, 1.8, 0.8])
c1.radio(
    "Strategy",
    backend.STRATEGIES.names(),
    format_func=lambda s: STRATEGY_LABELS.get(s, s),
    horizontal=True,
    **state.bind("strategy", "prune"),
)
c2.selectbox(
    "Difficulty metric (higher = harder)",
    run.score_columns,
    disabled=state.get("strategy") == "random",
    **state.bind("metric", "prune"),
)
balances = [
    b for b in backend.BALANCES.names() if backend.BALANCES.entry(b).info.get("group") != "label" or run.has_labels
]
c3.radio(
    "Balance",
    balances,
    format_func=lambda b: BALANCE_LABELS.get(b, b),
    horizontal=True,
    **state.bind("balance", "prune"),
)
c4.number_input(
    "Seed",
    step=1,
    disabled=state.get("strategy") != "random",
    **state.bind("seed", "prune"),
    help="seed of the random strategy",
)

# ---------------------------------------------------------------------------
# live results

s = state.current()
k = state.n_keep(run)
rk = services.ranking(rd, s["strategy"], s["metric"], s["balance"], s["seed"])
mask = rk.mask(k)
floor = int(s["floor"])

cl_codes, cl_names, cl_total = services.group_codes(rd, "cluster")
cl_kept = summaries.group_counts(cl_codes, len(cl_names), mask)
bad_clusters = summaries.floor_violations(cl_names, cl_total, cl_kept, floor)
bad_classes = []
if run.has_labels:
    lab_codes, lab_names, lab_total = services.group_codes(rd, "label")
    lab_kept = summaries.group_counts(lab_codes, len(lab_names), mask)
    bad_classes = summaries.floor_violations(lab_names, lab_total, lab_kept, floor)

m = st.columns([1.7, 1, 1, 1])  # "1,000,000 of 1,300,000" must fit
m[0].metric("Kept", f"{k:,} of {n:,}", f"{k / n:.1%} of the pool", delta_color="off", delta_arrow="off")
m[1].metric("Pruned", f"{n - k:,}")
m[2].metric(f"Classes below {floor}", f"{len(bad_classes)}" if run.has_labels else "n/a")
m[3].metric(f"Clusters below {floor}", f"{len(bad_clusters)}")


def _names(items, what):
    shown = ", ".join(f"{name} ({kept} of {total})" for name, kept, total in items[:10])
    more = f" and {len(items) - 10} more" if len(items) > 10 else ""
    return f"{len(items)} {what} keep fewer than {floor}: {shown}{more}."


if bad_classes:
    st.warning(_names(bad_classes, "class(es)") + " Keep more, or balance per class.", icon=":material/warning:")
if bad_clusters:
    st.warning(_names(bad_clusters, "cluster(s)") + " Keep more, or balance per cluster.", icon=":material/warning:")

left, right = st.columns(2)
with left:
    if run.has_labels:
        st.plotly_chart(
            figures.class_counts_figure(
                lab_names, lab_total, lab_kept, floor=floor or None, title="Kept per class vs the full data"
            ),
            key="prune.classes",
        )
    else:
        st.caption("No labels: per-cluster counts instead.")
        st.plotly_chart(
            figures.class_counts_figure(
                cl_names,
                cl_total,
                cl_kept,
                what="cluster",
                floor=floor or None,
                title="Kept per cluster vs the full data",
            ),
            key="prune.clusters",
        )
with right:
    metric = s["metric"] if s["strategy"] != "random" else run.score_columns[0]
    scores, edges = services.score_array(rd, metric)
    kept_h = summaries.histogram(scores, edges, mask)
    all_h = summaries.histogram(scores, edges)
    # one score cut exists only for keep hard / keep easy without balance
    cut = summaries.cut_value(scores, mask, s["strategy"], s["balance"]) if s["strategy"] in ("hard", "easy") else None
    st.plotly_chart(
        figures.score_histogram(
            edges,
            kept_h,
            all_h - kept_h,
            metric=metric,
            cut=cut,
            strategy=s["strategy"],
            title=f"What the cut keeps, by {metric}",
        ),
        key="prune.hist",
    )

st.markdown("**Removed at the margin**: the next examples this strategy would keep if you kept a few more")
margin = summaries.margin_positions(rk, k, n, mask, count=12)
gallery.strip(run, margin, score=metric, empty="nothing is removed: you keep everything")

scaling_panel.panel(run, k)
