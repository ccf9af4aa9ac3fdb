"""Lessard-Recht-Packard counterexample: heavy ball cycles on a strongly convex function
(THEORY.md 2.2)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

__all__ = ["HBCounterexample", "hb_counterexample", "lrp_grad", "lrp_value"]


def lrp_value(x: np.ndarray | float) -> np.ndarray:
    """The Lessard-Recht-Packard function (1-strongly convex, 25-smooth, ``f* = 0`` at 0).

    ``f(x) = 12.5 x^2`` for ``x < 1``; ``x^2/2 + 24 x - 12`` for ``1 <= x < 2``;
    ``12.5 x^2 - 24 x + 36`` for ``x >= 2`` (C^1, piecewise quadratic). Elementwise.

    Source: THEORY.md 2.2; Lessard-Recht-Packard 2016.
    """
    x = np.asarray(x, dtype=float)
    return np.where(
        x < 1.0,
        12.5 * x * x,
        np.where(x < 2.0, 0.5 * x * x + 24.0 * x - 12.0, 12.5 * x * x - 24.0 * x + 36.0),
    )


def lrp_grad(x: np.ndarray | float) -> np.ndarray:
    """Derivative of :func:`lrp_value`: ``25x``, ``x + 24``, ``25x - 24`` on the three pieces."""
    x = np.asarray(x, dtype=float)
    return np.where(x < 1.0, 25.0 * x, np.where(x < 2.0, x + 24.0, 25.0 * x - 24.0))


@dataclass(frozen=True, eq=False)
class HBCounterexample:
    """Constants of the Lessard-Recht-Packard counterexample.

    Attributes
    ----------
    L, mu : float
        25 and 1.
    alpha, beta : float
        Heavy-ball parameters 1/9 and 4/9 (Polyak's pair for kappa = 25).
    cycle : numpy.ndarray
        ``[792, -2208, 2592] / 1225`` (about 0.6465, -1.8024, 2.1159), in the order heavy ball
        visits them.
    x0_interval : tuple of float
        Starts ``x_{-1} = x_0`` in ``[3.07, 3.46]`` converge to the cycle.
    x_star, f_star : float
        Minimiser 0 and minimum 0.
    value, grad : callable
        :func:`lrp_value` and :func:`lrp_grad`.
    """

    L: float = 25.0
    mu: float = 1.0
    alpha: float = 1.0 / 9.0
    beta: float = 4.0 / 9.0
    cycle: np.ndarray = field(default_factory=lambda: np.array([792.0, -2208.0, 2592.0]) / 1225.0)
    x0_interval: tuple[float, float] = (3.07, 3.46)
    x_star: float = 0.0
    f_star: float = 0.0
    value: Callable[[np.ndarray | float], np.ndarray] = lrp_value
    grad: Callable[[np.ndarray | float], np.ndarray] = lrp_grad

    def __post_init__(self) -> None:
        self.cycle.flags.writeable = False


def hb_counterexample() -> HBCounterexample:
    """The Lessard-Recht-Packard (2016) function and parameters on which heavy ball with
    Polyak-style parameters (``alpha = 1/9``, ``beta = 4/9``, ``L = 25``, ``mu = 1``) does not
    converge: from ``x_{-1} = x_0 in [3.07, 3.46]`` it converges to a 3-cycle. No guarantee
    for heavy ball on strongly convex functions follows from the quadratic analysis.

    Source: THEORY.md 2.2; Lessard-Recht-Packard 2016.
    """
    return HBCounterexample()
