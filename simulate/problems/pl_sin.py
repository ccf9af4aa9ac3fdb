"""A separable nonconvex PL function: f(w) = Σ_j c·(x_j² + 3 sin² x_j), x = Qᵀ(w − w*).

The 1-D function φ(x) = x² + 3 sin² x (Karimi–Nutini–Schmidt 2016, §2) has f* = 0 at x = 0,
its only stationary point; φ''(x) = 2 + 6 cos 2x ∈ [−4, 8], so it is 8-smooth and nonconvex,
and it satisfies PL with the best constant μ₁ = inf_{x≠0} φ'(x)² / (2φ(x)) ≈ 0.17553, attained
at x ≈ ±2.2017 (THEORY.md §5; KNS state the valid but loose μ = 1/32).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..validation import check_int, check_positive
from ._common import CastingProblem, haar_orthogonal, host_rng, validated_point

__all__ = ["PLSinProblem", "pl_sin_1d_constants"]


def pl_sin_1d_constants() -> tuple[float, float, float]:
    """(L₁, μ₁, x̂) of φ(x) = x² + 3 sin² x: L₁ = 8, μ₁ = min φ'²/(2φ), x̂ > 0 its minimiser.

    Taken from :func:`theory.pl_sin_constants` (the single source of the closed forms); until
    theory provides it, from :func:`_pl_sin_1d_private` (same definition, computed here).
    """
    try:
        from theory import pl_sin_constants  # noqa: PLC0415  (simulate → theory, one way)
    except ImportError:  # TEMPORARY: theory.pl_sin_constants not written yet
        return _pl_sin_1d_private()
    return _unpack(pl_sin_constants())


def _pl_sin_1d_private() -> tuple[float, float, float]:
    """(8, μ₁, x̂) computed directly: μ₁ = min_{x>0} φ'(x)²/(2φ(x)), φ = x² + 3 sin² x.

    The ratio r(x) is even, → 8 as x → 0 (φ ≈ 4x²) and → 2 as |x| → ∞, so its minimum lies in
    a bounded interval: a grid on (0, 20] locates the basin, bounded Brent refines it. At the
    minimum r is flat, so x̂ accurate to ~1e-8 gives μ₁ to ~1e-16 relative.
    """
    from scipy.optimize import minimize_scalar  # noqa: PLC0415

    def ratio(x: float) -> float:
        d = 2.0 * x + 3.0 * np.sin(2.0 * x)
        f = x * x + 3.0 * np.sin(x) ** 2
        return d * d / (2.0 * f)

    grid = np.linspace(1e-3, 20.0, 200_001)
    k = int(np.argmin(ratio(grid)))
    res = minimize_scalar(ratio, bounds=(grid[max(k - 1, 0)], grid[k + 1]), method="bounded",
                          options={"xatol": 1e-14})
    return 8.0, float(res.fun), float(res.x)


def _unpack(consts: Any) -> tuple[float, float, float]:
    if isinstance(consts, dict):
        return float(consts["L"]), float(consts["mu"]), float(consts["x_worst"])
    L1, mu1, x_hat = (getattr(consts, k) for k in ("L", "mu", "x_worst"))
    return float(L1), float(mu1), float(x_hat)


class PLSinProblem(CastingProblem):
    """f(w) = Σ_j c·(x_j² + 3 sin² x_j) with x = Qᵀ(w − w*): PL and smooth, not convex.

    Parameters
    ----------
    dim
        d ≥ 1.
    scale
        c > 0. L = 8c and μ = c·μ₁ (μ₁ ≈ 0.17553, computed by theory.pl_sin_constants).
    rotated
        False: Q = I (separable in w). True: Q Haar-random orthogonal from ``seed``.
    seed
        Seed of the host generator (only used when ``rotated``).
    w_star
        The minimiser (default zeros); f* = 0.

    Notes
    -----
    Why the d-dimensional sum keeps the 1-D constants (THEORY.md §5). With φ(x) = x² + 3 sin² x
    and f(w) = Σ_j c φ(x_j), x = Qᵀ(w − w*):

    * Smoothness: ∇²f(w) = Q diag(c φ''(x_j)) Qᵀ, so ‖∇²f‖₂ = c·max_j |φ''(x_j)| ≤ 8c since
      φ'' = 2 + 6 cos 2x ∈ [−4, 8]; equality at x = 0. Hence L = 8c exactly.
    * PL: ‖∇f(w)‖² = Σ_j c² φ'(x_j)² ≥ Σ_j c² · 2μ₁ φ(x_j) = 2(cμ₁)(f(w) − 0), using the 1-D
      inequality coordinate by coordinate (Q orthogonal preserves the norm). Equality when every
      coordinate is 0 or at the 1-D worst point ±x̂, so μ = cμ₁ is the best constant in every
      dimension.

    f has the unique minimiser w* (x = 0 is φ's only stationary point), so ``dist2`` is
    ‖w − w*‖². ``x_worst`` = x̂: the eigenbasis point x = (x̂, 0, …, 0) attains the PL ratio μ.
    """

    direct_forms = True  # f − f*, ‖w − w*‖², ∇f all from w − w*: no cancellation

    name = "pl_sin"
    _device_arrays = ("_Q", "_w_star_dev")

    def __init__(self, dim: int, scale: float = 1.0, rotated: bool = False, seed: int = 0,
                 w_star: Any = None) -> None:
        d = check_int("dim", dim, 1)
        c = check_positive("scale", scale)
        self.seed = check_int("seed", seed, 0)
        L1, mu1, x_hat = pl_sin_1d_constants()
        self.dim = d
        self.scale = c
        self.L = L1 * c
        self.mu = mu1 * c
        self.mu_1d = mu1
        self.x_worst = x_hat
        self.f_star = 0.0
        self.w_star = validated_point("w_star", w_star, d)
        self.convex = False
        self.strongly_convex = False
        self.rotated = bool(rotated)
        self.rotation = haar_orthogonal(d, host_rng(self.seed)) if self.rotated else None
        self._Q = self.rotation
        self._w_star_dev = self.w_star.copy()

    def to_eigenbasis(self, w: Any) -> Any:
        """x = Qᵀ(w − w*) for w shaped (..., d) (row form: (w − w*) @ Q)."""
        e = w - self._arr("_w_star_dev", w.dtype)
        return e if self._Q is None else e @ self._arr("_Q", w.dtype)

    def value(self, w: Any) -> Any:
        """f(w) = c Σ_j (x_j² + 3 sin² x_j), shape (...)."""
        xp = self.xp
        x = self.to_eigenbasis(w)
        s = xp.sin(x)
        return (w.dtype.type(self.scale) * (x * x + 3.0 * s * s)).sum(axis=-1)

    def f_gap(self, w: Any) -> Any:
        """f(w) − f* = f(w) (f* = 0)."""
        return self.value(w)

    def grad(self, w: Any) -> Any:
        """∇f(w) = Q (c (2x + 3 sin 2x)), x = Qᵀ(w − w*)."""
        xp = self.xp
        x = self.to_eigenbasis(w)
        gx = w.dtype.type(self.scale) * (2.0 * x + 3.0 * xp.sin(2.0 * x))
        return gx if self._Q is None else gx @ self._arr("_Q", w.dtype).T

    def dist2(self, w: Any) -> Any:
        """‖w − w*‖² (unique minimiser)."""
        e = w - self._arr("_w_star_dev", w.dtype)
        return (e * e).sum(axis=-1)

    def describe(self) -> dict[str, Any]:
        out = super().describe()
        out.update({"scale": self.scale, "rotated": self.rotated})
        return out

