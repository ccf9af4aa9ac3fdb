"""Quadratics f(w) = ½ (w − w*)ᵀ A (w − w*) + f*.

:class:`QuadraticProblem`: A = Q diag(λ) Qᵀ with Q = I (diagonal) or a Haar-random orthogonal
matrix (rotated). The spectrum laws put the d − n_zero nonzero eigenvalues in [μ, L] and
contain μ and L exactly, so the constants are exact: L = λ_max, μ = λ_min (nonzero). With
n_zero > 0 zero eigenvalues the function is PL(μ) but not strongly convex (THEORY.md §5;
Karimi–Nutini–Schmidt 2016).

:class:`DenseQuadraticProblem`: any given symmetric positive definite A (e.g. a diagonally
scaled one for preconditioning, THEORY.md §3); L and μ are its extreme eigenvalues.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..validation import check_choice, check_finite, check_int, check_positive, check_range
from ._common import (
    CastingProblem,
    check_finite_array,
    haar_orthogonal,
    host_rng,
    validated_point,
)

__all__ = ["SPECTRUM_LAWS", "DenseQuadraticProblem", "QuadraticProblem", "spectrum"]

#: the spectrum laws of :func:`spectrum`
SPECTRUM_LAWS = ("log-uniform", "uniform", "two-point", "power-law")


def spectrum(law: str, m: int, L: float, mu: float) -> np.ndarray:
    """The m nonzero eigenvalues of a spectrum law, ascending, with μ and L exactly included.

    Parameters
    ----------
    law
        ``"log-uniform"``: λ = geomspace(μ, L, m) (constant ratio between neighbours);
        ``"uniform"``: λ = linspace(μ, L, m);
        ``"two-point"``: ⌊m/2⌋ eigenvalues at μ and ⌈m/2⌉ at L (odd m: the extra one at L);
        ``"power-law"``: λ_i = L·i^(−a), i = 1..m, a = log(κ)/log(m), so λ_1 = L and
        λ_m = L/κ = μ; with κ = m this is the noisy-quadratic-model law λ_i = L/i
        (Zhang et al. 2019, "Which algorithmic choices matter at which batch sizes?").
    m
        Number of nonzero eigenvalues, ≥ 1. With m = 1 the law is the single value L, which
        requires μ = L.
    L, mu
        Largest and smallest eigenvalue, 0 < μ ≤ L.

    Returns
    -------
    numpy.ndarray
        Shape (m,), ascending, float64; the first entry is μ and the last is L, bit for bit.
    """
    law = check_choice("spectrum", law, SPECTRUM_LAWS)
    m = check_int("m", m, 1)
    L = check_positive("L", L)
    mu = check_range("mu", mu, 0.0, L, low_inclusive=False)
    if m == 1:
        if mu != L:
            raise ValueError(f"mu={mu!r} is not allowed with a single nonzero eigenvalue: "
                             f"allowed mu == L ({L!r})")
        return np.array([L])
    if law == "log-uniform":
        lam = np.geomspace(mu, L, m)
    elif law == "uniform":
        lam = np.linspace(mu, L, m)
    elif law == "two-point":
        lam = np.concatenate([np.full(m // 2, mu), np.full(m - m // 2, L)])
    else:  # power-law
        a = math.log(L / mu) / math.log(m)
        lam = (L * np.arange(1, m + 1, dtype=np.float64) ** (-a))[::-1].copy()
    lam[0] = mu
    lam[-1] = L
    return np.sort(lam)


class QuadraticProblem(CastingProblem):
    """f(w) = ½ (w − w*)ᵀ A (w − w*) + f*, A = Q diag(λ) Qᵀ with a prescribed spectrum.

    Parameters
    ----------
    dim
        d ≥ 1.
    L, mu
        Largest eigenvalue and smallest *nonzero* eigenvalue, 0 < μ ≤ L (ignored, or checked
        for agreement when given, if ``eigenvalues`` is passed).
    spectrum
        Law of the d − n_zero nonzero eigenvalues, one of :data:`SPECTRUM_LAWS` (see
        :func:`spectrum`).
    rotated
        False: Q = I, A diagonal (elementwise products, no d×d matrix on the hot path).
        True: Q Haar-random orthogonal from ``seed``.
    n_zero
        Number of zero eigenvalues, 0 ≤ n_zero < d. With n_zero > 0 the minimisers form the
        affine set w* + null(A); f is PL(μ) (μ the smallest nonzero eigenvalue, KNS 2016) but
        not strongly convex, and ``dist2`` is ‖P_range(A)(w − w*)‖².
    seed
        Seed of the host generator (only used when ``rotated``).
    w_star, f_star
        A minimiser (default zeros) and the minimum value.
    eigenvalues
        Explicit eigenvalues λ ≥ 0 (length d, in eigenbasis order, at least one > 0); overrides
        the law: L = max λ, μ = min nonzero λ, n_zero = number of zeros.

    Notes
    -----
    Eigenvalue order: the law's eigenvalues are stored ascending with the zeros first
    (``eigenvalues[:n_zero] == 0``); explicit ``eigenvalues`` keep the order given. Coordinate
    i of the eigenbasis (``to_eigenbasis``) has eigenvalue ``eigenvalues[i]``.

    Constants: L-smoothness and μ-PL are exact for a quadratic — ‖∇f(x) − ∇f(y)‖ =
    ‖A(x − y)‖ ≤ λ_max‖x − y‖ with equality along the top eigenvector, and
    ‖∇f‖² / (2(f − f*)) = Σλ_i²x_i² / Σλ_i x_i² ≥ λ_min⁺ with equality along the bottom
    nonzero eigenvector (THEORY.md §1, §5).
    """

    direct_forms = True  # f − f*, ‖w − w*‖², ∇f all from w − w*: no cancellation

    name = "quadratic"
    _device_arrays = ("_lam", "_sqrt_lam", "_mask", "_Q", "_w_star_dev")

    def __init__(
        self,
        dim: int,
        L: float | None = None,
        mu: float | None = None,
        spectrum: str = "log-uniform",
        rotated: bool = False,
        n_zero: int = 0,
        seed: int = 0,
        w_star: Any = None,
        f_star: float = 0.0,
        eigenvalues: Any = None,
    ) -> None:
        d = check_int("dim", dim, 1)
        self.spectrum_law = check_choice("spectrum", spectrum, SPECTRUM_LAWS)
        seed = check_int("seed", seed, 0)
        if eigenvalues is not None:
            lam = check_finite_array("eigenvalues", eigenvalues).ravel()
            if lam.shape != (d,):
                raise ValueError(f"eigenvalues has shape {lam.shape}: allowed ({d},)")
            if np.any(lam < 0) or not np.any(lam > 0):
                raise ValueError(f"eigenvalues has min {lam.min()!r} and max {lam.max()!r}: "
                                 "allowed values >= 0 with at least one > 0")
            L_lam, mu_lam = float(lam.max()), float(lam[lam > 0].min())
            if L is not None and check_positive("L", L) != L_lam:
                raise ValueError(f"L={L!r} disagrees with max(eigenvalues)={L_lam!r}: "
                                 "allowed None or equal")
            if mu is not None and check_positive("mu", mu) != mu_lam:
                raise ValueError(f"mu={mu!r} disagrees with the smallest nonzero eigenvalue "
                                 f"{mu_lam!r}: allowed None or equal")
            nz = int(np.count_nonzero(lam == 0))
            if n_zero not in (0, nz):
                raise ValueError(f"n_zero={n_zero!r} disagrees with the {nz} zero eigenvalues: "
                                 "allowed 0 (derived) or equal")
            self.spectrum_law = "explicit"
            n_zero = nz
            L, mu = L_lam, mu_lam
        else:
            if L is None or mu is None:
                raise ValueError("L and mu are required without eigenvalues: allowed "
                                 "0 < mu <= L")
            L = check_positive("L", L)
            mu = check_range("mu", mu, 0.0, L, low_inclusive=False)
            n_zero = check_int("n_zero", n_zero, 0, d - 1)
            lam = np.concatenate([np.zeros(n_zero), _spectrum_for(self.spectrum_law, d - n_zero,
                                                                  L, mu)])
        self.dim = d
        self.L = float(L)
        self.mu = float(mu)
        self.n_zero = int(n_zero)
        self.rotated = bool(rotated)
        self.seed = seed
        self.f_star = self._check_f_star(f_star)
        self.w_star = validated_point("w_star", w_star, d)
        self.convex = True
        self.strongly_convex = self.n_zero == 0
        self.eigenvalues = lam
        self.rotation = haar_orthogonal(d, host_rng(seed)) if self.rotated else None
        self.hessian_trace = float(lam.sum())
        # device arrays (float64; per-dtype casts cached by CastingProblem._arr)
        self._lam = lam.copy()
        self._sqrt_lam = np.sqrt(lam)
        self._mask = (lam > 0).astype(np.float64)
        self._Q = self.rotation
        self._w_star_dev = self.w_star.copy()

    # ---- host-side views -------------------------------------------------------------------
    def hessian_matrix(self) -> np.ndarray:
        """The dense Hessian A = Q diag(λ) Qᵀ on the host, shape (d, d)."""
        if self.rotation is None:
            return np.diag(self.eigenvalues)
        q = self.rotation
        return (q * self.eigenvalues) @ q.T

    def hessian_diag(self) -> np.ndarray:
        """diag(A) on the host (Jacobi preconditioning): A_jj = Σ_i Q_ji² λ_i."""
        if self.rotation is None:
            return self.eigenvalues.copy()
        return (self.rotation**2) @ self.eigenvalues

    # ---- batch maps (xp) -------------------------------------------------------------------
    def to_eigenbasis(self, w: Any) -> Any:
        """x = Qᵀ(w − w*) for w shaped (..., d) (row form: (w − w*) @ Q)."""
        e = w - self._arr("_w_star_dev", w.dtype)
        if self._Q is None:
            return e
        return e @ self._arr("_Q", w.dtype)

    def _from_eigenbasis(self, x: Any) -> Any:
        if self._Q is None:
            return x
        return x @ self._arr("_Q", x.dtype).T

    def f_gap(self, w: Any) -> Any:
        """f(w) − f* = ½ Σ_i λ_i x_i², x = Qᵀ(w − w*) (direct form, no cancellation)."""
        x = self.to_eigenbasis(w)
        return 0.5 * (self._arr("_lam", w.dtype) * x * x).sum(axis=-1)

    def value(self, w: Any) -> Any:
        """f(w) = ½ (w − w*)ᵀ A (w − w*) + f*, shape (...)."""
        return self.f_gap(w) + w.dtype.type(self.f_star)

    def grad(self, w: Any) -> Any:
        """∇f(w) = A (w − w*) = Q (λ ⊙ Qᵀ(w − w*)), shape (..., d)."""
        return self._from_eigenbasis(self._arr("_lam", w.dtype) * self.to_eigenbasis(w))

    def hessian_sqrt_apply(self, z: Any) -> Any:
        """A^{1/2} z = Q (√λ ⊙ Qᵀ z) for z shaped (..., d)."""
        if self._Q is None:
            return self._arr("_sqrt_lam", z.dtype) * z
        q = self._arr("_Q", z.dtype)
        return ((z @ q) * self._arr("_sqrt_lam", z.dtype)) @ q.T

    def dist2(self, w: Any) -> Any:
        """Squared distance to the minimiser set w* + null(A): ‖P_range(A)(w − w*)‖²."""
        x = self.to_eigenbasis(w)
        if self.n_zero == 0:
            return (x * x).sum(axis=-1)
        return (self._arr("_mask", w.dtype) * x * x).sum(axis=-1)

    def describe(self) -> dict[str, Any]:
        out = super().describe()
        out.update({"spectrum": self.spectrum_law, "rotated": self.rotated,
                    "n_zero": self.n_zero})
        return out


def _spectrum_for(law: str, m: int, L: float, mu: float) -> np.ndarray:
    # spectrum() with the single-eigenvalue message phrased for the constructor
    if m == 1 and mu != L:
        raise ValueError(f"mu={mu!r} is not allowed when dim − n_zero = 1: allowed mu == L "
                         f"({L!r}) (a single nonzero eigenvalue)")
    return spectrum(law, m, L, mu)


class DenseQuadraticProblem(CastingProblem):
    """f(w) = ½ (w − w*)ᵀ A (w − w*) + f* for a given symmetric positive definite A.

    Parameters
    ----------
    A
        Symmetric positive definite (d, d) matrix, d ≥ 1 (symmetrised as ½(A + Aᵀ); an
        asymmetry |A − Aᵀ| > 1e-12·max|A| raises).
    w_star, f_star
        Minimiser (default zeros) and minimum.

    Notes
    -----
    Constants (exact up to the symmetric eigensolver's rounding, ~d·ε·‖A‖): L = λ_max(A),
    μ = λ_min(A) — a quadratic is L-smooth and μ-strongly convex with exactly its extreme
    eigenvalues, attained along the corresponding eigenvectors (THEORY.md §1).
    :class:`QuadraticProblem` builds A = Q diag(λ) Qᵀ from a spectrum law and a Haar Q; this
    class takes any A. Evaluation is dense: f − f* = ½ Σ (e ⊙ (e A)), ∇f = e A with
    e = w − w* in row form, O(d²) per point; the arrays follow the input's dtype.
    ``hessian_sqrt_apply`` uses A^{1/2} = V diag(√λ) Vᵀ from the eigendecomposition (for
    :class:`~simulate.noise.CurvatureAlignedNoise`). Host attributes: ``eigenvalues``
    (ascending, ``numpy.linalg.eigvalsh``; L and μ are its ends) and ``eigenvectors``
    (columns, ``numpy.linalg.eigh``).
    """

    direct_forms = True  # f − f*, ‖w − w*‖², ∇f all from w − w*: no cancellation

    name = "dense_quadratic"
    _device_arrays = ("_A", "_sqrt_A", "_w_star_dev")

    def __init__(self, A: Any, w_star: Any = None, f_star: float = 0.0) -> None:
        A = np.asarray(A, dtype=np.float64)
        if A.ndim != 2 or A.shape[0] != A.shape[1] or A.shape[0] < 1:
            raise ValueError(f"A has shape {A.shape}: allowed a square (d, d) matrix, d ≥ 1")
        if not np.all(np.isfinite(A)):
            raise ValueError("A contains non-finite values: allowed finite real numbers")
        scale = max(float(np.abs(A).max()), 1e-300)
        if float(np.abs(A - A.T).max()) > 1e-12 * scale:
            raise ValueError("A is not symmetric: allowed |A − Aᵀ| ≤ 1e-12·max|A|")
        A = 0.5 * (A + A.T)
        lam = np.linalg.eigvalsh(A)  # eigh's values can differ in the last bits
        if lam[0] <= 0:
            raise ValueError(f"A has eigenvalue {lam[0]!r}: allowed positive definite")
        d = A.shape[0]
        self.dim = d
        self.L = float(lam[-1])
        self.mu = float(lam[0])
        self.eigenvalues = lam
        self.hessian_trace = float(np.trace(A))
        self.f_star = check_finite("f_star", f_star)
        self.w_star = validated_point("w_star", w_star, d)
        self.convex = True
        self.strongly_convex = True
        self._A = A
        lam_v, vec = np.linalg.eigh(A)
        self.eigenvectors = vec  # columns, in the order of ``eigenvalues`` (ascending)
        sqrt_A = (vec * np.sqrt(lam_v)) @ vec.T
        self._sqrt_A = 0.5 * (sqrt_A + sqrt_A.T)
        self._w_star_dev = self.w_star.copy()

    def hessian_matrix(self) -> np.ndarray:
        """A on the host, shape (d, d)."""
        return self._A.copy() if isinstance(self._A, np.ndarray) else self._A.get()

    def hessian_diag(self) -> np.ndarray:
        """diag(A) on the host (Jacobi preconditioning)."""
        return np.diag(self.hessian_matrix()).copy()

    def f_gap(self, w: Any) -> Any:
        """½ eᵀ A e with e = w − w*, shape (...)."""
        e = w - self._arr("_w_star_dev", w.dtype)
        return 0.5 * (e * (e @ self._arr("_A", w.dtype))).sum(axis=-1)

    def value(self, w: Any) -> Any:
        """f(w) = ½ (w − w*)ᵀ A (w − w*) + f*, shape (...)."""
        return self.f_gap(w) + w.dtype.type(self.f_star)

    def grad(self, w: Any) -> Any:
        """A (w − w*) (row form (w − w*) @ A; A symmetric), shape (..., d)."""
        return (w - self._arr("_w_star_dev", w.dtype)) @ self._arr("_A", w.dtype)

    def hessian_sqrt_apply(self, z: Any) -> Any:
        """A^{1/2} z for z shaped (..., d) (row form z @ A^{1/2}; A^{1/2} symmetric)."""
        return z @ self._arr("_sqrt_A", z.dtype)

    def describe(self) -> dict[str, Any]:
        out = super().describe()
        out.update({"spectrum": "dense", "rotated": True})
        return out
