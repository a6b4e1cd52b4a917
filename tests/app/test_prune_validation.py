"""Bad input on the Prune page and in the URL: said where it happens, in the page's words, with a sane value
kept; the floor label and the Pareto frontier of the charts."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from test_pages import goto, make_app, metric, texts  # the helpers of the page tests (same folder)

from curation_app.components import figures, prune_figures
from curation_app.components import settings as S


def test_count_problem_names_the_range():
    assert S.count_problem(5, 400) is None
    assert S.count_problem(400, 400) is None
    assert S.count_problem(0, 400) == "0 keeps nothing: keep between 1 and 400 examples"
    assert S.count_problem(999_999, 60_000) == (
        "999,999 is more than the 60,000 examples of this run: keep between 1 and 60,000 examples"
    )
    assert "not a whole number" in S.count_problem("12.5", 400)
    assert "not a whole number" in S.count_problem("abc", 400)


def test_parse_settings_refuses_a_metric_that_is_not_a_column_name():
    values, problems = S.parse_settings({"metric": "<script>", "keep_count": "12"})
    assert "metric" not in values and values["keep_count"] == 12 and values["keep_mode"] == "count"
    assert problems == ["ignored metric='<script>': a metric is a score column name such as ssl_prototype"]
    assert S.parse_settings({"metric": "el2n"})[0]["metric"] == "el2n"


def _errors(at) -> str:
    return texts(at, "error")


def test_keep_count_out_of_range_is_said_under_the_field_and_nothing_changes(app_workdir, monkeypatch):
    at = make_app(app_workdir, monkeypatch)
    goto(at, "prune")
    assert at.number_input(key="w.prune.count").label == "Keep count (1 to 400)"  # the range is visible
    for bad, words in ((0, "0 keeps nothing"), (999_999, "999,999 is more than the 400 examples of this run")):
        at.number_input(key="w.prune.count").set_value(bad).run()
        assert not at.exception, [e.message for e in at.exception]
        assert words in _errors(at) and "keep between 1 and 400 examples; still keeping 280" in _errors(at)
        assert metric(at, "Kept") == "280 of 400"  # the old value, said so
        assert at.number_input(key="w.prune.count").value == bad  # left for the user to fix
    at.number_input(key="w.prune.count").set_value(120).run()
    assert metric(at, "Kept") == "120 of 400" and not _errors(at)
    at.number_input(key="w.prune.count").set_value(-3).run()
    assert "-3 keeps nothing" in _errors(at)
    at.slider(key="w.prune.keep").set_value(0.5).run()  # another change clears the stale error
    assert not _errors(at) and at.number_input(key="w.prune.count").value == 200


def test_a_negative_floor_is_said_under_the_field(app_workdir, monkeypatch):
    at = make_app(app_workdir, monkeypatch)
    goto(at, "prune")
    at.number_input(key="w.prune.floor").set_value(-1).run()
    assert not at.exception
    assert "-1 is not a floor" in _errors(at) and "the floor stays 10" in _errors(at)
    assert metric(at, "Kept") == "280 of 400"


@pytest.mark.parametrize(
    "query,warning,kept",
    [
        ({"count": "0"}, "ignored count='0': a keep count must be a whole number >= 1", "280 of 400"),
        ({"keep_count": "999999"}, "ignored count=999999: 999,999 is more than the 400 examples", "280 of 400"),
        ({"count": "abc", "keep": "0.5"}, "ignored count='abc'", "200 of 400"),
        ({"keep_count": "100"}, None, "100 of 400"),
        ({"metric": "no_such_metric"}, "metric 'no_such_metric' is not a score of this run", "280 of 400"),
    ],
)
def test_url_count_and_metric_are_validated(app_workdir, monkeypatch, query, warning, kept):
    at = make_app(app_workdir, monkeypatch, query=query)
    goto(at, "prune")
    assert not at.exception, [e.message for e in at.exception]
    assert metric(at, "Kept") == kept
    if warning is None:
        assert not texts(at, "warning").strip() or "ignored" not in texts(at, "warning")
    else:
        assert warning in texts(at, "warning")
    if "metric" in query:  # a sane default: the run's first score column, in the widget and the URL
        assert at.selectbox(key="w.prune.metric").value in at.selectbox(key="w.prune.metric").options
        assert at.query_params.get("metric") != ["no_such_metric"]


def test_floor_label_is_moved_off_the_bars():
    fig = figures.class_counts_figure(
        [f"c{i}" for i in range(10)], np.full(10, 6000), np.full(10, 4000), floor=10, title="t"
    )
    fig = prune_figures.floor_label_outside(fig)
    ann = [a for a in fig.layout.annotations if str(a.text).startswith("floor")][0]
    assert ann.xref == "paper" and ann.x == 1.0 and ann.xanchor == "left"  # right of the plot, not over a bar
    assert fig.layout.margin.r >= prune_figures.FLOOR_MARGIN_PX


def test_pareto_frontier_is_clipped_to_the_plotted_sizes():
    frontier = pd.DataFrame({"n_kept": [75, 150, 600, 1200, 6000], "error_mean": [0.5, 0.4, 0.3, 0.2, 0.1]})
    curves = pd.DataFrame({"n_kept": [600, 1200, 6000], "error_mean": [0.35, 0.25, 0.1]})
    assert prune_figures.clip_frontier(frontier, curves)["n_kept"].tolist() == [600, 1200, 6000]
    assert prune_figures.clip_frontier(frontier, curves.iloc[:0]) is None
    assert prune_figures.clip_frontier(None, curves) is None


def test_the_scaling_chart_follows_the_keep_count_and_its_frontier_stays_on_the_curves(
    app_workdir, app_run, monkeypatch
):
    from backend.scaling import estimate_scaling
    from curation_app import services
    from curation_app.components.scaling_panel import grid_settings

    res = estimate_scaling(
        app_run,
        metric="ssl_prototype",
        seeds=2,
        initial_sizes=(0.5, 1.0),
        fractions=(0.3, 0.6, 1.0),
        settings=[list(p) for p in grid_settings(app_run, "hard", "none")],
    )
    monkeypatch.setattr(services, "scaling_grid", lambda run_dir, key, metric, settings: res)
    at = make_app(app_workdir, monkeypatch)
    goto(at, "prune")

    def chart():
        return next(
            json.loads(c.proto.spec)
            for c in at.get("plotly_chart")
            if json.loads(c.proto.spec)["layout"]["title"]["text"].startswith("Estimated")
        )

    at.slider(key="w.prune.keep").set_value(0.35).run()
    spec = chart()
    assert any(a.get("text") == "your setting: 140 kept" for a in spec["layout"]["annotations"])
    assert "linear probe" in spec["layout"]["title"]["text"]
    plotted = [t for t in spec["data"] if t["name"] not in ("Pareto frontier (best at each size)",)]
    xs = [x for t in plotted if "power law" not in t["name"] for x in t["x"]]
    frontier = [t for t in spec["data"] if t["name"].startswith("Pareto")]
    if frontier:
        assert min(xs) <= min(frontier[0]["x"]) and max(frontier[0]["x"]) <= max(xs)
    # the probe is the user's choice; without a cached MLP estimate the page offers to compute one
    at.radio(key="scaling.probe").set_value("mlp").run()
    assert not at.exception, [e.message for e in at.exception]
    assert "with the MLP probe" in texts(at, "caption")
    assert at.button(key="scaling.go").label == "Estimate scaling curves for ssl_prototype"
