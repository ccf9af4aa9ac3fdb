"""Builders for the two kinds of :class:`~theory.conditions.Curve` many modules return (private).

An exact curve (an identity, always applicable, values already computed) and a geometric
bound ``start * c^t`` with floor 0 are built the same way in several modules; the
:func:`~theory.conditions.make_curve` call for each lives here once.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from .conditions import Conditions, Curve, make_curve

__all__ = ["exact_curve", "expected_measure", "geometric_bound_curve"]


def exact_curve(
    shape: tuple[int, ...],
    values: np.ndarray,
    *,
    source: str,
    quantity: str,
    measure: str,
    rate: float = math.nan,
    floor: float = math.nan,
    extras: Mapping[str, Any] | None = None,
) -> Curve:
    """An exact, always applicable curve of precomputed values.

    Parameters
    ----------
    shape : tuple of int
        Shape of the requested steps.
    values : ndarray
        The curve's values, broadcastable to ``shape``.
    source, quantity, measure
        As in :func:`~theory.conditions.make_curve`.
    rate, floor : float, optional
        Asymptotic per-step rate and limit (NaN when there is none).
    extras : mapping, optional
        Extra named results.

    Returns
    -------
    Curve
        ``kind="exact"``, ``tight=True``, no conditions.
    """
    return make_curve(shape, Conditions(), lambda: values, tight=True, source=source,
                      quantity=quantity, kind="exact", measure=measure, rate=rate, floor=floor,
                      extras=extras)


def expected_measure(quantity: str) -> str:
    """The ``measure`` text of an expected quantity at the iterate ``w_t``.

    Parameters
    ----------
    quantity : {"f_gap", "dist2"}

    Returns
    -------
    str
        ``"E f(w_t) - f*"`` for ``"f_gap"``, ``"E||w_t - w*||^2"`` otherwise.
    """
    return "E f(w_t) - f*" if quantity == "f_gap" else "E||w_t - w*||^2"


def geometric_bound_curve(
    t: np.ndarray,
    cond: Conditions,
    start: float,
    rate: float,
    *,
    source: str,
    measure: str,
    extras: Mapping[str, Any] | None = None,
) -> Curve:
    """A linear-rate bound ``start * rate^t`` on ``f - f*`` with floor 0.

    Parameters
    ----------
    t : ndarray
        Steps (or epochs) at which to evaluate the bound, already checked.
    cond : Conditions
        Conditions of the bound; the values are computed only when they hold.
    start : float
        Value at ``t = 0``.
    rate : float
        Factor per step ``c``.
    source, measure
        As in :func:`~theory.conditions.make_curve`.
    extras : mapping, optional
        Extra named results.

    Returns
    -------
    Curve
        ``quantity="f_gap"``, ``kind="bound"``, ``tight=False``, ``rate=rate``, ``floor=0``.
    """
    return make_curve(
        t.shape,
        cond,
        lambda: start * np.power(rate, t),
        tight=False,
        source=source,
        quantity="f_gap",
        measure=measure,
        rate=rate,
        floor=0.0,
        extras=extras,
    )
