"""Direct simulation of pruned teacher-student perceptron learning.

The independent check of :mod:`backend.scaling.theory` (method.md section 3):
draw a teacher T and a probe at angle theta to it, P = alpha_tot * N Gaussian
inputs labelled sign(T.x), keep a fraction f of them by their probe margin
|z| (keep hard: the smallest, keep easy: the largest), train the max-margin
linear classifier without bias on what is kept, and report its
generalisation error arccos(w.T/|w|)/pi (higher = worse).  alpha is
examples per input dimension; alpha_prune = f * alpha_tot.
"""

from __future__ import annotations

import contextlib
import math

import numpy as np
from scipy.optimize import nnls

from backend.errors import CurateError

# Constraint generation: the working set starts with this many examples per
# dimension and takes in at most this many new violators per dimension per
# round.
_WORKING_SET_PER_DIM = 1.0
_MARGIN_TOL = 1e-9
_MAX_ROUNDS = 1000


def _least_distance(G: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Minimum-norm w with G w >= 1, by least-distance programming.

    Lawson & Hanson (1974, ch. 23): with E = [G^T; 1^T] and e = (0, .., 0, 1),
    solve the non-negative least squares min ||E u - e||, u >= 0; the residual
    r = E u - e gives w = -r[:N] / r[N], and u > 0 marks the support vectors.
    r[N] = 0 would mean infeasible, impossible for teacher-labelled data.
    """
    P, N = G.shape
    E = np.vstack([G.T, np.ones((1, P))])
    e = np.zeros(N + 1)
    e[-1] = 1.0
    u, _ = nnls(E, e, maxiter=50 * (P + N + 1))
    r = E @ u - e
    if abs(r[-1]) < 1e-14:
        raise RuntimeError("max-margin problem is infeasible (data not separable)")
    return -r[:N] / r[-1], u


def max_margin_weights(X: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Hard-margin linear classifier without bias: min |w| s.t. y_i w.x_i >= 1.

    Exact, by least-distance programming on a small working set: solve on
    the set, keep only its support vectors, add the examples that violate
    their margin, repeat until none does.  |w| grows strictly every round, so
    this terminates, and the answer is the max-margin solution on all the
    examples (it depends on the support vectors only).  The NNLS stays at
    about 2N columns however many examples there are, which is what makes
    alpha ~ 20 affordable.
    """
    G = X * y[:, None]
    P, N = G.shape
    if P == 0:
        raise CurateError("no examples left to train on; raise the keep fraction")
    chunk = max(1, int(_WORKING_SET_PER_DIM * N))
    # Support vectors have the smallest margins; the least-squares fit to
    # margin 1 is a cheap first guess at which those are.
    w_ls = np.linalg.lstsq(G, np.ones(P), rcond=None)[0]
    work = np.argsort(G @ w_ls)[:chunk]
    for _ in range(_MAX_ROUNDS):
        w, u = _least_distance(G[work])
        margins = G @ w
        violators = np.flatnonzero(margins < 1.0 - _MARGIN_TOL)
        if violators.size == 0:
            return w
        worst = violators[np.argsort(margins[violators])[:chunk]]
        work = np.union1d(work[u > 0], worst)
    return _least_distance(G)[0]  # never seen; the full problem is exact too


def _single_threaded_blas():
    """Limit BLAS to one thread while simulating, where threadpoolctl exists.

    The matrices here are ~N x 2N with N ~ 200: too small to gain from
    threads, and on a shared or small machine BLAS threads oversubscribe the
    cores and run several times slower.
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # optional; results are identical without it
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def _teacher_and_probe(rng: np.random.Generator, n_dim: int, theta: float):
    """Unit teacher T and a unit probe at angle theta to it."""
    T = rng.standard_normal(n_dim)
    T /= np.linalg.norm(T)
    v = rng.standard_normal(n_dim)
    v -= (v @ T) * T
    v /= np.linalg.norm(v)
    return T, math.cos(theta) * T + math.sin(theta) * v


def keep_by_margin(z: np.ndarray, f: float, strategy: str) -> np.ndarray:
    """Indices of exactly round(f * len(z)) examples chosen by probe margin |z|.

    keep hard keeps the smallest |z| (near the probe's boundary), keep easy
    the largest.
    """
    n_keep = int(round(f * len(z)))
    order = np.argsort(np.abs(z), kind="stable")
    return order[:n_keep] if strategy == "hard" else order[len(z) - n_keep :]


def simulate_once(alpha_tot: float, f: float, theta: float, strategy: str, n_dim: int, seed: int) -> float:
    """Generalisation error of one max-margin student on one pruned draw."""
    rng = np.random.default_rng(seed)
    T, probe = _teacher_and_probe(rng, n_dim, theta)
    P = int(round(alpha_tot * n_dim))
    X = rng.standard_normal((P, n_dim))
    y = np.sign(X @ T)
    keep = keep_by_margin(X @ probe, f, strategy)
    w = max_margin_weights(X[keep], y[keep])
    overlap = float(w @ T) / float(np.linalg.norm(w))
    return math.acos(min(1.0, max(-1.0, overlap))) / math.pi


def simulate(
    alpha_tot: float, f: float, theta: float = 0.0, strategy: str = "hard", n_dim: int = 200, seeds: int = 10
) -> tuple[float, float]:
    """Mean generalisation error over seeds and its standard error.

    alpha_tot: examples per dimension before pruning; f: keep fraction;
    theta: probe-teacher angle (0 = perfect metric); strategy: "hard" or
    "easy".  Seeds 0 .. seeds-1 feed numpy's default_rng.
    """
    if strategy not in ("hard", "easy"):
        raise CurateError(f"unknown pruning strategy {strategy!r}; use 'hard' or 'easy'")
    if not (0.0 < f <= 1.0):
        raise CurateError(f"the keep fraction f must lie in (0, 1], got {f!r}")
    if int(round(f * alpha_tot * n_dim)) < 1:
        raise CurateError("fewer than one example would be kept; raise alpha_tot or f")
    with _single_threaded_blas():
        errors = np.array([simulate_once(alpha_tot, f, theta, strategy, n_dim, s) for s in range(seeds)])
    stderr = float(errors.std(ddof=1) / math.sqrt(seeds)) if seeds > 1 else math.nan
    return float(errors.mean()), stderr


# Points where the theory and a finite-N simulation should agree (keep easy
# at large alpha needs N >= 400 for its finite-size correction to fade).
COMPARISON_POINTS = (
    # alpha_tot, f, theta, strategy, N
    (1.0, 0.5, 0.0, "hard", 200),
    (1.0, 0.5, 0.0, "easy", 200),
    (4.0, 0.5, 0.0, "hard", 200),
    (4.0, 0.5, 0.0, "easy", 200),
    (10.0, 0.3, 0.0, "hard", 200),
    (10.0, 0.3, 0.0, "easy", 400),
    (20.0, 0.2, 0.0, "hard", 200),
    (2.0, 0.6, 0.5, "hard", 200),
    (2.0, 0.6, 0.5, "easy", 200),
    (4.0, 0.5, 0.3, "hard", 200),
    (4.0, 0.5, 0.3, "easy", 200),
    (10.0, 0.3, 0.2, "hard", 200),
    (10.0, 0.3, 0.2, "easy", 400),
    (20.0, 0.1, 0.3, "hard", 200),
    (5.0, 1.0, 0.0, "hard", 200),
    (10.0, 1.0, 0.0, "hard", 200),
)


def compare(points=COMPARISON_POINTS, seeds: int = 10) -> list[dict]:
    """Theory against simulation at each (alpha_tot, f, theta, strategy, N)."""
    from backend.scaling.theory import solve

    rows = []
    for alpha_tot, f, theta, strategy, n_dim in points:
        mean, stderr = simulate(alpha_tot, f, theta, strategy, n_dim=n_dim, seeds=seeds)
        predicted = solve(f * alpha_tot, f, theta, strategy).error
        rows.append(
            dict(
                alpha_tot=alpha_tot,
                f=f,
                theta=theta,
                strategy=strategy,
                n_dim=n_dim,
                simulated=mean,
                stderr=stderr,
                theory=predicted,
                z=(mean - predicted) / stderr,
            )
        )
    return rows


if __name__ == "__main__":  # python -m backend.scaling.simulate
    print("| alpha_tot | f | theta | strategy | N | simulated (mean ± stderr) | theory | (sim - theory)/stderr |")
    print("|---|---|---|---|---|---|---|---|")
    for r in compare():
        print(
            f"| {r['alpha_tot']:g} | {r['f']:g} | {r['theta']:g} | {r['strategy']} "
            f"| {r['n_dim']} | {r['simulated']:.4f} ± {r['stderr']:.4f} | {r['theory']:.4f} "
            f"| {r['z']:+.2f} |",
            flush=True,
        )
