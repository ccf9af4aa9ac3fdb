"""Step-size rules and iteration counts to reach a target accuracy (THEORY.md 1-2, 4.1).

Step-size rules return plain floats (or tuples of floats). Iteration counts return a threshold
``T*`` such that every integer ``T >= T*`` meets the stated guarantee; they are vectorised over
``kappa`` and ``ratio`` (NumPy broadcasting) and return a float for scalar input. ``ratio`` is
the initial error over the target, e.g. ``Delta_0 / eps``; a guarantee already met at ``T = 0``
gives ``T* = 0``.

Each count has two forms: ``"simple"``, the real textbook expression from
``1 - x <= e^{-x}`` (e.g. ``kappa log(ratio)``; ``ceil`` it for a count), and ``"factor"``, the
smallest *integer* ``T`` for which the exact per-step factor ``c`` of the same guarantee reaches
the target, ``ceil(log(C ratio) / -log c)`` (never above ``ceil`` of the simple form; ``c = 0``,
i.e. ``kappa = 1``, gives one step).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from .conditions import (
    check_choice,
    check_L_mu,
    check_nonnegative,
    check_positive,
    check_range,
    check_vector,
    fmt,
    leq,
)

__all__ = [
    "SGDRecipe",
    "gd_iterations_to_eps",
    "gd_optimal_iterations_to_eps",
    "heavy_ball_iterations_to_eps",
    "heavy_ball_polyak_params",
    "heavy_ball_safe_params",
    "nesterov_iterations_to_eps",
    "nesterov_params",
    "sgd_iterations_to_eps",
    "step_inverse_L",
    "step_optimal_gd",
]


# --------------------------------------------------------------------------- step-size rules


def step_inverse_L(L: float) -> float:
    """The step ``1/L``: the best step of the descent lemma (THEORY.md 1.0-1.2).

    Gives ``Delta_T <= (1 - 1/kappa)^T Delta_0`` on L-smooth PL(mu) functions (KNS 2016, Thm 1)
    and ``min ||grad f||^2 <= 4 L (f(w_0) - f(w_T)) / (3T)`` on L-smooth ones (tight).

    Raises ``ValueError`` unless ``L > 0`` is finite. Source: THEORY.md 1.1-1.2.
    """
    return 1.0 / check_positive("L", L)


def step_optimal_gd(L: float, mu: float) -> float:
    """The step ``2/(L + mu)`` minimising GD's contraction ``max(|1 - alpha mu|, |1 - alpha L|)``.

    It gives ``||e_t|| <= ((kappa-1)/(kappa+1))^t ||e_0||`` on every mu-strongly convex
    L-smooth function (tight on quadratics).

    Raises ``ValueError`` for ``L <= 0`` or ``mu`` outside ``(0, L]``.
    Source: THEORY.md 1.3; Nesterov 2004, Thm 2.1.15.
    """
    L, mu = check_L_mu(L, mu)
    return 2.0 / (L + mu)


def heavy_ball_polyak_params(L: float, mu: float) -> tuple[float, float]:
    """Polyak's heavy-ball pair ``(alpha, beta)`` for quadratics with spectrum in ``[mu, L]``.

    ``alpha = 4 / (sqrt(L) + sqrt(mu))^2``, ``beta = ((sqrt(kappa)-1)/(sqrt(kappa)+1))^2``:
    every ``lambda in [mu, L]`` has root modulus ``sqrt(beta) = (sqrt(kappa)-1)/(sqrt(kappa)+1)``
    (asymptotic, quadratics only; no guarantee on strongly convex functions, THEORY.md 2.2).

    Raises ``ValueError`` for ``L <= 0`` or ``mu`` outside ``(0, L]``.
    Source: THEORY.md 2.1; Polyak 1964.
    """
    L, mu = check_L_mu(L, mu)
    sl, sm = math.sqrt(L), math.sqrt(mu)
    return 4.0 / (sl + sm) ** 2, ((sl - sm) / (sl + sm)) ** 2


def nesterov_params(L: float, mu: float) -> tuple[float, float]:
    """Nesterov's constant-momentum pair ``(1/L, (sqrt(kappa)-1)/(sqrt(kappa)+1))``.

    Gives ``Delta_t <= (1 - 1/sqrt(kappa))^t (Delta_0 + mu/2 ||e_0||^2)`` on every mu-strongly
    convex L-smooth function; spectral radius ``1 - 1/sqrt(kappa)`` on quadratics.

    Raises ``ValueError`` for ``L <= 0`` or ``mu`` outside ``(0, L]``.
    Source: THEORY.md 2.3; Nesterov 2004.
    """
    L, mu = check_L_mu(L, mu)
    sl, sm = math.sqrt(L), math.sqrt(mu)
    return 1.0 / L, (sl - sm) / (sl + sm)


def heavy_ball_safe_params(L: float, mu: float, alpha: float) -> tuple[float, float]:
    """The safe heavy-ball pair ``(alpha, sqrt((1 - alpha mu)(1 - alpha L)))``, ``alpha <= 1/L``.

    With it ``Delta_t <= (1 - alpha mu)^t Delta_0`` on every mu-strongly convex L-smooth
    function (no acceleration; :func:`theory.heavy_ball_safe_bound`).

    Raises
    ------
    ValueError
        ``L <= 0``, ``mu`` outside ``(0, L]``, or ``alpha`` outside ``(0, 1/L]`` (the rule is
        defined only there).

    Source: THEORY.md 2.2; Ghadimi-Feyzmahdavian-Johansson 2015.
    """
    L, mu = check_L_mu(L, mu)
    alpha = check_positive("alpha", alpha)
    if not leq(alpha * L, 1.0):
        raise ValueError(f"alpha={fmt(alpha)} is out of range: allowed (0, 1/L={fmt(1 / L)}]")
    return alpha, math.sqrt(max(0.0, (1.0 - alpha * mu) * (1.0 - alpha * L)))


# --------------------------------------------------------------------------- iteration counts


def _kappa_ratio(kappa: object, ratio: object) -> tuple[np.ndarray, np.ndarray]:
    k = check_vector("kappa", kappa, low=1.0)
    r = check_vector("ratio", ratio, low=0.0, low_inclusive=False)
    try:
        k, r = np.broadcast_arrays(k, r)
    except ValueError as exc:
        raise ValueError(
            f"kappa has shape {k.shape} and ratio {r.shape}: they must broadcast"
        ) from exc
    return k.astype(float), r.astype(float)


def _out(x: np.ndarray) -> np.ndarray | float:
    return float(x) if np.ndim(x) == 0 else x


def _count(log_ratio: np.ndarray, neg_log_factor: np.ndarray) -> np.ndarray:
    """Smallest integer ``T >= 0`` with ``T * neg_log_factor >= log_ratio`` (as a float):
    ``ceil(log_ratio / neg_log_factor)``; a zero factor (``-log = inf``) needs one step."""
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(np.isinf(neg_log_factor), 1.0, np.ceil(log_ratio / neg_log_factor))
    return np.where(log_ratio > 0, t, 0.0)


def gd_iterations_to_eps(
    kappa: np.ndarray | float, ratio: np.ndarray | float, form: str = "simple"
) -> np.ndarray | float:
    """Iterations of GD with ``alpha = 1/L`` to reach ``Delta_T <= eps`` on an L-smooth PL(mu)
    function, ``ratio = Delta_0 / eps``.

    From ``Delta_T <= (1 - 1/kappa)^T Delta_0`` (KNS 2016, Thm 1):
    ``form="simple"``: ``T* = kappa log(ratio)`` (via ``(1-1/kappa)^T <= e^{-T/kappa}``);
    ``form="factor"``: ``T* = ceil(log(ratio) / -log(1 - 1/kappa))`` (``kappa = 1``: one step).
    An upper bound on the iterations needed (the PL factor is not tight, THEORY.md 1.2).

    Raises ``ValueError`` for ``kappa < 1``, ``ratio <= 0``, non-finite input or a bad form.
    Source: THEORY.md 1.2; Karimi-Nutini-Schmidt 2016, Thm 1.
    """
    form = check_choice("form", form, ("simple", "factor"))
    k, r = _kappa_ratio(kappa, ratio)
    lr = np.log(r)
    if form == "simple":
        return _out(np.where(lr > 0, k * lr, 0.0))
    with np.errstate(divide="ignore"):
        neg_log_c = -np.log1p(-1.0 / k)  # inf at kappa = 1
    return _out(_count(lr, neg_log_c))


def gd_optimal_iterations_to_eps(
    kappa: np.ndarray | float, ratio: np.ndarray | float, form: str = "simple"
) -> np.ndarray | float:
    """Iterations of GD with ``alpha = 2/(L+mu)`` to reach ``||e_T||^2 <= eps`` on a
    mu-strongly convex L-smooth function, ``ratio = ||e_0||^2 / eps`` (or ``Delta_0/eps``:
    ``Delta`` contracts by the same ``rho^2`` per step).

    From ``||e_T||^2 <= rho^{2T} ||e_0||^2``, ``rho = (kappa-1)/(kappa+1)`` (tight):
    ``form="factor"``: ``T* = ceil(log(ratio) / (2 log((kappa+1)/(kappa-1))))`` (the exact
    count of the tight rate; ``kappa = 1``: one step); ``form="simple"``:
    ``T* = (kappa/4) log(ratio)`` (via ``log((kappa+1)/(kappa-1)) >= 2/kappa``).

    Raises ``ValueError`` for ``kappa < 1``, ``ratio <= 0``, non-finite input or a bad form.
    Source: THEORY.md 1.3; Nesterov 2004, Thm 2.1.15.
    """
    form = check_choice("form", form, ("simple", "factor"))
    k, r = _kappa_ratio(kappa, ratio)
    lr = np.log(r)
    if form == "simple":
        return _out(np.where(lr > 0, 0.25 * k * lr, 0.0))
    with np.errstate(divide="ignore"):
        neg_log_rho2 = 2.0 * (np.log1p(1.0 / k) - np.log1p(-1.0 / k))  # -log rho^2
    return _out(_count(lr, neg_log_rho2))


def heavy_ball_iterations_to_eps(
    kappa: np.ndarray | float, ratio: np.ndarray | float, form: str = "simple"
) -> np.ndarray | float:
    """Asymptotic iterations of heavy ball with Polyak's parameters on quadratics,
    ``ratio = ||e_0||^2 / eps``.

    Root modulus ``sqrt(beta) = (sqrt(kappa)-1)/(sqrt(kappa)+1)`` for every eigenvalue, so
    ``||e_T||^2 / ||e_0||^2`` decays like ``beta^T`` up to a polynomial ``(T+1)^2`` factor that
    this count ignores (asymptotic, quadratics only; THEORY.md 2.1, 6.3):
    ``form="factor"``: ``T* = ceil(log(ratio) / (2 log((sqrt(kappa)+1)/(sqrt(kappa)-1))))``;
    ``form="simple"``: ``T* = (sqrt(kappa)/4) log(ratio)``. ``O(sqrt(kappa) log(1/eps))``.
    Not a guarantee: heavy ball has none on general strongly convex functions (THEORY.md 2.2).

    Raises ``ValueError`` for ``kappa < 1``, ``ratio <= 0``, non-finite input or a bad form.
    Source: THEORY.md 2.1; Polyak 1964.
    """
    form = check_choice("form", form, ("simple", "factor"))
    k, r = _kappa_ratio(kappa, ratio)
    lr = np.log(r)
    sk = np.sqrt(k)
    if form == "simple":
        return _out(np.where(lr > 0, 0.25 * sk * lr, 0.0))
    with np.errstate(divide="ignore"):
        neg_log_beta = 2.0 * (np.log1p(1.0 / sk) - np.log1p(-1.0 / sk))
    return _out(_count(lr, neg_log_beta))


def nesterov_iterations_to_eps(
    kappa: np.ndarray | float, ratio: np.ndarray | float, form: str = "simple"
) -> np.ndarray | float:
    """Iterations of Nesterov's method (``alpha = 1/L``, constant momentum) to reach
    ``Delta_T <= eps`` on every mu-strongly convex L-smooth function, ``ratio = Delta_0/eps``.

    From ``Delta_T <= 2 (1 - 1/sqrt(kappa))^T Delta_0``:
    ``form="simple"``: ``T* = sqrt(kappa) log(2 ratio)``;
    ``form="factor"``: ``T* = ceil(log(2 ratio) / -log(1 - 1/sqrt(kappa)))`` (``kappa = 1``: one
    step).
    An upper bound (the guarantee is loose on quadratics, THEORY.md 2.3).

    Raises ``ValueError`` for ``kappa < 1``, ``ratio <= 0``, non-finite input or a bad form.
    Source: THEORY.md 2.3; Nesterov 2004; d'Aspremont-Scieur-Taylor 2021, Cor 4.15.
    """
    form = check_choice("form", form, ("simple", "factor"))
    k, r = _kappa_ratio(kappa, ratio)
    lr = np.log(2.0 * r)
    if form == "simple":
        return _out(np.where(lr > 0, np.sqrt(k) * lr, 0.0))
    with np.errstate(divide="ignore"):
        neg_log_c = -np.log1p(-1.0 / np.sqrt(k))  # inf at kappa = 1
    return _out(_count(lr, neg_log_c))


class SGDRecipe(NamedTuple):
    """Step size and iteration count of :func:`sgd_iterations_to_eps`."""

    alpha: float
    iterations: float


def sgd_iterations_to_eps(
    L: float, mu: float, sigma2: float, B: float, delta0: float, eps: float
) -> SGDRecipe:
    """Constant-step SGD recipe to reach ``E Delta_T <= eps`` on an L-smooth PL(mu) function.

    ``alpha = min(1/L, mu B eps / (L sigma^2))`` puts the floor ``F = alpha L sigma^2/(2 mu B)``
    at most ``eps/2``; then ``(1 - alpha mu)^T Delta_0 <= eps/2`` for
    ``T >= log(2 Delta_0/eps) / (alpha mu) = kappa max(1, sigma^2/(mu B eps)) log(2 Delta_0/eps)``
    (``T* = 0`` when ``eps >= 2 Delta_0``). Upper bound (the bound it inverts is about
    ``2 kappa`` times the exact floor, THEORY.md 4.1).

    Parameters
    ----------
    L, mu : float
        Smoothness and PL constants, ``0 < mu <= L``.
    sigma2, B : float
        Noise ``E||xi||^2 <= sigma2 / B`` (``sigma2 >= 0``, ``B > 0``).
    delta0 : float
        ``f(w_0) - f* >= 0``.
    eps : float
        Target ``> 0``.

    Returns
    -------
    SGDRecipe
        ``(alpha, iterations)``; ``iterations`` is the real threshold ``T*``.

    Raises
    ------
    ValueError
        Invalid constants, ``sigma2 < 0``, ``B <= 0``, ``delta0 < 0`` or ``eps <= 0``.

    Source: THEORY.md 4.1; Bottou-Curtis-Nocedal 2018, Thm 4.6.
    """
    L, mu = check_L_mu(L, mu)
    sigma2 = check_nonnegative("sigma2", sigma2)
    B = check_positive("B", B)
    delta0 = check_nonnegative("delta0", delta0)
    eps = check_range("eps", eps, 0.0, None, low_inclusive=False)
    kappa = L / mu
    noise_term = sigma2 / (mu * B * eps)
    alpha = 1.0 / L if noise_term <= 1.0 else mu * B * eps / (L * sigma2)
    log_term = math.log(2.0 * delta0 / eps) if delta0 > 0 else 0.0
    iterations = kappa * max(1.0, noise_term) * log_term if log_term > 0 else 0.0
    return SGDRecipe(alpha, iterations)
