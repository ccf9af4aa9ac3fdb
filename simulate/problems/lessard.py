"""The Lessard–Recht–Packard piecewise quadratic: heavy ball's counterexample (THEORY.md §2.2).

φ(x) = 12.5 x² for x < 1, ½x² + 24x − 12 for 1 ≤ x < 2, 12.5 x² − 24x + 36 for x ≥ 2
(Lessard–Recht–Packard 2016, §4.6). It is C¹ and piecewise quadratic with φ'' ∈ {25, 1, 25},
so it is 1-strongly convex and 25-smooth with both constants attained; φ* = 0 at x = 0. Heavy
ball with Polyak's pair for κ = 25 (α = 1/9, β = 4/9) started at x₋₁ = x₀ ∈ [3.07, 3.46] does
not converge on it: the iterates approach the 3-cycle {792, −2208, 2592}/1225.

The formulas live in :func:`theory.lrp_value` / :func:`theory.lrp_grad` (one definition);
this module wraps them as a batched :class:`~simulate.problems.base.Problem`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from theory import lrp_grad, lrp_value

from ..backend import to_host
from ..validation import check_int
from .base import Problem

__all__ = ["LessardProblem"]


class LessardProblem(Problem):
    """f(w) = Σ_j φ(w_j) with φ the Lessard–Recht–Packard function (THEORY.md §2.2).

    Parameters
    ----------
    dim
        d ≥ 1 (the counterexample is d = 1; for d > 1 the separable sum keeps the constants).

    Notes
    -----
    Constants (exact). φ is C¹ (the pieces agree in value and slope at x = 1: 12.5 and 25, and
    at x = 2: 38 and 26) and φ'' ∈ {25, 1, 25} on the three pieces, so φ' is monotone with
    slopes in [1, 25]: μ = 1 (attained on 1 ≤ x < 2) and L = 25 (attained on x < 1 and x ≥ 2).
    For the separable sum the Hessian is diagonal with the same entries, so the constants do
    not change with d. f* = 0 at w* = 0 (φ'(0) = 0, unique minimiser by strong convexity).

    Evaluation. ``value``/``grad`` call :func:`theory.lrp_value`/:func:`theory.lrp_grad` on a
    host NumPy view; on another array module (CuPy) the batch is copied to the host and back
    (the problem is one- or few-dimensional, so that copy is small). The result has the
    input's dtype.
    """

    direct_forms = True  # f − f*, ‖w − w*‖², ∇f all from w − w*: no cancellation

    name = "lessard"

    def __init__(self, dim: int = 1) -> None:
        self.dim = check_int("dim", dim, 1)
        self.L = 25.0
        self.mu = 1.0
        self.f_star = 0.0
        self.w_star = np.zeros(self.dim)
        self.convex = True
        self.strongly_convex = True

    def _apply(self, fn: Any, w: Any) -> Any:
        out = np.asarray(fn(to_host(w)), dtype=w.dtype)
        return out if self.xp is np else self.xp.asarray(out)

    def value(self, w: Any) -> Any:
        """f(w) = Σ_j φ(w_j), shape (...)."""
        return self._apply(lambda x: lrp_value(x).sum(axis=-1), w)

    def f_gap(self, w: Any) -> Any:
        """f(w) − f* = f(w) (f* = 0)."""
        return self.value(w)

    def grad(self, w: Any) -> Any:
        """∇f(w) = (φ'(w_j))_j with φ' = 25x, x + 24, 25x − 24 on the three pieces."""
        return self._apply(lrp_grad, w)

    def dist2(self, w: Any) -> Any:
        """‖w − w*‖² = ‖w‖² (unique minimiser 0)."""
        return (w * w).sum(axis=-1)
