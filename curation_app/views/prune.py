"""Prune: how much to keep, and which examples.  Moving the slider only re-masks the cached ranking."""

from __future__ import annotations

import numpy as np
import streamlit as st

import backend
from curation_app import services, state
from curation_app.components import figures, first_paint, gallery, prune_figures, scaling_panel, summaries
from curation_app.components import settings as S
from curation_app.components.kept_counts import kept_index, score_bins

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


ERRORS = "prune.input_errors"  # {widget key: (message, keep count when it was typed)}


def _on_count(wkey: str) -> None:
    errors = st.session_state.setdefault(ERRORS, {})
    why = S.count_problem(st.session_state[wkey], n)
    if why:  # shown under the field by the fragment; the setting keeps its value and says so
        errors[wkey] = (why, state.n_keep(run))
    else:
        errors.pop(wkey, None)
        c = int(st.session_state[wkey])
        state.apply({"keep_count": c, "keep_mode": "count", "keep": round(max(c / n, 1e-4), 4)})


def _on_fraction(wkey: str) -> None:
    st.session_state.setdefault(ERRORS, {}).pop("w.prune.count", None)
    state.apply({"keep": float(st.session_state[wkey]), "keep_mode": "fraction"})


def _on_floor(wkey: str) -> None:
    errors = st.session_state.setdefault(ERRORS, {})
    v = st.session_state[wkey]
    if v is None or int(v) != v or v < 0:
        errors[wkey] = (f"{v} is not a floor: use a whole number, 0 (no warning) or more", state.n_keep(run))
    else:
        errors.pop(wkey, None)
        state.put("floor", int(v))


def _shown(wkey: str, value) -> str | None:
    """The error of ``wkey`` if it still applies (the user has not changed the count since); otherwise
    fill the widget with ``value`` and return None."""
    err = st.session_state.get(ERRORS, {}).get(wkey)
    if err is not None and err[1] == state.n_keep(run):
        return err[0]
    st.session_state.get(ERRORS, {}).pop(wkey, None)
    state.fill(wkey, value)
    return None


# ---------------------------------------------------------------------------
# how to rank (a change reruns the page: it makes another ranking)

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
# how much to keep: a fragment, so that a slider move reruns only what depends on the keep count.  Everything
# a move needs is precomputed per ranking (components/kept_counts.py): a move costs O(classes + clusters + bins).

s = state.current()
rk = services.ranking(rd, s["strategy"], s["metric"], s["balance"], s["seed"])
idx = kept_index(rk)
cl_codes, cl_names, cl_total = services.group_codes(rd, "cluster")
lab_codes, lab_names, lab_total = services.group_codes(rd, "label") if run.has_labels else (None, [], None)
hist_metric = s["metric"] if s["strategy"] != "random" else run.score_columns[0]
scores, edges = services.score_array(rd, hist_metric)
bins = idx.labelling_codes(f"bins:{hist_metric}", lambda: score_bins(scores, edges), len(edges))
all_h = np.bincount(bins, minlength=len(edges))[:-1]


def _names(items, what, floor):
    shown = ", ".join(f"{name} ({kept:,} of {total:,})" for name, kept, total in items[:10])
    more = f" and {len(items) - 10} more" if len(items) > 10 else ""
    return f"{len(items)} {what} keep fewer than {floor}: {shown}{more}."


@st.fragment
def live(chart) -> None:
    """Everything that depends on the keep count; ``chart``: the scaling panel's (slot, draw) or None.

    Its widgets rerun only this function (Streamlit's default for a widget inside a fragment; a keyed
    ``st.rerun`` from the callback would cost a few hundred ms more)."""
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
    # no min/max on the widget: the browser would refuse 0 or 999,999 silently; the callback says why
    count_error = _shown("w.prune.count", int(k_now))
    c2.number_input(
        f"Keep count (1 to {n:,})",
        step=max(1, n // 100),
        key="w.prune.count",
        on_change=_on_count,
        args=("w.prune.count",),
        help="the same thing as a number of examples",
    )
    if count_error:
        c2.error(f"{count_error}; still keeping {k_now:,}.", icon=":material/error:")
    floor_error = _shown("w.prune.floor", int(state.get("floor")))
    c3.number_input(
        "Floor per class / cluster",
        step=1,
        key="w.prune.floor",
        on_change=_on_floor,
        args=("w.prune.floor",),
        help="warn when a class or a cluster keeps fewer examples than this (`curate select "
        "--min-per-class N` / `--min-per-cluster N` enforce a floor)",
    )
    if floor_error:
        c3.error(f"{floor_error}; the floor stays {int(state.get('floor'))}.", icon=":material/error:")

    k = k_now
    floor = int(state.get("floor"))
    # the kept count first: it is what a user waits for after a move
    m = st.columns([1.7, 1, 1, 1])  # "1,000,000 of 1,300,000" must fit
    m[0].metric("Kept", f"{k:,} of {n:,}", f"{k / n:.1%} of the pool", delta_color="off", delta_arrow="off")
    m[1].metric("Pruned", f"{n - k:,}")
    q = idx.quota(k)
    cl_kept = idx.counts("cluster", cl_codes, len(cl_names), k, quota=q)
    bad_clusters = summaries.floor_violations(cl_names, cl_total, cl_kept, floor)
    bad_classes = []
    if run.has_labels:
        lab_kept = idx.counts("label", lab_codes, len(lab_names), k, quota=q)
        bad_classes = summaries.floor_violations(lab_names, lab_total, lab_kept, floor)
    m[2].metric(f"Classes below {floor}", f"{len(bad_classes)}" if run.has_labels else "n/a")
    m[3].metric(f"Clusters below {floor}", f"{len(bad_clusters)}")
    if bad_classes:
        st.warning(
            _names(bad_classes, "class(es)", floor) + " Keep more, or balance per class.", icon=":material/warning:"
        )
    if bad_clusters:
        st.warning(
            _names(bad_clusters, "cluster(s)", floor) + " Keep more, or balance per cluster.",
            icon=":material/warning:",
        )

    left, right = st.columns(2)
    with left:
        if run.has_labels:
            fig = figures.class_counts_figure(
                lab_names, lab_total, lab_kept, floor=floor or None, title="Kept per class vs the full data"
            )
            first_paint.plotly_chart(prune_figures.floor_label_outside(fig), key="prune.classes")
        else:
            st.caption("No labels: per-cluster counts instead.")
            fig = figures.class_counts_figure(
                cl_names,
                cl_total,
                cl_kept,
                what="cluster",
                floor=floor or None,
                title="Kept per cluster vs the full data",
            )
            first_paint.plotly_chart(prune_figures.floor_label_outside(fig), key="prune.clusters")
    with right:
        kept_h = idx.counts(f"bins:{hist_metric}", bins, len(edges), k, quota=q)[:-1]
        # one score cut exists only for keep hard / keep easy without balance
        cut = idx.cut(scores, k, s["strategy"], s["balance"])
        first_paint.plotly_chart(
            figures.score_histogram(
                edges,
                kept_h,
                all_h - kept_h,
                metric=hist_metric,
                cut=cut,
                strategy=s["strategy"],
                title=f"What the cut keeps, by {hist_metric}",
            ),
            key="prune.hist",
        )

    st.markdown("**Removed at the margin**: the next examples this strategy would keep if you kept a few more")
    gallery.strip(run, idx.margin(k, 12), score=hist_metric, empty="nothing is removed: you keep everything")
    if chart is not None:  # the scaling chart's "your setting" marker, drawn in the panel's slot below
        slot, draw = chart
        with slot:
            draw()
    # a fragment run skips the router: keep the address bar and the sidebar's summary in step
    state.sync_url()
    state.refresh_description(run)


# the slider's part sits above the scaling panel but runs after the panel's first step (which makes the
# chart's slot) and before its heavy rest, so that the kept count is among the first things the browser draws
live_box = st.container()
chart, finish_panel = scaling_panel.panel(run, state.n_keep(run))
with live_box:
    live(chart)
finish_panel()
