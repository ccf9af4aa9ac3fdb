"""Gradient descent ``w_{t+1} = w_t - alpha grad f(w_t)``: bounds and exact quadratic curves
(THEORY.md section 1)."""

from __future__ import annotations

import numpy as np

from ._coords import broadcast_coords, sum_powers
from ._curves import exact_curve, geometric_bound_curve
from ._exact_inputs import quantity_weights
from ._recurrence import log_abs_one_minus
from .conditions import (
    Conditions,
    Curve,
    check_choice,
    check_L_mu,
    check_nonnegative,
    check_positive,
    check_steps,
    check_vector,
    fmt,
    leq,
    make_curve,
)

__all__ = [
    "gd_contraction_factor",
    "gd_exact_quadratic",
    "gd_nonconvex_bound",
    "gd_pl_bound",
    "gd_strongly_convex_rate",
]

_SRC_NONCONVEX = "THEORY.md 1.1; descent lemma (L-smooth)"
_SRC_NONCONVEX_TIGHT = (
    "THEORY.md 1.1; Abbaszadehpeivasti-de Klerk-Zamani 2021 (exact worst case, h in (0, 1])"
)
_SRC_NONCONVEX_TIGHT_EXCL = (
    "THEORY.md 1.1; Abbaszadehpeivasti-de Klerk-Zamani 2021 (h=1); general h: "
    "PEPit-identified, not a theorem"
)
_SRC_PL = "THEORY.md 1.2; Karimi-Nutini-Schmidt 2016, Thm 1"
_SRC_PL_SHARP = "THEORY.md 1.2; Abbaszadehpeivasti-de Klerk-Zamani 2023, Thm 3"
_SRC_SC = (
    "THEORY.md 1.3; Nesterov 2004, Thm 2.1.15; Taylor-Hendrickx-Glineur 2018 (function values)"
)
_SRC_EXACT = "THEORY.md 1.3 (exact on a quadratic)"


def _alpha_le_inverse_L(cond: Conditions, alpha: float, L: float, what: str) -> None:
    cond.require(
        leq(alpha * L, 1.0),
        f"alpha={fmt(alpha)} > 1/L={fmt(1 / L)}: {what} requires alpha <= 1/L",
    )


def _alpha_lt_two_over_L(cond: Conditions, alpha: float, L: float, what: str) -> None:
    cond.require(
        alpha * L < 2.0,
        f"alpha={fmt(alpha)} >= 2/L={fmt(2 / L)}: {what} requires 0 < alpha < 2/L",
    )


def gd_contraction_factor(L: float, mu: float, alpha: float) -> float:
    """Worst-case per-step contraction of ``||w_t - w*||`` for GD with step ``alpha``.

    ``rho(alpha) = max(|1 - alpha mu|, |1 - alpha L|)``. This is a fact about quadratics with
    spectrum in ``[mu, L]`` for any ``alpha > 0`` (``rho >= 1`` when ``alpha >= 2/L``); as a
    bound on all mu-strongly convex L-smooth functions it needs ``0 < alpha < 2/L`` (see
    :func:`gd_strongly_convex_rate`). Tight (1-D quadratics). ``alpha = 2/(L+mu)`` gives the
    optimum ``(kappa-1)/(kappa+1)``.

    Source: THEORY.md 1.3; Nesterov 2004, Thm 2.1.15.

    Raises
    ------
    ValueError
        ``L <= 0``, ``mu`` outside ``(0, L]`` or ``alpha <= 0``.
    """
    L, mu = check_L_mu(L, mu)
    alpha = check_positive("alpha", alpha)
    return max(abs(1.0 - alpha * mu), abs(1.0 - alpha * L))


def gd_nonconvex_bound(
    T: np.ndarray | float,
    L: float,
    alpha: float,
    delta0: np.ndarray | float,
    form: str = "loose",
) -> Curve:
    """Bound on the running minimum of ``||grad f||^2`` for GD on an L-smooth function.

    Forms (``h = alpha L``):

    ``"descent"``  ``(f(w_0) - f(w_T)) / (T alpha (1 - alpha L/2))``, needs ``0 < alpha < 2/L``;
                   measure ``min_{0<=t<T}``. Loose.
    ``"loose"``    ``2 Delta_0 / (alpha T)``, needs ``alpha <= 1/L``; measure
                   ``min_{0<=t<T}``. Loose (constant 2 vs the tight 4/3 at ``h=1``).
    ``"tight"``    ``4 L (f(w_0) - f(w_T)) / (T h (4 - h))``, needs ``h in (0, 1]``; measure
                   ``min_{0<=t<=T}`` (includes ``t = T``); ``h = 1`` gives ``4L/(3T)``. Tight
                   (Abbaszadehpeivasti-de Klerk-Zamani 2021).
    ``"tight_exclusive"``  ``4 L (f(w_0) - f(w_T)) / (T h (4 - h) - h^2)``, needs
                   ``h in (0, 1]``; measure ``min_{0<=t<=T-1}``. Flagged tight, but for general
                   ``h`` it is PEPit-identified, not a theorem (see ``source``).

    Parameters
    ----------
    T : array_like
        Numbers of steps (real, ``>= 0``). ``T = 0`` gives ``inf`` (minimum over no iterate).
    L, alpha : float
        Smoothness constant and constant step size.
    delta0 : float or array_like
        ``Delta_0 = f(w_0) - f*``. Since ``f(w_T) >= f*``, passing ``f(w_0) - f(w_T)``
        (broadcast against ``T``) gives a smaller valid bound for every form.
    form : {"loose", "descent", "tight", "tight_exclusive"}

    Returns
    -------
    Curve
        ``quantity="grad_norm2"``, ``measure`` says which running minimum; ``applicable=False``
        (NaN) outside the step-size condition of the chosen form.

    Raises
    ------
    ValueError
        Invalid ``T``, ``L``, ``alpha``, ``delta0`` or ``form``.
    """
    form = check_choice("form", form, ("loose", "descent", "tight", "tight_exclusive"))
    T = check_steps(T, "T")
    L = check_positive("L", L)
    alpha = check_positive("alpha", alpha)
    d0 = check_vector("delta0", delta0, low=0.0) if np.ndim(delta0) else None
    if d0 is None:
        d0 = np.asarray(check_nonnegative("delta0", delta0))
    try:
        d0 = np.broadcast_to(d0, T.shape)
    except ValueError as exc:
        raise ValueError(
            f"delta0 has shape {np.shape(delta0)}: expected a scalar or the shape of T {T.shape}"
        ) from exc
    h = alpha * L
    cond = Conditions()
    if form == "descent":
        _alpha_lt_two_over_L(cond, alpha, L, "descent-lemma bound")
    else:
        _alpha_le_inverse_L(cond, alpha, L, f"{form} bound")

    def compute() -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            if form == "descent":
                v = d0 / (T * alpha * (1.0 - h / 2.0))
            elif form == "loose":
                v = 2.0 * d0 / (alpha * T)
            elif form == "tight":
                v = 4.0 * L * d0 / (T * h * (4.0 - h))
            else:
                v = 4.0 * L * d0 / (T * h * (4.0 - h) - h * h)
        return np.where(T > 0, v, np.inf)

    measure = (
        "min_{0<=t<=T} ||grad f(w_t)||^2" if form == "tight" else "min_{0<=t<T} ||grad f(w_t)||^2"
    )
    source = {
        "descent": _SRC_NONCONVEX,
        "loose": _SRC_NONCONVEX,
        "tight": _SRC_NONCONVEX_TIGHT,
        "tight_exclusive": _SRC_NONCONVEX_TIGHT_EXCL,
    }[form]
    return make_curve(
        T.shape,
        cond,
        compute,
        tight=form in ("tight", "tight_exclusive"),
        source=source,
        quantity="grad_norm2",
        measure=measure,
        floor=0.0,
    )


def gd_pl_bound(
    t: np.ndarray | float,
    L: float,
    mu: float,
    alpha: float,
    delta0: float,
    form: str = "general",
) -> Curve:
    """Linear-rate bound ``Delta_t <= c^t Delta_0`` for GD on an L-smooth PL(mu) function.

    Forms:

    ``"general"``  ``c = 1 - alpha mu (2 - alpha L)``, needs ``0 < alpha < 2/L``.
    ``"basic"``    ``c = 1 - alpha mu``, needs ``alpha <= 1/L`` (KNS Thm 1 at ``alpha=1/L``:
                   ``(1 - 1/kappa)^t``).
    ``"sharp"``    ``c = (4L^2 - 2 mu L - 2 mu^2) / (2L + mu)^2`` (about ``1 - 3/(2 kappa)``),
                   needs ``alpha = 1/L`` (Abbaszadehpeivasti-de Klerk-Zamani 2023, Thm 3).

    None is tight: the exact worst case over PL functions is unknown (THEORY.md 1.2, 6.1).
    The function may be nonconvex.

    Returns
    -------
    Curve
        ``quantity="f_gap"``, ``rate = c``, ``floor = 0``.

    Raises
    ------
    ValueError
        ``L <= 0``, ``mu`` outside ``(0, L]``, ``alpha <= 0``, ``delta0 < 0``, bad ``t``/form.
    """
    form = check_choice("form", form, ("general", "basic", "sharp"))
    t = check_steps(t)
    L, mu = check_L_mu(L, mu)
    alpha = check_positive("alpha", alpha)
    delta0 = check_nonnegative("delta0", delta0)
    cond = Conditions()
    if form == "general":
        _alpha_lt_two_over_L(cond, alpha, L, "PL bound")
        c = 1.0 - alpha * mu * (2.0 - alpha * L)
        source = _SRC_PL
    elif form == "basic":
        _alpha_le_inverse_L(cond, alpha, L, "basic PL bound (factor 1 - alpha mu)")
        c = 1.0 - alpha * mu
        source = _SRC_PL
    else:
        cond.require(
            abs(alpha * L - 1.0) <= 1e-9,
            f"alpha={fmt(alpha)} != 1/L={fmt(1 / L)}: sharp PL factor requires alpha = 1/L",
        )
        c = (4 * L * L - 2 * mu * L - 2 * mu * mu) / (2 * L + mu) ** 2
        source = _SRC_PL_SHARP
    # every factor is >= 1 - mu/L >= 0 in exact arithmetic (alpha mu (2 - alpha L) <= mu/L);
    # a negative value is rounding (mu = L at alpha = 1/L) and would make the bound negative
    c = max(c, 0.0)
    return geometric_bound_curve(t, cond, delta0, c, source=source, measure="f(w_t) - f*")


def gd_strongly_convex_rate(
    t: np.ndarray | float,
    L: float,
    mu: float,
    alpha: float,
    initial: float,
    quantity: str = "dist2",
) -> Curve:
    """Tight linear rate of GD on mu-strongly convex, L-smooth functions, ``0 < alpha < 2/L``.

    With ``rho = max(|1 - alpha mu|, |1 - alpha L|)``:

    ``quantity="dist2"``             ``||e_t||^2 <= rho^{2t} ||e_0||^2`` (``initial = ||e_0||^2``)
    ``quantity="f_gap"``             ``Delta_t <= rho^{2t} Delta_0`` (``initial = Delta_0``)
    ``quantity="f_gap_from_dist2"``  ``Delta_t <= (L/2) rho^{2t} ||e_0||^2``
                                     (``initial = ||e_0||^2``; reported quantity ``f_gap``)

    Tight (1-D quadratics; Nesterov 2004 Thm 2.1.15; Taylor-Hendrickx-Glineur 2018 for
    ``Delta``). The ``f_gap_from_dist2`` form is attained only when ``|1 - alpha L| >=
    |1 - alpha mu|`` and is flagged tight only then. ``rate = rho^2`` (per step, of the values);
    see :func:`gd_contraction_factor` for ``rho``.

    Raises
    ------
    ValueError
        Invalid constants, ``alpha <= 0``, ``initial < 0``, bad ``t`` or ``quantity``.
    """
    quantity = check_choice("quantity", quantity, ("dist2", "f_gap", "f_gap_from_dist2"))
    t = check_steps(t)
    L, mu = check_L_mu(L, mu)
    alpha = check_positive("alpha", alpha)
    initial = check_nonnegative("initial", initial)
    rho = max(abs(1.0 - alpha * mu), abs(1.0 - alpha * L))
    cond = Conditions()
    _alpha_lt_two_over_L(cond, alpha, L, "strongly convex rate")
    scale = L / 2.0 if quantity == "f_gap_from_dist2" else 1.0
    tight = quantity != "f_gap_from_dist2" or abs(1 - alpha * L) >= abs(1 - alpha * mu)
    measure = "||w_t - w*||^2" if quantity == "dist2" else "f(w_t) - f*"
    return make_curve(
        t.shape,
        cond,
        lambda: scale * initial * np.power(rho * rho, t),
        tight=tight,
        source=_SRC_SC,
        quantity="dist2" if quantity == "dist2" else "f_gap",
        measure=measure,
        rate=rho * rho,
        floor=0.0,
    )


def gd_exact_quadratic(
    t: np.ndarray | int,
    eigenvalues: np.ndarray,
    alpha: float | np.ndarray,
    e0: np.ndarray,
    quantity: str = "f_gap",
) -> Curve:
    """Exact GD curve on the quadratic ``f = 1/2 sum_i lambda_i e_i^2 + f*``.

    ``e_{t,i} = (1 - alpha_i lambda_i)^t e_{0,i}``, so
    ``Delta_t = 1/2 sum_i lambda_i (1 - alpha_i lambda_i)^{2t} e_{0,i}^2`` (``quantity="f_gap"``)
    and ``||e_t||^2 = sum_i (1 - alpha_i lambda_i)^{2t} e_{0,i}^2`` (``quantity="dist2"``).

    Exact for every step size (it is an identity; unstable steps give growing values), so
    always ``applicable``. ``alpha`` may be a per-coordinate array (a diagonal preconditioner
    ``R``: step ``alpha R_ii``, THEORY.md 3). Eigenvalues may be 0 (PL, not strongly convex).

    Parameters
    ----------
    t : array_like of int
        Steps (integers ``>= 0``).
    eigenvalues : array_like, shape (d,)
        ``lambda_i >= 0`` (eigenbasis of the Hessian).
    alpha : float or array_like, shape (d,)
        Step size(s) ``> 0``.
    e0 : array_like, shape (d,)
        Initial error ``w_0 - w*`` in the eigenbasis.

    Returns
    -------
    Curve
        ``kind="exact"``; ``rate`` = largest ``(1 - alpha_i lambda_i)^2`` among coordinates that
        contribute; ``floor`` = limit (0, a constant from ``lambda_i = 0`` for ``dist2``, or inf).

    Source: THEORY.md 1.3 ("exact on a quadratic").
    """
    quantity = check_choice("quantity", quantity, ("f_gap", "dist2"))
    t = check_steps(t, integer=True)
    lam = check_vector("eigenvalues", eigenvalues, low=0.0)
    a = check_vector("alpha", alpha, low=0.0, low_inclusive=False)
    e0 = check_vector("e0", e0)
    lam, a, e0 = broadcast_coords(lam=lam, alpha=a, e0=e0)
    q2 = (1.0 - a * lam) ** 2
    w = quantity_weights(lam, quantity) * e0 * e0
    values = sum_powers(2.0 * log_abs_one_minus(a * lam), w, t)
    active = w > 0
    rate = float(q2[active].max()) if active.any() else 0.0
    if not active.any() or np.all(q2[active] < 1):
        floor = 0.0
    elif np.any(q2[active] > 1):
        floor = np.inf
    else:
        floor = float(w[active & (q2 == 1)].sum())
    measure = "f(w_t) - f*" if quantity == "f_gap" else "||w_t - w*||^2"
    return exact_curve(t.shape, values, source=_SRC_EXACT, quantity=quantity, measure=measure,
                       rate=rate, floor=floor)
