"""Exact expected heavy-ball dynamics on a diagonal quadratic with additive noise
(THEORY.md 4.5; with zero noise, the exact deterministic heavy-ball curve of 2.1)."""

from __future__ import annotations

import numpy as np

from ._curves import exact_curve, expected_measure
from ._exact_inputs import check_noisy_coords, quantity_weights, require_no_random_walk
from ._recurrence import second_moment_path
from .conditions import (
    Conditions,
    Curve,
    Scalar,
    check_choice,
    check_steps,
    fmt,
    make_scalar,
)
from .momentum import _hb_coefficient, _root_radius

__all__ = ["heavy_ball_exact_quadratic", "heavy_ball_stationary_quadratic"]

_SRC = "THEORY.md 4.5 (exact 2x2 covariance recursion); cf. Zhang et al. 2019"


def _inputs(eigenvalues, alpha, beta, noise_var, m0):
    return check_noisy_coords(eigenvalues, alpha, noise_var, m0, beta=beta)


def _stationary_per_coordinate(lam, a, beta, s2):
    """``E x_inf^2 = alpha s^2 (1+beta) / (lambda (1-beta) (2(1+beta) - alpha lambda))``."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return a * s2 * (1 + beta) / (lam * (1 - beta) * (2 * (1 + beta) - a * lam))


def heavy_ball_exact_quadratic(
    t: np.ndarray | int,
    eigenvalues: np.ndarray,
    alpha: float | np.ndarray,
    beta: float,
    noise_var: float | np.ndarray,
    m0: float | np.ndarray,
    quantity: str = "f_gap",
) -> Curve:
    """Exact ``E Delta_t`` or ``E||e_t||^2`` of heavy ball with noisy gradients on a quadratic.

    Per coordinate (``x_t = e_{t,i}``, ``a = 1 + beta - alpha lambda``):
    ``x_{t+1} = a x_t - beta x_{t-1} - alpha xi_t``; ``z_t = (x_t, x_{t-1})``,
    ``Sigma_t = E z_t z_t^T`` obeys ``Sigma_{t+1} = M Sigma_t M^T + alpha^2 s^2 e_1 e_1^T``
    from ``Sigma_0 = m_0 1 1^T`` (``w_{-1} = w_0``). It is evaluated by binary powering
    (precomputed ``M^{2^j}`` and their accumulated noise) in double-double arithmetic, with
    ``a`` itself formed in double-double, vectorised over coordinates x requested steps, in
    O(d n_steps log T_max) work, with no special case for double roots, ``lambda = 0`` or
    unstable parameters. Float64 powering would lose up to ~1e-5 relative near the double
    roots of Polyak's parameters (``kappa = 1e4``, ``t ~ 3000``); this is float64-accurate
    (~1e-13, tests/test_theory_momentum_accuracy.py). With ``noise_var = 0`` and
    ``m0 = e0**2`` this is the exact deterministic heavy-ball curve
    (``x_t = p_t(lambda) x_0``, THEORY.md 2.1).

    Parameters
    ----------
    t : array_like of int
        Steps ``>= 0``.
    eigenvalues : array_like (d,)
        ``lambda_i >= 0``.
    alpha : float or array_like (d,)
        Step(s) ``> 0``.
    beta : float
        Momentum.
    noise_var : float or array_like (d,)
        ``s_i^2 >= 0``, ``Cov xi = diag(s_i^2)``.
    m0 : float or array_like (d,)
        ``E e_{0,i}^2``.
    quantity : {"f_gap", "dist2"}

    Returns
    -------
    Curve
        ``kind="exact"``, always applicable (identity; divergence gives growing values/inf);
        ``floor``: limit as ``t -> inf`` (the stationary value when stable, inf when it
        diverges, NaN when it has no limit); ``rate``: largest squared spectral radius among
        contributing coordinates.

    Source: THEORY.md 4.5.
    """
    quantity = check_choice("quantity", quantity, ("f_gap", "dist2"))
    t = check_steps(t, integer=True)
    lam, a, beta, s2, m0 = _inputs(eigenvalues, alpha, beta, noise_var, m0)
    c = a * a * s2
    w = quantity_weights(lam, quantity)
    amat = 1.0 + beta - a * lam
    values = second_moment_path(_hb_coefficient(lam, a, beta), beta, m0, c, t, w)
    eps = np.finfo(float).eps
    radius = _root_radius(amat, beta, eps * (1.0 + abs(beta) + a * lam), eps * abs(beta))
    active = (w != 0) & ((m0 != 0) | (c != 0))
    rate = float(radius[active].max() ** 2) if active.any() else 0.0
    limit = np.full(lam.shape, np.nan)
    stable = (radius < 1.0) & (lam > 0)
    limit[stable] = np.where(c[stable] > 0, _stationary_per_coordinate(lam, a, beta, s2)[stable], 0)
    flat = (lam == 0) & (abs(beta) < 1)  # eigenvalues 1 and beta: x_t = x_0 + random walk
    limit[flat] = np.where(c[flat] > 0, np.inf, m0[flat])
    limit[radius > 1.0] = np.inf
    contrib = w * np.where(active, limit, 0.0)  # active implies w != 0
    floor = float(contrib.sum()) if not np.any(np.isnan(contrib)) else np.nan
    return exact_curve(t.shape, values, source=_SRC, quantity=quantity,
                       measure=expected_measure(quantity), rate=rate, floor=floor)


def heavy_ball_stationary_quadratic(
    eigenvalues: np.ndarray,
    alpha: float | np.ndarray,
    beta: float,
    noise_var: float | np.ndarray,
    quantity: str = "f_gap",
) -> Scalar:
    """Stationary value of noisy heavy ball on a diagonal quadratic (closed form).

    ``E x_inf^2 = alpha s^2 (1+beta) / (lambda (1-beta) (2(1+beta) - alpha lambda))`` per
    coordinate, ``E Delta_inf = sum_i alpha s_i^2 (1+beta) / (2 (1-beta) (2(1+beta) - alpha
    lambda_i))`` -- SGD's floor with effective step ``alpha/(1-beta)`` for small ``alpha``.
    It solves the Lyapunov equation ``Sigma = M Sigma M^T + alpha^2 s^2 e_1 e_1^T``.
    Conditions (stability as in 2.1): ``|beta| < 1`` and ``0 < alpha lambda_i < 2(1+beta)``
    for every contributing coordinate (``lambda_i = 0`` contributes 0 to ``Delta``; for
    ``dist2`` with noise it random-walks); else ``applicable=False``. Tight (exact).

    Source: THEORY.md 4.5; cf. Zhang et al. 2019.
    """
    quantity = check_choice("quantity", quantity, ("f_gap", "dist2"))
    lam, a, beta, s2, _ = _inputs(eigenvalues, alpha, beta, noise_var, 0.0)
    cond = Conditions()
    cond.require(abs(beta) < 1.0, f"beta={fmt(beta)} outside (-1, 1): heavy ball is unstable")
    h = a * lam
    pos = lam > 0
    bad = pos & (h >= 2 * (1 + beta))
    if bad.any():
        i = int(np.argmax(np.where(bad, h, -np.inf)))
        cond.require(
            False,
            f"alpha*lambda={fmt(h[i])} >= 2(1+beta)={fmt(2 * (1 + beta))} (coordinate {i}): "
            "heavy ball is unstable, no stationary value",
        )
    require_no_random_walk(cond, quantity, pos, s2)

    def compute() -> float:
        x2 = _stationary_per_coordinate(lam[pos], a[pos], beta, s2[pos])
        w = 0.5 * lam[pos] if quantity == "f_gap" else np.ones(int(pos.sum()))
        return float(np.sum(w * x2))

    return make_scalar(cond, compute, tight=True, source=_SRC)
