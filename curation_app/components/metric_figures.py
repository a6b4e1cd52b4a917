"""Figures of the Metrics and Redundancy pages: DataFrames in, plotly Figures out.  Pure, no Streamlit."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from curation_app.components.figures import BASE_LAYOUT, PALETTE, STRATEGY_COLOURS

DASH = {"hard": "solid", "easy": "dash"}


def metric_curves_figure(curves: pd.DataFrame, *, title: str = "") -> go.Figure:
    """Held-out error against keep fraction: every metric's keep-hard (solid) and keep-easy (dashed) curve,
    in one colour per metric, and random pruning (grey, the baseline) with its spread over seeds."""
    fig = go.Figure()
    metrics = list(dict.fromkeys(curves["metric"]))
    rnd = curves[curves["strategy"] == "random"].drop_duplicates("keep_fraction").sort_values("keep_fraction")
    if len(rnd):
        fig.add_trace(go.Scatter(
            x=rnd["keep_fraction"], y=rnd["error_mean"], mode="lines+markers", name="random (baseline)",
            line=dict(color=STRATEGY_COLOURS["random"], width=3),
            error_y=dict(type="data", array=rnd["error_std"], visible=True, thickness=1, width=3),
            hovertemplate="keep %{x:.0%}: error %{y:.2%}<extra>random</extra>"))
    for i, m in enumerate(metrics):
        for st in ("hard", "easy"):
            c = curves[(curves["metric"] == m) & (curves["strategy"] == st)].sort_values("keep_fraction")
            if c.empty:
                continue
            fig.add_trace(go.Scatter(
                x=c["keep_fraction"], y=c["error_mean"], mode="lines+markers", name=f"{m}: keep {st}",
                legendgroup=m, line=dict(color=PALETTE[i % len(PALETTE)], width=2, dash=DASH[st]),
                marker=dict(symbol="circle" if st == "hard" else "diamond", size=6),
                hovertemplate=f"{m}, keep {st}<br>" + "keep %{x:.0%}: error %{y:.2%}<extra></extra>"))
    fig.update_layout(**BASE_LAYOUT)
    fig.update_layout(title=title or "Held-out error vs keep fraction, every metric against random",
                      height=520, xaxis=dict(title="keep fraction", tickformat=".0%"),
                      yaxis=dict(title="held-out error (linear probe)", tickformat=".1%"),
                      legend=dict(orientation="v", x=1.01, y=1.0), margin=dict(l=70, r=20, t=70, b=55))
    return fig


def heatmap_figure(matrix: pd.DataFrame, *, title: str, zmin: float, zmax: float, fmt: str = ".2f",
                   colorscale: str = "RdBu", colorbar: str = "") -> go.Figure:
    """A square metric x metric matrix with its values written in the cells."""
    names = [str(c) for c in matrix.columns]
    z = matrix.to_numpy(float)
    text = [[format(v, fmt) if np.isfinite(v) else "" for v in row] for row in z]
    fig = go.Figure(go.Heatmap(z=z, x=names, y=names, zmin=zmin, zmax=zmax, colorscale=colorscale,
                               text=text, texttemplate="%{text}", colorbar=dict(title=colorbar),
                               hovertemplate="%{y} vs %{x}: %{z:" + fmt + "}<extra></extra>"))
    fig.update_layout(**BASE_LAYOUT)
    fig.update_layout(title=title, height=120 + 48 * len(names), yaxis=dict(autorange="reversed"),
                      margin=dict(l=150, r=20, t=60, b=110))
    return fig


def redundancy_curve_figure(curve: pd.DataFrame, *, threshold: float, title: str = "") -> go.Figure:
    """Share of examples removed as near-duplicates against the similarity threshold (SemDeDup's plot), one
    line per group (``all`` thick), the current threshold marked."""
    fig = go.Figure()
    groups = list(dict.fromkeys(curve["group"]))
    for i, g in enumerate(groups):
        c = curve[curve["group"] == g].sort_values("threshold")
        allg = str(g) == "all"
        fig.add_trace(go.Scatter(
            x=c["threshold"], y=c["share_removed"], mode="lines", name="all examples" if allg else str(g),
            line=dict(color="#222" if allg else PALETTE[i % len(PALETTE)], width=4 if allg else 1.5),
            customdata=c["n_removed"],
            hovertemplate="similarity > %{x:.3f}: %{y:.1%} removed (%{customdata:,})<extra>" + str(g) + "</extra>"))
    fig.add_vline(x=threshold, line=dict(color="#d62728", dash="dash", width=2))
    fig.add_annotation(x=threshold, y=1.02, yref="paper", text=f"threshold {threshold:.3f}", showarrow=False,
                       font=dict(color="#d62728"), xanchor="right")
    fig.update_layout(**BASE_LAYOUT)
    fig.update_layout(title=title or "Share removed as near-duplicates vs the similarity threshold (1 - eps)",
                      height=440, xaxis=dict(title="cosine similarity threshold 1 - eps (duplicates above it)"),
                      yaxis=dict(title="share of examples removed", tickformat=".0%", rangemode="tozero"),
                      margin=dict(l=70, r=20, t=70, b=55))
    return fig
