"""theory/: outside a theorem's conditions -> applicable=False, NaN values and a one-line reason
naming the condition; invalid input -> ValueError whose one-line message starts with the
parameter's name. Each case is paired with a valid call that is applicable, so a check that
always says "not applicable" would fail."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest

import theory as th

T = np.arange(0, 20)
L, MU = 4.0, 0.1
E0 = np.array([1.0, -2.0, 0.5])
LAM = np.array([0.1, 1.0, 4.0])


def _assert_flagged(result, fragment: str) -> None:
    assert result.applicable is False
    assert fragment in result.reason, result.reason
    assert "\n" not in result.reason and result.reason.strip() == result.reason
    if isinstance(result, th.Curve):
        assert np.all(np.isnan(result.values))
        assert math.isnan(result.rate) and math.isnan(result.floor)
    else:
        assert math.isnan(result.value)


def _assert_applicable(result) -> None:
    assert result.applicable is True and result.reason == ""
    if isinstance(result, th.Curve):
        assert np.all(np.isfinite(result.values) | np.isinf(result.values))
        assert not np.any(np.isnan(result.values))
    else:
        assert math.isfinite(result.value)


# (name, call outside the conditions, fragment of the reason, call inside the conditions)
CASES: list[tuple[str, Callable, str, Callable]] = [
    ("sgd basic bound alpha > 1/L",
     lambda: th.sgd_pl_constant_bound(T, L, MU, 0.3, 1.0, 1, 2.0),
     "alpha <= 1/L", lambda: th.sgd_pl_constant_bound(T, L, MU, 0.25, 1.0, 1, 2.0)),
    ("sgd general bound alpha >= 2/L",
     lambda: th.sgd_pl_constant_bound(T, L, MU, 0.5, 1.0, 1, 2.0, form="general"),
     "alpha < 2/L", lambda: th.sgd_pl_constant_bound(T, L, MU, 0.45, 1.0, 1, 2.0, "general")),
    ("noise floor alpha > 1/L", lambda: th.noise_floor_bound(0.3, 1.0, L, MU, 1),
     "alpha <= 1/L", lambda: th.noise_floor_bound(0.2, 1.0, L, MU, 1)),
    ("noise floor general alpha >= 2/L",
     lambda: th.noise_floor_bound(0.5, 1.0, L, MU, 1, form="general"),
     "alpha < 2/L", lambda: th.noise_floor_bound(0.4, 1.0, L, MU, 1, form="general")),
    ("gd nonconvex loose alpha > 1/L", lambda: th.gd_nonconvex_bound(T, L, 0.26, 1.0),
     "alpha <= 1/L", lambda: th.gd_nonconvex_bound(T, L, 0.25, 1.0)),
    ("gd nonconvex tight alpha > 1/L",
     lambda: th.gd_nonconvex_bound(T, L, 0.3, 1.0, form="tight"),
     "alpha <= 1/L", lambda: th.gd_nonconvex_bound(T, L, 0.25, 1.0, form="tight")),
    ("gd nonconvex descent alpha >= 2/L",
     lambda: th.gd_nonconvex_bound(T, L, 0.5, 1.0, form="descent"),
     "0 < alpha < 2/L", lambda: th.gd_nonconvex_bound(T, L, 0.49, 1.0, form="descent")),
    ("gd PL general alpha >= 2/L", lambda: th.gd_pl_bound(T, L, MU, 0.5, 1.0),
     "alpha < 2/L", lambda: th.gd_pl_bound(T, L, MU, 0.4, 1.0)),
    ("gd PL basic alpha > 1/L", lambda: th.gd_pl_bound(T, L, MU, 0.3, 1.0, form="basic"),
     "alpha <= 1/L", lambda: th.gd_pl_bound(T, L, MU, 0.25, 1.0, form="basic")),
    ("gd PL sharp alpha != 1/L", lambda: th.gd_pl_bound(T, L, MU, 0.2, 1.0, form="sharp"),
     "alpha = 1/L", lambda: th.gd_pl_bound(T, L, MU, 0.25, 1.0, form="sharp")),
    ("gd strongly convex alpha >= 2/L",
     lambda: th.gd_strongly_convex_rate(T, L, MU, 0.5, 1.0),
     "alpha < 2/L", lambda: th.gd_strongly_convex_rate(T, L, MU, 2 / (L + MU), 1.0)),
    ("heavy ball |beta| >= 1", lambda: th.heavy_ball_asymptotic_rate(L, MU, 0.1, 1.0),
     "unstable", lambda: th.heavy_ball_asymptotic_rate(L, MU, 0.1, 0.9)),
    ("heavy ball alpha L >= 2(1+beta)",
     lambda: th.heavy_ball_asymptotic_rate(L, MU, 0.8, 0.5),
     "2(1+beta)", lambda: th.heavy_ball_asymptotic_rate(L, MU, 0.7, 0.5)),
    ("safe heavy ball wrong beta", lambda: th.heavy_ball_safe_bound(T, L, MU, 0.2, 0.5, 1.0),
     "sqrt((1-alpha mu)(1-alpha L))",
     lambda: th.heavy_ball_safe_bound(T, L, MU, *th.heavy_ball_safe_params(L, MU, 0.2), 1.0)),
    ("safe heavy ball alpha > 1/L", lambda: th.heavy_ball_safe_bound(T, L, MU, 0.3, 0.0, 1.0),
     "alpha <= 1/L",
     lambda: th.heavy_ball_safe_bound(T, L, MU, 0.25, 0.0, 1.0)),
    ("nesterov bound alpha != 1/L", lambda: th.nesterov_bound(T, L, MU, 1.0, alpha=0.2),
     "alpha = 1/L", lambda: th.nesterov_bound(T, L, MU, 1.0, alpha=0.25)),
    ("nesterov bound wrong beta", lambda: th.nesterov_bound(T, L, MU, 1.0, beta=0.9),
     "beta",
     lambda: th.nesterov_bound(T, L, MU, 1.0, alpha=0.25, beta=th.nesterov_params(L, MU)[1])),
    ("diminishing beta <= 1/mu",
     lambda: th.sgd_diminishing_bound(T + 1, L, MU, 1.0, 1, beta=10.0, gamma=100.0, delta1=1.0),
     "beta > 1/mu",
     lambda: th.sgd_diminishing_bound(T + 1, L, MU, 1.0, 1, beta=20.0, gamma=100.0, delta1=1.0)),
    ("diminishing gamma = 0",
     lambda: th.sgd_diminishing_bound(T + 1, L, MU, 1.0, 1, beta=20.0, gamma=0.0, delta1=1.0),
     "gamma > 0",
     lambda: th.sgd_diminishing_bound(T + 1, L, MU, 1.0, 1, beta=20.0, gamma=79.0, delta1=1.0)),
    ("diminishing alpha_1 > 1/L",
     lambda: th.sgd_diminishing_bound(T + 1, L, MU, 1.0, 1, beta=20.0, gamma=78.0, delta1=1.0),
     "alpha_1 <= 1/L",
     lambda: th.sgd_diminishing_bound(T + 1, L, MU, 1.0, 1, beta=20.0, gamma=79.0, delta1=1.0)),
    ("sgd nonconvex constant alpha > 1/L",
     lambda: th.sgd_nonconvex_bound(T, L, 1.0, 1, 1.0, alpha=0.3, form="constant"),
     "alpha <= 1/L", lambda: th.sgd_nonconvex_bound(T, L, 1.0, 1, 1.0, 0.25, "constant")),
    ("sgd nonconvex schedule alpha_t >= 2/L",
     lambda: th.sgd_nonconvex_bound(T, L, 1.0, 1, 1.0, alpha=np.r_[0.1, 0.6, np.full(30, .1)]),
     "alpha_1=0.6", lambda: th.sgd_nonconvex_bound(T, L, 1.0, 1, 1.0, alpha=np.full(30, 0.4))),
    ("svrg eta >= 1/(4L)", lambda: th.svrg_rate(L, MU, 0.0625, 10**5),
     "eta < 1/(4L)", lambda: th.svrg_rate(L, MU, 0.025, 10**5)),
    ("svrg rho >= 1", lambda: th.svrg_rate(L, MU, 0.025, 100),
     "rho", lambda: th.svrg_rate(L, MU, 0.025, 10**4)),
    ("svrg bound eta >= 1/(4L)", lambda: th.svrg_bound(T, L, MU, 0.07, 10**5, 1.0),
     "eta < 1/(4L)", lambda: th.svrg_bound(T, L, MU, 0.025, 10**5, 1.0)),
    ("sgd stationary unstable", lambda: th.sgd_stationary_quadratic(LAM, 0.5, 0.1),
     "unstable", lambda: th.sgd_stationary_quadratic(LAM, 0.49, 0.1)),
    ("sgd stationary dist2 random walk",
     lambda: th.sgd_stationary_quadratic([0.0, 1.0], 0.5, 0.1, "dist2"),
     "lambda=0", lambda: th.sgd_stationary_quadratic([0.0, 1.0], 0.5, 0.1, "f_gap")),
    ("hb stationary beta >= 1", lambda: th.heavy_ball_stationary_quadratic(LAM, 0.1, 1.0, 0.1),
     "beta=1", lambda: th.heavy_ball_stationary_quadratic(LAM, 0.1, 0.99, 0.1)),
    ("hb stationary unstable", lambda: th.heavy_ball_stationary_quadratic(LAM, 0.8, 0.5, 0.1),
     "2(1+beta)", lambda: th.heavy_ball_stationary_quadratic(LAM, 0.7, 0.5, 0.1)),
    ("averaged asymptotic lambda = 0",
     lambda: th.averaged_sgd_asymptotic(T + 1, [0.0, 1.0], 0.1),
     "eigenvalue is 0", lambda: th.averaged_sgd_asymptotic(T + 1, [0.5, 1.0], 0.1)),
    ("precond rate singular A",
     lambda: th.precond_gd(np.diag([0.0, 1.0]), np.eye(2)).rate_curve(T, 0.5, 1.0),
     "lambda_min(RA)=0",
     lambda: th.precond_gd(np.diag([0.5, 1.0]), np.eye(2)).rate_curve(T, 0.5, 1.0)),
    ("precond rate alpha >= 2/lambda_max",
     lambda: th.precond_gd(np.diag([0.5, 1.0]), np.eye(2)).rate_curve(T, 2.0, 1.0),
     "2/lambda_max(RA)",
     lambda: th.precond_gd(np.diag([0.5, 1.0]), np.eye(2)).rate_curve(T, 1.9, 1.0)),
]


@pytest.mark.parametrize(("outside", "fragment", "inside"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_outside_conditions_is_flagged(outside, fragment, inside) -> None:
    _assert_flagged(outside(), fragment)
    _assert_applicable(inside())


def test_boundary_alpha_equal_to_one_over_L_is_inside() -> None:
    """Non-strict conditions accept alpha = 1/L computed in floating point."""
    for Lv in (3.0, 7.0, 0.3, 1e-3):
        a = 1.0 / Lv
        assert th.sgd_pl_constant_bound(T, Lv, Lv / 10, a, 1.0, 1, 1.0).applicable
        assert th.gd_nonconvex_bound(T, Lv, a, 1.0, form="tight").applicable
        assert th.gd_pl_bound(T, Lv, Lv / 10, a, 1.0, form="sharp").applicable
        assert th.noise_floor_bound(a, 1.0, Lv, Lv / 10, 1).applicable


# (call, name of the offending parameter)
INVALID: list[tuple[Callable, str]] = [
    (lambda: th.gd_pl_bound(T, 0.0, 0.1, 0.1, 1.0), "L"),
    (lambda: th.gd_pl_bound(T, -1.0, 0.1, 0.1, 1.0), "L"),
    (lambda: th.gd_pl_bound(T, math.nan, 0.1, 0.1, 1.0), "L"),
    (lambda: th.gd_pl_bound(T, 1.0, 2.0, 0.1, 1.0), "mu"),
    (lambda: th.gd_pl_bound(T, 1.0, 0.0, 0.1, 1.0), "mu"),
    (lambda: th.gd_pl_bound(T, 1.0, 0.1, -0.1, 1.0), "alpha"),
    (lambda: th.gd_pl_bound(T, 1.0, 0.1, 0.1, -1.0), "delta0"),
    (lambda: th.gd_pl_bound([-1, 2], 1.0, 0.1, 0.1, 1.0), "t"),
    (lambda: th.gd_pl_bound(T, 1.0, 0.1, 0.1, 1.0, form="fast"), "form"),
    (lambda: th.gd_contraction_factor(1.0, math.inf, 0.1), "mu"),
    (lambda: th.sgd_pl_constant_bound(T, 1.0, 0.1, 0.1, -1.0, 1, 1.0), "sigma2"),
    (lambda: th.sgd_pl_constant_bound(T, 1.0, 0.1, 0.1, 1.0, 0, 1.0), "B"),
    (lambda: th.heavy_ball_quadratic(T, 1.0, 0.1, 0.1, math.nan), "beta"),
    (lambda: th.heavy_ball_asymptotic_rate(1.0, 0.1, 0.0, 0.5), "alpha"),
    (lambda: th.nesterov_bound(T, 1.0, 0.1, math.nan), "delta0"),
    (lambda: th.sgd_exact_quadratic(T, [-1.0, 1.0], 0.1, 0.1, 1.0), "eigenvalues"),
    (lambda: th.sgd_exact_quadratic(T, [1.0, 1.0], 0.0, 0.1, 1.0), "alpha"),
    (lambda: th.sgd_exact_quadratic([0.5], [1.0], 0.1, 0.1, 1.0), "t"),
    (lambda: th.sgd_exact_quadratic(T, [1.0], 0.1, -0.1, 1.0), "noise_var"),
    (lambda: th.averaged_sgd_exact([0, 1], [1.0], 0.1, 0.1, 1.0), "T"),
    (lambda: th.heavy_ball_exact_quadratic(T, [1.0], 0.1, 0.5, 0.1, -1.0), "m0"),
    (lambda: th.sgd_diminishing_bound([0, 1], 1.0, 0.1, 1.0, 1, 20.0, 5.0, 1.0), "t"),
    (lambda: th.without_replacement_sigma2(1.0, 11, 10), "B"),
    (lambda: th.svrg_rate(0.0, 0.1, 0.01, 10), "L"),
    (lambda: th.svrg_rate(1.0, 0.1, 0.0, 10), "eta"),
    (lambda: th.svrg_rate(1.0, 0.1, 0.01, 0), "m"),
    (lambda: th.svrg_rate(1.0, 0.1, 0.01, 2.5), "m"),
    (lambda: th.svrg_bound([-1], 1.0, 0.1, 0.01, 10, 1.0), "s"),
    (lambda: th.noise_scale([[1.0, 0.0], [0.0, -1.0]], 1.0, [1.0, 1.0]), "H"),
    (lambda: th.noise_scale([[1.0, 2.0], [0.0, 1.0]], 1.0, [1.0, 1.0]), "H"),
    (lambda: th.noise_scale([1.0, 1.0, 1.0], 1.0, [1.0, 1.0]), "H"),
    (lambda: th.noise_scale([1.0, 1.0], np.eye(3), [1.0, 1.0]), "Sigma"),
    (lambda: th.noise_scale([1.0, 1.0], -1.0, [1.0, 1.0]), "Sigma"),
    (lambda: th.noise_scale([1.0, 1.0], 1.0, [1.0, math.nan]), "G"),
    (lambda: th.noise_scale([1.0], 1.0, [1.0]).eps_opt(0.0), "B"),
    (lambda: th.steps_examples_tradeoff(0.0, 1.0, 1.0), "B"),
    (lambda: th.steps_examples_tradeoff(1.0, -1.0, 1.0), "S_min"),
    (lambda: th.step_inverse_L(0.0), "L"),
    (lambda: th.step_optimal_gd(1.0, 2.0), "mu"),
    (lambda: th.heavy_ball_polyak_params(math.inf, 1.0), "L"),
    (lambda: th.nesterov_params(1.0, -1.0), "mu"),
    (lambda: th.heavy_ball_safe_params(1.0, 0.5, 1.5), "alpha"),
    (lambda: th.gd_iterations_to_eps(0.5, 10.0), "kappa"),
    (lambda: th.gd_iterations_to_eps(2.0, 0.0), "ratio"),
    (lambda: th.nesterov_iterations_to_eps(2.0, 10.0, form="exact"), "form"),
    (lambda: th.heavy_ball_iterations_to_eps(math.nan, 10.0), "kappa"),
    (lambda: th.gd_optimal_iterations_to_eps(2.0, -3.0), "ratio"),
    (lambda: th.sgd_iterations_to_eps(1.0, 0.1, 1.0, 1, 1.0, 0.0), "eps"),
    (lambda: th.sgd_iterations_to_eps(1.0, 0.1, 1.0, 1, -1.0, 0.1), "delta0"),
    (lambda: th.precond_gd(np.array([[1.0, 2.0], [0.0, 1.0]]), np.eye(2)), "A"),
    (lambda: th.precond_gd(np.eye(2), -np.eye(2)), "R"),
    (lambda: th.pl_constant_1d(np.square, lambda x: 2 * x, math.nan, 0.0, [1, 2, 3]), "x_star"),
]


@pytest.mark.parametrize(("call", "name"), INVALID, ids=[f"{i}-{n}" for i, (_, n) in
                                                         enumerate(INVALID)])
def test_invalid_input_raises_naming_the_parameter(call, name: str) -> None:
    with pytest.raises(ValueError) as info:
        call()
    msg = str(info.value)
    assert "\n" not in msg
    assert msg.startswith(name) and not msg[len(name)].isalnum(), msg
