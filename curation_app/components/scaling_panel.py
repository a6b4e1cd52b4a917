"""The scaling-curves panel of the Prune page: the estimate on the user's data and the theory.

``backend.scaling`` is optional: when it (or a name in it) is missing the
panel says plainly what is missing and the rest of the page works.
"""

from __future__ import annotations

import numpy as np
import streamlit as st

import backend
from curation_app import services, state
from curation_app.components import figures, summaries
from curation_app.components.progress import StreamlitReporter

THETAS = (0, 10, 20, 30, 45)
POOLS = (1, 2, 5, 10, 20, 50)


def panel(run, n_keep: int) -> None:
    st.subheader("Estimated scaling curves")
    tab_est, tab_theory = st.tabs(["Estimated on your data", "Theory (perceptron)"])
    with tab_est:
        empirical(run, n_keep)
    with tab_theory:
        theory()


def _use_recommended(fraction: float, direction: str) -> None:
    values = {"keep": round(float(fraction), 4), "keep_mode": "fraction"}
    if direction in backend.STRATEGIES:
        values["strategy"] = direction
    state.apply(values)


def empirical(run, n_keep: int) -> None:
    load, estimate, missing = services.scaling_api()
    if missing:
        st.warning(missing.capitalize() + ". The theory tab does not need it.", icon=":material/construction:")
        return
    if not run.has_labels:
        st.info("The empirical estimate needs labels (it measures held-out error) and this run has none. "
                "The theory tab still tells you which direction to prune.", icon=":material/label_off:")
        return
    metric = state.get("metric")
    res = services.scaling_result(str(run.dir), run.key, metric)
    if res is None:
        st.caption(f"Not computed yet for `{metric}`. The estimate trains small linear probes on the frozen "
                   "embeddings for a grid of keep fractions, pool sizes and seeds (about a minute on 2 cores). "
                   "`curate scaling` computes the same thing from the command line.")
        if st.button(f"Estimate scaling curves for {metric}", icon=":material/query_stats:", key="scaling.go"):
            box = st.status("Estimating scaling curves...", expanded=True)
            try:
                estimate(run, metric=metric, reporter=StreamlitReporter(box))
            except backend.CurateError as exc:
                box.update(label="The estimate stopped", state="error")
                st.error(str(exc))
                return
            box.update(label="Scaling curves ready", state="complete")
            services.scaling_result.clear()
            st.rerun()
        return

    curves = res.curves
    qs = sorted(curves["initial_fraction"].unique())
    sizes = {q: int(curves.loc[np.isclose(curves["initial_fraction"], q), "initial_size"].iloc[0]) for q in qs}
    q = st.select_slider("Pool size the curves start from", options=qs, value=qs[-1],
                         format_func=lambda v: f"{sizes[v]:,} examples ({v:.0%})", key="scaling.q")
    fig = figures.scaling_figure(curves, res.powerlaw, res.frontier, n_current=n_keep, initial_fraction=q,
                                 title=f"Estimated held-out error vs examples kept ({metric}, linear probe)")
    st.plotly_chart(fig, key="scaling.fig")
    rec = res.recommendation or {}
    if rec.get("sentence"):
        st.info(rec["sentence"], icon=":material/lightbulb:")
    beats = res.beats_powerlaw or {}
    if beats.get("beats"):
        gain = beats.get("max_gain")
        st.success("The frontier beats the power law of random pruning" +
                   (f" by up to {100 * gain:.1f} pp" if gain else "") + ".")
    choices = []
    if rec.get("min_fraction"):
        choices.append((float(rec["min_fraction"]), rec.get("direction", state.get("strategy")), "recommended"))
    alt = rec.get("alternative") or {}
    if alt.get("min_fraction") and alt.get("direction"):
        choices.append((float(alt["min_fraction"]), alt["direction"], "alternative"))
    for col, (f, direction, kind) in zip(st.columns(max(1, len(choices))), choices):
        col.button(f"Set the slider to the {kind} {f:.0%} (keep {direction})", icon=":material/tune:",
                   key=f"scaling.use.{kind}" if kind != "recommended" else "scaling.use",
                   on_click=_use_recommended, args=(f, direction))
    if rec.get("proxy_note"):
        st.caption(rec["proxy_note"])
    with st.expander("The numbers"):
        st.dataframe(res.table(q) if hasattr(res, "table") else curves, width="stretch")


@st.fragment
def theory() -> None:
    error_curve, _, missing = services.theory_api()
    if missing:
        st.warning(missing.capitalize() + ".", icon=":material/construction:")
        return
    c1, c2 = st.columns(2)
    theta = c1.select_slider("θ: how imperfect the difficulty metric is (angle to the ideal one, degrees)",
                             options=THETAS, value=0, key="theory.theta",
                             help="0 = a perfect metric; larger angles = a noisier metric")
    pool = c2.select_slider("Pool size α_tot (examples per input dimension before pruning)", options=POOLS,
                            value=10, key="theory.pool")
    with st.spinner("Solving the theory curves (θ > 0 takes up to a minute the first time)..."):
        fig, t = services.theory_figure(float(theta), float(pool))
    st.plotly_chart(fig, key="theory.fig")
    st.markdown(summaries.theory_reading(t["alphas"], t["curves"], services.THEORY_FS, theta))
