"""Heavy-ball momentum ``w_{t+1} = w_t - alpha grad f(w_t) + beta (w_t - w_{t-1})``,
``w_{-1} = w_0`` (THEORY.md 2.1 and the safe choice of 2.2)."""

from __future__ import annotations

import numpy as np

from ._curves import geometric_bound_curve
from ._recurrence import DD, dd_add, dd_neg, two_prod, two_sum, two_term_at, two_term_at_float
from .conditions import (
    Conditions,
    Curve,
    Scalar,
    check_choice,
    check_int,
    check_L_mu,
    check_nonnegative,
    check_positive,
    check_real,
    check_steps,
    check_vector,
    fmt,
    leq,
    make_curve,
    make_scalar,
)

__all__ = [
    "heavy_ball_asymptotic_rate",
    "heavy_ball_is_stable",
    "heavy_ball_polynomial",
    "heavy_ball_quadratic",
    "heavy_ball_safe_bound",
    "heavy_ball_spectral_radius",
    "two_term_spectral_radius",
]

_SRC_HB = "THEORY.md 2.1; Polyak 1964"
_SRC_SAFE = "THEORY.md 2.2; Ghadimi-Feyzmahdavian-Johansson 2015"


def _root_radius(
    a: np.ndarray | float,
    b: np.ndarray | float,
    err_a: np.ndarray | float | None = None,
    err_b: np.ndarray | float | None = None,
) -> np.ndarray:
    """Largest root modulus of ``r^2 - a r + b``, given the rounding errors of ``a`` and ``b``.

    A discriminant ``a^2 - 4b`` within its propagated rounding error
    (``2 (2|a| err_a + 4 err_b) + 4 eps (a^2 + 4|b|)``) is taken as 0: a double root (Polyak's
    and Nesterov's tuned parameters put one at the ends of ``[mu, L]``) then gives ``|a|/2``
    instead of an error of order ``sqrt(eps)`` from the square root of the rounding. Default
    errors: ``eps |a|`` and ``eps |b|`` (inputs exact up to their last bit).
    """
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    eps = np.finfo(float).eps
    err_a = eps * np.abs(a) if err_a is None else np.asarray(err_a, dtype=float)
    err_b = eps * np.abs(b) if err_b is None else np.asarray(err_b, dtype=float)
    disc = a * a - 4.0 * b
    fuzz = 2.0 * (2.0 * np.abs(a) * err_a + 4.0 * err_b) + 4.0 * eps * (a * a + 4.0 * np.abs(b))
    disc = np.where(np.abs(disc) <= fuzz, 0.0, disc)
    with np.errstate(invalid="ignore"):
        real = 0.5 * (np.abs(a) + np.sqrt(np.maximum(disc, 0.0)))
        cplx = np.sqrt(np.maximum(b, 0.0))
    return np.where(disc < 0, cplx, real)


def _hb_radius(lam: np.ndarray, alpha: float, beta: float) -> np.ndarray:
    """Heavy ball's root modulus per eigenvalue, with the rounding of ``1 + beta - alpha lam``."""
    lam = np.asarray(lam, dtype=float)
    eps = np.finfo(float).eps
    err_a = eps * (1.0 + abs(beta) + alpha * lam)
    return _root_radius(1.0 + beta - alpha * lam, beta, err_a, eps * abs(beta))


def _hb_coefficient(lam: np.ndarray, alpha: float | np.ndarray, beta: float) -> DD:
    """``a = 1 + beta - alpha lam`` in double-double (exact up to 2^-104 relative): rounding
    ``a`` to float64 moves a double root by ~sqrt(eps) and the curve by ~t^2 eps."""
    lam = np.asarray(lam, dtype=float)
    h = two_prod(np.asarray(alpha, dtype=float), lam)
    one_plus_beta = two_sum(np.float64(1.0), np.float64(beta))
    return dd_add(one_plus_beta, dd_neg(h))


def two_term_spectral_radius(a: np.ndarray | float, b: np.ndarray | float) -> np.ndarray:
    """Largest root modulus of ``r^2 - a r + b = 0`` (elementwise).

    This is the spectral radius of the companion matrix ``[[a, -b], [1, 0]]`` of
    ``x_{t+1} = a x_t - b x_{t-1}``: ``sqrt(b)`` for complex roots, else
    ``(|a| + sqrt(a^2 - 4b)) / 2``. A discriminant within the rounding error of its
    computation is taken as 0 (a double root gives ``|a|/2`` rather than an ``O(sqrt(eps))``
    error).
    """
    return _root_radius(a, b)


def heavy_ball_spectral_radius(
    lam: np.ndarray | float, alpha: float, beta: float
) -> np.ndarray:
    """Spectral radius of heavy ball's 2x2 matrix ``M = [[1+beta-alpha lam, -beta], [1, 0]]``.

    Per eigenvalue ``lam``: the roots solve ``r^2 - (1 + beta - alpha lam) r + beta = 0``;
    complex roots have ``|r| = sqrt(beta)``. A fact for any parameters (``> 1`` when unstable).

    Source: THEORY.md 2.1; Polyak 1964.

    Raises
    ------
    ValueError
        ``lam < 0``, ``alpha <= 0`` or non-finite ``beta``.
    """
    lam = check_vector("lam", lam, low=0.0)
    alpha = check_positive("alpha", alpha)
    beta = check_real("beta", beta)
    return _hb_radius(lam, alpha, beta)


def heavy_ball_is_stable(L: float, mu: float, alpha: float, beta: float) -> bool:
    """True iff heavy ball is stable on every quadratic with spectrum in ``[mu, L]``:
    ``|beta| < 1`` and ``0 < alpha lambda < 2 (1 + beta)`` for all ``lambda in [mu, L]``."""
    L, mu = check_L_mu(L, mu)
    alpha = check_positive("alpha", alpha)
    beta = check_real("beta", beta)
    return abs(beta) < 1.0 and alpha * L < 2.0 * (1.0 + beta)


def _stability_conditions(cond: Conditions, L: float, alpha: float, beta: float) -> None:
    cond.require(abs(beta) < 1.0, f"beta={fmt(beta)} outside (-1, 1): heavy ball is unstable")
    cond.require(
        alpha * L < 2.0 * (1.0 + beta),
        f"alpha*L={fmt(alpha * L)} >= 2(1+beta)={fmt(2 * (1 + beta))}: heavy ball is unstable "
        "(needs 0 < alpha*lambda < 2(1+beta) on [mu, L])",
    )


def heavy_ball_asymptotic_rate(L: float, mu: float, alpha: float, beta: float) -> Scalar:
    """Asymptotic per-step rate of ``||e_t||`` for heavy ball on quadratics, spectrum in [mu, L].

    ``max_{lambda in [mu, L]} rho(M(lambda))``; the maximum of the root modulus is at an
    endpoint (it increases with ``|1 + beta - alpha lambda|``). With Polyak's parameters it is
    ``sqrt(beta) = (sqrt(kappa)-1)/(sqrt(kappa)+1)``. Asymptotic only: ``||e_t|| <= C (t+1)
    rho^t ||e_0||`` (THEORY.md 6.3), quadratics only (no guarantee on strongly convex ``f``,
    THEORY.md 2.2). Tight (attained by quadratics).

    Conditions: stability, ``|beta| < 1`` and ``alpha L < 2 (1 + beta)``; otherwise
    ``applicable=False``.

    Source: THEORY.md 2.1; Polyak 1964.
    """
    L, mu = check_L_mu(L, mu)
    alpha = check_positive("alpha", alpha)
    beta = check_real("beta", beta)
    cond = Conditions()
    _stability_conditions(cond, L, alpha, beta)
    ends = np.array([mu, L])
    return make_scalar(
        cond,
        lambda: float(_hb_radius(ends, alpha, beta).max()),
        tight=True,
        source=_SRC_HB,
    )


def heavy_ball_polynomial(
    t: np.ndarray | int, lam: np.ndarray | float, alpha: float, beta: float
) -> np.ndarray:
    """Heavy ball's residual polynomial ``p_t(lambda)`` with ``e_t = p_t(lambda) e_0``.

    ``p_{t+1} = (1 + beta - alpha lambda) p_t - beta p_{t-1}``, ``p_0 = p_{-1} = 1``
    (``w_{-1} = w_0``). ``t`` and ``lam`` broadcast. Exact (binary powering of the 2x2 matrix
    in double-double arithmetic, O(size log t), float64-accurate also at double roots);
    overflow gives inf/NaN for unstable parameters.

    Source: THEORY.md 2.1.
    """
    t = check_steps(t, integer=True)
    lam = np.asarray(lam, dtype=float)
    if not np.all(np.isfinite(lam)) or (lam.size and lam.min() < 0):
        raise ValueError("lam contains negative or non-finite values: allowed [0, inf)")
    alpha = check_positive("alpha", alpha)
    beta = check_real("beta", beta)
    return two_term_at(_hb_coefficient(lam, alpha, beta), beta, t)


def heavy_ball_quadratic(
    t: np.ndarray | int,
    L: float,
    mu: float,
    alpha: float,
    beta: float,
    initial: float = 1.0,
    quantity: str = "dist2",
    n_grid: int = 1025,
) -> Curve:
    """Tight worst case of heavy ball over quadratics with spectrum in ``[mu, L]``.

    ``sup ||e_t||^2 / ||e_0||^2 = sup Delta_t / Delta_0 = max_{lambda in [mu, L]} p_t(lambda)^2``
    with ``p_t`` from :func:`heavy_ball_polynomial`. Values are ``initial * max p_t^2`` where
    ``initial`` is ``||e_0||^2`` (``quantity="dist2"``) or ``Delta_0`` (``"f_gap"``).

    The maximum is taken on a uniform grid of ``n_grid`` points including both endpoints,
    then refined on 129 points between the neighbours of the best grid point (so the sup
    is matched to high relative accuracy unless ``t`` is comparable to ``64 * n_grid``).
    The search uses float64 powering; the value at the maximiser found is then evaluated
    exactly (:func:`heavy_ball_polynomial`).

    Valid for all parameters (it is an identity over the class), so always ``applicable``;
    when unstable the values grow. ``rate`` = squared :func:`heavy_ball_asymptotic_rate`
    (the maximum spectral radius, squared, whatever the stability); ``floor`` is 0 when stable,
    inf otherwise. ``extras``: ``argmax_eigenvalue`` (array like ``t``: a maximising lambda) and
    ``stable`` (bool).

    Source: THEORY.md 2.1 (tight worst case); Polyak 1964.

    Raises
    ------
    ValueError
        Invalid constants, ``alpha <= 0``, non-finite ``beta``, ``initial < 0``, ``n_grid < 2``.
    """
    quantity = check_choice("quantity", quantity, ("dist2", "f_gap"))
    t = check_steps(t, integer=True)
    L, mu = check_L_mu(L, mu)
    alpha = check_positive("alpha", alpha)
    beta = check_real("beta", beta)
    initial = check_nonnegative("initial", initial)
    n_grid = check_int("n_grid", n_grid, low=2)
    flat = np.unique(t.ravel())
    best, arg = _worst_case(flat, mu, L, alpha, beta, n_grid)
    idx = np.searchsorted(flat, t.ravel())
    values = (initial * best[idx]).reshape(t.shape) if flat.size else np.zeros(t.shape)
    argmax = arg[idx].reshape(t.shape) if flat.size else np.zeros(t.shape)
    rho = float(_hb_radius(np.array([mu, L]), alpha, beta).max())
    stable = abs(beta) < 1.0 and alpha * L < 2.0 * (1.0 + beta)
    return make_curve(
        t.shape,
        Conditions(),
        lambda: values,
        tight=True,
        source=_SRC_HB + " (tight worst case over quadratics)",
        quantity=quantity,
        kind="worst_case",
        measure=(
            "sup over quadratics with spectrum in [mu, L] of "
            + ("||w_t - w*||^2" if quantity == "dist2" else "f(w_t) - f*")
        ),
        rate=rho * rho,
        floor=0.0 if stable else np.inf,
        extras={"argmax_eigenvalue": argmax, "stable": stable},
    )


def _worst_case(
    steps: np.ndarray, mu: float, L: float, alpha: float, beta: float, n_grid: int
) -> tuple[np.ndarray, np.ndarray]:
    if steps.size == 0:
        return np.zeros(0), np.zeros(0)
    grid = np.linspace(mu, L, n_grid)
    grid[0], grid[-1] = mu, L
    best = np.empty(steps.size)
    arg = np.empty(steps.size)
    rows = max(1, (1 << 20) // n_grid)
    local = np.linspace(0.0, 1.0, 129)
    with np.errstate(over="ignore", invalid="ignore"):
        for s in range(0, steps.size, rows):
            tt = steps[s : s + rows, None]
            p2 = two_term_at_float(1.0 + beta - alpha * grid[None, :], beta, tt) ** 2
            p2 = np.where(np.isnan(p2), np.inf, p2)
            k = np.argmax(p2, axis=1)
            lo = grid[np.maximum(k - 1, 0)]
            hi = grid[np.minimum(k + 1, n_grid - 1)]
            lam = lo[:, None] + (hi - lo)[:, None] * local[None, :]
            q2 = two_term_at_float(1.0 + beta - alpha * lam, beta, tt) ** 2
            q2 = np.where(np.isnan(q2), np.inf, q2)
            kk = np.argmax(q2, axis=1)
            rows_idx = np.arange(tt.shape[0])
            g_best = p2[rows_idx, k]
            l_best = q2[rows_idx, kk]
            use_local = l_best > g_best
            found = np.where(use_local, lam[rows_idx, kk], grid[k])
            value = two_term_at(_hb_coefficient(found, alpha, beta), beta, tt[:, 0]) ** 2
            best[s : s + rows] = np.where(np.isnan(value), np.inf, value)
            arg[s : s + rows] = found
    return best, arg


def heavy_ball_safe_bound(
    t: np.ndarray | float,
    L: float,
    mu: float,
    alpha: float,
    beta: float,
    delta0: float,
) -> Curve:
    """Guarantee for heavy ball on every mu-strongly convex L-smooth ``f`` with the safe pair.

    ``Delta_t <= (1 - alpha mu)^t Delta_0`` for ``alpha in (0, 1/L]`` and
    ``beta = sqrt((1 - alpha mu)(1 - alpha L))`` (see :func:`theory.heavy_ball_safe_params`).
    Outside that pair (``beta`` differing by more than 1e-9 relative) ``applicable=False``.
    Not tight (no acceleration).

    Source: THEORY.md 2.2; Ghadimi-Feyzmahdavian-Johansson 2015.
    """
    t = check_steps(t)
    L, mu = check_L_mu(L, mu)
    alpha = check_positive("alpha", alpha)
    beta = check_real("beta", beta)
    delta0 = check_nonnegative("delta0", delta0)
    cond = Conditions()
    ok_alpha = cond.require(
        leq(alpha * L, 1.0),
        f"alpha={fmt(alpha)} > 1/L={fmt(1 / L)}: safe heavy-ball bound requires alpha <= 1/L",
    )
    if ok_alpha:
        safe = float(np.sqrt(max(0.0, (1 - alpha * mu) * (1 - alpha * L))))
        cond.require(
            abs(beta - safe) <= 1e-9 * max(1.0, safe),
            f"beta={fmt(beta)} != sqrt((1-alpha mu)(1-alpha L))={fmt(safe)}: safe heavy-ball "
            "bound requires that beta",
        )
    c = max(1.0 - alpha * mu, 0.0)  # >= 0 exactly for alpha <= 1/L; clamp the rounding
    return geometric_bound_curve(t, cond, delta0, c, source=_SRC_SAFE, measure="f(w_t) - f*")
