"""Gradient oracles: unbiasedness, exact second moments, sampling schemes, SVRG, validation.

Monte-Carlo checks compare a sample mean with its expectation within ``Z`` = 5 standard errors,
the SE computed from the same sample (std / √N). For one comparison a 5-SE miss has
probability ≈ 6e-7 under the null; the seeds are fixed, so the tests are deterministic, and a
wrong variance formula (a factor 2, a missing 1/B or (n − B)/(n − 1), a d in the wrong place)
is off by tens to hundreds of SE at these sample sizes.
"""

from __future__ import annotations

import numpy as np
import pytest

from simulate.noise import (
    CurvatureAlignedNoise,
    ExactGradient,
    IsotropicGaussianNoise,
    MinibatchSampling,
    SVRGOracle,
)
from simulate.problems import (
    FiniteSumLeastSquares,
    FiniteSumLogistic,
    PLSinProblem,
    QuadraticProblem,
)
from simulate.rng import BatchRNG, config_seed_sequence

Z = 5.0


def make_rng(n_configs, seed=0):
    return BatchRNG([config_seed_sequence(seed, f"cfg{i}") for i in range(n_configs)], np)


def assert_mean_within(samples, expected, what=""):
    """|mean − expected| ≤ Z·SE along axis 0 (elementwise), SE = std/√N from the sample."""
    samples = np.asarray(samples, dtype=np.float64)
    n = samples.shape[0]
    mean = samples.mean(0)
    se = samples.std(0, ddof=1) / np.sqrt(n)
    dev = np.abs(mean - expected)
    assert np.all(dev <= Z * se), f"{what}: mean {mean}, expected {expected}, SE {se}"


@pytest.fixture(scope="module")
def quad():
    return QuadraticProblem(12, 4.0, 0.1, rotated=True, seed=1)


@pytest.fixture(scope="module")
def ls():
    return FiniteSumLeastSquares(40, 5, seed=2, noise_std=0.7)


# ---------------------------------------------------------------------------------------------
# exact and Gaussian oracles
# ---------------------------------------------------------------------------------------------
def test_exact_gradient(quad):
    w = np.random.default_rng(0).standard_normal((2, 3, quad.dim))
    o = ExactGradient()
    state = o.init_state(quad, w, make_rng(2))
    g, state = o(quad, w, 0, state, make_rng(2))
    np.testing.assert_array_equal(g, quad.grad(w))
    assert state is None and o.describe() == {"noise": "exact", "sigma2": 0.0}


def test_isotropic_variance_per_config(quad):
    # C = 3 configurations with their own σ² and B; R = 20000 replicates at a fixed point.
    # ‖ξ‖² = (σ²/(Bd))·χ²_d: SE of the mean ≈ (σ²/B)·√(2/d)/√R ≈ 0.3% of the target.
    sigma2, B = [1.0, 4.0, 0.25], [1, 8, 2]
    o = IsotropicGaussianNoise(sigma2, B)
    R, d = 20000, quad.dim
    w = np.broadcast_to(np.linspace(-1, 1, d), (3, R, d)).copy()
    rng = make_rng(3)
    g, _ = o(quad, w, 0, o.init_state(quad, w, rng), rng)
    xi = g - quad.grad(w)
    for c in range(3):
        assert_mean_within((xi[c] ** 2).sum(-1), sigma2[c] / B[c], f"config {c}")
        assert_mean_within(xi[c], np.zeros(d), f"bias config {c}")
        # isotropic: every coordinate has variance σ²/(Bd)
        assert_mean_within(xi[c] ** 2, np.full(d, sigma2[c] / (B[c] * d)), f"coords {c}")
    np.testing.assert_allclose(o.noise_scale(d), np.sqrt(np.array(sigma2) / B / d))
    assert o.describe(1) == {"noise": "isotropic", "sigma2": 4.0, "B": 8}
    with pytest.raises(ValueError, match="^describe"):
        o.describe()


def test_isotropic_float32_and_reproducible(quad):
    o = IsotropicGaussianNoise(2.0, B=4)
    w = np.zeros((2, 5, quad.dim), dtype=np.float32)
    g1, _ = o(quad, w, 0, None, make_rng(2, seed=7))
    g2, _ = o(quad, w, 0, None, make_rng(2, seed=7))
    assert g1.dtype == np.float32
    np.testing.assert_array_equal(g1, g2)
    g3, _ = o(quad, w, 0, None, make_rng(2, seed=8))
    assert not np.array_equal(g1, g3)
    assert o.describe() == {"noise": "isotropic", "sigma2": 2.0, "B": 4}


def test_gaussian_subset():
    o = IsotropicGaussianNoise([1.0, 2.0, 3.0], B=[1, 2, 3])
    s = o.subset([0, 2])
    assert s.n_configs == 2 and s.describe(1) == {"noise": "isotropic", "sigma2": 3.0, "B": 3}
    assert IsotropicGaussianNoise(1.0).subset([1, 4]).describe()["sigma2"] == 1.0
    q = QuadraticProblem(3, 1.0, 1.0)
    w = np.zeros((2, 4, 3))
    s(q, w, 0, None, make_rng(2))  # per-config coefficients follow the subset
    with pytest.raises(ValueError, match="^w has 2 configurations"):
        o(q, w, 0, None, make_rng(2))


def test_curvature_aligned_covariance(quad):
    # covariance (σ²/B)·A/tr A: each of the d² empirical second moments is within 5 SE of the
    # target (N = 60000 draws, SE per entry from the sample of ξ_j ξ_k).
    sigma2, B = 3.0, 2
    o = CurvatureAlignedNoise(sigma2, B)
    d, N = quad.dim, 60000
    w = np.ones((1, N, d))
    rng = make_rng(1)
    g, _ = o(quad, w, 0, o.init_state(quad, w, rng), rng)
    xi = (g - quad.grad(w))[0]
    A = quad.hessian_matrix()
    target = sigma2 / B * A / np.trace(A)
    outer = (xi[:, :, None] * xi[:, None, :]).reshape(N, d * d)
    assert_mean_within(outer, target.ravel(), "covariance")
    assert_mean_within((xi**2).sum(-1), sigma2 / B, "total variance")
    assert_mean_within(xi, np.zeros(d), "bias")
    # and it is not isotropic: the largest and smallest variances differ by ≈ κ
    emp = np.diag(xi.T @ xi / N)
    assert emp.max() / emp.min() > 5


def test_curvature_aligned_rejects_non_quadratic():
    p = PLSinProblem(3)
    o = CurvatureAlignedNoise(1.0)
    w = np.zeros((1, 2, 3))
    with pytest.raises(ValueError, match="^problem='pl_sin'"):
        o.init_state(p, w, make_rng(1))
    with pytest.raises(ValueError, match="^problem='finite_sum_ls'"):
        o(FiniteSumLeastSquares(10, 3), w, 0, None, make_rng(1))


# ---------------------------------------------------------------------------------------------
# minibatch sampling
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("scheme", ["with_replacement", "without_replacement", "reshuffle"])
@pytest.mark.parametrize("B", [1, 7])
def test_minibatch_unbiased_with_exact_variance(ls, scheme, B):
    # R = 20000 replicates, one step each; the target is σ²(w)/B × factor, σ²(w) computed
    # exactly by the problem. SE ≈ 1–2% of the target; the without-replacement factor
    # (n − B)/(n − 1) = 0.85 for B = 7 is a 15% (≈ 10 SE) change, so it is resolved.
    o = MinibatchSampling(B, scheme)
    R = 20000
    rng_w = np.random.default_rng(3)
    w = np.broadcast_to(ls.w_star + rng_w.standard_normal(ls.dim), (1, R, ls.dim)).copy()
    rng = make_rng(1, seed=B)
    state = o.init_state(ls, w, rng)
    g, state = o(ls, w, 0, state, rng)
    full = ls.grad(w)
    err = (g - full)[0]
    factor = 1.0 if scheme == "with_replacement" else (ls.n - B) / (ls.n - 1)
    assert o.variance_factor(ls.n) == pytest.approx(factor)
    expected = ls.sigma2_at(w[0, 0]) / B * factor
    assert_mean_within((err**2).sum(-1), expected, "variance")
    assert_mean_within(err, np.zeros(ls.dim), "bias")
    # the wrong factor would be rejected: (with vs without replacement differ by 15% at B = 7)
    if B == 7:
        wrong = ls.sigma2_at(w[0, 0]) / B * (1.0 / factor if factor != 1 else 0.85)
        se = (err**2).sum(-1).std() / np.sqrt(R)
        assert abs((err**2).sum(-1).mean() - wrong) > Z * se


def test_minibatch_sigma2_reported(ls):
    o = MinibatchSampling(4, "without_replacement")
    assert o.sigma2_star(ls) == ls.sigma2_star
    assert o.gradient_variance_star(ls) == pytest.approx(ls.sigma2_star / 4 * 36 / 39)
    d = o.describe(problem=ls)
    assert d["sigma2"] == ls.sigma2_star and d["B"] == 4 and d["n"] == 40
    assert d["sampling"] == "without_replacement" and d["variance_factor"] == 36 / 39
    assert "sigma2" not in MinibatchSampling(4).describe()
    o.init_state(ls, np.zeros((1, 1, ls.dim)), make_rng(1))
    assert o.describe()["sigma2"] == ls.sigma2_star  # bound at init_state
    assert MinibatchSampling(1).variance_factor(1) == 1.0
    assert MinibatchSampling(1, "reshuffle").variance_factor(1) == 0.0


def test_without_replacement_distinct_and_uniform(ls):
    o = MinibatchSampling(10, "without_replacement")
    R = 5000
    w = np.zeros((2, R, ls.dim))
    idx, _ = o.sample(ls, w, 0, None, make_rng(2))
    assert idx.shape == (2, R, 10)
    s = np.sort(idx, axis=-1)
    assert np.all(np.diff(s, axis=-1) > 0)  # distinct within each replicate
    # each component is included with probability B/n: counts ~ Binomial(2R, 1/4)
    counts = np.bincount(idx.ravel(), minlength=ls.n)
    p = 10 / ls.n
    se = np.sqrt(2 * R * p * (1 - p))
    assert np.all(np.abs(counts - 2 * R * p) <= Z * se)
    full, _ = MinibatchSampling(ls.n, "without_replacement").sample(ls, w, 0, None,
                                                                   make_rng(2))
    assert np.all(np.sort(full, -1) == np.arange(ls.n))


@pytest.mark.parametrize("B", [5, 6])
def test_reshuffle_visits_each_component_once_per_epoch(ls, B):
    # n = 40: B = 5 divides n (8 steps, every component once); B = 6 leaves 4 out (6 steps)
    o = MinibatchSampling(B, "reshuffle")
    C, R = 2, 7
    w = np.zeros((C, R, ls.dim))
    rng = make_rng(C)
    state = o.init_state(ls, w, rng)
    spe = o.steps_per_epoch(ls.n)
    assert spe == ls.n // B
    epochs = []
    for e in range(3):
        batches = []
        for k in range(spe):
            idx, state = o.sample(ls, w, e * spe + k, state, rng)
            batches.append(idx)
        ep = np.concatenate(batches, axis=-1)  # (C, R, spe·B)
        s = np.sort(ep, axis=-1)
        assert np.all(np.diff(s, axis=-1) > 0)  # no component twice in an epoch
        if ls.n % B == 0:
            assert np.all(s == np.arange(ls.n))  # every component exactly once
        epochs.append(ep)
    assert not np.array_equal(epochs[0], epochs[1])  # a fresh permutation each epoch
    # the gradient call uses the same machinery
    g, state = o(ls, w, 3 * spe, state, rng)
    assert g.shape == w.shape
    # subset_state slices the permutation along the configuration axis
    sub = o.subset_state(state, [1])
    np.testing.assert_array_equal(sub["perm"], state["perm"][[1]])


def test_minibatch_on_logistic_float32():
    p = FiniteSumLogistic(30, 4, seed=1)
    o = MinibatchSampling(3, "with_replacement")
    w = np.zeros((2, 5, 4), dtype=np.float32)
    g, _ = o(p, w, 0, o.init_state(p, w, make_rng(2)), make_rng(2))
    assert g.dtype == np.float32 and g.shape == w.shape


def test_minibatch_rejects_bad_problem_and_B(ls, quad):
    w = np.zeros((1, 2, ls.dim))
    with pytest.raises(ValueError, match="^problem='quadratic'"):
        MinibatchSampling(2).init_state(quad, np.zeros((1, 2, quad.dim)), make_rng(1))
    with pytest.raises(ValueError, match="^B=41"):
        MinibatchSampling(41).init_state(ls, w, make_rng(1))
    with pytest.raises(ValueError, match="^B=41"):
        SVRGOracle(5, B=41).init_state(ls, w, make_rng(1))


# ---------------------------------------------------------------------------------------------
# SVRG
# ---------------------------------------------------------------------------------------------
def svrg_state(p, snap):
    return {"snap": snap, "snap_grad": p.grad(snap), "reservoir": None}


@pytest.mark.parametrize("problem", ["ls", "logistic"])
def test_svrg_unbiased_with_exact_variance(ls, problem):
    p = ls if problem == "ls" else FiniteSumLogistic(50, 4, seed=3)
    o = SVRGOracle(epoch_length=10, B=2)
    R = 20000
    rng_w = np.random.default_rng(4)
    w1 = p.w_star + rng_w.standard_normal(p.dim)
    snap1 = p.w_star + rng_w.standard_normal(p.dim)
    w = np.broadcast_to(w1, (1, R, p.dim)).copy()
    snap = np.broadcast_to(snap1, (1, R, p.dim)).copy()
    g, _ = o(p, w, 3, svrg_state(p, snap), make_rng(1))  # t = 3: inside an epoch
    err = (g - p.grad(w))[0]
    assert_mean_within(err, np.zeros(p.dim), "bias")
    # exact variance: Var of one term (∇f_i(w) − ∇f_i(w̃)) divided by B
    D = np.array([p.component_grad_mean(w1[None], np.array([[i]]))[0]
                  - p.component_grad_mean(snap1[None], np.array([[i]]))[0]
                  for i in range(p.n)])
    expected = ((D - D.mean(0)) ** 2).sum(1).mean() / 2
    assert_mean_within((err**2).sum(-1), expected, "variance")


def test_svrg_variance_vanishes_at_the_optimum(ls):
    o = SVRGOracle(epoch_length=5, B=1)
    R = 2000
    w_star = np.broadcast_to(ls.w_star, (1, R, ls.dim)).copy()
    # at w = w̃ = w*: g − ∇f(w) is exactly zero (same indices at both points)
    g, _ = o(ls, w_star, 2, svrg_state(ls, w_star), make_rng(1))
    assert np.all(g == ls.grad(w_star))
    # on least squares, g − ∇f(w) = (1/B) Σ (a_i a_iᵀ − H)(w − w̃) is linear in w − w̃: halving
    # the distance to w* of both points quarters the variance, draw for draw
    direction = np.random.default_rng(5).standard_normal((2, ls.dim))
    variances = []
    for r in (1.0, 0.5, 0.25):
        w = w_star + r * direction[0]
        snap = w_star + r * direction[1]
        g, _ = o(ls, w, 2, svrg_state(ls, snap), make_rng(1))
        variances.append(((g - ls.grad(w)) ** 2).sum(-1).mean())
    assert variances[0] > 0
    np.testing.assert_allclose(np.array(variances[1:]) / variances[:-1], 0.25, rtol=1e-8)
    # whereas plain sampling keeps its σ²(w*)/B at w*
    g, _ = MinibatchSampling(1)(ls, w_star, 0, None, make_rng(1))
    assert ((g - ls.grad(w_star)) ** 2).sum(-1).mean() > 0.5 * ls.sigma2_star


def test_svrg_snapshot_last(ls):
    m = 4
    o = SVRGOracle(epoch_length=m, B=1, snapshot="last")
    C, R = 2, 3
    rng = make_rng(C)
    state = o.init_state(ls, np.zeros((C, R, ls.dim)), rng)
    seen = []
    for t in range(2 * m + 1):
        w = np.full((C, R, ls.dim), float(t))
        g, state = o(ls, w, t, state, rng)
        seen.append(state["snap"][0, 0, 0])
        if t % m == 0:  # a snapshot step is a full-gradient step
            np.testing.assert_array_equal(g, ls.grad(w))
    assert seen == [0.0] * m + [4.0] * m + [8.0]
    assert o.describe()["component_grads_per_epoch"] == ls.n + 2 * m
    sub = o.subset_state(state, [0])
    assert sub["snap"].shape == (1, R, ls.dim) and sub["reservoir"] is None


def test_svrg_random_snapshot_is_uniform_over_the_previous_epoch(ls):
    # reservoir sampling: at t = m the snapshot is w_k for k uniform on {0, …, m − 1};
    # counts over R = 20000 replicates ~ Multinomial(R, 1/m), each within 5 SE.
    m, R = 5, 20000
    o = SVRGOracle(epoch_length=m, B=1, snapshot="random")
    rng = make_rng(1)
    state = o.init_state(ls, np.zeros((1, R, ls.dim)), rng)
    for t in range(m + 1):
        w = np.full((1, R, ls.dim), float(t))
        _, state = o(ls, w, t, state, rng)
        if t < m:
            assert np.all(state["snap"] == 0.0)  # first snapshot: the starting point
    chosen = state["snap"][0, :, 0]
    counts = np.bincount(chosen.astype(int), minlength=m + 1)
    assert counts[m] == 0  # never the new epoch's own point
    p = 1 / m
    se = np.sqrt(R * p * (1 - p))
    assert np.all(np.abs(counts[:m] - R * p) <= Z * se)
    np.testing.assert_array_equal(state["reservoir"], np.full((1, R, ls.dim), float(m)))


def test_svrg_describe_and_validation(ls):
    o = SVRGOracle(10, B=3, snapshot="random")
    d = o.describe(problem=ls)
    assert d["component_grads_per_epoch"] == 40 + 2 * 10 * 3 == o.component_grads_per_epoch(40)
    assert d["noise"] == "svrg" and d["snapshot"] == "random"
    with pytest.raises(ValueError, match="^problem='quadratic'"):
        o.init_state(QuadraticProblem(3, 1.0, 1.0), np.zeros((1, 1, 3)), make_rng(1))


# ---------------------------------------------------------------------------------------------
# validation
# ---------------------------------------------------------------------------------------------
BAD = [
    (lambda: IsotropicGaussianNoise(-1.0), "sigma2"),
    (lambda: IsotropicGaussianNoise(float("nan")), "sigma2"),
    (lambda: IsotropicGaussianNoise(1.0, B=0), "B"),
    (lambda: IsotropicGaussianNoise(1.0, B=1.5), "B"),
    (lambda: IsotropicGaussianNoise([1.0, np.nan]), "sigma2[1]"),
    (lambda: IsotropicGaussianNoise([1.0, 2.0], B=[1, 2, 3]), "B"),
    (lambda: IsotropicGaussianNoise([[1.0]]), "sigma2"),
    (lambda: CurvatureAlignedNoise(1.0, B=0), "B"),
    (lambda: MinibatchSampling(0), "B"),
    (lambda: MinibatchSampling(2, scheme="stratified"), "scheme"),
    (lambda: SVRGOracle(0), "epoch_length"),
    (lambda: SVRGOracle(5, B=0), "B"),
    (lambda: SVRGOracle(5, snapshot="average"), "snapshot"),
]


@pytest.mark.parametrize("make,param", BAD, ids=[f"{i}-{p}" for i, (_, p) in enumerate(BAD)])
def test_bad_inputs_raise_one_line_value_error(make, param):
    with pytest.raises(ValueError) as info:
        make()
    msg = str(info.value)
    assert msg.startswith(param + "=") or msg.startswith(param + " "), msg
    assert "\n" not in msg


@pytest.mark.gpu
def test_oracles_on_cupy():
    from simulate.backend import cupy_available

    if not cupy_available():
        pytest.skip("CuPy with a CUDA device is not available")
    import cupy

    q = QuadraticProblem(6, 2.0, 0.5, rotated=True).to(cupy)
    ls = FiniteSumLeastSquares(30, 6).to(cupy)
    rng = BatchRNG([config_seed_sequence(0, f"c{i}") for i in range(2)], cupy)
    w = cupy.zeros((2, 4000, 6), dtype=cupy.float32)
    for o, p in [(IsotropicGaussianNoise([1.0, 2.0], 2), q), (CurvatureAlignedNoise(1.0), q),
                 (MinibatchSampling(3, "with_replacement"), ls),
                 (MinibatchSampling(3, "without_replacement"), ls),
                 (MinibatchSampling(3, "reshuffle"), ls), (SVRGOracle(4, 2, "random"), ls)]:
        state = o.init_state(p, w, rng)
        for t in range(6):
            g, state = o(p, w, t, state, rng)
            assert g.dtype == cupy.float32 and g.shape == w.shape
        state = o.subset_state(state, [1])
        o.subset([1])
    g, _ = IsotropicGaussianNoise([1.0, 2.0], 2)(q, w, 0, None, rng)
    var = cupy.asnumpy(((g - q.grad(w)) ** 2).sum(-1).mean(-1))
    np.testing.assert_allclose(var, [0.5, 1.0], rtol=0.05)
