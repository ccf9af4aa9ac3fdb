"""Gradient noise scale and the critical batch size (McCandlish et al. 2018; THEORY.md 4.8)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .conditions import check_positive, check_vector, fmt

__all__ = ["NoiseScale", "noise_scale", "steps_examples_tradeoff"]

_SRC = "THEORY.md 4.8; McCandlish et al. 2018"


def _check_psd(name: str, value: object, *, allow_scalar: bool) -> np.ndarray:
    """A symmetric PSD matrix from a square matrix, a diagonal vector or (if allowed) a
    scalar ``c`` meaning ``c I`` (returned as a 0-d array)."""
    arr = np.asarray(value, dtype=float)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains non-finite values: expected finite real numbers")
    if arr.ndim == 0:
        if not allow_scalar:
            raise ValueError(f"{name} is a scalar: expected a (d, d) matrix or a length-d diagonal")
        if arr < 0:
            raise ValueError(f"{name}={fmt(arr)} is out of range: allowed [0, inf) (c I, c >= 0)")
        return arr
    if arr.ndim == 1:
        if arr.size and arr.min() < 0:
            raise ValueError(
                f"{name} has a diagonal entry {fmt(arr.min())} out of range: allowed [0, inf)"
            )
        return np.diag(arr)
    if arr.ndim != 2 or arr.shape[0] != arr.shape[1]:
        raise ValueError(f"{name} has shape {arr.shape}: expected (d, d), (d,) or a scalar")
    scale = max(1.0, float(np.abs(arr).max()) if arr.size else 1.0)
    asym = float(np.abs(arr - arr.T).max()) if arr.size else 0.0
    if asym > 1e-10 * scale:
        raise ValueError(f"{name} is not symmetric (max |{name} - {name}^T| = {fmt(asym)})")
    arr = 0.5 * (arr + arr.T)
    if arr.size:
        low = float(np.linalg.eigvalsh(arr).min())
        if low < -1e-12 * scale:
            raise ValueError(f"{name} has eigenvalue {fmt(low)}: {name} must be positive "
                             "semidefinite")
    return arr


@dataclass(frozen=True)
class NoiseScale:
    """Noise scales of one (H, Sigma, G) triple (THEORY.md 4.8; McCandlish et al. 2018).

    With the per-example gradient covariance ``Sigma``, the true gradient ``G`` and the Hessian
    ``H``, one step ``theta - eps g_B`` with a batch-``B`` estimate ``g_B`` (covariance
    ``Sigma/B``) changes the quadratic model of the loss by
    ``-eps |G|^2 + eps^2/2 (G^T H G + tr(H Sigma)/B)`` in expectation; optimising over ``eps``:

    Attributes
    ----------
    B_noise : float
        ``tr(H Sigma) / (G^T H G)``; ``B_crit = E_min/S_min ~ B_noise``.
    B_simple : float
        ``tr(Sigma) / |G|^2`` (equals ``B_noise`` when ``H`` is a multiple of ``I``; for the
        lab's additive model ``sigma^2 / ||grad f||^2``, growing as ``w -> w*``).
    eps_max : float
        ``|G|^2 / (G^T H G)``: the best step with exact gradients.
    delta_L_max : float
        ``|G|^4 / (2 G^T H G)``: the best one-step decrease of the quadratic model.
    grad_norm2, gHg, tr_H_sigma, tr_sigma : float
        ``|G|^2``, ``G^T H G``, ``tr(H Sigma)`` and ``tr(Sigma)``.
    applicable : bool
        False when ``G^T H G = 0`` (``G = 0`` or ``G`` in the null space of ``H``): the model
        has no optimal step and all scales are NaN.
    reason : str
        Why not applicable ('' otherwise).
    source : str
        Citation.
    """

    B_noise: float
    B_simple: float
    eps_max: float
    delta_L_max: float
    grad_norm2: float
    gHg: float
    tr_H_sigma: float
    tr_sigma: float
    applicable: bool
    reason: str
    source: str = _SRC

    def eps_opt(self, B: np.ndarray | float) -> np.ndarray | float:
        """Best step for batch size ``B``: ``eps_max / (1 + B_noise / B)`` (``B > 0``)."""
        B = check_vector("B", B, low=0.0, low_inclusive=False)
        out = self.eps_max / (1.0 + self.B_noise / B)
        return float(out) if np.ndim(out) == 0 else out

    def delta_L_opt(self, B: np.ndarray | float) -> np.ndarray | float:
        """Best expected one-step decrease for batch size ``B``:
        ``delta_L_max / (1 + B_noise / B)`` (``B > 0``)."""
        B = check_vector("B", B, low=0.0, low_inclusive=False)
        out = self.delta_L_max / (1.0 + self.B_noise / B)
        return float(out) if np.ndim(out) == 0 else out


def noise_scale(H: np.ndarray | float, Sigma: np.ndarray | float, G: np.ndarray) -> NoiseScale:
    """Gradient noise scales ``B_noise``, ``B_simple``, ``eps_max``, ``delta_L_max``, exactly.

    ``B_noise = tr(H Sigma) / (G^T H G)``, ``B_simple = tr(Sigma) / |G|^2``,
    ``eps_max = |G|^2 / (G^T H G)``, ``delta_L_max = |G|^4 / (2 G^T H G)``; for batch size
    ``B``: ``eps_opt(B) = eps_max / (1 + B_noise/B)``, ``delta_L_opt(B) = delta_L_max /
    (1 + B_noise/B)`` (methods of the result). Steps and examples to a target then trade off
    on the hyperbola ``(S/S_min - 1)(E/E_min - 1) = 1`` (:func:`steps_examples_tradeoff`).

    Noisy quadratic model (Zhang et al. 2019): ``H = diag(h)``, ``Sigma = H`` (per-example
    noise covariance equal to the Hessian) -- pass ``H=h, Sigma=h``.

    Parameters
    ----------
    H : array_like
        Hessian: a symmetric PSD (d, d) matrix, or a length-d vector meaning ``diag(H)`` (the
        eigenvalues when ``G`` and ``Sigma`` are given in the eigenbasis).
    Sigma : array_like or float
        Per-example gradient covariance: a symmetric PSD (d, d) matrix, a length-d vector
        (diagonal), or a scalar ``c`` meaning ``c I`` (isotropic; the lab's isotropic model with
        ``E||xi||^2 = sigma^2`` per example is ``c = sigma^2 / d``).
    G : array_like, shape (d,)
        True gradient.

    Returns
    -------
    NoiseScale
        ``applicable=False`` (NaN scales, with a reason) when ``G^T H G = 0``.

    Raises
    ------
    ValueError
        Non-finite entries, shape mismatch, non-symmetric or non-PSD ``H``/``Sigma``.

    Source: THEORY.md 4.8; McCandlish et al. 2018 ("An empirical model of large-batch
    training"), section 2.
    """
    G = check_vector("G", G, allow_scalar=False)
    d = G.size
    if d == 0:
        raise ValueError("G has shape (0,): expected a non-empty gradient vector")
    Hm = _check_psd("H", H, allow_scalar=False)
    if Hm.shape != (d, d):
        raise ValueError(f"H has shape {np.shape(H)}: expected ({d}, {d}) or ({d},) to match G")
    Sm = _check_psd("Sigma", Sigma, allow_scalar=True)
    if Sm.ndim == 0:
        c = float(Sm)
        tr_sigma = c * d
        tr_h_sigma = c * float(np.trace(Hm))
    else:
        if Sm.shape != (d, d):
            raise ValueError(
                f"Sigma has shape {np.shape(Sigma)}: expected ({d}, {d}), ({d},) or a scalar"
            )
        tr_sigma = float(np.trace(Sm))
        tr_h_sigma = float(np.sum(Hm * Sm))  # tr(H Sigma) for symmetric H
    g2 = float(G @ G)
    ghg = float(G @ Hm @ G)
    if ghg > 0.0:
        return NoiseScale(
            B_noise=tr_h_sigma / ghg,
            B_simple=tr_sigma / g2,
            eps_max=g2 / ghg,
            delta_L_max=g2 * g2 / (2.0 * ghg),
            grad_norm2=g2,
            gHg=ghg,
            tr_H_sigma=tr_h_sigma,
            tr_sigma=tr_sigma,
            applicable=True,
            reason="",
        )
    reason = (
        "|G|^2=0: no gradient, the noise scales are undefined"
        if g2 == 0.0
        else "G^T H G=0: G lies in the null space of H, the quadratic model has no optimal step"
    )
    nan = math.nan
    return NoiseScale(nan, nan, nan, nan, g2, ghg, tr_h_sigma, tr_sigma, False, reason)


def steps_examples_tradeoff(
    B: np.ndarray | float, S_min: float, E_min: float
) -> tuple[np.ndarray | float, np.ndarray | float]:
    """Steps ``S`` and examples ``E = B S`` to a fixed target with batch size ``B``.

    ``S(B) = S_min (1 + B_crit / B)``, ``E(B) = E_min (1 + B / B_crit)`` with
    ``B_crit = E_min / S_min``; they satisfy ``E = B S`` and the hyperbola
    ``(S/S_min - 1)(E/E_min - 1) = 1`` exactly. ``B_crit`` approximates ``B_noise``
    (McCandlish et al. 2018, section 2).

    Raises
    ------
    ValueError
        ``B``, ``S_min`` or ``E_min`` not positive and finite.

    Source: THEORY.md 4.8; McCandlish et al. 2018.
    """
    B = check_vector("B", B, low=0.0, low_inclusive=False)
    S_min = check_positive("S_min", S_min)
    E_min = check_positive("E_min", E_min)
    b_crit = E_min / S_min
    S = S_min * (1.0 + b_crit / B)
    E = E_min * (1.0 + B / b_crit)
    if np.ndim(S) == 0:
        return float(S), float(E)
    return S, E
