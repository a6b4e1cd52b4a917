"""Figure builders: arrays / DataFrames in, plotly Figures out.  Pure, no Streamlit.

Every figure has a title, axis titles and a legend (or a colour bar) so it
reads on its own in a screenshot.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative

KEPT_COLOUR = "#1f6fb4"
PRUNED_COLOUR = "#c9ccd1"
FULL_COLOUR = "#d9dde3"
CUT_COLOUR = "#d62728"
FRONTIER_COLOUR = "#ff7f0e"
STRATEGY_COLOURS = {"hard": "#d62728", "easy": "#2ca02c", "random": "#7f7f7f"}
STRATEGY_NAMES = {"hard": "keep hard", "easy": "keep easy", "random": "random"}
PALETTE = qualitative.Plotly + qualitative.D3[1::2] + qualitative.Dark24 + qualitative.Light24
MAX_LEGEND_GROUPS = 40
# No template: Streamlit applies its own theme, and a plotly template costs ~25 ms per figure.
BASE_LAYOUT = dict(margin=dict(l=60, r=20, t=60, b=55), font=dict(size=13), title=dict(x=0.0, xanchor="left"))


def log_ticks(lo: float, hi: float, *, percent: bool = False, max_ticks: int = 8) -> tuple[list, list]:
    """Readable ticks for a log axis: 1-2-5 steps (1-1.5-2-3-5-7 when the range is narrow)."""
    lo, hi = max(float(lo), 1e-12), max(float(hi), float(lo) * 1.0001)
    vals = []
    for mant in ((1, 2, 5), (1, 1.5, 2, 3, 5, 7), (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 7, 8, 9)):
        e0, e1 = int(np.floor(np.log10(lo))), int(np.ceil(np.log10(hi)))
        vals = [m * 10.0**e for e in range(e0, e1 + 1) for m in mant if lo <= m * 10.0**e <= hi]
        if len(vals) >= 4:
            break
    if len(vals) > max_ticks:
        vals = vals[:: int(np.ceil(len(vals) / max_ticks))]
    vals = [float(f"{v:.6g}") for v in vals]
    text = [(f"{v:.0%}" if v >= 0.1 else f"{v:.1%}") if percent else f"{v:,.0f}" if v >= 1 else f"{v:g}" for v in vals]
    return vals, text


def log_axis(title: str, values: np.ndarray, *, percent: bool = False, pad: float = 1.08) -> dict:
    """A log axis whose range covers the finite positive ``values`` (times ``pad`` either side)
    with readable ticks inside that range."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v) & (v > 0)]
    if not len(v):
        return dict(title=title, type="log")
    lo, hi = float(v.min()) / pad, float(v.max()) * pad
    vals, text = log_ticks(lo, hi, percent=percent)
    return dict(title=title, type="log", range=[float(np.log10(lo)), float(np.log10(hi))], tickvals=vals, ticktext=text)


def rule(
    axis: str,
    value: float,
    *,
    colour: str,
    dash: str = "dash",
    width: float = 2,
    text: str = "",
    log: bool = False,
    side: str = "right",
) -> tuple[dict, dict | None]:
    """(shape, annotation) of a full-height (axis "x") or full-width (axis "y") line at ``value``.

    Layout dicts, cheaper than ``add_vline`` (which validates subplots each time); on a log axis
    the annotation position is log10(value), as plotly wants.
    """
    pos = float(np.log10(value)) if log else float(value)
    if axis == "x":
        shape = dict(
            type="line",
            xref="x",
            yref="paper",
            x0=value,
            x1=value,
            y0=0,
            y1=1,
            line=dict(color=colour, dash=dash, width=width),
        )
        ann = (
            dict(
                x=pos,
                xref="x",
                y=1.0,
                yref="paper",
                yanchor="bottom",
                showarrow=False,
                text=text,
                xanchor="left" if side == "right" else "right",
                font=dict(color=colour),
            )
            if text
            else None
        )
    else:
        shape = dict(
            type="line",
            xref="paper",
            yref="y",
            x0=0,
            x1=1,
            y0=value,
            y1=value,
            line=dict(color=colour, dash=dash, width=width),
        )
        ann = (
            dict(
                x=1.0,
                xref="paper",
                xanchor="right",
                y=pos,
                yref="y",
                yanchor="bottom",
                showarrow=False,
                text=text,
                font=dict(color=colour),
                bgcolor="rgba(255,255,255,0.8)",
            )
            if text
            else None
        )
    return shape, ann


def _layout(fig: go.Figure, **kw) -> go.Figure:
    fig.update_layout(**{**BASE_LAYOUT, **kw})
    return fig


def marker_size(n: int) -> float:
    """Smaller points for denser maps, so clusters stay visible."""
    return 7 if n <= 2_000 else 5 if n <= 20_000 else 3 if n <= 200_000 else 2


# ---------------------------------------------------------------------------
# the map


def map_figure(
    x: np.ndarray,
    y: np.ndarray,
    positions: np.ndarray,
    *,
    colour: str,
    groups: np.ndarray | None = None,
    group_names: list[str] | None = None,
    group_colours: list[str] | None = None,
    values: np.ndarray | None = None,
    kept: np.ndarray | None = None,
    hover: np.ndarray | None = None,
    scores: np.ndarray | None = None,
    hover_template: str | None = None,
    bar_title: str | None = None,
    bar_ticks: tuple[list, list] | None = None,
    overlay: np.ndarray | None = None,
    overlay_name: str = "",
    method: str = "map",
    title: str = "",
    legend_title: str = "",
    uirevision: str | None = None,
) -> go.Figure:
    """WebGL scatter of the 2-D map.

    ``colour`` is "group" (``groups`` codes with ``group_names``: one trace per
    group, each with a legend entry, colours from ``group_colours`` or the
    palette), "value" (continuous ``values``, colour bar titled ``bar_title``
    with ``bar_ticks``) or "kept" (boolean ``kept``: pruned grey below, kept on
    top).  Every trace carries the table ``positions`` of its points as
    ``customdata`` (column 0 when ``scores``, an n x m array of extra hover
    values, is given) so a selection maps back to examples; ``hover`` (text
    per point) and ``hover_template`` make the tooltip.  ``overlay`` (boolean
    per point) is drawn again on top as crosses, named ``overlay_name``.
    ``uirevision`` keeps the user's zoom and pan when only the colours change.
    Coordinates and values go out as float32 (half the bytes of float64).
    """
    n = len(positions)
    size = marker_size(n)
    x = np.asarray(x, np.float32)
    y = np.asarray(y, np.float32)
    positions = np.asarray(positions)
    custom = positions if scores is None else np.column_stack([positions.astype(np.float32), scores]).astype(np.float32)
    fig = go.Figure()
    if hover_template is None:
        hover_template = (
            "%{text}<extra>%{fullData.name}</extra>"
            if hover is not None
            else "position %{customdata}<extra>%{fullData.name}</extra>"
        )

    def add(sel, name, **marker):
        fig.add_trace(
            go.Scattergl(
                x=x[sel],
                y=y[sel],
                mode="markers",
                name=name,
                customdata=custom[sel],
                text=None if hover is None else hover[sel],
                hovertemplate=hover_template,
                marker=dict(size=size, line=dict(width=0), **marker),
            )
        )

    if colour == "group":
        assert groups is not None and group_names is not None
        if len(group_names) <= MAX_LEGEND_GROUPS:
            for g, name in enumerate(group_names):
                sel = groups == g
                if sel.any():
                    col = group_colours[g] if group_colours else PALETTE[g % len(PALETTE)]
                    add(sel, str(name), color=col, opacity=0.8)
        else:  # too many for a legend: one trace, the palette as a stepped colour scale over the codes
            # (numbers, 4 bytes a point, instead of a "#rrggbb" string a point: 100k strings cost seconds)
            k = len(PALETTE)
            scale = [[i / (k - 1), PALETTE[i]] for i in range(k)]
            add(
                np.ones(n, bool),
                f"{len(group_names)} {legend_title or 'groups'}",
                color=(np.asarray(groups) % k).astype(np.float32),
                colorscale=scale,
                cmin=0,
                cmax=k - 1,
                opacity=0.8,
            )
    elif colour == "value":
        assert values is not None
        bar = dict(title=dict(text=bar_title or (legend_title or "score") + "<br>(higher = harder)"), thickness=14)
        if bar_ticks is not None:
            bar.update(tickvals=bar_ticks[0], ticktext=bar_ticks[1])
        add(
            np.ones(n, bool),
            legend_title or "score",
            color=np.asarray(values, np.float32),
            colorscale="Viridis",
            opacity=0.85,
            colorbar=bar,
        )
    elif colour == "kept":
        assert kept is not None
        add(~kept, f"pruned ({int((~kept).sum()):,})", color=PRUNED_COLOUR, opacity=0.6)
        add(kept, f"kept ({int(kept.sum()):,})", color=KEPT_COLOUR, opacity=0.85)
    else:
        raise ValueError(f"unknown colour mode {colour!r}")
    legend = dict(title=dict(text=legend_title), itemsizing="constant")
    if overlay is not None and overlay.any():
        add(np.asarray(overlay, bool), overlay_name or "marked", color=CUT_COLOUR, symbol="x", opacity=0.9)
        fig.data[-1].marker.size = size + 3
        if colour == "value":  # the colour bar explains the points: the legend names only the marked ones,
            fig.data[0].showlegend = False  # above the plot, clear of the colour bar
            legend = dict(orientation="h", x=0.0, y=1.0, xanchor="left", yanchor="bottom", itemsizing="constant")
    _layout(
        fig,
        title=title,
        height=620,
        dragmode="select",
        hovermode="closest",
        uirevision=uirevision,
        legend=legend,
        xaxis=dict(title=f"{method} 1", zeroline=False),
        yaxis=dict(title=f"{method} 2", zeroline=False),
    )
    return fig


def selected_positions(fig: go.Figure, points) -> np.ndarray:
    """Table positions of the points of a plotly selection event (``selection.points``) on a
    :func:`map_figure`: each point names its trace and index; the trace's customdata holds positions
    (its first column when the trace carries hover scores too)."""
    out = []
    for p in points or []:
        cn, pi = p.get("curve_number"), p.get("point_index")
        if cn is None or pi is None or not (0 <= cn < len(fig.data)):
            continue
        cd = fig.data[cn].customdata
        if cd is not None and 0 <= pi < len(cd):
            v = cd[pi]
            out.append(int(v[0] if np.ndim(v) else v))
    return np.unique(np.asarray(out, dtype=np.int64))


# ---------------------------------------------------------------------------
# counts


def class_counts_figure(
    names: list[str],
    total: np.ndarray,
    kept: np.ndarray | None = None,
    *,
    title: str,
    what: str = "class",
    floor: int | None = None,
) -> go.Figure:
    """Bars of examples per class (cluster): the full data in light grey, the kept part over it."""
    names = [str(n) for n in names]
    horizontal = len(names) > 12
    fig = go.Figure()

    def bar(vals, name, colour, text=None):
        kw = dict(y=names, x=vals, orientation="h") if horizontal else dict(x=names, y=vals)
        fig.add_trace(go.Bar(name=name, marker_color=colour, text=text, textposition="outside", cliponaxis=False, **kw))

    if kept is None:
        bar(total, "examples", KEPT_COLOUR, [f"{int(t):,}" for t in total])
    else:
        bar(total, "full data", FULL_COLOUR)
        share = np.divide(kept, np.maximum(total, 1))
        bar(kept, "kept", KEPT_COLOUR, [f"{s:.0%}" for s in share] if len(names) <= 40 else None)
        fig.data[-1].update(
            textposition="inside",
            insidetextanchor="end",
            textangle=0,
            textfont=dict(color="white", size=11),
            constraintext="none",
            customdata=np.stack([total, share], axis=-1),
            hovertemplate="%{"
            + ("y" if horizontal else "x")
            + "}: %{"
            + ("x" if horizontal else "y")
            + ":,} of %{customdata[0]:,} kept (%{customdata[1]:.0%})<extra></extra>",
        )
    shapes, anns = [], []
    if floor:
        sh, an = rule(
            "x" if horizontal else "y", floor, colour=CUT_COLOUR, dash="dot", width=1.5, text=f"floor {floor}"
        )
        shapes.append(sh)
        anns.append(an)
    count_axis = dict(title="examples")
    cat_axis = dict(title=what, type="category")
    _layout(
        fig,
        title=title,
        barmode="overlay",
        bargap=0.25,
        shapes=shapes,
        annotations=anns,
        height=max(360, 24 * len(names) + 140) if horizontal else 420,
        legend=dict(orientation="h", yanchor="bottom", y=1.0, xanchor="right", x=1.0),
        xaxis=count_axis if horizontal else cat_axis,
        yaxis=cat_axis if horizontal else count_axis,
    )
    if horizontal:
        fig.update_yaxes(autorange="reversed")
    return fig


def score_histogram(
    edges: np.ndarray,
    kept: np.ndarray,
    pruned: np.ndarray,
    *,
    metric: str,
    cut: float | None = None,
    strategy: str = "hard",
    title: str = "",
) -> go.Figure:
    """Stacked histogram of a score, kept and pruned parts, with the cut drawn when there is one."""
    centres = 0.5 * (edges[1:] + edges[:-1])
    width = float(edges[1] - edges[0])
    fig = go.Figure()
    fig.add_trace(
        go.Bar(
            x=centres,
            y=kept,
            width=width,
            name=f"kept ({int(kept.sum()):,})",
            marker_color=KEPT_COLOUR,
            marker_line_width=0,
        )
    )
    fig.add_trace(
        go.Bar(
            x=centres,
            y=pruned,
            width=width,
            name=f"pruned ({int(pruned.sum()):,})",
            marker_color=PRUNED_COLOUR,
            marker_line_width=0,
        )
    )
    shapes, anns = [], []
    if cut is not None:
        sh, an = rule(
            "x",
            cut,
            colour=CUT_COLOUR,
            text=f"cut {cut:.3f} ({'keep →' if strategy == 'hard' else '← keep'})",
            side="right" if strategy == "hard" else "left",
        )
        shapes.append(sh)
        anns.append(an)
    _layout(
        fig,
        title=title or f"Distribution of {metric}",
        barmode="stack",
        bargap=0,
        height=400,
        shapes=shapes,
        annotations=anns,
        legend=dict(orientation="h", yanchor="top", y=-0.2, xanchor="left", x=0.0),
        margin=dict(l=60, r=20, t=70, b=40),
        xaxis=dict(title=f"{metric} (higher = harder)"),
        yaxis=dict(title="examples"),
    )
    return fig


# ---------------------------------------------------------------------------
# scaling


def scaling_figure(
    curves: pd.DataFrame,
    powerlaw: dict | None,
    frontier: pd.DataFrame | None,
    *,
    n_current: int | None = None,
    initial_fraction: float | None = None,
    title: str = "",
) -> go.Figure:
    """Estimated held-out error against examples kept (log-log): one line per strategy with its
    spread over seeds, the power law fitted to random pruning, the Pareto frontier, and the
    current setting."""
    c = curves
    q = c["initial_fraction"].max() if initial_fraction is None else initial_fraction
    c = c[np.isclose(c["initial_fraction"], q)]
    fig = go.Figure()
    for strategy in ("hard", "easy", "random"):
        s = c[c["strategy"] == strategy].sort_values("n_kept")
        if s.empty:
            continue
        fig.add_trace(
            go.Scatter(
                x=s["n_kept"],
                y=s["error_mean"],
                mode="lines+markers",
                name=STRATEGY_NAMES[strategy],
                line=dict(color=STRATEGY_COLOURS[strategy], width=2),
                error_y=dict(type="data", array=s["error_std"], visible=True, thickness=1.2, width=3),
                customdata=np.stack([s["keep_fraction"], s["n_seeds"]], axis=-1),
                hovertemplate="keep %{customdata[0]:.0%}: %{x:,} kept<br>error %{y:.2%} ± %{error_y.array:.2%}"
                "<br>%{customdata[1]} seeds<extra>%{fullData.name}</extra>",
            )
        )
    if powerlaw and powerlaw.get("ok") and powerlaw.get("a") is not None:
        lo = float(powerlaw.get("n_min") or c["n_kept"].min())
        hi = float(powerlaw.get("n_max") or c["n_kept"].max())
        n = np.geomspace(max(lo, 1.0), max(hi, lo + 1), 60)
        a, nu, cc = float(powerlaw["a"]), float(powerlaw["nu"]), float(powerlaw.get("c") or 0.0)
        fig.add_trace(
            go.Scatter(
                x=n,
                y=a * n ** (-nu) + cc,
                mode="lines",
                name=f"power law fit to random (ν = {nu:.2f})",
                line=dict(color="#444", dash="dash", width=1.5),
                hovertemplate="%{x:,.0f} kept: %{y:.2%}<extra>power law</extra>",
            )
        )
    if frontier is not None and len(frontier):
        fr = frontier.sort_values("n_kept")
        fig.add_trace(
            go.Scatter(
                x=fr["n_kept"],
                y=fr["error_mean"],
                mode="lines",
                name="Pareto frontier (best at each size)",
                line=dict(color=FRONTIER_COLOUR, width=4),
                opacity=0.6,
                line_shape="hv",
                hovertemplate="%{x:,} kept: %{y:.2%}<extra>frontier</extra>",
            )
        )
    shapes, anns = [], []
    if n_current:
        sh, an = rule(
            "x",
            n_current,
            colour=KEPT_COLOUR,
            dash="dot",
            text=f"your setting: {n_current:,} kept",
            log=True,
            side="left",
        )
        shapes.append(sh)
        anns.append(an)
    xs = np.concatenate(
        [np.asarray(tr.x, dtype=float) for tr in fig.data if tr.x is not None]
        + ([np.array([n_current], float)] if n_current else [])
    )
    ys = np.concatenate([np.asarray(tr.y, dtype=float) for tr in fig.data if tr.y is not None])
    ys = ys[np.isfinite(ys) & (ys > 0)]
    xaxis = log_axis("examples kept (log scale)", xs)
    yaxis = log_axis("held-out error (log scale)", ys, percent=True)
    _layout(
        fig,
        title=title or "Estimated held-out error vs examples kept",
        height=500,
        shapes=shapes,
        annotations=anns,
        legend=dict(orientation="h", yanchor="top", y=-0.18, xanchor="left", x=0.0),
        margin=dict(l=70, r=20, t=80, b=60),
        xaxis=xaxis,
        yaxis=yaxis,
    )
    return fig


def theory_figure(
    alphas: np.ndarray,
    curves: dict,
    fs: tuple,
    random: np.ndarray,
    frontier: tuple | None,
    *,
    theta_deg: float,
    pool_alpha: float,
) -> go.Figure:
    """Perceptron theory: error against alpha_prune for several keep fractions f, keep hard
    (solid) and keep easy (dashed), the random-pruning reference and the Pareto frontier."""
    fig = go.Figure()
    for i, f in enumerate(fs):
        colour = qualitative.Set1[i % len(qualitative.Set1)]
        for strategy, dash in (("hard", "solid"), ("easy", "dash")):
            fig.add_trace(
                go.Scatter(
                    x=alphas,
                    y=curves[(strategy, f)],
                    mode="lines",
                    name=f"f = {f:g}, {STRATEGY_NAMES[strategy]}",
                    legendgroup=f"f{f}",
                    line=dict(color=colour, dash=dash, width=2),
                    hovertemplate=f"f = {f:g}, {STRATEGY_NAMES[strategy]}<br>α_prune %{{x:.2g}}: error %{{y:.3f}}"
                    "<extra></extra>",
                )
            )
    fig.add_trace(
        go.Scatter(
            x=alphas,
            y=random,
            mode="lines",
            name="random pruning (f = 1 curve)",
            line=dict(color="black", dash="dot", width=2),
            hovertemplate="random: α %{x:.2g}, error %{y:.3f}<extra></extra>",
        )
    )
    if frontier is not None:
        fa, fe = frontier
        fig.add_trace(
            go.Scatter(
                x=fa,
                y=fe,
                mode="lines",
                name=f"Pareto frontier (pool α ≤ {pool_alpha:g})",
                line=dict(color=FRONTIER_COLOUR, width=5),
                opacity=0.5,
                hovertemplate="frontier: α %{x:.2g}, error %{y:.3f}<extra></extra>",
            )
        )
    ys = np.concatenate([np.asarray(tr.y, dtype=float) for tr in fig.data])
    _layout(
        fig,
        title=f"Perceptron theory: test error vs examples kept per dimension (θ = {theta_deg:g}°)",
        height=500,
        legend=dict(x=1.02, xanchor="left", y=1.0, font=dict(size=11)),
        margin=dict(l=70, r=10, t=60, b=55),
        xaxis=log_axis("α_prune = examples kept / input dimension (log scale)", np.asarray(alphas, float), pad=1.0),
        yaxis=log_axis("test error (log scale)", ys, percent=True),
    )
    return fig


def cluster_sizes_figure(summary: pd.DataFrame, kept: np.ndarray | None, *, title: str) -> go.Figure:
    """Cluster sizes (sorted largest first) with the kept part."""
    s = summary.sort_values("size", ascending=False)
    names = [str(c) for c in s["cluster"]]
    total = s["size"].to_numpy()
    k = None if kept is None else kept[s.index.to_numpy()]
    return class_counts_figure(names, total, k, title=title, what="cluster")
