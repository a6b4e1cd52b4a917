"""Teacher-student perceptron theory of data pruning (method.md section 3).

Vocabulary (method.md section 1): ``alpha`` is the number of examples per
input dimension, ``alpha_tot`` before pruning and ``alpha_prune = f *
alpha_tot`` after; ``f`` is the keep fraction; ``theta`` is the angle between
the pruning probe and the teacher (0 = a perfect difficulty metric);
"keep hard" keeps the examples with the smallest probe margin |z| < gamma,
"keep easy" those with |z| > gamma.  The generalisation ``error`` of the
max-margin student is arccos(R)/pi, where R is its overlap with the teacher:
higher error = worse.

The replica saddle-point equations are solved with ``scipy.optimize.root``.
Every unknown is mapped to an unbounded variable (artanh R, log kappa, and
for theta > 0 a variable for the student-probe overlap rho) so the root
finder cannot step outside the physical region.  The integrands develop
steps and ridges of width ~sqrt(1 - R^2) as R -> 1, so every integral is a
composite Gauss-Legendre rule whose breakpoints sit on those features and
scale with their width: the rule is exact to ~1e-10 from alpha ~ 0.01 up to
errors of ~1e-4.

Solutions are cached, and each new solve is seeded from the nearest solved
alpha of the same (f, theta, strategy) (continuation along alpha), which is
what keeps whole curves fast.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np
from scipy import optimize, special

from backend.errors import CurateError

STRATEGIES = ("hard", "easy")
SQRT_2PI = math.sqrt(2.0 * math.pi)

# Gauss-Legendre nodes per segment of the composite rules.
_N_NODES_1D = 24
_N_NODES_T = 12
_N_NODES_Z = 16
# Where the Gaussian weights are negligible (phi(10) ~ 8e-23).
_TAIL = 10.0
# Breakpoints around a step of width w, in units of w.  The outermost ones
# are where erfc has decayed below double precision.
_STEP_OFFSETS = np.array([-9.0, -4.0, -2.0, -1.0, 0.0, 1.0, 2.0, 4.0, 9.0])

_SOLVE_TOL = 1e-11


@dataclass(frozen=True)
class TheoryPoint:
    """One solution of the saddle-point equations.

    ``R`` is the student-teacher overlap, ``kappa`` the max margin (in units
    of the field's standard deviation), ``rho`` the student-probe overlap
    (None at theta = 0, where the probe is the teacher), ``error`` =
    arccos(R)/pi the generalisation error (higher = worse).  ``converged``
    is False when the root finder did not meet its tolerance; the numbers are
    then the best iterate and should not be trusted.
    """

    alpha_prune: float
    f: float
    theta: float
    strategy: str
    R: float
    kappa: float
    rho: float | None
    error: float
    converged: bool

    @property
    def alpha_tot(self) -> float:
        """Examples per dimension before pruning (alpha_prune / f)."""
        return self.alpha_prune / self.f


# ---------------------------------------------------------------------------
# small helpers


def H(x):
    """Gaussian tail H(x) = int_x^inf Dt, accurate deep into both tails."""
    return special.ndtr(-np.asarray(x, dtype=float))


def gamma_for(f: float, strategy: str) -> float:
    """Probe-margin threshold gamma that keeps a fraction f of the examples.

    keep hard keeps |z| < gamma with f = 1 - 2H(gamma); keep easy keeps
    |z| > gamma with f = 2H(gamma).  f = 1 gives gamma = inf (hard) or
    gamma = 0 (easy): nothing is pruned either way.
    """
    if strategy == "hard":
        return math.inf if f >= 1.0 else float(special.ndtri(0.5 * (1.0 + f)))
    return 0.0 if f >= 1.0 else float(-special.ndtri(0.5 * f))


def error_from_R(R: float) -> float:
    """Generalisation error of a student with teacher overlap R."""
    return math.acos(min(1.0, max(-1.0, R))) / math.pi


@functools.lru_cache(maxsize=None)
def _legendre(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Gauss-Legendre nodes and weights mapped to [0, 1]."""
    x, w = np.polynomial.legendre.leggauss(n)
    return 0.5 * (x + 1.0), 0.5 * w


def _composite_rule(breaks: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and weights of Gauss-Legendre on consecutive sorted breakpoints.

    ``breaks`` has shape (..., nb); the rule has shape (..., (nb - 1) * n).
    Zero-length segments get zero weight, which keeps the array shapes fixed
    (so everything vectorises) while breakpoints are clipped to the domain.
    """
    u, w = _legendre(n)
    lo, hi = breaks[..., :-1, None], breaks[..., 1:, None]
    nodes = lo + (hi - lo) * u
    weights = (hi - lo) * w
    shape = breaks.shape[:-1] + (-1,)
    return nodes.reshape(shape), weights.reshape(shape)


def _step_breaks(centre, width) -> np.ndarray:
    """Breakpoints resolving a smooth step (or ridge) at ``centre``."""
    # Features far outside every domain (|x| > 1e6, e.g. a step whose slope
    # diverges) are pinned there, so the arithmetic stays finite.
    centre = np.clip(np.nan_to_num(np.asarray(centre, dtype=float), nan=0.0), -1e6, 1e6)
    width = np.clip(np.nan_to_num(np.asarray(width, dtype=float), nan=1e6), 0.0, 1e6)
    return centre[..., None] + width[..., None] * _STEP_OFFSETS


def _clipped_sorted(breaks: np.ndarray, lo, hi) -> np.ndarray:
    """Clip breakpoints into [lo, hi], add the ends, sort along the last axis."""
    lo = np.broadcast_to(np.asarray(lo, dtype=float), breaks.shape[:-1])[..., None]
    hi = np.broadcast_to(np.asarray(hi, dtype=float), breaks.shape[:-1])[..., None]
    inner = np.clip(breaks, lo, hi)
    return np.sort(np.concatenate([lo, inner, hi], axis=-1), axis=-1)


# ---------------------------------------------------------------------------
# theta = 0: a perfect probe; unknowns (R, kappa)


def _theta0_integrals(R: float, kappa: float, gamma: float, strategy: str):
    """The two t-integrals on the right of the theta = 0 equations.

    Returns (A, B) with, for keep hard,
      A = int^kappa Dt [H(-Rt/s) - H((gamma - Rt)/s)] (kappa - t)^2
      B = int^kappa Dt e^{-R^2 t^2/(2s^2)} [1 - e^{-gamma(gamma - 2Rt)/(2s^2)}] (kappa - t)
    and for keep easy
      A = int^kappa Dt H((gamma - Rt)/s) (kappa - t)^2
      B = int^kappa Dt e^{-(gamma - Rt)^2/(2s^2)} (kappa - t).
    """
    s = math.sqrt(max(1.0 - R * R, 1e-300))
    width = s / R  # both steps are erfc's of width s/R in t
    edge = gamma / R  # the student field of an example at the keep edge
    centres = [edge] if strategy == "easy" else [0.0, edge]
    breaks = np.concatenate([_step_breaks(c, width) for c in centres])
    t, w = _composite_rule(_clipped_sorted(breaks, -_TAIL, kappa), _N_NODES_1D)
    gauss = np.exp(-0.5 * t * t) / SQRT_2PI
    gap = kappa - t
    if strategy == "easy":
        kept = H((gamma - R * t) / s)
        ridge = np.exp(-0.5 * ((gamma - R * t) / s) ** 2)
    else:
        # Fraction of examples with student field t whose teacher field lies
        # in (0, gamma).  Written as a difference of lower tails for t far
        # above the window to avoid cancelling two numbers close to 1.
        upper = t > 0.5 * edge
        kept = np.where(upper,
                        special.ndtr((gamma - R * t) / s) - special.ndtr(-R * t / s),
                        H(-R * t / s) - H((gamma - R * t) / s))
        # e^{-R^2t^2/2s^2}[1 - e^{-gamma(gamma-2Rt)/2s^2}] expanded, so the
        # second exponential never overflows.
        ridge = np.exp(-0.5 * (R * t / s) ** 2)
        if math.isfinite(gamma):
            ridge = ridge - np.exp(-0.5 * ((gamma - R * t) / s) ** 2)
    A = np.sum(w * gauss * kept * gap * gap)
    B = np.sum(w * gauss * ridge * gap)
    return A, B


def _theta0_residual(x: np.ndarray, alpha: float, f: float, gamma: float, strategy: str):
    """Relative residuals of the two theta = 0 equations in (artanh R, log kappa)."""
    R = math.tanh(x[0])
    kappa = math.exp(x[1])
    if not (0.0 < R < 1.0):
        return np.array([1e3, 1e3])
    s = math.sqrt(1.0 - R * R)
    A, B = _theta0_integrals(R, kappa, gamma, strategy)
    # Both sides go to 0 as R -> 1, so compare them as a ratio.
    lhs1 = s * s * f / (2.0 * alpha)
    lhs2 = R * SQRT_2PI * s * f / (2.0 * alpha)
    return np.array([A / lhs1 - 1.0, B / lhs2 - 1.0])


def _theta0_initial_guess(alpha: float) -> np.ndarray:
    """A rough (artanh R, log kappa) for the unpruned problem at any alpha.

    Interpolates the small-alpha behaviour (R ~ sqrt(2 alpha / pi), kappa ~
    1/sqrt(alpha)) and the large-alpha one (error ~ 0.5/alpha).  Only used to
    start the continuation from a modest alpha.
    """
    err = 0.5 / (alpha + 1.0)
    R = math.cos(math.pi * err)
    kappa = 1.0 / math.sqrt(alpha + 0.3)
    return np.array([math.atanh(R), math.log(kappa)])


# ---------------------------------------------------------------------------
# theta > 0: an imperfect probe; unknowns (R, rho, kappa)
#
# The student-probe overlap is parametrised as rho = R cos(theta) +
# a sin(theta) with a = sqrt(1 - R^2) tanh(x1): then
# Lambda^2 = sin^2(theta) (1 - R^2 - a^2) > 0 for every x1, i.e. the root
# finder cannot leave the region where (teacher, probe, student) are three
# real unit vectors.  x1 = 0 is the seed rho = R cos(theta).


def _unpack_theta(x: np.ndarray, theta: float):
    R = math.tanh(x[0])
    a = math.sqrt(max(1.0 - R * R, 0.0)) * math.tanh(x[1])
    rho = R * math.cos(theta) + a * math.sin(theta)
    kappa = math.exp(x[2])
    return R, rho, kappa


def _pack_theta(R: float, rho: float, kappa: float, theta: float) -> np.ndarray:
    a = (rho - R * math.cos(theta)) / math.sin(theta)
    frac = a / math.sqrt(1.0 - R * R)
    frac = min(max(frac, -1.0 + 1e-12), 1.0 - 1e-12)
    return np.array([math.atanh(R), math.atanh(frac), math.log(kappa)])


def _z_rule(gamma: float, f: float, strategy: str, extra_breaks: np.ndarray):
    """Nodes and weights of <.>_z: density e^{-z^2/2}/(sqrt(2 pi) f) on the kept z."""
    if strategy == "hard":
        intervals = [(-gamma, 0.0), (0.0, gamma)] if math.isfinite(gamma) else \
            [(-_TAIL, 0.0), (0.0, _TAIL)]
    else:
        lo = max(gamma, 0.0)
        intervals = [(-max(_TAIL, lo + 6.0), -lo), (lo, max(_TAIL, lo + 6.0))]
    extra = np.asarray(extra_breaks, dtype=float).ravel()
    extra = extra[np.isfinite(extra)]
    nodes, weights = [], []
    for a, b in intervals:
        # The z rule need not keep a fixed shape, so drop empty segments.
        breaks = np.unique(_clipped_sorted(extra, a, b))
        z, w = _composite_rule(breaks, _N_NODES_Z)
        nodes.append(z)
        weights.append(w)
    z = np.concatenate(nodes)
    w = np.concatenate(weights) * np.exp(-0.5 * z * z) / (SQRT_2PI * f)
    return z, w


def _theta_terms(R: float, rho: float, kappa: float, gamma: float, f: float,
                 theta: float, strategy: str):
    """The z-averaged t-integrals of equations (1)-(3), without prefactors.

    Returns (I1, I2, I3) with
      I1 = <int^kappa dt e^{-Delta/2Lambda^2} (kappa - t)>_z
      I2 = <int^kappa dt N(t; rho z, 1-rho^2) H(Gamma/(sqrt(1-rho^2) Lambda)) (kappa - t)^2>_z
      I3 = <int^kappa dt [N H (z - rho t)/(1-rho^2) (kappa - t)
                          + e^{-Delta/2Lambda^2}/(2 pi Lambda) (rho R - cos)/(1-rho^2) (kappa - t)]>_z
    and Lambda.
    """
    c, s2 = math.cos(theta), math.sin(theta) ** 2
    lam2 = s2 - R * R - rho * rho + 2.0 * rho * R * c
    lam = math.sqrt(max(lam2, 1e-300))
    sig = math.sqrt(1.0 - rho * rho)  # sd of the student field given z
    # H(Gamma/(sig Lambda)) is a step in t at t = slope * z of width `width`.
    drive = R - rho * c
    slope = (rho * R - c) / drive if drive != 0.0 else math.inf
    width = sig * lam / abs(drive) if drive != 0.0 else math.inf

    # After the t-integral the z-integrand still has sharp features where a
    # feature crosses the upper limit t = kappa: the step (Gamma = 0, of
    # z-width sig*Lambda/|rho R - cos|; nearly vertical in the (t, z) plane
    # when R ~ rho cos(theta), as for keep easy) and the bulk of N(t; rho z).
    tilt = rho * R - c
    z_breaks = []
    if tilt != 0.0:
        z_breaks.append(_step_breaks(kappa * drive / tilt, sig * lam / abs(tilt)))
    if rho != 0.0:
        z_breaks.append(_step_breaks(kappa / rho, sig / abs(rho)))
    z, wz = _z_rule(gamma, f, strategy, np.concatenate(z_breaks) if z_breaks else np.array([]))

    t_breaks = np.concatenate([_step_breaks(slope * z, np.full_like(z, width)),
                               _step_breaks(rho * z, np.full_like(z, sig))], axis=-1)
    t_lo = np.minimum(rho * z - _TAIL * sig, kappa)
    t, wt = _composite_rule(_clipped_sorted(t_breaks, t_lo, kappa), _N_NODES_T)
    zz = z[:, None]

    g = (zz * (rho * R - c) - t * drive) / (sig * lam)
    mean_dev = (t - rho * zz) / sig
    normal = np.exp(-0.5 * mean_dev ** 2) / (SQRT_2PI * sig)  # N(t; rho z, 1 - rho^2)
    # e^{-Delta/(2 Lambda^2)}, written as the product it came from (see
    # tests): N(t; rho z, 1-rho^2) phi(g) = e^{-Delta/2Lambda^2} / (2 pi sig).
    ridge = np.exp(-0.5 * mean_dev ** 2 - 0.5 * g * g)
    nh = normal * H(g)
    gap = kappa - t

    def average(integrand):
        return float(np.sum(wz * np.sum(wt * integrand, axis=1)))

    I1 = average(ridge * gap)
    I2 = average(nh * gap * gap)
    I3 = average(nh * (zz - rho * t) / (sig * sig) * gap
                 + ridge / (2.0 * math.pi * lam) * (rho * R - c) / (sig * sig) * gap)
    return I1, I2, I3, lam


def _theta_residual(x: np.ndarray, alpha: float, f: float, gamma: float,
                    theta: float, strategy: str):
    """Residuals of equations (1)-(3) of method.md for theta > 0."""
    R, rho, kappa = _unpack_theta(x, theta)
    if not (0.0 < R < 1.0) or abs(rho) >= 1.0:
        return np.array([1e3, 1e3, 1e3])
    c, s2 = math.cos(theta), math.sin(theta) ** 2
    I1, I2, I3, lam = _theta_terms(R, rho, kappa, gamma, f, theta, strategy)
    lhs1 = (R - rho * c) / s2
    lhs2 = lam * lam / s2  # = 1 - (rho^2 + R^2 - 2 rho R cos)/sin^2
    lhs3 = (rho - R * c) / s2
    rhs1 = alpha / (math.pi * lam) * I1
    rhs2 = 2.0 * alpha * I2
    rhs3 = 2.0 * alpha * I3
    # (2) is compared as a ratio, as both sides vanish as R -> 1.  lhs1 and
    # lhs3 can each pass through zero (lhs1 ~ 0 for keep easy at small
    # theta, where R ~ rho cos(theta)), so (1) and (3) are plain differences.
    return np.array([rhs1 - lhs1, rhs2 / lhs2 - 1.0, rhs3 - lhs3])


def gardner_volume(R: float, kappa: float, alpha_prune: float, f: float,
                   theta: float = 0.0, strategy: str = "hard",
                   rho: float | None = None) -> float:
    """C = entropic term - alpha <(kappa - lambda)^2 Theta(kappa - lambda)>_kept.

    The max margin is the largest kappa at which max over (R, rho) of C is 0;
    the saddle-point equations are C = 0 and its stationarity in R (and rho).
    Exposed so tests can check the equations against finite differences.
    """
    strategy = _check_strategy(strategy)
    gamma = gamma_for(f, strategy)
    if theta == 0.0:
        A, _ = _theta0_integrals(R, kappa, gamma, strategy)
        return (1.0 - R * R) - 2.0 * alpha_prune / f * A
    if rho is None:
        rho = R * math.cos(theta)
    c, s2 = math.cos(theta), math.sin(theta) ** 2
    _, I2, _, _ = _theta_terms(R, rho, kappa, gamma, f, theta, strategy)
    return 1.0 - (rho * rho + R * R - 2.0 * rho * R * c) / s2 - 2.0 * alpha_prune * I2


# ---------------------------------------------------------------------------
# root finding with continuation


def _root(fun, x0: np.ndarray, args: tuple) -> tuple[np.ndarray, bool]:
    sol = optimize.root(fun, x0, args=args, method="hybr", tol=_SOLVE_TOL)
    x = sol.x
    ok = bool(np.all(np.isfinite(x))) and float(np.max(np.abs(fun(x, *args)))) < 1e-7
    return x, ok


def _march(fun, x_start: np.ndarray, path: Iterable[tuple]) -> tuple[np.ndarray, bool]:
    """Follow a path of argument tuples, warm-starting each step from the last."""
    x, ok = x_start, True
    for args in path:
        x, ok = _root(fun, x, args)
        if not ok:
            return x, False
    return x, ok


# Converged solutions by (strategy, f, theta): list of (log alpha, x).
_WARM: dict[tuple, list[tuple[float, np.ndarray]]] = {}


def _nearest_warm(key: tuple, alpha: float):
    entries = _WARM.get(key)
    if not entries:
        return None
    la = math.log(alpha)
    return min(entries, key=lambda e: abs(e[0] - la))


def _remember(key: tuple, alpha: float, x: np.ndarray) -> None:
    _WARM.setdefault(key, []).append((math.log(alpha), x.copy()))


def _alpha_path(a_from: float, a_to: float, ratio: float = 1.25) -> np.ndarray:
    """Geometric steps from a_from to a_to (a_to included), at most `ratio` apart."""
    n = max(1, math.ceil(abs(math.log(a_to / a_from)) / math.log(ratio)))
    return np.geomspace(a_from, a_to, n + 1)[1:]


def _solve_theta0(alpha: float, f: float, strategy: str) -> tuple[np.ndarray, bool]:
    """(artanh R, log kappa) at theta = 0, continuing along alpha if needed."""
    gamma = gamma_for(f, strategy)
    key = (strategy, f, 0.0)
    near = _nearest_warm(key, alpha)
    if near is not None:
        x, ok = _root(_theta0_residual, near[1], (alpha, f, gamma, strategy))
        if not ok:  # too far from the neighbour: walk there in small steps
            a0 = math.exp(near[0])
            x, ok = _march(_theta0_residual, near[1],
                           [(a, f, gamma, strategy) for a in _alpha_path(a0, alpha, 1.1)])
    else:
        # Start where pruning barely matters (tiny alpha, any f) and walk.
        a0 = min(alpha, 0.05)
        x, ok = _march(_theta0_residual, _theta0_initial_guess(a0),
                       [(a0, f, gamma, strategy)] +
                       [(a, f, gamma, strategy) for a in _alpha_path(a0, alpha)])
    if ok:
        _remember(key, alpha, x)
    return x, ok


def _solve_theta(alpha: float, f: float, theta: float, strategy: str) -> tuple[np.ndarray, bool]:
    """(artanh R, x_rho, log kappa) at theta > 0."""
    gamma = gamma_for(f, strategy)
    key = (strategy, f, theta)
    args = (alpha, f, gamma, theta, strategy)
    near = _nearest_warm(key, alpha)
    if near is not None:
        x, ok = _root(_theta_residual, near[1], args)
        if ok:
            _remember(key, alpha, x)
            return x, ok
        a0 = math.exp(near[0])
        x, ok = _march(_theta_residual, near[1],
                       [(a, f, gamma, theta, strategy) for a in _alpha_path(a0, alpha, 1.1)])
        if ok:
            _remember(key, alpha, x)
            return x, ok
    # Seed from the perfect-probe solution with rho = R cos(theta) ...
    x0, ok0 = _solve_theta0(alpha, f, strategy)
    seed = np.array([x0[0], 0.0, x0[1]])
    x, ok = _root(_theta_residual, seed, args)
    if not ok:
        # ... and if the probe is too far from the teacher for that seed to
        # be good enough, rotate the probe away from the teacher in steps.
        steps = np.linspace(0.0, theta, max(2, math.ceil(theta / 0.05)) + 1)[1:]
        x, ok = _march(_theta_residual, seed,
                       [(alpha, f, gamma, th, strategy) for th in steps])
    if ok:
        _remember(key, alpha, x)
    return x, ok


def _check_strategy(strategy: str) -> str:
    if strategy not in STRATEGIES:
        raise CurateError(f"unknown pruning strategy {strategy!r}; use 'hard' or 'easy'")
    return strategy


def _check_args(alpha_prune: float, f: float, theta: float, strategy: str) -> None:
    _check_strategy(strategy)
    if not (alpha_prune > 0.0 and math.isfinite(alpha_prune)):
        raise CurateError(f"alpha_prune must be a positive number, got {alpha_prune!r}")
    if not (0.0 < f <= 1.0):
        raise CurateError(f"the keep fraction f must lie in (0, 1], got {f!r}")
    if not (0.0 <= theta < math.pi / 2):
        raise CurateError(f"the probe angle theta must lie in [0, pi/2), got {theta!r}")


def _key(x: float) -> float:
    """Round an argument so near-identical calls share one cache entry."""
    return float(f"{x:.10g}")


def solve(alpha_prune: float, f: float, theta: float = 0.0, strategy: str = "hard") -> TheoryPoint:
    """Max-margin student trained on a pruned teacher-student data set.

    alpha_prune: examples per dimension kept after pruning (f * alpha_tot).
    f: keep fraction in (0, 1]; f = 1 is the unpruned max-margin perceptron
       (strategy and theta then do not matter).
    theta: angle between the pruning probe and the teacher, 0 = perfect.
    strategy: "hard" keeps the smallest probe margins, "easy" the largest.

    Returns a TheoryPoint; ``converged`` is False if the root finder failed.
    """
    _check_args(alpha_prune, f, theta, strategy)
    if f >= 1.0:
        # Nothing is pruned, so the probe is irrelevant; by symmetry the
        # student-probe overlap is then R cos(theta).
        point = _solve_cached(_key(alpha_prune), 1.0, 0.0, "hard")
        rho = None if theta == 0.0 else point.R * math.cos(theta)
        return TheoryPoint(point.alpha_prune, 1.0, theta, strategy, point.R, point.kappa,
                           rho, point.error, point.converged)
    return _solve_cached(_key(alpha_prune), _key(f), _key(theta), strategy)


@functools.lru_cache(maxsize=65536)
def _solve_cached(alpha: float, f: float, theta: float, strategy: str) -> TheoryPoint:
    if theta == 0.0:
        x, ok = _solve_theta0(alpha, f, strategy)
        R, kappa, rho = math.tanh(x[0]), math.exp(x[1]), None
    else:
        x, ok = _solve_theta(alpha, f, theta, strategy)
        R, rho, kappa = _unpack_theta(x, theta)
    return TheoryPoint(alpha, f, theta, strategy, R, kappa, rho, error_from_R(R), ok)


# ---------------------------------------------------------------------------
# curves


def error_curve(alphas, f: float, theta: float = 0.0, strategy: str = "hard") -> np.ndarray:
    """Error against alpha_prune at fixed keep fraction f (NaN where unsolved).

    Points are solved in increasing alpha so each warm-starts the next.
    """
    alphas = np.atleast_1d(np.asarray(alphas, dtype=float))
    out = np.full(alphas.shape, np.nan)
    for i in np.argsort(alphas, kind="stable"):
        p = solve(float(alphas[i]), f, theta, strategy)
        if p.converged:
            out[i] = p.error
    return out


def random_curve(alphas) -> np.ndarray:
    """Error of random pruning against alpha_prune.

    A random subset is just a smaller i.i.d. data set, so random pruning to
    alpha_prune is the unpruned (f = 1) max-margin curve at alpha_prune.
    """
    return error_curve(alphas, 1.0)


DEFAULT_FS = (0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


def pareto_frontier(alpha_prune_grid, alpha_pool_max: float, theta: float = 0.0,
                    fs: Sequence[float] = DEFAULT_FS):
    """Lowest error at each pruned size over keep fractions, for a capped pool.

    For each alpha_prune the candidates are keep hard and keep easy at every
    f in ``fs`` with alpha_tot = alpha_prune / f <= alpha_pool_max, plus
    f = 1 (no pruning, which needs alpha_prune <= alpha_pool_max).  Capping
    the pool matters: with a perfect probe and unlimited data the frontier
    collapses towards zero error.

    Returns (alpha_prune, error, best_f, best_strategy) as arrays; best
    strategy is "hard", "easy" or "none" (f = 1); points with no admissible
    candidate have error NaN, best_f NaN and strategy "".
    """
    alphas = np.asarray(alpha_prune_grid, dtype=float)
    best_err = np.full(alphas.shape, np.inf)
    best_f = np.full(alphas.shape, np.nan)
    best_strategy = np.full(alphas.shape, "", dtype=object)

    candidates = [(1.0, "none")] + [(float(f), s) for f in fs if f < 1.0 for s in STRATEGIES]
    for f, label in candidates:
        ok = alphas / f <= alpha_pool_max * (1.0 + 1e-12)
        if not np.any(ok):
            continue
        errs = error_curve(alphas[ok], f, theta, "hard" if label == "none" else label)
        idx = np.flatnonzero(ok)
        better = np.isfinite(errs) & (errs < best_err[idx])
        best_err[idx[better]] = errs[better]
        best_f[idx[better]] = f
        best_strategy[idx[better]] = label
    best_err[~np.isfinite(best_err)] = np.nan
    return alphas, best_err, best_f, best_strategy.astype(str)


def _first_crossing(fun, grid: np.ndarray) -> float:
    """Root of fun at its first sign change from > 0 to <= 0 along grid (NaN if none)."""
    prev_x, prev_v = None, None
    for x in grid:
        v = fun(x)
        if not np.isfinite(v):
            prev_x, prev_v = None, None
            continue
        if prev_v is not None and prev_v > 0.0 >= v:
            return float(optimize.brentq(fun, prev_x, x, xtol=1e-6, rtol=1e-6))
        prev_x, prev_v = x, v
    return math.nan


def crossover_alpha_tot(f: float, theta: float = 0.0,
                        alpha_tot_range: tuple[float, float] = (0.05, 2000.0)) -> float:
    """alpha_tot above which keep hard beats keep easy at keep fraction f.

    Root of err_hard - err_easy in alpha_tot at alpha_prune = f * alpha_tot:
    keep easy has the lower error below it, keep hard above it.  NaN if the
    two do not cross inside alpha_tot_range.
    """
    if not (0.0 < f < 1.0):
        raise CurateError(f"the crossover needs a keep fraction in (0, 1), got {f!r}")

    def diff(log_at: float) -> float:
        a = f * math.exp(log_at)
        hard, easy = solve(a, f, theta, "hard"), solve(a, f, theta, "easy")
        if not (hard.converged and easy.converged):
            return math.nan
        return hard.error - easy.error

    grid = np.linspace(math.log(alpha_tot_range[0]), math.log(alpha_tot_range[1]), 41)
    root = _first_crossing(diff, grid)
    return math.exp(root) if np.isfinite(root) else math.nan


def min_useful_fraction(alpha_tot: float, theta: float, f_min: float = 0.01) -> float:
    """Smallest keep fraction at which keep hard is no worse than random.

    With data alpha_tot and a probe at angle theta, keep hard at fraction f
    is compared with a random subset of the same size (the unpruned curve at
    alpha_prune = f * alpha_tot).  Walking down from f = 1, returns the f
    below which keep hard starts to lose.  Returns 1.0 if keep hard loses
    already just below f = 1 (pruning this way never helps), and f_min if it
    still wins at f_min.
    """
    def diff(log_f: float) -> float:
        f = math.exp(log_f)
        a = f * alpha_tot
        hard = solve(a, f, theta, "hard")
        rand = solve(a, 1.0)
        if not (hard.converged and rand.converged):
            return math.nan
        return rand.error - hard.error  # > 0 while keep hard wins

    grid = np.linspace(math.log(0.98), math.log(f_min), 40)
    if diff(grid[0]) <= 0.0:
        return 1.0
    root = _first_crossing(diff, grid)
    return math.exp(root) if np.isfinite(root) else f_min
