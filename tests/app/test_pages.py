"""Every page of the app under streamlit.testing.v1.AppTest, on a small finished run.

The router (curation_app/app.py) is loaded and pages are switched with
``AppTest.switch_page`` (works with st.navigation after a first run).  Each
test asserts no exception and the numbers and widgets a user relies on.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

import backend
from backend import cli

APP = Path(__file__).resolve().parents[2] / "curation_app" / "app.py"
TIMEOUT = 120  # the first theory solve and the first load of a run take a few seconds on 2 cores


def make_app(workdir, monkeypatch, *, allowed=None, query=None) -> AppTest:
    monkeypatch.setenv("CURATE_WORKDIR", str(workdir))
    monkeypatch.setenv("CURATE_ALLOWED_DIRS", str(allowed or workdir))
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    if query:
        at.query_params.update(query)
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def goto(at: AppTest, page: str) -> AppTest:
    # the Map page's tests here read the Plotly figure (the second viewer); tests/app/test_map_canvas.py
    # covers the canvas viewer, the default
    at.session_state["s.map_viewer"] = "plotly"
    at.switch_page(f"views/{page}.py").run()
    assert not at.exception, [(e.message, e.stack_trace[-5:]) for e in at.exception]
    return at


def metric(at: AppTest, label: str) -> str:
    for m in at.metric:
        if m.label == label:
            return m.value
    raise AssertionError(f"no metric {label!r}: {[m.label for m in at.metric]}")


def texts(at: AppTest, kind: str) -> str:
    return "\n".join(str(e.value) for e in at.get(kind))


def cli_bytes(workdir, tmp_path, args, name="cli.csv") -> bytes:
    out = tmp_path / name
    assert cli.main(["select", "--workdir", str(workdir), *args, "--out", str(out)]) == 0
    return out.read_bytes()


# ---------------------------------------------------------------------------
# Data


def test_data_page_summary(app_workdir, app_run, monkeypatch):
    at = make_app(app_workdir, monkeypatch)  # the Data page is the default page
    assert metric(at, "Examples (pool)") == f"{app_run.n_examples:,}" == "400"
    assert metric(at, "Classes") == str(len(app_run.classes))
    assert metric(at, "Held out (never pruned)") == f"{app_run.summary()['holdout']:,}"
    assert metric(at, "Skipped files") == "0"
    assert metric(at, "Clusters (k)") == str(app_run.k)
    assert at.selectbox(key="w.data.run").value == app_run.dir.name
    md = texts(at, "markdown")
    assert app_run.summary()["image_size"] in md and "pixels" in md
    assert "No file was skipped" in texts(at, "caption")
    assert len(at.get("plotly_chart")) == 1  # examples per class


def test_data_page_refuses_paths_outside_allowed_dirs(app_workdir, monkeypatch, tmp_path):
    at = make_app(app_workdir, monkeypatch)
    at.radio(key="new.kind").set_value("folder").run()
    at.text_input(key="new.folder").input(str(tmp_path)).run()  # tmp_path is not allowed
    at.button(key="new.start").click().run()
    assert not at.exception
    assert "outside the folders this app may use" in texts(at, "error")


def test_data_page_backend_error_is_one_line(app_workdir, monkeypatch):
    at = make_app(app_workdir, monkeypatch)
    at.radio(key="new.kind").set_value("folder").run()
    at.text_input(key="new.folder").input(str(Path(app_workdir) / "no-such-folder")).run()
    at.button(key="new.start").click().run()
    assert not at.exception
    errors = [e.value for e in at.error]
    assert errors and all("\n" not in e and "Traceback" not in e for e in errors), errors


def test_data_page_starts_a_run_with_progress(tmp_path, monkeypatch, app_workdir):
    """A fresh workdir: the start form runs the pipeline; a second identical run is all cache hits."""
    work = tmp_path / "w"
    emb = tmp_path / "w" / "emb.npy"
    work.mkdir()
    np.save(emb, np.random.default_rng(0).normal(size=(120, 8)).astype(np.float32))
    at = make_app(work, monkeypatch)
    assert "No finished run" in texts(at, "info")
    at.radio(key="new.kind").set_value("embeddings").run()
    at.text_input(key="new.emb").input(str(emb)).run()
    at.selectbox(key="new.map").set_value("pca").run()
    at.button(key="new.start").click().run()
    from backend.jobs import latest_job, wait_job  # the run is a background job: wait for it, then rerun

    assert wait_job(latest_job(work, "data.run")).state == "succeeded"
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    assert metric(at, "Examples (pool)") == "120"
    assert metric(at, "Classes") == "unlabelled"
    assert "ready and selected" in texts(at, "success")


# ---------------------------------------------------------------------------
# Map


def test_map_page_colours_and_selection(app_workdir, app_run, monkeypatch):
    from curation_app.components import figures

    at = make_app(app_workdir, monkeypatch)
    goto(at, "map")
    charts = at.get("plotly_chart")
    assert len(charts) == 1
    fig = json.loads(charts[0].proto.spec)
    assert len(fig["data"]) == app_run.k  # one trace (and legend entry) per cluster
    assert sum(
        len(t["customdata"]["bdata"]) > 0 if isinstance(t["customdata"], dict) else len(t["customdata"])
        for t in fig["data"]
    )
    assert fig["data"][0]["type"] == "scattergl"
    assert "Nothing selected yet" in texts(at, "caption")
    for colour in at.radio(key="w.map.colour").options:
        at.radio(key="w.map.colour").set_value(colour).run()
        assert not at.exception, colour
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert [t["name"].split(" ")[0] for t in spec["data"]] == ["pruned", "kept"]
    # a selection event maps back to table positions through customdata
    import plotly.graph_objects as go

    f = go.Figure([go.Scattergl(x=[0, 1], y=[0, 1], customdata=[7, 3]), go.Scattergl(x=[2], y=[2], customdata=[5])])
    pts = [{"curve_number": 0, "point_index": 1}, {"curve_number": 1, "point_index": 0}, {"curve_number": 9}]
    assert figures.selected_positions(f, pts).tolist() == [3, 5]


# ---------------------------------------------------------------------------
# Clusters


def test_clusters_page_cards_and_click_through(app_workdir, app_run, monkeypatch):
    at = make_app(app_workdir, monkeypatch)
    goto(at, "clusters")
    open_buttons = [b for b in at.button if b.key and b.key.startswith("clusters.open.")]
    assert len(open_buttons) == min(app_run.k, 12)
    sizes = app_run.table["cluster"].value_counts()
    largest = int(sizes.index[0])
    assert open_buttons[0].key == f"clusters.open.{largest}"  # sorted by size, largest first
    at.radio(key="clusters.sort").set_value("tightness").run()
    at.toggle(key="clusters.desc").set_value(False).run()
    assert not at.exception
    tight = app_run.table.groupby("cluster")["centroid_sim"].mean().sort_values()
    first = [b for b in at.button if b.key and b.key.startswith("clusters.open.")][0]
    assert first.key == f"clusters.open.{int(tight.index[0])}"
    first.click().run()
    assert not at.exception
    c = int(tight.index[0])
    assert any(f"Cluster {c}: all {int(sizes[c]):,} members" in h.value for h in at.subheader)
    at.button(key="clusters.back").click().run()
    assert not any("all" in h.value and "members" in h.value for h in at.subheader)


# ---------------------------------------------------------------------------
# Difficulty


def test_difficulty_page_scopes(app_workdir, app_run, monkeypatch):
    at = make_app(app_workdir, monkeypatch)
    goto(at, "difficulty")
    heads = [h.value for h in at.subheader]
    assert heads == ["Easiest in all examples", "Hardest in all examples"]
    assert len(at.get("image")) == 2  # one strip each
    at.radio(key="difficulty.scope").set_value("one class").run()
    cls = at.selectbox(key="difficulty.class").value
    assert [h.value for h in at.subheader][0] == f"Easiest in class {cls}"
    at.radio(key="difficulty.scope").set_value("one cluster").run()
    at.selectbox(key="w.difficulty.metric").set_value("supervised_prototype").run()
    assert not at.exception
    assert (
        "supervised_prototype" in json.loads(at.get("plotly_chart")[0].proto.spec)["layout"]["xaxis"]["title"]["text"]
    )


# ---------------------------------------------------------------------------
# Prune


def test_prune_slider_and_count_stay_in_sync(app_workdir, monkeypatch):
    at = make_app(app_workdir, monkeypatch)
    goto(at, "prune")
    assert metric(at, "Kept") == "280 of 400"  # default keep 0.7
    at.slider(key="w.prune.keep").set_value(0.5).run()
    assert not at.exception
    assert metric(at, "Kept") == "200 of 400"
    assert at.number_input(key="w.prune.count").value == 200
    assert at.query_params.get("keep") in ("0.5", ["0.5"])  # mirrored into the URL
    at.number_input(key="w.prune.count").set_value(100).run()
    assert metric(at, "Kept") == "100 of 400"
    assert at.slider(key="w.prune.keep").value == pytest.approx(0.25)
    assert at.query_params.get("count") in ("100", ["100"])


def test_prune_strategy_balance_and_floor(app_workdir, app_run, monkeypatch):
    at = make_app(app_workdir, monkeypatch)
    goto(at, "prune")
    at.slider(key="w.prune.keep").set_value(0.1).run()
    at.number_input(key="w.prune.floor").set_value(15).run()
    # keep hard at 10% with no balance: some class keeps fewer than 15
    warn = texts(at, "warning")
    assert "keep fewer than 15" in warn
    at.radio(key="w.prune.balance").set_value("class").run()
    assert not at.exception
    assert metric(at, "Kept") == "40 of 400"
    at.radio(key="w.prune.strategy").set_value("random").run()
    assert at.selectbox(key="w.prune.metric").disabled
    assert not at.number_input(key="w.prune.seed").disabled
    assert not at.exception
    # the per-class chart shows the kept share of every class
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert spec["layout"]["title"]["text"] == "Kept per class vs the full data"
    assert [t["name"] for t in spec["data"]] == ["full data", "kept"]


def test_prune_margin_strip_and_histogram(app_workdir, monkeypatch):
    at = make_app(app_workdir, monkeypatch)
    goto(at, "prune")
    hist = json.loads(at.get("plotly_chart")[1].proto.spec)
    assert hist["layout"]["xaxis"]["title"]["text"].startswith("ssl_prototype")
    assert any("cut" in a.get("text", "") for a in hist["layout"].get("annotations", []))
    assert len(at.get("image")) >= 1  # the margin strip


def test_prune_settings_survive_page_switches(app_workdir, monkeypatch):
    at = make_app(app_workdir, monkeypatch)
    goto(at, "prune")
    at.slider(key="w.prune.keep").set_value(0.4).run()
    at.radio(key="w.prune.strategy").set_value("easy").run()
    goto(at, "export")
    assert "160 of 400" in texts(at, "markdown") and "keep easy" in texts(at, "markdown")
    goto(at, "map")
    goto(at, "prune")
    assert at.slider(key="w.prune.keep").value == pytest.approx(0.4)
    assert at.radio(key="w.prune.strategy").value == "easy"
    assert metric(at, "Kept") == "160 of 400"


def test_url_query_restores_settings(app_workdir, monkeypatch):
    at = make_app(
        app_workdir,
        monkeypatch,
        query={"keep": "0.5", "strategy": "easy", "balance": "cluster", "floor": "3", "seed": "oops"},
    )
    goto(at, "prune")
    assert metric(at, "Kept") == "200 of 400"
    assert at.radio(key="w.prune.strategy").value == "easy"
    assert at.radio(key="w.prune.balance").value == "cluster"
    assert at.number_input(key="w.prune.floor").value == 3
    assert "ignored seed='oops'" in texts(at, "warning")


def test_scaling_panel_says_what_is_missing(app_workdir, monkeypatch):
    from curation_app import services

    monkeypatch.setattr(
        services,
        "scaling_api",
        lambda: (
            None,
            None,
            "the scaling-curve estimate is not available in this installation: "
            "backend.scaling does not provide load_scaling",
        ),
    )
    at = make_app(app_workdir, monkeypatch)
    goto(at, "prune")
    assert "does not provide load_scaling" in texts(at, "warning")
    # the theory tab still draws
    titles = [json.loads(c.proto.spec)["layout"]["title"]["text"] for c in at.get("plotly_chart")]
    assert any(t.startswith("Perceptron theory") for t in titles)


def test_scaling_panel_with_an_estimate(app_workdir, app_run, monkeypatch):
    scaling = pytest.importorskip("backend.scaling")
    if not hasattr(scaling, "estimate_scaling"):
        pytest.skip("backend.scaling has no estimate_scaling yet")
    res = scaling.estimate_scaling(
        app_run, metric="ssl_prototype", seeds=2, initial_sizes=(0.5, 1.0), fractions=(0.3, 0.6, 1.0)
    )
    from curation_app import services

    monkeypatch.setattr(services, "scaling_result", lambda run_dir, key, metric: res)
    # the panel prefers a cached grid of the settings on screen (another test may have computed one in this
    # session's workdir): make it find none, so it shows the estimate above
    monkeypatch.setattr(services, "scaling_grid", lambda *args, **kwargs: None)
    at = make_app(app_workdir, monkeypatch)
    goto(at, "prune")
    titles = [json.loads(c.proto.spec)["layout"]["title"]["text"] for c in at.get("plotly_chart")]
    assert any(t.startswith("Estimated held-out error vs examples kept") for t in titles)
    spec = next(
        json.loads(c.proto.spec)
        for c in at.get("plotly_chart")
        if json.loads(c.proto.spec)["layout"]["title"]["text"].startswith("Estimated")
    )
    assert spec["layout"]["xaxis"]["type"] == "log" and spec["layout"]["yaxis"]["type"] == "log"
    names = [t["name"] for t in spec["data"]]
    assert {"keep hard", "keep easy", "random"} <= set(names)
    assert any(n.startswith("Pareto frontier") for n in names)
    assert res.recommendation["sentence"] in texts(at, "info")
    if res.recommendation.get("min_fraction"):
        at.button(key="scaling.use").click().run()
        f = float(res.recommendation["min_fraction"])
        assert metric(at, "Kept") == f"{backend.keep_count_for(400, keep=f)} of 400"
        assert at.radio(key="w.prune.strategy").value == res.recommendation["direction"]


def test_unlabelled_run(tmp_path, monkeypatch):
    work = tmp_path / "unlab"
    work.mkdir()
    emb = work / "emb.npy"
    np.save(emb, np.random.default_rng(1).normal(size=(150, 6)).astype(np.float32))
    backend.run_pipeline(str(emb), work, map_method="pca")
    at = make_app(work, monkeypatch)
    assert metric(at, "Classes") == "unlabelled"
    goto(at, "prune")
    assert "needs labels" in texts(at, "info")
    assert "class" not in at.radio(key="w.prune.balance").options
    goto(at, "map")
    assert "class" not in at.radio(key="w.map.colour").options
    goto(at, "clusters")
    goto(at, "difficulty")
    goto(at, "export")
    assert "no images" not in texts(at, "warning")  # list formats work without images
    at.radio(key="export.format").set_value("ImageFolder tree of symlinks").run()
    assert "no images" in texts(at, "warning")


# ---------------------------------------------------------------------------
# Export


def test_export_manifest_and_bytes_match_the_cli(app_workdir, app_run, monkeypatch, tmp_path):
    at = make_app(app_workdir, monkeypatch, query={"keep": "0.35", "strategy": "easy", "balance": "class"})
    goto(at, "export")
    man = json.loads(at.json[0].value)
    assert man["selection"]["keep_count"] == 140 and man["selection"]["strategy"] == "easy"
    assert man["counts"]["kept"] == 140 and man["counts"]["total"] == 400
    assert [b.label for b in at.main.get("download_button")] == ["Download kept_easy_140.csv"]
    code = at.code[0].value
    assert "--keep 0.35 --strategy easy --balance class" in code
    # what the download serves is render_selection of the same Selection the page shows
    from curation_app import services
    from curation_app.components import settings as S

    s = dict(S.DEFAULTS, keep=0.35, strategy="easy", balance="class")
    app_bytes = backend.render_selection(services.selection(str(app_run.dir), s), ".csv")
    assert app_bytes == cli_bytes(app_workdir, tmp_path, S.cli_selection_args(s, 400))


def test_export_writes_within_allowed_dirs(app_workdir, app_run, monkeypatch, tmp_path):
    at = make_app(app_workdir, monkeypatch, query={"keep": "0.5"})
    goto(at, "export")
    at.radio(key="export.format").set_value("Parquet").run()
    out = Path(app_workdir) / "sel_test" / "kept.parquet"
    path_input = [t for t in at.text_input if t.key and t.key.startswith("export.path.")][0]
    path_input.input(str(out)).run()
    at.button(key="export.write").click().run()
    assert not at.exception
    assert "Wrote" in texts(at, "success")
    assert out.read_bytes() == cli_bytes(
        app_workdir,
        tmp_path,
        ["--keep", "0.5", "--strategy", "hard", "--balance", "none", "--seed", "0", "--metric", "ssl_prototype"],
        name="cli.parquet",
    )
    assert (out.parent / "kept.parquet.manifest.json").exists()
    # again without overwrite: refused; with the checkbox: written
    at.button(key="export.write").click().run()
    assert "already exists" in texts(at, "error")
    at.checkbox(key="export.force").check().run()
    at.button(key="export.write").click().run()
    assert "Wrote" in texts(at, "success")
    # outside the allowed dirs: refused
    path_input = [t for t in at.text_input if t.key and t.key.startswith("export.path.")][0]
    path_input.input(str(tmp_path / "x.parquet")).run()
    at.button(key="export.write").click().run()
    assert "outside the folders" in texts(at, "error")
    assert not (tmp_path / "x.parquet").exists()


def test_export_imagefolder_tree(app_workdir, monkeypatch):
    at = make_app(app_workdir, monkeypatch, query={"keep": "0.1"})
    goto(at, "export")
    at.radio(key="export.format").set_value("ImageFolder tree of symlinks").run()
    out = Path(app_workdir) / "tree_test"
    [t for t in at.text_input if t.key and t.key.startswith("export.path.")][0].input(str(out)).run()
    at.button(key="export.write").click().run()
    assert not at.exception
    assert "Wrote" in texts(at, "success")
    assert sum(1 for _ in out.rglob("*.png")) + sum(1 for p in out.rglob("*") if p.is_symlink()) >= 40


# ---------------------------------------------------------------------------
# sidebar: settings file


def test_settings_file_round_trip(app_workdir, monkeypatch):
    from curation_app.components import settings as S

    at = make_app(app_workdir, monkeypatch)
    assert len(at.sidebar.get("download_button")) == 1
    values, problems = S.from_json(S.to_json(dict(S.DEFAULTS, keep=0.25, strategy="random", seed=3)))
    assert not problems and values["keep"] == 0.25 and values["strategy"] == "random" and values["seed"] == 3


def test_settings_file_upload_applies_settings(app_workdir, monkeypatch):
    from curation_app.components import settings as S

    at = make_app(app_workdir, monkeypatch)
    body = S.to_json(dict(S.DEFAULTS, keep=0.25, strategy="easy", balance="cluster", floor=4)).encode()
    at.file_uploader(key="settings.load").set_value(("curation-settings.json", body, "application/json")).run()
    assert not at.exception
    goto(at, "prune")
    assert metric(at, "Kept") == "100 of 400"
    assert at.radio(key="w.prune.strategy").value == "easy"
    assert at.radio(key="w.prune.balance").value == "cluster"
    assert at.number_input(key="w.prune.floor").value == 4
    at.file_uploader(key="settings.load").set_value(("bad.json", b"{not json", "application/json")).run()
    assert "not a settings file" in texts(at, "warning")


def test_data_page_lists_skipped_files(image_folder_copy, tmp_path, monkeypatch):
    broken = next(p for p in image_folder_copy.iterdir() if p.is_dir()) / "broken.png"
    broken.write_bytes(b"this is not a png")
    work = tmp_path / "w"
    backend.run_pipeline(str(image_folder_copy), work, map_method="pca", num_workers=0, device="cpu")
    at = make_app(work, monkeypatch)
    assert metric(at, "Skipped files") == "1"
    table = at.dataframe[-1].value
    assert list(table.columns) == ["example_id", "reason"] and "broken.png" in table.iloc[0]["example_id"]
    assert [b.label for b in at.main.get("download_button")] == ["Download skipped.csv"]


def test_map_page_samples_above_the_limit(app_workdir, app_run, monkeypatch):
    from curation_app import services
    from curation_app.components import summaries

    monkeypatch.setattr(
        services,
        "map_sample",
        lambda run_dir: summaries.stratified_sample(app_run.table["cluster"].to_numpy(), 100, seed=0),
    )
    at = make_app(app_workdir, monkeypatch)
    goto(at, "map")
    assert "Showing a sample of 100 of 400 examples" in texts(at, "info")
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert spec["layout"]["title"]["text"].startswith("2-D map of 400 examples")
