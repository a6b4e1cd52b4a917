"""Teacher-student perceptron theory of data pruning (method.md section 3).

Vocabulary (method.md section 1): ``alpha`` is the number of examples per
input dimension, ``alpha_tot`` before pruning and ``alpha_prune = f *
alpha_tot`` after; ``f`` is the keep fraction; ``theta`` is the angle between
the pruning probe and the teacher (0 = a perfect difficulty metric);
"keep hard" keeps the examples with the smallest probe margin |z| < gamma,
"keep easy" those with |z| > gamma.  The generalisation ``error`` of the
max-margin student is arccos(R)/pi, where R is its overlap with the teacher:
higher error = worse.

The replica saddle-point equations of method.md are solved with
``scipy.optimize.root``.  Every unknown is mapped to an unbounded variable
(artanh R, log kappa and, for theta > 0, x_rho with rho = R cos(theta) +
sin(theta) sqrt(1 - R^2) tanh(x_rho), i.e. x_rho = 0 is the seed rho =
R cos(theta)), so the root finder cannot leave the region where teacher,
probe and student are real unit vectors.  The integrands develop steps and
ridges of width ~sqrt(1 - R^2) as R -> 1, so every integral is a composite
Gauss-Legendre rule whose breakpoints sit on those features and scale with
their width.  Checked against a rule three times finer: relative error
below 1e-7 for alpha_prune in [0.1, 100], f in [0.05, 0.8], theta up to 0.6.

Solutions are cached, and each new solve is seeded from the nearest solved
alphas of the same (f, theta, strategy) (continuation along alpha), which is
what keeps whole curves fast.  Known limits: for f <= 0.01 with theta > 0
and alpha_prune >~ 1000 the equations become nearly degenerate and answers
there (errors ~ 1e-5) are only good to tens of per cent.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import optimize, special

from backend.errors import CurateError

STRATEGIES = ("hard", "easy")
SQRT_2PI = math.sqrt(2.0 * math.pi)

# Gauss-Legendre nodes per segment of the composite rules.
_N_NODES_1D = 24
_N_NODES_T = 10
_N_NODES_Z = 12
# Where the Gaussian weights are negligible (phi(10) ~ 8e-23).
_TAIL = 10.0
# Breakpoints around a step of width w, in units of w.  The outermost ones
# are where erfc has decayed below double precision.
_STEP_OFFSETS = np.array([-9.0, -4.0, -2.0, -1.0, 0.0, 1.0, 2.0, 4.0, 9.0])
# A Gaussian bump is smooth on its own scale and needs fewer breakpoints;
# after the t-integral its edge at t = kappa is an erfc in z, hence more there.
_BULK_OFFSETS = np.array([-3.0, 0.0, 3.0])
_BULK_OFFSETS_Z = np.array([-6.0, -3.0, -1.0, 0.0, 1.0, 3.0, 6.0])
# At an integration limit only the inner side matters (the rest is clipped).
_EDGE_OFFSETS = np.array([-9.0, -3.0, -1.0, 1.0, 3.0, 9.0])

_SOLVE_TOL = 1e-9


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


def error_from_R(R: float, s: float | None = None) -> float:
    """Generalisation error arccos(R)/pi of a student with teacher overlap R.

    Pass s = sqrt(1 - R^2) when it is known more accurately than R itself
    (R -> 1): the angle is then atan2(s, R), which keeps its precision.
    """
    if s is None:
        return math.acos(min(1.0, max(-1.0, R))) / math.pi
    return math.atan2(s, R) / math.pi


@functools.cache
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


def _step_breaks(centre, width, offsets: np.ndarray = _STEP_OFFSETS) -> np.ndarray:
    """Breakpoints resolving a smooth step (or ridge) at ``centre``."""
    # Features far outside every domain (|x| > 1e6, e.g. a step whose slope
    # diverges) are pinned there, so the arithmetic stays finite.
    centre = np.clip(np.nan_to_num(np.asarray(centre, dtype=float), nan=0.0), -1e6, 1e6)
    width = np.clip(np.nan_to_num(np.asarray(width, dtype=float), nan=1e6), 0.0, 1e6)
    return centre[..., None] + width[..., None] * offsets


def _clipped_sorted(breaks: np.ndarray, lo, hi) -> np.ndarray:
    """Clip breakpoints into [lo, hi], add the ends, sort along the last axis."""
    lo = np.broadcast_to(np.asarray(lo, dtype=float), breaks.shape[:-1])[..., None]
    hi = np.broadcast_to(np.asarray(hi, dtype=float), breaks.shape[:-1])[..., None]
    inner = np.clip(breaks, lo, hi)
    return np.sort(np.concatenate([lo, inner, hi], axis=-1), axis=-1)


# ---------------------------------------------------------------------------
# theta = 0: a perfect probe; unknowns (R, kappa)


def _theta0_integrals(R: float, s: float, kappa: float, gamma: float, strategy: str):
    """The two t-integrals on the right of the theta = 0 equations.

    Returns (A, B) with, for keep hard,
      A = int^kappa Dt [H(-Rt/s) - H((gamma - Rt)/s)] (kappa - t)^2
      B = int^kappa Dt e^{-R^2 t^2/(2s^2)} [1 - e^{-gamma(gamma - 2Rt)/(2s^2)}] (kappa - t)
    and for keep easy
      A = int^kappa Dt H((gamma - Rt)/s) (kappa - t)^2
      B = int^kappa Dt e^{-(gamma - Rt)^2/(2s^2)} (kappa - t).
    s = sqrt(1 - R^2) is passed in, as 1 - R*R loses its digits as R -> 1.
    """
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
        kept = np.where(
            upper, special.ndtr((gamma - R * t) / s) - special.ndtr(-R * t / s), H(-R * t / s) - H((gamma - R * t) / s)
        )
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
    # Outside these ranges kappa or R are beyond anything physical (and the
    # hyperbolic functions would overflow).
    if not (-40.0 < x[1] < 40.0 and 0.0 < x[0] < 300.0):
        return np.array([1e3, 1e3])
    R, s = math.tanh(x[0]), 1.0 / math.cosh(x[0])  # s = sqrt(1 - R^2), exactly
    kappa = math.exp(x[1])
    A, B = _theta0_integrals(R, s, kappa, gamma, strategy)
    # Both sides go to 0 as R -> 1, so compare them as a ratio.
    lhs1 = s * s * f / (2.0 * alpha)
    lhs2 = R * SQRT_2PI * s * f / (2.0 * alpha)
    return np.array([A / lhs1 - 1.0, B / lhs2 - 1.0])


def _theta0_initial_guesses(alpha: float) -> list[np.ndarray]:
    """Candidate (artanh R, log kappa) at a small alpha, best first.

    At small alpha the margin is set by capacity, as for random labels
    (alpha = 1/(1 + kappa^2), Gardner), and the unpruned overlap is
    R ~ sqrt(2 alpha/pi).  Aggressive keep hard has a far smaller R, so a
    few smaller overlaps follow as fallbacks.
    """
    kappa = math.sqrt(max(1.0 / alpha - 1.0, 0.0) + 0.1)
    R = min(math.sqrt(2.0 * alpha / math.pi), 0.9)
    return [np.array([math.atanh(r), math.log(kappa)]) for r in (R, 0.3 * R, 0.03 * R, 0.9)]


# ---------------------------------------------------------------------------
# theta > 0: an imperfect probe; unknowns (R, rho, kappa)
#
# The student-probe overlap is parametrised as rho = R cos(theta) +
# a sin(theta) with a = sqrt(1 - R^2) tanh(x1): then
# Lambda^2 = sin^2(theta) (1 - R^2 - a^2) > 0 for every x1, i.e. the root
# finder cannot leave the region where (teacher, probe, student) are three
# real unit vectors.  x1 = 0 is the seed rho = R cos(theta).


@dataclass(frozen=True)
class _Overlaps:
    """Student overlaps at theta > 0, with the small quantities kept exact.

    s = sqrt(1 - R^2), a = (rho - R cos)/sin and lam = Lambda are all
    computed without cancelling numbers close to 1, which would otherwise
    cost up to 10 digits at errors ~ 1e-5.
    """

    R: float
    s: float
    rho: float
    a: float
    lam: float

    @classmethod
    def from_x(cls, x: np.ndarray, theta: float) -> _Overlaps:
        R, s = math.tanh(x[0]), 1.0 / math.cosh(x[0])
        a = s * math.tanh(x[1])
        lam = math.sin(theta) * s / math.cosh(x[1])  # sin * sqrt(s^2 - a^2)
        return cls(R, s, R * math.cos(theta) + a * math.sin(theta), a, lam)

    @classmethod
    def from_overlaps(cls, R: float, rho: float, theta: float) -> _Overlaps:
        s = math.sqrt(1.0 - R * R)
        a = (rho - R * math.cos(theta)) / math.sin(theta)
        return cls(R, s, rho, a, math.sin(theta) * math.sqrt(max(s * s - a * a, 0.0)))


def _z_rule(gamma: float, f: float, strategy: str, extra_breaks: np.ndarray):
    """Nodes and weights of <.>_z: density e^{-z^2/2}/(sqrt(2 pi) f) on the kept z."""
    if strategy == "hard":
        intervals = [(-gamma, 0.0), (0.0, gamma)] if math.isfinite(gamma) else [(-_TAIL, 0.0), (0.0, _TAIL)]
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


def _theta_terms(ov: _Overlaps, kappa: float, gamma: float, f: float, theta: float, strategy: str):
    """The z-averaged t-integrals of equations (1)-(3), without prefactors.

    Returns (I1, I2, I3) with
      I1 = <int^kappa dt e^{-Delta/2Lambda^2} (kappa - t)>_z
      I2 = <int^kappa dt N(t; rho z, 1-rho^2) H(Gamma/(sqrt(1-rho^2) Lambda)) (kappa - t)^2>_z
      I3 = <int^kappa dt [N H (z - rho t)/(1-rho^2) (kappa - t)
             + e^{-Delta/2Lambda^2}/(2 pi Lambda) (rho R - cos)/(1-rho^2) (kappa - t)]>_z
    """
    c, sn = math.cos(theta), math.sin(theta)
    R, rho, lam = ov.R, ov.rho, max(ov.lam, 1e-300)
    sig = math.sqrt(1.0 - rho * rho)  # sd of the student field given z
    # Gamma = z tilt - t drive; both coefficients written without cancellation.
    drive = R * sn * sn - ov.a * c * sn  # R - rho cos
    tilt = ov.a * sn * R - c * ov.s**2  # rho R - cos
    # H(Gamma/(sig Lambda)) is a step in t at t = slope * z of width `width`.
    slope = tilt / drive if drive != 0.0 else math.inf
    width = sig * lam / abs(drive) if drive != 0.0 else math.inf

    # After the t-integral the z-integrand still has sharp features where a
    # feature crosses the upper limit t = kappa: the step (Gamma = 0, of
    # z-width sig*Lambda/|rho R - cos|; nearly vertical in the (t, z) plane
    # when R ~ rho cos(theta), as for keep easy) and the bulk of N(t; rho z).
    # A near-vertical ridge also leaves the kept region through its edges
    # z = +-gamma, decaying on its own z-width there.
    z_breaks = []
    if tilt != 0.0:
        z_width = sig * lam / abs(tilt)
        z_breaks.append(_step_breaks(kappa * drive / tilt, z_width))
        if math.isfinite(gamma):
            z_breaks.append(_step_breaks(np.array([-gamma, gamma]), np.full(2, z_width), _EDGE_OFFSETS))
    if rho != 0.0:
        z_breaks.append(_step_breaks(kappa / rho, sig / abs(rho), _BULK_OFFSETS_Z))
    z, wz = _z_rule(gamma, f, strategy, np.concatenate([b.ravel() for b in z_breaks]) if z_breaks else np.array([]))

    t_breaks = np.concatenate(
        [_step_breaks(slope * z, np.full_like(z, width)), _step_breaks(rho * z, np.full_like(z, sig), _BULK_OFFSETS)],
        axis=-1,
    )
    t_lo = np.minimum(rho * z - _TAIL * sig, kappa)
    t, wt = _composite_rule(_clipped_sorted(t_breaks, t_lo, kappa), _N_NODES_T)
    # Breakpoints clipped onto an end give empty segments; where that happens
    # for every z the columns are dropped (often a third of them).
    used = np.any(wt != 0.0, axis=0)
    t, wt = t[:, used], wt[:, used]
    zz = z[:, None]

    g = (zz * tilt - t * drive) / (sig * lam)
    mean_dev = (t - rho * zz) / sig
    bulk = np.exp(-0.5 * mean_dev**2)
    normal = bulk / (SQRT_2PI * sig)  # N(t; rho z, 1 - rho^2)
    # e^{-Delta/(2 Lambda^2)}, written as the product it came from:
    # N(t; rho z, 1-rho^2) phi(g) = e^{-Delta/2Lambda^2} / (2 pi sig).
    ridge = bulk * np.exp(-0.5 * g * g)
    nh = normal * H(g)
    gap = kappa - t

    def average(integrand):
        return float(np.sum(wz * np.sum(wt * integrand, axis=1)))

    I1 = average(ridge * gap)
    I2 = average(nh * gap * gap)
    I3 = average(nh * (zz - rho * t) / (sig * sig) * gap + ridge / (2.0 * math.pi * lam) * tilt / (sig * sig) * gap)
    return I1, I2, I3


def _theta_residual(x: np.ndarray, alpha: float, f: float, gamma: float, theta: float, strategy: str):
    """Residuals of equations (1)-(3) of method.md for theta > 0."""
    if not (-40.0 < x[2] < 40.0 and 0.0 < x[0] < 300.0 and abs(x[1]) < 30.0):
        return np.array([1e3, 1e3, 1e3])  # beyond anything physical
    ov = _Overlaps.from_x(x, theta)
    kappa = math.exp(x[2])
    if abs(ov.rho) >= 1.0 or ov.lam <= 0.0:
        return np.array([1e3, 1e3, 1e3])
    c, sn = math.cos(theta), math.sin(theta)
    I1, I2, I3 = _theta_terms(ov, kappa, gamma, f, theta, strategy)
    lhs1 = (ov.R * sn - ov.a * c) / sn  # (R - rho cos)/sin^2
    lhs2 = (ov.lam / sn) ** 2  # 1 - (rho^2 + R^2 - 2 rho R cos)/sin^2
    lhs3 = ov.a / sn  # (rho - R cos)/sin^2
    rhs1 = alpha / (math.pi * ov.lam) * I1
    rhs2 = 2.0 * alpha * I2
    rhs3 = 2.0 * alpha * I3
    # (2) is compared as a ratio, as both sides vanish as R -> 1.  lhs1 and
    # lhs3 can each pass through zero (lhs1 ~ 0 for keep easy at small
    # theta, where R ~ rho cos(theta)), so (1) and (3) are plain differences.
    return np.array([rhs1 - lhs1, rhs2 / lhs2 - 1.0, rhs3 - lhs3])


def gardner_volume(
    R: float,
    kappa: float,
    alpha_prune: float,
    f: float,
    theta: float = 0.0,
    strategy: str = "hard",
    rho: float | None = None,
) -> float:
    """C = entropic term - alpha <(kappa - lambda)^2 Theta(kappa - lambda)>_kept.

    The max margin is the largest kappa at which max over (R, rho) of C is 0;
    the saddle-point equations are C = 0 and its stationarity in R (and rho).
    Exposed so tests can check the equations against finite differences.
    """
    strategy = _check_strategy(strategy)
    gamma = gamma_for(f, strategy)
    if theta == 0.0:
        A, _ = _theta0_integrals(R, math.sqrt(1.0 - R * R), kappa, gamma, strategy)
        return (1.0 - R * R) - 2.0 * alpha_prune / f * A
    if rho is None:
        rho = R * math.cos(theta)
    c, s2 = math.cos(theta), math.sin(theta) ** 2
    _, I2, _ = _theta_terms(_Overlaps.from_overlaps(R, rho, theta), kappa, gamma, f, theta, strategy)
    return 1.0 - (rho * rho + R * R - 2.0 * rho * R * c) / s2 - 2.0 * alpha_prune * I2


# ---------------------------------------------------------------------------
# root finding with continuation


def _root(fun, x0: np.ndarray, args: tuple) -> tuple[np.ndarray, bool]:
    """scipy's hybrid Powell from x0; ok only if every residual is below 1e-7."""
    sol = optimize.root(fun, x0, args=args, method="hybr", tol=_SOLVE_TOL)
    x = sol.x
    ok = bool(np.all(np.isfinite(x))) and float(np.max(np.abs(fun(x, *args)))) < 1e-7
    return x, ok


def _continue(
    fun, x: np.ndarray, start: float, stop: float, args_at, max_step: float, min_step: float = 1e-5
) -> tuple[np.ndarray, bool]:
    """Follow a root of fun from parameter `start` to `stop`.

    args_at(p) gives fun's extra arguments at parameter p.  Each step is
    seeded by linear extrapolation from the last two solutions (falling back
    to the last one); a failed step is halved and retried, so steep but
    continuous stretches (e.g. the sudden locking onto the teacher of
    aggressive keep hard, near alpha_prune = 2) are crossed.
    """
    p, step = start, max_step
    p_prev, x_prev = None, None
    while p != stop:
        nxt = stop if abs(stop - p) <= step else p + math.copysign(step, stop - p)
        guesses = [x]
        if p_prev is not None:
            guesses.insert(0, x + (x - x_prev) * (nxt - p) / (p - p_prev))
        for guess in guesses:
            x_new, ok = _root(fun, guess, args_at(nxt))
            if ok:
                break
        if ok:
            p_prev, x_prev, p, x = p, x, nxt, x_new
            step = min(max_step, 1.5 * step)
        else:
            step *= 0.5
            if step < min_step:
                return x, False
    return x, True


def _continue_alpha(fun, x: np.ndarray, a_from: float, a_to: float, args_at):
    """_continue in log(alpha), the natural scale of every curve here."""
    return _continue(
        fun, x, math.log(a_from), math.log(a_to), lambda la: args_at(math.exp(la)), max_step=math.log(1.25)
    )


# Converged solutions by (strategy, f, theta): list of (log alpha, x).
_WARM: dict[tuple, list[tuple[float, np.ndarray]]] = {}


def _warm_start(residual, key, alpha, args_at):
    """Root from the nearest solved alpha of this curve (walking there if it is far),
    else from the nearest solved f at this alpha; (x, ok), x None when nothing was cached."""
    x, ok, near = _warm_root(residual, key, alpha, args_at(alpha))
    if near is not None:
        if not ok:  # too far from the neighbour: walk there
            x, ok = _continue_alpha(residual, near[1], math.exp(near[0]), alpha, args_at)
    else:
        other = _nearest_other_f(key, alpha)
        if other is not None:
            x, ok = _root(residual, other[1], args_at(alpha))
    return x, ok


def _warm_root(fun, key: tuple, alpha: float, args: tuple):
    """Root at alpha seeded from stored solutions of the same problem.

    Tries the linear extrapolation (in log alpha) through the two nearest
    stored solutions, which along a curve saves about half the iterations,
    then the nearest one alone.  Returns (x, ok, nearest entry or None).
    """
    entries = _WARM.get(key)
    if not entries:
        return None, False, None
    la = math.log(alpha)
    ranked = sorted(entries, key=lambda e: abs(e[0] - la))
    guesses = []
    if len(ranked) > 1 and ranked[0][0] != ranked[1][0]:
        (l1, x1), (l2, x2) = ranked[0], ranked[1]
        guesses.append(x1 + (x1 - x2) * (la - l1) / (l1 - l2))
    guesses.append(ranked[0][1])
    for guess in guesses:
        x, ok = _root(fun, guess, args)
        if ok:
            return x, ok, ranked[0]
    return x, False, ranked[0]


def _nearest_other_f(key: tuple, alpha: float):
    """Closest solution at another keep fraction (same strategy and theta).

    Used as a seed when a keep fraction is solved for the first time, e.g.
    the whole-pool fractions of the Pareto frontier, which change with alpha.
    """
    strategy, f, theta = key
    best, best_d = None, math.inf
    for (s_, f_, th_), entries in _WARM.items():
        if s_ != strategy or th_ != theta or f_ == f:
            continue
        for la, x in entries:
            d = abs(la - math.log(alpha)) + 5.0 * abs(f_ - f)
            if d < best_d:
                best, best_d = (la, x), d
    return best


def _remember(key: tuple, alpha: float, x: np.ndarray) -> None:
    _WARM.setdefault(key, []).append((math.log(alpha), x.copy()))


# Where fresh continuations start: small enough that the margin is
# capacity-limited and the initial guesses work for every f.
_ALPHA_START = 0.05


def _solve_theta0(alpha: float, f: float, strategy: str) -> tuple[np.ndarray, bool]:
    """(artanh R, log kappa) at theta = 0, continuing along alpha if needed."""
    gamma = gamma_for(f, strategy)
    key = (strategy, f, 0.0)

    def args_at(a):
        return (a, f, gamma, strategy)

    x, ok = _warm_start(_theta0_residual, key, alpha, args_at)
    if not ok:
        a0 = min(alpha, _ALPHA_START)
        for guess in _theta0_initial_guesses(a0):
            x, ok = _root(_theta0_residual, guess, args_at(a0))
            if ok:
                break
        if ok and a0 < alpha:
            x, ok = _continue_alpha(_theta0_residual, x, a0, alpha, args_at)
    if ok:
        _remember(key, alpha, x)
    return x, ok


def _theta_from_perfect_probe(alpha: float, f: float, theta: float, strategy: str):
    """theta > 0 solution at one alpha, starting from the theta = 0 one.

    Seeded with rho = R cos(theta); if the probe is too far from the teacher
    for that seed, the probe is rotated away from the teacher in steps.
    """
    gamma = gamma_for(f, strategy)
    x0, ok0 = _solve_theta0(alpha, f, strategy)
    if not ok0:
        return x0, False
    seed = np.array([x0[0], 0.0, x0[1]])
    x, ok = _root(_theta_residual, seed, (alpha, f, gamma, theta, strategy))
    if not ok:
        th0 = min(theta, 0.02)
        x, ok = _root(_theta_residual, seed, (alpha, f, gamma, th0, strategy))
        if ok and th0 < theta:
            x, ok = _continue(_theta_residual, x, th0, theta, lambda th: (alpha, f, gamma, th, strategy), max_step=0.05)
    return x, ok


def _solve_theta(alpha: float, f: float, theta: float, strategy: str) -> tuple[np.ndarray, bool]:
    """(artanh R, x_rho, log kappa) at theta > 0; see _Overlaps for x_rho."""
    gamma = gamma_for(f, strategy)
    key = (strategy, f, theta)

    def args_at(a):
        return (a, f, gamma, theta, strategy)

    x, ok = _warm_start(_theta_residual, key, alpha, args_at)
    if not ok:
        x, ok = _theta_from_perfect_probe(alpha, f, theta, strategy)
    if not ok and alpha > _ALPHA_START:
        # Last resort: start where everything is smooth and walk up.
        x, ok = _theta_from_perfect_probe(_ALPHA_START, f, theta, strategy)
        if ok:
            x, ok = _continue_alpha(_theta_residual, x, _ALPHA_START, alpha, args_at)
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
        return TheoryPoint(
            point.alpha_prune, 1.0, theta, strategy, point.R, point.kappa, rho, point.error, point.converged
        )
    return _solve_cached(_key(alpha_prune), _key(f), _key(theta), strategy)


@functools.lru_cache(maxsize=65536)
def _solve_cached(alpha: float, f: float, theta: float, strategy: str) -> TheoryPoint:
    if theta == 0.0:
        x, ok = _solve_theta0(alpha, f, strategy)
        R, s, rho = math.tanh(x[0]), 1.0 / math.cosh(x[0]), None
    else:
        x, ok = _solve_theta(alpha, f, theta, strategy)
        ov = _Overlaps.from_x(x, theta)
        R, s, rho = ov.R, ov.s, ov.rho
    return TheoryPoint(alpha, f, theta, strategy, R, math.exp(x[-1]), rho, error_from_R(R, s), ok)


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


def pareto_frontier(
    alpha_prune_grid,
    alpha_pool_max: float,
    theta: float = 0.0,
    fs: Sequence[float] = DEFAULT_FS,
    whole_pool: bool = True,
):
    """Lowest error at each pruned size over keep fractions, for a capped pool.

    For each alpha_prune the candidates are keep hard and keep easy at every
    f in ``fs`` with alpha_tot = alpha_prune / f <= alpha_pool_max, plus
    f = 1 (no pruning, which needs alpha_prune <= alpha_pool_max).  With
    ``whole_pool`` the fraction that uses the entire pool, f = alpha_prune /
    alpha_pool_max, is a candidate too, so the frontier does not depend on
    how coarse ``fs`` is.  Capping the pool matters: with a perfect probe and
    unlimited data the frontier collapses towards zero error.

    Returns (alpha_prune, error, best_f, best_strategy) as arrays; best
    strategy is "hard", "easy" or "none" (f = 1, no pruning); points with no
    admissible candidate have error NaN, best_f NaN and strategy "".
    """
    alphas = np.asarray(alpha_prune_grid, dtype=float)
    best_err = np.full(alphas.shape, np.inf)
    best_f = np.full(alphas.shape, np.nan)
    best_strategy = np.full(alphas.shape, "", dtype=object)

    def offer(idx, errs, fractions, label):
        better = np.isfinite(errs) & (errs < best_err[idx])
        best_err[idx[better]] = errs[better]
        best_f[idx[better]] = np.broadcast_to(fractions, idx.shape)[better]
        best_strategy[idx[better]] = label

    # Fixed fractions: one continuation along alpha per (f, strategy).
    candidates = [(1.0, "none")] + [(float(f), s) for f in fs if f < 1.0 for s in STRATEGIES]
    for f, label in candidates:
        idx = np.flatnonzero(alphas / f <= alpha_pool_max * (1.0 + 1e-12))
        if idx.size:
            errs = error_curve(alphas[idx], f, theta, "hard" if label == "none" else label)
            offer(idx, errs, f, label)

    if whole_pool:
        # In increasing alpha each whole-pool fraction is seeded by the last.
        for i in np.argsort(alphas, kind="stable"):
            f = float(alphas[i]) / alpha_pool_max
            if not (0.0 < f < 1.0):
                continue
            for label in STRATEGIES:
                p = solve(float(alphas[i]), f, theta, label)
                if p.converged:
                    offer(np.array([i]), np.array([p.error]), f, label)

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


def crossover_alpha_tot(f: float, theta: float = 0.0, alpha_tot_range: tuple[float, float] = (0.05, 2000.0)) -> float:
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
