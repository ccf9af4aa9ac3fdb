"""Over-parameterised least squares: f(w) = ½‖Aw − b‖², A ∈ R^{n×d}, n < d, rank n.

PL with μ = σ_min(A)² but not strongly convex (AᵀA is singular); f* = 0 since b = A w_gen lies
in the range of A; gradient descent converges to the projection of w₀ on the solution set
(THEORY.md §5).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..validation import check_int, check_positive, check_range
from ._common import CastingProblem, haar_orthogonal, host_rng, orthonormal_columns

__all__ = ["OverparamLeastSquares"]


class OverparamLeastSquares(CastingProblem):
    """f(w) = ½‖Aw − b‖² with A = U diag(s) Vᵀ of rank n < d and b = A w_gen.

    Parameters
    ----------
    n
        Number of equations, 1 ≤ n < d.
    dim
        d.
    L, mu
        Largest and smallest nonzero eigenvalue of AᵀA, 0 < μ ≤ L: the singular values are
        s = geomspace(√μ, √L, n) with both ends set exactly (n = 1 requires μ = L).
    seed
        Seed of the host generator: U (n×n Haar orthogonal), V (d×n, orthonormal columns, uniform
        on the Stiefel manifold) and w_gen (standard normal).

    Notes
    -----
    Constants (THEORY.md §5): ∇²f = AᵀA = V diag(s²) Vᵀ, so L = s_max² = L and
    ‖∇f‖² = ‖A ᵀr‖² ≥ s_min²‖r‖² = 2μ f for r = Aw − b ∈ range(A): PL(μ), tight along the
    bottom right singular vector. f* = 0; the solution set is X* = w* + null(A) with
    w* = A⁺b = V Vᵀ w_gen the minimum-norm solution, and dist(w, X*)² = ‖A⁺(Aw − b)‖² =
    ‖Vᵀ(w − w*)‖². Evaluation uses the factors: with x = Vᵀ(w − w*) (shape (..., n)),
    f = ½‖s ⊙ x‖² (exact f − f*, no cancellation), ∇f = V (s² ⊙ x). ``A``, ``b`` and
    ``pinv`` are host arrays for direct checks. s² equals L and μ up to one rounding of the
    square root (relative 1e-16).
    """

    name = "overparam_ls"
    _device_arrays = ("_V", "_s", "_s2", "_w_star_dev")

    def __init__(self, n: int, dim: int, L: float = 1.0, mu: float = 1e-2,
                 seed: int = 0) -> None:
        d = check_int("dim", dim, 2)
        n = check_int("n", n, 1, d - 1)
        L = check_positive("L", L)
        mu = check_range("mu", mu, 0.0, L, low_inclusive=False)
        self.seed = check_int("seed", seed, 0)
        if n == 1 and mu != L:
            raise ValueError(f"mu={mu!r} is not allowed with n=1 (a single singular value): "
                             f"allowed mu == L ({L!r})")
        rng = host_rng(self.seed)
        U = haar_orthogonal(n, rng)
        V = orthonormal_columns(d, n, rng)
        w_gen = rng.standard_normal(d)
        s = np.geomspace(np.sqrt(mu), np.sqrt(L), n)
        s[0], s[-1] = np.sqrt(mu), np.sqrt(L)
        self.n = n
        self.dim = d
        self.L = L
        self.mu = mu
        self.f_star = 0.0
        self.convex = True
        self.strongly_convex = False
        self.singular_values = s
        self.U = U
        self.V = V
        self.A = (U * s) @ V.T
        self.w_gen = w_gen
        self.b = self.A @ w_gen
        self.pinv = (V / s) @ U.T
        self.w_star = V @ (V.T @ w_gen)  # A⁺b = V diag(1/s) Uᵀ U diag(s) Vᵀ w_gen
        self.hessian_trace = float((s * s).sum())
        self._V = V
        self._s = s
        self._s2 = s * s
        self._w_star_dev = self.w_star.copy()

    def _coords(self, w: Any) -> Any:
        """x = Vᵀ(w − w*) (row form (w − w*) @ V), shape (..., n)."""
        return (w - self._arr("_w_star_dev", w.dtype)) @ self._arr("_V", w.dtype)

    def f_gap(self, w: Any) -> Any:
        """f(w) − f* = ½‖s ⊙ Vᵀ(w − w*)‖² = ½‖Aw − b‖²."""
        x = self._coords(w) * self._arr("_s", w.dtype)
        return 0.5 * (x * x).sum(axis=-1)

    def value(self, w: Any) -> Any:
        """f(w) = ½‖Aw − b‖² (f* = 0), shape (...)."""
        return self.f_gap(w)

    def grad(self, w: Any) -> Any:
        """∇f(w) = Aᵀ(Aw − b) = V (s² ⊙ Vᵀ(w − w*))."""
        return (self._coords(w) * self._arr("_s2", w.dtype)) @ self._arr("_V", w.dtype).T

    def dist2(self, w: Any) -> Any:
        """dist(w, {Aw = b})² = ‖A⁺(Aw − b)‖² = ‖Vᵀ(w − w*)‖²."""
        x = self._coords(w)
        return (x * x).sum(axis=-1)

    def projection_of(self, w0: Any) -> Any:
        """w0 − A⁺(Aw0 − b): the projection of w0 on the solution set, i.e. the limit of GD
        from w0 (THEORY.md §5); w0 shaped (..., d), host or xp arrays of this problem."""
        xp = self.xp
        w0 = xp.asarray(w0)
        if not np.issubdtype(w0.dtype, np.floating):
            w0 = w0.astype(np.float64)
        return w0 - self._coords(w0) @ self._arr("_V", w0.dtype).T

    def hessian_matrix(self) -> np.ndarray:
        """AᵀA on the host, shape (d, d)."""
        return (self.V * self.singular_values**2) @ self.V.T

    def hessian_diag(self) -> np.ndarray:
        """diag(AᵀA) on the host."""
        return (self.V**2) @ self.singular_values**2

    def hessian_sqrt_apply(self, z: Any) -> Any:
        """(AᵀA)^{1/2} z = V (s ⊙ Vᵀ z) for z shaped (..., d)."""
        V = self._arr("_V", z.dtype)
        return ((z @ V) * self._arr("_s", z.dtype)) @ V.T

    def describe(self) -> dict[str, Any]:
        out = super().describe()
        out["n"] = self.n
        return out
