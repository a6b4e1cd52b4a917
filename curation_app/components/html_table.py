"""Small static tables as one HTML block (``st.html``).

Why not ``st.table``: the Redundancy page draws a similarity matrix for each of its six groups at every
threshold move, and six ``st.table`` grids of 64 styled cells cost the browser ~150 ms more per move than the
rest of the page together (benchmarks/bench_app_browser.py, same run).  One HTML string per table is
inserted as it is.
"""

from __future__ import annotations

import html

import numpy as np

_STYLE = (
    "<style>.cs-sim{border-collapse:collapse;font-size:0.78rem;font-variant-numeric:tabular-nums}"
    ".cs-sim th,.cs-sim td{padding:2px 6px;border:1px solid rgba(128,128,128,.25);white-space:nowrap}"
    ".cs-sim th{font-weight:600;text-align:left}.cs-sim td{text-align:right}</style>"
)


def similarity_table(sim: np.ndarray, names: list[str], *, low: float = 0.8) -> str:
    """The pairwise cosine similarity ``sim`` (n x n) with ``names`` on both axes, four decimals, each cell
    shaded by its similarity (``low`` and below: no shade, 1.0: the strongest)."""
    sim = np.asarray(sim, dtype=np.float64)
    if sim.shape != (len(names), len(names)):
        raise ValueError(f"a {sim.shape} matrix for {len(names)} names")
    esc = [html.escape(str(n)) for n in names]
    head = "".join(f"<th>{n}</th>" for n in esc)
    rows = []
    for i, name in enumerate(esc):
        cells = []
        for v in sim[i]:
            alpha = 0.0 if not np.isfinite(v) else float(np.clip((v - low) / (1.0 - low), 0.0, 1.0)) * 0.45
            cells.append(f'<td style="background:rgba(214,39,40,{alpha:.2f})">{v:.4f}</td>')
        rows.append(f"<tr><th>{name}</th>{''.join(cells)}</tr>")
    return f'{_STYLE}<table class="cs-sim"><tr><th></th>{head}</tr>{"".join(rows)}</table>'


def frame_table(df, *, float_format: str = "{:.3f}") -> str:
    """A small frame (a strip of rows: a few examples) as one static HTML table, floats with ``float_format``."""
    import pandas as pd

    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns)
    rows = []
    for rec in df.itertuples(index=False):
        cells = []
        for v in rec:
            if isinstance(v, (float, np.floating)):
                text, align = ("" if pd.isna(v) else float_format.format(float(v))), "right"
            elif isinstance(v, (int, np.integer)):
                text, align = f"{int(v):,}", "right"
            else:
                text, align = ("" if v is None or (isinstance(v, float) and pd.isna(v)) else str(v)), "left"
            cells.append(f'<td style="text-align:{align}">{html.escape(text)}</td>')
        rows.append(f"<tr>{''.join(cells)}</tr>")
    return f'{_STYLE}<table class="cs-sim"><tr>{head}</tr>{"".join(rows)}</table>'
