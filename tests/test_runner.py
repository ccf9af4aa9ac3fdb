"""Runner and methods: exact identities, closed forms, divergence, determinism, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from simulate.methods import METHODS, get_method
from simulate.noise import IsotropicGaussianNoise
from simulate.problems import QuadraticProblem
from simulate.recording import record_steps
from simulate.runner import run


def _measured(res, quantity="f_gap"):
    c = res.curves
    sel = c[(c["quantity"] == quantity) & (c["source"] == "measured")]
    return {cfg: g.sort_values("step")["value"].to_numpy() for cfg, g in sel.groupby("config")}


@pytest.fixture
def quad():
    return QuadraticProblem(dim=20, L=1.0, mu=0.01, spectrum="log-uniform")


@pytest.fixture
def w0(quad):
    return np.random.default_rng(1).standard_normal(quad.dim)


def _final_state_run(problem, method, cfg, w0, oracle=None, steps=300, replicates=2, seed=3):
    res = run(problem, get_method(method), [cfg], steps=steps, w0=w0, oracle=oracle,
              replicates=replicates, seed=seed, record_at=np.arange(steps + 1),
              record_iterate=True, config_keys=["same-stream"])
    return res


def test_heavy_ball_beta0_equals_gd_bitwise(quad, w0):
    a = _final_state_run(quad, "heavy_ball", {"alpha": 0.7, "beta": 0.0}, w0)
    b = _final_state_run(quad, "sgd", {"alpha": 0.7}, w0)
    for q in ("f_gap", "dist2", "iterate"):
        np.testing.assert_array_equal(_measured(a, q)[0], _measured(b, q)[0])


def test_identity_preconditioner_equals_gd_bitwise(quad, w0):
    gd = _measured(_final_state_run(quad, "sgd", {"alpha": 0.7}, w0), "dist2")[0]
    diag = _final_state_run(quad, "precond_diag", {"alpha": 0.7, "p": np.ones(quad.dim)}, w0)
    mat = _final_state_run(quad, "precond_matrix", {"alpha": 0.7, "P": np.eye(quad.dim)}, w0)
    np.testing.assert_array_equal(_measured(diag, "dist2")[0], gd)
    np.testing.assert_array_equal(_measured(mat, "dist2")[0], gd)


def test_sgd_with_zero_noise_equals_gd_bitwise(quad, w0):
    gd = _measured(_final_state_run(quad, "sgd", {"alpha": 0.7}, w0), "dist2")[0]
    sgd = _final_state_run(quad, "sgd", {"alpha": 0.7}, w0,
                           oracle=IsotropicGaussianNoise(sigma2=0.0, B=1))
    np.testing.assert_array_equal(_measured(sgd, "dist2")[0], gd)


@pytest.mark.parametrize("rotated", [False, True])
def test_gd_matches_closed_form_per_eigendirection(rotated):
    # e_t = (1 − αλ)^t e_0 per eigen-direction (THEORY §1.3); relative error < 1e-10 over 1000 steps
    prob = QuadraticProblem(dim=30, L=1.0, mu=0.05, spectrum="uniform", rotated=rotated, seed=4)
    w0 = np.random.default_rng(2).standard_normal(prob.dim)
    alpha = 1.0 / prob.L
    steps = 1000
    res = run(prob, get_method("sgd"), [{"alpha": alpha}], steps=steps, w0=w0,
              record_at=record_steps(steps, 80))
    c = res.curves[res.curves["quantity"] == "f_gap"].sort_values("step")
    t = c["step"].to_numpy()
    e0 = prob.to_eigenbasis(w0[None, :])[0]
    lam = prob.eigenvalues
    exact = 0.5 * ((lam * e0**2)[None, :] * (1 - alpha * lam)[None, :] ** (2 * t[:, None])).sum(1)
    np.testing.assert_allclose(c["value"].to_numpy(), exact, rtol=1e-10, atol=0)


def test_nesterov_1d_equals_its_2x2_recurrence():
    lam, alpha, beta = 0.3, 0.9, 0.6
    prob = QuadraticProblem(dim=1, L=lam, mu=lam, eigenvalues=np.array([lam]))
    steps = 60
    res = run(prob, get_method("nesterov"), [{"alpha": alpha, "beta": beta}], steps=steps,
              w0=np.array([1.5]), record_at=np.arange(steps + 1), record_iterate=True)
    it = _measured(res, "iterate")[0]
    # x_{t+1} = (1 − αλ)((1 + β) x_t − β x_{t−1}), x_{−1} = x_0
    m = np.array([[(1 - alpha * lam) * (1 + beta), -(1 - alpha * lam) * beta], [1.0, 0.0]])
    z = np.array([1.5, 1.5])
    expected = [z[0]]
    for _ in range(steps):
        z = m @ z
        expected.append(z[0])
    # Round-off is relative to the size of the state (x_t, x_{t-1}), not of x_t alone: the
    # sequence oscillates through zero, where x_t is a near-cancellation. 1e-12 of the state
    # norm is ~5000 ulps, ample for 60 steps of a 2x2 recurrence.
    expected = np.asarray(expected)
    state_norm = np.hypot(expected, np.concatenate([[expected[0]], expected[:-1]]))
    assert np.all(np.abs(it - expected) <= 1e-12 * state_norm)


def test_divergence_is_marked_and_others_finish(quad, w0):
    cfgs = [{"alpha": 0.5}, {"alpha": 3.0}, {"alpha": 1.0}]  # 3.0 > 2/L diverges
    res = run(quad, get_method("sgd"), cfgs, steps=400, w0=w0, replicates=2)
    assert np.isnan(res.diverged_at[0]) and np.isnan(res.diverged_at[2])
    assert 0 < res.diverged_at[1] <= 400
    assert res.divergence_reason[1]
    c = res.curves
    last = c[(c["quantity"] == "f_gap")].groupby("config")["step"].max()
    assert last[0] == 400 and last[2] == 400
    assert last[1] < res.diverged_at[1]
    assert (c.loc[c["config"] == 1, "diverged_at"] == res.diverged_at[1]).all()


def test_same_seed_same_numbers_and_batch_independence(quad, w0):
    noise = IsotropicGaussianNoise(sigma2=1.0, B=1)
    cfgs = [{"alpha": 0.1, "label": "a"}, {"alpha": 0.2, "label": "b"}]
    both = run(quad, get_method("sgd"), cfgs, steps=50, w0=w0, oracle=noise, replicates=4,
               seed=7, config_keys=["k-a", "k-b"])
    again = run(quad, get_method("sgd"), cfgs, steps=50, w0=w0, oracle=noise, replicates=4,
                seed=7, config_keys=["k-a", "k-b"])
    alone = run(quad, get_method("sgd"), cfgs[1:], steps=50, w0=w0,
                oracle=IsotropicGaussianNoise(sigma2=1.0, B=1), replicates=4, seed=7,
                config_keys=["k-b"])
    np.testing.assert_array_equal(_measured(both)[1], _measured(again)[1])
    np.testing.assert_array_equal(_measured(both)[1], _measured(alone)[0])
    other_seed = run(quad, get_method("sgd"), cfgs[1:], steps=50, w0=w0, oracle=noise,
                     replicates=4, seed=8, config_keys=["k-b"])
    assert not np.array_equal(_measured(other_seed)[0], _measured(alone)[0])


def test_float32_runs_and_stays_close_to_float64(quad, w0):
    r64 = run(quad, get_method("heavy_ball"), [{"alpha": 0.5, "beta": 0.5}], steps=100, w0=w0)
    r32 = run(quad, get_method("heavy_ball"), [{"alpha": 0.5, "beta": 0.5}], steps=100, w0=w0,
              dtype="float32")
    np.testing.assert_allclose(_measured(r32)[0], _measured(r64)[0], rtol=1e-4)


def test_every_method_runs_and_decreases_the_loss(quad, w0):
    cfg = {"alpha": 0.5, "beta": 0.5, "p": 1.0 / quad.hessian_diag(), "P": np.eye(quad.dim)}
    for name in METHODS:
        m = get_method(name)
        step = {"alpha": 0.05} if name in ("adagrad", "rmsprop", "adam") else {}
        keys = {k: v for k, v in cfg.items() if k in ("alpha", *m.hyper_names, *m.extra_hypers)}
        res = run(quad, m, [{**keys, **step}], steps=200, w0=w0)
        f = _measured(res)[0]
        assert f[-1] < f[0], name


def test_averaging_and_grad_min_are_recorded(quad, w0):
    res = run(quad, get_method("sgd"), [{"alpha": 0.5}], steps=50, w0=w0, average=True,
              track_grad_min=True)
    q = set(res.curves["quantity"])
    assert {"f_gap_avg", "dist2_avg", "grad_norm2_min"} <= q
    g = _measured(res, "grad_norm2")[0]
    gmin = _measured(res, "grad_norm2_min")[0]
    assert np.all(gmin <= g + 1e-15) and np.all(np.diff(gmin) <= 0)


@pytest.mark.parametrize(
    "cfg, message",
    [
        ({"alpha": 0.0}, "alpha"),
        ({"alpha": -1.0}, "alpha"),
        ({"alpha": float("nan")}, "alpha"),
        ({"alpha": 0.1, "beta": 1.0}, "beta"),
        ({"alpha": 0.1, "beta": -0.1}, "beta"),
        ({"beta": 0.5}, "alpha"),
    ],
)
def test_bad_hyperparameters_raise_one_line_errors(quad, w0, cfg, message):
    with pytest.raises(ValueError, match=message) as info:
        run(quad, get_method("heavy_ball"), [cfg], steps=5, w0=w0)
    assert "\n" not in str(info.value)


def test_bad_run_arguments(quad, w0):
    with pytest.raises(ValueError, match="method"):
        get_method("lbfgs")
    with pytest.raises(ValueError, match="steps"):
        run(quad, get_method("sgd"), [{"alpha": 0.1}], steps=0, w0=w0)
    with pytest.raises(ValueError, match="replicates"):
        run(quad, get_method("sgd"), [{"alpha": 0.1}], steps=5, w0=w0, replicates=0)
    with pytest.raises(ValueError, match="w0"):
        run(quad, get_method("sgd"), [{"alpha": 0.1}], steps=5, w0=np.ones(3))
    with pytest.raises(ValueError, match="dtype"):
        run(quad, get_method("sgd"), [{"alpha": 0.1}], steps=5, w0=w0, dtype="float16")
    with pytest.raises(ValueError, match="configs"):
        run(quad, get_method("sgd"), [], steps=5, w0=w0)


def test_per_replicate_data_with_more_replicates_than_the_resolution_sample():
    """A problem whose data differ per replicate cannot be re-evaluated on a replicate subset,
    so every replicate is re-evaluated in the wider type; with more replicates than that
    sample (16) this path once crashed the full-size report (pl-nonconvex). It must run and
    record the same means on the reference and the fast path."""
    from simulate.experiments.pl_nonconvex import _DistanceToProjection
    from simulate.problems import OverparamLeastSquares

    base = OverparamLeastSquares(n=8, dim=20, L=1.0, mu=0.1, seed=0)
    w0 = np.random.default_rng(0).standard_normal((20, 20))
    problem = _DistanceToProjection(base, base.projection_of(w0))
    results = [run(problem, get_method("gd"), [{"alpha": 0.5}], steps=40, w0=w0,
                   replicates=20, record_points=8, engine=engine)
               for engine in ("auto", "reference")]
    for res in results:
        f = res.curves[res.curves["quantity"] == "f_gap"]["value"].to_numpy()
        assert np.all(np.isfinite(f)) and f[-1] < f[0]
    np.testing.assert_array_equal(results[0].curves["value"].to_numpy(),
                                  results[1].curves["value"].to_numpy())


def test_least_squares_float64_measures_only_the_gradient_error():
    # f − f* = (1/2n)‖A(w − w*)‖² and ‖w − w*‖² are direct forms: in float64 only ‖∇f‖²
    # (Aᵀ(Aw − b)/n, which cancels near w*) is re-evaluated in the wider type; float32 runs
    # re-evaluate all three (the data's own float32 rounding counts as error there)
    from simulate.problems import FiniteSumLeastSquares
    from simulate.runner import BASE_QUANTITIES, _Resolution

    prob = FiniteSumLeastSquares(n=200, dim=5, seed=0)
    w = np.random.default_rng(0).standard_normal((1, 3, 5))
    r64 = _Resolution(prob, BASE_QUANTITIES, 1, 1, np.dtype(np.float64))
    if r64.ref is not None:  # a wider type exists (x87 longdouble)
        assert set(r64._evaluate(w)) == {"grad_norm2"}
    r32 = _Resolution(prob, BASE_QUANTITIES, 1, 1, np.dtype(np.float32))
    assert set(r32._evaluate(w.astype(np.float32))) == set(BASE_QUANTITIES)


def test_logistic_longdouble_gradient_has_the_plain_products_bits():
    # the wide re-evaluation's transposed product sums the same products in the same order
    from simulate.problems import FiniteSumLogistic

    prob = FiniteSumLogistic(n=300, dim=7, seed=1, reg=0.01)
    w = np.random.default_rng(1).standard_normal((2, 3, 7)).astype(np.longdouble)
    A = prob.A.astype(np.longdouble)
    coeffs = prob._full_coeffs(w)
    plain = (coeffs @ A) * np.longdouble(1.0 / prob.n) + np.longdouble(0.01) * w
    np.testing.assert_array_equal(prob.grad(w), plain)
