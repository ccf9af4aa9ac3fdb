"""theory/: known values, step-size rules, iteration counts, SVRG, noise scale, PL constants,
the heavy-ball counterexample, and exact identities against independent plain loops."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from scipy.linalg import solve_discrete_lyapunov

import theory as th

# Issue 3's reference values are rounded to 6 digits: half a unit in the last place.
ROUNDED_6 = 5e-7


# --------------------------------------------------------------------------- known values


@pytest.mark.parametrize(("L", "mu"), [(100.0, 1.0), (1.0, 0.01), (250.0, 2.5)])
def test_known_rates_at_kappa_100(L: float, mu: float) -> None:
    alpha = th.step_optimal_gd(L, mu)
    assert alpha == pytest.approx(2.0 / (L + mu), rel=1e-15)
    assert th.gd_contraction_factor(L, mu, alpha) == pytest.approx(0.980198, abs=ROUNDED_6)
    a_hb, b_hb = th.heavy_ball_polyak_params(L, mu)
    hb = th.heavy_ball_asymptotic_rate(L, mu, a_hb, b_hb)
    assert hb.applicable and hb.tight
    assert hb.value == pytest.approx(0.818182, abs=ROUNDED_6)
    a_n, b_n = th.nesterov_params(L, mu)
    assert a_n == pytest.approx(1.0 / L, rel=1e-15)
    assert th.nesterov_spectral_radius(L, mu, a_n, b_n) == pytest.approx(0.9, abs=ROUNDED_6)
    assert th.nesterov_spectral_radius(L, mu) == pytest.approx(0.9, abs=ROUNDED_6)


@pytest.mark.parametrize("kappa", [1.5, 4.0, 25.0, 100.0, 1e4])
def test_closed_forms_of_the_tuned_rates(kappa: float) -> None:
    """Exact closed forms (double roots handled without the sqrt(eps) error)."""
    L, mu = kappa, 1.0
    sk = math.sqrt(kappa)
    a, b = th.heavy_ball_polyak_params(L, mu)
    assert b == pytest.approx(((sk - 1) / (sk + 1)) ** 2, rel=1e-14)
    assert th.heavy_ball_asymptotic_rate(L, mu, a, b).value == pytest.approx(
        (sk - 1) / (sk + 1), rel=1e-13, abs=1e-15
    )
    assert th.nesterov_spectral_radius(L, mu) == pytest.approx(1 - 1 / sk, rel=1e-13)
    rho = th.gd_contraction_factor(L, mu, th.step_optimal_gd(L, mu))
    assert rho == pytest.approx((kappa - 1) / (kappa + 1), rel=1e-13)
    # the worst case over quadratics has the same asymptotic rate (squared, per step)
    wc = th.heavy_ball_quadratic(np.arange(3), L, mu, a, b)
    assert wc.rate == pytest.approx(((sk - 1) / (sk + 1)) ** 2, rel=1e-12)


def test_heavy_ball_worst_case_dominates_a_dense_grid() -> None:
    L, mu = 100.0, 1.0
    a, b = th.heavy_ball_polyak_params(L, mu)
    t = np.array([1, 5, 17, 60, 200])
    wc = th.heavy_ball_quadratic(t, L, mu, a, b)
    lam = np.linspace(mu, L, 40_001)
    brute = th.heavy_ball_polynomial(t[:, None], lam[None, :], a, b) ** 2
    # grid + local refinement: at least the dense grid's max, and within its resolution
    assert np.all(wc.values >= brute.max(axis=1) * (1 - 1e-12))
    assert np.all(wc.values <= brute.max(axis=1) * (1 + 1e-4))


def test_safe_heavy_ball_params() -> None:
    L, mu = 10.0, 0.5
    alpha, beta = th.heavy_ball_safe_params(L, mu, 0.05)
    assert alpha == 0.05
    assert beta == pytest.approx(math.sqrt((1 - 0.05 * mu) * (1 - 0.05 * L)), rel=1e-15)
    curve = th.heavy_ball_safe_bound([0, 1, 10], L, mu, alpha, beta, 2.0)
    assert curve.applicable
    np.testing.assert_allclose(curve.values, 2.0 * (1 - alpha * mu) ** np.array([0, 1, 10]))
    assert th.heavy_ball_safe_params(L, mu, 1 / L)[1] == 0.0
    assert th.step_inverse_L(L) == 0.1


# --------------------------------------------------------------------------- iteration counts


@pytest.mark.parametrize("kappa", [1.0, 2.0, 10.0, 100.0, 1234.5])
@pytest.mark.parametrize("ratio", [0.5, 1.0, 10.0, 1e6])
def test_iteration_counts_invert_their_guarantees(kappa: float, ratio: float) -> None:
    """ceil(T*) meets the guarantee; for the 'factor' form ceil(T*) - 1 does not (minimal);
    the 'simple' form is never below the 'factor' form."""
    L, mu = kappa, 1.0
    sk = math.sqrt(kappa)
    rho_opt = (kappa - 1) / (kappa + 1)
    cases = {  # name -> (function, per-step factor of the guaranteed ratio, constant C)
        "gd": (th.gd_iterations_to_eps, 1 - 1 / kappa, 1.0),
        "gd_opt": (th.gd_optimal_iterations_to_eps, rho_opt**2, 1.0),
        "hb": (th.heavy_ball_iterations_to_eps, ((sk - 1) / (sk + 1)) ** 2, 1.0),
        "nesterov": (th.nesterov_iterations_to_eps, 1 - 1 / sk, 2.0),
    }
    for name, (fn, c, C) in cases.items():
        simple, factor = fn(kappa, ratio), fn(kappa, ratio, form="factor")
        assert factor == int(factor) and math.ceil(simple) >= factor, name
        for T_star in (simple, factor):  # the guarantee C c^T Delta_0 <= eps at T = ceil(T*)
            assert C * c ** math.ceil(T_star) <= (1 / ratio) * (1 + 1e-9), name
        if factor > 0:  # minimal: one step fewer is not enough
            assert C * c ** (factor - 1) > (1 / ratio) * (1 - 1e-9), name
    # against the library's own bound curves
    if ratio > 1:
        T = math.ceil(th.gd_iterations_to_eps(kappa, ratio))
        assert th.gd_pl_bound(T, L, mu, 1 / L, ratio, form="basic").values <= 1 + 1e-9
        T = math.ceil(th.nesterov_iterations_to_eps(kappa, ratio))
        assert th.nesterov_bound(T, L, mu, ratio).values <= 1 + 1e-9
        T = math.ceil(th.gd_optimal_iterations_to_eps(kappa, ratio))
        v = th.gd_strongly_convex_rate(T, L, mu, th.step_optimal_gd(L, mu), ratio).values
        assert v <= 1 + 1e-9


def test_iteration_counts_vectorise_and_scale() -> None:
    kappa = np.array([10.0, 100.0, 1000.0])
    gd = th.gd_iterations_to_eps(kappa, 1e4)
    nes = th.nesterov_iterations_to_eps(kappa, 1e4)
    assert gd.shape == (3,)
    np.testing.assert_allclose(gd, kappa * math.log(1e4), rtol=1e-15)
    np.testing.assert_allclose(nes, np.sqrt(kappa) * math.log(2e4), rtol=1e-15)
    np.testing.assert_allclose(th.heavy_ball_iterations_to_eps(kappa, [1e2, 1e3, 1e4]),
                               np.sqrt(kappa) / 4 * np.log([1e2, 1e3, 1e4]), rtol=1e-15)
    assert isinstance(th.gd_iterations_to_eps(4.0, 10.0), float)


@pytest.mark.parametrize(("sigma2", "eps"), [(0.0, 1e-3), (1.0, 1e-3), (1e-4, 0.5), (3.0, 1.5)])
def test_sgd_recipe_reaches_eps_by_the_bound(sigma2: float, eps: float) -> None:
    L, mu, B, delta0 = 10.0, 0.5, 4, 2.0
    alpha, T_star = th.sgd_iterations_to_eps(L, mu, sigma2, B, delta0, eps)
    assert alpha == pytest.approx(min(1 / L, mu * B * eps / (L * sigma2)) if sigma2 else 1 / L)
    assert th.noise_floor_bound(alpha, sigma2, L, mu, B).value <= eps / 2 * (1 + 1e-12)
    T = math.ceil(T_star)
    bound = th.sgd_pl_constant_bound(T, L, mu, alpha, sigma2, B, delta0)
    assert bound.applicable
    assert float(bound.values) <= eps * (1 + 1e-12)
    expected = (L / mu) * max(1.0, sigma2 / (mu * B * eps)) * math.log(2 * delta0 / eps)
    assert T_star == pytest.approx(max(expected, 0.0), rel=1e-12)


# --------------------------------------------------------------------------- SVRG


@pytest.mark.parametrize("kappa", [1.0, 10.0, 1e3])
def test_svrg_rate_example_of_theory(kappa: float) -> None:
    L, mu = 2.0 * kappa, 2.0
    r = th.svrg_rate(L, mu, 0.1 / L, int(50 * kappa))
    assert r.applicable and not r.tight
    assert r.value == pytest.approx(0.5, rel=1e-12)
    curve = th.svrg_bound(np.arange(4), L, mu, 0.1 / L, int(50 * kappa), 3.0)
    np.testing.assert_allclose(curve.values, 3.0 * 0.5 ** np.arange(4), rtol=1e-12)
    assert curve.rate == pytest.approx(0.5) and curve.floor == 0.0


def test_svrg_rate_formula() -> None:
    L, mu, eta, m = 5.0, 0.1, 0.02, 3000
    expected = 1 / (mu * eta * (1 - 2 * L * eta) * m) + 2 * L * eta / (1 - 2 * L * eta)
    assert th.svrg_rate(L, mu, eta, m).value == pytest.approx(expected, rel=1e-15)


# --------------------------------------------------------------------------- noise scale


def _random_psd(rng: np.random.Generator, d: int) -> np.ndarray:
    X = rng.standard_normal((d, d))
    return X @ X.T / d + 0.1 * np.eye(d)


def test_noise_scale_definitions_and_the_optimal_step() -> None:
    rng = np.random.default_rng(0)
    d = 6
    H, S, G = _random_psd(rng, d), _random_psd(rng, d), rng.standard_normal(d)
    ns = th.noise_scale(H, S, G)
    assert ns.applicable
    ghg = G @ H @ G
    assert ns.B_noise == pytest.approx(np.trace(H @ S) / ghg, rel=1e-12)
    assert ns.B_simple == pytest.approx(np.trace(S) / (G @ G), rel=1e-12)
    assert ns.eps_max == pytest.approx((G @ G) / ghg, rel=1e-12)
    for B in (1.0, 7.0, 1e3):
        # expected change of the quadratic model for step eps with a batch-B estimate
        a, c = G @ G, ghg + np.trace(H @ S) / B

        def model(eps: float, a: float = a, c: float = c) -> float:
            return -eps * a + 0.5 * eps * eps * c

        e = ns.eps_opt(B)
        assert model(e) == pytest.approx(-ns.delta_L_opt(B), rel=1e-12)
        for step in (0.9 * e, 1.1 * e):
            assert model(step) > model(e)
    np.testing.assert_allclose(ns.eps_opt(np.array([1e12])), ns.eps_max, rtol=1e-9)
    assert ns.delta_L_max == pytest.approx((G @ G) ** 2 / (2 * ghg), rel=1e-12)


def test_noise_scale_input_forms_agree() -> None:
    h = np.array([0.5, 1.0, 4.0])
    G = np.array([1.0, -2.0, 0.5])
    diag = th.noise_scale(h, h, G)  # NQM: Sigma = H
    full = th.noise_scale(np.diag(h), np.diag(h), G)
    assert diag.B_noise == pytest.approx(full.B_noise, rel=1e-15)
    assert diag.B_noise == pytest.approx(np.sum(h * h) / np.sum(h * G * G), rel=1e-15)
    iso = th.noise_scale(h, 0.3, G)
    assert iso.tr_sigma == pytest.approx(0.9) and iso.tr_H_sigma == pytest.approx(0.3 * h.sum())
    # H proportional to I: B_noise = B_simple
    prop = th.noise_scale(2.5 * np.ones(3), np.diag([1.0, 2.0, 3.0]), G)
    assert prop.B_noise == pytest.approx(prop.B_simple, rel=1e-15)


def test_noise_scale_without_curvature_along_G_is_not_applicable() -> None:
    ns = th.noise_scale([0.0, 1.0], [1.0, 1.0], [1.0, 0.0])
    assert not ns.applicable and "null space" in ns.reason
    assert math.isnan(ns.B_noise) and math.isnan(ns.eps_max)
    zero = th.noise_scale([1.0, 1.0], 1.0, [0.0, 0.0])
    assert not zero.applicable and "|G|^2=0" in zero.reason


def test_steps_examples_tradeoff_is_the_hyperbola() -> None:
    B = np.geomspace(1, 1e5, 11)
    S, E = th.steps_examples_tradeoff(B, S_min=200.0, E_min=5e4)
    np.testing.assert_allclose(E, B * S, rtol=1e-14)
    np.testing.assert_allclose((S / 200.0 - 1) * (E / 5e4 - 1), 1.0, rtol=1e-12)
    assert th.steps_examples_tradeoff(250.0, 200.0, 5e4) == pytest.approx((400.0, 1e5))


# --------------------------------------------------------------------------- PL constants


def test_pl_sin_constants_are_computed_and_correct() -> None:
    c = th.pl_sin_constants()
    assert c.L == 8.0
    assert c.mu == pytest.approx(0.17553, abs=5e-6)  # THEORY.md 5 gives 5 digits
    assert c.x_worst == pytest.approx(2.2017, abs=5e-5)
    assert c.x_at_min == c.x_worst
    L, mu, x = c  # unpacks as a tuple
    assert (L, mu, x) == (c.L, c.mu, c.x_worst)

    # independent check on a dense grid of both signs: mu is the minimum of the ratio
    def ratio(z: np.ndarray) -> np.ndarray:
        return (2 * z + 3 * np.sin(2 * z)) ** 2 / (2 * (z * z + 3 * np.sin(z) ** 2))

    z = np.linspace(-40.0, 40.0, 800_001)
    z = z[np.abs(z) > 1e-3]
    assert ratio(z).min() >= mu * (1 - 1e-12)
    assert float(ratio(np.array([x]))[0]) == pytest.approx(mu, rel=1e-14)
    assert float(ratio(np.array([-x]))[0]) == pytest.approx(mu, rel=1e-14)
    assert 1 / 32 < mu  # KNS's constant is valid (smaller) but loose


def test_pl_constant_refinement_and_known_cases() -> None:
    def f(x):
        return x * x + 3 * np.sin(x) ** 2

    def fp(x):
        return 2 * x + 3 * np.sin(2 * x)

    fine = th.pl_constant_1d(f, fp, 0.0, 0.0, np.linspace(1e-3, 20, 200_001))
    coarse = th.pl_constant_1d(f, fp, 0.0, 0.0, np.linspace(0.01, 20, 50))
    assert coarse.value == pytest.approx(fine.value, rel=1e-12)
    assert coarse.x == pytest.approx(fine.x, abs=1e-6)
    # a grid through x* = 0 (skipped) and both sides; scalar-only callables work too
    sym = th.pl_constant_1d(lambda x: math.cosh(x) - 1, math.sinh, 0.0, 0.0,
                            np.linspace(-3, 3, 61))
    # sinh^2 / (2 (cosh - 1)) = (cosh + 1)/2: minimum 1 at x -> 0 (grid neighbours of 0)
    assert sym.value == pytest.approx(1.0, abs=1e-8)
    quad = th.pl_constant_1d(lambda x: 1.5 * (x - 2) ** 2 + 1, lambda x: 3 * (x - 2), 2.0, 1.0,
                             np.linspace(-5, 5, 101))
    assert quad.value == pytest.approx(3.0, rel=1e-12)


def test_smoothness_constant_refines_off_grid() -> None:
    def fpp(x):
        return 2 + 6 * np.cos(2 * x)

    res = th.smoothness_constant_1d(fpp, np.linspace(-1.3, 1.7, 7))  # 0 is not a grid point
    assert res.value == pytest.approx(8.0, abs=1e-12)
    assert res.x == pytest.approx(0.0, abs=1e-5)
    neg = th.smoothness_constant_1d(lambda x: -5 + 0 * x, np.linspace(0, 1, 5))
    assert neg.value == 5.0


def test_pl_constant_rejects_a_wrong_minimum() -> None:
    with pytest.raises(ValueError, match="f_star"):
        th.pl_constant_1d(lambda x: x * x, lambda x: 2 * x, 0.0, 1.0, np.linspace(-1, 1, 11))
    with pytest.raises(ValueError, match="grid"):
        th.pl_constant_1d(lambda x: x * x, lambda x: 2 * x, 0.0, 0.0, [0.0, 1.0])
    with pytest.raises(ValueError, match="grid"):
        th.smoothness_constant_1d(lambda x: x, [0.0, np.nan, 1.0, 2.0])


# --------------------------------------------------------------------------- counterexample


def test_lrp_function_constants() -> None:
    c = th.hb_counterexample()
    x = np.linspace(-5, 5, 100_001)
    g = th.lrp_grad(x)
    # C^1, piecewise quadratic, 1-strongly convex and 25-smooth: slopes of g in [1, 25]
    slopes = np.diff(g) / np.diff(x)
    assert slopes.min() >= 1 - 1e-9 and slopes.max() <= 25 + 1e-9
    for b in (1.0, 2.0):  # continuity of value and gradient at the breakpoints
        left, right = np.nextafter(b, -np.inf), b
        assert th.lrp_value(left) == pytest.approx(th.lrp_value(right), abs=1e-12)
        assert th.lrp_grad(left) == pytest.approx(th.lrp_grad(right), abs=1e-12)
    assert (c.L, c.mu, c.alpha, c.beta) == (25.0, 1.0, 1 / 9, 4 / 9)
    assert th.lrp_value(0.0) == 0.0 and th.lrp_grad(0.0) == 0.0


def test_lrp_cycle_is_exact_in_rationals() -> None:
    """The 3-cycle {792, -2208, 2592}/1225 is a fixed point of three heavy-ball steps."""

    def grad(x: Fraction) -> Fraction:
        if x < 1:
            return 25 * x
        if x < 2:
            return x + 24
        return 25 * x - 24

    alpha, beta = Fraction(1, 9), Fraction(4, 9)
    cyc = [Fraction(792, 1225), Fraction(-2208, 1225), Fraction(2592, 1225)]
    prev, cur = cyc[2], cyc[0]
    for k in range(6):
        prev, cur = cur, cur - alpha * grad(cur) + beta * (cur - prev)
        assert cur == cyc[(k + 1) % 3]
    np.testing.assert_allclose(th.hb_counterexample().cycle,
                               [float(v) for v in cyc], rtol=1e-15)


@pytest.mark.parametrize("x0", np.linspace(3.07, 3.46, 9))
def test_heavy_ball_converges_to_the_lrp_cycle(x0: float) -> None:
    c = th.hb_counterexample()
    lo, hi = c.x0_interval
    assert lo <= x0 <= hi
    x_prev = x = float(x0)  # x_{-1} = x_0
    for _ in range(2000):
        g = 25 * x if x < 1 else (x + 24 if x < 2 else 25 * x - 24)  # plain float loop
        x_prev, x = x, x - c.alpha * g + c.beta * (x - x_prev)
    tail = []
    for _ in range(6):
        x_prev, x = x, x - c.alpha * float(c.grad(x)) + c.beta * (x - x_prev)
        tail.append(x)
    k = int(np.argmin(np.abs(c.cycle - tail[0])))
    expected = np.roll(c.cycle, -k)
    np.testing.assert_allclose(tail, np.concatenate([expected, expected]), atol=1e-12)
    assert abs(x) > 0.5  # far from the minimiser 0


# --------------------------------------------------------------------------- exact identities


LAM = np.array([0.0, 0.03, 0.2, 0.7, 1.3, 2.0])
E0 = np.array([1.0, -0.5, 2.0, 0.3, -1.0, 0.8])
STEPS = np.arange(0, 400)


@pytest.mark.parametrize("alpha", [0.1, 0.5, 0.99, 1.2])
@pytest.mark.parametrize("quantity", ["f_gap", "dist2"])
def test_sgd_exact_without_noise_is_gd_exact(alpha: float, quantity: str) -> None:
    sgd = th.sgd_exact_quadratic(STEPS, LAM, alpha, 0.0, E0**2, quantity)
    gd = th.gd_exact_quadratic(STEPS, LAM, alpha, E0, quantity)
    np.testing.assert_allclose(sgd.values, gd.values, rtol=1e-12, atol=0)
    # and GD exact against a plain loop
    e = E0.copy()
    w = 0.5 * LAM if quantity == "f_gap" else np.ones_like(LAM)
    for t in STEPS:
        assert gd.values[t] == pytest.approx(float(np.sum(w * e * e)), rel=1e-12, abs=1e-300)
        e = e - alpha * LAM * e


@pytest.mark.parametrize("alpha", [0.1, 0.6, 0.95])
@pytest.mark.parametrize("noise", [0.0, 0.3])
def test_heavy_ball_exact_with_beta_zero_is_sgd_exact(alpha: float, noise: float) -> None:
    for q in ("f_gap", "dist2"):
        hb = th.heavy_ball_exact_quadratic(STEPS, LAM, alpha, 0.0, noise, E0**2, q)
        sgd = th.sgd_exact_quadratic(STEPS, LAM, alpha, noise, E0**2, q)
        np.testing.assert_allclose(hb.values, sgd.values, rtol=1e-12, atol=0)


def _second_moments_plain(lam, alpha, beta, s2, m0, T):
    """E x_t^2 per coordinate by the 2x2 covariance recursion, one step at a time."""
    out = np.zeros((T + 1, lam.size))
    for i, l in enumerate(lam):
        M = np.array([[1 + beta - alpha * l, -beta], [1.0, 0.0]])
        S = m0[i] * np.ones((2, 2))
        Q = np.array([[alpha * alpha * s2, 0.0], [0.0, 0.0]])
        for t in range(T + 1):
            out[t, i] = S[0, 0]
            S = M @ S @ M.T + Q
    return out


@pytest.mark.parametrize(("alpha", "beta"), [(0.3, 0.5), (0.9, 0.9), (0.05, -0.3), (1.4, 0.2)])
def test_heavy_ball_exact_against_plain_recursion(alpha: float, beta: float) -> None:
    s2 = 0.2
    T = 300
    m = _second_moments_plain(LAM, alpha, beta, s2, E0**2, T)
    for q, w in (("f_gap", 0.5 * LAM), ("dist2", np.ones_like(LAM))):
        curve = th.heavy_ball_exact_quadratic(np.arange(T + 1), LAM, alpha, beta, s2, E0**2, q)
        np.testing.assert_allclose(curve.values, m @ w, rtol=1e-11)
    # zero noise: the residual polynomial
    det = th.heavy_ball_exact_quadratic(np.arange(T + 1), LAM, alpha, beta, 0.0, E0**2, "dist2")
    p = th.heavy_ball_polynomial(np.arange(T + 1)[:, None], LAM[None, :], alpha, beta)
    np.testing.assert_allclose(det.values, (p**2 * E0**2).sum(axis=1), rtol=1e-11)


@pytest.mark.parametrize(("alpha", "beta"), [(0.3, 0.5), (0.9, 0.9), (0.05, -0.3)])
def test_heavy_ball_stationary_solves_the_lyapunov_equation(alpha: float, beta: float) -> None:
    lam = LAM[1:]  # positive eigenvalues
    s2 = np.array([0.1, 0.2, 0.3, 0.4, 0.5])
    st = th.heavy_ball_stationary_quadratic(lam, alpha, beta, s2, "dist2")
    assert st.applicable
    lyap = 0.0
    for lv, sv in zip(lam, s2, strict=True):
        M = np.array([[1 + beta - alpha * lv, -beta], [1.0, 0.0]])
        Q = np.array([[alpha * alpha * sv, 0.0], [0.0, 0.0]])
        lyap += solve_discrete_lyapunov(M, Q)[0, 0]
    assert st.value == pytest.approx(lyap, rel=1e-9)
    # the exact curve tends to it, and reports it as its floor
    curve = th.heavy_ball_exact_quadratic([10**7], lam, alpha, beta, s2, 1.0, "dist2")
    assert curve.floor == pytest.approx(st.value, rel=1e-12)
    assert float(curve.values[0]) == pytest.approx(st.value, rel=1e-9)
    fg = th.heavy_ball_stationary_quadratic(lam, alpha, beta, s2, "f_gap").value
    assert fg == pytest.approx(
        np.sum(alpha * s2 * (1 + beta) / (2 * (1 - beta) * (2 * (1 + beta) - alpha * lam))),
        rel=1e-13,
    )


@pytest.mark.parametrize("alpha", [0.1, 0.9])
def test_sgd_stationary_and_floor(alpha: float) -> None:
    s2 = 0.25
    st = th.sgd_stationary_quadratic(LAM, alpha, s2, "f_gap")
    expected = np.sum(alpha * s2 / (2 * (2 - alpha * LAM[1:])))
    assert st.value == pytest.approx(expected, rel=1e-14)
    curve = th.sgd_exact_quadratic([0, 10**8], LAM, alpha, s2, E0**2)
    assert curve.floor == pytest.approx(expected, rel=1e-14)
    assert curve.values[1] == pytest.approx(expected, rel=1e-9)
    # lambda = 0 with noise random-walks in distance: E||e_t||^2 grows by alpha^2 s^2 per step
    d2 = th.sgd_exact_quadratic([0, 1000], LAM[:1], alpha, s2, E0[:1] ** 2, "dist2")
    assert d2.values[1] - d2.values[0] == pytest.approx(1000 * alpha**2 * s2, rel=1e-12)
    assert d2.floor == math.inf


def _averaged_plain(lam, alpha, s2, e0, T):
    """E f(bar w_T) - f* by explicit sums (independent of the block-doubling code)."""
    q = 1 - alpha * lam
    mean = np.array([e0 * q**t for t in range(1, T + 1)]).sum(axis=0) / T
    G = np.array([(q**np.arange(j)[:, None]).sum(axis=0) for j in range(1, T + 1)])
    var = alpha**2 * s2 * (G**2).sum(axis=0) / T**2
    return float(np.sum(0.5 * lam * (mean**2 + var))), float(np.sum(mean**2 + var))


@pytest.mark.parametrize("alpha", [0.2, 0.95])
def test_averaged_sgd_exact_against_explicit_sums(alpha: float) -> None:
    s2 = 0.3
    Ts = np.array([1, 2, 3, 10, 57, 200])
    fg = th.averaged_sgd_exact(Ts, LAM, alpha, s2, E0**2, "f_gap")
    d2 = th.averaged_sgd_exact(Ts, LAM, alpha, s2, E0**2, "dist2")
    for k, T in enumerate(Ts):
        f_ref, d_ref = _averaged_plain(LAM, alpha, s2, E0, int(T))
        assert fg.values[k] == pytest.approx(f_ref, rel=1e-11)
        assert d2.values[k] == pytest.approx(d_ref, rel=1e-11)
    # Polyak-Juditsky / Bach-Moulines asymptote tr(A^{-1} Cov xi)/(2T) for positive lambda
    lam = LAM[1:]
    big = np.array([10**6])
    ex = th.averaged_sgd_exact(big, lam, alpha, s2, 0.0).values[0]
    asym = th.averaged_sgd_asymptotic(big, lam, s2).values[0]
    assert ex == pytest.approx(asym, rel=1e-3)


def test_nesterov_exact_against_a_plain_loop() -> None:
    L, mu = 2.0, 0.03
    alpha, beta = th.nesterov_params(L, mu)
    lam = LAM[1:]
    e0 = E0[1:]
    curve = th.nesterov_exact_quadratic(STEPS, lam, alpha, beta, e0, "f_gap")
    x_prev = x = e0.copy()
    for t in STEPS:
        assert curve.values[t] == pytest.approx(float(np.sum(0.5 * lam * x * x)), rel=1e-10)
        y = x + beta * (x - x_prev)
        x_prev, x = x, y - alpha * lam * y
    assert curve.rate == pytest.approx(th.nesterov_spectral_radius(L, mu) ** 2, rel=1e-12)
