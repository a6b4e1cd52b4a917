"""Registered strategies and balances: the paper's class-floor rule, CCS, coverage floors, dedup+difficulty."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from backend import BALANCES, STRATEGIES, CurateError, Ranking, select_subset
from backend.select.strategies.ccs import allocate, default_beta, strata_of


def _imbalanced(sizes=(600, 300, 100), seed=0) -> pd.DataFrame:
    """Class a is the hardest (scores 2..3), b in the middle (1..2), c the easiest (0..1)."""
    rng = np.random.default_rng(seed)
    labels, scores = [], []
    for i, (name, n) in enumerate(zip("abc", sizes)):
        labels += [name] * n
        scores += list(2 - i + rng.random(n))
    n = len(labels)
    return pd.DataFrame(
        {
            "example_id": [f"x{i:05d}" for i in range(n)],
            "label": labels,
            "cluster": rng.integers(0, 4, n),
            "score": scores,
        }
    )


def _counts(table, mask):
    return table.loc[mask, "label"].value_counts().reindex(list("abc"), fill_value=0).to_dict()


def test_registries_list_every_strategy_and_balance():
    assert {"hard", "easy", "random", "ccs", "dedup+hard", "dedup+easy"} <= set(STRATEGIES)
    assert list(BALANCES)[:3] == ["none", "class", "class-floor"]
    assert {"cluster", "cluster-floor"} <= set(BALANCES)
    assert STRATEGIES.entry("ccs").prefix is False and STRATEGIES.entry("hard").prefix is True
    with pytest.raises(CurateError, match="unknown strategy"):
        Ranking(_imbalanced(), strategy="nope", metric="score")


def test_class_floor_counts_on_an_imbalanced_set():
    t = _imbalanced()
    # random pruning to 200 of 1000 gives a 120, b 60, c 20; half of that is the floor: 60, 30, 10;
    # the other 100 go by global hardness, i.e. all to class a
    rk = Ranking(t, strategy="hard", metric="score", balance="class-floor")
    assert _counts(t, rk.mask(200)) == {"a": 160, "b": 30, "c": 10}
    # the floors hold for keep easy too: the rest goes to c (the easiest) until it is exhausted, then b
    rk = Ranking(t, strategy="easy", metric="score", balance="class-floor")
    assert _counts(t, rk.mask(200)) == {"a": 60, "b": 40, "c": 100}
    # floor_share 1 is the same share per class; 0 is no balance at all
    full = Ranking(t, strategy="hard", metric="score", balance="class-floor", floor_share=1.0)
    assert _counts(t, full.mask(200)) == {"a": 120, "b": 60, "c": 20}
    none = Ranking(t, strategy="hard", metric="score", balance="class-floor", floor_share=0.0)
    assert _counts(t, none.mask(200)) == {"a": 200, "b": 0, "c": 0}
    same = Ranking(t, strategy="hard", metric="score", balance="class")
    assert _counts(t, same.mask(200)) == {"a": 120, "b": 60, "c": 20}
    # inside a class the easiest are the ones kept (rk is keep easy here)
    m = rk.mask(200)
    for _, grp in t.groupby("label"):
        k, d = grp.loc[m[grp.index], "score"], grp.loc[~m[grp.index], "score"]
        if len(k) and len(d):
            assert k.max() <= d.min()
    with pytest.raises(CurateError, match="floor-share"):
        Ranking(t, strategy="hard", metric="score", balance="class-floor", floor_share=1.5).mask(10)


@pytest.mark.parametrize("strategy", ["hard", "easy", "random", "ccs"])
@pytest.mark.parametrize("balance", ["none", "class", "class-floor", "cluster", "cluster-floor"])
def test_every_setting_keeps_exactly_the_budget(strategy, balance):
    t = _imbalanced((70, 25, 5))
    rk = Ranking(t, strategy=strategy, metric="score", balance=balance, seed=3)
    for n in (1, 2, 7, 33, 50, 99, 100):
        m = rk.mask(n)
        assert m.dtype == bool and m.sum() == n, (strategy, balance, n)
        assert (rk.mask(n) == m).all()  # deterministic (and the cache returns the same)


def test_ccs_strata_and_budget_by_hand():
    # 18 scores in 4 equal-width strata over [0, 1] (sizes 1, 2, 5, 10) plus the two hardest (5, 6)
    s = [0.0, 0.3, 0.4, 0.55, 0.6, 0.65, 0.7, 0.72] + list(np.linspace(0.8, 1.0, 10)) + [5.0, 6.0]
    t = pd.DataFrame({"example_id": [f"e{i:02d}" for i in range(20)], "label": "a", "cluster": 0, "score": s})
    np.testing.assert_array_equal(np.bincount(strata_of(np.array(s[:18]), 4)), [1, 2, 5, 10])
    # budget 8 from the smallest stratum up: 8//4=2 -> 1 (all of it); 7//3=2 -> 2; 5//2=2 -> 2; 3//1 -> 3
    np.testing.assert_array_equal(allocate(np.array([10, 1, 5, 2]), 8), [3, 1, 2, 2])
    rk = Ranking(t, strategy="ccs", metric="score", ccs_beta=0.1, ccs_strata=4)
    m = rk.mask(8)
    assert not m[18] and not m[19]  # beta = 10% of 20: the two hardest are dropped
    kept_bins = np.bincount(strata_of(np.array(s[:18]), 4)[m[:18]], minlength=4)
    np.testing.assert_array_equal(kept_bins, [1, 2, 2, 3])
    assert Ranking(t, strategy="ccs", metric="score", ccs_beta=0.1, ccs_strata=4, seed=1).mask(8).sum() == 8
    # a budget larger than what beta leaves keeps some of the hardest (the total is always exact)
    assert rk.mask(19).sum() == 19
    sel_params = rk.params()
    assert sel_params["ccs_beta"] == 0.1 and sel_params["ccs_strata"] == 4


def test_ccs_default_beta_follows_the_pruning_rate_table():
    assert default_beta(1.0) == default_beta(0.7) == default_beta(0.5) == 0.0
    assert default_beta(0.3) == default_beta(0.2) == default_beta(0.15) == 0.1
    assert default_beta(0.1) == default_beta(0.05) == 0.3
    # allocation never loses budget to integer division and never exceeds a stratum
    rng = np.random.default_rng(0)
    for _ in range(200):
        counts = rng.integers(0, 30, rng.integers(1, 12))
        budget = int(rng.integers(0, counts.sum() + 1))
        out = allocate(counts, budget)
        assert out.sum() == budget and (out <= counts).all()


def test_coverage_floors_are_enforced():
    t = _imbalanced()
    rk = Ranking(t, strategy="hard", metric="score", min_per_class=15)
    c = _counts(t, rk.mask(100))
    assert c == {"a": 70, "b": 15, "c": 15}  # hard alone would keep 100 of class a
    # with a balance the floors come first and the balance shares what is left
    rk = Ranking(t, strategy="hard", metric="score", balance="class", min_per_class=15)
    # c is pinned at its floor (15 > its 10); a and b share the other 85 as 600 : 300
    assert _counts(t, rk.mask(100)) == {"a": 57, "b": 28, "c": 15}
    with pytest.raises(CurateError, match="at least 45"):
        rk.mask(40)
    clusters = Ranking(t, strategy="easy", metric="score", min_per_cluster=30)
    m = clusters.mask(150)
    assert (t.loc[m, "cluster"].value_counts() >= 30).all() and m.sum() == 150
    assert rk.params()["min_per_class"] == 15
    unlabelled = t.assign(label=None)
    with pytest.raises(CurateError, match="needs labels"):
        Ranking(unlabelled, strategy="hard", metric="score", min_per_class=1)


def test_dedup_then_difficulty_under_one_budget():
    t = _imbalanced((40, 0, 0))
    dup = np.zeros(len(t), bool)
    dup[t["score"].nlargest(10).index[::2]] = True  # 5 of the 10 hardest are duplicates
    t["dedup_removed"] = dup
    rk = Ranking(t, strategy="dedup+hard", metric="score")
    m = rk.mask(10)
    assert not (m & dup).any()  # duplicates go first
    kept = t.loc[m, "score"]
    assert kept.min() >= t.loc[~dup & ~m, "score"].max()  # then the hardest of the rest
    steps = rk.steps(m)["dedup"]
    assert steps == {
        "duplicates_found": 5,
        "removed_as_duplicates": 5,
        "removed_by_difficulty": 25,
        "duplicates_kept_back": 0,
    }
    big = rk.mask(38)  # more than the 35 dedup keeps: duplicates come back, hardest first
    assert big.sum() == 38 and (big & dup).sum() == 3
    easy = Ranking(t, strategy="dedup+easy", metric="score").mask(5)
    assert t.loc[easy, "score"].max() <= t.loc[~dup & ~easy, "score"].min()


def test_options_that_do_not_apply_are_refused(base_run):
    with pytest.raises(CurateError, match="does not apply"):
        Ranking(base_run.table, strategy="hard", ccs_beta=0.1)
    sel = select_subset(base_run, keep=0.2, strategy="ccs", balance="class-floor", floor_share=0.5)
    assert sel.n_kept == round(0.2 * base_run.n_examples)
    man = sel.manifest()
    assert man["selection"]["floor_share"] == 0.5 and man["selection"]["ccs_beta"] is None
    assert man["steps"]["ccs"] == {"beta": 0.1, "strata": 50}  # default beta at keep 20%
    assert "--strategy ccs" in man["reproduce"] and "--floor-share 0.5" in man["reproduce"]


def test_dedup_hard_on_a_real_run_uses_semdedup(base_run):
    from backend.dedup import semdedup

    eps = 0.2  # loose enough that some of the small run's images count as near-duplicates
    removed = semdedup(base_run, eps=eps).removed
    sel = select_subset(base_run, keep=0.5, strategy="dedup+hard", dedup_eps=eps)
    assert sel.n_kept == round(0.5 * base_run.n_examples)
    steps = sel.manifest()["steps"]["dedup"]
    assert steps["duplicates_found"] == int(removed.sum())
    assert steps["removed_as_duplicates"] + steps["removed_by_difficulty"] == base_run.n_examples - sel.n_kept
    kept_dups = base_run.table["example_id"][removed].isin(set(sel.kept["example_id"])).sum()
    assert kept_dups == steps["duplicates_kept_back"]
    if removed.sum() <= base_run.n_examples - sel.n_kept:
        assert kept_dups == 0  # every duplicate goes before any difficulty pruning
