"""simulate.probes: Hessian-vector products, L, tr H, SLQ and the two-batch estimators, each
against problems whose spectrum (or noise covariance) is known exactly.

Statistical checks compare an estimate with the exact value within Z standard errors of the
estimate itself, Z = the Bonferroni normal quantile for a family error of 1e-6 over the seeds
and quantities of the test (about 5.5-6); they are run for seeds 0..19. A wrong normalisation
(a missing 1/B, a factor d, using B_small where B_big belongs) is off by tens of standard
errors at these sample sizes.
"""

from __future__ import annotations

import numpy as np
import pytest

from simulate.noise import CurvatureAlignedNoise
from simulate.probes import (
    hutchinson_trace,
    hvp,
    lanczos,
    make_hvp,
    power_iteration,
    slq,
    two_batch_estimates,
)
from simulate.problems import FiniteSumLeastSquares, PLSinProblem, QuadraticProblem
from simulate.rng import BatchRNG, config_seed_sequence
from simulate.verdicts import bonferroni_z

SEEDS = range(20)


def nqm(d, rotated=True, seed=0):
    return QuadraticProblem(dim=d, eigenvalues=1.0 / np.arange(1, d + 1), rotated=rotated,
                            seed=seed)


def test_hvp_linear_is_exact_for_quadratics():
    p = nqm(40, seed=1)
    V = np.random.default_rng(0).standard_normal((7, 40))
    np.testing.assert_allclose(hvp(p, p.w_star + 3.0, V), V @ p.hessian_matrix().T,
                               atol=1e-14 * np.abs(V).max())
    np.testing.assert_allclose(hvp(p, p.w_star, V[0]), p.hessian_matrix() @ V[0], atol=1e-14)


def test_hvp_central_differences_on_a_nonquadratic():
    p = PLSinProblem(dim=6, rotated=True, seed=2)
    rng = np.random.default_rng(1)
    w = rng.standard_normal(6)
    x = (w - p.w_star) @ p.rotation
    H = p.rotation @ np.diag(2.0 + 6.0 * np.cos(2.0 * x)) @ p.rotation.T  # f'' = 2 + 6 cos 2x
    V = rng.standard_normal((4, 6))
    # central differences: truncation h^2 |f'''| / 6 with h ~ eps^(1/3) ~ 6e-6 -> ~1e-10,
    # rounding eps |grad| / h ~ 1e-11
    np.testing.assert_allclose(hvp(p, w, V), V @ H.T, atol=1e-8)


def test_power_iteration_and_lanczos_find_L():
    p = QuadraticProblem(dim=80, L=3.0, mu=0.01, spectrum="log-uniform", rotated=True, seed=4)
    f = make_hvp(p)
    lam, v, _ = power_iteration(f, 80, iters=2000, tol=1e-14)
    assert lam == pytest.approx(3.0, rel=1e-9)
    assert lam <= 3.0 * (1 + 1e-12)  # a Rayleigh quotient never exceeds lambda_max
    lz = lanczos(f, 80, 40)
    assert abs(lz.ritz[-1] - 3.0) <= lz.residual[-1] + 1e-12
    assert np.all(lz.ritz <= 3.0 + 1e-12) and np.all(lz.ritz >= 0.01 - 1e-12)


def test_lanczos_two_point_spectrum_is_exact():
    p = QuadraticProblem(dim=50, L=2.0, mu=0.5, spectrum="two-point", rotated=True, seed=5)
    lz = lanczos(make_hvp(p), 50, 20)
    assert lz.ritz.size == 2  # invariant subspace after 2 steps
    np.testing.assert_allclose(lz.ritz, [0.5, 2.0], rtol=1e-12)
    assert lz.weights.sum() == pytest.approx(1.0, rel=1e-12)


def test_hutchinson_exact_for_diagonal():
    p = nqm(100, rotated=False)
    tr, se = hutchinson_trace(make_hvp(p), 100, 10)
    assert tr == pytest.approx(p.hessian_trace, rel=1e-13) and se == pytest.approx(0, abs=1e-13)


def test_hutchinson_unbiased_rotated():
    z = bonferroni_z(2 * len(SEEDS))
    p = nqm(120, seed=3)
    f = make_hvp(p)
    for seed in SEEDS:
        tr, se = hutchinson_trace(f, 120, 300, seed=seed)
        assert abs(tr - p.hessian_trace) <= z * se, seed


def test_slq_gauss_rule_is_exact_for_low_degree_polynomials():
    """Per start vector z (|z|^2 = d): d sum_j w_j theta_j^m = z^T H^m z for m < 2k."""
    d, k, m_vec = 60, 6, 3
    p = nqm(d, seed=7)
    H = p.hessian_matrix()
    s = slq(make_hvp(p), d, m_vec, k, seed=11)
    Z = np.random.default_rng(11).integers(0, 2, size=(m_vec, d)).astype(float) * 2 - 1
    for power in range(2 * k):
        quad = d * np.sum(s.weights * s.nodes**power, axis=1)
        exact = np.einsum("id,de,ie->i", Z, np.linalg.matrix_power(H, power), Z)
        np.testing.assert_allclose(quad, exact, rtol=1e-9)


def test_slq_trace_and_density():
    z = bonferroni_z(2 * 2 * len(SEEDS))
    d = 150
    p = nqm(d, seed=9)
    f = make_hvp(p)
    lam = p.eigenvalues
    for seed in SEEDS[:8]:
        s = slq(f, d, 16, 40, seed=seed)
        for fn in (lambda x: x * x, np.log):
            est, se = s.trace(fn)
            assert abs(est - np.sum(fn(lam))) <= z * se, seed
    # the estimated CDF is within a few Gaussian-quadrature nodes of the truth
    s = slq(f, d, 40, 40, seed=0)
    grid = np.array([0.01, 0.05, 0.2])
    np.testing.assert_allclose(s.cdf(grid), [np.mean(lam <= g) for g in grid], atol=0.06)


def test_two_batch_estimators_unbiased_on_the_nqm():
    """Covariance H/B: tr Sigma = tr H, tr(H Sigma) = tr H^2 per example (THEORY.md 4.8)."""
    z = bonferroni_z(2 * 4 * len(SEEDS))
    d = 50
    p = nqm(d, rotated=False)
    h = p.eigenvalues
    x = (1.0 - h) ** 3  # a point of the gradient-descent path
    w = np.broadcast_to(p.w_star + x, (1, 4000, d)).copy()
    G = h * x
    exact = {"grad_norm2": G @ G, "tr_sigma": h.sum(), "gHg": G @ (h * G),
             "tr_H_sigma": np.sum(h * h)}
    f = make_hvp(p)
    for seed in SEEDS:
        g = {}
        for B in (8, 64):
            orc = CurvatureAlignedNoise(sigma2=p.hessian_trace, B=B)
            rng = BatchRNG([config_seed_sequence(seed, f"two-batch {B}")])
            g[B], _ = orc(p, w, 0, None, rng)
        est = two_batch_estimates(g[8][0], g[64][0], 8, 64, f)
        for key, val in exact.items():
            mean, se = getattr(est, key)
            assert abs(mean - val) <= z * se, (seed, key, mean, val, se)


def test_two_batch_on_real_minibatches():
    """Finite-sum least squares with sampling with replacement: Sigma(w) from the per-example
    gradients, exactly."""
    z = bonferroni_z(2 * 4 * len(SEEDS))
    p = FiniteSumLeastSquares(n=400, dim=8, seed=1, cond=20.0, noise_std=0.5)
    A, b = p.A, p.b
    w = p.w_star + 0.3
    per = A * (A @ w - b)[:, None]  # rows: per-example gradients
    G = per.mean(axis=0)
    Sigma = np.cov(per.T, bias=True)
    H = A.T @ A / p.n
    exact = {"grad_norm2": G @ G, "tr_sigma": np.trace(Sigma), "gHg": G @ H @ G,
             "tr_H_sigma": np.sum(H * Sigma)}
    f = make_hvp(p)
    n_pairs = 2000
    for seed in SEEDS:
        rng = np.random.default_rng(seed)
        W = np.broadcast_to(w, (n_pairs, 8))
        gs = p.component_grad_mean(W, rng.integers(0, p.n, (n_pairs, 4)))
        gb = p.component_grad_mean(W, rng.integers(0, p.n, (n_pairs, 32)))
        est = two_batch_estimates(gs, gb, 4, 32, f)
        for key, val in exact.items():
            mean, se = getattr(est, key)
            assert abs(mean - val) <= z * se, (seed, key)
        r, r_se = est.B_simple
        assert abs(r - exact["tr_sigma"] / exact["grad_norm2"]) <= z * r_se


def test_validation():
    p = nqm(5)
    with pytest.raises(ValueError):
        hvp(p, p.w_star, np.ones(4))
    with pytest.raises(ValueError):
        hvp(p, p.w_star, np.ones(5), method="forward")
    with pytest.raises(ValueError):
        two_batch_estimates(np.ones((3, 5)), np.ones((3, 5)), 8, 4)
    with pytest.raises(ValueError):
        two_batch_estimates(np.ones((3, 5)), np.ones((2, 5)), 4, 8)
