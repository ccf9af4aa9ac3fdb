"""Accuracy of the exact momentum curves near double roots, against 40-digit arithmetic.

Polyak's heavy-ball pair puts double roots of ``r^2 - (1 + beta - alpha lam) r + beta`` at
``lam = mu`` and ``lam = L``, Nesterov's ``beta`` one at ``lam = mu``. There the 2x2 matrix
powers are sensitive to rounding like the square root of its size: float64 binary powering
was off by up to ~5e-6 relative at ``kappa = 1e4``, ``t <= 3000`` (and rounding
``a = 1 + beta - alpha lam`` to float64 alone moves the curve by ~3e-10). The references
here are the same recurrences run forward in 40-digit arithmetic from the exact binary
values of the float64 inputs (``alpha``, ``beta``, ``lambda``, ``e0``).
"""

from __future__ import annotations

import functools
import math
from fractions import Fraction

import mpmath
import numpy as np
import pytest

import theory as th
from theory._recurrence import dd_add, dd_mul, two_prod, two_sum

KAPPA = 1e4
# requested steps up to 3000, with runs of consecutive integers (the doubling composes
# different bits for each) and the start
STEPS = np.unique(np.concatenate([np.arange(0, 12), np.arange(2495, 2510),
                                  np.geomspace(10, 3000, 25).astype(int), [3000]]))
# Measured error of the double-double evaluation: <= 5e-16 relative at these sizes; a
# float64-accurate result can differ from the 40-digit one by the final roundings (a few
# ulps per coordinate, sums of positive terms), so 1e-12 leaves a factor > 1000 while the
# float64 powering (5e-6) and a float64 coefficient a (3e-10) both fail.
RTOL = 1e-12


def _problem(L: float) -> tuple[np.ndarray, np.ndarray]:
    mu = L / KAPPA
    lam = np.geomspace(mu, L, 8)
    lam[0], lam[-1] = mu, L  # exact endpoints: the double roots
    return lam, 1.0 / np.sqrt(lam)


def _polyak(L: float) -> tuple[float, float]:
    mu = L / KAPPA
    sk = math.sqrt(KAPPA)
    return 4.0 / (math.sqrt(L) + math.sqrt(mu)) ** 2, ((sk - 1) / (sk + 1)) ** 2


def _nesterov(L: float) -> tuple[float, float]:
    sk = math.sqrt(KAPPA)
    return 1.0 / L, (sk - 1) / (sk + 1)


def _reference(kind: str, lam, alpha, beta, m0, noise, steps) -> np.ndarray:
    """``E x_{t,i}^2`` (steps x coordinates) by the forward 2x2 second-moment recursion,
    in 40 digits."""
    out = np.zeros((len(steps), len(lam)))
    with mpmath.workdps(40):
        A, B = mpmath.mpf(float(alpha)), mpmath.mpf(float(beta))
        rows = {int(s): k for k, s in enumerate(steps)}
        for i, (lv, mv, nv) in enumerate(zip(lam, m0, noise, strict=True)):
            lv = mpmath.mpf(float(lv))
            if kind == "hb":
                a, b = 1 + B - A * lv, B
            else:
                q = 1 - A * lv
                a, b = (1 + B) * q, B * q
            aa, ab2, bb, c = a * a, 2 * a * b, b * b, A * A * mpmath.mpf(float(nv))
            s11 = s12 = s22 = mpmath.mpf(float(mv))
            for t in range(max(rows) + 1):
                if t in rows:
                    out[rows[t], i] = float(s11)
                s11, s12, s22 = aa * s11 - ab2 * s12 + bb * s22 + c, a * s11 - b * s12, s11
    return out


@functools.cache
def _curves(kind: str, L: float, noise: float = 0.0) -> tuple[np.ndarray, ...]:
    """(lam, alpha, beta, s2, e0, per-coordinate reference) of one case, computed once."""
    lam, e0 = _problem(L)
    alpha, beta = _polyak(L) if kind == "hb" else _nesterov(L)
    s2 = noise * np.linspace(0.5, 1.5, lam.size)  # per-coordinate noise variances
    return lam, alpha, beta, s2, e0, _reference(kind, lam, alpha, beta, e0**2, s2, STEPS)


def _weighted(ref: np.ndarray, lam: np.ndarray, quantity: str) -> np.ndarray:
    # positive terms: the float64 sum adds <= d eps relative
    return ref @ (0.5 * lam if quantity == "f_gap" else np.ones_like(lam))


@pytest.mark.parametrize("L", [1.0, 2.5])  # 2.5: alpha * lambda is not a float
@pytest.mark.parametrize("quantity", ["f_gap", "dist2"])
def test_heavy_ball_polyak_pair_matches_40_digits(L: float, quantity: str) -> None:
    lam, alpha, beta, _, e0, ref = _curves("hb", L)
    got = th.heavy_ball_exact_quadratic(STEPS, lam, alpha, beta, 0.0, e0**2, quantity).values
    ref = _weighted(ref, lam, quantity)
    np.testing.assert_allclose(got, ref, rtol=RTOL, atol=0)


@pytest.mark.parametrize("L", [1.0, 2.5])
@pytest.mark.parametrize("quantity", ["f_gap", "dist2"])
def test_nesterov_matches_40_digits(L: float, quantity: str) -> None:
    lam, alpha, beta, _, e0, ref = _curves("nesterov", L)
    got = th.nesterov_exact_quadratic(STEPS, lam, alpha, beta, e0, quantity).values
    ref = _weighted(ref, lam, quantity)
    np.testing.assert_allclose(got, ref, rtol=RTOL, atol=0)


@pytest.mark.parametrize("noise", [1e-12, 1e-3])  # noise negligible early / dominant late
def test_noisy_heavy_ball_polyak_pair_matches_40_digits(noise: float) -> None:
    lam, alpha, beta, s2, e0, ref = _curves("hb", 2.5, noise)
    for quantity in ("f_gap", "dist2"):
        got = th.heavy_ball_exact_quadratic(STEPS, lam, alpha, beta, s2, e0**2, quantity).values
        np.testing.assert_allclose(got, _weighted(ref, lam, quantity), rtol=RTOL, atol=0)


def test_heavy_ball_polynomial_at_the_double_roots() -> None:
    lam, alpha, beta, _, e0, ref = _curves("hb", 2.5)
    ends = lam[[0, -1]]  # mu and L, both double roots
    got = th.heavy_ball_polynomial(STEPS[:, None], ends[None, :], alpha, beta)
    # p_t^2 = E x_t^2 / x_0^2 without noise; at a double root r = a/2 the sign of p_t is that
    # of r^t (p_t = r^t (1 + t (1 - r)))
    sign = np.sign(1.0 + beta - alpha * ends)[None, :] ** STEPS[:, None]
    want = sign * np.sqrt(ref[:, [0, -1]] / e0[[0, -1]] ** 2)
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=0)


@pytest.mark.parametrize("shapes", [((5, 1), (1, 4)), ((5, 1, 1), (1, 4, 1)), ((), (4,)),
                                    ((5,), ()), ((5, 1), ()), ((), ())])
def test_heavy_ball_polynomial_broadcasts_like_numpy(shapes) -> None:
    alpha, beta = 0.3, 0.5
    t = np.array([0, 1, 2, 7, 30]).reshape(shapes[0]) if shapes[0] else np.int64(7)
    lam = np.array([0.0, 0.5, 2.0, 4.0]).reshape(shapes[1]) if shapes[1] else 2.0
    got = th.heavy_ball_polynomial(t, lam, alpha, beta)
    tb, lb = np.broadcast_arrays(t, lam)
    assert isinstance(got, np.ndarray) and got.shape == tb.shape
    for idx in np.ndindex(tb.shape):  # p_{t+1} = (1 + beta - alpha lam) p_t - beta p_{t-1}
        p_prev = p = 1.0
        for _ in range(int(tb[idx])):
            p, p_prev = (1 + beta - alpha * lb[idx]) * p - beta * p_prev, p
        assert got[idx] == pytest.approx(p, rel=1e-13, abs=1e-15)


def test_double_double_primitives_are_exact() -> None:
    rng = np.random.default_rng(0)
    a = rng.standard_normal(200) * 10.0 ** rng.integers(-20, 20, 200)
    b = rng.standard_normal(200) * 10.0 ** rng.integers(-20, 20, 200)
    p, e = two_prod(a, b)
    s, f = two_sum(a, b)
    for i in range(a.size):
        fa, fb = Fraction(float(a[i])), Fraction(float(b[i]))
        assert Fraction(float(p[i])) + Fraction(float(e[i])) == fa * fb
        assert Fraction(float(s[i])) + Fraction(float(f[i])) == fa + fb
    # sums and products of double-doubles: relative error <= 2^-100, even when the sum
    # cancels all but the last ~20 bits (x and y are exact products, normalised pairs)
    c = 1.0 + rng.integers(1, 2**20, a.size) * 2.0**-40
    x, y = two_prod(a, c), two_prod(-a, c + rng.integers(-3, 4, a.size) * 2.0**-52)
    for op, fop in ((dd_add, lambda u, v: u + v), (dd_mul, lambda u, v: u * v)):
        hi, lo = op(x, y)
        for i in range(a.size):
            fx = Fraction(float(x[0][i])) + Fraction(float(x[1][i]))
            fy = Fraction(float(y[0][i])) + Fraction(float(y[1][i]))
            exact = fop(fx, fy)
            err = abs(Fraction(float(hi[i])) + Fraction(float(lo[i])) - exact)
            assert err <= abs(exact) * Fraction(1, 2**100)
