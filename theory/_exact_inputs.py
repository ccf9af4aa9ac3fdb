"""Input checks shared by the exact noisy-quadratic modules (private).

:mod:`theory.sgd_exact` and :mod:`theory.hb_exact` take the same per-coordinate inputs
(spectrum, steps, noise variances, initial second moments), weight the coordinates the same
way for each ``quantity`` and refuse a stationary ``dist2`` value for the same reason; the
code for that lives here once.
"""

from __future__ import annotations

from typing import Final

import numpy as np

from ._coords import broadcast_coords
from .conditions import Conditions, check_real, check_vector

__all__ = ["check_noisy_coords", "quantity_weights", "require_no_random_walk"]

#: default of ``beta`` in :func:`check_noisy_coords`: no momentum parameter to check
_NO_BETA: Final = object()


def check_noisy_coords(
    eigenvalues: object,
    alpha: object,
    noise_var: object,
    m0: object,
    *,
    beta: object = _NO_BETA,
) -> tuple[np.ndarray, np.ndarray, float | None, np.ndarray, np.ndarray]:
    """Validate and broadcast the per-coordinate inputs of an exact noisy-quadratic curve.

    Checks, in this order (so the first bad input is the one reported): ``eigenvalues >= 0``,
    ``alpha > 0``, ``beta`` a finite real number (only when given), ``noise_var >= 0``,
    ``m0 >= 0``; then broadcasts the four per-coordinate inputs to one length.

    Parameters
    ----------
    eigenvalues, alpha, noise_var, m0 : float or array_like (d,)
        ``lambda_i``, steps ``alpha_i``, noise variances ``s_i^2`` and ``E e_{0,i}^2``.
    beta : float, optional
        Momentum parameter, checked between ``alpha`` and ``noise_var``; omit it for methods
        without momentum.

    Returns
    -------
    tuple
        ``(lam, a, beta, s2, m0)``: four float arrays of one shape (d,) and ``beta`` as a
        float, or ``None`` when it was not given.

    Raises
    ------
    ValueError
        An input out of range or not finite, or inputs that do not broadcast (the messages
        of :func:`theory.conditions.check_vector`, :func:`theory.conditions.check_real` and
        :func:`theory._coords.broadcast_coords`).
    """
    lam = check_vector("eigenvalues", eigenvalues, low=0.0)
    a = check_vector("alpha", alpha, low=0.0, low_inclusive=False)
    checked_beta = None if beta is _NO_BETA else check_real("beta", beta)
    s2 = check_vector("noise_var", noise_var, low=0.0)
    m0 = check_vector("m0", m0, low=0.0)
    lam, a, s2, m0 = broadcast_coords(eigenvalues=lam, alpha=a, noise_var=s2, m0=m0)
    return lam, a, checked_beta, s2, m0


def quantity_weights(lam: np.ndarray, quantity: str) -> np.ndarray:
    """Per-coordinate weights of ``E e_i^2`` in the reported quantity.

    Parameters
    ----------
    lam : ndarray (d,)
        Eigenvalues ``lambda_i``.
    quantity : {"f_gap", "dist2"}
        ``"f_gap"``: ``f - f* = 1/2 sum_i lambda_i e_i^2``; ``"dist2"``: ``sum_i e_i^2``.

    Returns
    -------
    ndarray (d,)
        ``lambda / 2`` for ``"f_gap"``, ones for ``"dist2"``.
    """
    return 0.5 * lam if quantity == "f_gap" else np.ones_like(lam)


def require_no_random_walk(
    cond: Conditions, quantity: str, pos: np.ndarray, s2: np.ndarray
) -> None:
    """Record on ``cond`` that ``dist2`` has no stationary value when a flat direction is noisy.

    A coordinate with ``lambda_i = 0`` and noise ``s_i^2 > 0`` random-walks: ``E||e_t||^2``
    grows linearly. Only ``quantity="dist2"`` is affected (such a coordinate contributes 0
    to ``f - f*``).

    Parameters
    ----------
    cond : Conditions
        The conditions of the stationary value; a failed requirement is added when a
        coordinate random-walks.
    quantity : {"f_gap", "dist2"}
    pos : ndarray of bool (d,)
        ``lambda_i > 0``.
    s2 : ndarray (d,)
        Noise variances ``s_i^2``.
    """
    if quantity == "dist2":
        walk = ~pos & (s2 > 0)
        if walk.any():
            cond.require(
                False,
                f"lambda=0 with noise (coordinate {int(np.argmax(walk))}): E||e_t||^2 grows "
                "linearly, no stationary value",
            )
