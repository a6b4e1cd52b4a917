"""A browser session's first page shows its numbers at once and its Plotly charts a moment later.

Why: Streamlit loads plotly.js (a 4.7 MB chunk) lazily, and every new tab compiles it again.  When a chart's
element arrives in the tab's first render, that render waits for the chunk, so nothing of the page (the Prune
page's kept count, the Redundancy page's counts) shows until it is compiled: 1.1 s and more on a 2-core
machine, which put the first paint of a chart page in a new tab at 2.4-3.7 s (benchmarks/bench_app_browser.py,
``--all-pages``).  With the charts held back 0.4 s the kept count showed at 1.9-2.1 s.

So, on a browser session's first script run, :func:`plotly_chart` draws an empty space of the chart's height
where each chart goes, and the router calls :func:`finish_run` after the page, which mounts an invisible
component whose JavaScript waits until the browser has painted a frame and then asks for a rerun.  That rerun
and every later one draw the charts.  While the server runs that rerun, the component imports Streamlit's
plotly chunk itself, so the chunk is compiled while the page is already on screen and the charts do not wait for
it.  A page switch keeps the session, so only a new tab pays the extra rerun.

A session with no browser behind it (Streamlit's AppTest: no ``User-Agent`` header) draws the charts at once.
"""

from __future__ import annotations

import functools
from pathlib import Path

import streamlit as st

READY = "_first_paint.ready"  # session state: this session's browser has painted a page
DEFERRED = "_first_paint.deferred"  # session state, reset per script run: a chart was held back in this run
MARKER = "data-curate-deferred-charts"  # on the page while charts wait (browser tests wait for it to go)
DEFAULT_HEIGHT = 450  # plotly's height of a figure that sets none

# Two animation frames: the first callback runs before the browser paints the frame, the second after it did.
# Then, while the server runs the rerun, the browser compiles Streamlit's own plotly chunk: imported at the URL
# Streamlit's lazy import resolves to (beside its main module), the browser keeps one module per URL, so the
# rerun's charts find it loaded instead of waiting for it.
_JS = """
export default function ({ parentElement, data, setTriggerValue }) {
  if (parentElement.__curatePainted) return;
  parentElement.__curatePainted = true;
  requestAnimationFrame(() => requestAnimationFrame(() => {
    setTriggerValue("painted", true);
    const main = document.querySelector('script[type="module"][src*="/static/js/index."]');
    if (data && data.chunk && main) {
      setTimeout(() => import(new URL("./" + data.chunk, main.src).href).catch(() => {}), 0);
    }
  }));
}
"""


@functools.lru_cache(maxsize=1)
def plotly_chunk() -> str | None:
    """The file name of Streamlit's plotly.js chunk (``PlotlyChart.<hash>.js``), None if this Streamlit has
    none (then the browser loads it when the first chart arrives, as before)."""
    js = Path(st.__file__).resolve().parent / "static" / "static" / "js"
    found = sorted(js.glob("PlotlyChart.*.js"))
    return found[0].name if len(found) == 1 else None


def has_browser() -> bool:
    """Whether a browser renders this session (AppTest sessions have no HTTP headers)."""
    try:
        return bool(st.context.headers.get("User-Agent"))
    except Exception:  # no script run context (a bare import): nothing renders
        return False


def start_run() -> None:
    """Called by the router before the page: nothing held back yet in this run."""
    st.session_state[DEFERRED] = False


def charts_ready() -> bool:
    """True when this run may draw Plotly charts; False on a browser session's first run (and remembers that a
    chart was held back, for :func:`finish_run`)."""
    if st.session_state.get(READY):
        return True
    if not has_browser():
        st.session_state[READY] = True
        return True
    st.session_state[DEFERRED] = True
    return False


def plotly_chart(fig, *, key: str, where=None, **kwargs):
    """``st.plotly_chart`` (in ``where``, a column or container, when given), or the empty space it will take
    while :func:`charts_ready` says no; returns the chart's event (None while held back)."""
    where = st if where is None else where
    if charts_ready():
        return where.plotly_chart(fig, key=key, **kwargs)
    height = getattr(getattr(fig, "layout", None), "height", None) or DEFAULT_HEIGHT
    where.container(height=int(height), border=False)
    return None


def _mark_ready() -> None:
    st.session_state[READY] = True


@functools.lru_cache(maxsize=1)  # registered once per process (services.py alone uses Streamlit's caches)
def _component():
    return st.components.v2.component(
        "curation_first_paint", html=f"<span {MARKER}></span>", js=_JS, isolate_styles=False
    )


def finish_run() -> None:
    """After the page (every full run): when a chart was held back in this run, mount the component that asks
    for the rerun which draws it, once the browser has painted the page.  A first run that held nothing back
    (a page without charts) was painted without plotly.js: later runs, a fragment's too, draw theirs at once
    (a fragment's rerun does not come back here to mount the signal)."""
    if st.session_state.get(READY):
        return
    if not st.session_state.get(DEFERRED):
        st.session_state[READY] = True
    else:
        _component()(
            key="first_paint.signal", data={"chunk": plotly_chunk()}, on_painted_change=_mark_ready, height="content"
        )
