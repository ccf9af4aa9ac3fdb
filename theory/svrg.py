"""SVRG (stochastic variance-reduced gradient): the epoch contraction of Johnson-Zhang 2013
(THEORY.md 4.7)."""

from __future__ import annotations

import numpy as np

from ._curves import geometric_bound_curve
from .conditions import (
    Conditions,
    Curve,
    Scalar,
    check_int,
    check_L_mu,
    check_nonnegative,
    check_positive,
    check_steps,
    fmt,
    make_scalar,
)

__all__ = ["svrg_bound", "svrg_rate"]

_SRC = "THEORY.md 4.7; Johnson-Zhang 2013, Thm 1"


def _svrg_parts(L: float, mu: float, eta: float, m: int) -> tuple[Conditions, float]:
    """Conditions of Johnson-Zhang Thm 1 and the factor ``rho`` (NaN when ``eta >= 1/(2L)``)."""
    cond = Conditions()
    cond.require(
        eta * L < 0.25,
        f"eta={fmt(eta)} >= 1/(4L)={fmt(0.25 / L)}: SVRG bound requires eta < 1/(4L)",
    )
    rho = np.nan
    if 2.0 * L * eta < 1.0:
        one_minus = 1.0 - 2.0 * L * eta
        rho = 1.0 / (mu * eta * one_minus * m) + 2.0 * L * eta / one_minus
    if cond.ok:
        cond.require(
            rho < 1.0,
            f"rho={fmt(rho)} >= 1 (eta={fmt(eta)}, m={m}): SVRG bound requires rho < 1 "
            "(a longer epoch m or another eta)",
        )
    return cond, float(rho)


def svrg_rate(L: float, mu: float, eta: float, m: int) -> Scalar:
    """Per-epoch contraction factor of SVRG (Johnson-Zhang 2013, Thm 1; an upper bound).

    ``rho = 1 / (mu eta (1 - 2 L eta) m) + 2 L eta / (1 - 2 L eta)``, so that
    ``E Delta(w~_s) <= rho^s Delta(w~_0)`` for the snapshots ``w~_s``.

    Conditions: ``f = (1/n) sum_i f_i`` with every ``f_i`` convex and L-smooth, ``f``
    mu-strongly convex (``kappa = L/mu`` with ``L = L_max``, the largest component constant),
    epoch length ``m``, step ``eta < 1/(4L)``, the new snapshot a uniformly random inner
    iterate of the epoch; and ``rho < 1`` for the statement to say anything. Outside them
    ``applicable=False`` with the failed condition in ``reason``. Example: ``eta = 0.1/L``,
    ``m = 50 kappa`` gives ``rho = 0.5``. Not tight. An epoch costs ``n + 2m`` component
    gradients, so ``O((n + kappa) log(1/eps))`` in total.

    Parameters
    ----------
    L, mu : float
        Component smoothness ``L_max > 0`` and strong convexity ``0 < mu <= L``.
    eta : float
        Inner step size ``> 0``.
    m : int
        Epoch length (inner steps per snapshot), ``>= 1``.

    Returns
    -------
    Scalar
        ``rho`` in ``(0, 1)`` when applicable.

    Raises
    ------
    ValueError
        ``L <= 0``, ``mu`` outside ``(0, L]``, ``eta <= 0``, non-integer or ``m < 1``.

    Source: THEORY.md 4.7; Johnson-Zhang 2013, Thm 1.
    """
    L, mu = check_L_mu(L, mu)
    eta = check_positive("eta", eta)
    m = check_int("m", m, low=1)
    cond, rho = _svrg_parts(L, mu, eta, m)
    return make_scalar(cond, lambda: rho, tight=False, source=_SRC)


def svrg_bound(
    s: np.ndarray | float, L: float, mu: float, eta: float, m: int, delta0: float
) -> Curve:
    """SVRG's guarantee over epochs: ``E f(w~_s) - f* <= rho^s (f(w~_0) - f*)``.

    ``rho`` from :func:`svrg_rate` (same conditions; ``applicable=False`` and NaN values
    outside them). ``s`` counts epochs (snapshots), not inner steps: epoch ``s`` ends after
    ``s m`` inner steps and ``s (n + 2m)`` component gradients. Not tight.

    Parameters
    ----------
    s : array_like
        Epoch indices ``>= 0``.
    L, mu, eta, m
        As in :func:`svrg_rate`.
    delta0 : float
        ``f(w~_0) - f* >= 0``.

    Returns
    -------
    Curve
        ``quantity="f_gap"``, ``measure="E f(w~_s) - f*"``, ``rate = rho`` (per epoch),
        ``floor = 0``, ``extras["epoch_length"] = m``.

    Source: THEORY.md 4.7; Johnson-Zhang 2013, Thm 1.
    """
    s = check_steps(s, "s")
    L, mu = check_L_mu(L, mu)
    eta = check_positive("eta", eta)
    m = check_int("m", m, low=1)
    delta0 = check_nonnegative("delta0", delta0)
    cond, rho = _svrg_parts(L, mu, eta, m)
    return geometric_bound_curve(
        s,
        cond,
        delta0,
        rho,
        source=_SRC,
        measure="E f(w~_s) - f* (snapshot after s epochs)",
        extras={"epoch_length": m},
    )
