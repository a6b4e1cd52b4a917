"""Touches the Prune page makes to the shared figures (components/figures.py).  Pure, no Streamlit."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

FLOOR_MARGIN_PX = 78  # room right of the plot for "floor 1,000"


def floor_label_outside(fig: go.Figure) -> go.Figure:
    """Move the "floor N" label of a per-class bar chart off the bars.

    On vertical bars the floor is a horizontal line near zero and its label sat inside the plot, at its
    right end, over the last bar; it goes right of the plot area instead (the margin grows to fit)."""
    anns = list(fig.layout.annotations or [])
    moved = False
    for a in anns:
        if a.text and str(a.text).startswith("floor") and a.xref == "paper" and a.yref == "y":
            a.update(x=1.0, xanchor="left", xshift=4, yanchor="middle", bgcolor=None)
            moved = True
    if moved:
        fig.update_layout(annotations=anns, margin_r=max(int(fig.layout.margin.r or 0), FLOOR_MARGIN_PX))
    return fig


def clip_frontier(frontier: pd.DataFrame | None, curves: pd.DataFrame) -> pd.DataFrame | None:
    """The Pareto frontier restricted to the sizes where a plotted curve exists.

    The estimate's frontier is the best error at each size over every estimated setting and pool size;
    the chart shows a subset of them (one pool size, the settings on screen), so drawing the whole frontier
    would show a line where no plotted curve is.  Returns None when nothing is left."""
    if frontier is None or not len(frontier) or curves is None or not len(curves):
        return None
    lo, hi = float(np.nanmin(curves["n_kept"])), float(np.nanmax(curves["n_kept"]))
    fr = frontier[(frontier["n_kept"] >= lo) & (frontier["n_kept"] <= hi)]
    return fr if len(fr) else None
