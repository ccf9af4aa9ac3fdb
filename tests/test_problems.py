"""Problem families: gradients, exact constants (L, μ, f*, w*), dtypes and input validation.

Margins used throughout (float64):
* central differences with step h: truncation ≤ h²·max|f'''|/6 and rounding ≈ ε·|f|/h; with
  h = 1e-5 and |f| ≲ 1e3 both are ≲ 1e-7, so ``FD_TOL`` = 1e-6 (relative to 1 + ‖∇f‖∞);
* ratios of differences of O(1) quantities carry rounding ≈ 1e-15, far below the 1e-12
  (Lipschitz) and 1e-9 (PL) relative margins required by the spec.
"""

from __future__ import annotations

import numpy as np
import pytest

import theory
from simulate.problems import (
    SPECTRUM_LAWS,
    DenseQuadraticProblem,
    FiniteSumLeastSquares,
    FiniteSumLogistic,
    FiniteSumProblem,
    LessardProblem,
    OverparamLeastSquares,
    PLSinProblem,
    QuadraticProblem,
    spectrum,
)
from simulate.problems._common import haar_orthogonal, host_rng
from simulate.problems.pl_sin import _pl_sin_1d_private, pl_sin_1d_constants

FD_TOL = 1e-6
LIP_TOL = 1e-12
PL_TOL = 1e-9


# ---------------------------------------------------------------------------------------------
# generic checks
# ---------------------------------------------------------------------------------------------
def central_difference(problem, w, h=1e-5):
    """Central-difference gradient of ``problem.value`` at the rows of w (N, d)."""
    d = w.shape[-1]
    eye = np.eye(d) * h
    fp = problem.value(w[:, None, :] + eye)
    fm = problem.value(w[:, None, :] - eye)
    return (fp - fm) / (2 * h)


def check_gradient(problem, w):
    g = problem.grad(w)
    fd = central_difference(problem, w)
    scale = 1.0 + np.abs(g).max()
    assert np.abs(g - fd).max() <= FD_TOL * scale


def lipschitz_ratios(problem, x, y):
    num = np.linalg.norm(problem.grad(x) - problem.grad(y), axis=-1)
    return num / np.linalg.norm(x - y, axis=-1)


def pl_ratios(problem, w):
    g = problem.grad(w)
    return (g * g).sum(-1) / (2 * problem.f_gap(w))


def sample_points(rng, n, d, center, radius):
    """n points around ``center`` at distances spread over [radius/100, radius]."""
    u = rng.standard_normal((n, d))
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    r = radius * np.geomspace(0.01, 1.0, n)[:, None]
    return center + r * u


def check_dtype_follows(problem, w64):
    """float32 in → float32 out, matching float64 to float32 accuracy.

    float32 rounding (ε = 6e-8) accumulated over d ≤ 60 terms and a rotation stays below
    ~1e-5 relative; 1e-4 leaves room.
    """
    w32 = w64.astype(np.float32)
    for name in ("value", "grad", "f_gap", "dist2"):
        out32 = getattr(problem, name)(w32)
        out64 = getattr(problem, name)(w64)
        assert out32.dtype == np.float32, name
        assert out64.dtype == np.float64, name
        err = np.abs(out32 - out64).max()
        assert err <= 1e-4 * (1.0 + np.abs(out64).max()), name


# ---------------------------------------------------------------------------------------------
# spectrum laws
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("law", SPECTRUM_LAWS)
@pytest.mark.parametrize("m", [2, 3, 7, 50])
def test_spectrum_contains_mu_and_L_exactly(law, m):
    L, mu = 3.7, 0.013
    lam = spectrum(law, m, L, mu)
    assert lam.shape == (m,)
    assert lam[0] == mu and lam[-1] == L  # bit for bit
    assert np.all(np.diff(lam) >= 0)
    assert lam.min() == mu and lam.max() == L


def test_spectrum_law_shapes():
    lam = spectrum("log-uniform", 5, 16.0, 1.0)
    np.testing.assert_allclose(lam, [1, 2, 4, 8, 16], rtol=1e-15)
    np.testing.assert_allclose(spectrum("uniform", 5, 5.0, 1.0), [1, 2, 3, 4, 5], rtol=1e-15)
    two = spectrum("two-point", 7, 2.0, 1.0)  # odd count: the extra eigenvalue at L
    assert (two == 1.0).sum() == 3 and (two == 2.0).sum() == 4
    # power law with κ = m is the NQM law λ_i = L / i
    m = 20
    pw = spectrum("power-law", m, 3.0, 3.0 / m)
    np.testing.assert_allclose(pw, np.sort(3.0 / np.arange(1, m + 1)), rtol=1e-13)
    assert np.all(spectrum("power-law", 4, 2.0, 2.0) == 2.0)  # κ = 1


# ---------------------------------------------------------------------------------------------
# quadratics
# ---------------------------------------------------------------------------------------------
QUAD_CASES = [
    dict(dim=1, L=2.0, mu=2.0),
    dict(dim=6, L=10.0, mu=0.1, spectrum="log-uniform"),
    dict(dim=9, L=4.0, mu=0.5, spectrum="uniform", rotated=True, seed=3),
    dict(dim=7, L=1.0, mu=0.01, spectrum="two-point", rotated=True),
    dict(dim=12, L=5.0, mu=0.05, spectrum="power-law", n_zero=3),
    dict(dim=10, L=3.0, mu=0.2, spectrum="log-uniform", rotated=True, n_zero=4, seed=7,
         w_star=np.linspace(-1, 1, 10), f_star=-2.5),
]


@pytest.fixture(params=range(len(QUAD_CASES)), ids=lambda i: f"quad{i}")
def quad(request):
    return QuadraticProblem(**QUAD_CASES[request.param])


def test_quadratic_gradient_matches_finite_differences(quad):
    rng = np.random.default_rng(0)
    w = quad.w_star + rng.standard_normal((8, quad.dim))
    check_gradient(quad, w)


def test_quadratic_matches_dense_formula(quad):
    rng = np.random.default_rng(1)
    w = quad.w_star + rng.standard_normal((3, 4, quad.dim))
    A = quad.hessian_matrix()
    e = w - quad.w_star
    np.testing.assert_allclose(quad.value(w), 0.5 * np.einsum("...i,ij,...j", e, A, e)
                               + quad.f_star, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(quad.grad(w), e @ A, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(quad.hessian_diag(), np.diag(A), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(np.linalg.eigvalsh(A), np.sort(quad.eigenvalues), atol=1e-12)
    assert quad.hessian_trace == pytest.approx(np.trace(A), rel=1e-12)
    # A^{1/2} applied twice is A
    z = rng.standard_normal((5, quad.dim))
    np.testing.assert_allclose(quad.hessian_sqrt_apply(quad.hessian_sqrt_apply(z)), z @ A,
                               rtol=1e-10, atol=1e-12)
    if quad.rotation is not None:
        Q = quad.rotation
        np.testing.assert_allclose(Q.T @ Q, np.eye(quad.dim), atol=1e-13)
        np.testing.assert_allclose(quad.to_eigenbasis(w), e @ Q, rtol=1e-13, atol=1e-13)


def test_quadratic_constants_are_exact_and_attained(quad):
    rng = np.random.default_rng(2)
    d = quad.dim
    x = quad.w_star + rng.standard_normal((400, d)) * rng.uniform(0.1, 3, (400, 1))
    y = quad.w_star + rng.standard_normal((400, d))
    assert lipschitz_ratios(quad, x, y).max() <= quad.L * (1 + LIP_TOL)
    w = sample_points(rng, 400, d, quad.w_star, 5.0)
    assert pl_ratios(quad, w).min() >= quad.mu * (1 - PL_TOL)
    # attained: along the top eigenvector (Lipschitz) and the bottom nonzero one (PL)
    Q = quad.rotation if quad.rotation is not None else np.eye(d)
    lam = quad.eigenvalues
    top = Q[:, np.argmax(lam)]
    bottom = Q[:, np.flatnonzero(lam == lam[lam > 0].min())[0]]
    r = lipschitz_ratios(quad, quad.w_star + 0.7 * top, quad.w_star - 0.3 * top)
    assert r == pytest.approx(quad.L, rel=1e-12)
    assert pl_ratios(quad, quad.w_star + 1.3 * bottom) == pytest.approx(quad.mu, rel=1e-12)
    # minimiser
    assert quad.value(quad.w_star) == quad.f_star
    assert np.all(quad.grad(quad.w_star) == 0.0)
    assert quad.f_gap(quad.w_star) == 0.0 and quad.dist2(quad.w_star) == 0.0
    assert quad.strongly_convex == (quad.n_zero == 0)


def test_quadratic_dtype_follows_input(quad):
    rng = np.random.default_rng(3)
    w = quad.w_star + rng.standard_normal((2, 3, quad.dim))
    check_dtype_follows(quad, w)
    z = rng.standard_normal((2, quad.dim)).astype(np.float32)
    assert quad.hessian_sqrt_apply(z).dtype == np.float32
    assert quad.to_eigenbasis(z).dtype == np.float32


def test_quadratic_rank_deficient_minimiser_set():
    q = QuadraticProblem(8, 2.0, 0.5, n_zero=3, rotated=True, seed=11)
    assert q.n_zero == 3 and np.all(q.eigenvalues[:3] == 0) and q.mu == 0.5
    null = q.rotation[:, :3]
    rng = np.random.default_rng(4)
    w_null = q.w_star + rng.standard_normal((5, 3)) @ null.T  # other minimisers
    np.testing.assert_allclose(q.f_gap(w_null), 0.0, atol=1e-28)
    np.testing.assert_allclose(q.dist2(w_null), 0.0, atol=1e-28)
    np.testing.assert_allclose(q.grad(w_null), 0.0, atol=1e-14)
    # dist2 is the squared distance to the set: projection onto range(A)
    w = q.w_star + rng.standard_normal((5, 8))
    A = q.hessian_matrix()
    P = A @ np.linalg.pinv(A)
    np.testing.assert_allclose(q.dist2(w), (((w - q.w_star) @ P) ** 2).sum(-1), rtol=1e-10)
    # quadratic growth f − f* ≥ μ/2 dist² (KNS 2016), equality on the bottom eigenvector
    assert np.all(q.f_gap(w) >= 0.5 * q.mu * q.dist2(w) * (1 - 1e-12))


def test_quadratic_explicit_eigenvalues():
    lam = np.array([3.0, 0.0, 0.5, 1.0])
    q = QuadraticProblem(4, eigenvalues=lam)
    assert (q.L, q.mu, q.n_zero, q.spectrum_law) == (3.0, 0.5, 1, "explicit")
    np.testing.assert_array_equal(q.eigenvalues, lam)  # order kept
    w = np.array([1.0, 1.0, 1.0, 1.0])
    assert q.value(w) == pytest.approx(0.5 * 4.5)
    assert q.dist2(w) == 3.0
    with pytest.raises(ValueError, match=r"^L="):
        QuadraticProblem(4, L=2.0, eigenvalues=lam)


# ---------------------------------------------------------------------------------------------
# dense quadratics (any symmetric positive definite A)
# ---------------------------------------------------------------------------------------------
def _dense_case(kind: str) -> tuple[np.ndarray, np.ndarray]:
    """(A, its eigenvalues, ascending) with a known spectrum: A = S Q diag(λ) Qᵀ S with S = I
    ("rotated") or a diagonal scaling ("scaled", spectrum then from a float64 eigensolver of the
    similar matrix, so only the construction of A is checked against it)."""
    d = 8
    lam = np.geomspace(0.05, 20.0, d)
    q = haar_orthogonal(d, host_rng(5))
    A = (q * lam) @ q.T
    A = 0.5 * (A + A.T)
    if kind == "scaled":
        s = np.sqrt(np.geomspace(1.0, 100.0, d))
        A = s[:, None] * A * s[None, :]
        A = 0.5 * (A + A.T)
        lam = np.linalg.eigvalsh(A)
    return A, lam


@pytest.fixture(params=["rotated", "scaled"])
def dense(request):
    A, lam = _dense_case(request.param)
    w_star = np.linspace(-1.0, 2.0, A.shape[0])
    return DenseQuadraticProblem(A, w_star=w_star, f_star=-0.75), A, lam


def test_dense_quadratic_constants_are_exact_and_attained(dense):
    prob, A, lam = dense
    d = prob.dim
    # L, μ: the extreme eigenvalues, to the eigensolver's rounding (~d ε κ relative at μ)
    assert prob.L == pytest.approx(lam[-1], rel=1e-13)
    assert prob.mu == pytest.approx(lam[0], rel=1e-12)
    np.testing.assert_allclose(prob.eigenvalues, lam, rtol=1e-12)
    assert prob.kappa == pytest.approx(lam[-1] / lam[0], rel=1e-12)
    np.testing.assert_array_equal(prob.hessian_matrix(), A)
    np.testing.assert_array_equal(prob.hessian_diag(), np.diag(A))
    assert prob.hessian_trace == pytest.approx(np.trace(A), rel=1e-14)
    rng = np.random.default_rng(12)
    x = prob.w_star + rng.standard_normal((400, d)) * rng.uniform(0.1, 3, (400, 1))
    y = prob.w_star + rng.standard_normal((400, d))
    assert lipschitz_ratios(prob, x, y).max() <= prob.L * (1 + LIP_TOL)
    w = sample_points(rng, 400, d, prob.w_star, 5.0)
    assert pl_ratios(prob, w).min() >= prob.mu * (1 - PL_TOL)
    vec = prob.eigenvectors
    top, bottom = vec[:, -1], vec[:, 0]
    r = lipschitz_ratios(prob, prob.w_star + 0.7 * top, prob.w_star - 0.3 * top)
    assert r == pytest.approx(prob.L, rel=1e-12)
    assert pl_ratios(prob, prob.w_star + 1.3 * bottom) == pytest.approx(prob.mu, rel=1e-10)
    # minimiser and minimum
    assert prob.value(prob.w_star) == prob.f_star == -0.75
    assert np.all(prob.grad(prob.w_star) == 0.0)
    assert prob.f_gap(prob.w_star) == 0.0 and prob.dist2(prob.w_star) == 0.0
    assert prob.strongly_convex and prob.convex


def test_dense_quadratic_gradient_and_batch_shapes(dense):
    prob, A, _ = dense
    d = prob.dim
    rng = np.random.default_rng(13)
    check_gradient(prob, prob.w_star + rng.standard_normal((8, d)))
    w = prob.w_star + rng.standard_normal((3, 4, d))
    e = w - prob.w_star
    assert prob.value(w).shape == prob.f_gap(w).shape == prob.dist2(w).shape == (3, 4)
    assert prob.grad(w).shape == (3, 4, d)
    np.testing.assert_allclose(prob.value(w), 0.5 * np.einsum("...i,ij,...j", e, A, e)
                               + prob.f_star, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(prob.grad(w), e @ A, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(prob.dist2(w), (e * e).sum(-1), rtol=1e-14)
    assert prob.value(prob.w_star).shape == ()  # a single point, shape (d,)
    # A^{1/2} applied twice is A, and is symmetric
    z = rng.standard_normal((5, d))
    np.testing.assert_allclose(prob.hessian_sqrt_apply(prob.hessian_sqrt_apply(z)), z @ A,
                               rtol=1e-10, atol=1e-12 * np.abs(A).max())
    check_dtype_follows(prob, w)
    assert prob.hessian_sqrt_apply(z.astype(np.float32)).dtype == np.float32


def test_dense_quadratic_equals_the_rotated_quadratic_it_is_given():
    q = QuadraticProblem(9, 4.0, 0.5, spectrum="uniform", rotated=True, seed=3,
                         w_star=np.linspace(-1, 1, 9), f_star=1.5)
    dq = DenseQuadraticProblem(q.hessian_matrix(), w_star=q.w_star, f_star=q.f_star)
    assert dq.L == pytest.approx(q.L, rel=1e-13) and dq.mu == pytest.approx(q.mu, rel=1e-13)
    w = q.w_star + np.random.default_rng(14).standard_normal((6, 9))
    for name in ("value", "grad", "f_gap", "dist2"):
        np.testing.assert_allclose(getattr(dq, name)(w), getattr(q, name)(w), rtol=1e-12,
                                   atol=1e-12, err_msg=name)
    assert dq.describe() == {"problem": "dense_quadratic", "d": 9, "L": dq.L, "mu": dq.mu,
                             "kappa": dq.kappa, "spectrum": "dense", "rotated": True}


# ---------------------------------------------------------------------------------------------
# Lessard–Recht–Packard counterexample
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dim", [1, 3])
def test_lessard_problem(dim):
    p = LessardProblem(dim)
    assert (p.L, p.mu, p.f_star, p.dim) == (25.0, 1.0, 0.0, dim)
    np.testing.assert_array_equal(p.w_star, np.zeros(dim))
    rng = np.random.default_rng(15)
    # points on all three pieces (breaks at 1 and 2) and both sides of 0
    w = rng.uniform(-3.0, 4.0, (5, 7, dim))
    w[0, 0] = 1.0  # exactly on the breakpoints
    w[0, 1] = 2.0
    # equals the theory module's definition, summed over coordinates
    np.testing.assert_array_equal(p.value(w), theory.lrp_value(w).sum(axis=-1))
    np.testing.assert_array_equal(p.grad(w), theory.lrp_grad(w))
    np.testing.assert_array_equal(p.f_gap(w), p.value(w))
    np.testing.assert_allclose(p.dist2(w), (w * w).sum(-1), rtol=1e-15)
    # batch shapes
    assert p.value(w).shape == p.f_gap(w).shape == p.dist2(w).shape == (5, 7)
    assert p.grad(w).shape == (5, 7, dim)
    assert p.value(w[0, 0]).shape == ()
    # gradient slopes between random pairs lie in [μ, L] = [1, 25] (separable: per coordinate
    # the difference quotient of φ' is an average of φ'' ∈ {1, 25}), both ends attained
    x, y = rng.uniform(-3.0, 4.0, (2, 2000, dim))
    slope = (p.grad(x) - p.grad(y)) / (x - y)
    assert slope.min() >= 1.0 * (1 - 1e-12) and slope.max() <= 25.0 * (1 + 1e-12)
    lip = lipschitz_ratios(p, x, y)
    assert lip.min() >= 1.0 * (1 - 1e-12) and lip.max() <= 25.0 * (1 + 1e-12)
    pair = np.array([[1.2], [1.7]]) * np.ones(dim)  # both on the middle piece: slope μ
    assert lipschitz_ratios(p, pair[0], pair[1]) == pytest.approx(1.0, rel=1e-12)
    pair = np.array([[-0.5], [0.5]]) * np.ones(dim)  # both on the first piece: slope L
    assert lipschitz_ratios(p, pair[0], pair[1]) == pytest.approx(25.0, rel=1e-12)
    # minimiser, and the gradient agrees with finite differences away from the breakpoints
    assert p.value(p.w_star) == 0.0 and np.all(p.grad(p.w_star) == 0.0)
    smooth = np.array([[-1.3], [0.4], [1.5], [3.1]]) * np.ones(dim)
    check_gradient(p, smooth)
    # keeps the input's dtype
    check_dtype_follows(p, w)


# ---------------------------------------------------------------------------------------------
# PL sin
# ---------------------------------------------------------------------------------------------
def test_pl_sin_1d_constant():
    L1, mu1, x_hat = pl_sin_1d_constants()
    assert L1 == 8.0
    assert mu1 == pytest.approx(0.17553, abs=5e-6)  # THEORY.md §5
    assert x_hat == pytest.approx(2.2017, abs=1e-4)
    # independent check of the constant by a dense grid over x > 0 (the ratio is even):
    x = np.linspace(1e-3, 30, 3_000_001)
    r = (2 * x + 3 * np.sin(2 * x)) ** 2 / (2 * (x * x + 3 * np.sin(x) ** 2))
    # the grid minimum overestimates by ≤ r''·Δx²/8 ≈ 1e-12
    assert mu1 <= r.min() * (1 + 1e-12)
    assert r.min() <= mu1 * (1 + 1e-9)
    assert _pl_sin_1d_private()[1] == pytest.approx(mu1, rel=1e-12)


@pytest.mark.parametrize("dim,rotated,scale", [(1, False, 1.0), (5, False, 2.5),
                                               (8, True, 0.3), (20, True, 1.0)])
def test_pl_sin_problem(dim, rotated, scale):
    rng = np.random.default_rng(dim)
    w_star = rng.standard_normal(dim)
    p = PLSinProblem(dim, scale=scale, rotated=rotated, seed=5, w_star=w_star)
    L1, mu1, x_hat = pl_sin_1d_constants()
    assert p.L == 8 * scale and p.mu == pytest.approx(mu1 * scale, rel=1e-15)
    assert not p.convex and not p.strongly_convex and p.f_star == 0.0
    w = w_star + 3 * rng.standard_normal((10, dim))
    check_gradient(p, w)
    check_dtype_follows(p, w)
    x = w_star + 4 * rng.standard_normal((2000, dim))
    y = w_star + 4 * rng.standard_normal((2000, dim))
    assert lipschitz_ratios(p, x, y).max() <= p.L * (1 + LIP_TOL)
    pts = sample_points(rng, 3000, dim, w_star, 6.0)
    assert pl_ratios(p, pts).min() >= p.mu * (1 - PL_TOL)
    # the worst point attains μ: one eigen-coordinate at ±x̂, the others at 0 or ±x̂
    Q = p.rotation if rotated else np.eye(dim)
    xs = np.zeros(dim)
    xs[0] = x_hat
    if dim > 1:
        xs[-1] = -x_hat
    assert pl_ratios(p, w_star + Q @ xs) == pytest.approx(p.mu, rel=1e-12)
    # L is attained at the minimiser (φ''(0) = 8): a small symmetric pair around w*
    v = Q[:, 0] * 1e-4
    assert lipschitz_ratios(p, w_star + v, w_star - v) == pytest.approx(p.L, rel=1e-7)
    assert p.value(w_star) == 0.0 and np.all(p.grad(w_star) == 0.0)
    # a nonconvex direction: φ'' = 2 + 6cos(2x) < 0 at x = π/2
    xs = np.zeros(dim)
    xs[0] = np.pi / 2
    h = 1e-3 * Q[:, 0]
    wc = w_star + Q @ xs
    curvature = (p.value(wc + h) - 2 * p.value(wc) + p.value(wc - h)) / 1e-6
    assert curvature < 0


# ---------------------------------------------------------------------------------------------
# over-parameterised least squares
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("n,dim,L,mu", [(1, 3, 2.0, 2.0), (4, 10, 1.0, 0.01),
                                        (15, 40, 3.0, 0.3)])
def test_overparam_least_squares(n, dim, L, mu):
    p = OverparamLeastSquares(n, dim, L=L, mu=mu, seed=2)
    rng = np.random.default_rng(5)
    s = np.linalg.svd(p.A, compute_uv=False)
    assert s.max() ** 2 == pytest.approx(L, rel=1e-13)
    assert s.min() ** 2 == pytest.approx(mu, rel=1e-12)
    assert not p.strongly_convex and p.convex and p.f_star == 0.0
    w = rng.standard_normal((6, dim))
    r = w @ p.A.T - p.b
    np.testing.assert_allclose(p.value(w), 0.5 * (r * r).sum(-1), rtol=1e-11)
    np.testing.assert_allclose(p.grad(w), r @ p.A, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(p.dist2(w), ((r @ p.pinv.T) ** 2).sum(-1), rtol=1e-10)
    check_gradient(p, w)
    check_dtype_follows(p, w)
    # minimum-norm solution: A w* = b and w* ∈ range(Aᵀ)
    np.testing.assert_allclose(p.A @ p.w_star, p.b, atol=1e-12)
    np.testing.assert_allclose(p.w_star, np.linalg.pinv(p.A) @ p.b, atol=1e-12)
    assert p.value(p.w_star) < 1e-28 and np.abs(p.grad(p.w_star)).max() < 1e-13
    # constants and their attainment
    x, y = rng.standard_normal((2, 500, dim))
    assert lipschitz_ratios(p, x, y).max() <= L * (1 + LIP_TOL)
    pts = sample_points(rng, 500, dim, p.w_star, 3.0)
    assert pl_ratios(p, pts).min() >= mu * (1 - PL_TOL)
    v_min = p.V[:, np.argmin(p.singular_values)]
    assert pl_ratios(p, p.w_star + 2 * v_min) == pytest.approx(mu, rel=1e-12)
    # projection_of = the limit of GD from w0 (THEORY §5)
    w0 = rng.standard_normal((3, dim))
    proj = p.projection_of(w0)
    np.testing.assert_allclose(proj @ p.A.T, np.broadcast_to(p.b, (3, n)), atol=1e-11)
    np.testing.assert_allclose(p.dist2(proj), 0.0, atol=1e-24)
    wk = w0.copy()
    for _ in range(int(40 * L / mu) + 50):  # (1 − μ/L)^t ≤ e^-40
        wk = wk - p.grad(wk) / L
    np.testing.assert_allclose(wk, proj, atol=1e-10)
    # GD limit differs from w* (a different minimiser) when w0 has a null-space component
    assert np.abs(proj - p.w_star).max() > 1e-3


# ---------------------------------------------------------------------------------------------
# finite sums
# ---------------------------------------------------------------------------------------------
def all_component_grads(p, w):
    """Explicit loop reference: ∇f_i(w) for every i, shape (n, d) (w 1-D)."""
    out = []
    for i in range(p.n):
        a = p.A[i]
        z = a @ w
        if isinstance(p, FiniteSumLeastSquares):
            out.append(a * (z - p.b[i]))
        else:
            y = p.y[i]
            out.append(-y * a / (1 + np.exp(y * z)) + p.reg * w)
    return np.array(out)


@pytest.fixture(params=["ls", "logistic"], scope="module")
def fsum(request):
    if request.param == "ls":
        return FiniteSumLeastSquares(60, 6, seed=3, cond=20.0, noise_std=0.5)
    return FiniteSumLogistic(80, 5, seed=4, reg=0.05)


def test_finite_sum_components(fsum):
    p = fsum
    assert isinstance(p, FiniteSumProblem)
    rng = np.random.default_rng(6)
    w = rng.standard_normal((3, 4, p.dim))
    # the mean over all components is the full gradient
    idx_all = np.broadcast_to(np.arange(p.n), (3, 4, p.n))
    np.testing.assert_allclose(p.component_grad_mean(w, idx_all), p.grad(w), rtol=1e-12,
                               atol=1e-14)
    # a sampled batch (with repeats) against the explicit loop
    idx = rng.integers(0, p.n, (3, 4, 5))
    got = p.component_grad_mean(w, idx)
    for c in range(3):
        for r in range(4):
            ref = all_component_grads(p, w[c, r])[idx[c, r]].mean(0)
            np.testing.assert_allclose(got[c, r], ref, rtol=1e-12, atol=1e-14)
    v = rng.standard_normal((3, 4, p.dim))
    np.testing.assert_allclose(p.component_grad_mean_diff(w, v, idx),
                               got - p.component_grad_mean(v, idx), rtol=1e-10, atol=1e-13)
    assert np.all(p.component_grad_mean_diff(w, w, idx) == 0.0)
    # σ²(w) against the explicit definition
    for c in range(3):
        G = all_component_grads(p, w[c, 0])
        ref = ((G - G.mean(0)) ** 2).sum(1).mean()
        assert p.sigma2_at(w[c, 0]) == pytest.approx(ref, rel=1e-11)
    G = all_component_grads(p, p.w_star)
    assert p.sigma2_star == pytest.approx(((G - G.mean(0)) ** 2).sum(1).mean(), rel=1e-11)
    assert p.sigma2_star > 0
    # L_max: the largest component smoothness constant
    Lmax = (p.A * p.A).sum(1).max() * (1.0 if isinstance(p, FiniteSumLeastSquares) else 0.25)
    assert p.L_max == pytest.approx(Lmax + getattr(p, "reg", 0.0), rel=1e-14)
    assert p.L_max >= p.L
    check_gradient(p, w[0])
    check_dtype_follows(p, w)
    assert p.component_grad_mean(w.astype(np.float32), idx).dtype == np.float32
    assert p.sigma2_at(w.astype(np.float32)).dtype == np.float32


def test_finite_sum_constants(fsum):
    p = fsum
    rng = np.random.default_rng(7)
    # ∇f(w*) ≈ 0 relative to the gradient scale at 0
    g0 = np.linalg.norm(p.grad(np.zeros(p.dim)))
    assert np.linalg.norm(p.grad(p.w_star)) <= 1e-12 * max(1.0, g0)
    x = p.w_star + 2 * rng.standard_normal((500, p.dim))
    y = p.w_star + 2 * rng.standard_normal((500, p.dim))
    assert lipschitz_ratios(p, x, y).max() <= p.L * (1 + LIP_TOL)
    pts = sample_points(rng, 500, p.dim, p.w_star, 4.0)[50:]  # f − f* ≥ ~1e-5 ≫ rounding
    assert pl_ratios(p, pts).min() >= p.mu * (1 - PL_TOL)
    # strong convexity along random segments: ⟨∇f(x) − ∇f(y), x − y⟩ ≥ μ‖x − y‖²
    dx = x - y
    mono = ((p.grad(x) - p.grad(y)) * dx).sum(-1) / (dx * dx).sum(-1)
    assert mono.min() >= p.mu * (1 - 1e-9)
    # and in value form, f(y) ≥ f(x) + ∇f(x)ᵀ(y − x) + μ/2‖y − x‖² (up to rounding of f)
    lower = p.value(x) - (p.grad(x) * dx).sum(-1) + 0.5 * p.mu * (dx * dx).sum(-1)
    assert np.all(p.value(y) >= lower - 1e-12 * (1 + np.abs(lower)))


def test_finite_sum_least_squares_exact():
    p = FiniteSumLeastSquares(60, 6, seed=3, cond=20.0, noise_std=0.5)
    H = p.A.T @ p.A / p.n
    eig = np.linalg.eigvalsh(H)
    assert p.L == pytest.approx(eig[-1], rel=1e-14) and p.mu == pytest.approx(eig[0], rel=1e-13)
    assert 5 < p.kappa < 80  # roughly the requested conditioning (population κ = 20)
    # a direct solve of the normal equations gives the same w* and f*
    w_direct = np.linalg.solve(p.A.T @ p.A, p.A.T @ p.b)
    np.testing.assert_allclose(p.w_star, w_direct, rtol=1e-10, atol=1e-12)
    r = p.A @ w_direct - p.b
    assert p.f_star == pytest.approx(0.5 * np.mean(r * r), rel=1e-12)
    assert p.value(p.w_star) == pytest.approx(p.f_star, rel=1e-14)
    np.testing.assert_allclose(p.hessian_matrix(), H, rtol=1e-14)
    np.testing.assert_allclose(p.hessian_diag(), np.diag(H), rtol=1e-14)
    # f_gap (direct form) agrees with value − f* where the difference is well resolved
    w = p.w_star + np.random.default_rng(8).standard_normal((20, 6))
    np.testing.assert_allclose(p.f_gap(w), p.value(w) - p.f_star, rtol=1e-10)
    assert p.f_gap(p.w_star) == 0.0
    # μ and L attained along the extreme eigenvectors of H (PL ratio and Lipschitz ratio)
    vecs = np.linalg.eigh(H)[1]
    assert pl_ratios(p, p.w_star + 0.8 * vecs[:, 0]) == pytest.approx(p.mu, rel=1e-10)
    assert lipschitz_ratios(p, p.w_star + vecs[:, -1], p.w_star) == pytest.approx(p.L, rel=1e-10)
    # noiseless data are interpolated: σ²(w*) = 0 = f*
    q = FiniteSumLeastSquares(30, 4, seed=1, noise_std=0.0)
    assert q.f_star < 1e-28 and q.sigma2_star < 1e-26


def _exact_products(X, Y):
    """Xᵀ Y in exact rational arithmetic, as floats of the exact values' nearest longdouble
    (X (n, a), Y (n, b) float64)."""
    from fractions import Fraction

    Xf = [[Fraction(float(x)) for x in row] for row in X]
    Yf = [[Fraction(float(y)) for y in row] for row in Y]
    return [[sum((Xf[i][j] * Yf[i][k] for i in range(len(Xf))), Fraction(0))
             for k in range(len(Yf[0]))] for j in range(len(Xf[0]))]


def _from_fraction(x):
    return np.longdouble(x.numerator) / np.longdouble(x.denominator)


@pytest.mark.parametrize("slice_bits", [None, 24])
def test_gram_longdouble_is_exact_up_to_longdouble_rounding(monkeypatch, slice_bits):
    # the slices' products are exact in float64 (any summation order), so AᵀA carries only
    # the final longdouble sums' rounding (≤ 2·S² additions of relative 2⁻⁶⁴ each) and the
    # slices' remainder |E_ij| ≤ 2^(e_j − S·k − 1); a plain float64 product errs by ≈ 2⁻⁵³.
    # slice_bits = 24 gives 2^(53 − 48) = 32 rows per block: four blocks of 100 rows.
    import simulate.problems.finite_sum as fs

    if slice_bits is not None:
        monkeypatch.setattr(fs, "GRAM_SLICE_BITS", slice_bits)
    rng = np.random.default_rng(5)
    n = 100
    A = np.stack([rng.standard_normal(n),                        # O(1)
                  1e-20 * rng.standard_normal(n),                # tiny column
                  1e20 * rng.standard_normal(n),                 # huge column
                  rng.standard_normal(n) * 2.0 ** rng.integers(-40, 1, n),  # wide range
                  np.zeros(n)], axis=1)                          # zero column
    gram = fs.gram_longdouble(A)
    assert gram.dtype == np.longdouble
    exact = _exact_products(A, A)
    absolute = np.abs(A).T @ np.abs(A)
    k, S = fs.GRAM_SLICE_BITS, fs.GRAM_SLICES
    e = np.frexp(np.abs(A).max(axis=0))[1].astype(float)
    remainder = 2 * n * np.abs(A).max(axis=0)[:, None] * 2.0 ** (e[None, :] - S * k - 1)
    tol = 2 * S * S * 2.0 ** -64 * absolute + remainder + remainder.T
    err = np.array([[float(abs(gram[j, l] - _from_fraction(exact[j][l]))) for l in range(5)]
                    for j in range(5)])
    assert np.all(err <= tol), (err / np.maximum(absolute, 1e-300)).max()
    # the same check fails for the plain float64 product (the test can tell)
    plain = A.T @ A
    plain_err = np.array([[float(abs(np.longdouble(plain[j, l]) - _from_fraction(exact[j][l])))
                           for l in range(5)] for j in range(5)])
    assert np.any(plain_err > tol)


def test_least_squares_wide_gradient_is_the_exact_gradient():
    # in longdouble (the runner's wide re-evaluation) ∇f = H(w − w*) + ∇f(w*): exact algebra
    # for the quadratic; compared with ∇f = Aᵀ(Aw − b)/n in exact rational arithmetic. Its
    # error bound, γ ≈ (n + d)·2⁻⁶⁴ times the absolute products, is 2¹¹ below the float64
    # form's (γ ≈ (n + d)·2⁻⁵³): the float64 value must differ from it by its own error alone.
    from fractions import Fraction

    p = FiniteSumLeastSquares(60, 6, seed=3, cond=20.0, noise_std=0.5)
    rng = np.random.default_rng(9)
    for scale in (1e-9, 1e-3, 1.0):
        w = p.w_star + scale * rng.standard_normal((3, 6))
        wide = p.grad(w[None].astype(np.longdouble))[0]
        assert wide.dtype == np.longdouble
        for r in range(3):
            residual = [sum((Fraction(float(a)) * Fraction(float(x))
                             for a, x in zip(p.A[i], w[r], strict=True)), Fraction(0))
                        - Fraction(float(p.b[i])) for i in range(p.n)]
            exact = [sum((Fraction(float(p.A[i, j])) * residual[i] for i in range(p.n)),
                         Fraction(0)) / p.n for j in range(6)]
            err = np.array([float(abs(wide[r, j] - _from_fraction(exact[j])))
                            for j in range(6)])
            scale_of = (np.abs(p.A).T @ (np.abs(p.A) @ np.abs(w[r]) + np.abs(p.b))) / p.n
            tol = (p.n + p.dim) * 2.0 ** -64 * scale_of * 4
            assert np.all(err <= tol), (scale, err / scale_of)


def test_least_squares_gradient_form_only_where_longdouble_is_wider(monkeypatch):
    # where longdouble is float64 itself (e.g. arm64 macOS) the H(w − w*) form must not
    # replace a float64 run's own gradient: with no wider type, every dtype keeps Aᵀ(Aw − b)/n
    import simulate.problems.base as problem_base

    p = FiniteSumLeastSquares(40, 3, seed=2)
    w = np.random.default_rng(3).standard_normal((2, 3))
    plain = (w @ p.A.T - p.b) @ p.A * (1.0 / p.n)
    np.testing.assert_array_equal(p.grad(w), plain)
    monkeypatch.setattr(problem_base, "WIDER_LONGDOUBLE", None)
    w_wide = w.astype(np.longdouble)
    A = p.A.astype(np.longdouble)
    plain_wide = (A.T @ (w_wide @ A.T - p.b.astype(np.longdouble)).T).T * np.longdouble(1 / p.n)
    np.testing.assert_array_equal(p.grad(w_wide), plain_wide)


def test_finite_sum_logistic_exact():
    from scipy.optimize import minimize

    p = FiniteSumLogistic(80, 5, seed=4, reg=0.05)
    assert p.mu == 0.05
    assert p.L == pytest.approx(np.linalg.eigvalsh(p.A.T @ p.A)[-1] / (4 * p.n) + 0.05,
                                rel=1e-14)
    # an independent solve (BFGS) reaches the same f* and w*
    res = minimize(lambda w: float(p.value(w)), np.ones(5), jac=lambda w: p.grad(w),
                   method="BFGS", options={"gtol": 1e-11})
    assert res.fun == pytest.approx(p.f_star, rel=1e-12)
    assert res.fun >= p.f_star - 1e-15
    np.testing.assert_allclose(res.x, p.w_star, atol=1e-8)
    # L is attained at w = 0 (Hessian AᵀA/(4n) + reg I): gradient difference along the top
    # eigenvector, symmetric and small (third-order term ≈ 1e-8 relative)
    top = np.linalg.eigh(p.A.T @ p.A)[1][:, -1] * 1e-4
    assert lipschitz_ratios(p, top, -top) == pytest.approx(p.L, rel=1e-6)
    # μ = reg is the infimum of the Hessian's smallest eigenvalue: far along a ray every margin
    # is huge (|z| ≳ 100 here), D ≈ e^−|z| vanishes and the curvature is reg to ~1e-40
    u = np.random.default_rng(10).standard_normal(5)
    x = 1e4 * u / np.linalg.norm(u)
    v = np.random.default_rng(11).standard_normal(5) * 1e-2
    dg = p.grad(x + v) - p.grad(x)
    assert (dg @ v) / (v @ v) == pytest.approx(p.mu, rel=1e-9)
    # extreme margins stay finite (logaddexp)
    big = np.full((1, 5), 1e4)
    assert np.all(np.isfinite(p.value(big))) and np.all(np.isfinite(p.grad(big)))


# ---------------------------------------------------------------------------------------------
# validation
# ---------------------------------------------------------------------------------------------
BAD = [
    (lambda: QuadraticProblem(5, 1.0, 2.0), "mu"),
    (lambda: QuadraticProblem(5, 0.0, 0.0), "L"),
    (lambda: QuadraticProblem(5, -1.0, 0.5), "L"),
    (lambda: QuadraticProblem(5, 1.0, -0.1), "mu"),
    (lambda: QuadraticProblem(5, 1.0, 0.0), "mu"),
    (lambda: QuadraticProblem(0, 1.0, 0.5), "dim"),
    (lambda: QuadraticProblem(5, 1.0, 0.5, n_zero=5), "n_zero"),
    (lambda: QuadraticProblem(5, 1.0, 0.5, spectrum="cauchy"), "spectrum"),
    (lambda: QuadraticProblem(5, float("nan"), 0.5), "L"),
    (lambda: QuadraticProblem(5, 1.0, float("nan")), "mu"),
    (lambda: QuadraticProblem(5, float("inf"), 0.5), "L"),
    (lambda: QuadraticProblem(5, 1.0, 0.5, n_zero=4), "mu"),  # one nonzero eigenvalue, μ < L
    (lambda: QuadraticProblem(3, 1.0, 0.5, w_star=[0, np.nan, 0]), "w_star"),
    (lambda: QuadraticProblem(3, 1.0, 0.5, w_star=[0, 0]), "w_star"),
    (lambda: QuadraticProblem(3, 1.0, 0.5, f_star=np.inf), "f_star"),
    (lambda: QuadraticProblem(3, eigenvalues=[1.0, np.nan, 2.0]), "eigenvalues"),
    (lambda: QuadraticProblem(3, eigenvalues=[1.0, -1.0, 2.0]), "eigenvalues"),
    (lambda: QuadraticProblem(3, eigenvalues=[0.0, 0.0, 0.0]), "eigenvalues"),
    (lambda: QuadraticProblem(3), "L"),
    (lambda: spectrum("two-point", 0, 1.0, 0.5), "m"),
    (lambda: PLSinProblem(3, scale=0.0), "scale"),
    (lambda: PLSinProblem(3, scale=float("nan")), "scale"),
    (lambda: PLSinProblem(0), "dim"),
    (lambda: OverparamLeastSquares(10, 10), "n"),
    (lambda: OverparamLeastSquares(3, 10, L=1.0, mu=2.0), "mu"),
    (lambda: OverparamLeastSquares(3, 10, L=-1.0), "L"),
    (lambda: FiniteSumLeastSquares(5, 10), "n"),
    (lambda: FiniteSumLeastSquares(20, 0), "dim"),
    (lambda: FiniteSumLeastSquares(20, 5, cond=0.5), "cond"),
    (lambda: FiniteSumLeastSquares(20, 5, noise_std=float("nan")), "noise_std"),
    (lambda: FiniteSumLogistic(20, 5, reg=0.0), "reg"),
    (lambda: FiniteSumLogistic(0, 5), "n"),
    (lambda: DenseQuadraticProblem(np.ones((2, 3))), "A"),
    (lambda: DenseQuadraticProblem(np.ones(3)), "A"),
    (lambda: DenseQuadraticProblem(np.zeros((0, 0))), "A"),
    (lambda: DenseQuadraticProblem([[1.0, np.nan], [np.nan, 1.0]]), "A"),
    (lambda: DenseQuadraticProblem([[1.0, 0.5], [0.0, 1.0]]), "A"),
    (lambda: DenseQuadraticProblem([[1.0, 0.0], [0.0, 0.0]]), "A"),
    (lambda: DenseQuadraticProblem([[1.0, 2.0], [2.0, 1.0]]), "A"),
    (lambda: DenseQuadraticProblem(np.eye(2), w_star=[0.0]), "w_star"),
    (lambda: DenseQuadraticProblem(np.eye(2), f_star=np.nan), "f_star"),
    (lambda: LessardProblem(0), "dim"),
]


@pytest.mark.parametrize("make,param", BAD, ids=[f"{i}-{p}" for i, (_, p) in enumerate(BAD)])
def test_bad_inputs_raise_one_line_value_error(make, param):
    with pytest.raises(ValueError) as info:
        make()
    msg = str(info.value)
    assert msg.startswith(param + "=") or msg.startswith(param + " "), msg
    assert "\n" not in msg


# ---------------------------------------------------------------------------------------------
# device
# ---------------------------------------------------------------------------------------------
def test_to_numpy_is_identity_and_host_attributes_stay_on_host():
    q = QuadraticProblem(4, 2.0, 1.0, rotated=True)
    assert q.to(np) is q
    assert isinstance(q.eigenvalues, np.ndarray) and isinstance(q.rotation, np.ndarray)


@pytest.mark.gpu
def test_problems_on_cupy_match_numpy():
    from simulate.backend import cupy_available

    if not cupy_available():
        pytest.skip("CuPy with a CUDA device is not available")
    import cupy

    rng = np.random.default_rng(9)
    problems = [QuadraticProblem(6, 3.0, 0.1, rotated=True, n_zero=1),
                QuadraticProblem(6, 3.0, 0.1), PLSinProblem(6, rotated=True),
                DenseQuadraticProblem(_dense_case("scaled")[0][:6, :6]), LessardProblem(6),
                OverparamLeastSquares(3, 6), FiniteSumLeastSquares(30, 6),
                FiniteSumLogistic(30, 6)]
    for p in problems:
        g = p.to(cupy)
        assert isinstance(p.w_star, np.ndarray) and isinstance(g.w_star, np.ndarray)
        w = rng.standard_normal((2, 3, 6))
        for dtype, tol in ((np.float64, 1e-12), (np.float32, 1e-4)):
            wd = cupy.asarray(w, dtype=dtype)
            for name in ("value", "grad", "f_gap", "dist2"):
                out = getattr(g, name)(wd)
                assert out.dtype == dtype
                np.testing.assert_allclose(cupy.asnumpy(out), getattr(p, name)(w),
                                           rtol=tol, atol=tol)
        if isinstance(p, FiniteSumProblem):
            idx = rng.integers(0, p.n, (2, 3, 4))
            np.testing.assert_allclose(
                cupy.asnumpy(g.component_grad_mean(cupy.asarray(w), cupy.asarray(idx))),
                p.component_grad_mean(w, idx), rtol=1e-12, atol=1e-12)
            np.testing.assert_allclose(cupy.asnumpy(g.sigma2_at(cupy.asarray(w))),
                                       p.sigma2_at(w), rtol=1e-10)
