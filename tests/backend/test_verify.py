"""curate verify on a small real run: the probe and the CNN, against the estimate that predicted them."""

from __future__ import annotations

import json

import numpy as np
import pytest

import backend
from backend import CurateError, select_subset, write_selection
from backend.scaling import estimate_scaling
from backend.verify import read_selection, verify_selection


@pytest.fixture(scope="module")
def small_demo(tmp_path_factory):
    work = tmp_path_factory.mktemp("verify")
    return backend.run_pipeline("demo", work, limit=600, map_method="pca")


def test_verify_probe_against_the_estimate(small_demo, tmp_path, capsys):
    run = small_demo
    res_est = estimate_scaling(run, fractions=[0.5, 1.0], initial_sizes=[1.0], seeds=2)
    sel = select_subset(run, keep=0.5, strategy="hard", metric="ssl_prototype")
    out = write_selection(sel, tmp_path / "kept.csv")
    pos, params, info = read_selection(run, out)
    assert len(pos) == sel.n_kept and params["strategy"] == "hard" and info["unmatched"] == 0
    res = verify_selection(run, out, model="probe", seeds=2)
    assert res.n_kept == sel.n_kept and len(res.kept_errors) == len(res.random_errors) == 2
    assert res.predicted is not None and res.predicted["keep_fraction"] == 0.5
    # the probe is the estimate's own: the prediction for the kept setting is what verify measures on it
    est = res_est.curve("hard").set_index("keep_fraction").loc[0.5, "error_mean"]
    assert abs(res.predicted["setting_error"] - est) < 1e-9
    assert all(0 < e < 0.6 for e in res.kept_errors + res.random_errors)
    assert res.held in (True, False) and "predicted" in res.sentence and "Measured" in res.sentence
    again = verify_selection(run, out, model="probe", seeds=2)
    assert again.cached and again.kept_errors == res.kept_errors
    from backend.cli import main

    assert main(["verify", "--workdir", str(run.dir), "--selection", str(out), "--seeds", "2"]) == 0
    text = capsys.readouterr().out
    assert "held-out: test split" in text and "prediction" in text


def test_verify_cnn_trains_on_the_images_and_resumes(small_demo, tmp_path):
    run = small_demo
    sel = select_subset(run, keep=0.3, strategy="random", seed=1)
    out = write_selection(sel, tmp_path / "r.json")
    res = verify_selection(run, out, model="cnn", seeds=1, epochs=2)
    assert res.model == "cnn" and len(res.kept_errors) == 1
    assert res.details["trainings"]["kept_seed0"]["epochs"] == 2
    assert all(0 <= e <= 1 for e in res.kept_errors + res.random_errors)
    assert (res.dir / "cnn_kept_seed0" / "checkpoint.pt").exists()
    saved = json.loads((res.dir / "result.json").read_text())
    assert saved["model"] == "cnn" and saved["n_kept"] == sel.n_kept


def test_verify_refuses_bad_input(small_demo, tmp_path):
    with pytest.raises(CurateError, match="does not exist"):
        verify_selection(small_demo, tmp_path / "nope.csv")
    (tmp_path / "other.txt").write_text("not/an/id\nnor/this\n")
    with pytest.raises(CurateError, match="belong to this run"):
        verify_selection(small_demo, tmp_path / "other.txt")
    sel = select_subset(small_demo, keep=0.5)
    out = write_selection(sel, tmp_path / "k.txt")
    with pytest.raises(CurateError, match="--model"):
        verify_selection(small_demo, out, model="svm")
    pos, _, _ = read_selection(small_demo, out)  # .txt of ids (array data set: no paths)
    assert np.array_equal(np.sort(pos), np.flatnonzero(small_demo.table["example_id"].isin(sel.kept["example_id"])))


def test_verify_mlp_is_paired_and_prefers_the_mlp_estimate(small_demo, tmp_path):
    from backend.verify.core import _load_wrong, paired_holdout_se

    run = small_demo
    estimate_scaling(run, fractions=[0.5, 1.0], initial_sizes=[1.0], seeds=2, probe="mlp")
    sel = select_subset(run, keep=0.5, strategy="hard", metric="ssl_prototype")
    out = write_selection(sel, tmp_path / "kept_mlp.csv")
    res = verify_selection(run, out, model="mlp", seeds=2)
    assert res.model == "mlp" and len(res.kept_errors) == len(res.random_errors) == 2
    assert res.predicted is not None and res.predicted["probe"] == "mlp"
    kept_wrong, rnd_wrong = _load_wrong(res.dir)
    assert kept_wrong.shape == rnd_wrong.shape == (2, res.holdout["size"])
    # the saved mistakes are the measured errors, and the paired noise is below the unpaired bound
    assert np.allclose(kept_wrong.mean(1), res.kept_errors) and np.allclose(rnd_wrong.mean(1), res.random_errors)
    e = float(np.mean(res.kept_errors + res.random_errors))
    unpaired = np.sqrt(2 * e * (1 - e) / res.holdout["size"])
    assert 0 < paired_holdout_se(kept_wrong, rnd_wrong) < unpaired
    assert "paired over the same held-out examples" in res.sentence and "MLP probe" in res.sentence
    cached = verify_selection(run, out, model="mlp", seeds=2)
    assert cached.cached and cached.sentence == res.sentence
