"""theory.batch: exact NQM dynamics, steps to target, step search, hyperbola fit, noise scales.

Every closed form is checked against an independent computation: the step-by-step second-moment
recursion of THEORY.md 4.4/4.5 (brute force, no closed form), the binary-powering
implementations in theory.sgd_exact / theory.hb_exact, and theory.noise_scale. Steps to target
are compared with the first step at which the brute-force recursion reaches the target. The
reproduction numbers of Zhang et al. 2019 are checked at the paper's size (d = 10^4).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from theory import (
    heavy_ball_exact_quadratic,
    heavy_ball_stationary_quadratic,
    noise_scale,
    sgd_exact_quadratic,
    sgd_stationary_quadratic,
)
from theory.batch import (
    diagonal_noise_scales,
    expected_loss,
    fit_steps_examples,
    nqm_coordinates,
    nqm_curvatures,
    nqm_largest_step,
    nqm_step_search,
    nqm_steps_to_target,
    stationary_loss,
    steps_to_target,
)


def brute_force(h, step, noise, m0, beta, T):
    """E f(w_t) - f* for t = 0..T by the 2x2 covariance recursion, step by step."""
    m0 = np.broadcast_to(np.asarray(m0, float), h.shape)
    s11, s12, s22 = m0.copy(), m0.copy(), m0.copy()
    a = 1.0 + beta - step * h
    c = step * step * noise
    hist = np.empty((T + 1, h.size))
    hist[0] = s11
    for k in range(T):
        s11, s12, s22 = (a * a * s11 - 2 * a * beta * s12 + beta * beta * s22 + c,
                         a * s11 - beta * s12, s11)
        hist[k + 1] = s11
    return 0.5 * (hist @ h)


def random_case(rng, d=30, target=0.05):
    beta = float(rng.choice([0.0, 0.5, 0.9, 0.99]))
    B = float(rng.choice([1, 16, 1024]))
    p = float(rng.choice([0.0, 0.5, 1.0]))
    h = nqm_curvatures(d)
    top = float(nqm_largest_step(h, B, beta=beta, p=p, target=target))
    alpha = top * rng.uniform(0.05, 1.0)
    m0 = 1.0 if rng.random() < 0.5 else rng.exponential(1.0, d)
    step, noise = nqm_coordinates(h, B, alpha, p)
    return h, step, noise, m0, beta


@pytest.mark.parametrize("seed", range(6))
def test_expected_loss_matches_recursion(seed):
    rng = np.random.default_rng(seed)
    for _ in range(6):
        h, step, noise, m0, beta = random_case(rng)
        T = 400
        bf = brute_force(h, step, noise, m0, beta, T)
        t = np.arange(T + 1)
        ex = expected_loss(t, h, step[None, :], noise[None, :], m0, beta)
        # The step-by-step recursion accumulates rounding: at beta = 0.99 its 2x2 map amplifies
        # errors by up to ~1/(1 - beta)^2 = 1e4, so after T = 400 steps it is good to about
        # T eps 1e4 ~ 1e-9 of the initial loss (and the loss dips to ~0.3% of it). Hence an
        # absolute allowance of 1e-9 F(0) besides rtol; the closed form agrees with the
        # binary-powering evaluation of theory.hb_exact to 1e-10 (checked below).
        np.testing.assert_allclose(ex, bf, rtol=1e-9, atol=1e-9 * bf[0])
        ref = heavy_ball_exact_quadratic(t, h, step, beta, noise, m0).values
        np.testing.assert_allclose(ex, ref, rtol=1e-10)


def test_expected_loss_matches_binary_powering():
    h = nqm_curvatures(50)
    for beta in (0.0, 0.7, 0.95):
        step, noise = nqm_coordinates(h, 8.0, 0.3)
        t = np.array([0, 1, 7, 100, 1234, 10**5])
        ours = expected_loss(t, h, step[None, :], noise[None, :], 1.0, beta)
        if beta == 0:
            ref = sgd_exact_quadratic(t, h, step, noise, 1.0).values
        else:
            ref = heavy_ball_exact_quadratic(t, h, step, beta, noise, 1.0).values
        np.testing.assert_allclose(ours, ref, rtol=1e-10)


def test_double_root_is_exact():
    # alpha h = (1 - sqrt(beta))^2 exactly for one coordinate: a double root of r^2 - a r + beta
    beta = 0.81
    h = np.array([1.0, 0.5, 0.1])
    step = np.full(3, (1 - math.sqrt(beta)) ** 2 / 0.5)
    t = np.arange(60)
    ours = expected_loss(t, h, step[None, :], 0.01, 1.0, beta)
    np.testing.assert_allclose(ours, brute_force(h, step, 0.01, 1.0, beta, 59), rtol=1e-11)


def test_stationary_loss_matches_theory():
    h = nqm_curvatures(40)
    step, noise = nqm_coordinates(h, 4.0, 0.5)
    assert stationary_loss(h, step, noise) == pytest.approx(
        sgd_stationary_quadratic(h, step, noise).value, rel=1e-13)
    assert stationary_loss(h, step, noise, 0.9) == pytest.approx(
        heavy_ball_stationary_quadratic(h, step, 0.9, noise).value, rel=1e-13)
    assert stationary_loss(h, np.full(40, 2.5), noise) == math.inf  # unstable


@pytest.mark.parametrize("seed", range(5))
def test_steps_to_target_is_the_first_crossing(seed):
    """Certified answers equal the brute-force first crossing (all SGD rows are monotone,
    heavy ball rows are certified by the walk of _certify_first)."""
    rng = np.random.default_rng(100 + seed)
    certified = 0
    for _ in range(10):
        target = float(rng.choice([0.05, 0.01]))
        h, step, noise, m0, beta = random_case(rng, target=target)
        r = steps_to_target(target, h, step, noise, m0, beta, verify=True, verify_rounds=500)
        if np.isfinite(r.steps) and r.steps > 20000:
            continue  # beyond the brute-force horizon
        horizon = int(2 * r.steps + 10) if np.isfinite(r.steps) else 20000
        bf = brute_force(h, step, noise, m0, beta, horizon)
        first = np.flatnonzero(bf <= target)
        if not np.isfinite(r.steps):
            assert first.size == 0 or r.floor >= target
            continue
        t = int(r.steps)
        assert bf[t] <= target < bf[t - 1]  # always a crossing
        if r.verified:  # certified: the first one
            assert t == first[0]
            certified += 1
        else:  # only heavy ball can be uncertified (work limit of the walk)
            assert beta > 0
    assert certified >= 5


def test_oscillating_heavy_ball_first_crossing():
    """Heavy ball with beta = 0.99: the loss oscillates and dips below the target before the
    crossing a root finder lands on; the certified answer is the first dip."""
    h = nqm_curvatures(30)
    B, beta, target = 1024.0, 0.99, 0.05
    top = float(nqm_largest_step(h, B, beta=beta, p=0.5, target=target))
    step, noise = nqm_coordinates(h, B, 0.21 * top, 0.5)
    bf = brute_force(h, step, noise, 1.0, beta, 2000)
    assert np.any(np.diff(bf[:400]) > 0)  # the expected loss is not monotone here
    r = steps_to_target(target, h, step, noise, 1.0, beta, verify=True)
    assert r.verified and r.steps == np.flatnonzero(bf <= target)[0]


def test_unreachable_and_trivial_targets():
    h = nqm_curvatures(20)
    step, noise = nqm_coordinates(h, 1.0, 1.5)
    r = steps_to_target(1e-4, h, step, noise, 1.0)  # floor above the target
    assert r.steps == math.inf and r.floor > 1e-4
    r = steps_to_target(100.0, h, step, noise, 1.0)  # already below at t = 0
    assert r.steps == 0
    r = steps_to_target(0.01, h, np.full(20, 2.5), noise, 1.0)  # unstable
    assert r.steps == math.inf and r.floor == math.inf


def test_largest_step():
    h = nqm_curvatures(100)
    for B, beta, p in ((1.0, 0.0, 0.0), (64.0, 0.9, 0.0), (16.0, 0.0, 0.5)):
        a = float(nqm_largest_step(h, B, beta=beta, p=p, target=0.01))
        step, noise = nqm_coordinates(h, B, a, p)
        assert stationary_loss(h, step, noise, beta) == pytest.approx(0.01, rel=1e-10)
    a = float(nqm_largest_step(h, np.inf, target=0.01))  # no noise: the stability limit
    assert a == pytest.approx(2.0, rel=1e-12) and a < 2.0


def test_step_search_is_a_local_minimum():
    h = nqm_curvatures(200)
    B = np.array([1.0, 64.0, 4096.0])
    s = nqm_step_search(h, B, beta=(0.0, 0.9))
    r = s.resolution
    for i in range(B.size):
        for j, beta in enumerate(s.beta):
            a = s.alpha[i, j]
            near = nqm_steps_to_target(h, B[i], np.array([a / r, a, a * r]), beta=beta).steps
            assert near[1] == s.steps[i, j]
            assert near[1] <= near[0] and near[1] <= near[2]
    # a grid 4x finer around the answer cannot do better by more than 0.5%
    fine = nqm_steps_to_target(h, B[:, None], s.alpha[:, :1] * r ** np.linspace(-2, 2, 17)
                               ).steps
    assert np.all(fine.min(axis=1) >= 0.995 * s.steps[:, 0])


def test_hyperbola_fit_recovers_parameters():
    B = 2.0 ** np.arange(0, 16)
    S = 700.0 + 4.5e5 / B
    f = fit_steps_examples(B, S)
    assert f.S_min == pytest.approx(700.0, rel=1e-12)
    assert f.E_min == pytest.approx(4.5e5, rel=1e-12)
    assert f.B_crit == pytest.approx(4.5e5 / 700.0, rel=1e-12)
    assert f.max_departure < 1e-12
    # (S/S_min - 1)(E/E_min - 1) = 1 on the fitted curve
    Sf = f.S_min + f.E_min / B
    np.testing.assert_allclose((Sf / f.S_min - 1) * (B * Sf / f.E_min - 1), 1.0, rtol=1e-12)
    with pytest.raises(ValueError):
        fit_steps_examples([1.0], [3.0])


def test_diagonal_noise_scales_match_dense():
    rng = np.random.default_rng(3)
    h = nqm_curvatures(12)
    x = rng.standard_normal(12)
    G = h * x
    ours = diagonal_noise_scales(h, h, G)
    ref = noise_scale(np.diag(h), np.diag(h), G)
    assert ours["B_noise"] == pytest.approx(ref.B_noise, rel=1e-13)
    assert ours["B_simple"] == pytest.approx(ref.B_simple, rel=1e-13)
    assert ours["eps_max"] == pytest.approx(ref.eps_max, rel=1e-13)


def test_one_step_improvement_exact():
    """E f(w - eps g) = f - eps|G|^2 + eps^2 (G^T H G + tr(H Sigma)/B)/2 on the NQM (exact), and
    eps_opt(B) = eps_max/(1 + B_noise/B) minimises it."""
    h = nqm_curvatures(64)
    x0 = np.linspace(0.5, 2.0, 64)
    G = h * x0
    f0 = 0.5 * np.sum(h * x0**2)
    ns = noise_scale(h, h, G)
    for B in (1.0, 8.0, 512.0):
        eps = np.array([0.1, 0.5, 1.0, ns.eps_opt(B)])
        step, noise = nqm_coordinates(h, B, eps)
        after = expected_loss(1, h, step, noise, x0**2)
        formula = f0 - eps * (G @ G) + 0.5 * eps**2 * (G @ (h * G) + np.sum(h * h) / B)
        np.testing.assert_allclose(after, formula, rtol=1e-13)
        e_opt = ns.eps_opt(B)
        around = np.array([e_opt * 0.99, e_opt, e_opt * 1.01])
        step, noise = nqm_coordinates(h, B, around)
        vals = expected_loss(1, h, step, noise, x0**2)
        assert vals[1] < vals[0] and vals[1] < vals[2]
        assert f0 - vals[1] == pytest.approx(ns.delta_L_opt(B), rel=1e-12)


def test_paper_numbers_at_d_1e4():
    """Zhang et al. 2019's NQM (d = 10^4, h_i = 1/i, target 0.01, x0 = 1): SGD's critical batch
    size is in the high hundreds and H^-0.5 raises it by about an order of magnitude."""
    h = nqm_curvatures(10_000)
    B = 2.0 ** np.arange(0, 21, 2)
    bc = {}
    for p in (0.0, 0.5):
        s = nqm_step_search(h, B, p=p)
        bc[p] = fit_steps_examples(B, s.steps[:, 0]).B_crit
    assert 500 <= bc[0.0] < 1000
    assert abs(math.log10(bc[0.5] / bc[0.0]) - 1.0) <= 0.5


def test_input_validation():
    h = nqm_curvatures(5)
    with pytest.raises(ValueError):
        expected_loss(1, h, -1.0, 0.1, 1.0)
    with pytest.raises(ValueError):
        expected_loss(1, h, 0.1, 0.1, 1.0, beta=1.0)
    with pytest.raises(ValueError):
        expected_loss(-1, h, 0.1, 0.1, 1.0)
    with pytest.raises(ValueError):
        expected_loss(1, np.array([1.0, 0.0]), 0.1, 0.1, 1.0)
    with pytest.raises(ValueError):
        steps_to_target(0.0, h, 0.1, 0.1, 1.0)
    with pytest.raises(ValueError):
        nqm_coordinates(h, 0.0, 0.1)
    with pytest.raises(ValueError):
        nqm_step_search(h, [-1.0])
