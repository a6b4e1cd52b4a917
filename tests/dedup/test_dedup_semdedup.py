"""SemDeDup: planted copies and near-copies of real images are found, one per group is kept, the curve is
monotone and matches ``curate dedup``; the blocked search equals a from-scratch all-pairs reference."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from backend import CurateError
from backend.dedup import dedup_index, run_index, semdedup
from backend.dedup import search as dsearch

EPS = 0.002  # near-copies below are > 0.999 similar; distinct Fashion-MNIST images are far below 0.998


def _planted(fashion_arrays):
    """Pixel vectors of real images plus planted exact copies and near-copies; (x, ids, labels, groups)."""
    imgs, labels, classes = fashion_arrays
    base = imgs.reshape(len(imgs), -1).astype(np.float32) / 255.0
    rng = np.random.default_rng(0)
    rows, ids, labs, origin = [], [], [], []
    for i, v in enumerate(base):
        rows.append(v)
        ids.append(f"img{i:04d}")
        labs.append(classes[int(labels[i])])
        origin.append(i)
    planted = {}
    for i in range(0, 40, 4):  # every 4th of the first 40: an exact copy, and for half of them a near-copy too
        copies = [base[i].copy()]
        if i % 8 == 0:
            noisy = base[i] * 0.97 + rng.uniform(-0.004, 0.004, base[i].shape).astype(np.float32)
            copies.append(np.clip(noisy, 0, 1))
        planted[i] = []
        for j, c in enumerate(copies):
            rows.append(c)
            ids.append(f"copy{i:04d}_{j}")
            labs.append(classes[int(labels[i])])
            origin.append(i)
            planted[i].append(ids[-1])
    return np.stack(rows), np.array(ids, object), np.array(labs, object), planted


@pytest.fixture(scope="module")
def dup_run(tmp_path_factory, fashion_arrays, fast_kwargs):
    from backend import run_pipeline

    x, ids, labs, planted = _planted(fashion_arrays)
    d = tmp_path_factory.mktemp("dedup")
    np.save(d / "emb.npy", x)
    pd.DataFrame({"example_id": ids, "label": labs}).to_csv(d / "meta.csv", index=False)
    run = run_pipeline(
        str(d / "emb.npy"),
        d / "work",
        manifest=str(d / "meta.csv"),
        k=4,
        metrics=["ssl_prototype", "supervised_prototype", "random", "dup_distance"],
        **fast_kwargs,
    )
    return run, planted


def _reference(run, eps):
    """SemDeDup from scratch: per cluster, all pairs, sort least similar to the centroid first, triu max."""
    t = run.table
    x = np.asarray(run.embeddings, np.float64)[t["row"].to_numpy()]
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    removed = np.zeros(len(t), bool)
    for c in np.unique(t["cluster"]):
        m = np.flatnonzero(t["cluster"].to_numpy() == c)
        order = m[np.lexsort((t["example_id"].to_numpy()[m].astype(str), t["centroid_sim"].to_numpy()[m]))]
        s = x[order] @ x[order].T
        col_max = np.triu(s, 1).max(axis=0) if len(order) > 1 else np.zeros(1)
        col_max[0] = -np.inf
        removed[order] = col_max > 1 - eps
    return removed


def test_planted_duplicates_found_and_one_per_group_kept(dup_run):
    run, planted = dup_run
    res = semdedup(run, eps=EPS)
    t = run.table
    ids = t["example_id"].astype(str).to_numpy()
    removed_ids = set(ids[res.removed])
    # every group: the original plus its copies; all but one removed, and the kept one is the least
    # similar to the centroid (ties, as for exact copies, by example_id)
    expected_removed = set()
    for orig, copies in planted.items():
        members = [f"img{orig:04d}"] + copies
        pos = [int(np.flatnonzero(ids == m)[0]) for m in members]
        kept = [p for p in pos if res.kept[p]]
        assert len(kept) == 1, members
        sims = t["centroid_sim"].to_numpy()[pos]
        rule = min(zip(sims, [ids[p] for p in pos]))[1]
        assert ids[kept[0]] == rule
        assert len({res.group[p] for p in pos}) == 1 and res.group[pos[0]] >= 0
        assert all(res.representative[p] == kept[0] for p in pos)
        expected_removed |= set(members) - {rule}
    assert removed_ids == expected_removed
    assert res.n_groups == len(planted)
    groups = res.groups_frame()
    assert sorted(groups["size"]) == sorted(1 + len(c) for c in planted.values())
    assert (np.diff(groups["size"].to_numpy()) <= 0).all()  # largest first
    for g in groups.itertuples():
        mem = res.members(g.group)
        assert len(mem) == g.size and res.kept[mem[0]] and not res.kept[mem[1:]].any()
        assert mem[0] == g.representative and g.max_similarity > 1 - EPS
    frame = res.removed_frame(t)
    assert set(frame["example_id"]) == expected_removed and (frame["similarity"] > 1 - EPS).all()
    assert set(frame["representative"]).isdisjoint(removed_ids)


@pytest.mark.parametrize("eps", [0.002, 0.05, 0.2])
def test_matches_from_scratch_reference(dup_run, eps):
    run, _ = dup_run
    np.testing.assert_array_equal(semdedup(run, eps=eps).removed, _reference(run, eps))


def test_blocked_bounded_search_equals_one_block(dup_run, monkeypatch):
    run, _ = dup_run
    t = run.table
    args = (
        run.embeddings,
        t["row"].to_numpy(),
        t["cluster"].to_numpy(),
        t["centroid_sim"].to_numpy(),
        t["example_id"].to_numpy(),
    )
    whole = dedup_index(*args)
    monkeypatch.setattr(dsearch, "BLOCK_BYTES", 4 * 7 * 200)  # 7-row blocks
    small = dsearch.within_cluster_neighbours(*args, wave_rows=3)  # one cluster per wave
    np.testing.assert_allclose(small.max_sim, whole.max_sim, atol=1e-6)
    np.testing.assert_allclose(small.earlier_sim, whole.earlier_sim, atol=1e-6)
    assert (small.parent == whole.parent).mean() > 0.99  # up to exact float ties
    # max_sim is the all-pairs maximum within the cluster
    x = np.asarray(run.embeddings, np.float64)[t["row"].to_numpy()]
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    s = x @ x.T
    s[t["cluster"].to_numpy()[:, None] != t["cluster"].to_numpy()[None, :]] = -1
    np.fill_diagonal(s, -1)
    np.testing.assert_allclose(whole.max_sim, s.max(axis=1), atol=1e-5)


def test_curve_is_monotone_and_matches_curate_dedup(dup_run, tmp_path, capsys):
    from backend.cli import main

    run, _ = dup_run
    idx = run_index(run)
    thresholds = np.linspace(0.5, 1.0, 51)
    curve = idx.redundancy_curve(thresholds)
    assert (np.diff(curve["n_removed"].to_numpy()) <= 0).all()
    assert curve["share_removed"].between(0, 1).all()
    for eps in (0.002, 0.05, 0.3):
        out = tmp_path / f"kept_{eps}.csv"
        assert main(["dedup", "--workdir", str(run.dir), "--eps", str(eps), "--out", str(out)]) == 0
        man = json.loads(out.with_name(out.name + ".manifest.json").read_text())
        expected = int(idx.redundancy_curve([1 - eps])["n_removed"].iloc[0])
        assert man["counts"]["removed"] == expected
        kept = pd.read_csv(out)
        removed = pd.read_csv(out.with_name(out.stem + ".removed.csv"))
        assert len(kept) + len(removed) == run.n_examples and len(removed) == expected
        assert set(kept["example_id"]).isdisjoint(removed["example_id"])
        assert set(removed["representative"]) <= set(kept["example_id"])
    by_class = idx.redundancy_curve([0.9], by=run.table["label"].to_numpy())
    assert (
        by_class.loc[by_class["group"] != "all", "n_removed"].sum()
        == by_class.loc[by_class["group"] == "all", "n_removed"].sum()
    )


def test_target_fraction_and_bad_input(dup_run, tmp_path):
    from backend.cli import main

    run, _ = dup_run
    n = run.n_examples
    for f in (0.95, 0.6):
        res = semdedup(run, target_fraction=f)
        assert res.n_kept == round(f * n)
    with pytest.raises(CurateError, match="exactly one"):
        semdedup(run, eps=0.1, target_fraction=0.5)
    with pytest.raises(CurateError, match="outside"):
        semdedup(run, eps=3)
    with pytest.raises(CurateError, match="at least one per cluster"):
        semdedup(run, target_fraction=1 / n)
    txt = tmp_path / "t.txt"  # one id per line; the removed list cannot be plain text: it is CSV beside it
    assert main(["dedup", "--workdir", str(run.dir), "--eps", "0.1", "--out", str(txt)]) == 0
    assert len(txt.read_text().splitlines()) == semdedup(run, eps=0.1).n_kept
    assert (tmp_path / "t.removed.csv").exists() and (tmp_path / "t.txt.manifest.json").exists()
    out = tmp_path / "k.csv"
    assert main(["dedup", "--workdir", str(run.dir), "--eps", "0.1", "--out", str(out)]) == 0
    assert main(["dedup", "--workdir", str(run.dir), "--eps", "0.1", "--out", str(out)]) == 2  # exists
    assert main(["dedup", "--workdir", str(run.dir), "--eps", "0.1", "--out", str(tmp_path / "k.xlsx")]) == 2


def test_dup_distance_metric_is_one_minus_max_similarity(dup_run):
    from backend.scores import METRICS, ScoreContext, compute_metric

    run, planted = dup_run
    t = run.table
    entry = METRICS.entry("dup_distance")
    assert entry.info["direction"] == "higher = harder" and entry.info["range"] == "[0, 2]"
    ctx = ScoreContext(
        embeddings=run.embeddings,
        rows=t["row"].to_numpy(),
        example_ids=t["example_id"].to_numpy(),
        k=run.k,
        seed=run.config["params"]["seed"],
        centroid_sim=t["centroid_sim"].to_numpy(),
    )
    ctx.shared["cluster"] = t["cluster"].to_numpy()
    got = compute_metric("dup_distance", ctx)
    np.testing.assert_allclose(got, 1 - run_index(run).max_sim, atol=1e-6)
    ids = t["example_id"].astype(str).to_numpy()
    for orig in planted:
        assert got[ids == f"img{orig:04d}"][0] < 1e-3  # has a (near) copy: about 0
    assert (got >= 0).all() and (got <= 2).all()
    # the pipeline's column (asked for with metrics=...) used the same clustering
    assert "dup_distance" in run.score_columns
    np.testing.assert_allclose(t["dup_distance"], got, atol=1e-6)
    # without the run's clustering it clusters itself (the scaling grid's subsets)
    sub = compute_metric("dup_distance", ctx.subset(np.arange(0, len(t), 2)))
    assert sub.shape == (len(range(0, len(t), 2)),) and np.isfinite(sub).all()


def test_dedup_cost_trains_on_exactly_the_kept_set(dup_run):
    from backend.dedup.cost import dedup_cost

    run, _ = dup_run
    c = dedup_cost(run, eps=0.2, seeds=2, device="cpu")
    res = semdedup(run, eps=0.2)
    assert c["n_removed"] == res.n_removed > 0
    # no test split here: the hold-out is carved from the pool and the probes keep the same share of the rest
    assert not c["exact"] and "carved" in c["note"]
    n_grid = run.n_examples - c["holdout"]["size"]
    assert abs(c["n_kept_estimate"] - round(res.n_kept / run.n_examples * n_grid)) <= 1
    assert c["diff"] == pytest.approx(c["error_dedup"] - c["error_random"])
    assert c["verdict"] in ("tie", "better than random", "worse than random") and c["se"] >= 0
