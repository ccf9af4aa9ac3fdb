"""Nesterov's accelerated gradient ``y_t = x_t + beta (x_t - x_{t-1})``,
``x_{t+1} = y_t - alpha grad f(y_t)``, ``x_{-1} = x_0`` (THEORY.md 2.3)."""

from __future__ import annotations

import math

import numpy as np

from ._coords import broadcast_coords
from ._curves import exact_curve, geometric_bound_curve
from ._exact_inputs import quantity_weights
from ._recurrence import dd_add, dd_mul, dd_neg, second_moment_path, two_prod, two_sum
from .conditions import (
    Conditions,
    Curve,
    check_choice,
    check_L_mu,
    check_nonnegative,
    check_positive,
    check_real,
    check_steps,
    check_vector,
    fmt,
    make_curve,
)
from .momentum import _root_radius

__all__ = [
    "first_order_lower_bound",
    "nesterov_bound",
    "nesterov_convex_bound",
    "nesterov_exact_quadratic",
    "nesterov_spectral_radius",
]

_SRC_EXACT = "THEORY.md 2.3 (exact 2x2 recurrence on a quadratic)"
_SRC_BOUND = "THEORY.md 2.3; Nesterov 2004; d'Aspremont-Scieur-Taylor 2021, Cor 4.15"


def _nesterov_beta(L: float, mu: float) -> float:
    s = math.sqrt(L / mu)
    return (s - 1.0) / (s + 1.0)


def nesterov_bound(
    t: np.ndarray | float,
    L: float,
    mu: float,
    delta0: float,
    e0_sq: float | None = None,
    alpha: float | None = None,
    beta: float | None = None,
) -> Curve:
    """Nesterov's guarantee on every mu-strongly convex L-smooth ``f``.

    ``Delta_t <= (1 - 1/sqrt(kappa))^t (Delta_0 + mu/2 ||e_0||^2)``; without ``e0_sq`` the
    weaker ``Delta_t <= 2 (1 - 1/sqrt(kappa))^t Delta_0`` is returned. For the method with
    ``alpha = 1/L`` and ``beta = (sqrt(kappa)-1)/(sqrt(kappa)+1)`` only: when ``alpha`` or
    ``beta`` are given and differ (relative 1e-9) from these, ``applicable=False``. Loose: on
    quadratics the spectral radius is ``1 - 1/sqrt(kappa)`` so ``Delta`` decays like its square
    (:func:`nesterov_spectral_radius`).

    Source: THEORY.md 2.3; Nesterov 2004; d'Aspremont-Scieur-Taylor 2021, Cor 4.15.
    """
    t = check_steps(t)
    L, mu = check_L_mu(L, mu)
    delta0 = check_nonnegative("delta0", delta0)
    if e0_sq is not None:
        e0_sq = check_nonnegative("e0_sq", e0_sq)
    cond = Conditions()
    if alpha is not None:
        alpha = check_positive("alpha", alpha)
        cond.require(
            abs(alpha * L - 1.0) <= 1e-9,
            f"alpha={fmt(alpha)} != 1/L={fmt(1 / L)}: Nesterov bound requires alpha = 1/L",
        )
    if beta is not None:
        beta = check_real("beta", beta)
        nb = _nesterov_beta(L, mu)
        cond.require(
            abs(beta - nb) <= 1e-9 * max(1.0, nb),
            f"beta={fmt(beta)} != (sqrt(kappa)-1)/(sqrt(kappa)+1)={fmt(nb)}: Nesterov bound "
            "requires that beta",
        )
    c = 1.0 - 1.0 / math.sqrt(L / mu)
    start = 2.0 * delta0 if e0_sq is None else delta0 + 0.5 * mu * e0_sq
    return geometric_bound_curve(t, cond, start, c, source=_SRC_BOUND, measure="f(x_t) - f*")


def nesterov_spectral_radius(
    L: float, mu: float, alpha: float | None = None, beta: float | None = None
) -> float:
    """Worst spectral radius of Nesterov's iteration over quadratics with spectrum in [mu, L].

    Per eigenvalue, with ``q = 1 - alpha lambda``: ``x_{t+1} = (1+beta) q x_t - beta q x_{t-1}``;
    the root modulus grows with ``|q|`` so the maximum over ``[mu, L]`` is at an endpoint.
    Defaults ``alpha = 1/L``, ``beta = (sqrt(kappa)-1)/(sqrt(kappa)+1)`` give exactly
    ``1 - 1/sqrt(kappa)`` (double root at ``lambda = mu``). A fact for any parameters.

    Source: THEORY.md 2.3.
    """
    L, mu = check_L_mu(L, mu)
    alpha = 1.0 / L if alpha is None else check_positive("alpha", alpha)
    beta = _nesterov_beta(L, mu) if beta is None else check_real("beta", beta)
    lam = np.array([mu, L])
    q = 1.0 - alpha * lam
    a, b = (1.0 + beta) * q, beta * q
    eps = np.finfo(float).eps
    err_q = eps * (1.0 + alpha * lam)  # rounding of 1 - alpha lambda
    err_a = eps * np.abs(a) + (1.0 + abs(beta)) * err_q
    err_b = eps * np.abs(b) + abs(beta) * err_q
    return float(_root_radius(a, b, err_a, err_b).max())


def nesterov_exact_quadratic(
    t: np.ndarray | int,
    eigenvalues: np.ndarray,
    alpha: float,
    beta: float,
    e0: np.ndarray,
    quantity: str = "f_gap",
) -> Curve:
    """Exact Nesterov curve on ``f = 1/2 sum_i lambda_i e_i^2 + f*`` (measured at ``x_t``).

    Per coordinate the 2x2 recurrence ``x_{t+1} = (1+beta) q x_t - beta q x_{t-1}``,
    ``q = 1 - alpha lambda``, ``x_{-1} = x_0 = e_{0,i}``, evaluated by binary powering in
    double-double arithmetic with the coefficients formed in double-double (O(d n_steps
    log T)); float64 powering would lose up to ~1e-5 relative near the double root at ``mu``
    (``kappa = 1e4``, ``t ~ 3000``), this is float64-accurate (~1e-13). ``Delta_t = 1/2 sum lambda_i
    x_{t,i}^2`` or ``||e_t||^2 = sum x_{t,i}^2``. Always ``applicable`` (identity); unstable
    parameters give growing values (inf on overflow). ``rate``: the largest squared spectral
    radius among contributing coordinates.

    Source: THEORY.md 2.3.
    """
    quantity = check_choice("quantity", quantity, ("f_gap", "dist2"))
    t = check_steps(t, integer=True)
    lam = check_vector("eigenvalues", eigenvalues, low=0.0)
    alpha = check_positive("alpha", alpha)
    beta = check_real("beta", beta)
    e0 = check_vector("e0", e0)
    lam, e0 = broadcast_coords(eigenvalues=lam, e0=e0)
    q = 1.0 - alpha * lam
    a, b = (1.0 + beta) * q, beta * q
    w = quantity_weights(lam, quantity)
    q_dd = dd_add((np.ones_like(lam), np.zeros_like(lam)), dd_neg(two_prod(np.float64(alpha), lam)))
    a_dd = dd_mul(two_sum(np.float64(1.0), np.float64(beta)), q_dd)
    b_dd = dd_mul((np.float64(beta), np.float64(0.0)), q_dd)
    values = second_moment_path(a_dd, b_dd, e0 * e0, np.zeros_like(lam), t, w)
    active = (w * e0 * e0) > 0
    eps = np.finfo(float).eps
    err_q = eps * (1.0 + alpha * lam)
    radius = _root_radius(
        a, b, eps * np.abs(a) + (1.0 + abs(beta)) * err_q, eps * np.abs(b) + abs(beta) * err_q
    )
    rate = float(radius[active].max() ** 2) if active.any() else 0.0
    if rate < 1.0:
        floor = 0.0
    elif rate > 1.0:
        floor = np.inf
    else:  # radius 1: constant only for lambda = 0 (x_t = x_0); otherwise no limit
        ones = active & (radius >= 1.0)
        floor = float((w * e0 * e0)[ones].sum()) if np.all(lam[ones] == 0) else np.nan
    measure = "f(x_t) - f*" if quantity == "f_gap" else "||x_t - w*||^2"
    return exact_curve(t.shape, values, source=_SRC_EXACT, quantity=quantity, measure=measure,
                       rate=rate, floor=floor)


def nesterov_convex_bound(t: np.ndarray | float, L: float, e0_sq: float) -> Curve:
    """FISTA-momentum bound on convex L-smooth ``f``: ``Delta_t <= 2 L ||e_0||^2 / (t+1)^2``.

    Applies to Nesterov's method with the FISTA momentum sequence and step ``1/L`` (the
    caller's responsibility: there is no parameter to check). Not tight.

    Source: THEORY.md 2.3; Beck-Teboulle 2009.
    """
    t = check_steps(t)
    L = check_positive("L", L)
    e0_sq = check_nonnegative("e0_sq", e0_sq)
    return make_curve(
        t.shape,
        Conditions(),
        lambda: 2.0 * L * e0_sq / (t + 1.0) ** 2,
        tight=False,
        source="THEORY.md 2.3; Beck-Teboulle 2009",
        quantity="f_gap",
        measure="f(x_t) - f*",
        floor=0.0,
    )


def first_order_lower_bound(t: np.ndarray | float, L: float, mu: float, e0_sq: float) -> Curve:
    """Lower bound for any first-order method on mu-strongly convex L-smooth functions.

    ``||e_t||^2 >= ((sqrt(kappa)-1)/(sqrt(kappa)+1))^{2t} ||e_0||^2`` (the worst function in
    the class, dimension large enough). ``kind="lower_bound"``; tight up to constants.

    Source: THEORY.md 2.3; Nesterov 2004, Thm 2.1.13.
    """
    t = check_steps(t)
    L, mu = check_L_mu(L, mu)
    e0_sq = check_nonnegative("e0_sq", e0_sq)
    c = _nesterov_beta(L, mu) ** 2
    return make_curve(
        t.shape,
        Conditions(),
        lambda: e0_sq * np.power(c, t),
        tight=True,
        source="THEORY.md 2.3; Nesterov 2004, Thm 2.1.13",
        quantity="dist2",
        kind="lower_bound",
        measure="||x_t - w*||^2",
        rate=c,
        floor=0.0,
    )
