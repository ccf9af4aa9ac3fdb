"""The fast path (simulate.fast) against the NumPy reference.

* noise off: the fast path gives the reference's numbers (to rounding) for every method,
  ``precond_matrix`` (a dense g ↦ P g) included;
* noise on: the same law — means of f − f* within a Bonferroni z·stderr of the exact expected
  curve (theory.sgd_exact_quadratic / heavy_ball_exact_quadratic; for ``precond_matrix`` the
  exact second-moment recursion of the linear iteration);
* streams: the same numbers on 1 or 2 threads, in one call or many, alone or in a batch;
* where a combination is not supported, engine="fast" raises the runner's error.

No timed assertions. The loops are compiled on first use (a few seconds each, cached on disk).
"""

from __future__ import annotations

import numba
import numpy as np
import pytest
from scipy import stats

import theory
from simulate.fast import fast_path
from simulate.fast._kernels import bounded_index
from simulate.fast._random import (
    _LANE_X,
    _LK,
    _LK32,
    _LKW32,
    _LW32,
    LANE_BLOCK32,
    LANE_LAYERS,
    LANE_R,
    LANE_V,
    LANES,
    _ziggurat_x,
    row_states,
    standard_lane_normals,
    standard_normals,
)
from simulate.fast.engines import (
    DiagonalPrecondMatrixEngine,
    PrecondMatrixEngine,
    RotatedPrecondMatrixEngine,
)
from simulate.methods import METHODS, get_method
from simulate.noise import (
    CurvatureAlignedNoise,
    ExactGradient,
    IsotropicGaussianNoise,
    MinibatchSampling,
)
from simulate.problems import (
    DenseQuadraticProblem,
    FiniteSumLeastSquares,
    FiniteSumLogistic,
    PLSinProblem,
    QuadraticProblem,
)
from simulate.runner import run
from simulate.schedules import Schedule
from simulate.verdicts import bonferroni_z

# float64 rounding: identical operations give identical bits; where the fast path rounds
# differently (Adam's β^(t+1) by repeated multiplication vs NumPy's pow; one product A(q − w*)
# for a rotated quadratic vs the reference's Q(λ ⊙ Qᵀ(q − w*))) the difference is a few ulp
# per step, damped by the contraction of the iteration — far below 1e-12 relative.
RTOL = 1e-12
#: seed of the statistical tests (they pass for seeds 0..19; checked when written)
SEED = 11

CONFIGS = {
    "sgd": [{"alpha": 0.9}, {"alpha": 1.5}],
    "gd": [{"alpha": 1.0}],
    "heavy_ball": [{"alpha": 0.5, "beta": 0.9}, {"alpha": 1.0, "beta": 0.5}],
    "nesterov": [{"alpha": 0.8, "beta": 0.9}],
    "precond_diag": [{"alpha": 0.5, "p": np.linspace(0.5, 1.5, 16)}],
    "adagrad": [{"alpha": 0.2}],
    "rmsprop": [{"alpha": 0.01, "rho": 0.9}],
    "adam": [{"alpha": 0.02, "beta1": 0.8, "beta2": 0.99}],
}
#: methods applied coordinate by coordinate (precond_matrix adds a dense grad_transform)
ELEMENTWISE = sorted(set(METHODS) - {"precond_matrix"})


def _values(res, quantity="f_gap"):
    c = res.curves
    sel = c[c["quantity"] == quantity].sort_values(["config", "step"])
    return sel["value"].to_numpy(), sel["stderr"].to_numpy(), sel["step"].to_numpy()


def _both(problem, method, configs, *, steps=150, replicates=3, oracle=None, **kw):
    w0 = np.random.default_rng(7).standard_normal((replicates, problem.dim))
    out = {}
    for engine in ("reference", "fast"):
        out[engine] = run(problem, get_method(method), configs, steps=steps, w0=w0,
                          oracle=oracle, replicates=replicates, engine=engine, **kw)
    return out["reference"], out["fast"]


def _assert_same(ref, fast, rtol=RTOL):
    for q in ("f_gap", "dist2", "grad_norm2"):
        a, _, sa = _values(ref, q)
        b, _, sb = _values(fast, q)
        np.testing.assert_array_equal(sa, sb)
        np.testing.assert_allclose(b, a, rtol=rtol, atol=0, err_msg=q)
    np.testing.assert_array_equal(ref.diverged_at, fast.diverged_at)


# --------------------------------------------------------------------------- noise off
def test_every_method_is_supported():
    # the elementwise methods here; precond_matrix in its own section below
    assert set(CONFIGS) == set(ELEMENTWISE) == set(METHODS) - {"precond_matrix"}
    prob = QuadraticProblem(8, L=1.0, mu=0.1)
    for name in METHODS:
        m = get_method(name)
        hypers = [np.full((1, 1, 1), m.hyper_defaults.get(h, 0.5)) for h in m.hyper_names]
        eng = fast_path(problem=prob, method=m, oracle=ExactGradient(), schedule=Schedule(),
                        alpha=np.full((1, 1, 1), 0.1), hypers=hypers, xp=np, seed=0,
                        config_keys=["k"], replicates=2, extra={"P": np.eye(8)[None]})
        assert eng is not None, name


@pytest.mark.parametrize("method", sorted(CONFIGS))
def test_diagonal_quadratic_identical_to_reference(method):
    prob = QuadraticProblem(16, L=1.0, mu=1e-2)
    ref, fast = _both(prob, method, CONFIGS[method])
    _assert_same(ref, fast)


def test_zero_eigenvalues_and_nonzero_minimiser():
    prob = QuadraticProblem(16, L=2.0, mu=0.1, n_zero=3, w_star=np.linspace(-1, 1, 16))
    _assert_same(*_both(prob, "heavy_ball", CONFIGS["heavy_ball"]))


@pytest.mark.parametrize("method", ["heavy_ball", "nesterov", "adam"])
def test_rotated_quadratic_identical_to_reference(method):
    prob = QuadraticProblem(12, L=1.0, mu=0.05, rotated=True, seed=3,
                            w_star=np.linspace(0, 1, 12))
    cfgs = [dict(c, eps=1e-3) if method == "adam" else c for c in CONFIGS[method]]
    # Adam's normalised step g/√v amplifies rounding once g and v are tiny, so the rotated
    # comparison (different but equivalent products) stops while the iterate is still far
    # from w* (f − f* falls by ~1e-2 in 60 steps here) and eps damps the normalisation.
    ref, fast = _both(prob, method, cfgs, steps=60)
    _assert_same(ref, fast, rtol=1e-11)


@pytest.mark.parametrize("method", ["sgd", "nesterov"])
def test_pl_sin_identical_to_reference(method):
    prob = PLSinProblem(10, scale=0.5)
    cfg = [{"alpha": 0.2}] if method == "sgd" else [{"alpha": 0.1, "beta": 0.5}]
    # sin in numba (libm) and NumPy may differ by one ulp: same tolerance argument as above
    _assert_same(*_both(prob, method, cfg, steps=100), rtol=1e-11)


@pytest.mark.parametrize("schedule", [Schedule("inverse_time", c=2.0, t0=3.0),
                                      Schedule("step_decay", factor=0.5, every=40)])
def test_schedules_identical_to_reference(schedule):
    prob = QuadraticProblem(16, L=1.0, mu=1e-2)
    _assert_same(*_both(prob, "sgd", [{"alpha": 1.2}, {"alpha": 0.6}], schedule=schedule))


def test_divergent_configuration_dropped_at_the_same_step():
    prob = QuadraticProblem(16, L=1.0, mu=1e-2)
    ref, fast = _both(prob, "sgd", [{"alpha": 0.5}, {"alpha": 2.5}, {"alpha": 1.0}],
                      steps=200)
    assert np.isfinite(ref.diverged_at[1]) and np.isnan(ref.diverged_at[[0, 2]]).all()
    _assert_same(ref, fast)


def test_float32_close_to_reference():
    prob = QuadraticProblem(16, L=1.0, mu=1e-2)
    ref, fast = _both(prob, "heavy_ball", CONFIGS["heavy_ball"], dtype="float32")
    for q in ("f_gap", "dist2"):
        a, _, _ = _values(ref, q)
        b, _, _ = _values(fast, q)
        # float32 (ε = 6e-8): the compiled loop evaluates constants such as 1 − β in float64;
        # 150 contracting steps keep the relative difference within ~1e3 ε
        np.testing.assert_allclose(b, a, rtol=1e-4, err_msg=q)


def test_measure_matches_problem_functions():
    rng = np.random.default_rng(0)
    for prob in (QuadraticProblem(16, L=3.0, mu=0.1, n_zero=2, w_star=rng.standard_normal(16)),
                 QuadraticProblem(16, L=3.0, mu=0.1, rotated=True, seed=1),
                 PLSinProblem(16, scale=0.7, w_star=rng.standard_normal(16))):
        eng = fast_path(problem=prob, method=get_method("sgd"), oracle=ExactGradient(),
                        schedule=Schedule(), alpha=np.full((2, 1, 1), 0.1), hypers=[], xp=np,
                        seed=0, config_keys=["a", "b"], replicates=3)
        w = rng.standard_normal((2, 3, 16))
        w[1, 2, 5] = np.inf
        got = eng.measure((w,))
        with np.errstate(invalid="ignore"):
            g = prob.grad(w)
            want = {"f_gap": prob.f_gap(w), "dist2": prob.dist2(w),
                    "grad_norm2": (g * g).sum(axis=-1)}
        for k, v in want.items():
            np.testing.assert_allclose(got[k][0], v[0], rtol=1e-13, err_msg=k)
        assert list(got["finite"]) == [True, False]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_fused_measure_gives_the_bits_of_a_separate_pass(dtype):
    """advance(..., measure=True) measures each row in the stepping pass; the values must be
    those of a separate measure pass over the same state, bit for bit, and must not be reused
    for a state that has moved on (another advance) or been subset."""
    rng = np.random.default_rng(3)
    for prob, method in ((QuadraticProblem(24, L=2.0, mu=0.05, n_zero=3,
                                           w_star=rng.standard_normal(24)), "heavy_ball"),
                         (PLSinProblem(24, scale=0.5, w_star=rng.standard_normal(24)), "adam")):
        m = get_method(method)
        hypers = [np.full((2, 1, 1), m.hyper_defaults.get(h, 0.5), dtype=dtype)
                  for h in m.hyper_names]

        def engine(prob=prob, m=m, hypers=hypers):
            return fast_path(problem=prob, method=m, oracle=IsotropicGaussianNoise(1.0),
                             schedule=Schedule(), alpha=np.full((2, 1, 1), 0.05, dtype=dtype),
                             hypers=hypers, xp=np, seed=5, config_keys=["a", "b"],
                             replicates=5)

        fused, plain = engine(), engine()
        s1 = m.init(rng.standard_normal((2, 5, 24)).astype(dtype))
        s2 = tuple(x.copy() for x in s1)
        s1 = fused.advance(s1, 0, 7, measure=True)
        s2 = plain.advance(s2, 0, 7)
        got, want = fused.measure(s1), plain.measure(s2)
        for k in ("f_gap", "dist2", "grad_norm2", "finite"):
            np.testing.assert_array_equal(got[k], want[k], err_msg=f"{method} {k}")
        # a later plain advance invalidates the fused values
        s1 = fused.advance(s1, 7, 9)
        s2 = plain.advance(s2, 7, 9)
        np.testing.assert_array_equal(fused.measure(s1)["f_gap"], plain.measure(s2)["f_gap"])
        assert not np.array_equal(fused.measure(s1)["f_gap"], got["f_gap"])
        # and a subset engine measures its own (subset) state
        s1 = fused.advance(s1, 9, 10, measure=True)
        sub = fused.subset(np.array([1]))
        w1 = tuple(x[1:] for x in s1)
        np.testing.assert_array_equal(sub.measure(w1)["f_gap"], fused.measure(s1)["f_gap"][1:])


@pytest.mark.parametrize("rotated", [False, True])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_measures_at_several_steps_equal_calls_stopping_at_each(dtype, rotated):
    """advance(t0, t1, measure_at=steps) must give, at every listed step, the bits that calls
    stopping at that step give (and the same final state): one call through several record
    and check steps changes no number."""
    rng = np.random.default_rng(4)
    prob = QuadraticProblem(24, L=2.0, mu=0.05, w_star=rng.standard_normal(24), rotated=rotated)
    m = get_method("nesterov")
    hypers = [np.full((2, 1, 1), 0.7, dtype=dtype)]

    def engine():
        return fast_path(problem=prob, method=m, oracle=IsotropicGaussianNoise(1.0),
                         schedule=Schedule(), alpha=np.full((2, 1, 1), 0.05, dtype=dtype),
                         hypers=hypers, xp=np, seed=6, config_keys=["a", "b"], replicates=5)

    one, many = engine(), engine()
    s1 = m.init(rng.standard_normal((2, 5, 24)).astype(dtype))
    s2 = tuple(x.copy() for x in s1)
    steps = [3, 4, 9, 17]
    s1 = one.advance(s1, 0, 17, measure_at=steps, sample=3)
    t = 0
    for t_next in steps:
        s2 = many.advance(s2, t, t_next)
        got, want = one.measured_at(t_next), many.measure(s2)
        np.testing.assert_array_equal(got["w_sample"], s2[0][:, :3])
        for k in ("f_gap", "dist2", "grad_norm2", "finite"):
            np.testing.assert_array_equal(got[k], want[k], err_msg=f"step {t_next} {k}")
        t = t_next
    for a, b in zip(s1, s2, strict=True):
        np.testing.assert_array_equal(a, b)
    assert one.measured_at(5) is None
    with pytest.raises(ValueError, match="measure_at"):
        one.advance(s1, 17, 20, measure_at=[17])


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("rotated", [False, True])
def test_runner_tables_do_not_depend_on_measures_per_call(monkeypatch, dtype, rotated):
    """The runner's calls through up to MEASURES_PER_CALL boundaries give the same table,
    byte for byte, as calls stopping at every boundary — also when a configuration diverges
    (and is dropped) in the middle of a call, and in float32, where each record re-evaluates
    a sample of replicates in float64 (from the call's snapshot of them at that step)."""
    import simulate.runner as runner

    prob = QuadraticProblem(40, L=1.0, mu=0.01, rotated=rotated)
    configs = [{"alpha": 0.5, "beta": 0.9}, {"alpha": 5.0, "beta": 0.9},
               {"alpha": 1.0, "beta": 0.5}]

    def go():
        return runner.run(prob, get_method("heavy_ball"), configs, steps=300,
                          w0=np.ones(40), oracle=IsotropicGaussianNoise(0.1), replicates=20,
                          seed=2, record_points=25, engine="fast", dtype=dtype)

    batched = go()
    monkeypatch.setattr(runner, "MEASURES_PER_CALL", 1)
    single = go()
    assert np.isfinite(batched.diverged_at[1]) and not np.isfinite(batched.diverged_at[0])
    np.testing.assert_array_equal(batched.diverged_at, single.diverged_at)
    assert batched.curves.to_csv() == single.curves.to_csv()


# --------------------------------------------------------------------------- precond_matrix
def _spd(d, seed, spread):
    """A symmetric positive definite matrix Q diag(geomspace(1, spread)) Qᵀ, Q Haar-like."""
    q, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((d, d)))
    return (q * np.geomspace(1.0, spread, d)) @ q.T


def _precond_problem(kind, d=12):
    w_star = np.linspace(0.0, 1.0, d)
    if kind == "diagonal":
        return QuadraticProblem(d, L=1.0, mu=0.05, w_star=w_star)
    if kind == "rotated":
        return QuadraticProblem(d, L=1.0, mu=0.05, rotated=True, seed=3, w_star=w_star)
    return DenseQuadraticProblem(_spd(d, 4, 20.0), w_star=w_star)


def _precond_configs(prob, sharing, h=(0.8, 0.5)):
    """Two configurations: the same P (shared) or P = I and a dense SPD P (per config); each
    α = h/λ_max(PA), so the iteration contracts by 1 − h/κ(PA) per step on its slowest mode
    (f − f* falls by ~1e-3 in 150 steps here: far from the rounding floor)."""
    d, A = prob.dim, prob.hessian_matrix()
    dense = _spd(d, 5, 4.0)
    mats = [dense, dense] if sharing == "shared" else [np.eye(d), dense]
    return [{"alpha": hc / np.linalg.eigvals(P @ A).real.max(), "P": P}
            for hc, P in zip(h, mats, strict=True)]


@pytest.mark.parametrize("sharing", ["shared", "per_config"])
@pytest.mark.parametrize("kind", ["diagonal", "rotated", "dense"])
def test_precond_matrix_identical_to_reference(kind, sharing):
    prob = _precond_problem(kind)
    # 20 replicates: BLAS blocks of 16 and 4 rows per configuration
    ref, fast = _both(prob, "precond_matrix", _precond_configs(prob, sharing), replicates=20)
    # diagonal and dense: the same operations as the reference (g = (q − w*)·A or λ ⊙ (q − w*),
    # then g·Pᵀ by the method's own transform), only BLAS's blocking may round differently;
    # rotated: A(q − w*) vs Q(λ ⊙ Qᵀ(q − w*)), a few ulp per step as argued at RTOL (measured
    # when written: ≤ 4e-15 relative, 0 for dense, where the runner measures both paths)
    _assert_same(ref, fast)


@pytest.mark.parametrize("kind", ["diagonal", "rotated", "dense"])
def test_precond_matrix_engine_keeps_one_p_when_shared(kind):
    prob = _precond_problem(kind)
    want = {"diagonal": DiagonalPrecondMatrixEngine, "rotated": RotatedPrecondMatrixEngine,
            "dense": PrecondMatrixEngine}[kind]
    for sharing, ndim in (("shared", 2), ("per_config", 3)):
        cfgs = _precond_configs(prob, sharing)
        P = np.stack([c["P"] for c in cfgs])
        eng = fast_path(problem=prob, method=get_method("precond_matrix"),
                        oracle=ExactGradient(), schedule=Schedule(),
                        alpha=np.array([c["alpha"] for c in cfgs]).reshape(-1, 1, 1),
                        hypers=[], xp=np, seed=0, config_keys=["a", "b"], replicates=2,
                        extra={"P": P})
        assert type(eng) is want and eng.P.ndim == ndim
        np.testing.assert_array_equal(eng.subset(np.array([1])).P, P[1] if ndim == 2 else P[1:])
    # the dense problem records through the reference code (its own f − f* formula)
    assert hasattr(eng, "measure") == (kind != "dense")


@pytest.mark.parametrize("rotated", [False, True])
def test_precond_matrix_with_identity_is_sgd_bit_for_bit(rotated):
    """P = I: g·Iᵀ is exact, so with the same streams (same keys) the noisy run is the sgd run
    of the other engines, bit for bit — the noise is drawn as they draw it, before P."""
    prob = QuadraticProblem(16, L=1.0, mu=0.02, rotated=rotated, seed=2)
    kw = {"steps": 100, "w0": np.ones(16), "oracle": IsotropicGaussianNoise(sigma2=[1.0, 0.3]),
          "replicates": 19, "seed": 4, "config_keys": ["a", "b"], "engine": "fast"}
    cfgs = [{"alpha": 0.9}, {"alpha": 0.4}]
    sgd = run(prob, get_method("sgd"), cfgs, **kw)
    mat = run(prob, get_method("precond_matrix"), [dict(c, P=np.eye(16)) for c in cfgs], **kw)
    np.testing.assert_array_equal(mat.curves["value"].to_numpy(),
                                  sgd.curves["value"].to_numpy())
    # and with the noise off, the reference sgd to rounding
    kw["oracle"] = None
    ref = run(prob, get_method("sgd"), cfgs, **dict(kw, engine="reference"))
    mat = run(prob, get_method("precond_matrix"), [dict(c, P=np.eye(16)) for c in cfgs], **kw)
    _assert_same(ref, mat)


def test_precond_matrix_divergent_configuration_dropped():
    """A configuration that diverges is dropped at the reference's step; the survivors keep
    their own P (subset of the (C, d, d) stack) — the last one's P differs from the first."""
    prob = _precond_problem("dense")
    ok = _precond_configs(prob, "per_config")
    bad = {"alpha": 10 * ok[1]["alpha"], "P": ok[1]["P"]}  # α·λ_max(PA) = 5: diverges
    cfgs = [ok[0], bad, {"alpha": ok[1]["alpha"], "P": 2.0 * ok[1]["P"]}]
    ref, fast = _both(prob, "precond_matrix", cfgs, steps=200, replicates=4)
    assert np.isfinite(ref.diverged_at[1]) and np.isnan(ref.diverged_at[[0, 2]]).all()
    _assert_same(ref, fast)


def test_precond_matrix_rows_same_alone_in_a_batch_and_on_two_threads():
    prob = _precond_problem("rotated", d=20)
    cfgs = _precond_configs(prob, "per_config")
    cfgs.append({"alpha": 10 * cfgs[1]["alpha"], "P": cfgs[1]["P"]})  # diverges mid-run
    kw = {"steps": 120, "w0": np.ones(20), "oracle": IsotropicGaussianNoise(sigma2=1.0),
          "replicates": 37, "seed": 9, "engine": "fast"}
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
        batch = run(prob, get_method("precond_matrix"), cfgs, config_keys=["a", "b", "x"],
                    record_at=[0, 7, 60, 120], **kw)
        numba.set_num_threads(1)
        alone = run(prob, get_method("precond_matrix"), cfgs[1:2], config_keys=["b"],
                    record_at=np.union1d(np.arange(0, 121, 3), [7]), check_every=1, **kw)
    finally:
        numba.set_num_threads(before)
    assert np.isfinite(batch.diverged_at[2])
    b = batch.curves[(batch.curves["config"] == 1) & (batch.curves["quantity"] == "f_gap")]
    a = alone.curves[(alone.curves["quantity"] == "f_gap") & alone.curves["step"].isin(b["step"])]
    np.testing.assert_array_equal(a["value"].to_numpy(), b["value"].to_numpy())


def _precond_exact(steps, A, P, alpha, noise_cov, e0):
    """E f − f* of e_{t+1} = (I − αPA) e_t − αP ξ_t, Cov ξ = noise_cov: the second moment
    S = E e eᵀ follows S ← M S Mᵀ + α² P Σ Pᵀ (M = I − αPA) exactly; E(f − f*) = ½ tr(A S)."""
    M = np.eye(len(e0)) - alpha * P @ A
    Q = alpha**2 * P @ noise_cov @ P.T
    S, out = np.outer(e0, e0), {}
    for t in range(int(steps.max()) + 1):
        out[t] = 0.5 * np.sum(A * S)
        S = M @ S @ M.T + Q
    return np.array([out[int(t)] for t in steps])


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize(("kind", "oracle"), [
    ("rotated", IsotropicGaussianNoise(sigma2=[2.0, 0.5], B=[1, 2])),
    ("dense", IsotropicGaussianNoise(sigma2=2.0, B=1)),
    ("diagonal", CurvatureAlignedNoise(sigma2=4.0, B=1)),
])
def test_precond_matrix_noise_matches_exact_expected_curve(kind, oracle, dtype):
    d, R, T = 12, 400, 300
    prob = _precond_problem(kind, d)
    A = prob.hessian_matrix()
    cfgs = _precond_configs(prob, "per_config", h=(0.9, 0.3))
    rec = np.unique(np.r_[0, np.geomspace(1, T, 15).astype(int)])
    w0 = prob.w_star + 0.5
    res = run(prob, get_method("precond_matrix"), cfgs, steps=T, w0=w0, oracle=oracle,
              replicates=R, seed=SEED, record_at=rec, engine="fast", dtype=dtype)
    mean, se, steps = (x.reshape(len(cfgs), -1) for x in _values(res))
    # as test_noise_matches_exact_expected_curve: Bonferroni over every recorded step of every
    # configuration (family δ = 1e-6); each mean is over R = 400 replicates of a quadratic form
    # of Gaussians (a weighted sum of d chi-squares: the normal approximation holds at this z)
    z = bonferroni_z(2 * mean.size)
    rounding = 10 * d * np.finfo(dtype).eps
    var_over_b = np.broadcast_to(oracle._variance_over_B(), (len(cfgs),))
    for c, cfg in enumerate(cfgs):
        v = float(var_over_b[c])
        cov = (v * A / np.trace(A) if isinstance(oracle, CurvatureAlignedNoise)
               else v / d * np.eye(d))
        want = _precond_exact(steps[c], A, cfg["P"], cfg["alpha"], cov, w0 - prob.w_star)
        tol = z * se[c] + rounding * want
        assert np.all(np.abs(mean[c] - want) <= tol), (cfg["alpha"], mean[c] / want)
        # power: the stationary level with half the noise is rejected at the last steps
        wrong = _precond_exact(steps[c], A, cfg["P"], cfg["alpha"], 0.5 * cov,
                               w0 - prob.w_star)
        assert np.any(np.abs(mean[c] - wrong) > tol)


def test_preconditioning_experiment_configuration_runs_on_the_fast_path():
    """The preconditioning experiment's precond_matrix runs (diagonal, scaled dense and
    rotated A; P = A⁻¹, α = 1; one replicate, exact gradients) have an engine, and with it
    they solve in one step within the experiment's own rounding bound."""
    from simulate.experiments import preconditioning as pc

    d = 10
    problems = [QuadraticProblem(dim=d, L=1.0, mu=1e-3, spectrum="log-uniform"),
                DenseQuadraticProblem(pc._scaled_matrix(d, 10.0, 1000.0, 0)),
                QuadraticProblem(dim=d, L=1.0, mu=1e-3, spectrum="log-uniform", rotated=True,
                                 seed=0)]
    for prob in problems:
        A = prob.hessian_matrix()
        inv = np.linalg.inv(A)
        inv = 0.5 * (inv + inv.T)
        eng = fast_path(problem=prob, method=get_method("precond_matrix"),
                        oracle=ExactGradient(), schedule=Schedule(),
                        alpha=np.ones((1, 1, 1)), hypers=[], xp=np, seed=0,
                        config_keys=["k"], replicates=1, extra={"P": inv[None]})
        assert isinstance(eng, PrecondMatrixEngine)
        res = run(prob, get_method("precond_matrix"), [{"alpha": 1.0, "P": inv}], steps=3,
                  w0=prob.w_star + 1.0, record_at=[0, 1, 2, 3], engine="fast")
        c = res.curves[res.curves["quantity"] == "dist2"].sort_values("step")["value"]
        ratio = np.sqrt(c.to_numpy()[1] / c.to_numpy()[0])
        assert ratio <= pc._one_step_bound(A, inv, 1.0, "float64"), type(prob).__name__


# --------------------------------------------------------------------------- noise on
def _exact(method, t, lam, cfg, s2, m0):
    if method == "sgd":
        return theory.sgd_exact_quadratic(t, lam, cfg["alpha"], s2, m0).values
    return theory.heavy_ball_exact_quadratic(t, lam, cfg["alpha"], cfg["beta"], s2, m0).values


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize(("method", "oracle"), [
    ("sgd", IsotropicGaussianNoise(sigma2=2.0, B=1)),
    ("heavy_ball", IsotropicGaussianNoise(sigma2=[2.0, 0.5], B=[1, 2])),
    ("sgd", CurvatureAlignedNoise(sigma2=4.0, B=1)),
])
def test_noise_matches_exact_expected_curve(method, oracle, dtype):
    d, R, T = 24, 400, 300
    lam = np.geomspace(0.05, 1.0, d)
    prob = QuadraticProblem(d, eigenvalues=lam)
    cfgs = ([{"alpha": 0.9}, {"alpha": 0.3}] if method == "sgd"
            else [{"alpha": 0.4, "beta": 0.7}, {"alpha": 0.2, "beta": 0.5}])
    rec = np.unique(np.r_[0, np.geomspace(1, T, 15).astype(int)])
    w0 = np.full(d, 0.5)
    res = run(prob, get_method(method), cfgs, steps=T, w0=w0, oracle=oracle, replicates=R,
              seed=SEED, record_at=rec, engine="fast", dtype=dtype)
    mean, se, steps = _values(res)
    mean, se, steps = (x.reshape(len(cfgs), -1) for x in (mean, se, steps))
    # two-sided test at every recorded step of every configuration: Bonferroni over all
    # of them with the verdicts' family δ = 1e-6; each mean is over R = 400 replicates of a
    # sum of 24 weighted chi-squares, where the normal approximation is accurate at this z
    z = bonferroni_z(2 * mean.size)
    # plus float rounding of a mean of d-term sums in this dtype (at t = 0 every replicate
    # is the same number and the float32 "stderr" is rounding noise, not sampling error)
    rounding = 10 * d * np.finfo(dtype).eps
    for c, cfg in enumerate(cfgs):
        var_over_b = oracle._variance_over_B()
        v = float(np.broadcast_to(var_over_b, (len(cfgs),))[c])
        s2 = v * lam / lam.sum() if isinstance(oracle, CurvatureAlignedNoise) else v / d
        want = _exact(method, steps[c], lam, cfg, s2, w0**2)
        tol = z * se[c] + rounding * want
        assert np.all(np.abs(mean[c] - want) <= tol), (cfg, mean[c] / want)
        # power: the stationary level with half the noise is rejected at the last steps
        wrong = _exact(method, steps[c], lam, cfg, 0.5 * s2, w0**2)
        assert np.any(np.abs(mean[c] - wrong) > tol)


def test_finite_sum_minibatch_matches_reference_statistics():
    prob = FiniteSumLeastSquares(n=500, dim=8, seed=2, noise_std=1.0)
    oracle = MinibatchSampling(B=4)
    cfgs = [{"alpha": 0.1}, {"alpha": 0.03}]
    kw = {"steps": 200, "w0": np.zeros(8), "oracle": oracle, "replicates": 300,
          "record_at": [0, 10, 50, 200], "seed": SEED}
    ref = run(prob, get_method("sgd"), cfgs, engine="reference", **kw)
    fast = run(prob, get_method("sgd"), cfgs, engine="fast", **kw)
    a, sa, _ = _values(ref)
    b, sb, _ = _values(fast)
    # two independent means of the same law: |a − b| ≤ z·√(sa² + sb²), Bonferroni over 6
    z = bonferroni_z(2 * a.size)
    assert np.all(np.abs(a - b) <= z * np.hypot(sa, sb)), a / b


def test_finite_sum_gradient_is_the_component_mean():
    # one SGD step of the fast path from w0, redone by hand with the same row stream
    prob = FiniteSumLeastSquares(n=300, dim=6, seed=1)
    R, B, alpha = 3, 5, 0.1
    w0 = np.random.default_rng(3).standard_normal((1, R, 6))
    eng = fast_path(problem=prob, method=get_method("sgd"), oracle=MinibatchSampling(B=B),
                    schedule=Schedule(), alpha=np.full((1, 1, 1), alpha), hypers=[], xp=np,
                    seed=4, config_keys=["k"], replicates=R)
    (w1,) = eng.advance((w0.copy(),), 0, 1)
    idx = _draw_indices(prob.n, row_states(4, ["k"], R), B)[None]
    want = w0 - alpha * prob.component_grad_mean(w0, idx)
    np.testing.assert_allclose(w1, want, rtol=1e-13, atol=1e-15)


# --------------------------------------------------------------------------- streams
@numba.njit
def _draw_indices(n, states, count):
    """``count`` indices per row from each row's stream, as the finite-sum loop draws them."""
    out = np.empty((states.shape[0], count), dtype=np.int64)
    for r in range(states.shape[0]):
        s0, s1, s2, s3 = states[r, 0], states[r, 1], states[r, 2], states[r, 3]
        for b in range(count):
            out[r, b], s0, s1, s2, s3 = bounded_index(n, s0, s1, s2, s3)
    return out


def _noisy_run(configs, keys, rotated=False, replicates=5, **kw):
    prob = QuadraticProblem(20, L=1.0, mu=1e-2, rotated=rotated)
    return run(prob, get_method("heavy_ball"), configs, steps=120, w0=np.ones(20),
               oracle=IsotropicGaussianNoise(sigma2=1.0), replicates=replicates, seed=9,
               config_keys=keys, engine="fast", **kw)


@pytest.mark.parametrize("rotated", [False, True])
def test_same_numbers_on_one_or_two_threads(rotated):
    cfgs = [{"alpha": 0.5, "beta": 0.9}, {"alpha": 0.3, "beta": 0.5}]
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = _noisy_run(cfgs, ["a", "b"], rotated=rotated).curves
        numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
        two = _noisy_run(cfgs, ["a", "b"], rotated=rotated).curves
    finally:
        numba.set_num_threads(before)
    np.testing.assert_array_equal(one["value"].to_numpy(), two["value"].to_numpy())


def test_dense_rows_same_alone_and_in_a_batch():
    # R = 37 replicates: BLAS blocks of 16, 16 and 5 rows per configuration
    cfg_b = {"alpha": 0.3, "beta": 0.5}
    batch = _noisy_run([{"alpha": 0.5, "beta": 0.9}, cfg_b], ["a", "b"], rotated=True,
                       replicates=37)
    alone = _noisy_run([cfg_b], ["b"], rotated=True, replicates=37)
    b = batch.curves[batch.curves["config"] == 1]["value"].to_numpy()
    np.testing.assert_array_equal(alone.curves["value"].to_numpy(), b)


def test_same_numbers_alone_in_a_batch_and_in_pieces():
    cfg_b = {"alpha": 0.3, "beta": 0.5}
    batch = _noisy_run([{"alpha": 0.5, "beta": 0.9}, cfg_b, {"alpha": 9.0, "beta": 0.9}],
                       ["a", "b", "diverges"], record_at=[0, 7, 60, 120])
    alone = _noisy_run([cfg_b], ["b"], record_at=np.union1d(np.arange(0, 121, 3), [7]),
                       check_every=1)
    assert np.isfinite(batch.diverged_at[2])  # dropped mid-run: the others' streams go on
    b = batch.curves[(batch.curves["config"] == 1) & (batch.curves["quantity"] == "f_gap")]
    a = alone.curves[(alone.curves["quantity"] == "f_gap") & alone.curves["step"].isin(b["step"])]
    np.testing.assert_array_equal(a["value"].to_numpy(), b["value"].to_numpy())


def test_different_keys_and_replicates_get_different_streams():
    states = row_states(0, ["a", "b"], 3)
    assert len({tuple(s) for s in states}) == 6
    assert not np.array_equal(row_states(1, ["a"], 1), row_states(0, ["a"], 1))


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_ziggurat_normals_are_standard_normal(dtype):
    z = standard_normals(row_states(SEED, ["zig"], 1)[0], 400_000, dtype).astype(np.float64)
    # KS over the whole law; tail frequency beyond R = 3.654 (the ziggurat's tail branch,
    # expected 103 ± 10 of 400k) and the 4th moment probe the rejection paths. p > 1e-6.
    assert stats.kstest(z, "norm").pvalue > 1e-6
    n_tail = int(np.sum(np.abs(z) > 3.6541528853610088))
    assert stats.binomtest(n_tail, z.size, 2 * stats.norm.sf(3.6541528853610088)).pvalue > 1e-6
    assert abs(np.mean(z**4) - 3.0) < 5.3 * np.sqrt(96.0 / z.size)  # var(z⁴) = 96


def test_lane_ziggurat_layers_close():
    # R is solved so that the top layer of area V ends exactly at f = 1 (x_1024 = 0)
    x = _ziggurat_x(LANE_LAYERS, LANE_R, LANE_V)
    assert abs(LANE_V / x[LANE_LAYERS - 1] + np.exp(-0.5 * x[LANE_LAYERS - 1] ** 2) - 1) < 1e-12
    assert np.all(np.diff(x[1:]) < 0)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_lane_normals_are_independent_standard_normals(dtype):
    # ~2·10⁶ normals, about one W1 row-step per call (1000 float64, 1008 float32), from one
    # row's eight lanes. Each check is at p > 1e-6 (or ≤ 5.3 standard errors), so a correct
    # generator fails one of them with probability < 1e-5 whatever the seed.
    per_call = 1000 if dtype == "float64" else 1008
    n = per_call * (2_000_000 // per_call)
    z = standard_lane_normals(row_states(SEED, ["lanes"], 1)[0], n, dtype=dtype)
    assert z.dtype == np.dtype(dtype)
    z = z.astype(np.float64)
    assert stats.kstest(z, "norm").pvalue > 1e-6
    # the tails: beyond 3 (outer layers and wedges), beyond the lanes' R = 4.04 (≈ 107
    # expected) and beyond 4.3 (≈ 34 expected; only Marsaglia's tail procedure reaches past
    # the base block's edge V/f(R) = 4.27 — without it this count is 0, p ≈ 1e-15)
    for edge in (3.0, LANE_R, 4.3):
        hits = int(np.sum(np.abs(z) > edge))
        assert stats.binomtest(hits, n, 2 * stats.norm.sf(edge)).pvalue > 1e-6
    assert abs(np.mean(z**4) - 3.0) < 5.3 * np.sqrt(96.0 / n)  # var(z⁴) = 96
    # no dependence between neighbouring coordinates, a lane's successive words, or one call
    # and the next: float64 — other lanes (1), the same lane (LANES), the next call (1000);
    # float32 — the two halves of one word (1), other lanes (2), the same lane (16), the next
    # call (1008). Each sample correlation of ~2·10⁶ pairs has standard error 1/√n ≈ 7e-4.
    lags = (1, LANES, 1000) if dtype == "float64" else (1, 2, LANE_BLOCK32, 1008)
    for lag in lags:
        r = np.corrcoef(z[:-lag], z[lag:])[0, 1]
        assert abs(r) < 5.3 / np.sqrt(n - lag), (lag, r)
    # and between the magnitudes (a shared layer index would correlate |z|, not z): the
    # correlation of |z| at the same lags, same standard error
    for lag in lags:
        r = np.corrcoef(np.abs(z[:-lag]), np.abs(z[lag:]))[0, 1]
        assert abs(r) < 5.3 / np.sqrt(n - lag), (lag, r)


def test_float32_lane_tables_agree_with_the_float64_ones():
    # the float32 first tries use 21-bit uniforms and float32 tables: each layer's box test
    # and value must agree with the float64 tables to within float32 rounding — k_i is the
    # same fraction of the layer at 21 bits as at 52 (to 2^-21) and w_i·2^21 = x_i
    x = _LANE_X
    np.testing.assert_allclose(_LK32 / 2.0**21, _LK / 2.0**52, rtol=0, atol=2.0**-21)
    np.testing.assert_allclose(_LW32.astype(np.float64) * 2.0**21, x[:-1], rtol=2.0**-24)
    # the packed table holds exactly those two
    packed = _LKW32.view(np.uint64)
    np.testing.assert_array_equal((packed & np.uint64(0xFFFFFFFF)).astype(np.int64), _LK32)
    np.testing.assert_array_equal((packed >> np.uint64(32)).astype(np.uint32).view(np.float32),
                                  _LW32)


def test_lane_streams_differ_between_rows_and_lanes():
    states = row_states(SEED, ["a"], 2)
    a, b = (standard_lane_normals(s.copy(), 1000) for s in states)
    assert not np.array_equal(a, b)
    lanes = a.reshape(-1, LANES).T
    assert len({tuple(lane) for lane in lanes}) == LANES


def test_bounded_index_is_uniform():
    n = 7
    idx = _draw_indices(n, row_states(SEED, ["idx"], 1), 70_000)
    assert stats.chisquare(np.bincount(idx.ravel(), minlength=n)).pvalue > 1e-6


# --------------------------------------------------------------------------- unsupported
@pytest.mark.parametrize("case", ["precond_matrix_pl_sin", "precond_matrix_minibatch",
                                  "logistic", "without_replacement", "curvature_rotated"])
def test_engine_fast_raises_where_unsupported(case):
    quad = QuadraticProblem(8, L=1.0, mu=0.1)
    method, problem, cfg, oracle = "sgd", quad, {"alpha": 0.1}, None
    if case == "precond_matrix_pl_sin":  # precond_matrix is on the fast path for quadratics only
        method, cfg = "precond_matrix", {"alpha": 0.1, "P": np.eye(8)}
        problem = PLSinProblem(8, scale=0.5)
    elif case == "precond_matrix_minibatch":
        method, cfg = "precond_matrix", {"alpha": 0.1, "P": np.eye(8)}
        problem = FiniteSumLeastSquares(n=50, dim=8, seed=0)
        oracle = MinibatchSampling(B=2)
    elif case == "logistic":
        problem, oracle = FiniteSumLogistic(n=50, dim=8, seed=0), MinibatchSampling(B=2)
    elif case == "without_replacement":
        problem = FiniteSumLeastSquares(n=50, dim=8, seed=0)
        oracle = MinibatchSampling(B=2, scheme="without_replacement")
    else:
        problem = QuadraticProblem(8, L=1.0, mu=0.1, rotated=True)
        oracle = CurvatureAlignedNoise(sigma2=1.0)
    with pytest.raises(ValueError, match="engine='fast' is not available"):
        run(problem, get_method(method), [cfg], steps=5, w0=np.zeros(8), oracle=oracle,
            engine="fast")
    # and the default engine falls back to the reference without complaint
    run(problem, get_method(method), [cfg], steps=5, w0=np.zeros(8), oracle=oracle)


# --------------------------------------------------------------------------- bench
def test_bench_quick_writes_the_table(tmp_path, capsys):
    import pandas as pd

    from simulate.cli import main

    out = tmp_path / "bench.csv"
    assert main(["bench", "--quick", "--workload", "W1", "--repeats", "1", "--out",
                 str(out)]) == 0
    df = pd.read_csv(out)
    assert {"workload", "implementation", "median_s", "min_s", "max_s",
            "coord_updates_per_s"} <= set(df.columns)
    assert {"lab", "lab-float32", "numpy-loop", "numpy-batched"} <= set(df["implementation"])
    assert (df["workload"] == "W1").all() and (df["median_s"] > 0).all()
    lab = df.set_index("implementation").loc["lab"]
    assert lab["speedup_vs_numpy-batched"] == pytest.approx(
        df.set_index("implementation").loc["numpy-batched", "median_s"] / lab["median_s"])
    assert "coord_updates_per_s" in capsys.readouterr().out


def test_bench_baselines_compute_the_same_curve_without_noise():
    """With σ² = 0 every W1 implementation is the same deterministic recursion: the baselines
    the lab is compared with must compute it (else a speed-up means nothing)."""
    from simulate.bench import (
        QuadSpec,
        lab_quadratic,
        numba_generator_quadratic,
        numpy_batched_quadratic,
        numpy_loop_quadratic,
    )

    spec = QuadSpec(d=20, R=4, T=60, rotated=False, sigma2=0.0)
    reference = numpy_batched_quadratic(spec)()
    assert reference[-1] < reference[0]  # it converges: a curve, not a constant
    for make in (numpy_loop_quadratic, numba_generator_quadratic, lab_quadratic):
        np.testing.assert_allclose(make(spec)(), reference, rtol=1e-12, err_msg=make.__name__)


def test_bench_rejects_unknown_workload(capsys):
    from simulate.cli import main

    assert main(["bench", "--quick", "--workload", "W9"]) == 2
    assert "W9" in capsys.readouterr().err
