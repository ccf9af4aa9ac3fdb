"""Property-based tests of theory/ (hypothesis): monotonicity in T where the theory says so,
floors increasing in alpha and decreasing in B, rates in [0, 1) inside the conditions and
flagged outside, worst cases at the ends of the spectrum, counts monotone in kappa and ratio.

THEORY_PROPERTY_EXAMPLES (default 60) sets max_examples for a longer local search."""

from __future__ import annotations

import math
import os

import numpy as np
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import theory as th

EXAMPLES = int(os.environ.get("THEORY_PROPERTY_EXAMPLES", "60"))
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, database=None)
# Relative slack for comparisons of values computed by different floating-point paths.
FP = 1e-12
# Root moduli near a double root (or near q = 1 - alpha lambda = 0) move by up to
# sqrt(rounding of the coefficients) ~ sqrt(4 eps) ~ 3e-8 when a, b are perturbed by rounding;
# a brute-force maximum over a grid is compared with this absolute slack.
ROOT_SLACK = 2.0 * math.sqrt(4.0 * np.finfo(float).eps)

L_ = st.floats(1e-3, 1e3)
KAPPA = st.floats(1.0, 1e5)
H_LT2 = st.floats(1e-4, 2.0, exclude_max=True)  # alpha L in (0, 2)
H_LE1 = st.floats(1e-4, 1.0)  # alpha L in (0, 1]
POS = st.floats(1e-3, 1e3)
STEPS = np.arange(0, 60)


def _non_increasing(v: np.ndarray) -> bool:
    return bool(np.all(np.diff(v) <= FP * np.abs(v[:-1]) + 1e-300))


@SETTINGS
@given(L=L_, kappa=KAPPA, h=H_LT2, delta0=POS, form=st.sampled_from(["general", "basic"]))
def test_gd_pl_bound_non_increasing_with_rate_in_unit_interval(L, kappa, h, delta0, form):
    mu = L / kappa
    curve = th.gd_pl_bound(STEPS, L, mu, h / L, delta0, form=form)
    inside = form == "general" or h / L * L <= 1.0 + 1e-12  # alpha <= 1/L up to REL_TOL
    assert curve.applicable == inside
    if inside:
        # the factor 1 − αμ(2 − αL) is < 1 exactly; in float64 it can round to 1.0 when its
        # deficit αμ(2 − αL) is below half an ulp of 1 (h within a few ulps of 2)
        deficit = (h / kappa) * (2.0 - h) if form == "general" else h / kappa
        assert 0.0 <= curve.rate <= 1.0
        if deficit > 2.0**-52:
            assert curve.rate < 1.0
        assert _non_increasing(curve.values)
        assert curve.values[0] == delta0
    else:
        assert "alpha <= 1/L" in curve.reason


@SETTINGS
@given(L=L_, kappa=KAPPA, h=st.floats(1e-4, 3.0))
def test_gd_contraction_rate_in_unit_interval_iff_step_below_two_over_L(L, kappa, h):
    mu = L / kappa
    alpha = h / L
    curve = th.gd_strongly_convex_rate(STEPS, L, mu, alpha, 1.0)
    rho = th.gd_contraction_factor(L, mu, alpha)
    if alpha * L < 2.0:  # the condition as evaluated (h/L*L may round below 2)
        assert curve.applicable and 0.0 <= curve.rate < 1.0
        assert curve.rate == rho * rho and rho < 1.0
        assert _non_increasing(curve.values)
    else:
        assert not curve.applicable and "alpha < 2/L" in curve.reason
        assert rho >= 1.0 - FP
    # the optimal step is never worse than any other
    assert th.gd_contraction_factor(L, mu, th.step_optimal_gd(L, mu)) <= rho * (1 + FP)


@SETTINGS
@given(L=L_, h=H_LE1, delta0=POS, form=st.sampled_from(["loose", "descent", "tight",
                                                        "tight_exclusive"]))
def test_gd_nonconvex_bound_non_increasing_in_T(L, h, delta0, form):
    T = np.arange(1, 200)
    curve = th.gd_nonconvex_bound(T, L, h / L, delta0, form=form)
    assert curve.applicable
    assert _non_increasing(curve.values)
    assert np.all(curve.values > 0)
    # the tight constant is below the loose one (h (4 - h) >= 2h... for h <= 1: 4L/(h(4-h)) <=
    # 2L/h)
    if form == "tight":
        loose = th.gd_nonconvex_bound(T, L, h / L, delta0, form="loose").values
        assert np.all(curve.values <= loose * (1 + FP))


@SETTINGS
@given(L=L_, kappa=KAPPA, h=H_LE1, sigma2=st.floats(0.0, 1e3), B=st.integers(1, 1024),
       delta0=st.floats(0.0, 1e3))
def test_sgd_pl_bound_monotone_towards_its_floor(L, kappa, h, sigma2, B, delta0):
    mu = L / kappa
    curve = th.sgd_pl_constant_bound(STEPS, L, mu, h / L, sigma2, B, delta0)
    assert curve.applicable and 0.0 <= curve.rate < 1.0
    F = curve.floor
    v = curve.values
    if delta0 >= F:
        assert _non_increasing(v)
    else:
        assert _non_increasing(-v)
    lo, hi = min(delta0, F), max(delta0, F)
    assert np.all(v >= lo * (1 - FP) - 1e-300) and np.all(v <= hi * (1 + FP) + 1e-300)


@SETTINGS
@given(L=L_, kappa=KAPPA, h1=H_LE1, h2=H_LE1, sigma2=st.floats(1e-6, 1e3),
       B1=st.integers(1, 1024), B2=st.integers(1, 1024), form=st.sampled_from(["basic",
                                                                                "general"]))
def test_noise_floor_increases_in_alpha_and_decreases_in_B(L, kappa, h1, h2, sigma2, B1, B2,
                                                           form):
    mu = L / kappa
    (a1, a2), (b1, b2) = sorted((h1 / L, h2 / L)), sorted((B1, B2))
    f = {(a, b): th.noise_floor_bound(a, sigma2, L, mu, b, form=form).value
         for a in (a1, a2) for b in (b1, b2)}
    assert all(math.isfinite(x) and x > 0 for x in f.values())
    assert f[(a1, b1)] <= f[(a2, b1)] * (1 + FP)
    assert f[(a1, b2)] <= f[(a1, b1)] * (1 + FP)
    # outside alpha <= 1/L (basic) / alpha < 2/L (general): flagged
    out = th.noise_floor_bound(2.5 / L, sigma2, L, mu, b1, form=form)
    assert not out.applicable and math.isnan(out.value)


@SETTINGS
@given(lam=st.lists(st.floats(1e-3, 10.0), min_size=1, max_size=6), h1=st.floats(1e-3, 1.99),
       h2=st.floats(1e-3, 1.99), sigma2=st.floats(1e-4, 10.0), B1=st.integers(1, 512),
       B2=st.integers(1, 512))
def test_exact_sgd_floor_increases_in_alpha_and_decreases_in_B(lam, h1, h2, sigma2, B1, B2):
    lam = np.asarray(lam)
    L = lam.max()
    (a1, a2), (b1, b2) = sorted((h1 / L, h2 / L)), sorted((B1, B2))
    d = lam.size

    def floor(a, b):
        return th.sgd_stationary_quadratic(lam, a, sigma2 / (d * b)).value

    assert floor(a1, b1) <= floor(a2, b1) * (1 + FP)
    assert floor(a1, b2) <= floor(a1, b1) * (1 + FP)
    # and the exact floor is below the (valid, loose) PL bound's floor when alpha <= 1/L
    if h1 <= 1.0:
        mu = lam.min()
        bound = th.noise_floor_bound(a1, sigma2, L, mu, b1).value
        assert floor(a1, b1) <= bound * (1 + FP)


@SETTINGS
@given(L=L_, kappa=st.floats(1.0 + 1e-6, 1e4), c=st.floats(1.01, 4.0), gamma=st.floats(0.0, 1e3),
       sigma2=st.floats(0.0, 100.0), delta1=POS)
def test_diminishing_bound_non_increasing(L, kappa, c, gamma, sigma2, delta1):
    mu = L / kappa
    beta = c / mu  # beta > 1/mu
    gamma = max(gamma, beta * L - 1.0)  # alpha_1 = beta/(gamma+1) <= 1/L
    assume(gamma > 0)
    curve = th.sgd_diminishing_bound(STEPS + 1, L, mu, sigma2, 1, beta, gamma, delta1)
    assert curve.applicable
    assert _non_increasing(curve.values)


@SETTINGS
@given(L=L_, h=H_LE1, sigma2=st.floats(0.0, 100.0), B=st.integers(1, 64), delta0=POS)
def test_sgd_nonconvex_bounds_non_increasing(L, h, sigma2, B, delta0):
    T = np.arange(1, 300)
    for form in ("constant", "general"):
        c = th.sgd_nonconvex_bound(T, L, sigma2, B, delta0, alpha=h / L, form=form)
        assert c.applicable and _non_increasing(c.values)
        assert np.all(c.values >= c.floor * (1 - FP))
    tuned = th.sgd_nonconvex_bound(T, L, sigma2, B, delta0, form="tuned")
    assert _non_increasing(tuned.values)


@SETTINGS
@given(L=L_, kappa=KAPPA, h=st.floats(1e-3, 5.0), beta=st.floats(-1.5, 1.5))
def test_heavy_ball_rate_in_unit_interval_iff_stable_and_attained_at_an_end(L, kappa, h, beta):
    mu = L / kappa
    alpha = h / L
    rate = th.heavy_ball_asymptotic_rate(L, mu, alpha, beta)
    stable = th.heavy_ball_is_stable(L, mu, alpha, beta)
    assert rate.applicable == stable
    if stable:
        assert 0.0 <= rate.value < 1.0
        lam = np.linspace(mu, L, 257)
        brute = th.heavy_ball_spectral_radius(lam, alpha, beta).max()
        assert brute <= rate.value * (1 + FP) + ROOT_SLACK
    else:
        assert math.isnan(rate.value) and "unstable" in rate.reason


@SETTINGS
@given(L=L_, kappa=KAPPA, h=H_LE1, beta=st.floats(0.0, 0.999))
def test_nesterov_radius_is_attained_at_an_end(L, kappa, h, beta):
    mu = L / kappa
    alpha = h / L
    r = th.nesterov_spectral_radius(L, mu, alpha, beta)
    lam = np.linspace(mu, L, 257)
    q = 1 - alpha * lam
    brute = th.two_term_spectral_radius((1 + beta) * q, beta * q).max()
    assert brute <= r * (1 + FP) + ROOT_SLACK
    assert 0.0 <= r < 1.0


@SETTINGS
@given(L=L_, kappa=KAPPA, h=st.floats(1e-4, 0.3), m=st.integers(1, 10**7))
def test_svrg_rate_in_unit_interval_iff_conditions(L, kappa, h, m):
    mu = L / kappa
    eta = h / L
    r = th.svrg_rate(L, mu, eta, m)
    if eta * L < 0.25:  # the condition as evaluated (h/L*L may round below 1/4)
        h = eta * L
        rho = 1 / (mu * eta * (1 - 2 * h) * m) + 2 * h / (1 - 2 * h)
        assert r.applicable == (rho < 1.0)
        if r.applicable:
            assert 0.0 < r.value < 1.0 and math.isclose(r.value, rho, rel_tol=1e-12)
            s = th.svrg_bound(np.arange(10), L, mu, eta, m, 1.0)
            assert _non_increasing(s.values)
        else:
            assert "rho" in r.reason
    else:
        assert not r.applicable and "eta < 1/(4L)" in r.reason


@SETTINGS
@given(lam=st.lists(st.one_of(st.just(0.0), st.floats(1e-3, 4.0)), min_size=1, max_size=5),
       h=st.floats(1e-3, 2.5),
       beta=st.floats(0.0, 0.95), s2=st.floats(0.0, 1.0), seed=st.integers(0, 2**32 - 1))
def test_noise_only_adds_to_the_exact_curves(lam, h, beta, s2, seed):
    lam = np.asarray(lam)
    assume(lam.max() > 0)
    e0 = np.random.default_rng(seed).standard_normal(lam.size)
    alpha = h / lam.max()
    t = np.arange(0, 80)
    for q in ("f_gap", "dist2"):
        gd = th.gd_exact_quadratic(t, lam, alpha, e0, q).values
        sgd = th.sgd_exact_quadratic(t, lam, alpha, s2, e0**2, q).values
        assert np.all(sgd >= gd * (1 - 1e-10))
        hb0 = th.heavy_ball_exact_quadratic(t, lam, alpha, beta, 0.0, e0**2, q).values
        hb = th.heavy_ball_exact_quadratic(t, lam, alpha, beta, s2, e0**2, q).values
        fin = np.isfinite(hb0)
        assert np.all(hb[fin] >= hb0[fin] * (1 - 1e-10))


@SETTINGS
@given(k1=KAPPA, k2=KAPPA, r1=st.floats(1e-3, 1e12), r2=st.floats(1e-3, 1e12),
       form=st.sampled_from(["simple", "factor"]))
def test_iteration_counts_monotone_in_kappa_and_ratio(k1, k2, r1, r2, form):
    (k1, k2), (r1, r2) = sorted((k1, k2)), sorted((r1, r2))
    for fn in (th.gd_iterations_to_eps, th.gd_optimal_iterations_to_eps,
               th.heavy_ball_iterations_to_eps, th.nesterov_iterations_to_eps):
        a, b, c = fn(k1, r1, form=form), fn(k2, r1, form=form), fn(k1, r2, form=form)
        assert 0.0 <= a <= b * (1 + FP) + 1e-12 and a <= c * (1 + FP) + 1e-12, fn.__name__
    # acceleration: for large kappa Nesterov's count is below GD's
    if k2 > 100 and r2 > 10:
        assert th.nesterov_iterations_to_eps(k2, r2) < th.gd_iterations_to_eps(k2, r2)


@SETTINGS
@given(L=L_, kappa=KAPPA, sigma2=st.floats(0.0, 100.0), B1=st.integers(1, 512),
       B2=st.integers(1, 512), e1=st.floats(1e-6, 10.0), e2=st.floats(1e-6, 10.0))
def test_sgd_recipe_monotone_in_eps_and_B(L, kappa, sigma2, B1, B2, e1, e2):
    mu = L / kappa
    (b1, b2), (eps1, eps2) = sorted((B1, B2)), sorted((e1, e2))
    a11, t11 = th.sgd_iterations_to_eps(L, mu, sigma2, b1, 1.0, eps1)
    _, t21 = th.sgd_iterations_to_eps(L, mu, sigma2, b2, 1.0, eps1)
    _, t12 = th.sgd_iterations_to_eps(L, mu, sigma2, b1, 1.0, eps2)
    assert 0 < a11 <= 1 / L * (1 + FP)
    assert t21 <= t11 * (1 + FP) and t12 <= t11 * (1 + FP)
