"""The Metrics page (benchmark-metrics in the app) under AppTest, on a private copy of the small app run."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

APP = Path(__file__).resolve().parents[2] / "curation_app" / "app.py"
TIMEOUT = 180


@pytest.fixture
def work_copy(app_workdir, tmp_path):
    dest = tmp_path / "work"
    shutil.copytree(app_workdir, dest, ignore=shutil.ignore_patterns("scaling", "metric_benchmark", "dedup"))
    return dest


def _app(workdir, monkeypatch) -> AppTest:
    monkeypatch.setenv("CURATE_WORKDIR", str(workdir))
    monkeypatch.setenv("CURATE_ALLOWED_DIRS", str(workdir))
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def _goto(at: AppTest, page: str) -> AppTest:
    at.switch_page(f"views/{page}.py").run()
    assert not at.exception, [(e.message, e.stack_trace[-5:]) for e in at.exception]
    return at


def test_metrics_page_runs_the_benchmark_and_shows_it(work_copy, monkeypatch):
    from backend import load_run
    from backend.scores.benchmark import load_benchmark

    at = _goto(_app(work_copy, monkeypatch), "metrics")
    assert any("Not computed yet" in str(c.value) for c in at.caption)
    assert at.button(key="metrics.cost") and at.button(key="metrics.go")
    # the agreement heat maps need no training: they are there before the benchmark
    assert len(at.get("plotly_chart")) == 2
    at.button(key="metrics.cost").click().run()
    assert not at.exception
    assert len(at.dataframe) >= 1  # the measured cost table
    at.button(key="metrics.go").click().run()
    assert not at.exception, [e.message for e in at.exception]
    res = load_benchmark(load_run(work_copy))
    assert res is not None
    names = set(res.summary["metric"])
    assert {"ssl_prototype", "supervised_prototype"} <= names
    assert len(at.get("plotly_chart")) == 3  # curves of every metric + two heat maps
    shown = at.dataframe[0].value
    assert set(shown["metric"]) == names and list(shown["rank"]) == list(range(1, len(names) + 1))
    assert at.success or at.warning  # says plainly whether any metric beats random
