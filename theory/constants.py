"""Numerical PL and smoothness constants of 1-D functions, for separable test families
(THEORY.md 5, "Generic" and ``pl_sin``).

For ``f(w) = sum_j phi(x_j)`` (``x = Q^T (w - w*)``, ``Q`` orthogonal) the d-dimensional
constants are the 1-D ones: ``L = max |phi''|`` and ``mu = inf phi'(x)^2 / (2 (phi(x) - phi*))``
(the inequality holds coordinate by coordinate). Both are computed on a grid and refined by
bounded scalar minimisation (``scipy.optimize.minimize_scalar``, method ``"bounded"``)
between the neighbours of the best grid point; the refinement is kept only if it improves on
the grid, so the result is never worse than the grid value.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import lru_cache
from typing import NamedTuple

import numpy as np

from .conditions import check_real

__all__ = [
    "Constant1D",
    "PLConstants",
    "pl_constant_1d",
    "pl_sin_constants",
    "smoothness_constant_1d",
]

_SRC = "THEORY.md 5 (generic: L = max |f''|, mu = min f'^2 / (2 (f - f*)) on a grid off X*)"
#: absolute tolerance on the argument in the bounded refinement (relative to the bracket)
_XATOL_REL = 1e-13


class Constant1D(NamedTuple):
    """A numerically computed constant and the point that attains it."""

    value: float
    x: float


class PLConstants(NamedTuple):
    """Constants of ``phi(x) = x^2 + 3 sin^2 x``: ``L``, ``mu`` and the point ``x_worst > 0``
    where the PL ratio ``phi'^2 / (2 phi)`` attains ``mu`` (also at ``-x_worst``)."""

    L: float
    mu: float
    x_worst: float

    @property
    def x_at_min(self) -> float:
        """Alias of ``x_worst``: the minimiser of the PL ratio."""
        return self.x_worst


def _check_grid(grid: object) -> np.ndarray:
    g = np.asarray(grid, dtype=float)
    if g.ndim != 1 or g.size < 3:
        raise ValueError(f"grid has shape {g.shape}: expected a 1-D array of at least 3 points")
    if not np.all(np.isfinite(g)):
        raise ValueError("grid contains non-finite values: expected finite real numbers")
    g = np.unique(g)
    if g.size < 3:
        raise ValueError("grid has fewer than 3 distinct points: expected at least 3")
    return g


def _values(func: Callable, x: np.ndarray, name: str) -> np.ndarray:
    """``func`` on the grid (vectorised if it accepts arrays, else point by point), finite."""
    try:
        v = np.asarray(func(x), dtype=float)
    except (TypeError, ValueError):
        v = None
    if v is None or v.shape != x.shape:
        v = np.array([float(func(float(xi))) for xi in x])
    if not np.all(np.isfinite(v)):
        bad = x[~np.isfinite(v)][0]
        raise ValueError(f"{name}({bad:.6g}) is not finite: expected finite values on the grid")
    return v


def _refine_min(
    objective: Callable[[float], float], lo: float, hi: float
) -> tuple[float, float] | None:
    """Bounded minimisation of ``objective`` on ``[lo, hi]`` (the bracket of a grid point)."""
    if not hi > lo:
        return None
    from scipy.optimize import minimize_scalar  # noqa: PLC0415  (lazy: keeps import theory light)

    res = minimize_scalar(
        objective,
        bounds=(lo, hi),
        method="bounded",
        options={"xatol": _XATOL_REL * max(1.0, abs(lo), abs(hi))},
    )
    if not np.isfinite(res.fun):
        return None
    return float(res.fun), float(res.x)


def pl_constant_1d(
    f: Callable,
    fprime: Callable,
    x_star: float,
    f_star: float,
    grid: np.ndarray,
) -> Constant1D:
    """Best PL constant of a 1-D function on an interval: ``mu = inf f'(x)^2 / (2 (f(x) - f*))``.

    The ratio is evaluated at the grid points with ``f(x) > f*`` (``x*`` itself and any other
    minimiser are skipped), and the smallest one is refined by bounded minimisation between its
    grid neighbours, on its own side of ``x*``. The infimum is over the range of ``grid``: a
    family whose ratio decreases towards infinity needs a grid that covers where it is
    smallest (for ``x^2 + 3 sin^2 x`` it tends to 2 at infinity and the minimum is near 2.2).
    Avoid grid points so close to ``x*`` that ``f(x) - f*`` is dominated by rounding.

    Parameters
    ----------
    f, fprime : callable
        ``f`` and ``f'``, vectorised over NumPy arrays (scalar callables also work, slower).
    x_star, f_star : float
        A minimiser and the minimum value.
    grid : array_like, 1-D
        Evaluation points (at least 3; sorted and deduplicated here).

    Returns
    -------
    Constant1D
        ``(value, x)``: the constant ``mu`` and the point attaining it.

    Raises
    ------
    ValueError
        Bad grid, non-finite ``x_star``/``f_star`` or ``f``/``f'`` values, no grid point with
        ``f(x) > f*``, or a point with ``f(x) < f*`` (``f_star`` is not the minimum).

    Source: THEORY.md 5 ("Generic"); Karimi-Nutini-Schmidt 2016.
    """
    x_star = check_real("x_star", x_star)
    f_star = check_real("f_star", f_star)
    g = _check_grid(grid)
    gap = _values(f, g, "f") - f_star
    if np.any(gap < 0):
        i = int(np.argmin(gap))
        raise ValueError(
            f"f({g[i]:.6g}) - f_star = {gap[i]:.3g} < 0: f_star is not the minimum of f"
        )
    d = _values(fprime, g, "fprime")
    ok = gap > 0
    if not ok.any():
        raise ValueError("grid has no point with f(x) > f_star: expected points off X*")
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(ok, d * d / (2.0 * gap), np.inf)
    k = int(np.argmin(ratio))
    best = Constant1D(float(ratio[k]), float(g[k]))

    def objective(x: float) -> float:
        fx = float(f(x)) - f_star
        if not fx > 0:
            return math.inf
        dx = float(fprime(x))
        return dx * dx / (2.0 * fx)

    lo, hi = g[max(k - 1, 0)], g[min(k + 1, g.size - 1)]
    if g[k] > x_star:
        lo = max(lo, x_star)
    elif g[k] < x_star:
        hi = min(hi, x_star)
    ref = _refine_min(objective, lo, hi)
    if ref is not None and ref[0] < best.value:
        best = Constant1D(*ref)
    return best


def smoothness_constant_1d(fsecond: Callable, grid: np.ndarray) -> Constant1D:
    """Smoothness constant of a 1-D function on an interval: ``L = max |f''(x)|``.

    ``|f''|`` is evaluated on the grid and its largest value refined by bounded maximisation
    between the neighbouring grid points. The maximum is over the range of ``grid``.

    Parameters
    ----------
    fsecond : callable
        ``f''``, vectorised over NumPy arrays (scalar callables also work, slower).
    grid : array_like, 1-D
        Evaluation points (at least 3).

    Returns
    -------
    Constant1D
        ``(value, x)``: ``L`` and a point attaining it.

    Raises
    ------
    ValueError
        Bad grid or non-finite ``f''`` values on it.

    Source: THEORY.md 5 ("Generic").
    """
    g = _check_grid(grid)
    h = np.abs(_values(fsecond, g, "fsecond"))
    k = int(np.argmax(h))
    best = Constant1D(float(h[k]), float(g[k]))
    lo, hi = g[max(k - 1, 0)], g[min(k + 1, g.size - 1)]
    ref = _refine_min(lambda x: -abs(float(fsecond(x))), lo, hi)
    if ref is not None and -ref[0] > best.value:
        best = Constant1D(-ref[0], ref[1])
    return best


def _phi(x):
    return x * x + 3.0 * np.sin(x) ** 2


def _phi_prime(x):
    return 2.0 * x + 3.0 * np.sin(2.0 * x)


def _phi_second(x):
    return 2.0 + 6.0 * np.cos(2.0 * x)


@lru_cache(maxsize=1)
def pl_sin_constants() -> PLConstants:
    """Constants of ``phi(x) = x^2 + 3 sin^2 x`` (``phi* = 0`` at ``x = 0``), computed.

    ``L = max |phi''| = max |2 + 6 cos 2x| = 8`` (at ``x = 0``), and
    ``mu = min_{x != 0} phi'(x)^2 / (2 phi(x)) ~ 0.17553`` at ``x ~ +-2.2017`` (KNS 2016 give
    the valid but loose ``1/32``). Both by :func:`smoothness_constant_1d` /
    :func:`pl_constant_1d`: ``phi''`` is pi-periodic, so a grid over one period ``[-pi/2,
    pi/2]`` (containing 0) gives the maximum; the PL ratio is even, tends to 8 at 0 and to 2 at
    infinity (``phi ~ x^2``, ``phi' ~ 2x``, oscillating terms ``O(1/x)``), so a grid on
    ``(0, 20]`` holds its minimum; Brent refinement makes ``x_worst`` accurate to ~1e-12 and
    ``mu`` (flat there) to rounding. Cached (pure).

    Returns
    -------
    PLConstants
        ``(L, mu, x_worst)`` with ``x_worst > 0`` (``x_at_min`` is an alias).

    Source: THEORY.md 5 (``pl_sin``); Karimi-Nutini-Schmidt 2016.
    """
    L = smoothness_constant_1d(_phi_second, np.linspace(-np.pi / 2, np.pi / 2, 1001)).value
    grid = np.linspace(1e-3, 20.0, 200_001)
    mu, x = pl_constant_1d(_phi, _phi_prime, 0.0, 0.0, grid)
    return PLConstants(float(L), float(mu), float(x))
