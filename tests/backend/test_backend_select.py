"""Selection strategies, balance, ties, output formats, manifest round-trip and export-tree."""

from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from backend import (
    CurateError,
    Ranking,
    export_tree,
    load_run,
    render_selection,
    run_pipeline,
    select_subset,
    write_selection,
)
from backend.select.subset import keep_count_for


def _split(run, sel, metric):
    kept = set(sel.kept["example_id"])
    t = run.table
    mask = t["example_id"].isin(kept)
    return t.loc[mask, metric], t.loc[~mask, metric]


@pytest.mark.parametrize("metric", ["ssl_prototype", "supervised_prototype"])
def test_hard_keeps_the_highest_and_easy_the_lowest(base_run, metric):
    n = base_run.n_examples
    hard = select_subset(base_run, keep=0.3, strategy="hard", metric=metric)
    kept, dropped = _split(base_run, hard, metric)
    assert len(kept) == round(0.3 * n) == hard.n_kept
    assert kept.min() >= dropped.max()
    easy = select_subset(base_run, keep=0.3, strategy="easy", metric=metric)
    kept, dropped = _split(base_run, easy, metric)
    assert kept.max() <= dropped.min()
    # rank 1 is the hardest for hard, the easiest for easy
    top = hard.kept.sort_values("rank").iloc[0]
    assert top[metric] == base_run.table[metric].max()
    assert easy.kept.sort_values("rank").iloc[0][metric] == base_run.table[metric].min()
    assert hard.kept["example_id"].tolist() == [
        e for e in base_run.table["example_id"] if e in set(hard.kept["example_id"])
    ]  # the run's table order


def test_random_is_seeded_and_deterministic(base_run):
    a = select_subset(base_run, keep=0.5, strategy="random", seed=3)
    b = select_subset(base_run, keep=0.5, strategy="random", seed=3)
    c = select_subset(base_run, keep=0.5, strategy="random", seed=4)
    assert a.kept.equals(b.kept)
    assert set(a.kept["example_id"]) != set(c.kept["example_id"])
    assert a.params["metric"] is None and a.n_kept == base_run.n_examples // 2
    # uniform: unrelated to difficulty (kept share among the harder half is near one half)
    hard_half = base_run.table["ssl_prototype"] > base_run.table["ssl_prototype"].median()
    share = base_run.table.loc[hard_half, "example_id"].isin(set(a.kept["example_id"])).mean()
    assert 0.3 < share < 0.7


def test_keep_count_and_exact_totals(base_run):
    n = base_run.n_examples
    for count in (1, 2, 17, n - 1, n):
        assert select_subset(base_run, keep_count=count).n_kept == count
    for f in np.linspace(0.01, 1.0, 23):
        for balance in ("none", "class", "cluster"):
            sel = select_subset(base_run, keep=float(f), balance=balance)
            assert sel.n_kept == keep_count_for(n, float(f)) == max(1, round(f * n))
    assert keep_count_for(1000, 0.0004) == 1  # never an empty list
    for bad in (0, -1, 1.5, float("nan"), float("inf")):
        with pytest.raises(CurateError, match="outside"):
            keep_count_for(100, bad)
    with pytest.raises(CurateError, match="not both"):
        keep_count_for(100, 0.5, 10)


@pytest.mark.parametrize("balance,column", [("class", "label"), ("cluster", "cluster")])
@pytest.mark.parametrize("strategy", ["hard", "easy", "random"])
def test_balance_keeps_the_fraction_in_every_group(base_run, balance, column, strategy):
    t = base_run.table
    sizes = t[column].value_counts()
    for f in (0.1, 0.37, 0.5, 0.83):
        sel = select_subset(base_run, keep=f, strategy=strategy, balance=balance, metric="ssl_prototype")
        kept = sel.kept[column].value_counts().reindex(sizes.index, fill_value=0)
        target = sizes * (sel.n_kept / len(t))
        assert (np.abs(kept - target) < 1).all(), (f, (kept - target).abs().max())
        assert kept.sum() == sel.n_kept == round(f * len(t))
        if strategy == "hard":  # inside every group the hardest are kept
            for g, grp in t.groupby(column):
                ids = set(sel.kept["example_id"])
                k = grp[grp["example_id"].isin(ids)]["ssl_prototype"]
                d = grp[~grp["example_id"].isin(ids)]["ssl_prototype"]
                if len(k) and len(d):
                    assert k.min() >= d.max()
    if balance == "class":
        assert set(sel.per_class) == set(sizes.index)
        assert all(v["kept"] == kept[c] for c, v in sel.per_class.items())


def test_ties_are_broken_by_example_id():
    ids = [f"img{i:02d}" for i in range(12)]
    rng = np.random.default_rng(0)
    order = rng.permutation(12)
    table = pd.DataFrame(
        {"example_id": [ids[i] for i in order], "label": ["a"] * 6 + ["b"] * 6, "cluster": [0, 1] * 6, "score": 1.0}
    )
    for strategy in ("hard", "easy"):
        rk = Ranking(table, strategy=strategy, metric="score")
        kept = table.loc[rk.mask(5), "example_id"]
        assert sorted(kept) == ids[:5]  # all tied: the smallest ids, whatever the row order
        assert list(table["example_id"].iloc[rk.order]) == ids
    # balanced: within each class, the smallest ids
    rk = Ranking(table, strategy="hard", metric="score", balance="class")
    kept = table.loc[rk.mask(4)]
    for lab, grp in kept.groupby("label"):
        assert sorted(grp["example_id"]) == sorted(table[table.label == lab]["example_id"])[:2]
    # ties in a real score column, mixed with distinct values
    table["score"] = [0.5, 0.9, 0.5, 0.1, 0.5, 0.9, 0.2, 0.5, 0.5, 0.3, 0.9, 0.5]
    rk = Ranking(table, strategy="hard", metric="score")
    kept = table.loc[rk.mask(5)]
    nines = sorted(table.loc[table.score == 0.9, "example_id"])
    halves = sorted(table.loc[table.score == 0.5, "example_id"])
    assert sorted(kept["example_id"]) == sorted(nines + halves[:2])


def test_unlabelled_run_cannot_balance_by_class(tmp_path, fast_kwargs):
    x = np.random.default_rng(0).normal(size=(40, 8)).astype(np.float32)
    np.save(tmp_path / "e.npy", x)
    run = run_pipeline(str(tmp_path / "e.npy"), tmp_path / "w", **fast_kwargs)
    with pytest.raises(CurateError, match="needs labels"):
        select_subset(run, keep=0.5, balance="class")
    sel = select_subset(run, keep=0.5, balance="cluster")
    assert sel.n_kept == 20 and sel.per_class == {}
    assert "supervised_prototype" not in sel.kept.columns
    txt = render_selection(sel, ".txt").decode().splitlines()
    assert txt == sel.kept["example_id"].tolist()  # no paths: one id per line


# ---- output files --------------------------------------------------------------------------


def _read(path: Path) -> pd.DataFrame:
    if path.suffix == ".csv":
        return pd.read_csv(path, keep_default_na=False)
    if path.suffix == ".parquet":
        return pd.read_parquet(path)
    return pd.DataFrame(json.loads(path.read_text()))


@pytest.mark.parametrize("fmt", [".csv", ".parquet", ".json", ".txt"])
def test_output_formats_and_manifest_round_trip(base_run, tmp_path, fmt):
    sel = select_subset(base_run, keep=0.4, strategy="hard", balance="class", metric="supervised_prototype")
    out = write_selection(sel, tmp_path / f"kept{fmt}")
    assert out == tmp_path / f"kept{fmt}"
    data = out.read_bytes()
    if fmt == ".txt":
        lines = data.decode().splitlines()
        assert lines == sel.kept["path"].tolist()
        assert all(os.path.isabs(p) and os.path.exists(p) for p in lines)
    else:
        df = _read(out)
        expected_cols = [
            "example_id",
            "path",
            "label",
            "cluster",
            "rank",
            "ssl_prototype",
            "supervised_prototype",
            "random",
        ]
        assert list(df.columns) == expected_cols
        assert len(df) == sel.n_kept
        assert df["example_id"].tolist() == sel.kept["example_id"].tolist()
        np.testing.assert_allclose(
            df["supervised_prototype"].astype(float), sel.kept["supervised_prototype"], rtol=1e-6
        )
        t = base_run.table.set_index("example_id").loc[df["example_id"]]
        assert (t["path"].to_numpy() == df["path"].to_numpy()).all()
        assert (t["cluster"].to_numpy() == df["cluster"].astype(int).to_numpy()).all()

    man = json.loads((tmp_path / f"kept{fmt}.manifest.json").read_text())
    assert man["output"]["sha256"] == hashlib.sha256(data).hexdigest()
    assert man["output"]["rows"] == sel.n_kept and man["output"]["format"] == fmt[1:]
    assert man["counts"]["total"] == base_run.n_examples and man["counts"]["kept"] == sel.n_kept
    assert sum(v["kept"] for v in man["counts"]["per_class"].values()) == sel.n_kept
    assert man["run"]["source_fingerprint"] == base_run.config["source"]["fingerprint"]
    assert man["run"]["encoder"] == base_run.encoder and man["run"]["encoder"]["name"] == "pixels"
    assert {"numpy", "pandas", "python", "torch"} <= set(man["versions"])
    assert "--balance class" in man["reproduce"] and "--metric supervised_prototype" in man["reproduce"]

    # round trip: the manifest's parameters alone give the same bytes
    p = man["selection"]
    again = select_subset(
        load_run(man["run"]["dir"]),
        keep=p["keep_fraction"],
        keep_count=None if p["keep_fraction"] is not None else p["keep_count"],
        strategy=p["strategy"],
        metric=p["metric"] or "ssl_prototype",
        balance=p["balance"],
        seed=p["seed"],
    )
    assert hashlib.sha256(render_selection(again, fmt)).hexdigest() == man["output"]["sha256"]
    out2 = write_selection(again, tmp_path / f"again{fmt}")
    assert out2.read_bytes() == data


def test_manifest_round_trip_random_keep_count(base_run, tmp_path):
    sel = select_subset(base_run, keep_count=33, strategy="random", seed=11, balance="cluster")
    out = write_selection(sel, tmp_path / "r.csv")
    man = json.loads((tmp_path / "r.csv.manifest.json").read_text())
    p = man["selection"]
    assert p == {
        "keep_fraction": None,
        "keep_count": 33,
        "strategy": "random",
        "metric": None,
        "balance": "cluster",
        "seed": 11,
    }
    again = select_subset(
        base_run, keep_count=p["keep_count"], strategy=p["strategy"], balance=p["balance"], seed=p["seed"]
    )
    assert render_selection(again, ".csv") == out.read_bytes()
    assert "--keep-count 33" in man["reproduce"]


# ---- export-tree ---------------------------------------------------------------------------


def _snapshot(root: Path) -> dict[str, tuple[str, int, int]]:
    return {
        p.relative_to(root).as_posix(): (
            hashlib.sha256(p.read_bytes()).hexdigest(),
            p.stat().st_mtime_ns,
            p.stat().st_mode,
        )
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_export_tree_links_to_the_originals_and_never_touches_them(base_run, image_folder, tmp_path):
    before = _snapshot(image_folder)
    sel = select_subset(base_run, keep=0.5, strategy="hard")
    res = export_tree(base_run, sel, tmp_path / "tree")
    assert res == {"symlinks": sel.n_kept, "png_written": 0, "out": str(tmp_path / "tree")}
    links = sorted(p for p in (tmp_path / "tree").rglob("*") if not p.is_dir())
    assert len(links) == sel.n_kept
    kept_paths = set(sel.kept["path"])
    for link in links:
        assert link.is_symlink()
        target = os.readlink(link)
        assert target in kept_paths and os.path.isabs(target)
        assert link.parent.name == Path(target).parent.name  # label folder = class
        assert Image.open(link).size == (28, 28)  # the link opens the image
    assert _snapshot(image_folder) == before
    man = json.loads((tmp_path / "tree.manifest.json").read_text())
    assert man["output"]["symlinks"] == sel.n_kept and man["counts"]["kept"] == sel.n_kept

    # --force replaces an earlier export (and only that)
    smaller = select_subset(base_run, keep=0.1)
    with pytest.raises(CurateError, match="not empty"):
        export_tree(base_run, smaller, tmp_path / "tree")
    export_tree(base_run, smaller, tmp_path / "tree", force=True)
    assert sum(1 for p in (tmp_path / "tree").rglob("*") if p.is_symlink()) == smaller.n_kept
    assert _snapshot(image_folder) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tree", "tree.manifest.json"]  # no temp folder left


def test_export_tree_writes_png_for_array_sources(tmp_path, monkeypatch, fast_kwargs):
    import backend.sources.arrays as arrays

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(arrays, "DEBIAN_FASHION_MNIST", tmp_path / "absent")  # the small digits set
    monkeypatch.setattr(arrays, "_online", lambda *a, **k: False)
    run = run_pipeline("demo", tmp_path / "w", limit=60, **fast_kwargs)
    sel = select_subset(run, keep=0.25, strategy="easy")
    res = export_tree(run, sel, tmp_path / "tree")
    assert res["png_written"] == sel.n_kept == 15 and res["symlinks"] == 0
    files = sorted((tmp_path / "tree").rglob("*.png"))
    assert len(files) == 15 and not any(p.is_symlink() for p in files)
    src = run.source
    for f in files:
        eid = f.stem.replace("_", "/")  # train/123 -> train_123.png
        row = run.table.set_index("example_id").loc[eid, "source_row"]
        np.testing.assert_array_equal(np.asarray(Image.open(f).convert("RGB")), np.asarray(src.load_image(int(row))))
        assert f.parent.name == run.table.set_index("example_id").loc[eid, "label"]


def test_write_selection_bytes_are_the_rendered_bytes(base_run, tmp_path):
    sel = select_subset(base_run, keep=0.2)
    for fmt in (".csv", ".json", ".parquet", ".txt"):
        out = write_selection(sel, tmp_path / f"k{fmt}")
        assert out.read_bytes() == render_selection(sel, fmt)
    df = pd.read_parquet(io.BytesIO(render_selection(sel, ".parquet")))
    assert df["rank"].min() >= 1 and df["rank"].is_unique
