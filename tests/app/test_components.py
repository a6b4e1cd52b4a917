"""The app's pure parts: settings text forms, path checks, run listing, summaries, figure builders."""

from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd
import pytest

from curation_app.components import figures, paths, summaries
from curation_app.components import settings as S

# ---------------------------------------------------------------------------
# settings


def test_query_round_trip_and_defaults_left_out():
    s = dict(S.DEFAULTS, run="abc", keep=0.5, strategy="easy")
    q = S.to_query(s)
    assert q == {"run": "abc", "keep": "0.5", "strategy": "easy"}
    back, problems = S.parse_settings(q)
    assert not problems and back == {"run": "abc", "keep": 0.5, "keep_mode": "fraction", "strategy": "easy"}


def test_count_mode_round_trip():
    s = dict(S.DEFAULTS, keep_mode="count", keep_count=123, keep=0.3075)
    q = S.to_query(s)
    assert q["count"] == "123" and "keep" not in q
    back, _ = S.parse_settings(q)
    assert back["keep_mode"] == "count" and back["keep_count"] == 123
    assert S.n_keep(dict(S.DEFAULTS, **back), 400) == 123
    assert S.n_keep(dict(S.DEFAULTS, **back), 100) == 100  # clipped to the run


@pytest.mark.parametrize(
    "raw, bad",
    [
        ({"keep": "1.5"}, "keep"),
        ({"keep": "x"}, "keep"),
        ({"count": "0"}, "count"),
        ({"strategy": "hardest"}, "strategy"),
        ({"seed": "1.5"}, "seed"),
        ({"floor": "-1"}, "floor"),
        ({"balance": "label"}, "balance"),
    ],
)
def test_bad_values_are_dropped_with_a_message(raw, bad):
    values, problems = S.parse_settings(raw)
    assert bad not in values and len(problems) == 1 and problems[0].startswith(f"ignored {bad}=")


def test_json_file_round_trip_and_garbage():
    s = dict(S.DEFAULTS, keep=0.42, balance="class", seed=7, floor=0, metric="supervised_prototype")
    s["map_viewer"] = "plotly"
    values, problems = S.from_json(S.to_json(s))
    assert not problems
    assert {k: values[k] for k in ("keep", "balance", "seed", "floor", "metric", "map_viewer")} == {
        "keep": 0.42,
        "balance": "class",
        "seed": 7,
        "floor": 0,
        "metric": "supervised_prototype",
        "map_viewer": "plotly",
    }
    values, problems = S.from_json('{"map_viewer": "webgl"}')
    assert "map_viewer" not in values and problems == [
        "ignored map_viewer='webgl': the map viewer is one of canvas, plotly"
    ]
    assert S.from_json("[1, 2]")[1] and S.from_json("{oops")[1]


def test_cli_args_match_the_settings():
    s = dict(S.DEFAULTS, keep=0.7, strategy="random", seed=3)
    assert S.cli_selection_args(s, 1000) == [
        "--keep",
        "0.7",
        "--strategy",
        "random",
        "--balance",
        "none",
        "--seed",
        "3",
    ]
    s = dict(S.DEFAULTS, keep_mode="count", keep_count=10)
    assert S.cli_selection_args(s, 1000)[:2] == ["--keep-count", "10"]


# ---------------------------------------------------------------------------
# paths


def test_allowed_dirs_from_env_and_default(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    env = {"CURATE_ALLOWED_DIRS": os.pathsep.join([str(a), str(b)]), "CURATE_WORKDIR": str(a)}
    assert paths.allowed_dirs(env) == [a.resolve(), b.resolve()]
    env = {"CURATE_WORKDIR": str(a)}
    assert paths.allowed_dirs(env, cwd=b) == [a.resolve(), b.resolve()]


def test_check_path_refuses_outside_and_escapes(tmp_path):
    allowed = [tmp_path / "ok"]
    p, err = paths.check_path(str(tmp_path / "ok" / "sub" / "x.csv"), allowed)
    assert err is None and p == (tmp_path / "ok" / "sub" / "x.csv").resolve()
    for bad in (str(tmp_path / "other.csv"), str(tmp_path / "ok" / ".." / "x.csv"), "/etc/passwd", ""):
        p, err = paths.check_path(bad, allowed)
        assert p is None and err
    (tmp_path / "ok").mkdir()
    (tmp_path / "ok" / "link").symlink_to(tmp_path)  # a link pointing out is outside too
    assert paths.check_path(str(tmp_path / "ok" / "link" / "x.csv"), allowed)[0] is None


def test_list_runs_latest_first(tmp_path):
    for i, key in enumerate(["old", "new"]):
        d = tmp_path / "runs" / key
        d.mkdir(parents=True)
        (d / "run.json").write_text(
            json.dumps(
                {
                    "created": f"2026-01-0{i + 1}T00:00:00",
                    "params": {"encoder": "pixels", "k": 3},
                    "source": {"description": key},
                    "counts": {"examples": 5},
                }
            )
        )
        os.utime(d / "run.json", (1000 + i, 1000 + i))
    (tmp_path / "runs" / "broken").mkdir()
    (tmp_path / "runs" / "broken" / "run.json").write_text("{")
    runs = paths.list_runs(tmp_path)
    assert [r["key"] for r in runs] == ["new", "old"]
    assert "5 examples" in paths.run_label(runs[0])


# ---------------------------------------------------------------------------
# summaries


def test_stratified_sample_is_proportional_and_complete():
    rng = np.random.default_rng(0)
    clusters = np.repeat(np.arange(5), [50_000, 30_000, 15_000, 4_990, 10])
    rng.shuffle(clusters)
    pos = summaries.stratified_sample(clusters, 10_000, seed=1)
    assert len(pos) == 10_000 and np.all(np.diff(pos) > 0)
    got = np.bincount(clusters[pos], minlength=5)
    assert np.abs(got - np.array([5000, 3000, 1500, 499, 1])).max() <= 1
    assert summaries.stratified_sample(clusters[:100], 1000).tolist() == list(range(100))


def test_cluster_summary_and_extremes():
    t = pd.DataFrame(
        {
            "cluster": [0, 0, 0, 1, 1],
            "label": ["a", "a", "b", "b", "b"],
            "centroid_sim": [0.9, 0.5, 0.7, 0.8, 0.6],
            "ssl_prototype": [0.1, 0.5, 0.3, 0.2, 0.4],
        }
    )
    s = summaries.cluster_summary(t, "ssl_prototype")
    assert s["size"].tolist() == [3, 2] and s["top_class"].tolist() == ["a", "b"]
    assert s["purity"].tolist() == pytest.approx([2 / 3, 1.0])
    assert s["tightness"].tolist() == pytest.approx([0.7, 0.7])
    ex = summaries.cluster_extremes(t, 2)
    assert ex[0][0].tolist() == [0, 2] and ex[0][1].tolist() == [1, 2]
    assert summaries.members_by_centrality(t, 1).tolist() == [3, 4]


def test_margin_and_cut_with_a_real_ranking():
    import backend

    t = pd.DataFrame(
        {
            "example_id": [f"e{i}" for i in range(10)],
            "label": ["a"] * 10,
            "cluster": [0] * 10,
            "ssl_prototype": np.arange(10) / 10,
        }
    )
    rk = backend.Ranking(t, strategy="hard", metric="ssl_prototype")
    mask = rk.mask(4)
    assert summaries.cut_value(t["ssl_prototype"].to_numpy(), mask, "hard", "none") == pytest.approx(0.6)
    assert summaries.margin_positions(rk, 4, 10, mask, count=3).tolist() == [5, 4, 3]
    assert summaries.cut_value(t["ssl_prototype"].to_numpy(), mask, "random", "none") is None


def test_floor_violations():
    out = summaries.floor_violations(["a", "b", "c"], np.array([10, 3, 50]), np.array([2, 3, 40]), 5)
    assert out == [("a", 2, 10)]  # b keeps all it has: not a violation


# ---------------------------------------------------------------------------
# figures: every one has a title, axis titles and a legend or colour bar


def _titles(fig):
    lay = fig.layout
    return lay.title.text, lay.xaxis.title.text, lay.yaxis.title.text


def test_map_figure_modes():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=50), rng.normal(size=50)
    pos = np.arange(100, 150)
    g = rng.integers(0, 3, 50)
    f = figures.map_figure(
        x,
        y,
        pos,
        colour="group",
        groups=g,
        group_names=["a", "b", "c"],
        method="umap",
        title="map",
        legend_title="cluster",
    )
    assert all(_titles(f)) and [t.name for t in f.data] == ["a", "b", "c"]
    assert sorted(np.concatenate([t.customdata for t in f.data]).tolist()) == pos.tolist()
    assert all(t.type == "scattergl" for t in f.data)
    f = figures.map_figure(x, y, pos, colour="value", values=x, title="m", legend_title="ssl_prototype")
    assert "higher = harder" in f.data[0].marker.colorbar.title.text
    f = figures.map_figure(x, y, pos, colour="kept", kept=x > 0, title="m")
    assert f.data[1].name.startswith("kept") and f.data[0].name.startswith("pruned")
    many = figures.map_figure(
        x,
        y,
        pos,
        colour="group",
        groups=np.arange(50),
        group_names=[str(i) for i in range(50)],
        title="m",
        legend_title="clusters",
    )
    assert len(many.data) == 1  # too many groups for a legend: one trace


def test_count_and_histogram_figures():
    f = figures.class_counts_figure(["a", "b"], np.array([10, 20]), np.array([5, 20]), title="Kept", floor=6)
    assert all(_titles(f)) and [t.name for t in f.data] == ["full data", "kept"]
    assert any("floor 6" in a.text for a in f.layout.annotations)
    edges = np.linspace(0, 1, 11)
    h = figures.score_histogram(edges, np.arange(10), np.arange(10), metric="ssl_prototype", cut=0.5)
    assert all(_titles(h)) and "higher = harder" in h.layout.xaxis.title.text
    assert h.layout.shapes[0].x0 == 0.5 and "cut 0.500" in h.layout.annotations[0].text


def test_scaling_figure_marks_the_setting():
    rows = []
    for s in ("hard", "easy", "random"):
        for f in (0.2, 0.5, 1.0):
            rows.append(
                {
                    "initial_fraction": 1.0,
                    "initial_size": 1000,
                    "strategy": s,
                    "keep_fraction": f,
                    "n_kept": int(1000 * f),
                    "error_mean": 0.3 / f**0.3,
                    "error_std": 0.01,
                    "n_seeds": 3,
                }
            )
    curves = pd.DataFrame(rows)
    fit = {"ok": True, "a": 1.0, "nu": 0.3, "c": 0.05, "n_min": 200, "n_max": 1000}
    fr = curves[curves["strategy"] == "hard"][["n_kept", "error_mean"]]
    fig = figures.scaling_figure(curves, fit, fr, n_current=700, title="Estimated")
    assert all(_titles(fig)) and fig.layout.xaxis.type == "log" and fig.layout.yaxis.type == "log"
    names = [t.name for t in fig.data]
    assert names[:3] == ["keep hard", "keep easy", "random"] and any("power law" in n for n in names)
    assert fig.layout.shapes[0].x0 == 700 and "700 kept" in fig.layout.annotations[0].text


def test_log_ticks_are_readable():
    vals, text = figures.log_ticks(40, 3000)
    assert text == ["50", "100", "200", "500", "1,000", "2,000"]
    vals, text = figures.log_ticks(0.2, 0.7, percent=True)
    assert text[0] == "20%" and len(text) >= 4
