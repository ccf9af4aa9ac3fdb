"""SGD bounds under the additive noise model ``g = grad f + xi``, ``E||xi||^2 <= sigma^2/B``
(THEORY.md 4 preamble, 4.1-4.3)."""

from __future__ import annotations

import math

import numpy as np

from .conditions import (
    Conditions,
    Curve,
    Scalar,
    check_choice,
    check_int,
    check_L_mu,
    check_nonnegative,
    check_positive,
    check_range,
    check_steps,
    check_vector,
    fmt,
    leq,
    make_curve,
    make_scalar,
)

__all__ = [
    "noise_floor_bound",
    "per_coordinate_noise_variance",
    "sgd_diminishing_bound",
    "sgd_nonconvex_bound",
    "sgd_pl_constant_bound",
    "without_replacement_sigma2",
]

_SRC_PL = "THEORY.md 4.1; Bottou-Curtis-Nocedal 2018, Thm 4.6 (proof uses only PL)"
_SRC_DIM = "THEORY.md 4.2; Bottou-Curtis-Nocedal 2018, Thm 4.7"
_SRC_NC = "THEORY.md 4.3; Ghadimi-Lan 2013"


def without_replacement_sigma2(sigma2: float, B: float, n: int) -> float:
    """Effective ``sigma^2`` for minibatches of ``B`` drawn without replacement from ``n``.

    ``sigma^2 (n - B) / (n - 1)``, to be used with the same ``B`` in the ``sigma^2/B`` bounds.

    Source: THEORY.md 4 (noise model).
    """
    sigma2 = check_nonnegative("sigma2", sigma2)
    n = check_int("n", n, low=2)
    B = check_range("B", B, 1.0, float(n), high_label=f"n={n}")
    return sigma2 * (n - B) / (n - 1)


def per_coordinate_noise_variance(sigma2: float, d: int, B: float) -> float:
    """Isotropic per-coordinate noise variance ``s^2 = sigma^2 / (d B)`` (THEORY.md 4.4)."""
    sigma2 = check_nonnegative("sigma2", sigma2)
    d = check_int("d", d, low=1)
    B = check_positive("B", B)
    return sigma2 / (d * B)


def _sgd_pl_parts(
    cond: Conditions, L: float, mu: float, alpha: float, sigma2: float, B: float, form: str
) -> tuple[float, float]:
    if form == "basic":
        cond.require(
            leq(alpha * L, 1.0),
            f"alpha={fmt(alpha)} > 1/L={fmt(1 / L)}: bound requires alpha <= 1/L",
        )
        # 1 - alpha mu >= 0 for alpha <= 1/L, mu <= L; clamp the rounding at alpha = 1/L, mu = L
        return max(1.0 - alpha * mu, 0.0), alpha * L * sigma2 / (2.0 * mu * B)
    cond.require(
        alpha * L < 2.0,
        f"alpha={fmt(alpha)} >= 2/L={fmt(2 / L)}: bound requires 0 < alpha < 2/L",
    )
    if not cond.ok:
        return math.nan, math.nan
    return (
        max(1.0 - alpha * mu * (2.0 - alpha * L), 0.0),  # >= 1 - mu/L >= 0 exactly
        alpha * L * sigma2 / (2.0 * mu * B * (2.0 - alpha * L)),
    )


def sgd_pl_constant_bound(
    t: np.ndarray | float,
    L: float,
    mu: float,
    alpha: float,
    sigma2: float,
    B: float,
    delta0: float,
    form: str = "basic",
) -> Curve:
    """Constant-step SGD on an L-smooth PL(mu) function: linear rate to a noise floor.

    ``E Delta_t <= c^t (Delta_0 - F) + F`` with

    ``form="basic"``    ``c = 1 - alpha mu``, ``F = alpha L sigma^2 / (2 mu B)``, needs
                        ``0 < alpha <= 1/L`` (Bottou-Curtis-Nocedal 2018, Thm 4.6).
    ``form="general"``  ``c = 1 - alpha mu (2 - alpha L)``,
                        ``F = alpha L sigma^2 / (2 mu B (2 - alpha L))``, needs
                        ``0 < alpha < 2/L``.

    Loose: the floor is about ``2 kappa`` times the exact quadratic floor
    (:func:`theory.sgd_exact_quadratic`). ``sigma2``: ``E||xi||^2 <= sigma^2/B`` (use
    :func:`without_replacement_sigma2` for sampling without replacement).

    Returns
    -------
    Curve
        ``quantity="f_gap"`` (``E f(w_t) - f*``), ``rate = c``, ``floor = F``.
    """
    form = check_choice("form", form, ("basic", "general"))
    t = check_steps(t)
    L, mu = check_L_mu(L, mu)
    alpha = check_positive("alpha", alpha)
    sigma2 = check_nonnegative("sigma2", sigma2)
    B = check_positive("B", B)
    delta0 = check_nonnegative("delta0", delta0)
    cond = Conditions()
    c, F = _sgd_pl_parts(cond, L, mu, alpha, sigma2, B, form)

    def compute() -> np.ndarray:
        # c^t Delta_0 + (1 - c^t) F: non-negative terms, exact Delta_0 at t = 0
        with np.errstate(divide="ignore"):
            x = np.where(t == 0, 0.0, t * np.log(c)) if c > 0 else np.where(t == 0, 0.0, -np.inf)
        return np.exp(x) * delta0 - np.expm1(x) * F

    return make_curve(
        t.shape,
        cond,
        compute,
        tight=False,
        source=_SRC_PL,
        quantity="f_gap",
        measure="E f(w_t) - f*",
        rate=c,
        floor=F,
    )


def noise_floor_bound(
    alpha: float, sigma2: float, L: float, mu: float, B: float, form: str = "basic"
) -> Scalar:
    """Noise floor of constant-step SGD on an L-smooth PL(mu) function.

    ``form="basic"``: ``alpha L sigma^2 / (2 mu B)``, needs ``alpha <= 1/L``;
    ``form="general"``: ``alpha L sigma^2 / (2 mu B (2 - alpha L))``, needs ``alpha < 2/L``.
    Increases with ``alpha``, decreases with ``B``. Loose (about ``2 kappa`` times the exact
    quadratic floor). ``applicable=False`` (NaN) outside the step condition.

    Source: THEORY.md 4.1; Bottou-Curtis-Nocedal 2018, Thm 4.6.
    """
    form = check_choice("form", form, ("basic", "general"))
    L, mu = check_L_mu(L, mu)
    alpha = check_positive("alpha", alpha)
    sigma2 = check_nonnegative("sigma2", sigma2)
    B = check_positive("B", B)
    cond = Conditions()
    _, F = _sgd_pl_parts(cond, L, mu, alpha, sigma2, B, form)
    return make_scalar(cond, lambda: F, tight=False, source=_SRC_PL)


def sgd_diminishing_bound(
    t: np.ndarray | float,
    L: float,
    mu: float,
    sigma2: float,
    B: float,
    beta: float,
    gamma: float,
    delta1: float,
) -> Curve:
    """SGD with ``alpha_t = beta / (gamma + t)`` (``t >= 1``) on an L-smooth PL(mu) function.

    ``E Delta_t <= nu / (gamma + t)``,
    ``nu = max(beta^2 L sigma^2 / (2 B (beta mu - 1)), (gamma + 1) Delta_1)``.
    Conditions: ``beta > 1/mu``, ``gamma > 0``, ``alpha_1 = beta/(gamma+1) <= 1/L``; otherwise
    ``applicable=False``. ``beta = 2/mu`` makes the first term ``2 kappa sigma^2/(mu B)``, i.e.
    ``Theta(kappa sigma^2/(mu B t))``. Loose.

    Parameters
    ----------
    t : array_like
        Steps ``>= 1``; ``t = 1`` is the initial point ``w_1`` with gap ``delta1``.
    beta, gamma : float
        Step-size numerator (not momentum) and offset.
    delta1 : float
        ``f(w_1) - f*``.

    Returns
    -------
    Curve
        ``quantity="f_gap"``, ``floor = 0``, ``extras["nu"]``.

    Source: THEORY.md 4.2; Bottou-Curtis-Nocedal 2018, Thm 4.7.
    """
    t = check_steps(t, low=1)
    L, mu = check_L_mu(L, mu)
    sigma2 = check_nonnegative("sigma2", sigma2)
    B = check_positive("B", B)
    beta = check_positive("beta", beta)
    gamma = check_range("gamma", gamma, 0.0, None)
    delta1 = check_nonnegative("delta1", delta1)
    cond = Conditions()
    cond.require(
        beta * mu > 1.0,
        f"beta={fmt(beta)} <= 1/mu={fmt(1 / mu)}: bound requires beta > 1/mu",
    )
    cond.require(gamma > 0.0, f"gamma={fmt(gamma)} <= 0: bound requires gamma > 0")
    alpha1 = beta / (gamma + 1.0)
    cond.require(
        leq(alpha1 * L, 1.0),
        f"alpha_1=beta/(gamma+1)={fmt(alpha1)} > 1/L={fmt(1 / L)}: bound requires "
        "alpha_1 <= 1/L",
    )
    nu = math.nan
    if cond.ok:
        nu = max(beta * beta * L * sigma2 / (2.0 * B * (beta * mu - 1.0)), (gamma + 1.0) * delta1)
    return make_curve(
        t.shape,
        cond,
        lambda: nu / (gamma + t),
        tight=False,
        source=_SRC_DIM,
        quantity="f_gap",
        measure="E f(w_t) - f*",
        floor=0.0,
        extras={"nu": nu},
    )


def sgd_nonconvex_bound(
    T: np.ndarray | float,
    L: float,
    sigma2: float,
    B: float,
    delta0: float,
    alpha: float | np.ndarray | None = None,
    form: str = "general",
) -> Curve:
    """SGD on an L-smooth (possibly nonconvex) function: bound on ``E||grad f(w_R)||^2``.

    ``w_R`` is the iterate at a random index ``R < T`` with ``P(R = t)`` proportional to
    ``2 alpha_t - L alpha_t^2`` (uniform for a constant step). Forms:

    ``"general"``   ``(2 Delta_0 + (L sigma^2/B) sum_{t<T} alpha_t^2) /
                    sum_{t<T} (2 alpha_t - L alpha_t^2)``; ``alpha`` a constant or an array of
                    ``alpha_t`` (``t = 0, 1, ...``, at least ``max(T)`` entries); needs every
                    used ``alpha_t < 2/L``.
    ``"constant"``  ``2 Delta_0/(alpha T) + L alpha sigma^2 / B``; constant ``alpha <= 1/L``.
    ``"tuned"``     ``4 L Delta_0 / T + 2 sigma sqrt(2 L Delta_0 / (B T))``: for each ``T`` the
                    run uses ``alpha = min(1/L, sqrt(2 Delta_0 B / (L sigma^2 T)))`` (a
                    different run per ``T``); ``alpha`` is ignored.

    ``T = 0`` gives ``inf``. Loose. ``quantity="grad_norm2"``; the measured counterpart is the
    ``P(R=t)``-weighted average of ``E||grad f(w_t)||^2`` over ``t < T``.

    Source: THEORY.md 4.3; Ghadimi-Lan 2013.
    """
    form = check_choice("form", form, ("general", "constant", "tuned"))
    T = check_steps(T, "T")
    L = check_positive("L", L)
    sigma2 = check_nonnegative("sigma2", sigma2)
    B = check_positive("B", B)
    delta0 = check_nonnegative("delta0", delta0)
    cond = Conditions()
    measure = "sum_{t<T} P(R=t) E||grad f(w_t)||^2, P(R=t) ~ 2 alpha_t - L alpha_t^2"
    if form == "tuned":

        def compute() -> np.ndarray:
            with np.errstate(divide="ignore"):
                v = 4.0 * L * delta0 / T + 2.0 * math.sqrt(sigma2) * np.sqrt(
                    2.0 * L * delta0 / (B * T)
                )
            return np.where(T > 0, v, np.inf)

    else:
        if alpha is None:
            raise ValueError(f"alpha=None is not allowed for form={form!r}: give the step size")
        a = check_vector("alpha", alpha, low=0.0, low_inclusive=False)
        if form == "constant" and a.ndim != 0:
            raise ValueError("alpha must be a scalar for form='constant'")
        if a.ndim == 0:
            a_max = float(a)
            if form == "constant":
                cond.require(
                    leq(a_max * L, 1.0),
                    f"alpha={fmt(a_max)} > 1/L={fmt(1 / L)}: bound requires alpha <= 1/L",
                )
            else:
                cond.require(
                    a_max * L < 2.0,
                    f"alpha={fmt(a_max)} >= 2/L={fmt(2 / L)}: bound requires alpha_t < 2/L",
                )
        else:
            if not np.all(T == np.round(T)):
                raise ValueError("T must be integer steps when alpha is a schedule")
            t_max = int(T.max()) if T.size else 0
            if a.size < t_max:
                raise ValueError(
                    f"alpha has {a.size} entries: a schedule needs at least max(T)={t_max}"
                )
            used = a[:t_max]
            if used.size:
                k = int(np.argmax(used))
                cond.require(
                    used[k] * L < 2.0,
                    f"alpha_{k}={fmt(used[k])} >= 2/L={fmt(2 / L)}: bound requires alpha_t < 2/L",
                )

        def compute() -> np.ndarray:
            with np.errstate(divide="ignore", invalid="ignore"):
                if form == "constant":
                    v = 2.0 * delta0 / (a * T) + L * a * sigma2 / B
                elif a.ndim == 0:
                    v = (2.0 * delta0 + (L * sigma2 / B) * T * a * a) / (T * (2 * a - L * a * a))
                else:
                    s2 = np.concatenate(([0.0], np.cumsum(a * a)))
                    s1 = np.concatenate(([0.0], np.cumsum(2 * a - L * a * a)))
                    idx = T.astype(np.int64)
                    v = (2.0 * delta0 + (L * sigma2 / B) * s2[idx]) / s1[idx]
            return np.where(T > 0, v, np.inf)

    if form == "tuned":
        floor = 0.0
    elif a.ndim == 0 and cond.ok:
        a0 = float(a)
        floor = L * a0 * sigma2 / B if form == "constant" else L * a0 * sigma2 / (B * (2 - L * a0))
    else:
        floor = math.nan
    return make_curve(
        T.shape,
        cond,
        compute,
        tight=False,
        source=_SRC_NC,
        quantity="grad_norm2",
        measure=measure,
        floor=floor,
    )
