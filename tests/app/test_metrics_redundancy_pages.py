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
    from backend.jobs import latest_job, wait_job  # the benchmark is a background job: wait, then rerun

    assert wait_job(latest_job(work_copy, f"metrics.benchmark.{load_run(work_copy).key}")).state == "succeeded"
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    res = load_benchmark(load_run(work_copy))
    assert res is not None
    names = set(res.summary["metric"])
    assert {"ssl_prototype", "supervised_prototype"} <= names
    assert len(at.get("plotly_chart")) == 3  # curves of every metric + two heat maps
    shown = at.dataframe[0].value
    assert set(shown["metric"]) == names and list(shown["rank"]) == list(range(1, len(names) + 1))
    assert at.success or at.warning  # says plainly whether any metric beats random


def _curve(at) -> dict:
    """The data the Redundancy page's curve chart was mounted with."""
    import json

    mounted = [c for c in at.get("bidi_component") if c.proto.component_name == "curation_curve_chart"]
    assert len(mounted) == 1
    return json.loads(mounted[0].proto.json)


def test_redundancy_page_curve_groups_and_export_match_curate_dedup(work_copy, monkeypatch, tmp_path):
    from backend import load_run
    from backend.cli import main
    from backend.dedup import run_index

    at = _goto(_app(work_copy, monkeypatch), "redundancy")
    assert len(at.get("plotly_chart")) == 0  # the curve is an SVG chart (curve_chart.py), no plotly.js
    assert _curve(at)["marker"] == {"x": 0.95, "text": "threshold 0.950"}
    at.slider(key="redundancy.threshold").set_value(0.9).run()
    assert not at.exception, [e.message for e in at.exception]
    run = load_run(work_copy)
    res = run_index(run).at(eps=1 - 0.9)
    removed = [m for m in at.metric if m.label == "Removed"][0].value
    assert removed == f"{res.n_removed:,} of {run.n_examples:,}"
    # the chart's marker moved, and its line says at 0.9 what the counts say
    drawn = _curve(at)
    assert drawn["marker"]["x"] == 0.9
    line = next(s for s in drawn["series"] if s["name"] == "all examples")
    assert line["n"][line["x"].index(0.9)] == res.n_removed
    if res.n_groups:  # the page of groups (one HTML block) opens with the largest group and the member it keeps
        import html

        cards = " ".join(h.proto.body for h in at.get("html"))
        top = res.groups_frame().iloc[0]
        assert f"<b>Group {int(top.group)}</b> · {int(top['size'])} members" in cards
        assert f"kept: <code>{html.escape(str(top.representative_id))}</code>" in cards
        assert cards.count('class="cs-group"') == min(res.n_groups, 6)
        # each card opens its group on the Map page, at the threshold it was found at
        assert f'group={int(top.group)}&amp;group_at=0.9000">show on the map</a>' in cards

    # the files are made on request; the download is byte-identical to curate dedup with the same threshold
    def downloads():
        return [d for d in at.get("download_button") if str(d.key).startswith("redundancy.")]

    assert not downloads()
    at.button(key="redundancy.prepare").click().run()
    assert len(downloads()) == 2
    out = tmp_path / "d.csv"
    assert main(["dedup", "--workdir", str(work_copy), "--eps", repr(1 - 0.9), "--out", str(out)]) == 0
    from backend.dedup.export import render

    assert render(res.kept_frame(run.table), ".csv") == out.read_bytes()
    if res.n_removed:  # the cost of removing them, against random removal of as many
        at.button(key="redundancy.cost_go").click().run()
        assert not at.exception, [e.message for e in at.exception]
        labels = [m.label for m in at.metric]
        assert "Without the duplicates" in labels and "Random subset, same size" in labels
    at.toggle(key="redundancy.exact").set_value(True).run()
    assert not at.exception
    at.radio(key="redundancy.by").set_value("cluster").run()
    assert not at.exception


def test_redundancy_page_finds_exact_copies_as_a_job(work_copy, monkeypatch):
    from backend import load_run
    from backend.jobs import latest_job, wait_job

    run = load_run(work_copy)
    at = _goto(_app(work_copy, monkeypatch), "redundancy")
    if not run.has_images:
        assert any("need the image files" in str(c.value) for c in at.caption)
        return
    assert not [m for m in at.metric if m.label == "Exact copies"]  # not hashed yet: a button, not a wait
    at.button(key="redundancy.copies_go").click().run()
    assert wait_job(latest_job(work_copy, f"redundancy.copies.{run.key}")).state == "succeeded"
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    from backend.dedup import near_copies

    cp = near_copies(run)
    shown = [m for m in at.metric if m.label == "Exact copies"]
    assert shown and shown[0].value == f"{cp.n_copies:,}"
    if cp.n_groups:
        assert any("Copy group" in str(md.value) for md in at.markdown)
