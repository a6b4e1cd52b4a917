"""The pages' long actions as background jobs (AppTest): the Data page's run and encoder training, the Metrics
benchmark, the Prune page's verify; which run the app shows vs the workdir's current run; encoder identity in
the sidebar and on Export; the image size read from the files; errors where the input is, in the page's words.

A job is a real ``curate`` process: a test clicks, waits for the job (``backend.jobs.wait_job``), then reruns
the page, as a person would come back to it.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from backend import cli
from backend.jobs import current_run_key, latest_job, wait_job

APP = Path(__file__).resolve().parents[2] / "curation_app" / "app.py"
TIMEOUT = 120


def _app(workdir, monkeypatch, *, allowed=None) -> AppTest:
    monkeypatch.setenv("CURATE_WORKDIR", str(workdir))
    monkeypatch.setenv("CURATE_ALLOWED_DIRS", str(allowed or workdir))
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    at.run()
    _ok(at)
    return at


def _ok(at: AppTest) -> None:
    assert not at.exception, [(e.message, e.stack_trace[-6:]) for e in at.exception]


def _texts(at: AppTest, kind: str) -> str:
    return "\n".join(str(e.value) for e in at.get(kind))


def _metric(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def _finish(at: AppTest, workdir, key: str, timeout: float = 600) -> None:
    job = latest_job(workdir, key)
    assert job is not None, f"no job {key}"
    job = wait_job(job, timeout=timeout)
    assert job.state == "succeeded", job.log_tail()
    at.run()
    _ok(at)


@pytest.fixture
def emb_workdir(tmp_path) -> Path:
    work = tmp_path / "w"
    work.mkdir()
    np.save(work / "emb.npy", np.random.default_rng(0).normal(size=(120, 8)).astype(np.float32))
    return work


def _start_embeddings_run(at: AppTest, work: Path, *, k: int = 0) -> None:
    at.radio(key="new.kind").set_value("embeddings").run()
    at.text_input(key="new.emb").input(str(work / "emb.npy")).run()
    at.selectbox(key="new.map").set_value("pca").run()
    at.number_input(key="new.k").set_value(k).run()
    at.button(key="new.start").click().run()
    _ok(at)


def test_a_run_from_the_data_page_is_a_job_and_the_workdir_s_current_run_is_the_user_s_choice(emb_workdir, monkeypatch):
    work = emb_workdir
    at = _app(work, monkeypatch)
    assert "No finished run" in _texts(at, "info")
    box = at.checkbox(key="new.make_current.first")
    assert box.value and box.disabled  # a workdir without a current run always gets the first one

    _start_embeddings_run(at, work)
    assert "Running: Run on" in _texts(at, "markdown")  # the panel, with a bar and a Cancel button
    assert at.get("progress") and at.button(key=f"jobs.cancel.{latest_job(work, 'data.run').id}")
    assert at.button(key="new.start").disabled  # one run at a time from here
    _finish(at, work, "data.run")
    key1 = current_run_key(work)
    assert key1 and f"Run `{key1}` is ready and selected" in _texts(at, "success")
    assert _metric(at, "Examples (pool)") == "120" and _metric(at, "Classes") == "unlabelled"
    assert "This is the workdir's **current run**" in _texts(at, "caption")

    # a second run: off by default, so the command line keeps the run it had; the app shows the new one
    box = at.checkbox(key="new.make_current")
    assert not box.value and not box.disabled
    _start_embeddings_run(at, work, k=4)
    _finish(at, work, "data.run")
    shown = at.selectbox(key="w.data.run").value
    assert shown != key1 and current_run_key(work) == key1
    assert "is unchanged" in _texts(at, "success")
    assert f"curate info --workdir {work / 'runs' / shown}" in _texts(at, "caption")
    assert cli.main(["info", "--workdir", str(work / "runs" / shown)]) == 0  # the CLI sees it under its key
    # a fresh session opens on the workdir's current run, not on the run computed last
    fresh = _app(work, monkeypatch)
    assert fresh.selectbox(key="w.data.run").value == key1
    assert "(the workdir's current run)" in _texts(fresh, "caption")
    at.button(key="data.make_current").click().run()
    _ok(at)
    assert current_run_key(work) == shown
    assert "now the workdir's current run" in _texts(at, "success")


def test_a_job_survives_a_page_switch_and_its_panel_is_found_again(emb_workdir, monkeypatch):
    work = emb_workdir
    at = _app(work, monkeypatch)
    _start_embeddings_run(at, work, k=3)
    job = latest_job(work, "data.run")
    other = _app(work, monkeypatch)  # another session (a reload) finds the running job by its key
    assert job.refresh().finished or "Running: Run on" in _texts(other, "markdown")
    wait_job(job, timeout=600)
    at.switch_page("views/export.py").run()
    at.switch_page("views/data.py").run()
    _ok(at)
    assert "finished in" in _texts(at, "success")
    # the form kept what was typed (Streamlit forgets the widgets of a page it does not draw)
    assert at.radio(key="new.kind").value == "embeddings" and at.number_input(key="new.k").value == 3
    assert at.text_input(key="new.emb").value == str(work / "emb.npy")


def test_a_failed_job_shows_its_one_line_error_the_log_and_can_be_started_again(emb_workdir, monkeypatch):
    from backend.jobs import start_job

    work = emb_workdir
    argv = ["run", "--source", str(work / "gone"), "--workdir", str(work)]
    job = wait_job(start_job(argv, work, label="Run on gone", key="data.run"))
    assert job.state == "failed"
    at = _app(work, monkeypatch)
    err = _texts(at, "error")
    assert "**Run on gone** stopped: " in err and "gone" in err and "Traceback" not in err
    assert any("error: " in str(c.value) for c in at.code)  # the log's last lines
    at.button(key=f"jobs.restart.{job.id}").click().run()
    _ok(at)
    again = latest_job(work, "data.run")
    assert again.id != job.id and again.argv == argv
    assert wait_job(again).state == "failed"
    at.run()
    at.button(key=f"jobs.dismiss.{again.id}").click().run()
    assert "stopped" not in _texts(at, "error")


def test_a_failed_job_names_the_page_s_field_not_the_command_s_flag(emb_workdir, monkeypatch):
    work = emb_workdir  # 120 examples
    at = _app(work, monkeypatch)
    _start_embeddings_run(at, work, k=200)  # more clusters than examples: known only once the run reads the data
    job = wait_job(latest_job(work, "data.run"))
    assert job.state == "failed"
    at.run()
    _ok(at)
    err = _texts(at, "error")
    assert "stopped: 120 examples is fewer than k=200 clusters: set “k (clusters)” to 120 or less" in err, err
    assert "--k" not in err
    assert "pass --k 120 or less" in job.log_tail()  # the command line keeps its own words


def test_page_words_rewrites_only_the_flags_the_page_has_a_field_for():
    from curation_app.components.jobs import page_words

    fields = {"--k": "k (clusters)", "--force": "Overwrite", "--out": "Output file", "--map": "2-D map"}
    boxes = frozenset({"--force"})
    said = page_words("x.csv already exists: pass --force to overwrite it or choose another --out", fields, boxes)
    assert said == "x.csv already exists: tick “Overwrite” to overwrite it or choose another “Output file”"
    assert page_words("the UMAP map needs umap-learn (or use --map pca)", fields) == (
        "the UMAP map needs umap-learn (or set “2-D map” to pca)"
    )
    # a flag without a field on the page, and words that only look like flags, stay as they are
    assert page_words("pass --workdir a folder; see curate --help", fields) == (
        "pass --workdir a folder; see curate --help"
    )
    assert page_words("pass --kx 3 (not --k-means)", fields) == "pass --kx 3 (not --k-means)"


def test_input_errors_show_under_the_input_and_nothing_starts(emb_workdir, monkeypatch, tmp_path):
    work = emb_workdir
    at = _app(work, monkeypatch)
    at.radio(key="new.kind").set_value("folder").run()
    at.text_input(key="new.folder").input(str(tmp_path)).run()  # outside the allowed folders: said at once
    assert "outside the folders this app may use" in _texts(at, "error")
    at.text_input(key="new.folder").input(str(work / "no-such-folder")).run()
    assert "there is no image folder" in _texts(at, "error")
    at.text_input(key="new.folder").input(str(work / "emb.npy")).run()
    assert "is a file: give the folder" in _texts(at, "error")
    at.text_input(key="new.folder").input("").run()
    assert not at.error
    at.button(key="new.start").click().run()
    assert "Cannot start: type the image folder." in _texts(at, "error")
    at.button(key="train.start").click().run()
    assert "Cannot start: type the image folder." in _texts(at, "error")
    # numbers out of range: said under the field (the browser's own bounds would keep the old value silently)
    at.radio(key="new.kind").set_value("demo").run()
    at.number_input(key="new.k").set_value(-1).run()
    assert "k: 0 (automatic) or a number of clusters" in _texts(at, "error")
    at.button(key="new.start").click().run()
    assert "Cannot start: k 0 (automatic) or a number of clusters." in _texts(at, "error")
    at.number_input(key="train.epochs").set_value(0).run()
    at.number_input(key="train.size").set_value(4).run()
    assert "Epochs: at least 1" in _texts(at, "error") and "at least 8 pixels" in _texts(at, "error")
    at.button(key="train.start").click().run()
    assert "Cannot start: epochs at least 1." in _texts(at, "error")
    assert latest_job(work, "data.run") is None and latest_job(work, "data.train-encoder") is None
    errors = [e.value for e in at.error]
    assert all("\n" not in e and "Traceback" not in e for e in errors)


def test_image_size_is_read_from_the_files_and_counts_have_separators(base_run, image_folder, monkeypatch):
    work = base_run.dir.parent.parent
    assert base_run.config["source"]["image_size"] == "28x28 grey (all 200 checked)"  # the run reads the headers
    at = _app(work, monkeypatch, allowed=f"{work}:{image_folder}")
    md = _texts(at, "markdown")
    assert "**Image size:** 28x28 grey (all 200 checked)" in md, md
    assert "varies" not in md
    assert "pixels (resized to 32x32, PCA to 128, no weights)" in md
    assert "encoder: pixels (resized to 32x32" in _texts(at, "caption")  # the sidebar


def test_export_names_the_encoder_and_speaks_the_page_s_words(app_workdir, monkeypatch):
    at = _app(app_workdir, monkeypatch)
    at.switch_page("views/export.py").run()
    _ok(at)
    assert "Embeddings by **pixels (resized to 32x32" in _texts(at, "caption")
    at.radio(key="export.format").set_value("CSV").run()
    out = Path(app_workdir) / "sel_jobs_test" / "kept.csv"
    path_input = next(t for t in at.text_input if t.key and t.key.startswith("export.path."))
    path_input.input(str(out)).run()
    at.button(key="export.write").click().run()
    assert "Wrote" in _texts(at, "success")
    at.button(key="export.write").click().run()
    err = _texts(at, "error")
    assert 'tick "Overwrite if it exists" to overwrite it or choose another path' in err, err
    assert "--force" not in err and "--out" not in err
    # a wrong ending is said under the field, before any click, and Write then writes nothing
    path_input = next(t for t in at.text_input if t.key and t.key.startswith("export.path."))
    path_input.input(str(out.with_suffix(".json"))).run()
    assert "does not end in .csv" in _texts(at, "error")
    at.button(key="export.write").click().run()
    assert not out.with_suffix(".json").exists() and "does not end in .csv" in _texts(at, "error")
    shutil.rmtree(out.parent)


def test_the_manifest_of_an_export_and_what_it_lacks_about_the_encoder(app_workdir, app_run):
    """Issue 10 asks the selection manifest to record the encoder's identity: the page says where it is."""
    from backend import select_subset

    man = select_subset(app_run, keep=0.5).manifest()
    assert man["run"]["params"]["encoder"] == "pixels"  # the name, and the stage keys that hash the identity
    if "encoder" not in man["run"]:
        assert app_run.encoder["identity"]["encoder"] == "pixels"  # the identity is in run.json only


@pytest.mark.slow
def test_train_an_encoder_from_the_data_page_then_run_with_it(image_folder_copy, tmp_path, monkeypatch):
    work = tmp_path / "w"
    work.mkdir()
    at = _app(work, monkeypatch, allowed=str(tmp_path))
    at.radio(key="new.kind").set_value("folder").run()
    at.text_input(key="new.folder").input(str(image_folder_copy)).run()
    at.radio(key="train.method").set_value("simclr").run()
    at.selectbox(key="train.backbone").set_value("small-cnn").run()
    at.number_input(key="train.epochs").set_value(1).run()
    at.number_input(key="train.size").set_value(16).run()
    at.radio(key="train.device").set_value("cpu").run()
    at.button(key="train.start").click().run()
    _ok(at)
    assert "Running: Training a simclr encoder (small-cnn, 1 epochs)" in _texts(at, "markdown")
    _finish(at, work, "data.train-encoder")
    assert "Encoder trained: simclr / small-cnn at 16 px, 1 epochs on 200 images" in _texts(at, "success")
    assert at.selectbox(key="new.encoder").value == "ssl"
    weights = at.selectbox(key="new.ssl_weights").value
    assert weights.endswith("encoder.pt") and Path(weights).is_relative_to(work / "encoders")
    at.selectbox(key="new.map").set_value("pca").run()
    at.button(key="new.start").click().run()
    _finish(at, work, "data.run")
    side = _texts(at, "caption")
    assert "encoder: ssl (simclr, small-cnn, 1 epoch, 16 px, weights sha256 " in side, side
    cfg = json.loads(next((work / "runs").glob("*/run.json")).read_text())
    assert cfg["encoder"]["identity"]["method"] == "simclr" and cfg["encoder"]["identity"]["epochs"] == 1


@pytest.mark.slow
def test_metrics_benchmark_runs_as_a_job(app_workdir, tmp_path, monkeypatch):
    from backend import load_run
    from backend.scores.benchmark import load_benchmark

    work = tmp_path / "w"
    shutil.copytree(app_workdir, work, symlinks=True, ignore=shutil.ignore_patterns("jobs"))
    run = load_run(work)
    at = _app(work, monkeypatch)
    at.switch_page("views/metrics.py").run()
    _ok(at)
    at.button(key="metrics.go").click().run()
    _ok(at)
    assert "Running: Benchmarking the metrics" in _texts(at, "markdown")
    assert at.button(key="metrics.go").disabled
    _finish(at, work, f"metrics.benchmark.{run.key}", timeout=900)
    assert load_benchmark(load_run(work)) is not None
    assert len(at.get("plotly_chart")) == 3  # curves of every metric + two heat maps
    assert at.success or at.warning  # says plainly whether any metric beats random


@pytest.mark.slow
def test_scaling_estimate_and_verify_run_as_jobs(app_workdir, tmp_path, monkeypatch):
    """The Prune page's two long actions: the estimate (then its curves show), then the from-scratch check."""
    from backend import load_run

    work = tmp_path / "w"
    shutil.copytree(app_workdir, work, symlinks=True, ignore=shutil.ignore_patterns("jobs"))
    run = load_run(work)
    at = _app(work, monkeypatch)
    at.switch_page("views/prune.py").run()
    _ok(at)
    if any(b.key == "scaling.go" for b in at.button):  # not estimated yet in this copy
        at.button(key="scaling.go").click().run()
        _ok(at)
        assert "Running: Estimating scaling curves for ssl_prototype" in _texts(at, "markdown")
        assert at.button(key="scaling.go").disabled
        _finish(at, work, f"prune.scaling.{run.key}", timeout=900)
        job = latest_job(work, f"prune.scaling.{run.key}")
        assert "--settings" in job.argv  # exactly the settings on screen, as the page loads them
    titles = [json.loads(c.proto.spec)["layout"]["title"]["text"] for c in at.get("plotly_chart")]
    assert any(t.startswith("Estimated held-out error") for t in titles), titles
    at.number_input(key="verify.seeds").set_value(1).run()
    at.button(key="verify.go").click().run()
    _ok(at)
    _finish(at, work, f"prune.verify.{run.key}")
    out = _texts(at, "success") + _texts(at, "info")
    assert "Measured with a linear probe, from scratch" in out and "random subsets of the same size" in out
