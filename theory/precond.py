"""Preconditioned gradient descent ``w_{t+1} = w_t - alpha R grad f(w_t)`` on a quadratic
(THEORY.md 3)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .conditions import (
    Conditions,
    Curve,
    check_choice,
    check_positive,
    check_steps,
    check_vector,
    fmt,
    make_curve,
)
from .gd import gd_exact_quadratic, gd_strongly_convex_rate

__all__ = ["PreconditionedSpectrum", "jacobi_preconditioner", "precond_gd"]

_SRC = "THEORY.md 3 (GD on v -> f(R^{1/2} v))"


def _check_matrix(name: str, M: object) -> np.ndarray:
    arr = np.asarray(M, dtype=float)
    if arr.ndim != 2 or arr.shape[0] != arr.shape[1]:
        raise ValueError(f"{name} has shape {arr.shape}: expected a square matrix")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains non-finite values: expected a finite matrix")
    scale = max(1.0, float(np.abs(arr).max()) if arr.size else 1.0)
    asym = float(np.abs(arr - arr.T).max()) if arr.size else 0.0
    if asym > 1e-10 * scale:
        raise ValueError(f"{name} is not symmetric (max |{name} - {name}^T| = {fmt(asym)})")
    return 0.5 * (arr + arr.T)


@dataclass(frozen=True, eq=False)
class PreconditionedSpectrum:
    """Spectrum of ``R A`` for preconditioned GD on ``f = 1/2 e^T A e + f*``.

    Attributes
    ----------
    eigenvalues : numpy.ndarray
        Eigenvalues of ``R A`` (equal to those of ``R^{1/2} A R^{1/2}``), ascending.
    lambda_min, lambda_max : float
        Extreme eigenvalues (``lambda_min = 0`` for singular ``A``).
    kappa_eff : float
        ``lambda_max / lambda_min`` (inf when ``lambda_min = 0``).
    alpha_max : float
        ``2 / lambda_max``: GD with ``R`` needs ``alpha < alpha_max``.
    """

    eigenvalues: np.ndarray
    lambda_min: float
    lambda_max: float
    kappa_eff: float
    alpha_max: float
    _basis: np.ndarray = field(repr=False)  # R^{1/2} U: e = basis @ c
    _basis_inv: np.ndarray = field(repr=False)  # U^T R^{-1/2}: c = basis_inv @ e

    def rate_curve(
        self, t: np.ndarray | float, alpha: float, initial: float, quantity: str = "dist2"
    ) -> Curve:
        """:func:`theory.gd_strongly_convex_rate` with ``mu, L`` replaced by
        ``lambda_min(RA), lambda_max(RA)``. For ``quantity="dist2"`` the distance is in the
        ``R^{-1}``-norm (``||e||^2_{R^{-1}} = e^T R^{-1} e``), in which the iteration is plain GD;
        ``f_gap`` is unchanged. ``applicable=False`` when ``lambda_min(RA) = 0`` (not strongly
        convex) or ``alpha >= 2/lambda_max(RA)``."""
        t = check_steps(t)
        if self.lambda_min <= 0.0:
            cond = Conditions()
            cond.require(False, "lambda_min(RA)=0: strongly convex rate requires A > 0")
            check_choice("quantity", quantity, ("dist2", "f_gap", "f_gap_from_dist2"))
            return make_curve(
                t.shape, cond, lambda: t, tight=True, source=_SRC, quantity="dist2"
            )
        curve = gd_strongly_convex_rate(
            t, self.lambda_max, self.lambda_min, alpha, initial, quantity
        )
        measure = "||w_t - w*||^2_{R^-1}" if quantity == "dist2" else curve.measure
        return Curve(
            values=curve.values,
            applicable=curve.applicable,
            reason=curve.reason.replace("2/L", "2/lambda_max(RA)"),
            tight=curve.tight,
            source=_SRC + "; " + curve.source,
            quantity=curve.quantity,
            kind=curve.kind,
            measure=measure,
            rate=curve.rate,
            floor=curve.floor,
        )

    def exact_curve(
        self, t: np.ndarray | int, alpha: float, e0: np.ndarray, quantity: str = "f_gap"
    ) -> Curve:
        """Exact preconditioned-GD curve from ``e_0 = w_0 - w*`` (original coordinates).

        With ``R^{1/2} A R^{1/2} = U diag(lambda) U^T`` and ``c = U^T R^{-1/2} e_0``:
        ``Delta_t = 1/2 sum lambda_i (1 - alpha lambda_i)^{2t} c_i^2`` and
        ``e_t = R^{1/2} U diag((1 - alpha lambda)^t) c`` (``dist2`` is the Euclidean
        ``||e_t||^2``). Always applicable (identity)."""
        quantity = check_choice("quantity", quantity, ("f_gap", "dist2"))
        alpha = check_positive("alpha", alpha)
        e0 = check_vector("e0", e0, allow_scalar=False)
        if e0.shape != (self.eigenvalues.size,):
            raise ValueError(f"e0 has shape {e0.shape}: expected ({self.eigenvalues.size},)")
        c = self._basis_inv @ e0
        if quantity == "f_gap":
            return gd_exact_quadratic(t, self.eigenvalues, alpha, c, "f_gap")
        t = check_steps(t, integer=True)
        q = 1.0 - alpha * self.eigenvalues
        flat = t.ravel().astype(float)
        with np.errstate(over="ignore", invalid="ignore"):
            coeff = np.power(q[None, :], flat[:, None]) * c[None, :]
            values = ((coeff @ self._basis.T) ** 2).sum(axis=1).reshape(t.shape)
        rho2 = float(np.max(q[np.abs(c) > 0] ** 2)) if np.any(c) else 0.0
        return make_curve(
            t.shape,
            Conditions(),
            lambda: values,
            tight=True,
            source=_SRC + " (exact on a quadratic)",
            quantity="dist2",
            kind="exact",
            measure="||w_t - w*||^2",
            rate=rho2,
            floor=0.0 if rho2 < 1 else np.nan,
        )


def precond_gd(A: np.ndarray, R: np.ndarray) -> PreconditionedSpectrum:
    """Effective spectrum of preconditioned GD on the quadratic ``f = 1/2 e^T A e + f*``.

    ``w_{t+1} = w_t - alpha R grad f`` (``R`` symmetric positive definite) is GD on
    ``v -> f(R^{1/2} v)``, so all of THEORY.md 1 holds with ``lambda_i`` replaced by
    ``eig(R A)``: ``kappa_eff = lambda_max(RA)/lambda_min(RA)``, step ``alpha < 2/lambda_max(RA)``.
    ``R = A^{-1}``, ``alpha = 1`` gives ``w_1 = w*``; Jacobi ``R = diag(A)^{-1}`` is exact for
    diagonal ``A`` and near-best among diagonal scalings otherwise (van der Sluis 1969). For
    noisy diagonal preconditioning use per-coordinate steps ``alpha R_ii`` in
    :func:`theory.sgd_exact_quadratic`.

    Parameters
    ----------
    A : array_like, shape (d, d)
        Symmetric positive semidefinite Hessian.
    R : array_like, shape (d, d)
        Symmetric positive definite preconditioner.

    Returns
    -------
    PreconditionedSpectrum
        With ``rate_curve`` and ``exact_curve`` methods.

    Raises
    ------
    ValueError
        Non-square, non-symmetric, non-finite matrices, ``A`` not PSD or ``R`` not PD.

    Source: THEORY.md 3.
    """
    A = _check_matrix("A", A)
    R = _check_matrix("R", R)
    if A.shape != R.shape:
        raise ValueError(f"R has shape {R.shape}: expected the shape of A {A.shape}")
    r_eig, r_vec = np.linalg.eigh(R)
    if r_eig.size and r_eig.min() <= 0:
        raise ValueError(f"R has eigenvalue {fmt(r_eig.min())}: R must be positive definite")
    a_eig = np.linalg.eigvalsh(A)
    tol = 1e-12 * max(1.0, float(np.abs(a_eig).max()) if a_eig.size else 1.0)
    if a_eig.size and a_eig.min() < -tol:
        raise ValueError(f"A has eigenvalue {fmt(a_eig.min())}: A must be positive semidefinite")
    r_half = (r_vec * np.sqrt(r_eig)) @ r_vec.T
    r_mhalf = (r_vec / np.sqrt(r_eig)) @ r_vec.T
    S = r_half @ A @ r_half
    lam, U = np.linalg.eigh(0.5 * (S + S.T))
    scale = max(1.0, float(np.abs(lam).max()) if lam.size else 1.0)
    lam = np.where(np.abs(lam) <= 1e-12 * scale, 0.0, lam)
    lam = np.maximum(lam, 0.0)
    lmin, lmax = float(lam[0]), float(lam[-1])
    if lmax <= 0:
        raise ValueError("A is zero: the quadratic has no curvature")
    lam.flags.writeable = False
    return PreconditionedSpectrum(
        eigenvalues=lam,
        lambda_min=lmin,
        lambda_max=lmax,
        kappa_eff=lmax / lmin if lmin > 0 else np.inf,
        alpha_max=2.0 / lmax,
        _basis=r_half @ U,
        _basis_inv=U.T @ r_mhalf,
    )


def jacobi_preconditioner(A: np.ndarray) -> np.ndarray:
    """Jacobi preconditioner ``R = diag(A)^{-1}`` (needs a positive diagonal).

    Source: THEORY.md 3; van der Sluis 1969.
    """
    A = np.asarray(A, dtype=float)
    if A.ndim != 2 or A.shape[0] != A.shape[1]:
        raise ValueError(f"A has shape {A.shape}: expected a square matrix")
    diag = check_vector("diag(A)", np.diag(A), low=0.0, low_inclusive=False)
    return np.diag(1.0 / diag)
