"""Imported score files (both orientations, three keys, unmatched and missing rows) and benchmark-metrics."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pandas as pd
import pytest

from backend import CurateError, Ranking, load_run, select_subset
from backend.scores.benchmark import benchmark_metrics, compare_with_random, summarise
from backend.scores.importing import import_scores
from backend.scores.table import add_score_columns, score_info


@pytest.fixture
def run_copy(base_run, tmp_path):
    """A private copy of the shared base run (its workdir's run folder; embeddings stay where they are)."""
    dest = tmp_path / "work" / "runs" / base_run.dir.name
    shutil.copytree(base_run.dir, dest)
    return load_run(dest)


def _scores_file(run, tmp_path, name="scores.csv", *, extra=0, drop=0, key="example_id"):
    t = run.table
    rng = np.random.default_rng(3)
    vals = rng.normal(size=len(t))
    ids = t["example_id"].astype(str).tolist()
    if key == "filename":
        ids = [os.path.basename(p) for p in t["path"]]
    df = pd.DataFrame({key: ids, "memo": vals})
    if drop:
        df = df.iloc[drop:]
    if extra:
        df = pd.concat(
            [df, pd.DataFrame({key: [f"nowhere/{i}.png" for i in range(extra)], "memo": np.arange(extra, dtype=float)})]
        )
    path = tmp_path / name
    df.to_parquet(path) if name.endswith(".parquet") else df.to_csv(path, index=False)
    return path, vals


def test_import_round_trip_harder_and_keep(run_copy, tmp_path):
    from backend.store import verify_files

    path, vals = _scores_file(run_copy, tmp_path, extra=3)
    rep = import_scores(run_copy, path, column="memo", higher="harder")
    assert rep.matched == run_copy.n_examples and rep.unmatched_rows == 3 and rep.missing == 0
    assert any("3 of" in line and "match no example" in line for line in rep.lines())
    run = load_run(run_copy.dir)
    np.testing.assert_allclose(run.table["memo"], vals)
    assert "memo" in run.score_columns
    assert score_info(run)["memo"]["kind"] == "imported"
    # the run folder is still a valid finished stage (its files were re-recorded)
    assert (
        verify_files(
            run.dir, run.config and __import__("json").loads((run.dir / "meta.json").read_text()).get("files", {})
        )
        is None
    )
    sel = select_subset(run, keep=0.5, strategy="hard", metric="memo")
    assert sel.kept["memo"].min() >= np.median(vals) - 1e-9

    rep2 = import_scores(run, path, column="memo", higher="keep", name="memo_keep", key="example_id")
    run = load_run(run.dir)
    np.testing.assert_allclose(run.table["memo_keep"], -vals)
    assert rep2.stored_range == pytest.approx((-vals.max(), -vals.min()))
    kept = select_subset(run, keep=0.25, strategy="hard", metric="memo_keep").kept
    # keep-hard on "higher = keep" scores keeps the examples the file ranked LOWEST
    assert kept["memo"].max() <= np.quantile(vals, 0.25) + 1e-9


def test_import_by_filename_and_parquet(run_copy, tmp_path):
    path, vals = _scores_file(run_copy, tmp_path, name="s.parquet", key="filename")
    rep = import_scores(run_copy, path, column="memo", key="filename", name="by_name")
    assert rep.matched == run_copy.n_examples and rep.ambiguous == 0
    np.testing.assert_allclose(load_run(run_copy.dir).table["by_name"], vals)


def test_import_by_path_relative_to_the_file(run_copy, tmp_path):
    t = run_copy.table
    vals = np.linspace(0, 1, len(t))
    folder = tmp_path / "scores_dir"
    folder.mkdir()
    rel = [os.path.relpath(p, folder) for p in t["path"]]  # relative paths resolve against the file's folder
    pd.DataFrame({"path": rel, "s": vals}).to_csv(folder / "by_path.csv", index=False)
    rep = import_scores(run_copy, folder / "by_path.csv", column="s", key="path")
    assert rep.matched == len(t)
    np.testing.assert_allclose(load_run(run_copy.dir).table["s"], vals)


def test_missing_rows_and_bad_input(run_copy, tmp_path):
    path, vals = _scores_file(run_copy, tmp_path, drop=10)
    with pytest.raises(CurateError, match="10 of the run's .* examples have no score"):
        import_scores(run_copy, path, column="memo")
    rep = import_scores(run_copy, path, column="memo", allow_missing=True)
    assert rep.missing == 10
    run = load_run(run_copy.dir)
    assert run.table["memo"].isna().sum() == 10
    for strategy in ("hard", "easy"):  # unscored examples are kept last by either strategy
        rk = Ranking(run.table, strategy=strategy, metric="memo")
        assert run.table["memo"].isna().to_numpy()[rk.order[-10:]].all()
    with pytest.raises(CurateError, match="--force"):
        import_scores(run, path, column="memo", allow_missing=True)
    with pytest.raises(CurateError, match="no column 'nope'"):
        import_scores(run, path, column="nope")
    with pytest.raises(CurateError, match="built-in metric"):
        import_scores(run, path, column="memo", name="ssl_prototype")
    with pytest.raises(CurateError, match="run's own columns"):
        import_scores(run, path, column="memo", name="label")
    with pytest.raises(CurateError, match="does not exist"):
        import_scores(run, tmp_path / "missing.csv", column="memo")
    dup = tmp_path / "dup.csv"
    pd.DataFrame({"example_id": ["a", "a"], "memo": [1, 2]}).to_csv(dup, index=False)
    with pytest.raises(CurateError, match="more than once"):
        import_scores(run, dup, column="memo", name="x")
    nomatch = tmp_path / "nomatch.csv"
    pd.DataFrame({"example_id": ["a", "b"], "memo": [1, 2]}).to_csv(nomatch, index=False)
    with pytest.raises(CurateError, match="no row of nomatch.csv matches"):
        import_scores(run, nomatch, column="memo", name="y")
    with pytest.raises(CurateError, match="values but the run has"):
        add_score_columns(run, {"z": np.zeros(3)})


def test_import_cli(run_copy, tmp_path, capsys):
    from backend.cli import main

    path, _ = _scores_file(run_copy, tmp_path)
    assert (
        main(
            [
                "import-scores",
                "--workdir",
                str(run_copy.dir),
                str(path),
                "--column",
                "memo",
                "--higher",
                "keep",
                "--name",
                "paper",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "as score column 'paper'" in out and "stored negated" in out
    assert main(["import-scores", "--workdir", str(run_copy.dir), str(path), "--column", "nope"]) == 2


def test_compare_with_random_by_hand():
    curves = pd.DataFrame(
        [
            # metric m: hard beats random clearly at 0.5, ties at 0.7; easy is worse
            {
                "metric": "m",
                "strategy": "hard",
                "keep_fraction": 0.5,
                "n_kept": 50,
                "error_mean": 0.10,
                "error_std": 0.003,
                "n_seeds": 4,
            },
            {
                "metric": "m",
                "strategy": "hard",
                "keep_fraction": 0.7,
                "n_kept": 70,
                "error_mean": 0.119,
                "error_std": 0.004,
                "n_seeds": 4,
            },
            {
                "metric": "m",
                "strategy": "easy",
                "keep_fraction": 0.5,
                "n_kept": 50,
                "error_mean": 0.20,
                "error_std": 0.004,
                "n_seeds": 4,
            },
            {
                "metric": "m",
                "strategy": "easy",
                "keep_fraction": 0.7,
                "n_kept": 70,
                "error_mean": 0.16,
                "error_std": 0.004,
                "n_seeds": 4,
            },
            {
                "metric": "m",
                "strategy": "random",
                "keep_fraction": 0.5,
                "n_kept": 50,
                "error_mean": 0.13,
                "error_std": 0.004,
                "n_seeds": 4,
            },
            {
                "metric": "m",
                "strategy": "random",
                "keep_fraction": 0.7,
                "n_kept": 70,
                "error_mean": 0.12,
                "error_std": 0.003,
                "n_seeds": 4,
            },
        ]
    )
    t = compare_with_random(curves, (0.5, 0.7))
    r = t[(t["strategy"] == "hard") & (t["keep_fraction"] == 0.5)].iloc[0]
    assert r["diff"] == pytest.approx(-0.03) and r["se"] == pytest.approx(0.005 / 2)
    assert r["verdict"] == "better"
    assert t[(t["strategy"] == "hard") & (t["keep_fraction"] == 0.7)].iloc[0]["verdict"] == "tie"
    assert (t[t["strategy"] == "easy"]["verdict"] == "worse").all()
    s = summarise(t)
    assert s.iloc[0]["direction"] == "hard" and s.iloc[0]["n_better"] == 1 and s.iloc[0]["rank"] == 1


def test_benchmark_metrics_small_run(run_copy, tmp_path, capsys):
    from backend.cli import main

    path, _ = _scores_file(run_copy, tmp_path)
    import_scores(run_copy, path, column="memo")  # an imported column is benchmarked like any metric
    run = load_run(run_copy.dir)
    metrics = ["ssl_prototype", "supervised_prototype", "memo"]
    res = benchmark_metrics(run, metrics=metrics, fractions=[0.5, 1.0], seeds=2, device="cpu")
    assert set(res.summary["metric"]) == set(metrics)
    assert sorted(res.summary["rank"]) == [1, 2, 3]
    assert len(res.table) == len(metrics) * 2 * 4  # hard/easy x 30/50/70/90%
    np.testing.assert_allclose(res.table["diff"], res.table["error"] - res.table["random_error"])
    # random is the same baseline for every metric (same grid, seeds and hold-out)
    rnd = res.table.groupby("keep_fraction")["random_error"].nunique()
    assert (rnd == 1).all()
    assert np.allclose(np.diag(res.spearman.loc[res.spearman.index, res.spearman.index]), 1.0)
    assert np.allclose(np.diag(res.overlap.to_numpy(float)), 1.0)
    assert res.spearman.loc["ssl_prototype", "supervised_prototype"] > 0.2  # both prototype distances
    assert len(res.stability) >= 2 and res.stability["spearman_vs_run"].between(-1, 1).all()
    again = benchmark_metrics(run, metrics=metrics, fractions=[0.5, 1.0], seeds=2, device="cpu")
    assert again.cached and again.table.equals(res.table)
    assert (
        main(
            [
                "benchmark-metrics",
                "--workdir",
                str(run.dir),
                "--metrics",
                ",".join(metrics),
                "--fractions",
                "0.5,1",
                "--seeds",
                "2",
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "cached: benchmark of 3 metrics" in out and "rank  metric" in out and "Spearman" in out


def test_curate_scores_adds_a_metric_with_a_cost_estimate(run_copy, capsys):
    import json

    from backend.cli import main
    from backend.store import verify_files

    assert main(["scores", "--workdir", str(run_copy.dir), "--metrics", "dup_distance", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "cost (registered" in out and "examples ->" in out and "dup_distance" in out
    run = load_run(run_copy.dir)
    assert "dup_distance" in run.score_columns and run.table["dup_distance"].between(0, 2).all()
    assert score_info(run)["dup_distance"]["kind"] == "computed"
    assert verify_files(run.dir, json.loads((run.dir / "meta.json").read_text()).get("files", {})) is None
