"""Metrics: which difficulty metric to trust on this data, measured against random (``curate benchmark-metrics``)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from curation_app import services, state
from curation_app.components import first_paint, metric_figures, summaries
from curation_app.components import jobs as jobs_panel

run = state.require_run()
rd = str(run.dir)
cols = tuple(run.score_columns)

st.title("Metrics")
st.caption(
    "Which metric should you prune by? Each metric's estimated held-out error (linear probes on the frozen "
    "embeddings) when keeping its hardest or easiest examples, against a random subset of the same size: "
    "a metric is better only when it beats random by more than the spread over seeds. "
    "`curate benchmark-metrics` computes the same table."
)

JOB = f"metrics.benchmark.{run.key}"


def _table(df: pd.DataFrame, **kw) -> None:
    """st.dataframe with counts shown as 60,000, not 60000."""
    fmt = {c: st.column_config.NumberColumn(format="localized") for c in summaries.integer_columns(df)}
    st.dataframe(df, width="stretch", column_config=fmt, **kw)


def _benchmark_finished(job) -> None:
    services.metric_benchmark.clear()  # a new result on disk: read it again


res = services.metric_benchmark(rd, run.key, cols) if run.has_labels else None
if run.has_labels:
    job = jobs_panel.show(JOB, on_finish=_benchmark_finished, final=res is None)
    if job is not None and job.state == "succeeded" and res is None and jobs_panel.first_look(job):
        services.metric_benchmark.clear()  # finished while this session looked elsewhere: "not computed" is stale
        res = services.metric_benchmark(rd, run.key, cols)
if not run.has_labels:
    st.info(
        "This run has no labels, so there is no held-out error to compare. The agreement between the metrics "
        "below still shows whether they rank the examples alike.",
        icon=":material/label_off:",
    )
elif res is None:
    st.caption(
        f"Not computed yet for the {len([c for c in cols if c != 'random'])} metrics of this run "
        f"({', '.join(c for c in cols if c != 'random')})."
    )
    c1, c2 = st.columns(2)
    if c1.button("Measure the cost first", icon=":material/timer:", key="metrics.cost"):
        from backend.scores.benchmark import _metric_list, cost_estimate

        with st.spinner("Timing each metric on a small sample..."):
            names, _ = _metric_list(run, None)
            st.session_state["metrics.cost_table"] = cost_estimate(run, names)
    if "metrics.cost_table" in st.session_state:
        _table(st.session_state["metrics.cost_table"], hide_index=True)
    running = jobs_panel.active(JOB) is not None
    if c2.button(
        "Run the benchmark", icon=":material/leaderboard:", key="metrics.go", type="primary", disabled=running
    ):
        jobs_panel.start(
            ["benchmark-metrics", "--workdir", rd, "--no-estimate"], label="Benchmarking the metrics", key=JOB
        )
        st.rerun()

if res is not None:
    s = res.summary
    n_seeds = res.params["seeds"]
    best = s.iloc[0]
    beats = s[s["n_better"] > 0]
    n_fr = len(res.params["report_fractions"])
    where = ", ".join(
        f"**{r.metric}** keep {r.direction} ({r.n_better} of {n_fr} fractions)" for r in beats.itertuples()
    )
    fracs = ", ".join(f"{f:.0%}" for f in res.params["report_fractions"])
    if best.mean_diff < 0 and best.n_worse == 0:
        st.success(
            f"**{best.metric}** (keep {best.direction}) beats random on average, by "
            f"{-100 * best.mean_diff:.2f} pp over keep {fracs}."
            + (f" Beats random by more than 2 SE at some fraction: {where}." if where else ""),
            icon=":material/verified:",
        )
    else:
        st.warning(
            f"On average over the reported keep fractions no metric beats a random subset of the same size "
            f"(best: **{best.metric}** keep {best.direction}, {100 * best.mean_diff:+.2f} pp against random)."
            + (
                f" By more than two standard errors at single fractions: {where}; elsewhere they tie or lose."
                if where
                else " No metric beats random by more than two standard errors at any fraction: "
                "prune at random here (or use a better encoder)."
            ),
            icon=":material/balance:",
        )
    show = s.rename(
        columns={"mean_diff": "mean diff vs random (pp)", "n_better": "fractions better", "n_worse": "fractions worse"}
    )
    show["mean diff vs random (pp)"] = (100 * show["mean diff vs random (pp)"]).round(2)
    _table(show, hide_index=True)

    st.subheader("Held-out error at each keep fraction")
    t = res.table.copy()
    marks = {"better": " *", "worse": " !"}
    t["cell"] = [
        f"{100 * e:.1f}% ({100 * d:+.2f} ± {100 * se:.2f}){marks.get(v, '')}"
        for e, d, se, v in zip(t["error"], t["diff"], t["se"], t["verdict"])
    ]
    pivot = t.pivot_table(index=["metric", "strategy"], columns="keep_fraction", values="cell", aggfunc="first")
    rank = {m: i for i, m in enumerate(s["metric"])}
    keys = [(rank.get(m, 99), strategy != "hard") for m, strategy in pivot.index]
    pivot = pivot.iloc[sorted(range(len(pivot)), key=keys.__getitem__)]
    pivot.columns = [f"keep {f:.0%}" for f in pivot.columns]
    rnd = t.drop_duplicates("keep_fraction").set_index("keep_fraction")["random_error"]
    pivot.loc[("random", "(baseline)"), :] = [f"{100 * rnd[f]:.1f}%" for f in sorted(rnd.index)]
    st.dataframe(pivot, width="stretch")
    st.caption(
        f"Error (difference with random in pp ± its standard error over {n_seeds} seeds); * beats random, "
        "! loses to random, by more than two standard errors. Balance: "
        f"{', '.join(sorted(set(t['balance'].astype(str))))}."
    )
    view = st.radio("Chart", ["difference with random", "held-out error"], horizontal=True, key="metrics.view")
    first_paint.plotly_chart(
        metric_figures.metric_curves_figure(res.curves, difference=view == "difference with random"),
        key="metrics.curves",
    )

st.subheader("Agreement between metrics")
fraction = st.select_slider(
    "Keep fraction for the kept-set overlap",
    options=[0.3, 0.5, 0.7, 0.9],
    value=0.7,
    format_func=lambda f: f"{f:.0%}",
    key="metrics.overlap_f",
)
finite = tuple(c for c in cols if np.isfinite(run.table[c].to_numpy(np.float64)).all())
if len(finite) < 2:
    st.caption("Agreement needs at least two score columns.")
else:
    sp, ov = services.metric_agreement(rd, run.key, finite, float(fraction))
    c1, c2 = st.columns(2)
    first_paint.plotly_chart(
        where=c1,
        fig=metric_figures.heatmap_figure(sp, title="Spearman rank correlation", zmin=-1, zmax=1, colorbar="rho"),
        key="metrics.spearman",
    )
    first_paint.plotly_chart(
        where=c2,
        fig=metric_figures.heatmap_figure(
            ov,
            title=f"Kept-set overlap, keep hardest {fraction:.0%} (random: {fraction:.2f})",
            zmin=0,
            zmax=1,
            colorscale="Blues",
            colorbar="share",
        ),
        key="metrics.overlap",
    )

if res is not None and len(res.stability):
    st.subheader("Stability of ssl_prototype")
    stab = res.stability.rename(
        columns={
            "spearman_vs_run": "Spearman vs the run",
            "kept_overlap_vs_run": f"kept-set overlap at {res.stability['fraction'].iloc[0]:.0%}",
        }
    )
    _table(stab.drop(columns=["fraction"]), hide_index=True)
    st.caption(
        f"The run's ssl_prototype (k={run.k}) recomputed with other k-means seeds and other k. High values: "
        "the scores are not noise of one clustering."
    )
if res is not None:
    st.caption(
        f"Computed in {res.elapsed_s:.0f} s; cached in `{res.dir}`. The estimate comes from a proxy "
        "(linear probes on frozen embeddings), not from your final network."
    )
    with st.expander("All numbers"):
        _table(pd.DataFrame(res.table), hide_index=True)
