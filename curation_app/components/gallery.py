"""The paged image gallery (a fragment: paging reruns only the gallery)."""

from __future__ import annotations

import html
import math

import numpy as np
import pandas as pd
import streamlit as st

from curation_app import services
from curation_app.components import html_table, media

# thumbnails in static HTML (strip_html): pixel art stays sharp, captions wrap under each picture
STRIP_STYLE = (
    "<style>.cs-strip{display:flex;flex-wrap:wrap;gap:10px;margin:6px 0 10px}"
    f".cs-strip figure{{margin:0;width:{services.THUMB_PX}px}}"
    f".cs-strip img{{width:{services.THUMB_PX}px;image-rendering:pixelated;display:block}}"
    ".cs-strip figcaption{font-size:0.72rem;opacity:.7;overflow-wrap:anywhere;line-height:1.2;margin-top:2px}"
    "</style>"
)


def captions(table: pd.DataFrame, positions: np.ndarray, score: str | None) -> list[str]:
    """``id · label · score`` for each position (column-wise: ``iterrows`` cost 2 ms a strip, six strips a move)."""
    pos = np.asarray(positions, dtype=np.int64)
    ids = table["example_id"].iloc[pos].to_numpy()  # take the rows first: a whole column converts in ms
    labels = table["label"].iloc[pos].to_numpy()
    values = table[score].iloc[pos].to_numpy(np.float64) if score and score in table.columns else None
    short = score.replace("_prototype", "") if score else ""
    out = []
    for i in range(len(pos)):
        parts = [str(ids[i])]
        if isinstance(labels[i], str):
            parts.append(labels[i])
        if values is not None:
            parts.append(f"{short}={values[i]:.3f}")
        out.append(" · ".join(parts))
    return out


def strip(
    run,
    positions,
    *,
    score: str | None = None,
    width: int = services.THUMB_PX,
    empty: str = "nothing to show",
    with_captions: bool = True,
) -> None:
    """One row of thumbnails with captions (no paging)."""
    positions = np.asarray(positions, dtype=np.int64)
    if len(positions) == 0:
        st.caption(empty)
        return
    if not run.has_images:  # precomputed embeddings without files: the rows instead of pictures
        cols = None if with_captions else ["example_id", "label", "centroid_sim"]
        # a static table: a page of twelve cluster cards drew 24 interactive grids (2-4 s at 1M in Chromium)
        st.html(html_table.frame_table(_rows(run, positions, score, cols)))
        return
    imgs, caps = [], []
    pngs = services.thumbnails(str(run.dir), run.key, tuple(int(p) for p in positions))
    for data, c in zip(pngs, captions(run.table, positions, score)):
        if data is not None:
            imgs.append(data)
            caps.append(c)
    if imgs:
        # PNG as they are: with "auto" Streamlit re-encodes a grey PNG as a JPEG (30 ms a page of strips)
        st.image(imgs, caption=caps if with_captions else None, width=width, output_format="PNG")
    missing = len(positions) - len(imgs)
    if missing:
        st.caption(f"{missing} image(s) could not be read")


def strip_html(run, positions, *, key: str, score: str | None = None) -> str:
    """:func:`strip` as one static HTML string (with :data:`STRIP_STYLE` once per block): a page that shows many
    strips at every slider move (the Redundancy page's groups) hands the browser one element, not one image
    list each, which cost Streamlit's frontend ~100 ms of script per move (a Chromium trace of the move).
    ``key`` names the thumbnails' slots in the media store (one slot per position in the strip)."""
    positions = np.asarray(positions, dtype=np.int64)
    if len(positions) == 0:
        return ""
    if not run.has_images:
        return html_table.frame_table(_rows(run, positions, score))
    pngs = services.thumbnails(str(run.dir), run.key, tuple(int(p) for p in positions))
    cells, missing = [], 0
    for i, (data, c) in enumerate(zip(pngs, captions(run.table, positions, score))):
        if data is None:
            missing += 1
            continue
        src = html.escape(media.url(data, f"{key}.{i}", "image/png"))
        cap = html.escape(c)
        cells.append(f'<figure><img src="{src}" alt="{cap}"><figcaption>{cap}</figcaption></figure>')
    note = f"<p><small>{missing} image(s) could not be read</small></p>" if missing else ""
    return f'<div class="cs-strip">{"".join(cells)}</div>{note}'


def _rows(run, positions, score, cols=None):
    cols = cols or ["example_id", "label", "cluster", "centroid_sim"] + (
        [score] if score and score != "centroid_sim" else []
    )
    return run.table.iloc[positions][[c for c in cols if c in run.table.columns]]


@st.fragment
def gallery(
    run, positions, *, key: str, score: str | None = None, page_size: int = 24, title: str | None = None
) -> None:
    """Paged thumbnails of ``positions`` (in the given order) with ids, labels and scores."""
    positions = np.asarray(positions, dtype=np.int64)
    n = len(positions)
    if title:
        st.markdown(f"**{title}**")
    if n == 0:
        st.caption("no examples")
        return
    pages = max(1, math.ceil(n / page_size))
    pkey = f"gallery.{key}.page"
    page = 1
    if pages > 1:
        if int(st.session_state.get(pkey, 1)) > pages:
            st.session_state[pkey] = pages
        c1, c2 = st.columns([1, 3])
        page = int(c1.number_input(f"Page (of {pages})", min_value=1, max_value=pages, step=1, key=pkey))
        c2.caption(f"{n:,} examples · showing {(page - 1) * page_size + 1:,}-{min(page * page_size, n):,}")
    else:
        st.caption(f"{n:,} example(s)")
    chunk = positions[(page - 1) * page_size : page * page_size]
    strip(run, chunk, score=score)
    with st.expander("These examples as a table"):
        st.dataframe(_rows(run, chunk, score), hide_index=True, width="stretch")
