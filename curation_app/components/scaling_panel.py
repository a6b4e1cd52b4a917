"""The scaling-curves panel of the Prune page: the estimate on the user's data and the theory.

``backend.scaling`` is optional: when it (or a name in it) is missing the
panel says plainly what is missing and the rest of the page works.
"""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd
import streamlit as st

import backend
from curation_app import services, state
from curation_app.components import figures, first_paint, prune_figures, summaries
from curation_app.components import jobs as jobs_panel

PROBE_WORDS = {"linear": "linear probe", "mlp": "MLP probe"}
THETAS = (0, 10, 20, 30, 45)
POOLS = (1, 2, 5, 10, 20, 50)


def panel(run, n_keep: int):
    """The panel in two steps: returns ``(chart, finish)``.  ``chart`` is ``(slot, draw)`` (call ``draw()``
    inside ``with slot:``) or None when there is no chart; ``finish()`` draws the rest of the panel (the
    recommendation, the tables, the check, the theory tab) in place.  The Prune page draws the chart from
    its slider's fragment (so the chart's "your setting" marker follows the slider without a page rerun)
    before it calls ``finish()`` (so the kept count reaches the browser before the panel's heavy parts)."""
    st.subheader("Estimated scaling curves")
    tab_est, tab_theory = st.tabs(["Estimated on your data", "Theory (perceptron)"])
    with tab_est:
        chart, rest = empirical(run, n_keep)

    def finish() -> None:
        if rest is not None:
            with tab_est:
                rest()
        with tab_theory:
            theory()

    return chart, finish


BASE_STRATEGIES = ("hard", "easy", "ccs")
SETTING_WORDS = {
    "hard": "keep hard",
    "easy": "keep easy",
    "random": "random",
    "ccs": "CCS",
    "dedup+hard": "dedup + keep hard",
    "dedup+easy": "dedup + keep easy",
}
EXTRA_COLOURS = {"ccs": "#9467bd", "dedup+hard": "#8c564b", "dedup+easy": "#17becf"}


def setting_words(strategy: str, balance: str) -> str:
    out = SETTING_WORDS.get(strategy, strategy)
    return out if balance == "none" else f"{out} ({balance})"


def grid_settings(run, strategy: str, balance: str) -> tuple:
    """What the app estimates: keep hard / easy / CCS without balance and with the class floor, random, and
    the setting on screen (so the curves and the recommendation always include it)."""
    balances = ("none", "class-floor") if run.has_labels else ("none",)
    pairs = [(s, b) for s in BASE_STRATEGIES for b in balances] + [("random", "none")]
    if (strategy, balance) not in pairs:
        pairs.append((strategy, balance))
    return tuple(pairs)


def _use_recommended(setting: dict) -> None:
    """Set the page to exactly an estimated setting: keep fraction, strategy, balance and metric."""
    values = {
        "keep": round(float(setting["keep_fraction"]), 4),
        "keep_mode": "fraction",
        "strategy": setting["strategy"],
        "balance": setting["balance"],
    }
    if setting.get("metric"):
        values["metric"] = setting["metric"]
    state.apply(values)


@st.cache_resource(max_entries=16, show_spinner=False)
def _load_cached(run_dir: str, run_key: str, params_json: str, mtime_ns: int):
    """One cached estimate, loaded from its parameters (``mtime_ns``: a recomputed result is a new key)."""
    import json

    load, _, _ = services.scaling_api()
    p = json.loads(params_json)
    return load(
        services.load_run(run_dir),
        metric=p["metric"],
        fractions=p.get("fractions"),
        initial_sizes=p.get("initial_sizes"),
        seeds=p.get("seeds", 3),
        probe=p["probe"],
        settings=p.get("settings"),
    )


def _any_cached(run, metric: str, probe: str, strategy: str, balance: str):
    """Any estimate already computed for this run, metric and probe (e.g. ``make demo``'s MLP estimate with its
    own keep fractions), the one with the setting on screen and the most settings first; None if there is none.

    Reads the small result.json files of the workdir's scaling cache (a few ms); loads only the chosen one."""
    import json

    found = []
    for f in (run.dir.parent.parent / "scaling").glob("*/result.json"):
        try:
            p = json.loads(f.read_text()).get("params", {})
        except (OSError, ValueError):
            continue
        if p.get("run_key") != run.key or p.get("metric") != metric or p.get("probe") != probe:
            continue
        settings = [tuple(x) for x in p.get("settings") or []]
        rank = ((strategy, balance) in settings, len(settings), f.stat().st_mtime_ns)
        keep = {k: p[k] for k in ("metric", "fractions", "initial_sizes", "seeds", "probe", "settings") if k in p}
        found.append((rank, json.dumps(keep, sort_keys=True), f.stat().st_mtime_ns))
    for _, params, mtime in sorted(found, reverse=True):
        res = _load_cached(str(run.dir), run.key, params, mtime)
        if res is not None:
            return res
    return None


def _find_result(run, metric: str, strategy: str, balance: str, probe: str = "linear"):
    """The estimate to show: the app's grid with the setting on screen, the app's grid, the default grid
    (linear probe), else any cached estimate of this metric and probe."""
    if probe != "linear":
        return _any_cached(run, metric, probe, strategy, balance)
    full = grid_settings(run, strategy, balance)
    res = services.scaling_grid(str(run.dir), run.key, metric, full)
    if res is not None:
        return res
    base = grid_settings(run, "hard", "none")
    if base != full:
        res = services.scaling_grid(str(run.dir), run.key, metric, base)
        if res is not None:
            return res
    res = services.scaling_result(str(run.dir), run.key, metric)
    return res if res is not None else _any_cached(run, metric, probe, strategy, balance)


def _view_curves(res, strategy: str, balance: str):
    """The curves of the settings on screen: this setting, the other direction under its balance, random."""
    c = res.curves
    est = set(res.settings) if hasattr(res, "settings") else set(zip(c["strategy"], c.get("balance", "none")))
    bal = balance if any(b == balance for _, b in est) else "none"
    keep = {("random", "none")}
    for st_ in ("hard", "easy"):
        if (st_, bal) in est:
            keep.add((st_, bal))
    if (strategy, balance) in est:
        keep.add((strategy, balance))
    sel = [(a, b) in keep for a, b in zip(c["strategy"], c["balance"])]
    return c[sel], bal, (strategy, balance) in est


def _comparison_frame(rec: dict, rows) -> pd.DataFrame:
    t = pd.DataFrame(rows)
    if t.empty:
        return t
    return pd.DataFrame(
        {
            "setting": [setting_words(a, b) for a, b in zip(t["strategy"], t["balance"])],
            "keep": [f"{f:.0%}" for f in t["keep_fraction"]],
            "kept": t["n_kept"],
            "held-out error": [f"{100 * e:.1f}% ± {100 * s:.1f}" for e, s in zip(t["error"], t["error_se"])],
            "vs all data (pp)": [f"{100 * d:+.1f}" for d in t["vs_full"]],
            "vs random, paired (pp)": [
                "" if a == "random" and b == "none" else f"{100 * d:+.1f} ± {100 * s:.1f}"
                for a, b, d, s in zip(t["strategy"], t["balance"], t["vs_random"], t["vs_random_se"])
            ],
            "within tolerance": t["within_tolerance"],
            "verdict": t["verdict"],
        }
    )


def empirical(run, n_keep: int):
    """The estimate's part of the panel up to the chart's slot: returns ``(chart, rest)``, ``rest()`` drawing
    what follows the chart (both None when there is no estimate to show)."""
    load, estimate, missing = services.scaling_api()
    if missing:
        st.warning(missing.capitalize() + ". The theory tab does not need it.", icon=":material/construction:")
        return None, None
    if not run.has_labels:
        st.info(
            "The empirical estimate needs labels (it measures held-out error) and this run has none. "
            "The theory tab still tells you which direction to prune.",
            icon=":material/label_off:",
        )
        return None, None
    metric, strategy, balance = state.get("metric"), state.get("strategy"), state.get("balance")
    probe = st.radio(
        "Probe the estimate trains",
        tuple(PROBE_WORDS),
        format_func=lambda p: {"linear": "linear (fast)", "mlp": "MLP (one hidden layer)"}[p],
        horizontal=True,
        key="scaling.probe",
        help="the model trained on each subset to measure held-out error; a linear probe barely benefits from "
        "any pruning on pixel embeddings, an MLP shows the gain of keeping hard examples (README: What the demo "
        "shows). `curate scaling --probe linear|mlp`",
    )
    res = _find_result(run, metric, strategy, balance, probe)
    wanted = grid_settings(run, strategy, balance)
    if res is None or (strategy, balance) not in set(getattr(res, "settings", [])):
        if res is None:
            st.caption(
                f"Not computed yet for `{metric}` with the {PROBE_WORDS[probe]}. The estimate trains small "
                f"{'linear' if probe == 'linear' else 'MLP'} probes on the frozen "
                "embeddings for a grid of keep fractions, pool sizes, seeds and settings (keep hard, keep "
                "easy and CCS, without balance and with the class floor, random, and the setting on "
                "screen; a few minutes on 2 cores). `curate scaling` computes the same thing from the "
                "command line."
            )
        else:
            st.caption(
                f"The estimate below does not include your setting ({setting_words(strategy, balance)}): "
                "its curves are those of the settings named in the legend."
            )
        label = (
            f"Estimate scaling curves for {metric}"
            if res is None
            else f"Estimate again including {setting_words(strategy, balance)}"
        )
        # a background job (`curate scaling`), so it survives a page switch and can be cancelled
        job_key = f"prune.scaling.{run.key}"
        argv = ["scaling", "--workdir", str(run.dir), "--metric", metric] + (
            ["--probe", probe] if probe != "linear" else []
        )
        argv += ["--settings", ",".join(f"{a}:{b}" for a, b in wanted)]
        job = jobs_panel.show(job_key, fields={"--probe": "Probe the estimate trains"})
        if job is not None and job.state == "succeeded" and job.argv == argv and jobs_panel.first_look(job):
            services.scaling_grid.clear()  # the cached "not computed yet" is stale now
            services.scaling_result.clear()
            st.rerun()
        busy = job is not None and job.active
        if st.button(label, icon=":material/query_stats:", key="scaling.go", disabled=busy):
            jobs_panel.start(argv, label=f"Estimating scaling curves for {metric}", key=job_key)
            st.rerun()
        if res is None:
            return None, None

    chart = (st.container(), functools.partial(draw_chart, run, res, metric, strategy, balance))

    def rest() -> None:
        qs = sorted(res.curves["initial_fraction"].unique())
        q = st.session_state.get("scaling.q", qs[-1])  # the pool size the chart shows (its slider is in the chart)
        rec = res.recommendation or {}
        if rec.get("sentence"):
            st.info(rec["sentence"], icon=":material/lightbulb:")
        beats = res.beats_powerlaw or {}
        if beats.get("beats"):
            st.success(
                "The Pareto frontier lies below the power law of random subsets by more than "
                f"{beats.get('sigmas', 2):g} standard errors (hold-out noise included) at n = "
                + ", ".join(f"{n:,}" for n in beats.get("where", []))
                + "."
            )
        setting = rec.get("setting")
        if setting:
            cols = st.columns(2 if rec.get("alternative") else 1)
            cols[0].button(
                f"Set the slider to the recommended: keep {setting['keep_fraction']:.0%}, "
                f"{setting_words(setting['strategy'], setting['balance'])}",
                icon=":material/tune:",
                key="scaling.use",
                on_click=_use_recommended,
                args=(setting,),
            )
            alt = rec.get("alternative")
            if alt:
                alt_setting = {
                    "strategy": alt["strategy"],
                    "balance": alt["balance"],
                    "keep_fraction": alt["min_fraction"],
                    "metric": setting.get("metric") or metric,
                }
                alt_words = setting_words(alt["strategy"], alt["balance"])
                cols[1].button(
                    f"Or the alternative: keep {alt['min_fraction']:.0%}, {alt_words}",
                    icon=":material/tune:",
                    key="scaling.use.alternative",
                    on_click=_use_recommended,
                    args=(alt_setting,),
                )
        if rec.get("proxy_note"):
            st.caption(rec["proxy_note"])
        rows = rec.get("comparisons") or []
        if rows and setting:
            at_f = [r for r in rows if np.isclose(r["keep_fraction"], setting["keep_fraction"])]
            st.markdown(
                f"**Every estimated setting at keep {setting['keep_fraction']:.0%}** (full pool, mean over "
                "seeds ± standard error; the recommendation rests on these numbers)"
            )
            st.dataframe(_comparison_frame(rec, at_f), hide_index=True, width="stretch", key="scaling.table")
        with st.expander("The numbers"):
            st.dataframe(_comparison_frame(rec, rows) if rows else res.table(q), hide_index=True, width="stretch")
        _verify_box(run)

    return chart, rest


def draw_chart(run, res, metric: str, strategy: str, balance: str) -> float:
    """The estimated curves at one pool size with the current keep count marked; returns the pool size."""
    curves = res.curves
    qs = sorted(curves["initial_fraction"].unique())
    sizes = {q: int(curves.loc[np.isclose(curves["initial_fraction"], q), "initial_size"].iloc[0]) for q in qs}
    if st.session_state.get("scaling.q") not in qs:
        st.session_state.pop("scaling.q", None)
    q = st.select_slider(
        "Pool size the curves start from",
        options=qs,
        value=qs[-1],
        format_func=lambda v: f"{sizes[v]:,} examples ({v:.0%})",
        key="scaling.q",
    )
    view, bal, mine = _view_curves(res, strategy, balance)
    simple = view[view["strategy"].isin(("hard", "easy", "random"))]
    extra = view[~view["strategy"].isin(("hard", "easy", "random"))]
    shown = "balance " + bal if bal != "none" else "no balance"
    probe = res.params.get("probe", "linear") if hasattr(res, "params") else "linear"
    plotted = view[np.isclose(view["initial_fraction"], q)]
    fig = figures.scaling_figure(
        simple,
        res.powerlaw,
        prune_figures.clip_frontier(res.frontier, plotted),
        n_current=state.n_keep(run),
        initial_fraction=q,
        title=f"Estimated held-out error vs examples kept ({metric}, {PROBE_WORDS.get(probe, probe)}; {shown})",
    )
    if bal != "none":
        for tr in fig.data:
            if tr.name in ("keep hard", "keep easy"):
                tr.name = f"{tr.name} ({bal})"
    _add_setting_traces(fig, extra, q)
    first_paint.plotly_chart(fig, key="scaling.fig")
    return q


def _add_setting_traces(fig, curves, q) -> None:
    """Curves of settings the shared figure does not draw (CCS, dedup) at initial fraction ``q``."""
    import plotly.graph_objects as go

    c = curves[np.isclose(curves["initial_fraction"], q)]
    for (st_, bal), s in c.groupby(["strategy", "balance"], sort=False):
        s = s.sort_values("n_kept")
        fig.add_trace(
            go.Scatter(
                x=s["n_kept"],
                y=s["error_mean"],
                mode="lines+markers",
                name=setting_words(st_, bal),
                line=dict(color=EXTRA_COLOURS.get(st_, "#bcbd22"), width=2),
                error_y=dict(type="data", array=s["error_std"], visible=True, thickness=1.2, width=3),
                hovertemplate="%{x:,} kept<br>error %{y:.2%}<extra>%{fullData.name}</extra>",
            )
        )


def _verify_box(run) -> None:
    """Train from scratch on the current selection and on random subsets of its size (``curate verify``)."""
    with st.expander("Check the current selection by training from scratch"):
        st.caption(
            "Trains the estimate's linear or MLP probe (seconds) or a small CNN on the images (minutes on a "
            "CPU) on the kept subset and on random subsets of the same size, and compares both with what the "
            "estimate predicted (paired over the same held-out examples). Cached: the same selection again "
            "is instant."
        )
        c1, c2 = st.columns([1, 1])
        models = {"probe": "linear probe", "mlp": "MLP probe", "cnn": "CNN on the images"}
        # by default, check the estimate with the probe that made it
        default = "mlp" if st.session_state.get("scaling.probe") == "mlp" else "probe"
        model = c1.radio(
            "Model",
            tuple(models),
            index=tuple(models).index(default),
            format_func=models.__getitem__,
            horizontal=True,
            key="verify.model",
        )
        seeds = int(c2.number_input("Seeds", min_value=1, max_value=10, value=3, key="verify.seeds"))
        job_key = f"prune.verify.{run.key}"
        job = jobs_panel.show(job_key, fields={"--model": "Model", "--seeds": "Seeds"})
        if job is not None and job.state == "succeeded":
            out = jobs_panel.json_output(job)
            if out and out.get("sentence"):
                (st.success if out.get("held") else st.info)(out["sentence"])
        busy = job is not None and job.active
        if st.button("Train and compare", icon=":material/science:", key="verify.go", disabled=busy):
            from backend.select import write_selection

            sel = services.selection(str(run.dir), state.current())
            out_path = run.dir.parent.parent / "verify" / "selections" / f"app-{run.key}-{sel.n_kept}.csv"
            try:
                write_selection(sel, out_path, force=True)
            except backend.CurateError as exc:
                st.error(str(exc))
                return
            argv = ["verify", "--workdir", str(run.dir), "--selection", str(out_path)]
            argv += ["--model", model, "--seeds", str(seeds), "--json"]
            jobs_panel.start(argv, label=f"Training from scratch ({model}, {seeds} seeds)", key=job_key)
            st.rerun()


@st.fragment
def theory() -> None:
    error_curve, _, missing = services.theory_api()
    if missing:
        st.warning(missing.capitalize() + ".", icon=":material/construction:")
        return
    c1, c2 = st.columns(2)
    theta = c1.select_slider(
        "θ: how imperfect the difficulty metric is (angle to the ideal one, degrees)",
        options=THETAS,
        value=0,
        key="theory.theta",
        help="0 = a perfect metric; larger angles = a noisier metric",
    )
    pool = c2.select_slider(
        "Pool size α_tot (examples per input dimension before pruning)", options=POOLS, value=10, key="theory.pool"
    )
    with st.spinner("Solving the theory curves (θ > 0 takes up to a minute the first time)..."):
        fig, t = services.theory_figure(float(theta), float(pool))
    first_paint.plotly_chart(fig, key="theory.fig")
    st.markdown(summaries.theory_reading(t["alphas"], t["curves"], services.THEORY_FS, theta))
