"""Figures of the Metrics and Redundancy pages: DataFrames in, plotly Figures out.  Pure, no Streamlit."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from curation_app.components.figures import BASE_LAYOUT, PALETTE, STRATEGY_COLOURS

DASH = {"hard": "solid", "easy": "dash"}


def metric_curves_figure(curves: pd.DataFrame, *, difference: bool = True, title: str = "") -> go.Figure:
    """Every metric's keep-hard (solid) and keep-easy (dashed) curve against keep fraction, one colour per
    metric, with random pruning (grey, the baseline, its spread over seeds as a band or error bars).

    ``difference``: plot error minus random's error at the same size, in percentage points (0 = random;
    below 0 = better than random), clipped to +-``clip`` so that small differences stay visible; otherwise
    the held-out error itself."""
    fig = go.Figure()
    metrics = list(dict.fromkeys(curves["metric"]))
    rnd = curves[curves["strategy"] == "random"].drop_duplicates("keep_fraction").sort_values("keep_fraction")
    base = rnd.set_index("keep_fraction")["error_mean"]
    if len(rnd):
        if difference:
            band = 100 * rnd["error_std"].to_numpy()
            x = rnd["keep_fraction"].to_numpy()
            fig.add_trace(
                go.Scatter(
                    x=np.r_[x, x[::-1]],
                    y=np.r_[band, -band[::-1]],
                    fill="toself",
                    fillcolor="rgba(127,127,127,0.2)",
                    line=dict(width=0),
                    hoverinfo="skip",
                    name="random +- 1 sd over seeds",
                )
            )
            fig.add_trace(
                go.Scatter(
                    x=x,
                    y=np.zeros(len(x)),
                    mode="lines",
                    name="random (baseline)",
                    line=dict(color=STRATEGY_COLOURS["random"], width=3),
                    hoverinfo="skip",
                )
            )
        else:
            fig.add_trace(
                go.Scatter(
                    x=rnd["keep_fraction"],
                    y=rnd["error_mean"],
                    mode="lines+markers",
                    name="random (baseline)",
                    line=dict(color=STRATEGY_COLOURS["random"], width=3),
                    error_y=dict(type="data", array=rnd["error_std"], visible=True, thickness=1, width=3),
                    hovertemplate="keep %{x:.0%}: error %{y:.2%}<extra>random</extra>",
                )
            )
    lo, hi = 0.0, 0.0
    for i, m in enumerate(metrics):
        for st in ("hard", "easy"):
            c = curves[(curves["metric"] == m) & (curves["strategy"] == st)].sort_values("keep_fraction")
            if c.empty:
                continue
            if difference:
                y = 100 * (c["error_mean"].to_numpy() - base.reindex(c["keep_fraction"]).to_numpy())
                hover = f"{m}, keep {st}<br>" + "keep %{x:.0%}: %{y:+.2f} pp vs random<extra></extra>"
                lo, hi = min(lo, float(np.nanmin(y))), max(hi, float(np.nanmax(y)))
            else:
                y = c["error_mean"].to_numpy()
                hover = f"{m}, keep {st}<br>" + "keep %{x:.0%}: error %{y:.2%}<extra></extra>"
            fig.add_trace(
                go.Scatter(
                    x=c["keep_fraction"],
                    y=y,
                    mode="lines+markers",
                    name=f"{m}: keep {st}",
                    legendgroup=m,
                    line=dict(color=PALETTE[i % len(PALETTE)], width=2, dash=DASH[st]),
                    marker=dict(symbol="circle" if st == "hard" else "diamond", size=6),
                    hovertemplate=hover,
                )
            )
    fig.update_layout(**BASE_LAYOUT)
    if difference:
        yaxis = dict(
            title="error minus random's, pp (below 0 = better than random)",
            zeroline=True,
            range=[max(lo, -3.0) - 0.2, min(hi, 3.0) + 0.2],
        )
        default = "Every metric against random at the same size (clipped to +-3 pp; hover for values)"
    else:
        yaxis = dict(title="held-out error (linear probe)", tickformat=".1%")
        default = "Held-out error vs keep fraction, every metric against random"
    fig.update_layout(
        title=title or default,
        height=520,
        xaxis=dict(title="keep fraction", tickformat=".0%"),
        yaxis=yaxis,
        legend=dict(orientation="v", x=1.01, y=1.0),
        margin=dict(l=70, r=20, t=70, b=55),
    )
    return fig


def heatmap_figure(
    matrix: pd.DataFrame,
    *,
    title: str,
    zmin: float,
    zmax: float,
    fmt: str = ".2f",
    colorscale: str = "RdBu",
    colorbar: str = "",
) -> go.Figure:
    """A square metric x metric matrix with its values written in the cells."""
    names = [str(c) for c in matrix.columns]
    z = matrix.to_numpy(float)
    text = [[format(v, fmt) if np.isfinite(v) else "" for v in row] for row in z]
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=names,
            y=names,
            zmin=zmin,
            zmax=zmax,
            colorscale=colorscale,
            text=text,
            texttemplate="%{text}",
            colorbar=dict(title=colorbar),
            hovertemplate="%{y} vs %{x}: %{z:" + fmt + "}<extra></extra>",
        )
    )
    fig.update_layout(**BASE_LAYOUT)
    fig.update_layout(
        title=title,
        height=120 + 48 * len(names),
        yaxis=dict(autorange="reversed"),
        margin=dict(l=150, r=20, t=60, b=110),
    )
    return fig
