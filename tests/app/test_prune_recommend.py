"""The Prune page's recommendation: its button sets exactly a setting the estimate covered."""

from __future__ import annotations

import json

import numpy as np
import pytest
from test_pages import goto, make_app, metric, texts  # the helpers of the page tests (same folder)

import backend
from curation_app.components.scaling_panel import grid_settings


@pytest.fixture(scope="module")
def app_grid(app_run):
    from backend.scaling import estimate_scaling

    settings = grid_settings(app_run, "hard", "none")
    return estimate_scaling(
        app_run,
        metric="ssl_prototype",
        seeds=2,
        initial_sizes=(0.5, 1.0),
        fractions=(0.3, 0.6, 1.0),
        settings=[list(p) for p in settings],
        tolerance=0.05,
    )


def test_recommended_button_sets_an_estimated_setting(app_workdir, app_run, app_grid, monkeypatch):
    from curation_app import services

    res = app_grid
    monkeypatch.setattr(services, "scaling_grid", lambda run_dir, key, metric, settings: res)
    at = make_app(app_workdir, monkeypatch)
    goto(at, "prune")
    rec = res.recommendation
    assert rec["sentence"] in texts(at, "info")
    assert {("hard", "class-floor"), ("ccs", "none"), ("random", "none")} <= set(res.settings)
    setting = rec["setting"]
    assert setting is not None  # a 5 pp tolerance: some keep fraction is within it
    at.button(key="scaling.use").click().run()
    assert not at.exception
    # the page now shows exactly that setting ...
    assert at.radio(key="w.prune.strategy").value == setting["strategy"]
    assert at.radio(key="w.prune.balance").value == setting["balance"]
    assert metric(at, "Kept") == f"{backend.keep_count_for(400, keep=setting['keep_fraction'])} of 400"
    # ... and it is a point of the grid the estimate trained
    c = res.curves
    hit = c[
        (c["strategy"] == setting["strategy"])
        & (c["balance"] == setting["balance"])
        & np.isclose(c["keep_fraction"], setting["keep_fraction"])
    ]
    assert len(hit) >= 1
    # the table beside the sentence has the recommended setting's row with the same error the sentence quotes
    rows = [
        r
        for r in rec["comparisons"]
        if r["strategy"] == setting["strategy"]
        and r["balance"] == setting["balance"]
        and np.isclose(r["keep_fraction"], setting["keep_fraction"])
    ]
    assert len(rows) == 1 and f"{100 * rows[0]['error']:.1f}%" in rec["sentence"]


def test_curves_are_those_of_the_setting_on_screen(app_workdir, app_grid, monkeypatch):
    from curation_app import services

    res = app_grid
    monkeypatch.setattr(services, "scaling_grid", lambda run_dir, key, metric, settings: res)
    at = make_app(app_workdir, monkeypatch)
    goto(at, "prune")
    at.radio(key="w.prune.balance").set_value("class-floor").run()
    at.radio(key="w.prune.strategy").set_value("ccs").run()
    spec = next(
        json.loads(c.proto.spec)
        for c in at.get("plotly_chart")
        if json.loads(c.proto.spec)["layout"]["title"]["text"].startswith("Estimated")
    )
    names = [t["name"] for t in spec["data"]]
    assert {"CCS (class-floor)", "keep hard (class-floor)", "keep easy (class-floor)", "random"} <= set(names)
    assert "balance class-floor" in spec["layout"]["title"]["text"]
    assert "does not include your setting" not in texts(at, "caption")
    # CCS with the same share per class is not in this grid: the page says so and offers to estimate it
    at.radio(key="w.prune.balance").set_value("class").run()
    assert "does not include your setting (CCS (class))" in texts(at, "caption")
    assert at.button(key="scaling.go").label == "Estimate again including CCS (class)"


def test_verify_button_trains_from_scratch(app_workdir, app_grid, monkeypatch):
    from curation_app import services

    monkeypatch.setattr(services, "scaling_grid", lambda run_dir, key, metric, settings: app_grid)
    at = make_app(app_workdir, monkeypatch)
    goto(at, "prune")
    at.slider(key="w.prune.keep").set_value(0.6).run()
    at.button(key="verify.go").click().run()
    assert not at.exception, [e.message for e in at.exception]
    # a background job (`curate verify`): wait for it, then the page shows its sentence
    from backend.jobs import latest_job, wait_job

    run = backend.load_run(app_workdir)
    job = latest_job(app_workdir, f"prune.verify.{run.key}")
    assert job is not None
    assert wait_job(job, timeout=600).state == "succeeded", job.log_tail()
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    out = texts(at, "success") + texts(at, "info")
    assert "Measured with a linear probe, from scratch" in out and "random subsets of the same size" in out
    assert "The estimate predicted" in out  # the app's grid has keep hard at 60%
