"""first_paint: a browser session's first run holds its Plotly charts back (an empty space of their height)
until the browser painted; a session without a browser (AppTest) draws them at once."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest

from curation_app.components import first_paint

SCRIPT = """
import plotly.graph_objects as go
import streamlit as st
from curation_app.components import first_paint

first_paint.start_run()
st.metric("Kept", 5)
c1, c2 = st.columns(2)
first_paint.plotly_chart(go.Figure(layout={"height": 310}), key="a", where=c1)
first_paint.plotly_chart(go.Figure(), key="b")
first_paint.finish_run()
"""


def test_without_a_browser_the_charts_draw_at_once():
    at = AppTest.from_string(SCRIPT).run()
    assert not at.exception
    assert len(at.get("plotly_chart")) == 2
    assert at.session_state[first_paint.READY] is True


def test_a_browser_session_draws_its_charts_after_the_first_paint(monkeypatch):
    monkeypatch.setattr(first_paint, "has_browser", lambda: True)
    at = AppTest.from_string(SCRIPT).run()
    assert not at.exception
    assert len(at.get("plotly_chart")) == 0  # held back: an empty container of the chart's height instead
    assert at.metric[0].value == "5"  # the page's numbers are there
    assert at.session_state[first_paint.DEFERRED] is True
    assert first_paint.READY not in at.session_state
    at.session_state[first_paint.READY] = True  # what the component's "painted" trigger sets
    at.run()
    assert len(at.get("plotly_chart")) == 2
    assert at.session_state[first_paint.DEFERRED] is False  # nothing held back, no signal mounted


def test_the_plotly_chunk_of_this_streamlit_is_found():
    # the component imports it ahead of the charts; a Streamlit without one only loses that head start
    name = first_paint.plotly_chunk()
    assert name is None or (name.startswith("PlotlyChart.") and name.endswith(".js"))


def test_a_first_page_without_charts_lets_later_runs_draw_theirs(monkeypatch):
    """The Map page's canvas has no Plotly chart: its first run holds nothing back, so a later run (the
    viewer radio switched to Plotly, in a fragment that never reaches finish_run) draws the chart at once."""
    monkeypatch.setattr(first_paint, "has_browser", lambda: True)
    script = """
import plotly.graph_objects as go
import streamlit as st
from curation_app.components import first_paint

first_paint.start_run()
if st.session_state.get("with_chart"):
    first_paint.plotly_chart(go.Figure(), key="a")
first_paint.finish_run()
"""
    at = AppTest.from_string(script).run()
    assert at.session_state[first_paint.READY] is True
    at.session_state["with_chart"] = True
    at.run()
    assert len(at.get("plotly_chart")) == 1
