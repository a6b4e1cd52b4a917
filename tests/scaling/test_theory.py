"""Teacher-student theory of data pruning (method.md section 3) and its simulator.

Vocabulary: alpha = examples per dimension (alpha_tot before pruning,
alpha_prune = f * alpha_tot after), f = keep fraction, theta = angle between
the pruning probe and the teacher (0 = perfect metric), error =
arccos(R)/pi of the max-margin student (higher = worse).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.optimize import nnls

from backend.errors import CurateError
from backend.scaling import theory
from backend.scaling.simulate import keep_by_margin, max_margin_weights, simulate
from backend.scaling.theory import (
    crossover_alpha_tot,
    error_curve,
    gardner_volume,
    min_useful_fraction,
    pareto_frontier,
    random_curve,
    solve,
)

# --------------------------------------------------------------------------
# the solver


def test_check_value_from_method_md():
    p = solve(2.4, 0.6, theta=0.0, strategy="hard")
    assert p.converged
    assert p.R == pytest.approx(0.9308, abs=1e-3)
    assert p.kappa == pytest.approx(0.2447, abs=1e-3)
    assert p.error == pytest.approx(0.1191, abs=1e-3)
    assert p.rho is None
    assert p.alpha_tot == pytest.approx(4.0)


def test_unpruned_is_the_classic_max_margin_curve():
    # error ~ 0.5/alpha asymptotically (Gardner; Engel & Van den Broeck).
    assert solve(10.0, 1.0).error * 10.0 == pytest.approx(0.5, abs=0.02)
    assert solve(100.0, 1.0).error * 100.0 == pytest.approx(0.5, abs=0.002)
    # Nothing is pruned at f = 1, so neither the probe nor the strategy matters.
    assert solve(3.0, 1.0, theta=0.4, strategy="easy").error == solve(3.0, 1.0).error
    # More data never hurts without pruning.
    errs = random_curve(np.geomspace(0.05, 50, 12))
    assert np.all(np.diff(errs) < 0)
    assert 0.4 < errs[0] < 0.5


def test_random_pruning_is_the_unpruned_curve_at_the_kept_size():
    alphas = np.array([0.5, 2.0, 8.0])
    np.testing.assert_allclose(random_curve(alphas), [solve(a, 1.0).error for a in alphas])


@pytest.mark.parametrize("strategy", ["hard", "easy"])
def test_theta0_equations_are_stationary_points_of_the_gardner_volume(strategy):
    # method.md: the first equation is C = 0, the second dC/dR = 0.
    p = solve(2.4, 0.6, 0.0, strategy)
    C = lambda R: gardner_volume(R, p.kappa, 2.4, 0.6, 0.0, strategy)  # noqa: E731
    h = 1e-5
    assert C(p.R) == pytest.approx(0.0, abs=1e-8)
    assert (C(p.R + h) - C(p.R - h)) / (2 * h) == pytest.approx(0.0, abs=1e-5)


@pytest.mark.parametrize("strategy", ["hard", "easy"])
def test_theta_equations_are_stationary_points_of_the_gardner_volume(strategy):
    # (2) is C = 0; (1) and (3) are dC/dR = 0 and dC/drho = 0.
    theta = 0.3
    p = solve(2.4, 0.6, theta, strategy)
    assert p.converged

    def C(R, rho):
        return gardner_volume(R, p.kappa, 2.4, 0.6, theta, strategy, rho=rho)

    h = 1e-5
    assert C(p.R, p.rho) == pytest.approx(0.0, abs=1e-8)
    assert (C(p.R + h, p.rho) - C(p.R - h, p.rho)) / (2 * h) == pytest.approx(0.0, abs=1e-5)
    assert (C(p.R, p.rho + h) - C(p.R, p.rho - h)) / (2 * h) == pytest.approx(0.0, abs=1e-5)


@pytest.mark.parametrize("strategy", ["hard", "easy"])
def test_small_theta_approaches_the_perfect_probe(strategy):
    perfect = solve(2.4, 0.6, 0.0, strategy).error
    assert solve(2.4, 0.6, 0.01, strategy).error == pytest.approx(perfect, abs=5e-4)
    # A worse probe gives a worse student.
    assert solve(2.4, 0.6, 0.3, strategy).error > solve(2.4, 0.6, 0.1, strategy).error > perfect


def test_error_curve_warm_starts_agree_with_single_solves_in_any_order():
    alphas = np.array([8.0, 0.3, 2.0, 30.0, 1.0])
    curve = error_curve(alphas, 0.4, theta=0.2, strategy="hard")
    assert np.all(np.isfinite(curve))
    theory._solve_cached.cache_clear()
    theory._WARM.clear()
    single = [solve(a, 0.4, 0.2, "hard").error for a in alphas[::-1]][::-1]
    np.testing.assert_allclose(curve, single, rtol=1e-6)


def test_large_alpha_keeps_precision():
    # R is within 1e-9 of 1 here: the solver works with sqrt(1 - R^2) directly.
    p = solve(5000.0, 1.0)
    assert p.converged
    assert p.error * 5000.0 == pytest.approx(0.5, abs=1e-3)
    q = solve(1000.0, 0.3, theta=0.3, strategy="hard")
    assert q.converged and 0 < q.error < 1e-3


def test_bad_arguments_are_user_errors():
    with pytest.raises(CurateError):
        solve(1.0, 0.0)
    with pytest.raises(CurateError):
        solve(1.0, 0.5, strategy="medium")
    with pytest.raises(CurateError):
        solve(-1.0, 0.5)


# --------------------------------------------------------------------------
# what the theory says (method.md section 3, last list)


@pytest.mark.parametrize("f", [0.2, 0.5])
def test_keep_easy_wins_small_alpha_keep_hard_wins_large(f):
    def errors(alpha_tot):
        a = f * alpha_tot
        return solve(a, f, 0.0, "hard").error, solve(a, f, 0.0, "easy").error

    hard, easy = errors(1.0)
    assert easy < hard
    hard, easy = errors(50.0)
    assert hard < easy

    cross = crossover_alpha_tot(f)
    assert 1.0 < cross < 50.0
    below, above = errors(cross / 1.5), errors(cross * 1.5)
    assert below[1] < below[0] and above[0] < above[1]


def test_more_aggressive_pruning_needs_more_data_before_keep_hard_wins():
    assert crossover_alpha_tot(0.1) > crossover_alpha_tot(0.2) > crossover_alpha_tot(0.5)


def test_imperfect_probe_has_a_minimum_useful_fraction():
    alpha_tot, theta = 30.0, 0.3
    f_min = min_useful_fraction(alpha_tot, theta)
    assert 0.05 < f_min < 0.5

    def hard_minus_random(f):
        a = f * alpha_tot
        return solve(a, f, theta, "hard").error - solve(a, 1.0).error

    assert hard_minus_random(1.5 * f_min) < 0  # above it pruning helps
    assert hard_minus_random(0.5 * f_min) > 0.1  # below it: far worse than random
    # A worse probe cannot be pushed as far.
    assert min_useful_fraction(alpha_tot, 0.1) < f_min < min_useful_fraction(alpha_tot, 0.6)


@pytest.mark.parametrize("theta", [0.0, 0.3])
def test_pareto_frontier_lies_at_or_below_random(theta):
    pool = 40.0
    grid = np.geomspace(0.2, pool, 10)
    alphas, err, best_f, best_strategy = pareto_frontier(grid, pool, theta, fs=(0.1, 0.3, 0.6))
    rand = random_curve(alphas)
    assert np.all(np.isfinite(err))
    assert np.all(err <= rand + 1e-12)
    assert np.any(err < 0.5 * rand)  # pruning buys a lot somewhere
    assert np.all(alphas / best_f <= pool * (1 + 1e-9))  # never more data than the pool
    assert set(best_strategy) <= {"hard", "easy", "none"}
    # Small kept sets are best kept easy, large ones hard (or unpruned).
    assert best_strategy[0] == "easy"
    assert best_strategy[-2] == "hard"


# --------------------------------------------------------------------------
# the simulator


def test_max_margin_weights_is_the_exact_hard_margin_solution():
    rng = np.random.default_rng(0)
    N, P = 40, 400
    T = rng.standard_normal(N)
    X = rng.standard_normal((P, N))
    y = np.sign(X @ T)
    w = max_margin_weights(X, y)
    G = X * y[:, None]
    margins = G @ w
    assert margins.min() > 1 - 1e-8
    # KKT: w is a non-negative combination of the examples on the margin.
    on_margin = margins < 1 + 1e-7
    lam, resid = nnls(G[on_margin].T, w)
    assert resid < 1e-8 * np.linalg.norm(w)
    # Same answer as least-distance programming on all examples at once.
    E = np.vstack([G.T, np.ones((1, P))])
    e = np.zeros(N + 1)
    e[-1] = 1.0
    u, _ = nnls(E, e, maxiter=50 * P)
    r = E @ u - e
    np.testing.assert_allclose(w, -r[:N] / r[-1], rtol=1e-7, atol=1e-9)


def test_max_margin_below_one_example_per_dimension():
    rng = np.random.default_rng(1)
    X = rng.standard_normal((30, 60))
    y = np.sign(rng.standard_normal(30))  # any labels are separable here
    w = max_margin_weights(X, y)
    assert (X * y[:, None] @ w).min() > 1 - 1e-8


def test_keep_by_margin_keeps_exactly_f_p():
    z = np.array([0.1, -3.0, 2.0, -0.2, 0.05, 1.0])
    hard = keep_by_margin(z, 0.5, "hard")
    easy = keep_by_margin(z, 0.5, "easy")
    assert sorted(hard.tolist()) == [0, 3, 4]
    assert sorted(easy.tolist()) == [1, 2, 5]


# Points where N = 200 is large enough for the finite-size correction to be
# below the statistical error; keep easy at large alpha needs N >= 400.
SIM_POINTS = [
    # alpha_tot, f, theta, strategy, N
    (4.0, 0.5, 0.0, "hard", 200),
    (4.0, 0.5, 0.0, "easy", 200),
    (1.0, 0.5, 0.0, "easy", 200),
    (10.0, 0.3, 0.0, "hard", 200),
    (20.0, 0.2, 0.0, "hard", 200),
    (2.0, 0.6, 0.5, "hard", 200),
    (2.0, 0.6, 0.5, "easy", 200),
    (4.0, 0.5, 0.3, "easy", 200),
    (10.0, 0.3, 0.2, "hard", 200),
    (20.0, 0.1, 0.3, "hard", 200),
    (5.0, 1.0, 0.0, "hard", 200),
    pytest.param(10.0, 0.3, 0.0, "easy", 400, marks=pytest.mark.slow),
    pytest.param(10.0, 0.3, 0.2, "easy", 400, marks=pytest.mark.slow),
]


@pytest.mark.parametrize("alpha_tot,f,theta,strategy,n_dim", SIM_POINTS)
def test_solver_agrees_with_simulation(alpha_tot, f, theta, strategy, n_dim):
    mean, stderr = simulate(alpha_tot, f, theta, strategy, n_dim=n_dim, seeds=6)
    predicted = solve(f * alpha_tot, f, theta, strategy).error
    assert abs(mean - predicted) < 3 * stderr + 0.01


def test_simulation_sees_keep_easy_win_small_and_keep_hard_win_large():
    small_hard, _ = simulate(1.0, 0.5, 0.0, "hard", n_dim=100, seeds=4)
    small_easy, _ = simulate(1.0, 0.5, 0.0, "easy", n_dim=100, seeds=4)
    assert small_easy < small_hard
    big_hard, _ = simulate(20.0, 0.2, 0.0, "hard", n_dim=100, seeds=4)
    big_easy, _ = simulate(20.0, 0.2, 0.0, "easy", n_dim=100, seeds=4)
    assert big_hard < big_easy


def test_simulation_is_reproducible():
    assert simulate(2.0, 0.5, 0.2, "hard", n_dim=50, seeds=3) == simulate(2.0, 0.5, 0.2, "hard", n_dim=50, seeds=3)
    assert not math.isnan(simulate(2.0, 0.5, n_dim=50, seeds=2)[1])
