"""Problem families with exactly known constants (L, μ, f*, w*, and σ² for finite sums).

* :class:`QuadraticProblem` — diagonal or rotated quadratics with a prescribed spectrum law,
  full rank or rank-deficient (PL, not strongly convex).
* :class:`DenseQuadraticProblem` — the quadratic of any given symmetric positive definite A.
* :class:`PLSinProblem` — the separable nonconvex PL function Σ c(x² + 3 sin² x).
* :class:`OverparamLeastSquares` — ½‖Aw − b‖² with n < d (interpolation, PL).
* :class:`FiniteSumLeastSquares`, :class:`FiniteSumLogistic` — finite sums with component
  gradients for real minibatch sampling (:class:`FiniteSumProblem`).
"""

from .base import Problem
from .finite_sum import FiniteSumLeastSquares, FiniteSumLogistic, FiniteSumProblem
from .lessard import LessardProblem
from .overparam import OverparamLeastSquares
from .pl_sin import PLSinProblem, pl_sin_1d_constants
from .quadratic import SPECTRUM_LAWS, DenseQuadraticProblem, QuadraticProblem, spectrum

__all__ = [
    "SPECTRUM_LAWS",
    "DenseQuadraticProblem",
    "FiniteSumLeastSquares",
    "FiniteSumLogistic",
    "FiniteSumProblem",
    "LessardProblem",
    "OverparamLeastSquares",
    "PLSinProblem",
    "Problem",
    "QuadraticProblem",
    "pl_sin_1d_constants",
    "spectrum",
]
